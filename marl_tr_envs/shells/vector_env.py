"""A native, batched-numpy ``gymnasium.vector.VectorEnv`` for a cooperative game.

Registered as the ``vector_entry_point`` of every id of the suite, so
``gymnasium.make_vec("DiffGame-v0", num_envs=N)`` builds it. One numpy call per quantity for the
whole batch (no per-env Python loop), and same-step autoreset so one-step episodes never waste a
step on resets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from marl_tr_envs._validation import check_int
from marl_tr_envs.game import CooperativeGame
from marl_tr_envs.shells.base import GameShell

__all__ = ["GameVectorEnv"]


class GameVectorEnv(GameShell, VectorEnv):
    """``num_envs`` independent copies of a cooperative game, stepped as one batch.

    Actions are ``[num_envs, n]`` (column ``i`` is agent ``i``); ``step`` returns observations
    float32 ``[num_envs, 1]``, team rewards float64 ``[num_envs]``, terminations and truncations
    bool ``[num_envs]`` and a dict of batched infos.

    Autoreset is same-step (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``): a
    sub-environment whose episode ends is reset within that step, so the returned observation is
    the first one of its next episode and the episode's last observation goes into the infos.
    Info keys, following Gymnasium's vector conventions (each key ``k`` with a bool mask ``_k``
    [num_envs] saying which sub-environments it holds data for):

    * ``agent_rewards`` float64 ``[num_envs, n]`` and ``reward_without_noise`` float64
      ``[num_envs]``: the step just played, for every sub-environment (matching ``rewards``);
    * when some episode ended: ``final_obs`` float32 ``[num_envs, 1]`` (valid where
      ``_final_obs``) and ``final_info`` (the step infos of the ended episodes, masked by
      ``final_info["_agent_rewards"]`` etc., with ``_final_info`` the same mask). Unlike
      ``SyncVectorEnv``, ``final_obs`` is a batched array rather than an object array of
      per-env observations: ``infos["final_obs"][i]`` reads the same for ended episodes, and it
      costs no per-env Python objects.

    The game's own facts are not repeated per step: read them from :attr:`game`.

    Trainer-facing attributes: ``game``, ``possible_agents``, ``agent_action_spaces``,
    ``agent_observation_spaces``, ``single_action_space`` (the joint action space).

    Args:
        num_envs: Number of sub-environments, >= 1.
        game: A game instance (required by the generic class; subclasses build theirs from
            ``game_kwargs``).
        episode_length: Plays per episode, >= 1 (default 1); the episode terminates after them.
        reward_noise: Std of Gaussian noise on the team reward, >= 0 (default 0).
        max_episode_steps: Optional time limit (>= 1): episodes still running after this many
            steps are truncated (as Gymnasium's ``TimeLimit``; ``make_vec`` passes the spec's).
        render_mode: Must be ``None``.
        **game_kwargs: The game's constructor keywords (subclasses only).

    Raises:
        ValueError: Invalid settings or an unknown keyword (the accepted ones are listed).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": [],
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        game: CooperativeGame | None = None,
        *,
        episode_length: int = 1,
        reward_noise: float = 0.0,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **game_kwargs: Any,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, minimum=1)
        self.max_episode_steps = (
            None
            if max_episode_steps is None
            else check_int("max_episode_steps", max_episode_steps, minimum=1)
        )
        self._set_up_game(
            game,
            game_kwargs,
            episode_length=episode_length,
            reward_noise=reward_noise,
            render_mode=render_mode,
            shell_keywords=("num_envs", "max_episode_steps"),
            renders=False,
        )
        self.single_action_space = self.game.joint_action_space()
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = self.settings.observation_space()
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._steps_taken = np.zeros(self.num_envs, dtype=np.int64)
        self._started = False
        self._block_rngs: list[np.random.Generator] | None = None

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every sub-environment's episode.

        Args:
            seed: An int reseeds the reward noise (one generator for the whole batch). A
                sequence of ``k`` ints (``k`` dividing ``num_envs``) splits the copies into
                ``k`` equal consecutive blocks with a generator each, seeded as a batch of
                one block would be with that int: block ``j`` then draws exactly the noise of
                a ``num_envs / k``-copy env reset with ``seed[j]`` (Gymnasium's one seed per
                sub-environment is ``k = num_envs``).
            options: Ignored (the games have no configurable start).

        Returns:
            Observations float32 ``[num_envs, 1]`` (all zero) and an empty info dict.
        """
        if isinstance(seed, Sequence) and not isinstance(seed, str):
            seeds = [int(s) for s in seed]
            if not seeds or self.num_envs % len(seeds):
                raise ValueError(
                    f"a seed sequence needs a length that divides num_envs={self.num_envs}, "
                    f"got {len(seeds)} seeds"
                )
            super().reset(seed=seeds[0])
            self._block_rngs = [seeding.np_random(s)[0] for s in seeds]
        else:
            if seed is not None and not isinstance(seed, (int, np.integer)):
                raise ValueError(f"seed must be an int, a sequence of ints or None, got {seed!r}")
            super().reset(seed=seed)
            self._block_rngs = None
        self._steps_taken[:] = 0
        self._started = True
        return self.settings.observation(self._steps_taken), {}

    def _add_noise(self, rewards: np.ndarray) -> np.ndarray:
        """Reward noise from the batch's generator, or block by block from theirs."""
        if not self._block_rngs:
            return self.settings.add_noise(rewards, self.np_random)
        blocks = np.split(rewards, len(self._block_rngs))
        return np.concatenate([self.settings.add_noise(block, rng)
                               for block, rng in zip(blocks, self._block_rngs)])

    def get_state(self) -> dict[str, Any]:
        """A picklable snapshot (noise generators and episode clocks) for exact resumption."""
        return {
            "rng": self.np_random.bit_generator.state,
            "block_rngs": (None if not self._block_rngs
                           else [rng.bit_generator.state for rng in self._block_rngs]),
            "steps_taken": self._steps_taken.copy(),
            "started": self._started,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s snapshot."""
        self.np_random.bit_generator.state = state["rng"]
        blocks = state.get("block_rngs")
        self._block_rngs = None
        if blocks:
            self._block_rngs = [np.random.Generator(np.random.PCG64()) for _ in blocks]
            for rng, saved in zip(self._block_rngs, blocks):
                rng.bit_generator.state = saved
        self._steps_taken[:] = state["steps_taken"]
        self._started = bool(state["started"])

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Play every sub-environment once with ``actions`` ``[num_envs, n]``.

        Raises:
            ValueError: Actions of the wrong shape, non-finite or (discrete games) invalid;
                nothing changes.
            RuntimeError: :meth:`reset` was never called.
        """
        joint_actions = self.game.prepare_actions(actions, batch_shape=(self.num_envs,))
        if not self._started:
            raise RuntimeError("call reset() before step()")
        rewards_without_noise = self.game.team_reward(joint_actions)
        rewards = self._add_noise(rewards_without_noise)
        agent_rewards = self.game.agent_rewards(rewards)

        self._steps_taken += 1
        terminations = self._steps_taken >= self.settings.episode_length
        if self.max_episode_steps is None:
            truncations = np.zeros(self.num_envs, dtype=np.bool_)
        else:
            truncations = self._steps_taken >= self.max_episode_steps
        ended = terminations | truncations
        all_valid = np.ones(self.num_envs, dtype=np.bool_)
        infos: dict[str, Any] = {
            "agent_rewards": agent_rewards,
            "_agent_rewards": all_valid,
            "reward_without_noise": rewards_without_noise,
            "_reward_without_noise": all_valid.copy(),
        }
        if ended.any():
            infos["final_obs"] = self.settings.observation(self._steps_taken)
            infos["_final_obs"] = ended
            infos["final_info"] = {
                "agent_rewards": agent_rewards.copy(),
                "_agent_rewards": ended.copy(),
                "reward_without_noise": rewards_without_noise.copy(),
                "_reward_without_noise": ended.copy(),
            }
            infos["_final_info"] = ended.copy()
            self._steps_taken[ended] = 0
        observations = self.settings.observation(self._steps_taken)
        return observations, rewards, terminations, truncations, infos
