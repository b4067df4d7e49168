"""Collecting a batch with the current joint policy, in every replica.

The collector keeps, per env copy, the episode under way (its observations, team and
per-agent returns, length) across batches: a batch of ``T`` steps per copy holds whole and
partial episodes, and an episode's return is reported in the batch where it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from marl_tr.policies import Policy
from marl_tr.training.env_adapters import EnvStep, MultiAgentVecEnv, NonFiniteRewardError

__all__ = ["Batch", "Collector", "with_agent_ids"]


def with_agent_ids(obs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Append agent ``i``'s one-hot id ``[n]`` to each of its observation rows ``[E, d]``
    (the input of a policy shared by the agents)."""
    n = len(obs)
    out = []
    for i, rows in enumerate(obs):
        ids = np.zeros((rows.shape[0], n), dtype=rows.dtype)
        ids[:, i] = 1
        out.append(np.concatenate([rows, ids], axis=1))
    return out


@dataclass
class Batch:
    """``T`` steps of ``E`` env copies in each of ``R`` replicas (``B = T * E`` per replica).

    Per-sample tensors have ``R*B`` rows ordered (replica, step, copy).

    Attributes:
        obs: per agent ``[R*B, obs_dim_i]``.
        actions: per agent ``[R*B, act_dim_i]`` (continuous, unclipped) or ``[R*B]``.
        log_probs: per agent ``log pi_old(a_i | o_i)`` ``[R*B]``.
        states: global states ``[R, T, E, S]``.
        final_states: true successor states ``[R, T, E, S]`` (before auto-reset).
        rewards: team rewards ``[R, T, E]``.
        terminated / truncated: ``[R, T, E]`` bool.
        episode_returns: per replica, the undiscounted team returns of the episodes that
            ended in this batch (with a ``"mean"`` team reward: the agents' mean return).
        agent_rewards: per-agent rewards ``[R, T, E, n]`` where the env gives them, else
            ``None`` (every agent receives the team reward).
        final_obs: per agent, the true successor observations ``[R*B, obs_dim_i]`` (before
            auto-reset); collected only when asked for (per-agent critics), else ``None``.
        episode_team_returns: per replica, the sum over agents of each agent's undiscounted
            return, for the episodes that ended in this batch.
        episode_lengths: per replica, the steps of the episodes that ended in this batch.
    """

    obs: list[Tensor]
    actions: list[Tensor]
    log_probs: list[Tensor]
    states: Tensor
    final_states: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    episode_returns: list[list[float]]
    agent_rewards: Tensor | None = None
    final_obs: list[Tensor] | None = None
    episode_team_returns: list[list[float]] = field(default_factory=list)
    episode_lengths: list[list[int]] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def size(self) -> int:
        """``B``: samples per replica."""
        return int(self.rewards[0].numel())


