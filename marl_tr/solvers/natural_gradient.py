"""Natural-gradient trust-region step (TRPO/HATRPO) for any divergence smooth at identity.

Direction: conjugate gradient on ``(H + damping I) x = g`` with ``H`` the divergence's
Hessian at the old policy (the Fisher matrix for KL). Full step ``sqrt(2 delta / x^T H x) x``
(the quadratic model ``D ~ x^T H x / 2`` hits ``delta``), then a backtracking line search that
accepts with HARL's rule: ``D <= delta``, gain > 0 and gain / expected > ``accept_ratio``.
A zero or non-finite gradient or curvature means no step, never NaN parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from marl_tr.divergences.base import Divergence
from marl_tr.solvers.base import SOLVERS, AgentProblem, Solver, StepResult, is_usable_gradient
from marl_tr.validation import check_in_range, check_int, check_non_negative, check_positive

__all__ = ["NaturalGradient", "conjugate_gradient"]


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], rhs: Tensor, iterations: int = 10,
    tolerance: float = 1e-10,
) -> tuple[Tensor, Tensor]:
    """Approximately solve ``A x = b`` for a symmetric positive definite ``A``.

    Args:
        matvec: ``v -> A v``.
        rhs: ``b`` ``[P]``.
        iterations: at most this many CG iterations.
        tolerance: stop once ``|r|^2 <= tolerance * |b|^2`` (relative squared residual).

    Returns:
        ``(x, r)``: the solution and its residual ``r = b - A x`` (so ``x^T A x = x^T (b - r)``
        without another product).
    """
    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = rhs.clone()
    rr = float(residual @ residual)
    stop = tolerance * rr
    for _ in range(iterations):
        if rr <= stop:
            break
        a_dir = matvec(direction)
        curvature = float(direction @ a_dir)
        if not curvature > 0:  # also catches NaN
            break
        alpha = rr / curvature
        x = x + alpha * direction
        residual = residual - alpha * a_dir
        rr_new = float(residual @ residual)
        direction = residual + (rr_new / rr) * direction
        rr = rr_new
    return x, residual


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
        if not isinstance(line_search, bool):
            raise ValueError(f"line_search must be true or false, got {line_search!r}")
        self.line_search = line_search
        self.max_backtracks = check_int("max_backtracks", max_backtracks, minimum=1)
        self.backtrack_coef = check_in_range(
            "backtrack_coef", backtrack_coef, 0.0, 1.0, low_open=True, high_open=True
        )
        self.accept_ratio = check_in_range("accept_ratio", accept_ratio, 0.0, 1.0)

    def check_divergence(self, divergence: Divergence) -> None:
        if not divergence.smooth_at_identity:
            raise ValueError(
                f"solver 'natural_gradient' needs a divergence that is smooth at identity "
                f"(it steps along H^-1 g with H the divergence's Hessian), but "
                f"{divergence.spec()!r} is not; use solver 'primal_dual' for it"
            )

    def natural_direction(self, problem: AgentProblem, gradient: Tensor) -> tuple[Tensor, float]:
        """``x = (H + damping I)^-1 g`` and ``x^T (H + damping I) x``.

        By conjugate gradient; when ``H`` is diagonal (``AgentProblem.curvature_diagonal``)
        by exact division, the solution CG converges to.
        """
        damping = self.cg_damping
        diagonal = problem.curvature_diagonal()
        if diagonal is not None:
            direction = gradient / (diagonal + damping)
            return direction, float(direction @ gradient)

        def matvec(v: Tensor) -> Tensor:
            return problem.fisher_product(v) + damping * v

        direction, residual = conjugate_gradient(
            matvec, gradient, self.cg_iterations, self.cg_tolerance
        )
        return direction, float(direction @ (gradient - residual))

    def _fraction_column(self, dtype: torch.dtype) -> Tensor:
        """``[coef^0, coef^1, ...]`` as a ``[K, 1]`` column (cached per dtype)."""
        cache = self.__dict__.setdefault("_fractions", {})
        if dtype not in cache:
            cache[dtype] = torch.tensor(
                [self.backtrack_coef ** k for k in range(self.max_backtracks)], dtype=dtype
            ).unsqueeze(1)
        return cache[dtype]

    def _gain_passes(self, gain: float, expected: float) -> bool:
        return gain > 0 and gain / expected > self.accept_ratio

    def _accepts(self, gain: float, divergence: float, expected: float, radius: float) -> bool:
        """HARL's acceptance rule: inside the ball, a real gain, and enough of the expected."""
        return divergence <= radius and self._gain_passes(gain, expected)

    @staticmethod
    def _moved(divergence: float, gain: float, log_prob: Tensor, expected: float, attempt: int,
               fraction: float) -> StepResult:
        return StepResult(
            moved=True, divergence=divergence, improvement=gain, new_log_prob=log_prob,
            expected_improvement=expected * fraction,
            info={"backtracks": float(attempt), "step_fraction": fraction},
        )

    def step(self, problem: AgentProblem, agent: int) -> StepResult:
        gradient = problem.surrogate_gradient()
        reason = is_usable_gradient(gradient)
        if reason:
            return problem.no_step(reason)
        direction, curvature = self.natural_direction(problem, gradient)
        if not (math.isfinite(curvature) and curvature > 0):
            return problem.no_step("non-positive curvature")
        full_step = math.sqrt(2.0 * problem.radius / curvature) * direction
        expected = float(gradient @ full_step)
        if not (math.isfinite(expected) and expected > 0):
            return problem.no_step("no expected improvement")

        if not self.line_search:
            problem.set_params(problem.old_params + full_step)
            result = problem.evaluate()
            if not (math.isfinite(result.improvement) and math.isfinite(result.divergence)):
                return problem.no_step("non-finite step")
            return self._moved(result.divergence, result.improvement, result.log_prob,
                               expected, 0, 1.0)
        fractions = [self.backtrack_coef ** k for k in range(self.max_backtracks)]
        if problem.policy.batched_candidates:
            # every backtracking candidate in one batched pass; the first accepted one wins,
            # exactly as in the sequential search below
            candidates = problem.old_params + self._fraction_column(full_step.dtype) * full_step
            gains, divergences, log_probs = problem.evaluate_candidates(candidates)
            for attempt, fraction in enumerate(fractions):
                if self._accepts(gains[attempt], divergences[attempt], expected * fraction,
                                 problem.radius):
                    problem.set_params(candidates[attempt])
                    return self._moved(divergences[attempt], gains[attempt],
                                       log_probs[attempt], expected, attempt, fraction)
        else:
            for attempt, fraction in enumerate(fractions):
                problem.set_params(problem.old_params + fraction * full_step)
                result = problem.evaluate(with_divergence=False)
                # the divergence is computed only once the gain passes (same decision)
                if self._gain_passes(result.improvement, expected * fraction) and \
                        problem.add_divergence(result).divergence <= problem.radius:
                    return self._moved(result.divergence, result.improvement, result.log_prob,
                                       expected, attempt, fraction)
        out = problem.no_step("line search failed")
        out.info["backtracks"] = float(self.max_backtracks)
        return out
