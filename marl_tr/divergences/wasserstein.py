"""Wasserstein distances between policies: W1 (W-MATRPO's trust region), eq. 31's bound, W2.

W1 (the paper's eq. 2 with ground cost ``c``) is the distance of W-MATRPO's per-agent trust
region (eq. 3) and of its Lagrangian (eq. 16).

**W1 between 1-D Gaussians.** The optimal coupling of ``N(m1, s1^2)`` and ``N(m2, s2^2)``
in one dimension pairs equal quantiles, so ``W1 = E|dm + ds Z|`` with ``Z ~ N(0, 1)``,
``dm = m2 - m1`` and ``ds = s2 - s1``: the mean of a folded normal,

    ``W1 = |ds| sqrt(2/pi) exp(-dm^2 / (2 ds^2)) + dm (1 - 2 Phi(-dm / |ds|))``,

which is ``|dm|`` when ``ds = 0``. Its partial derivatives are
``dW1/d(dm) = erf(dm / (sqrt(2) |ds|))`` and
``dW1/d(ds) = sign(ds) sqrt(2/pi) exp(-dm^2 / (2 ds^2))``. For diagonal Gaussians under the
L1 ground cost ``|x - y|_1`` the product of the per-dimension optimal couplings is optimal,
so W1 is the sum over dimensions. Under the Euclidean ground cost in more than one
dimension there is no closed form: the ``"pot"`` method solves the transport problem
between sample clouds.

**The paper's eq. 31**, ``|dm| + |ds|``, is not W1 but an upper bound of it
(``E|dm + ds Z| <= |dm| + |ds| E|Z|`` and ``E|Z| = sqrt(2/pi) < 1``); it is registered
separately as ``"w1_bound"`` for faithful reproductions.

**Categoricals** have three ground metrics (``Wasserstein1``'s options):

- ordinal (the default): action ``k`` sits at ``k * spacing`` and
  ``W1 = spacing * sum_k |CDF_old(k) - CDF_new(k)|``;
- a cost matrix ``cost [K, K]``;
- action embeddings ``embedding [K, d]`` (each action a point, L1 or L2 distances between
  points), given explicitly or declared by the environment (``embedding="env"``).

Under a cost with the triangle inequality W1 is, by Kantorovich-Rubinstein duality, a maximum
over the vertices of the dual polytope ``{f_0 = 0, f_i - f_j <= C_ij}``
(``transport.kantorovich_vertices``): a matrix product and a max per state, exact, with the
maximising vertex as dual potential. Other costs (and more than ``MAX_VERTEX_ACTIONS``
actions) go through POT's network simplex per distinct state. The gradient in the new logits
chains the target potential ``g = dW/dq`` through the softmax: ``q * (g - sum(q g))``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.divergences.base import DIVERGENCES, Divergence, divergences_supporting
from marl_tr.divergences.integration import normal_quantile_nodes, standard_normal_cloud
from marl_tr.divergences.transport import (
    MAX_VERTEX_ACTIONS,
    discrete_transport,
    discrete_transport_duals,
    euclidean_w1_between_clouds,
    kantorovich_vertices,
    ordinal_wasserstein,
    softmax_pullback,
    triangle_inequality_holds,
    w1_from_vertices,
    wasserstein_1d_columns,
)
from marl_tr.validation import check_choice, check_int, check_positive

__all__ = [
    "CategoricalMetric",
    "Wasserstein1",
    "Wasserstein1Bound",
    "Wasserstein2",
    "embedding_costs",
    "gaussian_w1",
    "ordinal_w1",
]

W1_METHODS = ("closed_form", "pot")
GROUND_COSTS = ("l1", "l2")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def _folded_normal_mean(mean_step: Tensor, std_step: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``E|dm + ds Z|`` elementwise, with the pieces of its partial derivatives.

    Safe at ``ds = 0`` (the ratio ``dm / |ds|`` becomes +-inf or, at ``dm = 0``, 0: erf and
    exp stay finite) and never NaN.

    Returns:
        ``(value, slope, density)``: ``d value / d dm = slope = erf(dm / (sqrt(2) |ds|))``
        and ``d value / d ds = sign(ds) * density``,
        ``density = sqrt(2/pi) exp(-dm^2 / (2 ds^2))``. At identity (``dm = ds = 0``), where
        the function is not differentiable, both partials are 0: the minimum-norm
        subgradient.
    """
    spread = std_step.abs()
    ratio = mean_step / spread.clamp_min(torch.finfo(spread.dtype).tiny)
    density = _SQRT_2_OVER_PI * torch.exp(-0.5 * ratio.square())
    slope = torch.erf(ratio * _INV_SQRT_2)
    return spread * density + mean_step * slope, slope, density