class Collector:
    """Steps a ``MultiAgentVecEnv`` (copies replica-major) with the agents' policies.

    Args:
        env: the batched environment, ``R * E`` copies.
        steps_per_env: ``T`` steps of every copy per batch.
        dtype: torch dtype of observations and actions.
        generators: one torch generator per replica, for action sampling.
        agent_ids: append each agent's one-hot id to its observations (a shared policy).
        final_obs: also collect the agents' successor observations (per-agent critics).
    """

    def __init__(
        self, env: MultiAgentVecEnv, steps_per_env: int, dtype: torch.dtype,
        generators: Sequence[torch.Generator], agent_ids: bool = False,
        final_obs: bool = False,
    ) -> None:
        self.env = env
        self.steps_per_env = steps_per_env
        self.dtype = dtype
        self.generators = list(generators)
        self.replicas = len(self.generators)
        self.copies = env.num_envs // self.replicas
        self.agent_ids = agent_ids
        self.keep_final_obs = final_obs
        self._obs: list[np.ndarray] | None = None
        self._state: np.ndarray | None = None
        self._clear_episodes()

    def _clear_episodes(self) -> None:
        self._returns = np.zeros(self.env.num_envs)
        self._team_returns = np.zeros(self.env.num_envs)
        self._lengths = np.zeros(self.env.num_envs, dtype=np.int64)

    def _features(self, obs: list[np.ndarray]) -> list[np.ndarray]:
        return with_agent_ids(obs) if self.agent_ids else obs

    def reset(self, seeds: Sequence[int] | int | None) -> None:
        obs, self._state = self.env.reset(seed=seeds)
        self._obs = self._features(obs)
        self._clear_episodes()

    def restart(self, seeds: Sequence[int] | int | None) -> None:
        """Start fresh episodes in every copy from seeded resets (a resume whose env could not
        save its state): the episodes under way and their running returns are dropped."""
        self.reset(seeds)

    def state_dict(self) -> dict:
        """The pending observations, running episode statistics and the env's state (``None``
        where the env cannot give one)."""
        return {
            "obs": self._obs, "state": self._state, "returns": self._returns.copy(),
            "team_returns": self._team_returns.copy(), "lengths": self._lengths.copy(),
            "env": self.env.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly from ``state_dict()``.

        Raises:
            ValueError: the saved state holds no env state (the env could not give one): use
                ``restart`` instead.
        """
        if state.get("env") is None:
            raise ValueError(
                f"{type(self.env).__name__} cannot save or restore its state, so this run "
                "cannot be resumed exactly"
            )
        self.env.set_state(state["env"])
        self._obs, self._state = state["obs"], state["state"]
        self._returns = np.asarray(state["returns"]).copy()
        self._team_returns = np.asarray(state.get("team_returns", self._returns)).copy()
        self._lengths = np.asarray(state.get("lengths", np.zeros(self.env.num_envs,
                                                                 dtype=np.int64))).copy()

    def _tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, dtype=self.dtype)

    def _replica_major(self, steps: list[Tensor]) -> Tensor:
        """Per-step ``[R*E, ...]`` tensors -> ``[R*T*E, ...]`` ordered (replica, step, copy)."""
        if len(steps) == 1:
            return steps[0]
        stacked = torch.stack(steps)  # [T, R*E, ...]
        rest = stacked.shape[2:]
        grouped = stacked.view(len(steps), self.replicas, self.copies, *rest).transpose(0, 1)
        return grouped.reshape(-1, *rest)

    def _team(self, steps: list[np.ndarray], dtype: torch.dtype | None = None) -> Tensor:
        """Per-step ``[R*E, ...]`` arrays -> ``[R, T, E, ...]`` (a copy)."""
        if len(steps) == 1:
            only = steps[0]
            return torch.tensor(only.reshape(self.replicas, 1, self.copies, *only.shape[1:]),
                                dtype=dtype)
        stacked = np.stack(steps)  # [T, R*E, ...]
        grouped = stacked.reshape(len(steps), self.replicas, self.copies, *stacked.shape[2:])
        return torch.as_tensor(np.ascontiguousarray(grouped.swapaxes(0, 1)), dtype=dtype)

    def _check_representable(self, steps: list[np.ndarray]) -> None:
        """``NonFiniteRewardError`` for a finite reward that the training dtype cannot hold
        (the env checked its rewards for NaN and inf, in their own precision)."""
        largest = torch.finfo(self.dtype).max
        biggest = max(float(np.abs(step).max()) for step in steps)
        if biggest > largest:
            raise NonFiniteRewardError(
                f"the environment returned a reward of magnitude {biggest:.3g}, beyond the "
                f"training dtype's range ({str(self.dtype).removeprefix('torch.')}: up to "
                f"{largest:.3g}); rescale the rewards or train with dtype='float64'")

    @torch.no_grad()
    def collect(self, policies: Sequence[Policy]) -> Batch:
        """One batch of ``T * E`` joint transitions per replica."""
        if self._obs is None:
            raise RuntimeError("call reset(seeds) before collect()")
        n = len(policies)
        obs_steps: list[list[Tensor]] = [[] for _ in range(n)]
        act_steps: list[list[Tensor]] = [[] for _ in range(n)]
        logp_steps: list[list[Tensor]] = [[] for _ in range(n)]
        states, finals, rewards, terms, truncs, agent_rewards = [], [], [], [], [], []
        final_obs: list[list[Tensor]] = [[] for _ in range(n)]
        episode_returns: list[list[float]] = [[] for _ in range(self.replicas)]
        team_returns: list[list[float]] = [[] for _ in range(self.replicas)]
        lengths: list[list[int]] = [[] for _ in range(self.replicas)]
        for _ in range(self.steps_per_env):
            actions_np = []
            converted: dict[int, Tensor] = {}  # agents often share one observation array
            for i, policy in enumerate(policies):
                key = id(self._obs[i])
                if key not in converted:
                    converted[key] = self._tensor(self._obs[i])
                obs = converted[key]
                action, log_prob = policy.distribution(obs).sample_with_log_prob(
                    self.generators)
                obs_steps[i].append(obs)
                act_steps[i].append(action)
                logp_steps[i].append(log_prob)
                actions_np.append(action.numpy())
            states.append(self._state)
            step = self.env.step(actions_np)
            finals.append(step.final_state)
            rewards.append(step.reward)
            terms.append(step.terminated)
            truncs.append(step.truncated)
            if step.agent_rewards is not None:
                agent_rewards.append(step.agent_rewards)
                self._team_returns += step.agent_rewards.sum(1)
            else:
                self._team_returns += n * step.reward
            if self.keep_final_obs:
                for i, rows in enumerate(self._features(_final_obs(step))):
                    final_obs[i].append(self._tensor(rows))
            self._returns += step.reward
            self._lengths += 1
            done = step.terminated | step.truncated
            if done.any():
                for r in range(self.replicas):
                    block = slice(r * self.copies, (r + 1) * self.copies)
                    ended = done[block]
                    episode_returns[r].extend(self._returns[block][ended].tolist())
                    team_returns[r].extend(self._team_returns[block][ended].tolist())
                    lengths[r].extend(self._lengths[block][ended].tolist())
                self._returns[done] = 0.0
                self._team_returns[done] = 0.0
                self._lengths[done] = 0
            self._obs, self._state = self._features(step.obs), step.state
        complete = len(agent_rewards) == self.steps_per_env
        self._check_representable(rewards + (agent_rewards if complete else []))
        team_rewards = self._team(rewards, self.dtype)
        per_agent = self._team(agent_rewards, self.dtype) if complete else None
        return Batch(
            obs=[self._replica_major(xs) for xs in obs_steps],
            actions=[self._replica_major(xs) for xs in act_steps],
            log_probs=[self._replica_major(xs) for xs in logp_steps],
            states=self._team(states, self.dtype),
            final_states=self._team(finals, self.dtype),
            rewards=team_rewards,
            terminated=self._team(terms),
            truncated=self._team(truncs),
            episode_returns=episode_returns,
            agent_rewards=per_agent,
            final_obs=([self._replica_major(xs) for xs in final_obs] if self.keep_final_obs
                       else None),
            episode_team_returns=team_returns,
            episode_lengths=lengths,
        )


def _final_obs(step: EnvStep) -> list[np.ndarray]:
    """The agents' true successor observations of a step (``step.obs`` where the env gives
    none of its own)."""
    return step.obs if step.final_obs is None else step.final_obs
