"""Greedy allocation of a joint budget by improvement-to-divergence ratio (after HATRPO-G).

HATRPO-G (Shek, Shi and Tokekar 2025) shares a total KL budget among agents and, at each
step of the sequential update, tries a step for every agent not yet updated, scores it by
``improvement / (KL + eps)``, updates the best-scoring agent and charges its KL to the
budget; the greedy choice fixes both the update order and the agent-specific bounds.

A radius scheduler runs before any agent moves and the loop owns the update order, so
trial steps are not available here. This scheduler keeps the greedy principle and scores
each agent by the ratio its *previous* accepted step achieved (``ctx.previous``):

    s_i = max(improvement_i, 0) / (divergence_i + eps) ** p

with ``p = 1`` for divergences that are not smooth at identity (W1: the improvement of a
step grows linearly with its W1 radius, so ``s_i`` is the plain ratio) and ``p = 1/2`` for
smooth ones (KL: improvement ``~ sqrt(2 q delta)``, so ``improvement / sqrt(divergence)``
estimates ``sqrt(2 q_i)`` whatever radius the agent was given). The exponent makes the score
a property of the agent, not of last iteration's radius: with ``p = 1`` under KL an agent
given a small radius would show a large ratio and be favoured next time, and the allocation
would oscillate.

Taking ``s_i`` as improvement per unit of radius, the budget is then split greedily
(``allocation.greedy_fill``): every agent gets the floor; agents in decreasing score order
are filled up to a cap, ``max_share`` times the equal share, until the budget is spent;
equal scores share equally. This is the optimal split of the linear model
``sum_i s_i delta_i`` under the floor and cap (a fractional knapsack); the cap keeps the
linear model local. Without a previous step (first iteration) the split is equal.
"""

from __future__ import annotations

import math

import numpy as np

from marl_tr.divergences.base import Divergence
from marl_tr.radius.allocation import greedy_fill
from marl_tr.radius.base import (
    RADIUS_SCHEDULERS,
    PreviousSteps,
    RadiusContext,
    agent_array,
    agent_count,
)
from marl_tr.radius.budget import BudgetScheduler
from marl_tr.validation import check_finite, check_positive

__all__ = ["GreedyAllocation"]


@RADIUS_SCHEDULERS.register("greedy")
class GreedyAllocation(BudgetScheduler):
    """Greedy split of a joint budget by improvement-to-divergence ratio (after HATRPO-G).

    Args:
        delta_per_agent: budget per agent (joint budget ``delta_per_agent * n``). Default
            0.1 when ``delta_total`` is not given (our choice; see ``BudgetScheduler``).
        delta_total: a fixed joint budget instead, > 0.
        min_share: floor per agent as a fraction of ``budget / n``, in ``(0, 1]``. Default
            0.1 (our choice).
        max_share: cap per agent as a multiple of ``budget / n``, >= 1 (so that the budget
            can be spent), or ``None`` for no cap (the best agent takes everything above the
            others' floors). Default 2.0 (our choice).
        divergence: the divergence of the budget and of ``ctx.previous.divergence``.
            Default ``"kl"``. Its ``smooth_at_identity`` flag sets the score exponent ``p``
            (1/2 if smooth, else 1).
        eps: added to the divergence in the score, > 0. Default 1e-8 (HATRPO-G's
            ``improvement / (KL + eps)`` form; the value is our choice).

    Context: reads ``ctx.previous``. A negative improvement scores 0 (no evidence the agent
    can improve); a non-finite improvement or divergence, or a negative divergence, scores
    0 with a ``RadiusInputWarning``.
    """

    uses = frozenset({"previous"})

    def __init__(
        self,
        delta_per_agent: float | None = None,
        delta_total: float | None = None,
        min_share: float = 0.1,
        max_share: float | None = 2.0,
        divergence: str | Divergence = "kl",
        eps: float = 1e-8,
    ) -> None:
        super().__init__(delta_per_agent, delta_total, min_share, divergence)
        if max_share is not None:
            max_share = check_finite("max_share", max_share)
            if max_share < 1.0:
                raise ValueError(
                    f"max_share must be >= 1 (or None for no cap), got {max_share!r}: below 1 "
                    "the agents' caps cannot add up to the budget"
                )
        self.max_share = max_share
        self.eps = check_positive("eps", eps)

    def cap(self, n: int) -> float:
        """The upper bound per agent: ``max_share * budget / n`` (``inf`` without a cap)."""
        return math.inf if self.max_share is None else self.max_share * self.budget(n) / n

    def scores(self, previous: PreviousSteps, n: int) -> np.ndarray:
        """``s_i = max(improvement_i, 0) / (divergence_i + eps) ** p``, float64 ``[n]``."""
        improvement = agent_array(
            previous.improvement, n, "previous.improvement", negative="zero"
        )
        divergence = agent_array(previous.divergence, n, "previous.divergence")
        raw = np.asarray(previous.divergence, dtype=np.float64)
        p = 0.5 if self.resolved_divergence().smooth_at_identity else 1.0
        scores = improvement / (divergence + self.eps) ** p
        scores[~np.isfinite(raw) | (raw < 0)] = 0.0  # a repaired divergence is no evidence
        return scores

    def radii(self, ctx: RadiusContext) -> np.ndarray:
        """Greedy split of ``budget(n)`` by last iteration's scores (equal split at first).

        Returns:
            ``delta``, float64 ``[n]``, summing to the budget, between the floor and cap.
        """
        n = agent_count(ctx)
        total = self.budget(n)
        if ctx.previous is None:
            return np.full(n, total / n, dtype=np.float64)
        return greedy_fill(self.scores(ctx.previous, n), total, self.floor(n), self.cap(n))
