"""The constrained-step interface: one agent's trust-region update.

Each iteration the loop hands a solver one ``AgentProblem`` per agent, in the update order:

    maximise  E[ M_i * pi_theta(a_i|o_i) / pi_old(a_i|o_i) ]       (surrogate, eq. 15-16)
    s.t.      E_s[ D(pi_old(.|s), pi_theta(.|s)) ] <= delta_i

where ``M_i`` is the advantage times the ratios of the agents updated before ``i`` (eq. 15).
The problem object offers the surrogate, its gradient and the divergence's curvature, all
through the policy's ``Linearization`` (see ``marl_tr.policies``); the solver decides how to
step and writes the new parameters into the policy.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution
from marl_tr.divergences.base import Divergence
from marl_tr.policies import Linearization, Policy
from marl_tr.registry import Plugin, Registry

__all__ = ["SOLVERS", "AgentProblem", "Evaluation", "Solver", "StepResult"]


@dataclass
class Evaluation:
    """The surrogate and constraint at the policy's current parameters.

    Attributes:
        improvement: ``E[M (ratio - 1)]``, the surrogate gain over the old policy.
        divergence: ``E_s D(old, new)``.
        log_prob: ``log pi_new(a_i)`` per sample ``[B]``.
        dist: the new distribution (detached).
    """

    improvement: float
    divergence: float
    log_prob: Tensor
    dist: ActionDistribution


@dataclass
class StepResult:
    """What one agent's update did.

    Attributes:
        moved: whether the parameters changed.
        divergence: ``E_s D(old, new)`` actually reached (0 when not moved).
        improvement: surrogate gain actually reached.
        expected_improvement: the solver's model of the gain (first order), if any.
        new_log_prob: ``log pi_new(a_i)`` per sample ``[B]``, for the eq. 15 factor.
        reason: why no step was taken ("" when moved).
        info: solver-specific scalars (line-search steps, lambda, inner steps, ...).
    """

    moved: bool
    divergence: float
    improvement: float
    new_log_prob: Tensor
    expected_improvement: float = float("nan")
    reason: str = ""
    info: dict[str, float] = field(default_factory=dict)


class AgentProblem:
    """One agent's constrained surrogate problem on a batch.

    Args:
        policy: the agent's policy, at the old parameters on entry.
        obs: observations ``[B, obs_dim]``.
        actions: the batch's actions of this agent ``[B, ...]``.
        weights: ``M_i`` per sample ``[B]`` (eq. 15).
        old_log_prob: ``log pi_old(a_i)`` ``[B]``.
        divergence: the trust-region divergence.
        radius: ``delta_i > 0``.
    """

    def __init__(
        self,
        policy: Policy,
        obs: Tensor,
        actions: Tensor,
        weights: Tensor,
        old_log_prob: Tensor,
        divergence: Divergence,
        radius: float,
    ) -> None:
        self.policy = policy
        self.obs = obs
        self.actions = actions
        self.weights = weights
        self.old_log_prob = old_log_prob
        self.divergence = divergence
        self.radius = float(radius)
        self.batch_size = int(obs.shape[0])
        self.old_params = policy.flat_parameters()
        self.old_linearization = policy.linearize(obs)
        self.old_dist = self.old_linearization.dist
        # M_i / B as a column: the per-sample factor of every surrogate gradient
        self._weight_column = (weights / self.batch_size).unsqueeze(1)

    # -- surrogate ----------------------------------------------------------------------
    def surrogate_gradient(self, linearization: Linearization | None = None,
                           log_prob: Tensor | None = None) -> Tensor:
        """``d/dtheta E[M (pi_theta / pi_old)]`` at the linearisation point, ``[P]``.

        At the old parameters (the default) the ratio is 1 and this is ``E[M grad log pi]``.
        """
        lin = linearization or self.old_linearization
        scale = self._weight_column
        if log_prob is not None:
            scale = scale * torch.exp(log_prob - self.old_log_prob).unsqueeze(1)
        return lin.vjp(tuple(g * scale for g in lin.dist.log_prob_grad(self.actions)))

    def divergence_gradient(self, linearization: Linearization) -> Tensor:
        """``d/dtheta E_s D(old, pi_theta)`` at the linearisation point, ``[P]``."""
        grads = self.divergence.grad_new(self.old_dist, linearization.dist)
        return linearization.vjp(tuple(g / self.batch_size for g in grads))

    def fisher_product(self, vector: Tensor) -> Tensor:
        """``H v`` with ``H`` the Hessian of ``E_s D(old, pi_theta)`` at the old parameters.

        Computed as ``J^T H_dist J v / B`` (exact at identity, where the gradient of D is 0).
        """
        lin = self.old_linearization
        tangent = self.divergence.hvp(self.old_dist, lin.jvp(vector))
        return lin.vjp(tangent) / self.batch_size

    def curvature_diagonal(self) -> Tensor | None:
        """The diagonal of ``H`` (see ``fisher_product``) when ``H`` is diagonal, else ``None``.

        ``H = J^T H_dist J / B`` is diagonal when each parameter moves one distribution
        parameter of its own (a separable Jacobian) and the divergence's Hessian is diagonal
        in distribution parameters; then one product with the all-ones vector gives it.
        """
        if self.old_linearization.separable and self.divergence.diagonal_hessian(self.old_dist):
            return self.fisher_product(torch.ones_like(self.old_params))
        return None

    # -- evaluation and parameter moves -------------------------------------------------
    def evaluate(self, with_divergence: bool = True) -> Evaluation:
        """Surrogate gain (and divergence, unless skipped) at the current parameters."""
        with torch.no_grad():
            dist = self.policy.distribution(self.obs)
            log_prob = dist.log_prob(self.actions)
            ratio = torch.exp(log_prob - self.old_log_prob)
            improvement = float((self.weights * (ratio - 1.0)).mean())
        result = Evaluation(improvement, math.nan, log_prob, dist)
        return self.add_divergence(result) if with_divergence else result

    def add_divergence(self, result: Evaluation) -> Evaluation:
        """Fill ``result.divergence`` (``E_s D(old, new)``) if it is not computed yet."""
        if math.isnan(result.divergence):
            with torch.no_grad():
                result.divergence = float(
                    self.divergence.compute(self.old_dist, result.dist).mean()
                )
        return result

    def evaluate_candidates(self, candidates: Tensor) -> tuple[list[float], list[float], Tensor]:
        """Gains and divergences under ``K`` parameter vectors ``[K, P]`` at once.

        Returns:
            ``(improvements [K], divergences [K], log_probs [K, B])``; the policy's
            parameters are left unchanged.
        """
        k, b = candidates.shape[0], self.batch_size
        with torch.no_grad():
            dist = self.policy.candidate_distributions(candidates, self.obs)
            repeats = (k, *([1] * (self.actions.dim() - 1)))
            log_prob = dist.log_prob(self.actions.repeat(repeats)).view(k, b)
            ratio = torch.exp(log_prob - self.old_log_prob)
            improvements = (self.weights * (ratio - 1.0)).mean(1)
            divergences = self.divergence.compute(self.old_dist.tile(k), dist).view(k, b).mean(1)
        return improvements.tolist(), divergences.tolist(), log_prob

    def set_params(self, flat: Tensor) -> None:
        self.policy.set_flat_parameters(flat)

    def restore(self) -> None:
        """Put the old parameters back."""
        self.policy.set_flat_parameters(self.old_params)

    def no_step(self, reason: str) -> StepResult:
        """Restore the old parameters and report why nothing moved."""
        self.restore()
        return StepResult(
            moved=False, divergence=0.0, improvement=0.0, new_log_prob=self.old_log_prob,
            reason=reason,
        )


def is_usable_gradient(gradient: Tensor) -> str:
    """``""`` if ``gradient`` can drive a step, else the reason (zero or non-finite)."""
    largest = float(gradient.abs().max())  # NaN and inf propagate through max
    if not math.isfinite(largest):
        warnings.warn(
            "non-finite surrogate gradient: no step taken for this agent",
            RuntimeWarning, stacklevel=3,
        )
        return "non-finite gradient"
    if largest == 0.0:
        return "zero gradient"
    return ""


class Solver(Plugin, ABC):
    """Takes one agent's constrained step.

    Solvers with per-agent memory (a dual variable, optimiser moments) keep it keyed by
    agent index and expose it through ``state_dict``/``load_state_dict``.

    Class attributes:
        info_keys: the keys of ``StepResult.info`` it reports (logged per agent).
    """

    info_keys: ClassVar[tuple[str, ...]] = ()

    def check_divergence(self, divergence: Divergence) -> None:
        """Raise ``ValueError`` (with the reason) if this solver cannot enforce ``divergence``."""

    def reset(self, n_agents: int) -> None:
        """Called once at the start of a run."""

    @abstractmethod
    def step(self, problem: AgentProblem, agent: int) -> StepResult:
        """Update ``problem.policy`` in place within the trust region; report the result."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


SOLVERS: Registry[Solver] = Registry("solver", Solver)
