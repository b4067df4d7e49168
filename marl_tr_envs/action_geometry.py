"""How an environment declares the geometry of its discrete actions.

A trust region measured in W1 between categorical policies needs a ground cost between
actions. Action indices rarely carry one (MPE's moves ``no-op, left, right, down, up`` are not
ordered), so an environment may place each action at a point of ``R^d``: the W1 divergence
built with ``embedding="env"`` then takes distances between these points as its cost.

**Protocol** (:class:`ActionGeometry`): an env, the Gymnasium/PettingZoo object under its
wrappers (``.unwrapped``, ``.env``) or its ``game`` attribute may define

    ``action_embedding(agent: str) -> np.ndarray | None``

returning agent ``agent``'s ``[K, d]`` table (row ``k``: the point of action ``k``; ``K`` the
size of its ``Discrete`` action space), or ``None`` when that agent's actions have no geometry.
:func:`action_embeddings` reads the declarations of a list of agents.

:data:`MPE_MOVES` is MPE's discrete moves as 2-D displacements, in mpe2's (and PettingZoo's
MPE's) documented action order ``[no_action, move_left, move_right, move_down, move_up]``:
action 1 pushes along ``-x``, 2 along ``+x``, 3 along ``-y``, 4 along ``+y``.

Example:
    >>> class Moves:
    ...     possible_agents = ["agent_0"]
    ...     def action_embedding(self, agent):
    ...         return MPE_MOVES
    >>> action_embeddings(Moves(), ["agent_0"])[0].tolist()
    [[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["MPE_MOVES", "ActionGeometry", "action_embeddings", "find_action_geometry"]

MPE_MOVES = np.array(
    [[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]], dtype=np.float64
)
MPE_MOVES.setflags(write=False)
"""``[5, 2]``: MPE's discrete actions as unit displacements (no-op at the origin)."""

# where the declaration may sit, tried in this order, breadth first
_HOLDERS = ("unwrapped", "env", "game")
_MAX_DEPTH = 3


@runtime_checkable
class ActionGeometry(Protocol):
    """An object that declares its agents' action embeddings."""

    def action_embedding(self, agent: str) -> np.ndarray | None:
        """Agent ``agent``'s ``[K, d]`` action points, or ``None``."""


def find_action_geometry(env_like: Any) -> ActionGeometry | None:
    """The first object declaring ``action_embedding``: ``env_like`` itself, then (breadth
    first, up to three levels) its ``unwrapped``, ``env`` and ``game`` attributes; ``None``
    when none does."""
    level, seen = [env_like], set()
    for _ in range(_MAX_DEPTH + 1):
        following = []
        for holder in level:
            if holder is None or id(holder) in seen:
                continue
            seen.add(id(holder))
            if callable(getattr(holder, "action_embedding", None)):
                return holder
            following.extend(getattr(holder, name, None) for name in _HOLDERS)
        level = following
    return None


def _action_count(env_like: Any, agent: str) -> int | None:
    """The size of ``agent``'s ``Discrete`` action space when ``env_like.action_space(agent)``
    tells it, else ``None``."""
    space_of = getattr(env_like, "action_space", None)
    if not callable(space_of):
        return None
    try:
        space = space_of(agent)
    except (KeyError, TypeError, ValueError):
        return None
    count = getattr(space, "n", None)
    return int(count) if count is not None else None


def action_embeddings(env_like: Any, agents: Sequence[str]) -> list[np.ndarray | None]:
    """Each agent's declared action embedding (see the module's protocol).

    Args:
        env_like: an env, a wrapper or adapter around one, or a game.
        agents: the agent names, in the order wanted.

    Returns:
        One ``[K, d]`` float64 array (a copy) or ``None`` per agent; all ``None`` when nothing
        declares an embedding.

    Raises:
        ValueError: a declaration that is not a finite ``[K, d]`` table, or whose ``K``
            differs from the agent's ``Discrete`` action space (where ``env_like`` has
            ``action_space(agent)``).
    """
    holder = find_action_geometry(env_like)
    if holder is None:
        return [None for _ in agents]
    tables: list[np.ndarray | None] = []
    for agent in agents:
        declared = holder.action_embedding(agent)
        if declared is None:
            tables.append(None)
            continue
        try:
            table = np.array(declared, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"action_embedding({agent!r}) must be a [K, d] table of numbers, got "
                f"{declared!r}"
            ) from None
        if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
            raise ValueError(
                f"action_embedding({agent!r}) must be a [K, d] table, got shape {table.shape}"
            )
        if not np.isfinite(table).all():
            raise ValueError(f"action_embedding({agent!r}) must be finite, got {declared!r}")
        count = _action_count(env_like, agent)
        if count is not None and count != table.shape[0]:
            raise ValueError(
                f"action_embedding({agent!r}) places {table.shape[0]} actions, but the agent's "
                f"action space has {count}"
            )
        tables.append(table)
    return tables
