"""Plug-ins the loop tests load by 'module:Class' / 'module:factory' strings.

``tests/training`` is put on ``sys.path`` by the ``plugins`` fixture (conftest.py).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl_tr.solvers import AgentProblem, Solver, StepResult


class ShiftSolver(Solver):
    """Moves no parameter but reports ``log pi_new = log pi_old + shift``, with
    ``shift = scale * (agent + 1) * linspace(-1, 1, B)``: a hand-computable eq. 15 factor.

    Every call is recorded in ``ShiftSolver.calls`` (agent, weights, the reported shift).

    Args:
        scale: size of the reported log-ratio.
        frozen_agent: this agent reports ``moved=False`` (with a non-zero shift, which the
            loop must ignore).
    """

    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, scale: float = 1.0, frozen_agent: int = -1) -> None:
        self.scale = float(scale)
        self.frozen_agent = int(frozen_agent)

    @staticmethod
    def shift(scale: float, agent: int, batch: int, dtype: torch.dtype) -> torch.Tensor:
        return scale * (agent + 1) * torch.linspace(-1.0, 1.0, batch, dtype=dtype)

    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        dtype, batch = problem.old_log_prob.dtype, problem.batch_size
        shift = torch.cat([self.shift(self.scale, int(a), batch, dtype) for a in agents])
        ShiftSolver.calls.append({"agent": int(agents[0]), "agents": agents.copy(),
                                  "weights": problem.weights.clone(), "shift": shift})
        zeros = np.zeros(len(agents))
        return StepResult(
            moved=agents != self.frozen_agent, divergence=zeros, improvement=zeros,
            new_log_prob=problem.old_log_prob + shift, expected_improvement=zeros,
            reasons=[""] * len(agents),
        )


class ToyParallelEnv(ParallelEnv):
    """A minimal PettingZoo ParallelEnv: ``n`` agents with Box(-10, 10, (1,)) actions, reward
    ``reward - (a_i - target)^2`` per agent, one-step episodes (terminated), observation 0.

    ``bad_step``: on this step (counted over the env's lifetime, 0-based) agent
    ``bad_agent`` gets ``bad_value`` instead (NaN by default).
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "toy_parallel_env", "render_modes": []}

    def __init__(self, n: int = 2, reward: float = 1.0, target: float | None = None,
                 bad_step: int | None = None, bad_agent: int = 1,
                 bad_value: float = math.nan, action_dims: tuple[int, ...] | None = None
                 ) -> None:
        self.possible_agents = [f"agent_{i}" for i in range(n)]
        self.action_dims = tuple(action_dims) if action_dims is not None else (1,) * n
        self.agents: list[str] = []
        self.reward = reward
        self.target = target
        self.bad_step = bad_step
        self.bad_agent = bad_agent
        self.bad_value = bad_value
        self.steps = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    def action_space(self, agent: str) -> spaces.Box:
        dim = self.action_dims[self.possible_agents.index(agent)]
        return spaces.Box(-10.0, 10.0, shape=(dim,), dtype=np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents = list(self.possible_agents)
        obs = {a: np.zeros(1, dtype=np.float32) for a in self.agents}
        return obs, {a: {} for a in self.agents}

    def step(self, actions):
        rewards = {}
        for i, agent in enumerate(self.agents):
            value = self.reward
            if self.target is not None:
                value -= float(np.mean((np.asarray(actions[agent]) - self.target) ** 2))
            if self.steps == self.bad_step and i == self.bad_agent:
                value = self.bad_value
            rewards[agent] = value
        self.steps += 1
        obs = {a: np.zeros(1, dtype=np.float32) for a in self.agents}
        done = dict.fromkeys(self.agents, True)
        trunc = dict.fromkeys(self.agents, False)
        infos = {a: {} for a in self.agents}
        self.agents = []
        return obs, rewards, done, trunc, infos


def toy_env(**kwargs: Any) -> ToyParallelEnv:
    """The factory the trainer calls (``env="loop_plugins:toy_env"``)."""
    return ToyParallelEnv(**kwargs)


class NaNSolver(Solver):
    """Writes NaN into the policy's parameters and claims it moved (a broken plug-in)."""

    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        problem.set_params(torch.full_like(problem.old_params, math.nan))
        zeros = np.zeros(len(agents))
        return StepResult(moved=np.ones(len(agents), dtype=bool), divergence=zeros,
                          improvement=zeros, new_log_prob=problem.old_log_prob,
                          expected_improvement=zeros, reasons=[""] * len(agents))
