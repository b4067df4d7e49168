"""Games in which an agent has no signal, for ``test_signal_free.py`` (loaded by
'signal_free_envs:...' env strings; the test puts this directory on ``sys.path``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class SignalFreeEnv(ParallelEnv):
    """One-step game of ``n`` agents with ``Box(low, high, (1,))`` actions and observation 0.

    Team reward ``-(a_0 - target)^2``: every agent but agent 0 is ignored. With
    ``constant`` given, the reward is that constant: no agent has a signal.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "signal_free_env", "render_modes": []}

    def __init__(self, n: int = 2, target: float = 1.0, constant: float | None = None,
                 low: float = 0.0, high: float = 7.0) -> None:
        self.possible_agents = [f"agent_{i}" for i in range(n)]
        self.agents: list[str] = []
        self.target, self.constant = target, constant
        self.low, self.high = low, high

    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    def action_space(self, agent: str) -> spaces.Box:
        return spaces.Box(self.low, self.high, shape=(1,), dtype=np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.agents = list(self.possible_agents)
        return {a: np.zeros(1, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions):
        if self.constant is not None:
            value = float(self.constant)
        else:
            value = -float((np.asarray(actions["agent_0"])[0] - self.target) ** 2)
        agents, self.agents = self.agents, []
        return ({a: np.zeros(1, np.float32) for a in agents}, dict.fromkeys(agents, value),
                dict.fromkeys(agents, True), dict.fromkeys(agents, False),
                {a: {} for a in agents})


def signal_free_env(**kwargs: Any) -> SignalFreeEnv:
    """The factory the trainer calls."""
    return SignalFreeEnv(**kwargs)
