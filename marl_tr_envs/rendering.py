"""Pictures of the games: what ``render()`` returns, drawn with numpy alone.

The cores hold the game logic; this module only draws what they compute (rewards on a grid,
a payoff table), and the shells call it (``render_mode`` of :class:`GameEnv` and
:class:`GameParallelEnv`). No matplotlib: the core package has no plotting dependency.

* ``"rgb_array"``, the differential game: a ``uint8`` image.

  - ``n = 2``: ``[RGB_SIZE, RGB_SIZE, 3]``, the reward ``r(a_0, a_1)`` over the action box
    (agent 0's action left to right, agent 1's bottom to top) in a dark-blue-to-yellow
    colour scale with ``CONTOUR_LEVELS`` contour lines, the two centres ``(l, l)`` and
    ``(g, g)`` marked by white rings and the last joint action by a red disc.
  - any other ``n``: a per-agent view, ``[n * PANEL_HEIGHT, RGB_SIZE, 3]``: panel ``i`` (top to
    bottom) plots the reward along agent ``i``'s action with every other agent at its last
    action (``r(a_i; a_-i)``, one vertical scale for all panels: 0 to the higher peak's
    reward), agent ``i``'s last action as a red line and the centres ``l`` and ``g`` as ticks.
  - Before the first step (no action yet) nothing is marked and the per-agent slices pass
    through the local centre ``(l, ..., l)``.

* ``"ansi"``, the matrix games: a text. For two agents, the payoff table (rows: agent 0's
  action, columns: agent 1's) with the last joint action's entry in brackets; for other team
  sizes, each agent's payoffs over its own actions with the others at their last actions. A
  last line gives the last joint action and its payoff, and the optimum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from marl_tr_envs.diff_game.core import DiffGame
from marl_tr_envs.game import CooperativeGame
from marl_tr_envs.matrix_games.core import MatrixGame

__all__ = [
    "CONTOUR_LEVELS",
    "PANEL_HEIGHT",
    "RGB_SIZE",
    "Renderer",
    "agent_slices",
    "payoff_text",
    "render_modes",
    "reward_contour",
]

#: Side of the n = 2 contour image, and width of the per-agent view, in pixels.
RGB_SIZE = 256
#: Height of one agent's panel in the per-agent view, in pixels.
PANEL_HEIGHT = 48
#: Contour lines of the n = 2 image (equally spaced rewards between the smallest and largest).
CONTOUR_LEVELS = 10

#: The colour scale, dark blue (low) to yellow (high): anchors at 0, 1/4, 1/2, 3/4, 1.
_SCALE = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
                  dtype=np.float64)
_WHITE = np.array([255, 255, 255], dtype=np.uint8)
_RED = np.array([230, 40, 40], dtype=np.uint8)
_BACKGROUND = np.array([24, 24, 28], dtype=np.uint8)


def render_modes(game: CooperativeGame) -> tuple[str, ...]:
    """The render modes the shells offer for ``game``: ``("rgb_array",)`` for the
    differential game, ``("ansi",)`` for matrix games, ``()`` otherwise."""
    if isinstance(game, DiffGame):
        return ("rgb_array",)
    if isinstance(game, MatrixGame):
        return ("ansi",)
    return ()


def _colour(values: np.ndarray) -> np.ndarray:
    """Values in ``[0, 1]`` ``[...]`` -> ``uint8`` colours ``[..., 3]`` on the colour scale."""
    position = np.clip(values, 0.0, 1.0) * (len(_SCALE) - 1)
    low = np.minimum(np.floor(position).astype(np.int64), len(_SCALE) - 2)
    weight = (position - low)[..., None]
    return np.rint(_SCALE[low] * (1.0 - weight) + _SCALE[low + 1] * weight).astype(np.uint8)


def _pixel(value: float, low: float, high: float, size: int) -> int:
    """The pixel (0 .. size-1) whose cell holds ``value`` on ``[low, high]``."""
    return int(np.clip(np.floor((value - low) / (high - low) * size), 0, size - 1))


def _disc(image: np.ndarray, row: int, column: int, radius: float, colour: np.ndarray,
          ring: float = 0.0) -> None:
    """Paint a disc (``ring > 0``: only the band of that width inside its edge)."""
    rows, columns = np.ogrid[: image.shape[0], : image.shape[1]]
    distance = np.sqrt((rows - row) ** 2 + (columns - column) ** 2)
    inside = distance <= radius
    if ring > 0:
        inside &= distance > radius - ring
    image[inside] = colour


def _contour_background(game: DiffGame, size: int) -> np.ndarray:
    low, high = game.low, game.high
    centres = low + (np.arange(size) + 0.5) * (high - low) / size
    a0, a1 = np.meshgrid(centres, centres[::-1])  # row 0 is the top: agent 1's highest action
    rewards = game.team_reward(np.stack([a0, a1], axis=-1))
    span = float(rewards.max() - rewards.min())
    scaled = (rewards - rewards.min()) / span if span > 0 else np.zeros_like(rewards)
    image = _colour(scaled)
    bands = np.floor(scaled * CONTOUR_LEVELS).clip(0, CONTOUR_LEVELS - 1)
    edge = np.zeros(bands.shape, dtype=bool)
    edge[:, :-1] |= bands[:, :-1] != bands[:, 1:]
    edge[:-1, :] |= bands[:-1, :] != bands[1:, :]
    image[edge] = (image[edge] * 0.45).astype(np.uint8)
    for centre in (game.local_center, game.global_center):
        if low <= centre <= high:
            column = _pixel(centre, low, high, size)
            row = size - 1 - _pixel(centre, low, high, size)
            _disc(image, row, column, 6.0, _WHITE, ring=1.6)
    return image


def reward_contour(game: DiffGame, joint_action: Any = None, size: int = RGB_SIZE,
                   background: np.ndarray | None = None) -> np.ndarray:
    """The ``n = 2`` picture: ``uint8 [size, size, 3]`` (see the module docstring).

    Args:
        game: a two-agent :class:`DiffGame`.
        joint_action: the last joint action ``[2]`` (clipped into the box), or None.
        size: the image's side in pixels.
        background: the image without the action (``_contour_background``), to reuse.

    Raises:
        ValueError: a game without exactly two agents.
    """
    if game.n_agents != 2:
        raise ValueError(f"the contour picture needs n = 2 agents, got n = {game.n_agents}; "
                         "use agent_slices")
    image = (background if background is not None else _contour_background(game, size)).copy()
    if joint_action is not None:
        action = game.prepare_actions(joint_action, batch_shape=())
        column = _pixel(action[0], game.low, game.high, size)
        row = size - 1 - _pixel(action[1], game.low, game.high, size)
        _disc(image, row, column, 5.0, _WHITE)
        _disc(image, row, column, 3.6, _RED)
    return image


def agent_slices(game: DiffGame, joint_action: Any = None, width: int = RGB_SIZE,
                 panel_height: int = PANEL_HEIGHT) -> np.ndarray:
    """The per-agent picture: ``uint8 [n * panel_height, width, 3]`` (see the module
    docstring).

    Args:
        game: a :class:`DiffGame` (any ``n``).
        joint_action: the last joint action ``[n]``, or None (slices through the local centre,
            nothing marked).
        width: pixels along each agent's action axis.
        panel_height: pixels of each agent's panel.
    """
    n, low, high = game.n_agents, game.low, game.high
    marked = joint_action is not None
    base = (game.prepare_actions(joint_action, batch_shape=()) if marked
            else np.full(n, np.clip(game.local_center, low, high)))
    axis = low + (np.arange(width) + 0.5) * (high - low) / width
    top = 1.05 * max(game.peak_rewards().values())
    plot = panel_height - 6  # rows for the curve; the last rows hold the centre ticks
    image = np.empty((n * panel_height, width, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    rows = np.arange(plot)[:, None]
    for agent in range(n):
        actions = np.repeat(base[None, :], width, axis=0)
        actions[:, agent] = axis
        heights = game.team_reward(actions) / top  # [width], in [0, ~0.95]
        curve_row = np.rint((1.0 - np.clip(heights, 0.0, 1.0)) * (plot - 1)).astype(np.int64)
        panel = image[agent * panel_height: (agent + 1) * panel_height]
        under = rows >= curve_row[None, :]  # [plot, width]: the area under the curve
        fill = _colour(np.broadcast_to(heights[None, :], under.shape))
        panel[:plot][under] = (fill[under] * 0.6).astype(np.uint8)
        panel[curve_row, np.arange(width)] = _colour(heights)
        for centre in (game.local_center, game.global_center):
            if low <= centre <= high:
                panel[plot + 1:, _pixel(centre, low, high, width)] = _WHITE
        if marked:
            panel[:plot, _pixel(base[agent], low, high, width)] = _RED
        panel[-1, :] = 70  # a separator line under each panel
    return image


def payoff_text(game: MatrixGame, joint_action: Any = None) -> str:
    """The ``"ansi"`` text of a matrix game (see the module docstring).

    Args:
        game: a :class:`MatrixGame`.
        joint_action: the last joint action ``[n]`` of integers, or None.
    """
    payoff, n = game.payoff, game.n_agents
    action = None if joint_action is None else tuple(
        int(a) for a in game.prepare_actions(joint_action, batch_shape=()))
    cell = max(7, *(len(f"{v:g}") + 3 for v in payoff.ravel()))
    lines = [f"{type(game).__name__}: payoff of the joint action"]
    if n == 2:
        lines.append("rows: agent_0's action, columns: agent_1's action")
        lines.append(" " * 4 + "".join(f"{j:>{cell}}" for j in range(payoff.shape[1])))
        for i in range(payoff.shape[0]):
            entries = []
            for j in range(payoff.shape[1]):
                text = f"{payoff[i, j]:g}"
                entries.append(f"{f'[{text}]' if action == (i, j) else text:>{cell}}")
            lines.append(f"{i:>4}" + "".join(entries))
    else:
        others = action if action is not None else (0,) * n
        for agent in range(n):
            index = list(others)
            values = []
            for choice in range(payoff.shape[agent]):
                index[agent] = choice
                text = f"{payoff[tuple(index)]:g}"
                chosen = action is not None and choice == action[agent]
                values.append(f"[{text}]" if chosen else text)
            lines.append(f"agent_{agent} (others at {'their last actions' if action else 0}): "
                         + "  ".join(values))
    best = game.optimal_joint_actions()
    optimum = f"optimum {payoff.max():g} at {', '.join(map(str, best))}"
    if action is None:
        lines.append(f"no joint action yet; {optimum}")
    else:
        lines.append(f"last joint action {action}: payoff {payoff[action]:g}; {optimum}")
    return "\n".join(lines) + "\n"


class Renderer:
    """One shell's renderer: the mode, the game and what can be drawn once.

    Args:
        game: the shell's game.
        mode: one of ``render_modes(game)``.

    Raises:
        ValueError: a mode the game does not offer.
    """

    def __init__(self, game: CooperativeGame, mode: str) -> None:
        if mode not in render_modes(game):
            allowed = ", ".join(repr(m) for m in (None, *render_modes(game)))
            raise ValueError(f"render_mode must be one of {allowed} for "
                             f"{type(game).__name__}, got {mode!r}")
        self.game, self.mode = game, mode
        self._background: np.ndarray | None = None

    def frame(self, joint_action: Any = None) -> np.ndarray | str:
        """The picture of the game after ``joint_action`` (None: before any action)."""
        if self.mode == "ansi":
            return payoff_text(self.game, joint_action)  # type: ignore[arg-type]
        game: DiffGame = self.game  # type: ignore[assignment]
        if game.n_agents != 2:
            return agent_slices(game, joint_action)
        if self._background is None:
            self._background = _contour_background(game, RGB_SIZE)
        return reward_contour(game, joint_action, background=self._background)
