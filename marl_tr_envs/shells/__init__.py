"""Generic API shells around a :class:`~marl_tr_envs.game.CooperativeGame`.

Each game family only names its core (``game_class``) in a two-line subclass of these shells:

* :class:`GameEnv`: Gymnasium joint view (``gymnasium.make``);
* :class:`GameVectorEnv`: native batched vector env (``gymnasium.make_vec``);
* :class:`GameParallelEnv`: PettingZoo ``ParallelEnv``.

All three hold the game, the :class:`EpisodeSettings` and the agents' spaces through
:class:`GameShell`.
"""

from __future__ import annotations

from marl_tr_envs.shells.base import GameShell
from marl_tr_envs.shells.episode import EpisodeSettings
from marl_tr_envs.shells.gym_env import GameEnv
from marl_tr_envs.shells.parallel_env import GameParallelEnv
from marl_tr_envs.shells.vector_env import GameVectorEnv

__all__ = ["EpisodeSettings", "GameEnv", "GameParallelEnv", "GameShell", "GameVectorEnv"]
