"""The PettingZoo views: PettingZoo's own conformance tests, make_parallel, state, bad input."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import marl_tr_envs
from marl_tr_envs import make_parallel
from marl_tr_envs.diff_game import parallel_env as diff_game_parallel_env

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # importing pettingzoo.test warns
    from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
    from pettingzoo.utils.conversions import parallel_to_aec

CONFIGS = [
    ("DiffGame-v0", {"n": 1}),
    ("DiffGame-v0", {"n": 3}),
    ("DiffGame-v0", {"n": 7, "episode_length": 3, "reward_noise": 0.2}),
    ("ClimbingGame-v0", {}),
    ("PenaltyGame-v0", {"k": -25.0, "reward_noise": 1.0, "episode_length": 2}),
]


@pytest.mark.parametrize(("env_id", "kwargs"), CONFIGS)
def test_pettingzoo_conformance(env_id, kwargs, strict_warnings):
    with strict_warnings():
        parallel_api_test(make_parallel(env_id, **kwargs), num_cycles=20)
        api_test(parallel_to_aec(make_parallel(env_id, **kwargs)), num_cycles=20)
        parallel_seed_test(lambda: make_parallel(env_id, **kwargs), num_cycles=20)


def test_every_suite_id_has_a_parallel_env():
    assert {env_id for env_id, _ in CONFIGS} == set(marl_tr_envs.SUITE)
    for env_id, entry in marl_tr_envs.SUITE.items():
        assert isinstance(make_parallel(env_id), entry.parallel_class)
    assert isinstance(make_parallel("marl_tr_envs:DiffGame-v0"), marl_tr_envs.DiffGameParallelEnv)


def test_documented_factory_and_spaces():
    env = diff_game_parallel_env(n=4, low=-2.0, high=3.0, basin_gap=2.0)
    assert env.possible_agents == ["agent_0", "agent_1", "agent_2", "agent_3"]
    assert env.action_space("agent_2") == spaces.Box(-2.0, 3.0, (1,), np.float32)
    assert env.action_space("agent_2") is env.action_space("agent_2")
    assert env.observation_space("agent_0") == spaces.Box(0.0, 1.0, (1,), np.float32)
    climbing = marl_tr_envs.matrix_games.climbing_parallel_env()
    assert climbing.action_space("agent_1") == spaces.Discrete(3)


def test_parallel_rewards_equal_the_gym_env():
    kwargs = {"n": 3, "sigma": (1.0, 2.0, 0.5), "basin_gap": 3.0}
    env = make_parallel("DiffGame-v0", episode_length=2, **kwargs)
    single = gym.make("DiffGame-v0", **kwargs)
    observations, infos = env.reset(seed=0)
    assert set(observations) == set(env.possible_agents)
    assert infos["agent_0"]["higher_peak"] == single.unwrapped.game.higher_peak()
    np.testing.assert_array_equal(env.state(), [0.0])
    joint = np.array([0.5, 4.2, 9.0])  # the last one is clipped onto 7
    actions = {agent: np.array([value], np.float32) for agent, value in zip(env.agents, joint)}
    observations, rewards, terminations, truncations, infos = env.step(actions)
    single.reset(seed=0)
    _, reward, *_ = single.step(joint.astype(np.float32))
    assert rewards == dict.fromkeys(env.possible_agents, reward)
    assert not any(terminations.values()) and not any(truncations.values())
    np.testing.assert_allclose(env.state(), [0.5])
    np.testing.assert_allclose(observations["agent_2"], [0.5])
    assert infos["agent_1"]["reward_without_noise"] == reward
    *_, terminations, _, _ = env.step(actions)
    assert all(terminations.values())
    assert env.agents == []


def test_matrix_game_parallel_rewards():
    env = make_parallel("PenaltyGame-v0", k=-7.0)
    env.reset(seed=0)
    _, rewards, *_ = env.step({"agent_0": 0, "agent_1": np.int64(2)})
    assert rewards == {"agent_0": -7.0, "agent_1": -7.0}


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ({"agent_0": [1.0]}, "missing ['agent_1'], unexpected []"),
        ({"agent_0": [1.0], "agent_1": [1.0], "agent_9": [1.0]}, "unexpected ['agent_9']"),
        ({"agent_0": [1.0, 2.0], "agent_1": [1.0]}, "the action of agent_0 must be a single value"),
        ({"agent_0": [np.nan], "agent_1": [1.0]}, "actions must be finite"),
        ([1.0, 1.0], "actions must be a dict keyed by agent"),
    ],
)
def test_bad_actions_raise_before_anything_changes(actions, message):
    env = make_parallel("DiffGame-v0", n=2, episode_length=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        env.step(actions)
    env.step({"agent_0": [1.0], "agent_1": [1.0]})
    np.testing.assert_allclose(env.state(), [0.5])


def test_unknown_id_and_keyword():
    with pytest.raises(
        ValueError, match=re.escape("unknown env_id 'DiffGame-v1'. Did you mean 'DiffGame-v0'")
    ):
        make_parallel("DiffGame-v1")
    with pytest.raises(ValueError, match="Available: ClimbingGame-v0, DiffGame-v0, PenaltyGame-v0"):
        make_parallel("Nope")
    with pytest.raises(ValueError, match=re.escape("unknown keyword argument(s) 'basin'")):
        make_parallel("DiffGame-v0", basin=3.0)


def test_step_without_live_agents_is_refused():
    env = make_parallel("ClimbingGame-v0")
    with pytest.raises(RuntimeError, match=re.escape("call reset() first")):
        env.step({"agent_0": 0, "agent_1": 0})
