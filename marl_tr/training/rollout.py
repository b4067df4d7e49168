"""Collecting a batch with the current joint policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from marl_tr.policies import Policy
from marl_tr.training.env_adapters import MultiAgentVecEnv

__all__ = ["Batch", "Collector"]


@dataclass
class Batch:
    """``T`` steps of ``E`` env copies; per-sample tensors are time-major, ``N = T * E``.

    Attributes:
        obs: per agent ``[N, obs_dim_i]``.
        actions: per agent ``[N, act_dim_i]`` (continuous, unclipped) or ``[N]`` (discrete).
        log_probs: per agent ``log pi_old(a_i | o_i)`` ``[N]``.
        states: global states ``[T, E, S]``.
        final_states: true successor states ``[T, E, S]`` (before auto-reset).
        rewards: team rewards ``[T, E]``.
        terminated / truncated: ``[T, E]`` bool.
        episode_returns: undiscounted team returns of the episodes that ended in this batch.
    """

    obs: list[Tensor]
    actions: list[Tensor]
    log_probs: list[Tensor]
    states: Tensor
    final_states: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    episode_returns: list[float] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.rewards.numel())


class Collector:
    """Steps a ``MultiAgentVecEnv`` with the agents' policies.

    Args:
        env: the batched environment.
        steps_per_env: ``T`` steps of every copy per batch.
        dtype: torch dtype of observations and actions.
        generator: torch generator for action sampling.
    """

    def __init__(
        self, env: MultiAgentVecEnv, steps_per_env: int, dtype: torch.dtype,
        generator: torch.Generator,
    ) -> None:
        self.env = env
        self.steps_per_env = steps_per_env
        self.dtype = dtype
        self.generator = generator
        self._obs: list[np.ndarray] | None = None
        self._state: np.ndarray | None = None
        self._returns = np.zeros(env.num_envs)

    def reset(self, seed: int | None) -> None:
        self._obs, self._state = self.env.reset(seed=seed)
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

    @torch.no_grad()
    def collect(self, policies: Sequence[Policy]) -> Batch:
        """One batch of ``T * E`` joint transitions."""
        if self._obs is None:
            raise RuntimeError("call reset(seed) before collect()")
        n = len(policies)
        obs_steps: list[list[Tensor]] = [[] for _ in range(n)]
        act_steps: list[list[Tensor]] = [[] for _ in range(n)]
        logp_steps: list[list[Tensor]] = [[] for _ in range(n)]
        states, finals, rewards, terms, truncs = [], [], [], [], []
        episode_returns: list[float] = []
        for _ in range(self.steps_per_env):
            actions_np = []
            converted: dict[int, Tensor] = {}  # agents often share one observation array
            for i, policy in enumerate(policies):
                key = id(self._obs[i])
                if key not in converted:
                    converted[key] = self._tensor(self._obs[i])
                obs = converted[key]
                action, log_prob = policy.distribution(obs).sample_with_log_prob(self.generator)
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
                episode_returns.extend(self._returns[done].tolist())
                self._returns[done] = 0.0
            self._obs, self._state = step.obs, step.state
        if self.steps_per_env == 1:  # one step: no concatenation, just a leading time axis
            cat, stack = (lambda xs: xs[0]), (lambda xs: xs[0][None])
        else:
            cat, stack = torch.cat, np.stack
        return Batch(
            obs=[cat(xs) for xs in obs_steps],
            actions=[cat(xs) for xs in act_steps],
            log_probs=[cat(xs) for xs in logp_steps],
            states=self._tensor(stack(states)),
            final_states=self._tensor(stack(finals)),
            rewards=torch.as_tensor(stack(rewards), dtype=self.dtype),
            terminated=torch.as_tensor(stack(terms)),
            truncated=torch.as_tensor(stack(truncs)),
            episode_returns=episode_returns,
        )
