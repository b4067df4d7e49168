"""marl_tr: trust-region multi-agent reinforcement learning.

One sequential multi-agent trust-region loop into which divergences, radius schedulers and
constrained-step solvers plug by name; HATRPO, HATRPO + CAATR and W-MATRPO + CAATR are
presets of it. See README.md.
"""

from marl_tr.api import TrainingError, TrainResult, train
from marl_tr.config import TrainConfig
from marl_tr.critics import CRITICS, ActionCritic
from marl_tr.divergences import DIVERGENCES, Divergence
from marl_tr.policies import POLICIES, Policy
from marl_tr.presets import PRESETS, Preset
from marl_tr.radius import RADIUS_SCHEDULERS, RadiusScheduler
from marl_tr.registry import Plugin, Registry, UnknownNameError
from marl_tr.solvers import SOLVERS, Solver

__version__ = "0.1.0"

__all__ = [
    "CRITICS",
    "DIVERGENCES",
    "POLICIES",
    "PRESETS",
    "RADIUS_SCHEDULERS",
    "SOLVERS",
    "ActionCritic",
    "Divergence",
    "Plugin",
    "Policy",
    "Preset",
    "RadiusScheduler",
    "Registry",
    "Solver",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "UnknownNameError",
    "__version__",
    "train",
]
