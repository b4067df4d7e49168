"""Radius schedulers: per-agent trust-region radii (registry: ``RADIUS_SCHEDULERS``).

Importing this package registers the built-ins.
"""

from marl_tr.radius.base import (
    RADIUS_SCHEDULERS,
    ArrayRadiusContext,
    PreviousSteps,
    RadiusContext,
    RadiusScheduler,
)

__all__ = [
    "RADIUS_SCHEDULERS",
    "ArrayRadiusContext",
    "PreviousSteps",
    "RadiusContext",
    "RadiusScheduler",
]
