"""Critics with action values beside the loop's ``V(s)`` (registry ``CRITICS``): ``v`` (none,
the default), ``q`` (learned, eq. 19), ``oracle_q`` (the env's analytic reward, an oracle).
Importing registers the built-ins."""

from marl_tr.critics.base import CRITICS, ActionCritic, ActionValues, JointActionEncoder, ValueOnly
from marl_tr.critics.learned import LearnedQ
from marl_tr.critics.oracle import OracleQ

__all__ = [
    "CRITICS",
    "ActionCritic",
    "ActionValues",
    "JointActionEncoder",
    "LearnedQ",
    "OracleQ",
    "ValueOnly",
]
