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

**Categoricals** are treated as ordinal: action ``k`` sits at ``k * spacing`` and
``W1 = spacing * sum_k |CDF_old(k) - CDF_new(k)|``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.divergences.base import DIVERGENCES, Divergence
from marl_tr.divergences.integration import normal_quantile_nodes, standard_normal_cloud
from marl_tr.divergences.transport import (
    euclidean_w1_between_clouds,
    ordinal_wasserstein,
    wasserstein_1d_columns,
)
from marl_tr.validation import check_choice, check_int, check_positive

__all__ = [
    "Wasserstein1",
    "Wasserstein1Bound",
    "Wasserstein2",
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


@DIVERGENCES.register("w1", aliases=("wasserstein",))
class Wasserstein1(Divergence):
    """Wasserstein-1 distance between the old and the new policy (W-MATRPO, eqs. 2, 3, 16).

    Args:
        method: ``"closed_form"`` (default): the exact formulas of this module (Gaussians
            under ``ground="l1"`` or in 1-D; ordinal categoricals through CDFs), with an
            analytic ``grad_new``. ``"pot"``: POT's generic solvers, differentiable but
            slower: ``ot.wasserstein_1d`` on ``n_samples``-point quantile representations
            per dimension (1-D or ``ground="l1"``), ``ot.emd2`` between clouds of
            ``n_samples`` reparameterised samples ``mean + std * z`` with one seeded noise
            set ``z`` shared by old and new (``ground="l2"``, ``d > 1``), and
            ``ot.wasserstein_1d`` with the probabilities as weights for categoricals.
        ground: the ground cost between actions for diagonal Gaussians: ``"l1"`` (sum of
            per-dimension distances; W1 is then the sum of 1-D W1s) or ``"l2"``
            (Euclidean; no closed form when ``d > 1``, so it needs ``method="pot"``). Both
            coincide in 1-D.
        spacing: distance between neighbouring actions of a categorical (> 0).
        n_samples: quantile nodes or samples of the ``"pot"`` method (>= 2).
        seed: seed of the shared noise of the ``"pot"`` method with ``ground="l2"``.

    Flags: symmetric, a metric, not smooth at identity (``grad_new`` returns the zero
    subgradient there). ``closed_form`` is True on the class and, per instance, False when
    ``method="pot"``.

    Raises:
        ValueError: an unknown ``method`` or ``ground``, a non-positive ``spacing``,
            ``n_samples < 2``, a negative ``seed``; on call, ``ground="l2"`` with
            ``method="closed_form"`` and more than one action dimension.
    """

    supports_continuous = True
    supports_discrete = True
    symmetric = True
    is_metric = True
    closed_form = True
    supported_distributions = (DiagGaussian, Categorical)

    def __init__(
        self,
        method: str = "closed_form",
        ground: str = "l1",
        spacing: float = 1.0,
        n_samples: int = 256,
        seed: int = 0,
    ) -> None:
        self.method = check_choice("method", method, W1_METHODS)
        self.ground = check_choice("ground", ground, GROUND_COSTS)
        self.spacing = check_positive("spacing", spacing)
        self.n_samples = check_int("n_samples", n_samples, minimum=2)
        self.seed = check_int("seed", seed, minimum=0)
        self.closed_form = self.method == "closed_form"  # type: ignore[misc]

    def check_supported(self, dist: ActionDistribution) -> None:
        super().check_supported(dist)
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

    @property
    def autograd_free(self) -> bool:
        return self.method == "closed_form"  # the POT path differentiates by autograd

    def grad_new(self, old: ActionDistribution, new: ActionDistribution) -> Params:
        if self.method != "closed_form":
            return super().grad_new(old, new)
        self.check(old, new)
        if isinstance(new, Categorical):
            return (_ordinal_w1_grad_logits(old.probs, new.probs, self.spacing),)
        std_step = new.std - old.std
        _, slope, density = _folded_normal_mean(new.mean - old.mean, std_step)
        return (slope, torch.sign(std_step) * density)


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

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        return ((new.mean - old.mean).abs() + (new.std - old.std).abs()).sum(-1)

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
