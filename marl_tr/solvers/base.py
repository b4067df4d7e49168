"""The constrained-step interface: one agent's trust-region update, for ``R`` replicas.

Each iteration the loop hands a solver one ``AgentProblem`` per update position:

    maximise  E[ M_i * pi_theta(a_i|o_i) / pi_old(a_i|o_i) ]       (surrogate, eqs. 15-16)
    s.t.      E_s[ D(pi_old(.|s), pi_theta(.|s)) ] <= delta_i

where ``M_i`` is the advantage times the ratios of the agents updated before ``i`` (eq. 15).
A problem holds ``R`` independent replicas of it (``R = 1`` for an ordinary run): parameters
``[R, P]``, per-sample tensors with ``R*B`` replica-major rows, one radius per replica. Every
reduction is per replica and every decision (accept, reject, no step) is taken per replica,
so replicas never influence each other. The problem offers the surrogate, its gradient and
the divergence's curvature through the policy's ``Linearization``; the solver decides how to
step and ``finish`` writes the outcome.
"""

from __future__ import annotations

import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian
from marl_tr.divergences.base import Divergence
from marl_tr.policies import Linearization, Policy, per_state_rows
from marl_tr.registry import Plugin, Registry

__all__ = [
    "SOLVERS",
    "AgentProblem",
    "Evaluation",
    "Point",
    "Solver",
    "StepResult",
    "gradient_signal",
    "gradient_status",
    "numpy_dtype",
    "tensor_like",
    "to_numpy",
]


@dataclass
class Evaluation:
    """The surrogate and constraint at the policy's current parameters.

    Attributes:
        improvement: ``E[M (ratio - 1)]`` per replica ``[R]``, the surrogate gain.
        divergence: ``E_s D(old, new)`` per replica ``[R]``.
        log_prob: ``log pi_new(a_i)`` per sample ``[R*B]``.
        dist: the new distribution (detached).
    """

    improvement: np.ndarray
    divergence: np.ndarray
    log_prob: Tensor
    dist: ActionDistribution


@dataclass
class Point:
    """The problem's quantities at some parameters (see ``AgentProblem.at``).

    Attributes:
        params: ``[R, P]``.
        linearization: the policy's linearisation there.
        log_prob: ``log pi(a_i)`` per sample ``[R*B]``.
        divergence: ``E_s D(old, pi)`` per replica ``[R]``.
        finite: per replica ``[R]``: parameters and divergence are finite.
    """

    params: Tensor
    linearization: Linearization
    log_prob: Tensor
    divergence: np.ndarray
    finite: np.ndarray


@dataclass
class StepResult:
    """What one update position did, per replica (arrays ``[R]``).

    Attributes:
        moved: whether each replica's parameters changed.
        divergence: ``E_s D(old, new)`` actually reached (0 where not moved).
        improvement: surrogate gain actually reached (0 where not moved).
        new_log_prob: ``log pi_new(a_i)`` per sample ``[R*B]`` (the old one where not moved),
            for the eq. 15 factor.
        expected_improvement: the solver's model of the gain (NaN where it has none).
        reasons: why a replica did not move (``""`` where it moved).
        info: solver-specific values per replica (line-search steps, lambda, ...).
    """

    moved: np.ndarray
    divergence: np.ndarray
    improvement: np.ndarray
    new_log_prob: Tensor
    expected_improvement: np.ndarray
    reasons: list[str]
    info: dict[str, np.ndarray] = field(default_factory=dict)


