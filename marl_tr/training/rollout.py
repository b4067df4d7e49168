"""Collecting a batch with the current joint policy, in every replica."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from marl_tr.policies import Policy
from marl_tr.training.env_adapters import MultiAgentVecEnv

__all__ = ["Batch", "Collector"]


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
            ended in this batch.
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
    """

    def __init__(
        self, env: MultiAgentVecEnv, steps_per_env: int, dtype: torch.dtype,
        generators: Sequence[torch.Generator],
    ) -> None:
        self.env = env
        self.steps_per_env = steps_per_env
        self.dtype = dtype
        self.generators = list(generators)
        self.replicas = len(self.generators)
        self.copies = env.num_envs // self.replicas
        self._obs: list[np.ndarray] | None = None
        self._state: np.ndarray | None = None
        self._returns = np.zeros(env.num_envs)

    def reset(self, seeds: Sequence[int] | int | None) -> None:
        self._obs, self._state = self.env.reset(seed=seeds)
        self._returns = np.zeros(self.env.num_envs)

    def state_dict(self) -> dict:
        """The pending observations, running returns and the env's state (if it has one)."""
        return {
            "obs": self._obs, "state": self._state, "returns": self._returns.copy(),
            "env": self.env.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()``; exact only if the env could save its state."""
        if state.get("env") is None:
            raise ValueError(
                f"{type(self.env).__name__} cannot save or restore its state, so this run "
                "cannot be resumed exactly"
            )
        self.env.set_state(state["env"])
        self._obs, self._state = state["obs"], state["state"]
        self._returns = np.asarray(state["returns"]).copy()

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

    @torch.no_grad()
    def collect(self, policies: Sequence[Policy]) -> Batch:
        """One batch of ``T * E`` joint transitions per replica."""
        if self._obs is None:
            raise RuntimeError("call reset(seeds) before collect()")
        n = len(policies)
        obs_steps: list[list[Tensor]] = [[] for _ in range(n)]
        act_steps: list[list[Tensor]] = [[] for _ in range(n)]
        logp_steps: list[list[Tensor]] = [[] for _ in range(n)]
        states, finals, rewards, terms, truncs = [], [], [], [], []
        episode_returns: list[list[float]] = [[] for _ in range(self.replicas)]
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
            self._returns += step.reward
            done = step.terminated | step.truncated
            if done.any():
                for r in range(self.replicas):
                    block = slice(r * self.copies, (r + 1) * self.copies)
                    episode_returns[r].extend(self._returns[block][done[block]].tolist())
                self._returns[done] = 0.0
            self._obs, self._state = step.obs, step.state
        return Batch(
            obs=[self._replica_major(xs) for xs in obs_steps],
            actions=[self._replica_major(xs) for xs in act_steps],
            log_probs=[self._replica_major(xs) for xs in logp_steps],
            states=self._team(states, self.dtype),
            final_states=self._team(finals, self.dtype),
            rewards=self._team(rewards, self.dtype),
            terminated=self._team(terms),
            truncated=self._team(truncs),
            episode_returns=episode_returns,
        )
