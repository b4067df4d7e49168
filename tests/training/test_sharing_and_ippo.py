"""Parameter sharing (one policy, agent-id inputs, one update on every agent's samples) and
IPPO's per-agent critics on local observations (shapes, a hand-computed case, own rewards)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

import marl_tr
from marl_tr.config import TrainConfig
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.setup import build_parts


class LocalToy(ParallelEnv):
    """Two agents on a line, episodes of 4 steps from uniform starts: agent 0 observes
    ``[x]``, agent 1 ``[y, 2y]``; each is rewarded ``-|own position|`` (per-agent rewards
    differ); actions move the agent by the clipped amount. Its state is plain data."""

    metadata = {"name": "local_toy"}  # noqa: RUF012 - PettingZoo's attribute

    def __init__(self) -> None:
        self.possible_agents = ["a", "b"]
        self._obs_spaces = {"a": spaces.Box(-np.inf, np.inf, (1,), np.float32),
                            "b": spaces.Box(-np.inf, np.inf, (2,), np.float32)}
        self._act = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act

    def _obs(self) -> dict[str, np.ndarray]:
        return {"a": np.array([self.x], np.float32),
                "b": np.array([self.y, 2 * self.y], np.float32)}

    def reset(self, seed: int | None = None, options: Any = None):
        if seed is not None or not hasattr(self, "rng"):
            self.rng = np.random.default_rng(seed)
        self.x, self.y = self.rng.uniform(-1, 1, 2)
        self.t = 0
        self.agents = list(self.possible_agents)
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        self.x += float(np.asarray(actions["a"]).reshape(()))
        self.y += float(np.asarray(actions["b"]).reshape(()))
        self.t += 1
        done = self.t >= 4
        rewards = {"a": -abs(self.x), "b": -abs(self.y)}
        obs = self._obs()
        if done:
            self.agents = []
        return (obs, rewards, dict.fromkeys(self.possible_agents, False),
                dict.fromkeys(self.possible_agents, done), {a: {} for a in self.possible_agents})

    def get_state(self) -> dict[str, Any]:  # plain data: runs on this env resume exactly
        return {"x": self.x, "y": self.y, "t": self.t, "agents": list(self.agents),
                "rng": self.rng.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.x, self.y, self.t = state["x"], state["y"], state["t"]
        self.agents = list(state["agents"])
        self.rng.bit_generator.state = state["rng"]


def local_toy() -> LocalToy:
    return LocalToy()


IPPO = dict(env="test_sharing_and_ippo:local_toy", preset="ippo", batch_size=16, num_envs=2,
            critic_hidden=(), policy_hidden=(4,), eval_interval=0, seed=0, dtype="float64")


def test_ippo_critics_see_only_their_agents_observations():
    """Per-agent critics: agent i's input size is its own observation's; V_i on a batch is
    the hand-computed linear function of o_i alone, whatever the other agent observes; and
    each head is trained on its own agent's reward."""
    parts = build_parts(TrainConfig(**IPPO))
    loop = SequentialTrustRegion(parts)
    try:
        assert parts.config.critic == "v_local" and parts.config.agent_order == "simultaneous"
        assert [c.net[0].weight.shape[1] for c in parts.critics] == [1, 2]  # [R, in, out]
        with torch.no_grad():
            parts.critics[0].net[0].weight.copy_(torch.tensor([[[2.0]]]))
            parts.critics[0].net[0].bias.fill_(0.5)
            parts.critics[1].net[0].weight.copy_(torch.tensor([[[1.0], [-3.0]]]))
            parts.critics[1].net[0].bias.fill_(-1.0)
        batch = loop.collect()
        values, _ = loop.values.values(batch)  # [H, R, T, E]
        x = batch.obs[0][:, 0].reshape(values.shape[1:])
        y = batch.obs[1][:, 0].reshape(values.shape[1:])
        torch.testing.assert_close(values[0], 2.0 * x + 0.5, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(values[1], y - 3.0 * (2 * y) - 1.0, rtol=1e-12, atol=1e-12)
        batch.obs[1] = batch.obs[1] * 100.0  # the other agent's observations change
        torch.testing.assert_close(loop.values.values(batch)[0][0], values[0])
        rewards = loop.values.rewards(batch)
        assert not torch.equal(rewards[0], rewards[1])
        torch.testing.assert_close(rewards.movedim(0, -1), batch.agent_rewards)
    finally:
        parts.close()


def test_ippo_resumes_exactly_with_its_per_agent_critics(tmp_path):
    """Both heads, their optimisers, the value normalisation and the minibatch streams travel
    with the checkpoint, and this env saves its state: the resumed run's metrics.csv is the
    uninterrupted run's, byte for byte."""
    config = dict(IPPO, value_norm=True, critic_minibatches=2, critic_epochs=2)
    full = marl_tr.train(iterations=4, run_dir=str(tmp_path / "a"), **config)
    assert np.isfinite(full.column("critic_loss")).all()
    marl_tr.train(iterations=2, run_dir=str(tmp_path / "b"), **config)
    raw = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert len(raw["value_function"]["heads"]) == 1  # the second agent's critic
    assert raw["value_function"]["norm"]["count"].shape == (2,)  # 2 heads x 1 replica
    resumed = marl_tr.train(resume=tmp_path / "b", iterations=4)
    assert (tmp_path / "a" / "metrics.csv").read_text() == \
        (tmp_path / "b" / "metrics.csv").read_text()
    assert "exactly" in (tmp_path / "b" / "run.log").read_text()
    for a, b in zip(full.policies, resumed.policies):
        assert torch.equal(a.flat_parameters(), b.flat_parameters())


def test_shared_parameters_one_policy_with_agent_ids():
    """One policy for the three agents, whose inputs end with the agent's one-hot id; one
    update per iteration on the three agents' samples (3 x B rows), logged for every agent."""
    config = TrainConfig(env_kwargs={"n": 3}, share_parameters=True, policy_hidden=(6,),
                         batch_size=10, iterations=2, seed=0, dtype="float64")
    parts = build_parts(config)
    loop = SequentialTrustRegion(parts)
    seen = []
    original = loop.update_position

    def record(agents, batch, weights, radii, team_params=None, action_values=None):
        result, old = original(agents, batch, weights, radii, team_params, action_values)
        seen.append((weights.shape[0], result.new_log_prob.shape[0]))
        return result, old

    loop.update_position = record
    try:
        assert len({id(p) for p in parts.policies}) == 1
        policy = parts.policies[0]
        assert policy.obs_dim == 1 + 3  # the observation and the agent id
        single = build_parts(TrainConfig(env_kwargs={"n": 3}, policy_hidden=(6,)))
        single.close()
        assert policy.num_parameters == single.policies[0].num_parameters + 3 * 6
        batch = loop.collect()
        for i in range(3):
            ids = batch.obs[i][:, 1:]
            torch.testing.assert_close(ids, torch.eye(3, dtype=ids.dtype)[i].expand_as(ids))
        rows = loop.step()
        assert seen == [(30, 30)]  # one position: the group of three agents
        assert rows[0]["order"] == "0"
        for key in ("divergence", "moved", "improvement"):
            assert rows[0][f"{key}_0"] == rows[0][f"{key}_1"] == rows[0][f"{key}_2"]
        assert rows[0]["moved_0"] == 1
    finally:
        parts.close()


def test_shared_parameters_learn_the_differential_game():
    result = marl_tr.train(env_kwargs={"n": 3}, share_parameters=True, policy_hidden=(8,),
                           iterations=40, seed=0)
    rewards = result.column("reward_mean")
    assert rewards[-5:].mean() > rewards[:5].mean() + 0.05


@pytest.mark.parametrize(("overrides", "message"), [
    ({"env": "test_sharing_and_ippo:local_toy", "share_parameters": True},
     r"share_parameters=True needs agents with identical spaces .* 'b' has"),
    ({"share_parameters": True, "preset": "wmatrpo-dual"},
     r"share_parameters=True updates all agents as one policy, but critic 'q'"),
])
def test_sharing_is_refused_where_it_cannot_work(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_parts(TrainConfig(**{"policy_hidden": (4,), **overrides}))
