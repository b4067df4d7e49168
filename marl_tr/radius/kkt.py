"""KKT allocation of a joint budget (HATRPO-W; Shek, Shi and Tokekar 2025).

Maximise the agents' summed predicted improvement subject to
``sum_i delta_i = delta_total`` and ``delta_i >= floor``:

- divergences smooth at identity (KL, JS, Hellinger, W2 of Gaussians): the natural-gradient
  model ``I_i(delta) = sqrt(2 delta q_i)``, ``q_i = g_i^T F_i^-1 g_i``, whose KKT solution is
  ``delta_i = delta_total * q_i / sum_j q_j`` above the floor (exact water-filling);
- divergences that are not (W1): the agents' price responses ``c_i(lambda)`` (the divergence
  agent ``i``'s penalised step reaches at price ``lambda``) and one shared price with
  ``sum_i max(floor, c_i(lambda)) = delta_total``, found by bisection.

See ``marl_tr.radius.allocation`` for the solvers and ``marl_tr.radius.budget`` for the
budget and floor options.
"""

from __future__ import annotations

import numpy as np

from marl_tr.divergences.base import Divergence
from marl_tr.radius.allocation import price_fill, proportional_fill
from marl_tr.radius.base import RADIUS_SCHEDULERS, RadiusContext, agent_array, agent_count
from marl_tr.radius.budget import BudgetScheduler
from marl_tr.validation import check_choice, check_in_range, check_int

__all__ = ["KKTAllocation"]


@RADIUS_SCHEDULERS.register("kkt")
class KKTAllocation(BudgetScheduler):
    """KKT split of a joint budget by predicted improvement (HATRPO-W).

    Args:
        delta_per_agent: budget per agent (joint budget ``delta_per_agent * n``). Default
            0.1 when ``delta_total`` is not given (our choice; see ``BudgetScheduler``).
        delta_total: a fixed joint budget instead, > 0.
        min_share: floor per agent as a fraction of ``budget / n``, in ``(0, 1]``. Default
            0.1 (our choice).
        divergence: the divergence of the budget. Default ``"kl"`` (HATRPO-W's). Its
            ``smooth_at_identity`` flag picks the branch: natural-gradient norms or price
            responses.
        leftover: W1 branch only: how budget the agents do not want even at price 0 is given
            out: ``"proportional"`` (default, our choice: every radius scaled by the same
            factor) or ``"equal"`` (the same amount added to each).
        tol: W1 branch: bisection tolerance relative to the budget, in ``(0, 1)``; each
            radius is within ``tol * budget`` of the exact KKT radius. Default 1e-8.
        max_iter: W1 branch: bisection steps at most, >= 1. Default 100.

    Context: the smooth branch reads ``ctx.natural_gradient_norms(divergence)`` (a
    negative or non-finite ``q_i`` is treated as 0 with a ``RadiusInputWarning``; all zero:
    equal split); the other reads ``ctx.price_responses(divergence)``.
    """

    uses = frozenset({"natural_gradient_norms", "price_responses"})

    def __init__(
        self,
        delta_per_agent: float | None = None,
        delta_total: float | None = None,
        min_share: float = 0.1,
        divergence: str | Divergence = "kl",
        leftover: str = "proportional",
        tol: float = 1e-8,
        max_iter: int = 100,
    ) -> None:
        super().__init__(delta_per_agent, delta_total, min_share, divergence)
        self.leftover = check_choice("leftover", leftover, ("proportional", "equal"))
        self.tol = check_in_range("tol", tol, 0.0, 1.0, low_open=True, high_open=True)
        self.max_iter = check_int("max_iter", max_iter, minimum=1)

    def radii(self, ctx: RadiusContext) -> np.ndarray:
        """The KKT split of ``budget(n)`` for this iteration.

        Returns:
            ``delta``, float64 ``[n]``, summing to the budget, each >= the floor.
        """
        n = agent_count(ctx)
        total, floor = self.budget(n), self.floor(n)
        if self.min_share == 1.0:  # the floor is the equal split: nothing to observe
            return np.full(n, total / n, dtype=np.float64)
        divergence = self.resolved_divergence()
        if divergence.smooth_at_identity:
            q = agent_array(ctx.natural_gradient_norms(divergence), n, "natural_gradient_norms")
            return proportional_fill(q, total, floor)
        responses = list(ctx.price_responses(divergence))
        if len(responses) != n:
            raise ValueError(f"price_responses has {len(responses)} entries for {n} agents")
        return price_fill(
            responses, total, floor, tol=self.tol, max_iter=self.max_iter,
            leftover=self.leftover,  # type: ignore[arg-type]
        )
