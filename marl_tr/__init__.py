"""marl_tr: trust-region multi-agent reinforcement learning.

One sequential multi-agent trust-region loop into which divergences, radius schedulers and
constrained-step solvers plug by name. See README.md.
"""

from marl_tr.divergences import DIVERGENCES, Divergence
from marl_tr.radius import RADIUS_SCHEDULERS, RadiusScheduler
from marl_tr.registry import Plugin, Registry, UnknownNameError

__version__ = "0.1.0"

__all__ = [
    "DIVERGENCES",
    "RADIUS_SCHEDULERS",
    "Divergence",
    "Plugin",
    "RadiusScheduler",
    "Registry",
    "UnknownNameError",
    "__version__",
]