class AgentProblem:
    """One agent's constrained surrogate problem on a batch, for each replica.

    Args:
        policy: the agent's policy (``R`` replicas), at the old parameters on entry.
        obs: observations ``[R*B, obs_dim]``.
        actions: this agent's actions ``[R*B, ...]``.
        weights: ``M_i`` per sample ``[R*B]`` (eq. 15).
        old_log_prob: ``log pi_old(a_i)`` ``[R*B]``.
        divergence: the trust-region divergence.
        radius: ``delta_i > 0`` per replica (a number or ``[R]``).
        action_values: the advantage of candidate actions of this agent (``ActionValues``
            from the run's critic with action values; ``None`` without one).
        generators: one torch generator per replica, for solvers that draw samples.
    """

    def __init__(
        self,
        policy: Policy,
        obs: Tensor,
        actions: Tensor,
        weights: Tensor,
        old_log_prob: Tensor,
        divergence: Divergence,
        radius: float | Sequence[float] | np.ndarray,
        action_values: Callable[[Tensor], Tensor] | None = None,
        generators: Sequence[torch.Generator] | None = None,
    ) -> None:
        self.action_values = action_values
        self.generators = generators
        self.policy = policy
        self.obs = obs
        self.actions = actions
        self.weights = weights
        self.old_log_prob = old_log_prob
        self.divergence = divergence
        self.replicas = policy.replicas
        self.batch_size = int(obs.shape[0]) // self.replicas
        radius = np.asarray(radius, dtype=np.float64)
        self.radius = (radius if radius.shape == (self.replicas,)
                       else np.full(self.replicas, float(radius)))
        self.old_params = policy.flat_parameters()
        self.old_linearization = policy.linearize_at(self.old_params, obs)
        self.old_dist = self.old_linearization.dist
        # M_i / B as a column: the per-sample factor of every surrogate gradient
        self._weight_column = (weights / self.batch_size).unsqueeze(1)
        self._descent_column: Tensor | None = None  # -M_i / B, made when first needed
        # a state-independent policy is the same in every state: one state per replica
        # stands for all of them wherever only the distribution matters
        self.state_independent = policy.state_independent
        if self.state_independent:
            self.state_obs = obs[::self.batch_size]
            state_dist = self.old_linearization.state_dist
            self.old_state_dist = (self._first_states(self.old_dist) if state_dist is None
                                   else state_dist)

    def per_replica_mean(self, values: Tensor) -> Tensor:
        """``[R*B] -> [R]``."""
        return values.view(self.replicas, self.batch_size).mean(1)

    def radius_tensor(self, like: Tensor) -> Tensor:
        return torch.as_tensor(self.radius, dtype=like.dtype)

    # -- surrogate ----------------------------------------------------------------------
    def surrogate_gradient(self, linearization: Linearization | None = None,
                           log_prob: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """``d/dtheta E[M (pi_theta / pi_old)]`` at the linearisation point, ``[R, P]``.

        At the old parameters (the default) the ratio is 1 and this is ``E[M grad log pi]``.
        ``mask`` (``[R*B]``, 0/1) keeps only some samples' terms (e.g. the unclipped ones).
        """
        lin = linearization or self.old_linearization
        scale = self._weight_column
        if log_prob is not None:
            scale = scale * torch.exp(log_prob - self.old_log_prob).unsqueeze(1)
        if mask is not None:
            scale = scale * mask.to(scale.dtype).unsqueeze(1)
        return lin.vjp(tuple(g * scale for g in lin.dist.log_prob_grad(self.actions)))

    def divergence_gradient(self, linearization: Linearization) -> Tensor:
        """``d/dtheta E_s D(old, pi_theta)`` at the linearisation point, ``[R, P]``."""
        grads = self.divergence.grad_new(self.old_dist, linearization.dist)
        return linearization.vjp(tuple(g / self.batch_size for g in grads))

    def lagrangian_gradient(self, linearization: Linearization, log_prob: Tensor,
                            multiplier: np.ndarray) -> Tensor:
        """``d/dtheta`` of eq. 16's Lagrangian ``-E[M ratio] + lambda E_s D(old, pi_theta)``
        at the linearisation point, ``[R, P]``, with ``log_prob = log pi_theta(a_i)``
        ``[R*B]`` and ``lambda >= 0`` per replica ``[R]``.

        Equals ``lambda * divergence_gradient(lin) - surrogate_gradient(lin, log_prob)``,
        with one Jacobian product for both terms.
        """
        if self._descent_column is None:
            self._descent_column = -self._weight_column
        scale = self._descent_column * torch.exp(log_prob - self.old_log_prob).unsqueeze(1)
        score = linearization.dist.log_prob_grad(self.actions)
        if not multiplier.any():
            return linearization.vjp(tuple(g * scale for g in score))
        penalty = self._per_row(multiplier / self.batch_size)
        grads = self.divergence.grad_new(self.old_dist, linearization.dist)
        return linearization.vjp(tuple(torch.addcmul(d * penalty, g, scale)
                                       for g, d in zip(score, grads)))

    def _per_row(self, values: np.ndarray) -> Tensor | float:
        """Per-replica values ``[R]`` as a factor of per-sample rows (``[R*B, 1]``; a number
        for one replica)."""
        if self.replicas == 1:
            return float(values[0])
        return per_state_rows(torch.from_numpy(values).to(self.weights.dtype).unsqueeze(1),
                              self.batch_size)

    def fisher_product(self, vector: Tensor, divergence: Divergence | None = None) -> Tensor:
        """``H v`` per replica, ``H`` the Hessian of ``E_s D(old, pi_theta)`` at the old
        parameters: ``J^T H_dist J v / B`` (exact at identity, where the gradient of D is 0).

        ``divergence`` (default: the trust region's) must be smooth at identity; a solver may
        take its direction from another divergence's curvature than the one it enforces
        (e.g. the Fisher/KL natural direction under a W1 constraint).
        """
        divergence = divergence or self.divergence
        lin = self.old_linearization
        tangent = divergence.hvp(self.old_dist, lin.jvp(vector))
        return lin.vjp(tangent) / self.batch_size

    def curvature_diagonal(self, divergence: Divergence | None = None) -> Tensor | None:
        """The diagonal of ``H`` (see ``fisher_product``) when ``H`` is diagonal, else ``None``.

        ``H = J^T H_dist J / B`` is diagonal when each parameter moves one distribution
        parameter of its own (a separable Jacobian) and the divergence's Hessian is diagonal
        in distribution parameters; then one product with the all-ones vector gives it.
        """
        divergence = divergence or self.divergence
        if self.old_linearization.separable and divergence.diagonal_hessian(self.old_dist):
            return self.fisher_product(torch.ones_like(self.old_params), divergence)
        return None

    def tangent_divergence(self, direction: Tensor) -> np.ndarray:
        """``lim_{e -> 0+} E_s D(old, old + e J d) / e`` per replica ``[R]``: the slope of the
        divergence along the linearised ray in distribution-parameter space.

        Exact for divergences positively homogeneous in the displacement of ``dist``'s
        parameters (``Divergence.homogeneous``), where ``D(old, old + e u) = e D(old, old + u)``
        for every ``e`` that keeps the parameters valid; it is measured at the largest such
        ``e <= 1`` of each state (``ActionDistribution.step_limit``).
        """
        tangent = self.old_linearization.jvp(direction)
        if self.state_independent:  # one state per replica stands for all
            base = self.old_state_dist
            tangent = tuple(u[::self.batch_size] for u in tangent)
        else:
            base = self.old_dist
        with torch.no_grad():
            scale = base.step_limit(tangent)  # [rows]
            column = scale.unsqueeze(1)
            moved = type(base).from_params(tuple(p + column * u for p, u in zip(base.params(),
                                                                               tangent)))
            values = self.divergence.compute(base, moved) / scale
            if not self.state_independent:
                values = self.per_replica_mean(values)
        return to_numpy(values)

    # -- evaluation and parameter moves -------------------------------------------------
    def evaluate(self) -> Evaluation:
        """Surrogate gain and divergence per replica at the current parameters."""
        with torch.no_grad():
            dist = self.policy.distribution(self.obs)
            return self.evaluation_of(dist, dist.log_prob(self.actions))

    def evaluation_of(self, dist: ActionDistribution, log_prob: Tensor,
                      divergence: np.ndarray | None = None) -> Evaluation:
        """The ``Evaluation`` of a new distribution and its log-probabilities ``[R*B]``
        (the divergence is computed unless given)."""
        with torch.no_grad():
            gains = self.gains(log_prob.view(self.replicas, 1, -1)).view(-1)
            if divergence is None:
                both = to_numpy(torch.stack((gains, self.mean_divergence(dist))))
                return Evaluation(both[0], both[1], log_prob, dist)
        return Evaluation(to_numpy(gains), divergence, log_prob, dist)

    def gains(self, log_prob: Tensor) -> Tensor:
        """Surrogate gains ``E[M (ratio - 1)]`` ``[R, K]`` of log-probabilities ``[R, K, B]``
        (``K`` parameter vectors per replica), as one batched product with ``M / B``;
        ``ratio - 1 = expm1(log-ratio)`` keeps small gains accurate."""
        replicas, b = self.replicas, self.batch_size
        return torch.bmm(torch.expm1(log_prob - self.old_log_prob.view(replicas, 1, b)),
                         self._weight_column.view(replicas, b, 1)).squeeze(2)

    def mean_divergence(self, dist: ActionDistribution,
                        state_dist: ActionDistribution | None = None) -> Tensor:
        """``E_s D(old, dist)`` per replica ``[R]`` for a distribution of ``R*B`` rows (for a
        state-independent policy: of its first state per replica, which stands for all;
        ``state_dist``, one row per replica, when the caller has it)."""
        if self.state_independent:
            if state_dist is None:
                state_dist = self._first_states(dist)
            return self.divergence.compute(self.old_state_dist, state_dist)
        return self.per_replica_mean(self.divergence.compute(self.old_dist, dist))

    def _first_states(self, dist: ActionDistribution) -> ActionDistribution:
        """Each replica's first row: ``R*B`` rows -> ``R`` rows (views)."""
        return type(dist).from_params(tuple(p[::self.batch_size] for p in dist.params()))

    def evaluate_candidates(self, candidates: Tensor) -> tuple[np.ndarray, np.ndarray, Tensor]:
        """Gains and divergences under ``K`` parameter vectors per replica ``[R, K, P]``.

        Returns:
            ``(improvements [R, K], divergences [R, K], log_probs [R, K, B])``; the policy's
            parameters are left unchanged.
        """
        replicas, k = candidates.shape[:2]
        b = self.batch_size
        with torch.no_grad():
            if self.state_independent:  # K distributions per replica, each at its B actions
                dist = self.policy.candidate_distributions(candidates, self.state_obs)
                log_prob = dist.grouped_log_prob(self.actions, replicas)
                old = self.old_state_dist.repeat_rows(k)
                divergences = self.divergence.compute(old, dist).view(replicas, k)
            else:  # K * B distributions per replica
                dist = self.policy.candidate_distributions(candidates, self.obs)
                rest = self.actions.shape[1:]
                actions = self.actions.view(replicas, 1, b, *rest).expand(replicas, k, b, *rest)
                log_prob = dist.log_prob(actions.reshape(-1, *rest)).view(replicas, k, b)
                old = type(self.old_dist).from_params(tuple(
                    p.view(replicas, 1, b, *p.shape[1:]).expand(replicas, k, b, *p.shape[1:])
                    .reshape(-1, *p.shape[1:]) for p in self.old_dist.params()
                ))
                divergences = self.divergence.compute(old, dist).view(replicas, k, b).mean(2)
            both = to_numpy(torch.stack((self.gains(log_prob), divergences)))
        return both[0], both[1], log_prob

    def at(self, params: Tensor) -> Point:
        """Linearisation, log-probabilities and divergence at ``params`` ``[R, P]`` (the policy
        may hold ``params`` afterwards; see ``Policy.linearize_at``)."""
        lin = self.policy.linearize_at(params, self.obs)
        log_prob = lin.dist.log_prob(self.actions)
        # one transfer: the divergence, and a sum that is finite only if every parameter is
        divergence = self.mean_divergence(lin.dist, lin.state_dist)
        checks = to_numpy(torch.stack((divergence, params.sum(1))))
        return Point(params, lin, log_prob, checks[0], np.isfinite(checks).all(0))

    def set_params(self, flat: Tensor) -> None:
        self.policy.set_flat_parameters(flat)

    def restore(self) -> None:
        """Put the old parameters back."""
        self.policy.set_flat_parameters(self.old_params)

    def finish(
        self,
        moved: np.ndarray,
        params: Tensor,
        divergence: np.ndarray,
        improvement: np.ndarray,
        log_prob: Tensor,
        reasons: Sequence[str],
        expected: np.ndarray | None = None,
        info: dict[str, np.ndarray] | None = None,
    ) -> StepResult:
        """Keep ``params`` where ``moved``, restore the old parameters elsewhere, and report.

        Args:
            moved: ``[R]`` bool.
            params: ``[R, P]`` parameters reached by the moved replicas.
            divergence / improvement: ``[R]`` values reached (ignored where not moved).
            log_prob: ``[R*B]`` new log-probabilities (ignored where not moved).
            reasons: ``[R]`` why each replica did not move.
        """
        moved = np.asarray(moved, dtype=bool)
        expected = (np.full(self.replicas, np.nan) if expected is None
                    else np.asarray(expected, dtype=np.float64))
        info = {} if info is None else info
        if moved.all():  # the usual case
            self.set_params(params)
            return StepResult(moved, np.asarray(divergence, dtype=np.float64),
                              np.asarray(improvement, dtype=np.float64), log_prob, expected,
                              [""] * self.replicas, info)
        if not moved.any():
            self.restore()
            new_log_prob = self.old_log_prob
        else:
            mask = torch.from_numpy(moved)
            self.set_params(torch.where(mask.unsqueeze(1), params, self.old_params))
            rows = mask.repeat_interleave(self.batch_size)
            new_log_prob = torch.where(rows, log_prob, self.old_log_prob)
        return StepResult(
            moved=moved,
            divergence=np.where(moved, divergence, 0.0),
            improvement=np.where(moved, improvement, 0.0),
            new_log_prob=new_log_prob,
            expected_improvement=expected,
            reasons=["" if m else (r or "no step") for m, r in zip(moved, reasons)],
            info=dict(info),
        )

    def no_step(self, reasons: Sequence[str] | str,
                info: dict[str, np.ndarray] | None = None) -> StepResult:
        """Restore the old parameters everywhere and report why nothing moved."""
        if isinstance(reasons, str):
            reasons = [reasons] * self.replicas
        zero = np.zeros(self.replicas)
        return self.finish(np.zeros(self.replicas, dtype=bool), self.old_params, zero, zero,
                           self.old_log_prob, reasons, info=info)


def to_numpy(values: Tensor) -> np.ndarray:
    """A float64 NumPy copy of a CPU tensor (cheaper than ``.double().numpy()``)."""
    return values.numpy().astype(np.float64)


@functools.cache
def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a torch dtype."""
    return torch.empty(0, dtype=dtype).numpy().dtype


def tensor_like(values: np.ndarray, like: Tensor) -> Tensor:
    """NumPy ``values`` as a CPU tensor of ``like``'s dtype (rounded as ``.to`` would, but
    cast in NumPy: cheaper for the small arrays of a line search)."""
    return torch.from_numpy(np.asarray(values).astype(numpy_dtype(like.dtype)))


def gradient_signal(problem: AgentProblem) -> np.ndarray | None:
    """Per replica, the p-value ``[R]`` of a score test of "this agent's surrogate gradient is
    sampling noise"; ``None`` where the test does not apply (see below).

    The gradient is ``g = (1/B) sum_b M_b grad log pi(a_b)``, and since the score has mean
    zero its expectation is ``Cov(M, score)``: without a dependence of ``M`` on the agent's
    action (an agent the reward ignores, a constant reward) there is nothing to follow, and
    a trust-region step, scaled to the radius whatever ``|g|``, is a random walk. The test
    is Rao's score test of ``Cov(M, score) = 0`` in the natural (Fisher) metric:

        ``T = B u^T F^-1 u / v``,  ``u = (1/B) sum_b (M_b - mean M) psi_b``,
        ``v = (1/B) sum_b (M_b - mean M)^2``,

    ``psi_b`` the score in the distribution's parameters and ``F`` its Fisher information.
    Given the weights, under the null ``u`` has covariance ``v F / B`` exactly, so ``T`` is
    ``u``'s natural norm in units of its own standard error and is asymptotically
    chi-squared with ``k`` degrees of freedom (``k = 2d`` for a ``d``-dimensional Gaussian,
    ``K - 1`` for a categorical over ``K`` actions of positive probability); the p-value is
    ``P(chi2_k > T)``. ``T`` does not depend on the scale of ``M`` or on the policy's
    parameterisation. A constant ``M`` (``v = 0``, or a spread at the level of rounding)
    gives ``T = 0``: its gradient is ``M mean(psi)``, pure noise. The test is asymptotic:
    at the paper's batch of 30, noise passes for signal at a rate of 0.020 at level 0.01
    and 0.060 at level 0.05 (measured with Gaussian weights; 0.010 and 0.050 at B = 300).

    Applies to state-independent policies (the paper's ``N(mu_i, sigma_i^2)``, free logits)
    with a ``DiagGaussian`` or ``Categorical`` distribution, where ``F`` is known in closed
    form and the parameter-space test equals this one. For policies whose distribution
    depends on the state (an MLP mean) ``F`` would have to be inverted in parameter space,
    where it has rank at most ``B k`` and no cheap inverse: ``None``, no test.

    The solvers that step along this gradient (``natural_gradient``, ``primal_dual``,
    ``ppo_clip``, ``exact_radius``) test it through ``gradient_status``; ``ot_dual`` follows
    its critic's action values instead and does not.

    Args:
        problem: the agent's problem (weights ``M`` ``[R*B]``, actions, old policy).

    Returns:
        ``[R]`` p-values in ``[0, 1]``, or ``None``.
    """
    score = _score_statistic(problem)
    if score is None:
        return None
    statistic, dof = score
    from scipy.special import gammaincc

    with np.errstate(invalid="ignore"):
        survival = gammaincc(np.maximum(dof, 1) / 2.0, statistic / 2.0)
    return np.where(dof > 0, survival, 1.0)  # dof 0: one action left, nothing to test


def _score_statistic(problem: AgentProblem) -> tuple[np.ndarray, np.ndarray] | None:
    """``(T [R], degrees of freedom [R])`` of ``gradient_signal``'s test, or ``None``.

    ``T = |S|^2 / Q`` with ``S = sum_b w_b phi_b`` and ``Q = sum_b w_b^2``, ``w`` the centred
    weights and ``phi`` the scores in coordinates where ``F = I`` (``z`` and
    ``(z^2 - 1) / sqrt 2`` per dimension of a Gaussian). In float64 NumPy: on ``B`` numbers
    per replica that is several times faster than torch, and no dtype under- or overflows.
    Every reduction runs along each replica's own row. Weights equal up to rounding give
    ``T = 0``.
    """
    if not problem.state_independent:
        return None
    state_dist = problem.old_state_dist  # one row per replica
    if not isinstance(state_dist, (DiagGaussian, Categorical)):
        return None
    replicas, batch = problem.replicas, problem.batch_size
    weights = to_numpy(problem.weights).reshape(replicas, batch)
    centred = weights - weights.mean(1, keepdims=True)
    square_sum = np.square(centred).sum(1)  # Q [R]
    # weights that differ only by rounding (all equal in exact arithmetic) carry no signal:
    # a spread below 16 rounding units of the largest weight (as in ``normalize``)
    rounding = 16.0 * torch.finfo(problem.weights.dtype).eps * np.abs(weights).max(1)
    spread = square_sum > batch * np.square(rounding)
    if isinstance(state_dist, DiagGaussian):
        actions = to_numpy(problem.actions).reshape(replicas, batch, -1)
        z = ((actions - to_numpy(state_dist.mean)[:, None, :])
             / to_numpy(state_dist.std)[:, None, :])  # [R, B, d]
        column = centred[:, :, None]
        natural = (np.square((column * z).sum(1)).sum(1)
                   + 0.5 * np.square((column * (np.square(z) - 1.0)).sum(1)).sum(1))
        dof = np.full(replicas, 2 * z.shape[2])
    else:  # F = diag(p) - p p^T; S sums to 0, so S^T F^+ S = sum_k S_k^2 / p_k
        probs = to_numpy(state_dist.probs)  # [R, K]
        actions = problem.actions.numpy().reshape(replicas, batch, 1)
        chosen = actions == np.arange(probs.shape[1])  # one-hot [R, B, K]
        scores = (centred[:, :, None] * chosen).sum(1) - probs * centred.sum(1, keepdims=True)
        support = probs > 0
        natural = np.where(support, np.square(scores) / np.where(support, probs, 1.0),
                           0.0).sum(1)
        dof = support.sum(1) - 1
    statistic = np.where(spread, natural / np.where(spread, square_sum, 1.0), 0.0)
    return statistic, dof


@functools.lru_cache(maxsize=256)
def _chi2_threshold(dof: int, level: float) -> float:
    """The ``1 - level`` quantile of the chi-squared distribution with ``dof`` degrees."""
    from scipy.special import gammainccinv

    return 2.0 * float(gammainccinv(dof / 2.0, level))


def gradient_status(
    gradient: Tensor, problem: AgentProblem | None = None, signal_level: float | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Per replica, whether its gradient ``[R, P]`` can drive a step (``[R]`` bool) and, where
    not, why (``""`` where it can). Warns if any replica's gradient is non-finite.

    A zero gradient means "zero gradient", a non-finite one "non-finite gradient" and, given
    a ``problem`` and a level, a gradient that does not stand out of its own sampling noise
    "no signal" (``gradient_signal``'s p-value above the level). The level is
    ``signal_level``, else the problem's ``signal_level`` attribute, which the training loop
    sets from ``TrainConfig.signal_level`` (default 0.01); ``None``: no test (also for a
    problem built outside the loop and given no level).
    """
    largest = to_numpy(gradient.abs().amax(1))  # NaN and inf propagate through max
    usable = (largest > 0.0) & np.isfinite(largest)
    finite = np.isfinite(largest)
    if not finite.all():
        warnings.warn(
            "non-finite surrogate gradient: no step taken for the replicas concerned",
            RuntimeWarning, stacklevel=3,
        )
    reasons = ["" if ok else "zero gradient" if fin else "non-finite gradient"
               for ok, fin in zip(usable, finite)]
    if signal_level is None and problem is not None:
        signal_level = getattr(problem, "signal_level", None)
    if problem is not None and signal_level and usable.any():
        score = _score_statistic(problem)
        if score is not None:  # p <= level, i.e. T >= the chi-squared quantile
            statistic, dof = score
            threshold = np.array([_chi2_threshold(int(k), float(signal_level)) if k > 0
                                  else np.inf for k in dof])
            noise = usable & ~(statistic >= threshold)
            usable = usable & ~noise
            reasons = ["no signal" if n else r for n, r in zip(noise, reasons)]
    return usable, reasons


class Solver(Plugin, ABC):
    """Takes one agent's constrained step (in every replica).

    Solvers with per-agent memory (a dual variable, optimiser moments) keep it per agent
    and per replica, and expose it through ``state_dict``/``load_state_dict``.

    Class attributes:
        info_keys: the keys of ``StepResult.info`` it reports (logged per agent).
    """

    info_keys: ClassVar[tuple[str, ...]] = ()
    #: Whether it needs the advantage of actions not taken (``AgentProblem.action_values``,
    #: from a critic with action values, e.g. ``critic="q"``).
    needs_action_values: ClassVar[bool] = False
    #: Whether ``step`` itself never uses autograd (it may rely on the divergence's and the
    #: policy's derivatives, which declare their own). False unless a solver says so.
    autograd_free: ClassVar[bool] = False

    def check_divergence(self, divergence: Divergence) -> None:
        """Raise ``ValueError`` (with the reason) if this solver cannot enforce ``divergence``."""

    def reset(self, n_agents: int, replicas: int = 1) -> None:
        """Called once at the start of a run."""

    @abstractmethod
    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        """Update ``problem.policy`` in place within the trust region; report the result.

        Args:
            problem: the update position's problem.
            agents: ``[R]`` the agent each replica updates at this position (for solvers
                that keep per-agent memory).
        """

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


SOLVERS: Registry[Solver] = Registry("solver", Solver)
