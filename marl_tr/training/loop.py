"""The sequential multi-agent trust-region loop (Algorithm 1, generalised).

Each iteration:

1. collect a batch with the current joint policy;
2. compute advantages with the centralised critic (GAE), optionally normalised;
3. ask the radius scheduler for ``delta_i`` (it sees a ``RadiusContext``);
4. draw the agent order (a fresh random permutation, or fixed);
5. update the agents one at a time, agent ``i`` with ``M_i = A * prod_{k before i}
   pi_k_new(a_k) / pi_k_old(a_k)`` (eq. 15), through the solver;
6. fit the critic; record each agent's radius, the divergence its step actually reached
   and its surrogate gain.

The loop knows nothing about which divergence, scheduler or solver it runs.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.radius.base import PreviousSteps
from marl_tr.solvers.base import AgentProblem, StepResult
from marl_tr.training.critic import gae, normalize
from marl_tr.training.env_adapters import NonFiniteRewardError
from marl_tr.training.radius_context import LoopRadiusContext
from marl_tr.training.rollout import Batch, Collector
from marl_tr.training.setup import RunParts

__all__ = ["SequentialTrustRegion", "TrainingError"]


class TrainingError(RuntimeError):
    """A run cannot continue (bad data from the env, a broken plug-in); names the iteration."""


class SequentialTrustRegion:
    """One run of the generic loop over already built parts (see ``build_parts``).

    Args:
        parts: the resolved config, env, policies, critic and plug-ins.
    """

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.config = config = parts.config
        self.env = parts.env
        self.policies = parts.policies
        self.critic = parts.critic
        self.divergence = parts.divergence
        self.scheduler = parts.scheduler
        self.solver = parts.solver
        self.n_agents = len(self.policies)
        seeds = np.random.SeedSequence(config.seed).spawn(3)
        self.torch_generator = torch.Generator().manual_seed(
            int(seeds[0].generate_state(1, np.uint64)[0] >> np.uint64(1))
        )
        self.order_rng = np.random.default_rng(seeds[1])
        self.env_seed = int(seeds[2].generate_state(1)[0])
        steps = config.batch_size // (config.num_envs or config.batch_size)
        self.collector = Collector(self.env, steps, parts.dtype, self.torch_generator)
        self.iteration = 0
        self.previous_params: list[Tensor] | None = None
        self.previous_steps: PreviousSteps | None = None
        self.scheduler.reset(self.n_agents)
        self.solver.reset(self.n_agents)
        self.collector.reset(self.env_seed)

    # -- one iteration -----------------------------------------------------------------------
    def collect(self) -> Batch:
        try:
            return self.collector.collect(self.policies)
        except NonFiniteRewardError as exc:
            raise TrainingError(f"iteration {self.iteration}: {exc}") from exc

    def advantages(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Per-sample advantages ``[N]`` (normalised if configured) and returns ``[T, E]``."""
        with torch.no_grad():
            values = self.critic(batch.states)
            if bool(batch.terminated.all()):  # one-step games: nothing to bootstrap from
                next_values = torch.zeros_like(values)
            else:
                next_values = self.critic(batch.final_states)
        advantages, returns = gae(
            batch.rewards, values, next_values, batch.terminated, batch.truncated,
            self.config.gamma, self.config.gae_lambda,
        )
        flat = advantages.reshape(-1)
        if self.config.normalize_advantages:
            flat = normalize(flat)
        return flat, returns

    def radii(self, batch: Batch, weights: Tensor) -> np.ndarray:
        context = LoopRadiusContext(
            self.iteration, self.policies, self.previous_params, batch.obs, batch.actions,
            batch.log_probs, weights, self.previous_steps,
        )
        radii = np.asarray(self.scheduler.radii(context), dtype=np.float64)
        if radii.shape != (self.n_agents,) or not (np.isfinite(radii).all() and (radii > 0).all()):
            raise TrainingError(
                f"iteration {self.iteration}: radius scheduler {self.scheduler.spec()!r} returned "
                f"{radii!r}; expected {self.n_agents} finite values > 0"
            )
        return radii

    def agent_order(self) -> np.ndarray:
        if self.config.agent_order == "fixed":
            return np.arange(self.n_agents)
        return self.order_rng.permutation(self.n_agents)

    def update_agent(self, agent: int, batch: Batch, weights: Tensor, radius: float) -> StepResult:
        """Agent ``agent``'s constrained step; a step that leaves non-finite parameters is
        undone (a warning, never NaN parameters)."""
        problem = AgentProblem(
            self.policies[agent], batch.obs[agent], batch.actions[agent], weights,
            batch.log_probs[agent], self.divergence, radius,
        )
        result = self.solver.step(problem, agent)
        if result.moved and not bool(torch.isfinite(self.policies[agent].flat_parameters()).all()):
            warnings.warn(
                f"iteration {self.iteration}: agent {agent}'s step produced non-finite "
                "parameters; step undone", RuntimeWarning, stacklevel=2,
            )
            result = problem.no_step("non-finite parameters")
        return result

    def step(self) -> dict[str, Any]:
        """Run one iteration; returns its metrics."""
        batch = self.collect()
        advantages, returns = self.advantages(batch)
        radii = self.radii(batch, advantages)
        order = self.agent_order()
        start_params = [policy.flat_parameters() for policy in self.policies]
        results: list[StepResult | None] = [None] * self.n_agents
        log_factor: Tensor | None = None  # sum of log-ratios of the agents updated so far
        limit = self.config.max_log_factor
        for agent in order:
            if log_factor is None:
                weights = advantages
            else:
                clamped = log_factor if limit is None else log_factor.clamp(-limit, limit)
                weights = advantages * torch.exp(clamped)  # eq. 15
            result = self.update_agent(int(agent), batch, weights, float(radii[agent]))
            results[agent] = result
            if result.moved:
                delta = result.new_log_prob - batch.log_probs[agent]
                log_factor = delta if log_factor is None else log_factor + delta
        critic_loss = self.critic.fit(batch.states, returns)
        self.previous_params = start_params
        done = [r for r in results if r is not None]
        self.previous_steps = PreviousSteps(
            radius=radii,
            divergence=np.array([r.divergence for r in done]),
            improvement=np.array([r.improvement for r in done]),
        )
        metrics = self._metrics(batch, radii, order, done, critic_loss)
        self.iteration += 1
        return metrics

    # -- metrics -----------------------------------------------------------------------------
    def _agent_keys(self, agent: int) -> dict[str, str]:
        """Column names of one agent's metrics (built once: this runs every iteration)."""
        cache = self.__dict__.setdefault("_key_cache", {})
        if agent not in cache:
            names = ["radius", "divergence", "constraint_ratio", "improvement", "moved",
                     *self.solver.info_keys, *self.policies[agent].summary()]
            cache[agent] = {name: f"{name}_{agent}" for name in names}
        return cache[agent]

    def _metrics(
        self, batch: Batch, radii: np.ndarray, order: np.ndarray, results: list[StepResult],
        critic_loss: float,
    ) -> dict[str, Any]:
        returns = batch.episode_returns
        row: dict[str, Any] = {
            "iteration": self.iteration,
            "reward_mean": float(batch.rewards.mean()),
            "episode_return_mean": sum(returns) / len(returns) if returns else math.nan,
            "critic_loss": critic_loss,
            "order": ",".join(map(str, order.tolist())),
        }
        radii_list = radii.tolist()
        for i, result in enumerate(results):
            keys = self._agent_keys(i)
            row[keys["radius"]] = radii_list[i]
            row[keys["divergence"]] = result.divergence
            row[keys["constraint_ratio"]] = result.divergence / radii_list[i]
            row[keys["improvement"]] = result.improvement
            row[keys["moved"]] = int(result.moved)
            for key in self.solver.info_keys:
                row[keys[key]] = result.info.get(key, math.nan)
            for key, value in self.policies[i].summary().items():
                row[keys[key]] = value
        return row

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (env state where the env supports it)."""
        return {
            "iteration": self.iteration,
            "policies": [p.state_dict() for p in self.policies],
            "critic": self.critic.state_dict(),
            "critic_optimizer": self.critic.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "solver": self.solver.state_dict(),
            "previous_params": self.previous_params,
            "previous_steps": self.previous_steps,
            "torch_generator": self.torch_generator.get_state(),
            "order_rng": self.order_rng.bit_generator.state,
            "collector": self.collector.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        for policy, policy_state in zip(self.policies, state["policies"]):
            policy.load_state_dict(policy_state)
        self.critic.load_state_dict(state["critic"])
        self.critic.optimizer.load_state_dict(state["critic_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.solver.load_state_dict(state["solver"])
        self.previous_params = state["previous_params"]
        self.previous_steps = state["previous_steps"]
        self.torch_generator.set_state(state["torch_generator"])
        self.order_rng.bit_generator.state = state["order_rng"]
        self.collector.load_state_dict(state["collector"])
