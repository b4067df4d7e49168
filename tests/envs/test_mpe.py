"""The MPE tasks (``marl_tr_envs.mpe``, the [mpe] extra): the fast joint-step env gives mpe2's
own ``parallel_env`` transitions exactly; its state is plain data that restores exactly; the
short names resolve; a missing mpe2 says how to install it."""

from __future__ import annotations

import importlib
import io

import numpy as np
import pytest
import torch

pytest.importorskip("mpe2")

from marl_tr.training.env_adapters import ParallelEnvAdapter, make_env
from marl_tr.training.run_dir import decode_state, encode_state
from marl_tr_envs import mpe

CASES = [(task, continuous) for task in mpe.TASKS for continuous in (True, False)]


def random_actions(env, rng):
    actions = {}
    for agent in env.possible_agents:
        space = env.action_space(agent)
        if hasattr(space, "n"):
            actions[agent] = int(rng.integers(space.n))
        else:  # inside the bounds: mpe2's clipping wrapper prints a warning otherwise
            actions[agent] = rng.uniform(0, 1, space.shape).astype(np.float32)
    return actions


def assert_same_step(a, b, agents):
    for part_a, part_b in zip(a[:4], b[:4]):
        for agent in agents:
            np.testing.assert_array_equal(np.asarray(part_a[agent]), np.asarray(part_b[agent]))


@pytest.mark.parametrize(("task", "continuous"), CASES)
def test_fast_env_gives_mpe2_parallel_env_transitions(task, continuous):
    """Two episodes of 6 steps from the same seed and actions: the same observations, rewards,
    terminations, truncations, states and episode ends as mpe2's parallel_env."""
    reference = importlib.import_module(mpe.TASKS[task]).parallel_env(
        continuous_actions=continuous, max_cycles=6)
    fast = mpe.parallel_env(task, continuous_actions=continuous, max_cycles=6)
    assert fast.possible_agents == reference.possible_agents
    for agent in fast.possible_agents:
        assert fast.observation_space(agent) == reference.observation_space(agent)
        assert fast.action_space(agent) == reference.action_space(agent)
    obs_a, _ = reference.reset(seed=11)
    obs_b, _ = fast.reset(seed=11)
    rng = np.random.default_rng(0)
    for _ in range(2):
        for agent in fast.possible_agents:
            np.testing.assert_array_equal(obs_a[agent], obs_b[agent])
        for t in range(6):
            actions = random_actions(reference, rng)
            a, b = reference.step(actions), fast.step(actions)
            assert_same_step(a, b, fast.possible_agents)
            np.testing.assert_array_equal(reference.state(), fast.state())
            assert bool(reference.agents) == bool(fast.agents) == (t < 5)
        assert all(b[3].values()) and not any(b[2].values())  # truncated after max_cycles
        obs_a, _ = reference.reset()
        obs_b, _ = fast.reset()


def test_out_of_bounds_box_actions_are_clipped_and_bad_discrete_ones_refused():
    env = mpe.parallel_env("simple_spread", continuous_actions=True)
    twin = mpe.parallel_env("simple_spread", continuous_actions=True)
    env.reset(seed=3)
    twin.reset(seed=3)
    wild = {a: np.array([-1.0, 2.0, 0.5, 3.0, -0.5], dtype=np.float32) for a in env.agents}
    clipped = {a: np.clip(v, 0, 1) for a, v in wild.items()}
    assert_same_step(env.step(wild), twin.step(clipped), env.possible_agents)
    discrete = mpe.parallel_env("simple_spread")
    discrete.reset(seed=0)
    with pytest.raises(ValueError, match=r"the action of agent_0 must be in \[0, 5\), got 7"):
        discrete.step({a: 7 for a in discrete.agents})


@pytest.mark.parametrize(("task", "continuous"), CASES)
def test_state_is_plain_data_and_restores_exactly(task, continuous):
    """A state taken mid-episode, through a weights_only checkpoint round trip, put into a
    fresh env: the next 8 steps (across an episode end, with the env's own generator) are
    those of the original env."""
    env = mpe.parallel_env(task, continuous_actions=continuous, max_cycles=5)
    env.reset(seed=4)
    rng = np.random.default_rng(1)
    for _ in range(3):
        env.step(random_actions(env, rng))
    buffer = io.BytesIO()
    torch.save(encode_state({"env": env.get_state()}), buffer)
    buffer.seek(0)
    saved = decode_state(torch.load(buffer, weights_only=True))["env"]
    copy = mpe.parallel_env(task, continuous_actions=continuous, max_cycles=5)
    copy.reset(seed=99)  # another episode entirely
    copy.set_state(saved)
    np.testing.assert_array_equal(copy.state(), env.state())
    for _ in range(8):
        actions = random_actions(env, rng)
        assert_same_step(env.step(actions), copy.step(actions), env.possible_agents)
        if not env.agents:
            obs_a, _ = env.reset()
            obs_b, _ = copy.reset()
            for agent in env.possible_agents:
                np.testing.assert_array_equal(obs_a[agent], obs_b[agent])


def test_a_state_of_another_task_is_refused():
    spread = mpe.parallel_env("simple_spread")
    spread.reset(seed=0)
    other = mpe.parallel_env("simple_reference")
    other.reset(seed=0)
    with pytest.raises(ValueError, match=r"does not fit task 'simple_reference'"):
        other.set_state(spread.get_state())


def test_short_and_versioned_names_resolve():
    assert mpe.task_name("simple_spread") == mpe.task_name("simple_spread_v3") == "simple_spread"
    assert mpe.task_name("simple_speaker_listener_v4") == "simple_speaker_listener"
    assert mpe.task_name("DiffGame-v0") is None
    env = make_env("simple_speaker_listener_v4", {"continuous_actions": True}, 2)
    assert isinstance(env, ParallelEnvAdapter)
    assert env.agents == ["speaker_0", "listener_0"]
    assert [s.shape for s in env.observation_spaces] == [(3,), (11,)]
    assert env.get_state() is not None  # the copies' states: exact resumption
    env.close()
    with pytest.raises(ValueError, match=r"Did you mean 'simple_spread'\?"):
        make_env("simple_sprad", {}, 1)
    with pytest.raises(ValueError, match=r"unknown MPE task 'simple_tag'"):
        mpe.parallel_env("simple_tag")


def test_a_missing_mpe2_names_the_extra(monkeypatch):
    monkeypatch.setitem(mpe.TASKS, "simple_spread", "mpe2.no_such_module_v0")
    with pytest.raises(ValueError, match=r'pip install -e "\.\[mpe\]"'):
        mpe.parallel_env("simple_spread")
