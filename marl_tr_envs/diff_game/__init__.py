"""The paper's n-agent differential game (eq. 30): pure-numpy core and its environments."""

from __future__ import annotations

from marl_tr_envs.diff_game.core import EXPECTATION_METHODS, PAPER_SIGMA, DiffGame
from marl_tr_envs.diff_game.envs import (
    DiffGameEnv,
    DiffGameParallelEnv,
    DiffGameVectorEnv,
    parallel_env,
)

__all__ = [
    "EXPECTATION_METHODS",
    "PAPER_SIGMA",
    "DiffGame",
    "DiffGameEnv",
    "DiffGameParallelEnv",
    "DiffGameVectorEnv",
    "parallel_env",
]
