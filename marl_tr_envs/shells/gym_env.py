"""The Gymnasium joint view of a cooperative game: one ``gymnasium.Env`` acting for all agents."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import numpy as np

from marl_tr_envs.game import CooperativeGame
from marl_tr_envs.shells.base import GameShell

__all__ = ["GameEnv"]


class GameEnv(GameShell, gymnasium.Env):
    """A cooperative game as a single-agent Gymnasium env over the joint action.

    The action is the joint action (agent ``i``'s action is component ``i``), the reward the scalar
    team reward; per-agent rewards are in ``info["agent_rewards"]``. Out-of-bounds continuous
    actions are clipped onto the bounds; non-finite or wrongly shaped actions raise a
    ``ValueError`` before anything changes.

    Observation: ``[t / episode_length]`` (float32, shape (1,)), ``t`` the plays so far.

    Info keys: at reset, the game's facts (:meth:`CooperativeGame.info`, e.g. ``peak_rewards`` and
    ``higher_peak`` for the differential game); at each step also ``agent_rewards`` (float64
    ``[n]``) and ``reward_without_noise`` (the team reward before ``reward_noise``).

    Trainer-facing attributes: ``game``, ``possible_agents``, ``agent_action_spaces``,
    ``agent_observation_spaces`` (each agent observes the joint view's observation).

    Subclasses set :attr:`game_class` and then accept that game's keywords directly.

    Args:
        game: A game instance (the generic shell needs one; a subclass builds its own from
            ``game_kwargs`` when it is ``None``).
        episode_length: Plays per episode, >= 1 (default 1).
        reward_noise: Std of Gaussian noise on the team reward, >= 0 (default 0).
        render_mode: ``None`` (default), or one of the game's modes: ``"rgb_array"`` for the
            differential game, ``"ansi"`` for matrix games (see :mod:`marl_tr_envs.rendering`;
            :meth:`render` draws the game after the last joint action).
        **game_kwargs: The game's constructor keywords (subclasses only).

    Raises:
        ValueError: Invalid settings or an unknown keyword (the accepted ones are listed).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

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
        self.action_space = self.game.joint_action_space()
        self.observation_space = self.settings.observation_space()
        self._steps_taken = 0
        self._episode_over = True

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. ``seed`` reseeds the reward noise; ``options`` is ignored."""
        super().reset(seed=seed)
        self._steps_taken = 0
        self._episode_over = False
        self._last_joint_action = None
        return self.settings.observation(0), self.game.info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Play the game once with the joint ``action`` ``[n]``.

        Raises:
            ValueError: ``action`` of the wrong shape or not finite (nothing changes).
            RuntimeError: The episode is over (or never started): call :meth:`reset`.
        """
        joint_action = self.game.prepare_actions(action, batch_shape=())
        if self._episode_over:
            raise RuntimeError("the episode is over (or not started); call reset() first")
        noisy, clean = self._play(joint_action, self.np_random)
        reward, reward_without_noise = float(noisy), float(clean)
        self._last_joint_action = joint_action
        self._steps_taken += 1
        terminated = self._steps_taken >= self.settings.episode_length
        self._episode_over = terminated
        info = self.game.info()
        info["agent_rewards"] = self.game.agent_rewards(np.float64(reward))
        info["reward_without_noise"] = reward_without_noise
        return self.settings.observation(self._steps_taken), reward, terminated, False, info
