"""A trust-region step at the exact radius, for any divergence (registry name ``exact_radius``).

Per agent and replica:

1. **Direction** ``d``: the surrogate gradient ``g`` (``direction="gradient"``) or the
   Fisher/KL natural direction ``(F + damping I)^-1 g`` (``direction="natural"``), whatever
   divergence the constraint uses.
2. **Length**: the ``t`` at which the *measured* constraint ``E_s D(old, theta_old + t d)``
   reaches the radius, within ``[(1 - rtol) delta, delta]`` (``line_search.radius_step``).
   The first trial, aimed at the band's middle ``(1 - rtol / 2) delta``, is a closed form
   where one exists: ``delta / D'(0)`` for divergences
   positively homogeneous in the step (W1, the paper's eq. 31 and W2 for Gaussians; exact
   when the policy's map is linear along the ray, e.g. a mean-only step), the quadratic model
   ``sqrt(2 delta / d^T H d)`` for divergences smooth at identity (KL, JS, Hellinger), else
   the slope measured along the linearised ray.
3. **Acceptance**: HARL's rule at that length (``D <= delta``, gain > 0 and gain / expected
   > ``accept_ratio``, with the linear model ``expected = t g^T d``), backtracking by
   ``backtrack_coef`` when it fails.

Guarantees: no accepted step has a measured divergence above its radius (the same
measurement the loop logs); a zero or non-finite gradient, or no feasible length, means no
step. Unlike ``natural_gradient`` it needs nothing from the divergence but its value, so W1,
the eq. 31 bound, TV and a user's divergence are held at their radius as KL is.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from marl_tr.divergences import DIVERGENCES
from marl_tr.solvers.base import (
    SOLVERS,
    AgentProblem,
    Solver,
    StepResult,
    gradient_status,
    tensor_like,
    to_numpy,
)
from marl_tr.solvers.line_search import Backtracking, RayPoint, radius_step
from marl_tr.solvers.natural_gradient import natural_direction
from marl_tr.validation import (
    check_choice,
    check_in_range,
    check_int,
    check_non_negative,
    check_positive,
)

__all__ = ["DIRECTIONS", "ExactRadius"]

#: Search directions of ``exact_radius``.
DIRECTIONS = ("gradient", "natural")


@SOLVERS.register("exact_radius", aliases=("exact",))
class ExactRadius(Solver):
    """Steps to the measured radius of any divergence, then HARL's acceptance test.

    Args:
        direction: ``"gradient"`` (the surrogate gradient) or ``"natural"`` (the Fisher/KL
            natural direction, by conjugate gradient or exactly where the curvature is
            diagonal).
        rtol: the accepted band below the radius: ``(1 - rtol) delta <= D <= delta``.
        max_rounds: at most this many batched evaluations to find the length.
        line_search: backtrack when the step at the radius fails the acceptance test
            (False: take it whenever it is inside the radius and finite).
        max_backtracks: acceptance tries, the first at the radius (10).
        backtrack_coef: step shrink factor per try (0.8).
        accept_ratio: minimum gain / expected gain (0.5).
        cg_iterations / cg_damping / cg_tolerance: the natural direction's conjugate gradient.
    """

    info_keys = ("step_length", "search_rounds", "backtracks")
    autograd_free = True

    def __init__(
        self,
        direction: str = "gradient",
        rtol: float = 1e-3,
        max_rounds: int = 30,
        line_search: bool = True,
        max_backtracks: int = 10,
        backtrack_coef: float = 0.8,
        accept_ratio: float = 0.5,
        cg_iterations: int = 10,
        cg_damping: float = 0.1,
        cg_tolerance: float = 1e-10,
    ) -> None:
        self.direction = check_choice("direction", direction, DIRECTIONS)
        self.rtol = check_in_range("rtol", rtol, 0.0, 1.0, low_open=True, high_open=True)
        self.max_rounds = check_int("max_rounds", max_rounds, minimum=1)
        self._backtracking = Backtracking(line_search, max_backtracks, backtrack_coef,
                                          accept_ratio)
        self.line_search, self.max_backtracks = line_search, max_backtracks
        self.backtrack_coef, self.accept_ratio = backtrack_coef, accept_ratio
        self.cg_iterations = check_int("cg_iterations", cg_iterations, minimum=1)
        self.cg_damping = check_non_negative("cg_damping", cg_damping)
        self.cg_tolerance = check_positive("cg_tolerance", cg_tolerance)
        self._fisher = DIVERGENCES.build("kl") if direction == "natural" else None
        self._fractions = self._backtracking.fractions  # 1, c, c^2, ...
        self.acceptable = self._backtracking.acceptable  # HARL's rule, as natural_gradient

    def search_direction(self, problem: AgentProblem, gradient: Tensor) -> tuple[Tensor, Tensor]:
        """``d [R, P]`` and ``g^T d [R]``."""
        if self.direction == "natural":
            direction, _, alignment = natural_direction(
                problem, gradient, self.cg_damping, self.cg_iterations, self.cg_tolerance,
                self._fisher)
            return direction, alignment
        return gradient, (gradient * gradient).sum(1)

    @staticmethod
    def initial_length(problem: AgentProblem, direction: Tensor,
                       aim: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """The first trial length ``[R]``, at which the model of ``D`` reaches ``aim``
        (default: the radius), and the assumed order of ``D ~ c t^p``."""
        aim = problem.radius if aim is None else aim
        divergence = problem.divergence
        if divergence.homogeneous(problem.old_dist) or not divergence.smooth_at_identity:
            slope = problem.tangent_divergence(direction)
            with np.errstate(divide="ignore", invalid="ignore"):
                return aim / slope, 1.0
        curvature = to_numpy((direction * problem.fisher_product(direction)).sum(1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(2.0 * aim / curvature), 2.0

    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        gradient = problem.surrogate_gradient()
        active, reasons = gradient_status(gradient, problem)
        if not active.any():
            return problem.no_step(reasons)
        if not active.all():  # no step, and no NaN spreading, for the others
            gradient = torch.where(torch.from_numpy(active).unsqueeze(1), gradient,
                                   torch.zeros_like(gradient))
        direction, alignment = self.search_direction(problem, gradient)
        alignment = to_numpy(alignment)
        usable = np.isfinite(alignment) & (alignment > 0)
        # aim inside the band: a closed form aimed at the radius itself lands a rounding
        # error above it about as often as below (float32 policies: ~1e-7), costing a round
        initial, order = self.initial_length(problem, direction,
                                             problem.radius * (1.0 - 0.5 * self.rtol))
        usable &= np.isfinite(initial) & (initial > 0)
        if not (active & usable).all():
            reasons = [r or ("" if ok else "no usable direction")
                       for r, ok in zip(reasons, usable)]
            active = active & usable
            if not active.any():
                return problem.no_step(reasons)
        # with candidates that batch, each round also measures the line search's lengths
        fractions = (self._fractions if self.line_search and problem.policy.batched_candidates
                     else self._fractions[:1])
        point = radius_step(problem, direction, initial, order=order, active=active,
                            rtol=self.rtol, max_rounds=self.max_rounds, fractions=fractions)
        return self._accept(problem, direction, alignment, point, active, reasons)

    def _accept(self, problem: AgentProblem, direction: Tensor, alignment: np.ndarray,
                point: RayPoint, active: np.ndarray, reasons: list[str]) -> StepResult:
        """HARL's acceptance at the radius's length ``t*``, then at ``coef^j t*``: the first
        length that passes (measured in the search's last round where it has them)."""
        replicas, rows = problem.replicas, np.arange(problem.replicas)
        t, divergence, gain, log_prob = point.t, point.divergence, point.gain, point.log_prob
        feasible = active & (t > 0)
        if not self.line_search:  # the length at the radius, if its gain is finite
            moved = feasible & np.isfinite(gain)
            backtracks = np.where(moved, 0.0, np.nan)
        else:
            moved = np.zeros(replicas, dtype=bool)
            backtracks = np.full(replicas, np.nan)
            # where t* was the last round's first length, that round measured every try
            covered = point.hit & (point.lengths[:, 0] == t) & (point.lengths.shape[1] > 1)
            lengths, gains, divergences, log_probs = (point.lengths, point.gains,
                                                      point.divergences, point.log_probs)
            for attempt in range(2):  # the search's last round, then a backtracking pass
                with np.errstate(invalid="ignore"):
                    ok = ((feasible & ~moved)[:, None] & (lengths <= t[:, None])
                          & self.acceptable(gains, divergences, lengths * alignment[:, None],
                                            problem.radius[:, None]))
                first = ok.argmax(1)
                found = ok[rows, first]
                if found.any():
                    chosen = lengths[rows, first]
                    start = (lengths >= t[:, None]).sum(1) - 1  # t*'s column
                    backtracks = np.where(found, first - start, backtracks)
                    t = np.where(found, chosen, t)
                    divergence = np.where(found, divergences[rows, first], divergence)
                    gain = np.where(found, gains[rows, first], gain)
                    flat = torch.from_numpy(first + rows * lengths.shape[1])
                    picked = log_probs.flatten(0, 1).index_select(0, flat).reshape(-1)
                    log_prob = picked if found.all() else torch.where(
                        torch.from_numpy(found).repeat_interleave(problem.batch_size), picked,
                        log_prob)
                    moved |= found
                retry = feasible & ~moved & ~covered
                if attempt or not retry.any():
                    break
                lengths = t[:, None] * self._fractions  # every length of a full search
                scale = tensor_like(lengths, direction).unsqueeze(2)
                candidates = problem.old_params.unsqueeze(1) + scale * direction.unsqueeze(1)
                gains, divergences, log_probs = problem.evaluate_candidates(candidates)
        reasons = [r or ("" if ok else "line search failed" if f else "no feasible length")
                   for r, ok, f in zip(reasons, moved, feasible | ~active)]
        backtracks = np.where(moved, backtracks,
                              np.where(feasible, float(self.max_backtracks), np.nan))
        step = tensor_like(np.where(moved, t, 0.0), direction).unsqueeze(1)
        params = problem.old_params + step * direction
        return problem.finish(
            moved, params, divergence, gain, log_prob, reasons,
            np.where(moved, t * alignment, np.nan),
            {"step_length": np.where(active, np.where(moved, t, 0.0), np.nan),
             "search_rounds": np.where(active, point.rounds, np.nan),
             "backtracks": backtracks},
        )