class _FoldedNormalMean(torch.autograd.Function):
    """``E|dm + ds Z|`` with the analytic backward (autograd through the ratio ``dm / |ds|``
    would multiply zeros by overflowing derivatives near ``ds = 0``)."""

    @staticmethod
    def forward(ctx, mean_step: Tensor, std_step: Tensor) -> Tensor:  # type: ignore[override]
        value, slope, density = _folded_normal_mean(mean_step, std_step)
        ctx.save_for_backward(slope, torch.sign(std_step) * density)
        return value

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        d_mean, d_std = ctx.saved_tensors
        return grad * d_mean, grad * d_std


def gaussian_w1(mean_p: Tensor, std_p: Tensor, mean_q: Tensor, std_q: Tensor) -> Tensor:
    """Exact W1 between diagonal Gaussians under the L1 ground cost (summed per dimension).

    Args:
        mean_p, std_p, mean_q, std_q: ``[B, d]``.

    Returns:
        ``[B]``; differentiable in all four inputs, gradient finite everywhere (0 at
        ``p == q``).
    """
    mean_step, std_step = mean_q - mean_p, std_q - std_p
    if torch.is_grad_enabled() and (mean_step.requires_grad or std_step.requires_grad):
        return _FoldedNormalMean.apply(mean_step, std_step).sum(-1)
    return _folded_normal_mean(mean_step, std_step)[0].sum(-1)


def ordinal_w1(probs_p: Tensor, probs_q: Tensor, spacing: float) -> Tensor:
    """W1 between categoricals on ``0, spacing, 2 spacing, ...``: ``[B, K] x 2 -> [B]``."""
    cdf_gap = (probs_p.cumsum(-1) - probs_q.cumsum(-1))[..., :-1]
    return spacing * cdf_gap.abs().sum(-1)


def _ordinal_w1_grad_logits(probs_old: Tensor, probs_new: Tensor, spacing: float) -> Tensor:
    """``d ordinal_w1(old, new) / d logits_new``, ``[B, K]`` (0 where the CDFs touch).

    With ``C_k`` the new CDF, ``g_k = spacing * sign(C_k - C_old,k)`` (``k < K - 1``,
    ``g_{K-1} = 0``) and ``dC_k / dz_i = p_i (1[i <= k] - C_k)``:
    ``dW1/dz_i = p_i (sum_{k >= i} g_k - sum_k g_k C_k)``.
    """
    cdf_new = probs_new.cumsum(-1)
    sign = torch.sign(cdf_new - probs_old.cumsum(-1))
    sign[..., -1] = 0.0
    tail_sums = sign.flip(-1).cumsum(-1).flip(-1)
    centre = (sign * cdf_new).sum(-1, keepdim=True)
    return spacing * probs_new * (tail_sums - centre)


def embedding_costs(points: np.ndarray, ground: str) -> np.ndarray:
    """Distances between action embeddings: ``[K, d] -> [K, K]`` under ``ground``.

    Args:
        points: ``[K, d]``, one point per action.
        ground: ``"l1"`` (sum of coordinate distances) or ``"l2"`` (Euclidean).
    """
    gaps = points[:, None, :] - points[None, :, :]
    if ground == "l1":
        return np.abs(gaps).sum(-1)
    return np.sqrt(np.square(gaps).sum(-1))


