"""The suite's ids, their Gymnasium registration and the PettingZoo factory ``make_parallel``.

Importing :mod:`marl_tr_envs` registers every id (Gymnasium 1.x has no plugin entry points), so
``gymnasium.make("DiffGame-v0")`` works after the import and
``gymnasium.make("marl_tr_envs:DiffGame-v0")`` works without it. The ids are registered without
``max_episode_steps``: the games end their own episodes (``episode_length``), and a ``TimeLimit``
of 1 would mark every one-step episode as truncated as well as terminated.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import gymnasium

from marl_tr_envs.diff_game.envs import DiffGameEnv, DiffGameParallelEnv, DiffGameVectorEnv
from marl_tr_envs.matrix_games.envs import (
    ClimbingGameEnv,
    ClimbingGameParallelEnv,
    ClimbingGameVectorEnv,
    PenaltyGameEnv,
    PenaltyGameParallelEnv,
    PenaltyGameVectorEnv,
)
from marl_tr_envs.shells import GameEnv, GameParallelEnv, GameVectorEnv

__all__ = ["SUITE", "SuiteEntry", "make_parallel", "register_suite"]


@dataclass(frozen=True)
class SuiteEntry:
    """The three shells of one id of the suite."""

    gym_class: type[GameEnv]
    vector_class: type[GameVectorEnv]
    parallel_class: type[GameParallelEnv]


#: Every id of the suite and its shells.
SUITE: dict[str, SuiteEntry] = {
    "DiffGame-v0": SuiteEntry(DiffGameEnv, DiffGameVectorEnv, DiffGameParallelEnv),
    "ClimbingGame-v0": SuiteEntry(ClimbingGameEnv, ClimbingGameVectorEnv, ClimbingGameParallelEnv),
    "PenaltyGame-v0": SuiteEntry(PenaltyGameEnv, PenaltyGameVectorEnv, PenaltyGameParallelEnv),
}


def _entry_point(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_suite() -> None:
    """Register every id of :data:`SUITE` with Gymnasium; ids already registered are left alone.

    Safe to call any number of times (no warning, no error).
    """
    for env_id, entry in SUITE.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point=_entry_point(entry.gym_class),
            vector_entry_point=_entry_point(entry.vector_class),
        )


def make_parallel(env_id: str, **kwargs: Any) -> GameParallelEnv:
    """The PettingZoo ``ParallelEnv`` of any id of the suite.

    Args:
        env_id: An id of :data:`SUITE` (an optional ``"marl_tr_envs:"`` prefix is accepted).
        **kwargs: The game's and the episode's keywords, as for ``gymnasium.make``.

    Raises:
        ValueError: An unknown id (the known ones are listed) or invalid keywords.

    Example:
        >>> env = make_parallel("PenaltyGame-v0", k=-20.0)
        >>> env.possible_agents
        ['agent_0', 'agent_1']
    """
    name = env_id.split(":", 1)[1] if isinstance(env_id, str) and ":" in env_id else env_id
    if name not in SUITE:
        close = difflib.get_close_matches(str(name), list(SUITE), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown env_id {env_id!r}.{hint} Available: {', '.join(sorted(SUITE))}")
    return SUITE[name].parallel_class(**kwargs)
