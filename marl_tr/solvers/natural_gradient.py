"""Natural-gradient trust-region step (TRPO/HATRPO) for any divergence smooth at identity.

Direction: conjugate gradient on ``(H + damping I) x = g`` with ``H`` the divergence's
Hessian at the old policy (the Fisher matrix for KL). Full step ``sqrt(2 delta / x^T H x) x``
(the quadratic model ``D ~ x^T H x / 2`` hits ``delta``), then a backtracking line search that
accepts with HARL's rule: ``D <= delta``, gain > 0 and gain / expected > ``accept_ratio``.
A zero or non-finite gradient or curvature means no step, never NaN parameters. Every
quantity is per replica; CG runs batched over replicas.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from marl_tr.divergences.base import Divergence
from marl_tr.solvers.base import (
    SOLVERS,
    AgentProblem,
    Solver,
    StepResult,
    gradient_status,
    to_numpy,
)
from marl_tr.solvers.line_search import Backtracking
from marl_tr.validation import check_int, check_non_negative, check_positive

__all__ = ["NaturalGradient", "conjugate_gradient", "natural_direction"]


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], rhs: Tensor, iterations: int = 10,
    tolerance: float = 1e-10,
) -> tuple[Tensor, Tensor]:
    """Approximately solve ``A_r x_r = b_r`` for every row ``r`` (symmetric positive definite
    ``A_r``, applied together by ``matvec``).

    Args:
        matvec: ``V [R, P] -> [A_r v_r]_r``.
        rhs: ``b`` ``[R, P]``.
        iterations: at most this many CG iterations.
        tolerance: a row stops once ``|r|^2 <= tolerance * |b|^2`` (relative squared residual);
            a row whose curvature ``p^T A p`` is not positive stops where it is.

    Returns:
        ``(x, r)``: the solutions and their residuals ``r = b - A x`` (so
        ``x^T A x = x^T (b - r)`` without another product).
    """
    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = rhs.clone()
    rr = (residual * residual).sum(1)
    stop = tolerance * rr
    active = rr > stop
    for _ in range(iterations):
        if not bool(active.any()):
            break
        a_dir = matvec(direction)
        curvature = (direction * a_dir).sum(1)
        good = active & (curvature > 0)  # also false for NaN
        alpha = torch.where(good, rr / curvature, torch.zeros_like(rr)).unsqueeze(1)
        x = x + alpha * direction
        residual = residual - alpha * a_dir
        rr_new = (residual * residual).sum(1)
        beta = torch.where(good, rr_new / rr, torch.zeros_like(rr)).unsqueeze(1)
        direction = residual + beta * direction
        rr = torch.where(good, rr_new, rr)
        active = good & (rr > stop)
    return x, residual


def natural_direction(
    problem: AgentProblem, gradient: Tensor, damping: float, iterations: int = 10,
    tolerance: float = 1e-10, divergence: Divergence | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``x = (H + damping I)^-1 g``, ``x^T (H + damping I) x`` and ``g^T x`` per replica
    (each ``[R]`` after ``x [R, P]``), ``H`` the Hessian of ``divergence`` (default: the
    problem's) at the old policy.

    By conjugate gradient; when ``H`` is diagonal (``AgentProblem.curvature_diagonal``) by
    exact division, the solution CG converges to (then the last two agree).
    """
    diagonal = problem.curvature_diagonal(divergence)
    if diagonal is not None:
        direction = gradient / (diagonal + damping)
        alignment = (direction * gradient).sum(1)
        return direction, alignment, alignment

    def matvec(v: Tensor) -> Tensor:
        return problem.fisher_product(v, divergence) + damping * v

    direction, residual = conjugate_gradient(matvec, gradient, iterations, tolerance)
    return (direction, (direction * (gradient - residual)).sum(1),
            (direction * gradient).sum(1))


