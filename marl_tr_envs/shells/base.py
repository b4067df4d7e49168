"""What the three shells share: building the game, the episode settings and per-agent spaces."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from marl_tr_envs.game import CooperativeGame, agent_names
from marl_tr_envs.shells.episode import EPISODE_KEYWORDS, EpisodeSettings, build_game

__all__ = ["GameShell"]


class GameShell:
    """Mixin holding a shell's game, episode settings and the agents' spaces.

    Attributes set by :meth:`_set_up_game` (the trainer-facing contract):
        game: The :class:`CooperativeGame` core.
        settings: The :class:`EpisodeSettings`.
        possible_agents: ``["agent_0", ..., "agent_{n-1}"]``.
        agent_action_spaces: One action space per agent (``Box(low, high, (1,))`` or
            ``Discrete(K)``), distinct objects.
        agent_observation_spaces: One observation space per agent: each agent observes the
            joint view's observation ``[t / episode_length]``.
        render_mode: The render mode (``None``, or one of the game's, see
            :mod:`marl_tr_envs.rendering`); ``metadata["render_modes"]`` lists the game's.
    """

    #: Frames per second declared for renderers (one frame per play of the game).
    RENDER_FPS: ClassVar[int] = 4

    #: The game a subclass builds from keyword arguments (``None``: pass ``game``).
    game_class: ClassVar[type[CooperativeGame] | None] = None

    game: CooperativeGame
    settings: EpisodeSettings
    possible_agents: list[str]
    agent_action_spaces: dict[str, spaces.Space]
    agent_observation_spaces: dict[str, spaces.Space]

    def _set_up_game(
        self,
        game: CooperativeGame | None,
        game_kwargs: Mapping[str, Any],
        *,
        episode_length: int,
        reward_noise: float,
        render_mode: str | None,
        shell_keywords: Collection[str] = (),
        renders: bool = True,
    ) -> None:
        """Check the settings and build the game; raise ``ValueError`` on any bad input.

        Args:
            game: A ready game, or ``None`` to build ``game_class(**game_kwargs)``.
            game_kwargs: Keywords the shell did not take itself.
            episode_length: See :class:`EpisodeSettings`.
            reward_noise: See :class:`EpisodeSettings`.
            render_mode: ``None`` or one of the game's render modes
                (:func:`marl_tr_envs.rendering.render_modes`).
            shell_keywords: The shell's own keywords beyond the episode settings and
                ``render_mode`` (listed in the message on an unknown keyword).
            renders: Whether the shell renders at all (the vector env does not).
        """
        from marl_tr_envs.rendering import Renderer, render_modes

        owner = type(self).__name__
        self.settings = EpisodeSettings(episode_length=episode_length, reward_noise=reward_noise)
        keywords = (*EPISODE_KEYWORDS, "render_mode", *shell_keywords)
        self.game = build_game(owner, self.game_class, game, game_kwargs, keywords)
        modes = render_modes(self.game) if renders else ()
        if render_mode is not None and render_mode not in modes:
            allowed = ", ".join(repr(mode) for mode in (None, *modes))
            raise ValueError(f"render_mode must be one of {allowed} for {owner}, got "
                             f"{render_mode!r}")
        self.metadata = {**type(self).metadata, "render_modes": list(modes)}
        if modes:
            self.metadata["render_fps"] = self.RENDER_FPS
        self.render_mode = render_mode
        self._renderer = None if render_mode is None else Renderer(self.game, render_mode)
        self._last_joint_action: np.ndarray | None = None
        self.possible_agents = agent_names(self.game.n_agents)
        self.agent_action_spaces = {
            agent: self.game.agent_action_space(index)
            for index, agent in enumerate(self.possible_agents)
        }
        self.agent_observation_spaces = {
            agent: self.settings.observation_space() for agent in self.possible_agents
        }

    def render(self) -> np.ndarray | str | None:
        """The picture of the game after the last joint action (before the first step: with
        none), in the ``render_mode`` given at construction (``None``: nothing). See
        :mod:`marl_tr_envs.rendering` for the shapes: ``uint8 [256, 256, 3]`` for the
        two-agent differential game, ``[48 n, 256, 3]`` for other ``n``, a ``str`` for
        matrix games."""
        if self._renderer is None:
            return None
        return self._renderer.frame(self._last_joint_action)

    def _play(
        self, joint_actions: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Team rewards ``[...]`` of prepared joint actions ``[..., n]``: with and without noise."""
        rewards_without_noise = self.game.team_reward(joint_actions)
        return self.settings.add_noise(rewards_without_noise, rng), rewards_without_noise
