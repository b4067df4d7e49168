"""Shared options of the schedulers that split one joint budget (``kkt``, ``greedy``).

Both follow Shek, Shi and Tokekar (2025), "Multi-Agent Trust Region Policy Optimisation: A
Joint Constraint Approach" (HATRPO-W and HATRPO-G): instead of one radius per agent, the
agents share a budget, ``sum_i delta_i = delta_total``, and each gets a share.

Budget: ``delta_per_agent`` (budget = ``delta_per_agent * n``, default 0.1 per agent) or
``delta_total`` (a fixed joint budget); give at most one. The per-agent default is our
choice: the number of agents is unknown when a scheduler is built, and with it an
allocation with equal signals reduces to the paper's fixed radius 0.1 (Table 2).

Floor: every agent gets at least ``min_share`` of the equal share ``budget / n``
(default 0.1, our choice), so that no agent starves; ``min_share = 1`` is the equal split.
The floor is an exact lower bound of the allocation problem, not a clamp applied after it.
"""

from __future__ import annotations

from typing import ClassVar

from marl_tr.divergences.base import Divergence
from marl_tr.radius.base import DivergenceOption, RadiusScheduler, check_divergence_option
from marl_tr.validation import check_in_range, check_positive

__all__ = ["BudgetScheduler"]


class BudgetScheduler(DivergenceOption, RadiusScheduler):
    """Base class: a joint budget, a floor per agent and the divergence they are measured in.

    Args:
        delta_per_agent: budget per agent, > 0; the joint budget is ``delta_per_agent * n``.
            Default (when neither budget is given): 0.1.
        delta_total: the joint budget ``sum_i delta_i``, > 0, whatever the number of agents.
        min_share: floor per agent as a fraction of the equal share ``budget / n``, in
            ``(0, 1]``. Default 0.1 (our choice).
        divergence: the divergence the radii are measured in, a config string or a
            ``Divergence``; its ``smooth_at_identity`` flag selects the improvement model.
            Must equal the divergence that constrains the steps (``check_divergence``).
    """

    DEFAULT_DELTA_PER_AGENT: ClassVar[float] = 0.1

    def __init__(
        self,
        delta_per_agent: float | None = None,
        delta_total: float | None = None,
        min_share: float = 0.1,
        divergence: str | Divergence = "kl",
    ) -> None:
        if delta_per_agent is not None and delta_total is not None:
            raise ValueError(
                f"give delta_per_agent ({delta_per_agent!r}) or delta_total "
                f"({delta_total!r}), not both"
            )
        if delta_total is None:
            if delta_per_agent is None:
                delta_per_agent = self.DEFAULT_DELTA_PER_AGENT
            self.delta_per_agent: float | None = check_positive(
                "delta_per_agent", delta_per_agent
            )
            self.delta_total: float | None = None
        else:
            self.delta_per_agent = None
            self.delta_total = check_positive("delta_total", delta_total)
        self.min_share = check_in_range("min_share", min_share, 0.0, 1.0, low_open=True)
        self.divergence = check_divergence_option(divergence)

    def budget(self, n: int) -> float:
        """The joint budget ``sum_i delta_i`` for ``n`` agents."""
        if self.delta_total is not None:
            return self.delta_total
        return self.delta_per_agent * n  # type: ignore[operator]

    def floor(self, n: int) -> float:
        """The lower bound per agent: ``min_share * budget / n``."""
        return self.min_share * self.budget(n) / n

    @property
    def autograd_free(self) -> bool:
        """Natural-gradient norms and price responses need only its divergence's derivatives."""
        return self.resolved_divergence().autograd_free

    def check_divergence(self, divergence: Divergence) -> None:
        """Raise ``ValueError`` unless ``divergence`` is this scheduler's divergence.

        The budget is in the units of ``self.divergence``; radii measured in one divergence
        and enforced in another would mean nothing.
        """
        own = self.resolved_divergence()
        if divergence != own:
            raise ValueError(
                f"{type(self).__name__} splits a budget measured in {own!r}, but the steps "
                f"are constrained by {divergence!r}; build it with "
                f"divergence={divergence.spec()!r}"
            )