@SOLVERS.register("natural_gradient", aliases=("ng", "trpo"))
class NaturalGradient(Solver):
    """Conjugate-gradient natural step with a backtracking line search (HATRPO's solver).

    Defaults follow the public HARL implementation of HATRPO.

    Args:
        cg_iterations: conjugate-gradient iterations (10).
        cg_damping: damping added to the curvature (0.1).
        cg_tolerance: CG stops when the squared residual falls below this fraction of the
            squared gradient norm (1e-10).
        line_search: backtrack from the full step (True) or take it unchecked (False).
        max_backtracks: line-search tries (10).
        backtrack_coef: step shrink factor per try (0.8).
        accept_ratio: minimum gain / expected gain for acceptance (0.5).
    """

    info_keys = ("backtracks", "step_fraction")
    autograd_free = True

    def __init__(
        self,
        cg_iterations: int = 10,
        cg_damping: float = 0.1,
        cg_tolerance: float = 1e-10,
        line_search: bool = True,
        max_backtracks: int = 10,
        backtrack_coef: float = 0.8,
        accept_ratio: float = 0.5,
    ) -> None:
        self.cg_iterations = check_int("cg_iterations", cg_iterations, minimum=1)
        self.cg_damping = check_non_negative("cg_damping", cg_damping)
        self.cg_tolerance = check_positive("cg_tolerance", cg_tolerance)
        self._backtracking = Backtracking(line_search, max_backtracks, backtrack_coef,
                                          accept_ratio)
        self.line_search, self.max_backtracks = line_search, max_backtracks
        self.backtrack_coef, self.accept_ratio = backtrack_coef, accept_ratio
        self._fractions = self.fractions()

    def check_divergence(self, divergence: Divergence) -> None:
        if not divergence.smooth_at_identity:
            raise ValueError(
                f"solver 'natural_gradient' needs a divergence that is smooth at identity "
                f"(it steps along H^-1 g with H the divergence's Hessian), but "
                f"{divergence.spec()!r} is not; use solver 'exact_radius' (holds any divergence "
                "at its radius) or 'primal_dual' (eqs. 16-18) for it"
            )

    def natural_direction(self, problem: AgentProblem,
                          gradient: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``natural_direction`` with this solver's CG settings and the trust region's
        divergence."""
        return natural_direction(problem, gradient, self.cg_damping, self.cg_iterations,
                                 self.cg_tolerance)

    def fractions(self) -> np.ndarray:
        """The line search's step fractions ``coef^0, coef^1, ...``."""
        return self._backtracking.fractions

    def acceptable(self, gains: np.ndarray, divergences: np.ndarray, expected: np.ndarray,
                   radius: np.ndarray) -> np.ndarray:
        """HARL's acceptance rule, elementwise (``line_search.Backtracking``)."""
        return self._backtracking.acceptable(gains, divergences, expected, radius)

    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        gradient = problem.surrogate_gradient()
        active, reasons = gradient_status(gradient, problem)
        if not active.any():
            return problem.no_step(reasons)
        if not active.all():  # no step, and no NaN spreading, for the others
            gradient = torch.where(torch.from_numpy(active).unsqueeze(1), gradient,
                                   torch.zeros_like(gradient))
        direction, curvature, alignment = self.natural_direction(problem, gradient)
        # the quadratic model D ~ x^T H x / 2 reaches delta at sqrt(2 delta / x^T H x) x, where
        # it expects the gain sqrt(2 delta / x^T H x) g^T x
        curvature, alignment = to_numpy(torch.stack((curvature, alignment)))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.sqrt(2.0 * problem.radius / curvature)
            expected = scale * alignment
        good_curvature = (curvature > 0) & np.isfinite(curvature)
        usable = good_curvature & (expected > 0) & np.isfinite(expected)
        if not (active & usable).all():
            reasons = [r or ("" if ok else "no expected improvement" if good
                             else "non-positive curvature")
                       for r, ok, good in zip(reasons, usable, good_curvature)]
            active = active & usable
            if not active.any():
                return problem.no_step(reasons)
            scale = np.where(active, scale, 0.0)
            expected = np.where(active, expected, np.nan)  # no model where no step is tried
        full_step = torch.from_numpy(scale).to(gradient.dtype).unsqueeze(1) * direction
        if not self.line_search:
            return self._full_step(problem, full_step, active, reasons, expected)
        if problem.policy.batched_candidates:
            return self._batched_search(problem, full_step, active, reasons, expected)
        return self._sequential_search(problem, full_step, active, reasons, expected)

    def _full_step(self, problem: AgentProblem, full_step: Tensor, active: np.ndarray,
                   reasons: list[str], expected: np.ndarray) -> StepResult:
        params = problem.old_params + full_step
        problem.set_params(params)
        result = problem.evaluate()
        finite = np.isfinite(result.improvement) & np.isfinite(result.divergence)
        moved = active & finite
        reasons = [r or ("" if ok else "non-finite step") for r, ok in zip(reasons, finite)]
        return problem.finish(moved, params, result.divergence, result.improvement,
                              result.log_prob, reasons, expected,
                              {"backtracks": np.where(active, 0.0, np.nan),
                               "step_fraction": np.where(active, 1.0, np.nan)})

    def _batched_search(self, problem: AgentProblem, full_step: Tensor, active: np.ndarray,
                        reasons: list[str], expected: np.ndarray) -> StepResult:
        """Every backtracking candidate in one batched pass; per replica the first accepted
        one wins, exactly as in the sequential search."""
        fractions = self._fractions
        column = self._fraction_column(full_step.dtype)
        candidates = problem.old_params.unsqueeze(1) + column * full_step.unsqueeze(1)
        gains, divergences, log_probs = problem.evaluate_candidates(candidates)
        accept = self.acceptable(gains, divergences, expected[:, None] * fractions,
                                 problem.radius[:, None])
        if not active.all():
            accept &= active[:, None]
        rows = np.arange(problem.replicas)
        first = accept.argmax(1)
        moved = accept[rows, first]
        # the chosen candidate of replica r is row r * K + first[r] of the flattened tensors
        flat = torch.from_numpy(first + rows * len(fractions))
        params = candidates.flatten(0, 1).index_select(0, flat)
        log_prob = log_probs.flatten(0, 1).index_select(0, flat).view(-1)
        return self._searched(problem, moved, params, divergences[rows, first],
                              gains[rows, first], log_prob, reasons, expected, first, active)

    def _fraction_column(self, dtype: torch.dtype) -> Tensor:
        """The fractions as a ``[1, K, 1]`` tensor (cached per dtype)."""
        cache = self.__dict__.setdefault("_column_cache", {})
        if dtype not in cache:
            cache[dtype] = torch.from_numpy(self._fractions).to(dtype).view(1, -1, 1)
        return cache[dtype]

    def _sequential_search(self, problem: AgentProblem, full_step: Tensor, active: np.ndarray,
                           reasons: list[str], expected: np.ndarray) -> StepResult:
        """Backtrack step by step (one forward pass each), replicas in lockstep; a replica
        stops searching at its first accepted fraction."""
        replicas = problem.replicas
        searching = active.copy()
        moved = np.zeros(replicas, dtype=bool)
        first = np.zeros(replicas, dtype=np.int64)
        chosen = problem.old_params.clone()
        divergence, gain = np.zeros(replicas), np.zeros(replicas)
        log_prob = problem.old_log_prob.clone()
        rows_per_replica = problem.batch_size
        for attempt, fraction in enumerate(self._fractions):
            candidate = problem.old_params + fraction * full_step
            problem.set_params(torch.where(torch.from_numpy(searching).unsqueeze(1),
                                           candidate, chosen))
            result = problem.evaluate()
            accepted = searching & self.acceptable(result.improvement, result.divergence,
                                                   expected * fraction, problem.radius)
            if accepted.any():
                mask = torch.from_numpy(accepted)
                chosen = torch.where(mask.unsqueeze(1), candidate, chosen)
                log_prob = torch.where(mask.repeat_interleave(rows_per_replica),
                                       result.log_prob, log_prob)
                divergence = np.where(accepted, result.divergence, divergence)
                gain = np.where(accepted, result.improvement, gain)
                first = np.where(accepted, attempt, first)
                moved |= accepted
                searching &= ~accepted
            if not searching.any():
                break
        return self._searched(problem, moved, chosen, divergence, gain, log_prob, reasons,
                              expected, first, active)

    def _searched(self, problem: AgentProblem, moved: np.ndarray, params: Tensor,
                  divergence: np.ndarray, gain: np.ndarray, log_prob: Tensor,
                  reasons: list[str], expected: np.ndarray, first: np.ndarray,
                  searched: np.ndarray) -> StepResult:
        fraction = self._fractions[first]
        if moved.all():  # the usual case: every replica accepted a candidate
            return problem.finish(moved, params, divergence, gain, log_prob, reasons,
                                  expected * fraction,
                                  {"backtracks": first.astype(np.float64),
                                   "step_fraction": fraction})
        reasons = [r or ("" if ok else "line search failed") for r, ok in zip(reasons, moved)]
        tries = np.where(searched, float(self.max_backtracks), np.nan)  # NaN: no search ran
        backtracks = np.where(moved, first, tries).astype(np.float64)
        fraction = np.where(moved, fraction, np.where(searched, 0.0, np.nan))
        return problem.finish(moved, params, divergence, gain, log_prob, reasons,
                              expected * fraction,
                              {"backtracks": backtracks, "step_fraction": fraction})
