"""Gymnasium, vector and PettingZoo environments of the differential game (eq. 30).

All three take :class:`~marl_tr_envs.diff_game.core.DiffGame`'s keywords (``n``, ``sigma``,
``local_center``, ``global_center``, ``basin_gap``, ``local_mass``, ``global_mass``, ``low``,
``high``) plus the episode settings ``episode_length`` and ``reward_noise``; or a ready
``game=DiffGame(...)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from marl_tr_envs.diff_game.core import DiffGame
from marl_tr_envs.shells import GameEnv, GameParallelEnv, GameVectorEnv

__all__ = ["DiffGameEnv", "DiffGameParallelEnv", "DiffGameVectorEnv", "parallel_env"]


class DiffGameEnv(GameEnv):
    """``DiffGame-v0``: joint action ``Box(low, high, (n,), float32)``, scalar team reward.

    ``info`` holds ``peak_rewards`` ({"local", "global"}), ``higher_peak`` and, after a step,
    ``agent_rewards`` [n] and ``reward_without_noise``. ``render_mode="rgb_array"``: the
    reward's contour with the last joint action (n = 2), else a per-agent view (see
    :mod:`marl_tr_envs.rendering`). See :class:`GameEnv`.
    """

    metadata: ClassVar[dict[str, Any]] = {**GameEnv.metadata, "render_modes": ["rgb_array"],
                                          "render_fps": GameEnv.RENDER_FPS}
    game_class = DiffGame


class DiffGameVectorEnv(GameVectorEnv):
    """``gymnasium.make_vec("DiffGame-v0", num_envs=N)``: actions ``[N, n]``. See
    :class:`GameVectorEnv`."""

    game_class = DiffGame


class DiffGameParallelEnv(GameParallelEnv):
    """The differential game as a PettingZoo ``ParallelEnv`` (one ``Box(low, high, (1,))``
    action per agent). See :class:`GameParallelEnv`."""

    metadata: ClassVar[dict[str, Any]] = {**GameParallelEnv.metadata, "name": "diff_game_v0",
                                          "render_modes": ["rgb_array"],
                                          "render_fps": GameParallelEnv.RENDER_FPS}
    game_class = DiffGame


def parallel_env(**kwargs: Any) -> DiffGameParallelEnv:
    """PettingZoo-style factory: ``DiffGameParallelEnv(**kwargs)``.

    Example:
        >>> env = parallel_env(n=7, basin_gap=3.0)
        >>> observations, infos = env.reset(seed=0)
        >>> sorted(observations)[:2]
        ['agent_0', 'agent_1']
    """
    return DiffGameParallelEnv(**kwargs)
