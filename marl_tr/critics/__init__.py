"""Critics with action values beside the loop's ``V(s)`` (registry ``CRITICS``): ``v`` (none,
the default), ``q`` (learned, eq. 19), ``oracle_q`` (the env's analytic reward, an oracle),
and ``v_local`` (no action values; per-agent ``V_i(o_i)`` instead of the centralised ``V(s)``,
IPPO). Importing registers the built-ins."""

from marl_tr.critics.base import CRITICS, ActionCritic, ActionValues, JointActionEncoder, ValueOnly
from marl_tr.critics.learned import LearnedQ
from marl_tr.critics.local import LocalValues
from marl_tr.critics.oracle import OracleQ

__all__ = [
    "CRITICS",
    "ActionCritic",
    "ActionValues",
    "JointActionEncoder",
    "LearnedQ",
    "LocalValues",
    "OracleQ",
    "ValueOnly",
]