def _as_table(name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array, or a ``ValueError`` naming ``what`` was expected."""
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None


def _check_cost(cost: Any) -> tuple[tuple[float, ...], ...] | None:
    """A ``[K, K]`` cost table (``K >= 2``, finite, ``>= 0``, zero diagonal) as nested tuples of
    floats (their ``repr`` round-trips through a config string)."""
    if cost is None:
        return None
    table = _as_table("cost", cost, "a square K x K table of numbers")
    if table.ndim != 2 or table.shape[0] != table.shape[1] or table.shape[0] < 2:
        raise ValueError(
            f"cost must be a square K x K table with K >= 2 actions, got shape {table.shape}"
        )
    if not np.isfinite(table).all():
        raise ValueError(f"cost must be finite, got {cost!r}")
    if (table < 0).any():
        i, j = np.argwhere(table < 0)[0]
        raise ValueError(f"cost must be >= 0, got cost[{i}][{j}] = {float(table[i, j])!r}")
    if (np.diagonal(table) != 0).any():
        i = int(np.flatnonzero(np.diagonal(table))[0])
        raise ValueError(
            f"cost must have a zero diagonal (keeping an action costs nothing), got "
            f"cost[{i}][{i}] = {float(table[i, i])!r}"
        )
    return tuple(tuple(float(x) for x in row) for row in table)


def _check_embedding(
    embedding: Any, name: str = "embedding"
) -> tuple[tuple[float, ...], ...]:
    """``[K, d]`` action coordinates (``K >= 2`` distinct finite points; a flat ``[K]`` table
    is ``K`` points on a line) as nested tuples of floats."""
    what = "a [K, d] table of action coordinates"
    points = _as_table(name, embedding, what)
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2 or points.shape[0] < 2 or points.shape[1] < 1:
        raise ValueError(
            f"{name} must be {what} with K >= 2 actions, got shape {np.shape(embedding)}"
        )
    if not np.isfinite(points).all():
        raise ValueError(f"{name} must be finite, got {embedding!r}")
    for i in range(len(points)):
        same = np.flatnonzero((points[i + 1 :] == points[i]).all(axis=1))
        if len(same):
            j = i + 1 + int(same[0])
            raise ValueError(
                f"{name} must give distinct points, got actions {i} and {j} both at "
                f"{tuple(points[i].tolist())}; a cost matrix can make two actions cost 0 apart"
            )
    return tuple(tuple(float(x) for x in row) for row in points)


class CategoricalMetric:
    """A ground cost between ``K`` actions, with what the exact W1 formulas need.

    Args:
        cost: ``[K, K]`` float64, validated (finite, ``>= 0``, zero diagonal).

    Attributes:
        cost: the table; ``cost[i, j]`` moves mass from the old policy's action ``i`` to the
            new policy's action ``j``.
        num_actions: ``K``.
        symmetric: ``cost == cost.T``.
        triangle: the triangle inequality holds (to ``1e-9`` of the largest entry).
        is_metric: symmetric, triangle inequality and positive off the diagonal.
        uses_vertices: the dual-vertex formula applies (triangle inequality and
            ``K <= MAX_VERTEX_ACTIONS``); otherwise POT's network simplex per state.
    """

    def __init__(self, cost: np.ndarray) -> None:
        self.cost = np.ascontiguousarray(cost, dtype=np.float64)
        self.num_actions = int(self.cost.shape[0])
        self.symmetric = bool(np.array_equal(self.cost, self.cost.T))
        self.triangle = triangle_inequality_holds(self.cost)
        off_diagonal = self.cost[~np.eye(self.num_actions, dtype=bool)]
        self.is_metric = self.symmetric and self.triangle and bool((off_diagonal > 0).all())
        self.uses_vertices = self.triangle and self.num_actions <= MAX_VERTEX_ACTIONS
        self._vertices: np.ndarray | None = None
        self._tensors: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}

    def _tensor(self, which: str, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (which, dtype, device)
        if key not in self._tensors:
            if which == "vertices":
                if self._vertices is None:
                    self._vertices = kantorovich_vertices(self.cost)
                array = self._vertices
            else:
                array = self.cost
            self._tensors[key] = torch.as_tensor(array, dtype=dtype, device=device)
        return self._tensors[key]

    def vertices(self, like: Tensor) -> Tensor:
        """The dual vertices ``[M, K]`` in ``like``'s dtype and device (enumerated once)."""
        return self._tensor("vertices", like.dtype, like.device)

    def table(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The cost ``[K, K]`` as a tensor."""
        return self._tensor("cost", dtype, device)

    def w1(self, probs_p: Tensor, probs_q: Tensor, with_pot: bool = False) -> Tensor:
        """Exact W1 (transport cost from ``p`` to ``q``) per state: ``[B, K] x 2 -> [B]``,
        differentiable in both. ``with_pot`` forces POT's network simplex."""
        if self.uses_vertices and not with_pot:
            return w1_from_vertices(probs_p, probs_q, self.vertices(probs_p))[0]
        return discrete_transport(probs_p, probs_q, self.cost)

    def grad_logits(self, probs_p: Tensor, probs_q: Tensor) -> Tensor:
        """``dW1(p, q) / d logits_q``, ``[B, K]``: the target potential ``g`` chained through
        the softmax, ``q * (g - sum(q g))``; 0 at identity (``p == q``)."""
        if self.uses_vertices:
            vertices = self.vertices(probs_p)
            potential = -vertices[w1_from_vertices(probs_p, probs_q, vertices)[1]]
        else:
            _, _, target = discrete_transport_duals(
                probs_p.detach().cpu().double().numpy(),
                probs_q.detach().cpu().double().numpy(), self.cost,
            )
            potential = torch.as_tensor(target, dtype=probs_q.dtype, device=probs_q.device)
        gradient = softmax_pullback(probs_q, potential)
        same = (probs_p == probs_q).all(-1, keepdim=True)
        return torch.where(same, torch.zeros_like(gradient), gradient)


@DIVERGENCES.register("w1", aliases=("wasserstein",))
class Wasserstein1(Divergence):
    """Wasserstein-1 distance between the old and the new policy (W-MATRPO, eqs. 2, 3, 16).

    Config strings, by ground metric between the actions of a categorical:

    - ordinal (default): ``"w1"``, ``"w1:spacing=2"``: action ``k`` at ``k * spacing``;
    - a cost matrix: ``"w1:cost=((0,1,2),(1,0,1),(2,1,0))"``: ``cost[i][j]`` moves mass from
      the old policy's action ``i`` to the new policy's action ``j``;
    - action embeddings: ``"w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1)),ground=l2"``:
      action ``k`` at point ``embedding[k]`` of ``R^d``, the cost is the L1 (``ground=l1``,
      the default) or L2 distance between points;
    - ``"w1:embedding=env"``: the embedding the environment declares
      (``marl_tr_envs.action_geometry``), bound by ``bind_action_geometry`` before use.

    Gaussians ignore ``cost`` and ``embedding``: their ground cost is ``ground``.

    **Which costs.** A cost table must be ``K x K`` (``K >= 2``), finite, ``>= 0`` with a zero
    diagonal. It need not be a metric: any such table defines an optimal-transport cost,
    computed exactly. But W1 is a *metric* between policies only under a metric cost
    (symmetric, triangle inequality, positive off the diagonal); otherwise the instance's
    ``is_metric`` (and, for an asymmetric table, ``symmetric``) flag is False. Costs with the
    triangle inequality (metric or not symmetric) use the fast dual-vertex formula for up to
    ``MAX_VERTEX_ACTIONS`` actions; the rest POT's network simplex, one solve per distinct
    state. Embedding points must be distinct (their distances are then a metric).

    Args:
        method: ``"closed_form"`` (default): the exact formulas of this module (Gaussians
            under ``ground="l1"`` or in 1-D; ordinal categoricals through CDFs; categoricals
            under a cost or embedding through dual vertices or the network simplex), with an
            analytic ``grad_new``. ``"pot"``: POT's generic solvers, differentiable but
            slower: ``ot.wasserstein_1d`` on ``n_samples``-point quantile representations
            per dimension (1-D or ``ground="l1"``), ``ot.emd2`` between clouds of
            ``n_samples`` reparameterised samples ``mean + std * z`` with one seeded noise
            set ``z`` shared by old and new (``ground="l2"``, ``d > 1``), and
            ``ot.wasserstein_1d`` with the probabilities as weights for ordinal categoricals
            (``ot.emd`` per state under a cost or embedding).
        ground: the ground cost between continuous actions (and between embedded actions):
            ``"l1"`` (sum of per-dimension distances; W1 between diagonal Gaussians is then
            the sum of 1-D W1s) or ``"l2"`` (Euclidean; for Gaussians no closed form when
            ``d > 1``, so it needs ``method="pot"``). Both coincide in 1-D.
        spacing: distance between neighbouring actions of an ordinal categorical (> 0); only
            with the ordinal metric.
        n_samples: quantile nodes or samples of the ``"pot"`` method (>= 2).
        seed: seed of the shared noise of the ``"pot"`` method with ``ground="l2"``.
        cost: ``[K, K]`` ground cost table between categorical actions, or ``None``.
        embedding: ``[K, d]`` action coordinates (``[K]``: points on a line), ``"env"``, or
            ``None``.

    Flags: symmetric, a metric (per instance: see "Which costs"), not smooth at identity
    (``grad_new`` returns the zero subgradient there). ``closed_form`` is True on the class
    and, per instance, False when ``method="pot"``. ``has_ground_metric``: ``ground_cost``
    gives the same costs the divergence transports under.

    Raises:
        ValueError: an unknown ``method`` or ``ground``, a non-positive ``spacing``,
            ``n_samples < 2``, a negative ``seed``; a bad ``cost`` or ``embedding`` table,
            both given, or either with ``spacing != 1``; on call, ``ground="l2"`` with
            ``method="closed_form"`` and more than one action dimension, a categorical whose
            number of actions differs from the table's, or ``embedding="env"`` not yet bound.
    """

    supports_continuous = True
    supports_discrete = True
    symmetric = True
    is_metric = True
    closed_form = True
    has_ground_metric = True
    supported_distributions = (DiagGaussian, Categorical)

    def __init__(
        self,
        method: str = "closed_form",
        ground: str = "l1",
        spacing: float = 1.0,
        n_samples: int = 256,
        seed: int = 0,
        cost: Sequence[Sequence[float]] | np.ndarray | None = None,
        embedding: Sequence[Sequence[float]] | np.ndarray | str | None = None,
    ) -> None:
        self.method = check_choice("method", method, W1_METHODS)
        self.ground = check_choice("ground", ground, GROUND_COSTS)
        self.spacing = check_positive("spacing", spacing)
        self.n_samples = check_int("n_samples", n_samples, minimum=2)
        self.seed = check_int("seed", seed, minimum=0)
        self.cost = _check_cost(cost)
        if embedding is None or isinstance(embedding, str):
            if embedding not in (None, "env"):
                raise ValueError(
                    "embedding must be 'env' or a [K, d] table of action coordinates, got "
                    f"{embedding!r}"
                )
            self.embedding = embedding
        else:
            self.embedding = _check_embedding(embedding)
        if self.cost is not None and self.embedding is not None:
            raise ValueError("give either cost or embedding, not both")
        if self.spacing != 1.0 and (self.cost is not None or self.embedding is not None):
            raise ValueError(
                f"spacing applies to the ordinal ground metric only, got spacing={spacing!r} "
                "with a cost or embedding (scale the table instead)"
            )
        self.closed_form = self.method == "closed_form"  # type: ignore[misc]
        self._metric: CategoricalMetric | None = None
        if self.cost is not None:
            self._set_metric(CategoricalMetric(np.array(self.cost)))
        elif isinstance(self.embedding, tuple):
            self._set_metric(self._embedded(self.embedding))

    # -- ground metric of categoricals ----------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments; ``cost`` and ``embedding`` only when given (so that the
        ordinal default keeps its spec)."""
        return {
            name: value for name, value in super().config().items()
            if not (name in ("cost", "embedding") and value is None)
        }

    def _embedded(self, points: tuple[tuple[float, ...], ...]) -> CategoricalMetric:
        return CategoricalMetric(embedding_costs(np.array(points), self.ground))

    def _set_metric(self, metric: CategoricalMetric) -> None:
        self._metric = metric
        self.symmetric = metric.symmetric  # type: ignore[misc]
        self.is_metric = metric.is_metric  # type: ignore[misc]

    @property
    def uses_env_action_geometry(self) -> bool:
        """Whether the categorical ground metric comes from the env (``embedding="env"``):
        the training setup then calls ``bind_action_geometry``."""
        return self.embedding == "env"

    def bind_action_geometry(
        self,
        embeddings: Sequence[Any] | Mapping[str, Any],
    ) -> None:
        """Take the action embedding the environment declares (``embedding="env"`` only).

        Args:
            embeddings: one ``[K, d]`` array (or ``None``) per agent, as a sequence or a
                mapping from agent name (``marl_tr_envs.action_embeddings``). One divergence
                serves every agent, so all must declare the same embedding. Binding again
                replaces the previous embedding (a new env).

        Raises:
            ValueError: the instance has its own geometry, no agents, an agent without an
                embedding, a bad table, or agents with different embeddings.
        """
        if not self.uses_env_action_geometry:
            raise ValueError(
                f"{self!r} has its own categorical ground metric; only embedding='env' takes "
                "the one the environment declares"
            )
        items = list(embeddings.items() if isinstance(embeddings, Mapping)
                     else enumerate(embeddings))
        if not items:
            raise ValueError("embeddings must give one action embedding per agent, got none")
        tables = []
        for agent, points in items:
            if points is None:
                raise ValueError(
                    f"agent {agent!r} declares no action embedding; W1 with embedding='env' "
                    "needs one for every agent (an env declares it through "
                    "action_embedding(agent), see marl_tr_envs.action_geometry)"
                )
            tables.append(_check_embedding(points, name=f"agent {agent!r}'s action embedding"))
        for (agent, _), table in zip(items[1:], tables[1:]):
            if table != tables[0]:
                raise ValueError(
                    f"agents {items[0][0]!r} and {agent!r} declare different action "
                    f"embeddings ({len(tables[0])} and {len(table)} actions: "
                    f"{tables[0]} and {table}); one W1 divergence serves every agent, so "
                    "their embeddings must be equal"
                )
        self._set_metric(self._embedded(tables[0]))

    def categorical_metric(self) -> CategoricalMetric | None:
        """The categorical ground metric, or ``None`` for the ordinal one.

        Raises:
            ValueError: ``embedding="env"`` before ``bind_action_geometry``.
        """
        if self._metric is None and self.uses_env_action_geometry:
            raise ValueError(
                f"{self!r} has no action geometry yet: embedding='env' takes the embedding the "
                "environment declares, which bind_action_geometry(embeddings) sets (the "
                "training setup calls it); outside training bind it yourself or give "
                "embedding=((x, y), ...) explicitly"
            )
        return self._metric

    # -- checks and values ----------------------------------------------------------------
    def check_options_fit(self, kind: str) -> None:
        """``cost``, ``embedding`` and ``spacing`` set the metric between discrete actions:
        a run on continuous actions refuses them (W1 there uses ``|a - a'|``)."""
        given = [name for name, unset in (("cost", self.cost is None),
                                          ("embedding", self.embedding is None),
                                          ("spacing", self.spacing == 1.0)) if not unset]
        if kind == "continuous" and given:
            raise ValueError(
                f"W1's {' and '.join(given)} set{'s' if len(given) == 1 else ''} the ground "
                "metric between discrete actions, but this run's actions are continuous (W1 "
                f"there uses |a - a'|, ground={self.ground!r}); leave {' and '.join(given)} out")

    def check_supported(self, dist: ActionDistribution) -> None:
        super().check_supported(dist)
        if isinstance(dist, Categorical):
            metric = self.categorical_metric()
            if metric is not None and dist.num_actions != metric.num_actions:
                source = "cost" if self.cost is not None else "embedding"
                raise ValueError(
                    f"Wasserstein1's ground metric ({source}) is defined for "
                    f"{metric.num_actions} actions, got a Categorical over {dist.num_actions} "
                    "actions"
                )
        if (
            self.method == "closed_form"
            and self.ground == "l2"
            and isinstance(dist, DiagGaussian)
            and dist.mean.shape[-1] > 1
        ):
            raise ValueError(
                f"{self!r}: W1 under the Euclidean ground cost (ground='l2') has no closed "
                f"form for {dist.mean.shape[-1]} action dimensions; use method='pot' "
                "(sample-based) or ground='l1' (exact)"
            )

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        if isinstance(old, Categorical):
            metric = self.categorical_metric()
            if metric is not None:
                return metric.w1(old.probs, new.probs, with_pot=self.method == "pot")
            if self.method == "closed_form":
                return ordinal_w1(old.probs, new.probs, self.spacing)
            return ordinal_wasserstein(old.probs, new.probs, self.spacing, p=1)
        if self.method == "closed_form":
            return gaussian_w1(old.mean, old.std, new.mean, new.std)
        return self._gaussian_with_pot(old, new)

    def _gaussian_with_pot(self, old: DiagGaussian, new: DiagGaussian) -> Tensor:
        batch, dim = old.mean.shape
        dtype, device = old.mean.dtype, old.mean.device
        if self.ground == "l1" or dim == 1:
            nodes = normal_quantile_nodes(self.n_samples, dtype, device).unsqueeze(-1)
            quantiles_old = old.mean.reshape(1, -1) + old.std.reshape(1, -1) * nodes
            quantiles_new = new.mean.reshape(1, -1) + new.std.reshape(1, -1) * nodes
            per_dim = wasserstein_1d_columns(quantiles_old, quantiles_new)
            return per_dim.reshape(batch, dim).sum(-1)
        noise = standard_normal_cloud(self.n_samples, dim, self.seed, dtype, device)
        points_old = old.mean.unsqueeze(1) + old.std.unsqueeze(1) * noise
        points_new = new.mean.unsqueeze(1) + new.std.unsqueeze(1) * noise
        return euclidean_w1_between_clouds(points_old, points_new)

    def homogeneous(self, dist: ActionDistribution) -> bool:
        """Gaussians under the L1 ground cost (or in 1-D): ``W1 = sum_k E|dm_k + ds_k Z|`` scales
        with the step in (mean, std), also on the quantile nodes of ``method="pot"``."""
        return isinstance(dist, DiagGaussian) and (self.ground == "l1" or dist.mean.shape[-1] == 1)

    @property
    def autograd_free(self) -> bool:
        return self.method == "closed_form"  # the POT path differentiates by autograd

    def grad_new(self, old: ActionDistribution, new: ActionDistribution) -> Params:
        if self.method != "closed_form":
            return super().grad_new(old, new)
        self.check(old, new)
        if isinstance(new, Categorical):
            metric = self.categorical_metric()
            if metric is not None:
                return (metric.grad_logits(old.probs, new.probs),)
            return (_ordinal_w1_grad_logits(old.probs, new.probs, self.spacing),)
        std_step = new.std - old.std
        _, slope, density = _folded_normal_mean(new.mean - old.mean, std_step)
        return (slope, torch.sign(std_step) * density)

    # -- ground cost ------------------------------------------------------------------------
    def ground_cost(
        self, actions: Tensor, candidates: Tensor, *, dtype: torch.dtype | None = None
    ) -> Tensor:
        """The ground cost W1 transports under, between actions and candidate actions.

        Continuous: ``actions [N, d]``, ``candidates [N, K, d]`` (float): the L1
        (``ground="l1"``) or Euclidean (``"l2"``) distance. Discrete: ``actions [N]``,
        ``candidates [N, K]`` (integer): ``spacing * |i - j|`` (ordinal), ``cost[i, j]`` or the
        distance between embedded points.

        Args:
            actions, candidates: as above.
            dtype: the result's dtype for discrete actions (default: torch's default dtype);
                continuous costs keep the actions' dtype.

        Returns:
            ``[N, K]``.

        Raises:
            ValueError: bad shapes, action indices outside the table, or
                ``embedding="env"`` not yet bound.
        """
        if actions.is_floating_point():
            if (actions.dim() != 2 or candidates.dim() != 3
                    or candidates.shape[0] != actions.shape[0]
                    or candidates.shape[2] != actions.shape[1]):
                raise ValueError(
                    "continuous ground_cost needs actions [N, d] and candidates [N, K, d], got "
                    f"{tuple(actions.shape)} and {tuple(candidates.shape)}"
                )
            gaps = candidates - actions.unsqueeze(1)
            if self.ground == "l1":
                return gaps.abs().sum(-1)
            return torch.linalg.vector_norm(gaps, dim=-1)
        if (actions.dim() != 1 or candidates.dim() != 2
                or candidates.shape[0] != actions.shape[0] or candidates.is_floating_point()):
            raise ValueError(
                "discrete ground_cost needs integer actions [N] and candidates [N, K], got "
                f"{tuple(actions.shape)} and {tuple(candidates.shape)}"
            )
        dtype = dtype or torch.get_default_dtype()
        metric = self.categorical_metric()
        limit = metric.num_actions if metric is not None else None
        for name, index in (("actions", actions), ("candidates", candidates)):
            bad = (index < 0) | (index >= limit) if limit is not None else index < 0
            if bad.any():
                allowed = f"in [0, {limit - 1}]" if limit is not None else ">= 0"
                raise ValueError(
                    f"{name} must be action indices {allowed}, got {index[bad][0].item()}"
                )
        if metric is None:
            return (candidates - actions.unsqueeze(1)).abs().to(dtype) * self.spacing
        table = metric.table(dtype, actions.device)
        return table[actions.long().unsqueeze(1), candidates.long()]


@DIVERGENCES.register("w1_bound")
class Wasserstein1Bound(Divergence):
    """The paper's eq. 31, ``sum_k |m_new - m_old| + |s_new - s_old|``: an UPPER BOUND on W1.

    Not W1: ``W1 <= |dm| + sqrt(2/pi) |ds| <= |dm| + |ds|`` per dimension, with equality
    only when the standard deviations match. Registered for faithful reproductions of the
    paper's experiments; use ``"w1"`` for the exact distance. It is the L1 distance in
    ``(mean, std)`` parameter space, so it is a metric there.

    ``grad_new``: ``(sign(m_new - m_old), sign(s_new - s_old))``, 0 where a step is 0.
    """

    supports_continuous = True
    symmetric = True
    is_metric = True
    closed_form = True
    supported_distributions = (DiagGaussian,)

    def check_supported(self, dist: ActionDistribution) -> None:
        """Refuse non-Gaussians; for categoricals, point to ``"w1"``, the exact W1."""
        if dist.kind == "discrete":
            fitting = ", ".join(divergences_supporting(type(dist)))
            raise ValueError(
                f"{self!r} does not support discrete actions ({type(dist).__name__}): eq. 31 "
                "bounds W1 between Gaussians only; use 'w1', the exact W1, which supports "
                f"discrete actions (divergences that fit {type(dist).__name__}: {fitting})"
            )
        super().check_supported(dist)

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        return ((new.mean - old.mean).abs() + (new.std - old.std).abs()).sum(-1)

    def homogeneous(self, dist: ActionDistribution) -> bool:
        return True  # an L1 norm of the step in (mean, std)

    def grad_new(self, old: ActionDistribution, new: ActionDistribution) -> Params:
        self.check(old, new)
        return (torch.sign(new.mean - old.mean), torch.sign(new.std - old.std))


@DIVERGENCES.register("w2")
class Wasserstein2(Divergence):
    """Wasserstein-2 distance (Euclidean ground cost), exact.

    Diagonal Gaussians: ``W2 = sqrt(sum_k dm_k^2 + ds_k^2)`` (the Bures-Wasserstein formula
    for commuting covariances). Categoricals: ordinal support ``0, spacing, ...``, computed
    exactly from the quantile functions by POT (``ot.wasserstein_1d``, ``p=2``, square
    root taken). The gradient at identity is 0 (a subgradient of the norm).

    Args:
        spacing: distance between neighbouring actions of a categorical (> 0).
    """

    supports_continuous = True
    supports_discrete = True
    symmetric = True
    is_metric = True
    closed_form = True
    supported_distributions = (DiagGaussian, Categorical)

    def __init__(self, spacing: float = 1.0) -> None:
        self.spacing = check_positive("spacing", spacing)

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        if isinstance(old, Categorical):
            return ordinal_wasserstein(old.probs, new.probs, self.spacing, p=2)
        steps = torch.cat((new.mean - old.mean, new.std - old.std), dim=-1)
        return torch.linalg.vector_norm(steps, dim=-1)  # its gradient at 0 is 0

    def homogeneous(self, dist: ActionDistribution) -> bool:
        """Gaussians: the L2 norm of the step in (mean, std)."""
        return isinstance(dist, DiagGaussian)
