"""marl_tr_envs: Gymnasium- and PettingZoo-compatible multi-agent benchmark games.

Pure numpy (no torch). Importing the package registers its ids with Gymnasium:

* ``DiffGame-v0``: the paper's n-agent differential game (eq. 30), :class:`DiffGame`;
* ``ClimbingGame-v0`` and ``PenaltyGame-v0``: cooperative matrix games with a local-optimum trap.

Each id has three views over one game core: ``gymnasium.make(id, **kwargs)`` (joint action,
scalar team reward), ``gymnasium.make_vec(id, num_envs=N, **kwargs)`` (native batched vector env,
same-step autoreset) and :func:`make_parallel` ``(id, **kwargs)`` (PettingZoo ``ParallelEnv``).

Example:
    >>> import gymnasium as gym
    >>> import marl_tr_envs
    >>> env = gym.make("DiffGame-v0", n=3)
    >>> observation, info = env.reset(seed=0)
    >>> info["higher_peak"], round(info["peak_rewards"]["local"], 4)
    ('local', 0.4127)
"""

from __future__ import annotations

from marl_tr_envs.action_geometry import MPE_MOVES, ActionGeometry, action_embeddings
from marl_tr_envs.diff_game import (
    DiffGame,
    DiffGameEnv,
    DiffGameParallelEnv,
    DiffGameVectorEnv,
)
from marl_tr_envs.game import CooperativeGame, agent_names
from marl_tr_envs.matrix_games import (
    ClimbingGame,
    ClimbingGameEnv,
    ClimbingGameParallelEnv,
    ClimbingGameVectorEnv,
    MatrixGame,
    PenaltyGame,
    PenaltyGameEnv,
    PenaltyGameParallelEnv,
    PenaltyGameVectorEnv,
)
from marl_tr_envs.registration import SUITE, make_parallel, register_suite
from marl_tr_envs.shells import EpisodeSettings, GameEnv, GameParallelEnv, GameVectorEnv

__all__ = [
    "MPE_MOVES",
    "SUITE",
    "ActionGeometry",
    "ClimbingGame",
    "ClimbingGameEnv",
    "ClimbingGameParallelEnv",
    "ClimbingGameVectorEnv",
    "CooperativeGame",
    "DiffGame",
    "DiffGameEnv",
    "DiffGameParallelEnv",
    "DiffGameVectorEnv",
    "EpisodeSettings",
    "GameEnv",
    "GameParallelEnv",
    "GameVectorEnv",
    "MatrixGame",
    "PenaltyGame",
    "PenaltyGameEnv",
    "PenaltyGameParallelEnv",
    "PenaltyGameVectorEnv",
    "action_embeddings",
    "agent_names",
    "make_parallel",
    "register_suite",
]

register_suite()
