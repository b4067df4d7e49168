"""Gymnasium, vector and PettingZoo environments of the climbing and penalty games.

Joint action ``MultiDiscrete([3, 3])`` (agent ``i``'s action is component ``i``), one
``Discrete(3)`` action per agent, team reward from the payoff matrix. Keywords: the episode
settings ``episode_length`` and ``reward_noise`` (and ``k`` for the penalty game), or a ready
``game=...``. ``info`` holds ``optimal_joint_actions``, ``optimal_reward`` and
``pure_nash_equilibria``. ``render_mode="ansi"``: the payoff table with the last joint action
(see :mod:`marl_tr_envs.rendering`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from marl_tr_envs.matrix_games.core import ClimbingGame, PenaltyGame
from marl_tr_envs.shells import GameEnv, GameParallelEnv, GameVectorEnv

_ANSI: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": GameEnv.RENDER_FPS}

__all__ = [
    "ClimbingGameEnv",
    "ClimbingGameParallelEnv",
    "ClimbingGameVectorEnv",
    "PenaltyGameEnv",
    "PenaltyGameParallelEnv",
    "PenaltyGameVectorEnv",
    "climbing_parallel_env",
    "penalty_parallel_env",
]


class ClimbingGameEnv(GameEnv):
    """``ClimbingGame-v0``. See :class:`GameEnv`."""

    metadata: ClassVar[dict[str, Any]] = {**GameEnv.metadata, **_ANSI}
    game_class = ClimbingGame


class ClimbingGameVectorEnv(GameVectorEnv):
    """``gymnasium.make_vec("ClimbingGame-v0", num_envs=N)``. See :class:`GameVectorEnv`."""

    game_class = ClimbingGame


class ClimbingGameParallelEnv(GameParallelEnv):
    """The climbing game as a PettingZoo ``ParallelEnv``. See :class:`GameParallelEnv`."""

    metadata: ClassVar[dict[str, Any]] = {**GameParallelEnv.metadata, **_ANSI,
                                          "name": "climbing_game_v0"}
    game_class = ClimbingGame


class PenaltyGameEnv(GameEnv):
    """``PenaltyGame-v0`` (keyword ``k <= 0``, default -10). See :class:`GameEnv`."""

    metadata: ClassVar[dict[str, Any]] = {**GameEnv.metadata, **_ANSI}
    game_class = PenaltyGame


class PenaltyGameVectorEnv(GameVectorEnv):
    """``gymnasium.make_vec("PenaltyGame-v0", num_envs=N)``. See :class:`GameVectorEnv`."""

    game_class = PenaltyGame


class PenaltyGameParallelEnv(GameParallelEnv):
    """The penalty game as a PettingZoo ``ParallelEnv``. See :class:`GameParallelEnv`."""

    metadata: ClassVar[dict[str, Any]] = {**GameParallelEnv.metadata, **_ANSI,
                                          "name": "penalty_game_v0"}
    game_class = PenaltyGame


def climbing_parallel_env(**kwargs: Any) -> ClimbingGameParallelEnv:
    """PettingZoo-style factory: ``ClimbingGameParallelEnv(**kwargs)``."""
    return ClimbingGameParallelEnv(**kwargs)


def penalty_parallel_env(**kwargs: Any) -> PenaltyGameParallelEnv:
    """PettingZoo-style factory: ``PenaltyGameParallelEnv(**kwargs)``."""
    return PenaltyGameParallelEnv(**kwargs)
