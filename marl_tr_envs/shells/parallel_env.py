"""The PettingZoo view of a cooperative game: a ``ParallelEnv`` with one action per agent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from marl_tr_envs.game import CooperativeGame
from marl_tr_envs.shells.base import GameShell

__all__ = ["GameParallelEnv"]


class GameParallelEnv(GameShell, ParallelEnv):
    """A cooperative game as a PettingZoo ``ParallelEnv``.

    Agents ``"agent_0" .. "agent_{n-1}"`` each send one action (a ``Box(low, high, (1,))`` value
    for the differential game, an integer for matrix games) and each receive the team reward.
    Every agent observes ``[t / episode_length]`` (float32, shape (1,)), which is also the global
    :meth:`state`. Out-of-bounds continuous actions are clipped; a missing, extra, non-finite or
    wrongly shaped action raises a ``ValueError`` before anything changes.

    Info per agent: at reset the game's facts (:meth:`CooperativeGame.info`); at each step also
    ``reward_without_noise`` (the team reward before ``reward_noise``).

    Args:
        game: A game instance (required by the generic class; subclasses build theirs from
            ``game_kwargs``).
        episode_length: Plays per episode, >= 1 (default 1).
        reward_noise: Std of Gaussian noise on the team reward, >= 0 (default 0).
        render_mode: ``None`` (default), or one of the game's modes: ``"rgb_array"`` for the
            differential game, ``"ansi"`` for matrix games (see :mod:`marl_tr_envs.rendering`).
        **game_kwargs: The game's constructor keywords (subclasses only).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "cooperative_game",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        game: CooperativeGame | None = None,
        *,
        episode_length: int = 1,
        reward_noise: float = 0.0,
        render_mode: str | None = None,
        **game_kwargs: Any,
    ) -> None:
        self._set_up_game(
            game,
            game_kwargs,
            episode_length=episode_length,
            reward_noise=reward_noise,
            render_mode=render_mode,
        )
        self.agents: list[str] = []
        self.action_spaces = self.agent_action_spaces
        self.observation_spaces = self.agent_observation_spaces
        self.state_space = self.settings.observation_space()
        self._steps_taken = 0
        self._np_random, _ = seeding.np_random()

    def observation_space(self, agent: str) -> spaces.Space:
        """The (cached) observation space of ``agent``."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """The (cached) action space of ``agent``."""
        return self.action_spaces[agent]

    def state(self) -> np.ndarray:
        """The global state ``[t / episode_length]``, float32 (1,): the game is stateless."""
        return self.settings.observation(self._steps_taken)

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: self.settings.observation(self._steps_taken) for agent in self.agents}

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode. ``seed`` reseeds the reward noise; ``options`` is ignored."""
        if seed is not None:
            self._np_random, _ = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        self._steps_taken = 0
        self._last_joint_action = None
        return self._observations(), {agent: self.game.info() for agent in self.agents}

    def _joint_action(self, actions: Mapping[str, Any]) -> np.ndarray:
        if not isinstance(actions, Mapping):
            raise ValueError(f"actions must be a dict keyed by agent, got {actions!r}")
        missing = [agent for agent in self.agents if agent not in actions]
        extra = [agent for agent in actions if agent not in self.agents]
        if missing or extra:
            raise ValueError(
                f"actions must have exactly one entry per live agent {self.agents}; "
                f"missing {missing}, unexpected {extra}"
            )
        joint = []
        for agent in self.possible_agents:
            value = np.asarray(actions[agent])
            if value.size != 1:
                raise ValueError(
                    f"the action of {agent} must be a single value (shape () or (1,)), got "
                    f"{actions[agent]!r}"
                )
            joint.append(value.reshape(()))
        return self.game.prepare_actions(np.stack(joint), batch_shape=())

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """Play the game once with one action per agent.

        Raises:
            ValueError: A missing, extra or invalid action (nothing changes).
            RuntimeError: No live agents: call :meth:`reset`.
        """
        if not self.agents:
            raise RuntimeError("no live agents (episode over or not started); call reset() first")
        joint_action = self._joint_action(actions)
        noisy, clean = self._play(joint_action, self._np_random)
        reward, reward_without_noise = float(noisy), float(clean)
        self._last_joint_action = joint_action
        self._steps_taken += 1
        terminated = self._steps_taken >= self.settings.episode_length

        observations = self._observations()
        rewards = dict.fromkeys(self.agents, reward)
        terminations = dict.fromkeys(self.agents, terminated)
        truncations = dict.fromkeys(self.agents, False)
        infos = {}
        for agent in self.agents:
            infos[agent] = self.game.info()
            infos[agent]["reward_without_noise"] = reward_without_noise
        if terminated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos
