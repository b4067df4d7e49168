"""Evaluation episodes: the joint policy played for whole episodes, by default
deterministically (each agent's most likely action: the Gaussian mean, the categorical
argmax; the env clips Box actions to their bounds).

``evaluate`` spreads the episodes over the env's copies: an env of ``R * K`` copies plays
``K`` episodes per replica, one per copy, each from a seeded reset, and every copy's first
episode is what counts (a copy that finishes early waits for the others; nothing of a later
episode is recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from marl_tr.policies import Policy
from marl_tr.training.env_adapters import MultiAgentVecEnv
from marl_tr.training.rollout import with_agent_ids
from marl_tr.validation import check_int

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """The episodes of one evaluation, per replica.

    Attributes:
        returns: undiscounted team returns ``[R, K]`` (with a ``"mean"`` team reward: the
            agents' mean return).
        team_returns: the sum over agents of each agent's return ``[R, K]``.
        lengths: episode lengths ``[R, K]``.
    """

    returns: np.ndarray
    team_returns: np.ndarray
    lengths: np.ndarray

    def means(self) -> dict[str, list[float]]:
        """Per replica: ``eval_return_mean``, ``eval_return_team`` and ``eval_length_mean``."""
        return {"eval_return_mean": self.returns.mean(1).tolist(),
                "eval_return_team": self.team_returns.mean(1).tolist(),
                "eval_length_mean": self.lengths.mean(1).tolist()}


@torch.no_grad()
def evaluate(
    policies: Sequence[Policy], env: MultiAgentVecEnv, seeds: Sequence[int] | int, *,
    replicas: int = 1, dtype: torch.dtype = torch.float32, agent_ids: bool = False,
    deterministic: bool = True, generators: Sequence[torch.Generator] | None = None,
    max_steps: int = 100_000,
) -> EvalResult:
    """Play one episode in every copy of ``env`` with the joint policy.

    Args:
        policies: per agent, ``R`` replicas each (replica ``r`` plays the copies of block
            ``r``: copies ``r*K .. r*K+K-1``).
        env: ``R * K`` copies.
        seeds: one int per replica (copy ``k`` of block ``r`` is reset with
            ``seeds[r] + k``), or one int.
        replicas: ``R``.
        dtype: torch dtype of the observations.
        agent_ids: append each agent's one-hot id to its observations (a shared policy).
        deterministic: play each distribution's mode; else sample (``generators``: one per
            replica).
        max_steps: a bound on the steps of the longest episode.

    Returns:
        The returns and lengths of the ``K`` episodes of each replica.

    Raises:
        RuntimeError: an episode lasted more than ``max_steps`` steps.
    """
    replicas = check_int("replicas", replicas, minimum=1)
    if env.num_envs % replicas:
        raise ValueError(f"{env.num_envs} env copies do not split into {replicas} replicas")
    if not deterministic and generators is None:
        raise ValueError("sampled evaluation (deterministic=False) needs generators")
    copies = env.num_envs
    n = len(policies)
    obs, _ = env.reset(seed=seeds)
    returns = np.zeros(copies)
    team = np.zeros(copies)
    lengths = np.zeros(copies, dtype=np.int64)
    done = np.zeros(copies, dtype=bool)
    for _ in range(max_steps):
        features = with_agent_ids(obs) if agent_ids else obs
        actions = []
        for policy, rows in zip(policies, features):
            dist = policy.distribution(torch.as_tensor(rows, dtype=dtype))
            action = dist.mode() if deterministic else dist.sample(generators)
            actions.append(action.numpy())
        step = env.step(actions)
        live = ~done
        returns[live] += step.reward[live]
        per_agent = (step.agent_rewards.sum(1) if step.agent_rewards is not None
                     else n * step.reward)
        team[live] += per_agent[live]
        lengths[live] += 1
        done |= step.terminated | step.truncated
        if done.all():
            shape = (replicas, copies // replicas)
            return EvalResult(returns.reshape(shape), team.reshape(shape),
                              lengths.reshape(shape))
        obs = step.obs
    raise RuntimeError(f"an evaluation episode lasted more than max_steps={max_steps} steps")
