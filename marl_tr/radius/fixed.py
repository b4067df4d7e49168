"""The fixed radius: the same ``delta`` for every agent, every iteration (HATRPO, W-MATRPO)."""

from __future__ import annotations

import numpy as np

from marl_tr.divergences.base import Divergence
from marl_tr.radius.base import (
    RADIUS_SCHEDULERS,
    RadiusContext,
    RadiusScheduler,
    agent_count,
    check_below_supremum,
)
from marl_tr.validation import check_positive

__all__ = ["FixedRadius"]


@RADIUS_SCHEDULERS.register("fixed")
class FixedRadius(RadiusScheduler):
    """``delta_i = delta`` for every agent.

    Args:
        delta: the radius, finite and > 0. Default 0.1: the trust region of the paper's
            Table 2 (differential game, every agent count). HATRPO's reference code uses
            0.01 for its KL radius.

    Example:
        >>> from marl_tr.radius import ArrayRadiusContext
        >>> FixedRadius(0.05).radii(ArrayRadiusContext(3)).tolist()
        [0.05, 0.05, 0.05]
    """

    def __init__(self, delta: float = 0.1) -> None:
        self.delta = check_positive("delta", delta)

    @property
    def autograd_free(self) -> bool:
        return True

    def check_divergence(self, divergence: Divergence) -> None:
        check_below_supremum("delta", self.delta, divergence)

    def radii(self, ctx: RadiusContext) -> np.ndarray:
        """``[n]`` float64, all equal to ``delta``."""
        return np.full(agent_count(ctx), self.delta, dtype=np.float64)
