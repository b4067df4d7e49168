"""Radius schedulers: per-agent trust-region radii (registry: ``RADIUS_SCHEDULERS``).

Importing this package registers the built-ins:

- ``"fixed"`` (``FixedRadius``): the same radius for every agent.
- ``"caatr"`` (``CAATR``): coordination-aware adaptive radii, the paper's eqs. 13-14.
- ``"kkt"`` (``KKTAllocation``): KKT split of a joint budget (HATRPO-W).
- ``"greedy"`` (``GreedyAllocation``): greedy split of a joint budget by
  improvement-to-divergence ratio (after HATRPO-G).

Build one from a config string: ``RADIUS_SCHEDULERS.build("caatr:C=0.1,eps_base=1e-3")``.
"""

from marl_tr.radius.base import (
    RADIUS_SCHEDULERS,
    ArrayRadiusContext,
    PreviousSteps,
    RadiusContext,
    RadiusInputWarning,
    RadiusScheduler,
)
from marl_tr.radius.budget import BudgetScheduler
from marl_tr.radius.caatr import CAATR
from marl_tr.radius.fixed import FixedRadius
from marl_tr.radius.greedy import GreedyAllocation
from marl_tr.radius.kkt import KKTAllocation

__all__ = [
    "CAATR",
    "RADIUS_SCHEDULERS",
    "ArrayRadiusContext",
    "BudgetScheduler",
    "FixedRadius",
    "GreedyAllocation",
    "KKTAllocation",
    "PreviousSteps",
    "RadiusContext",
    "RadiusInputWarning",
    "RadiusScheduler",
]
