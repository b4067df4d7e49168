"""Cooperative matrix games with a local-optimum trap: climbing and penalty games."""

from __future__ import annotations

from marl_tr_envs.matrix_games.core import (
    CLIMBING_PAYOFF,
    ClimbingGame,
    MatrixGame,
    PenaltyGame,
    penalty_payoff,
)
from marl_tr_envs.matrix_games.envs import (
    ClimbingGameEnv,
    ClimbingGameParallelEnv,
    ClimbingGameVectorEnv,
    PenaltyGameEnv,
    PenaltyGameParallelEnv,
    PenaltyGameVectorEnv,
    climbing_parallel_env,
    penalty_parallel_env,
)

__all__ = [
    "CLIMBING_PAYOFF",
    "ClimbingGame",
    "ClimbingGameEnv",
    "ClimbingGameParallelEnv",
    "ClimbingGameVectorEnv",
    "MatrixGame",
    "PenaltyGame",
    "PenaltyGameEnv",
    "PenaltyGameParallelEnv",
    "PenaltyGameVectorEnv",
    "climbing_parallel_env",
    "penalty_parallel_env",
    "penalty_payoff",
]
