"""The native vector env: equal to the single env, same-step autoreset, seeding, bad input."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

import marl_tr_envs
from marl_tr_envs import DiffGame, DiffGameVectorEnv, GameVectorEnv, PenaltyGame


@pytest.mark.parametrize("env_id", sorted(marl_tr_envs.SUITE))
def test_make_vec_builds_the_native_env(env_id, strict_warnings):
    with strict_warnings():
        vec_env = gym.make_vec(env_id, num_envs=5)
    assert isinstance(vec_env, marl_tr_envs.SUITE[env_id].vector_class)
    assert vec_env.num_envs == 5
    assert vec_env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert vec_env.spec is not None and vec_env.spec.id == env_id


def test_trainer_contract_of_the_vector_env():
    vec_env = gym.make_vec("DiffGame-v0", num_envs=6, n=7)
    assert isinstance(vec_env.game, DiffGame)
    assert vec_env.possible_agents == [f"agent_{i}" for i in range(7)]
    assert vec_env.single_action_space == spaces.Box(0.0, 7.0, (7,), np.float32)
    assert vec_env.action_space.shape == (6, 7)
    assert vec_env.single_observation_space == spaces.Box(0.0, 1.0, (1,), np.float32)
    for agent in vec_env.possible_agents:
        assert vec_env.agent_action_spaces[agent] == spaces.Box(0.0, 7.0, (1,), np.float32)
        assert vec_env.agent_observation_spaces[agent] == vec_env.single_observation_space
    vec_env.reset(seed=0)
    _, rewards, terminations, truncations, infos = vec_env.step(vec_env.action_space.sample())
    assert rewards.dtype == np.float64 and rewards.shape == (6,)
    assert terminations.dtype == np.bool_ and terminations.shape == (6,)
    assert truncations.dtype == np.bool_ and truncations.shape == (6,)
    assert infos["agent_rewards"].shape == (6, 7)

    matrix = gym.make_vec("PenaltyGame-v0", num_envs=3)
    assert matrix.single_action_space == spaces.MultiDiscrete([3, 3])
    assert matrix.agent_action_spaces["agent_1"] == spaces.Discrete(3)
    assert isinstance(matrix.game, PenaltyGame)


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("DiffGame-v0", {"n": 7}),
        ("DiffGame-v0", {"n": 2, "sigma": (0.5, 2.0), "basin_gap": 2.5}),
        ("ClimbingGame-v0", {}),
        ("PenaltyGame-v0", {"k": -30.0}),
    ],
)
def test_vector_env_equals_single_env_on_the_same_actions(env_id, kwargs):
    num_envs = 16
    vec_env = gym.make_vec(env_id, num_envs=num_envs, **kwargs)
    single = gym.make(env_id, **kwargs)
    vec_env.action_space.seed(1)
    vec_env.reset(seed=0)
    for _ in range(3):
        actions = vec_env.action_space.sample()
        if env_id == "DiffGame-v0":  # also out-of-bounds actions, clipped alike
            actions = actions * 1.5 - 1.0
        _, rewards, _, _, infos = vec_env.step(actions)
        for index in range(num_envs):
            single.reset(seed=index)
            _, reward, terminated, truncated, info = single.step(actions[index])
            assert rewards[index] == reward
            np.testing.assert_array_equal(infos["agent_rewards"][index], info["agent_rewards"])
            assert (terminated, truncated) == (True, False)


def test_same_step_autoreset_of_one_step_episodes():
    vec_env = gym.make_vec("DiffGame-v0", num_envs=4, n=3)
    observations, infos = vec_env.reset(seed=0)
    np.testing.assert_array_equal(observations, np.zeros((4, 1), np.float32))
    assert infos == {}
    actions = np.tile([1.0, 1.0, 1.0], (4, 1))
    for _ in range(3):
        observations, rewards, terminations, truncations, infos = vec_env.step(actions)
        np.testing.assert_array_equal(observations, np.zeros((4, 1), np.float32))  # next episode
        assert terminations.all() and not truncations.any()
        np.testing.assert_allclose(rewards, 0.41270864, atol=1e-8)
        np.testing.assert_array_equal(infos["final_obs"], np.ones((4, 1), np.float32))
        assert infos["_final_obs"].all() and infos["_final_info"].all()
        np.testing.assert_array_equal(infos["final_info"]["agent_rewards"], infos["agent_rewards"])
        assert infos["final_info"]["_agent_rewards"].all()


def test_same_step_autoreset_of_multi_step_episodes():
    vec_env = gym.make_vec("ClimbingGame-v0", num_envs=3, episode_length=3)
    vec_env.reset(seed=0)
    actions = np.array([[0, 0], [1, 1], [0, 1]])
    for _episode in range(2):
        for step in (1, 2):
            observations, rewards, terminations, truncations, infos = vec_env.step(actions)
            np.testing.assert_allclose(observations, np.full((3, 1), step / 3), rtol=1e-6)
            assert not terminations.any() and not truncations.any()
            assert "final_obs" not in infos and "final_info" not in infos
            np.testing.assert_array_equal(rewards, [11.0, 7.0, -30.0])
        observations, rewards, terminations, truncations, infos = vec_env.step(actions)
        np.testing.assert_array_equal(observations, np.zeros((3, 1), np.float32))
        assert terminations.all() and not truncations.any()
        np.testing.assert_array_equal(infos["final_obs"], np.ones((3, 1), np.float32))
        np.testing.assert_array_equal(
            infos["final_info"]["agent_rewards"][:, 0], [11.0, 7.0, -30.0]
        )


def test_max_episode_steps_truncates_like_time_limit():
    vec_env = gym.make_vec("PenaltyGame-v0", num_envs=2, episode_length=5, max_episode_steps=2)
    vec_env.reset(seed=0)
    actions = np.zeros((2, 2), dtype=np.int64)
    _, _, terminations, truncations, _ = vec_env.step(actions)
    assert not terminations.any() and not truncations.any()
    observations, _, terminations, truncations, infos = vec_env.step(actions)
    assert not terminations.any() and truncations.all()
    np.testing.assert_allclose(infos["final_obs"], np.full((2, 1), 2 / 5), rtol=1e-6)
    np.testing.assert_array_equal(observations, np.zeros((2, 1), np.float32))


def test_seeded_reward_noise_is_reproducible():
    def rollout(seed):
        vec_env = gym.make_vec("DiffGame-v0", num_envs=8, n=3, reward_noise=0.3)
        vec_env.reset(seed=seed)
        actions = np.full((8, 3), 2.0)
        return np.stack([vec_env.step(actions)[1] for _ in range(5)])

    first, again, other = rollout(11), rollout(11), rollout(12)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Noise on top of the noise-free reward, with the asked spread.
    noise = first - DiffGame(n=3).reward(np.full(3, 2.0))
    assert noise.std() == pytest.approx(0.3, rel=0.3)


def test_reward_noise_spread_over_a_large_batch():
    vec_env = DiffGameVectorEnv(num_envs=20_000, n=2, reward_noise=0.5)
    vec_env.reset(seed=3)
    _, rewards, _, _, infos = vec_env.step(np.ones((20_000, 2)))
    noise = rewards - infos["reward_without_noise"]
    assert abs(noise.mean()) < 4 * 0.5 / np.sqrt(20_000)
    assert noise.std() == pytest.approx(0.5, rel=0.03)
    np.testing.assert_array_equal(infos["agent_rewards"][:, 1], rewards)


def test_returned_arrays_are_not_shared():
    vec_env = gym.make_vec("DiffGame-v0", num_envs=3, n=2)
    vec_env.reset(seed=0)
    observations, rewards, terminations, _, infos = vec_env.step(np.ones((3, 2)))
    observations[:] = 0.5
    rewards[:] = -1.0
    infos["agent_rewards"][:] = -1.0
    assert not np.shares_memory(infos["agent_rewards"], infos["final_info"]["agent_rewards"])
    assert not np.shares_memory(terminations, infos["_final_obs"])
    assert not np.shares_memory(observations, infos["final_obs"])
    again_observations, again_rewards, *_ = vec_env.step(np.ones((3, 2)))
    np.testing.assert_array_equal(again_observations, np.zeros((3, 1), np.float32))
    assert (again_rewards > 0).all()


def test_generic_vector_shell_takes_a_game_instance():
    vec_env = GameVectorEnv(num_envs=2, game=PenaltyGame(k=-1.0))
    vec_env.reset(seed=0)
    _, rewards, *_ = vec_env.step(np.array([[0, 2], [2, 2]]))
    np.testing.assert_array_equal(rewards, [-1.0, 10.0])


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (np.ones((4, 2)), "actions must have shape [4, 3] with n = 3, got shape (4, 2)"),
        (np.ones((3, 3)), "actions must have shape [4, 3] with n = 3, got shape (3, 3)"),
        (np.ones(3), "actions must have shape [4, 3] with n = 3, got shape (3,)"),
        (np.where(np.eye(4, 3) > 0, np.nan, 1.0), "actions must be finite"),
    ],
)
def test_bad_actions_raise_before_anything_changes(actions, message):
    vec_env = gym.make_vec("DiffGame-v0", num_envs=4, n=3, episode_length=2)
    vec_env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        vec_env.step(actions)
    observations, *_ = vec_env.step(np.ones((4, 3)))
    np.testing.assert_allclose(observations, np.full((4, 1), 0.5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs must be an integer >= 1, got 0"),
        ({"num_envs": 2, "max_episode_steps": 0}, "max_episode_steps must be an integer >= 1"),
        ({"num_envs": 2, "sigmas": 1.0}, "unknown keyword argument(s) 'sigmas' (did you mean"),
        ({"num_envs": 2, "n": -1}, "n must be an integer >= 1, got -1"),
    ],
)
def test_bad_vector_settings_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DiffGameVectorEnv(**kwargs)


def test_step_before_reset_and_bad_seeds_are_refused():
    vec_env = DiffGameVectorEnv(num_envs=6)
    with pytest.raises(RuntimeError, match=re.escape("call reset() before step()")):
        vec_env.step(np.ones((6, 3)))
    with pytest.raises(ValueError, match="a seed sequence needs a length that divides "
                                         "num_envs=6, got 4 seeds"):
        vec_env.reset(seed=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="seed must be an int, a sequence of ints or None"):
        vec_env.reset(seed=1.5)


@pytest.mark.parametrize("seeds", [[11, 12, 13], [5] * 6])
def test_seed_blocks_draw_the_noise_of_independent_smaller_envs(seeds):
    """Block j of a k-block env is exactly an env of num_envs / k copies seeded seeds[j]."""
    actions = np.random.default_rng(0).uniform(0, 7, (4, 6, 3))
    blocked = DiffGameVectorEnv(num_envs=6, n=3, reward_noise=0.4)
    blocked.reset(seed=seeds)
    size = 6 // len(seeds)
    singles = [DiffGameVectorEnv(num_envs=size, n=3, reward_noise=0.4) for _ in seeds]
    for env, seed in zip(singles, seeds):
        env.reset(seed=seed)
    for step_actions in actions:
        rewards = blocked.step(step_actions)[1]
        expected = np.concatenate([env.step(step_actions[j * size:(j + 1) * size])[1]
                                   for j, env in enumerate(singles)])
        np.testing.assert_array_equal(rewards, expected)


def test_seed_blocks_survive_get_and_set_state():
    env = DiffGameVectorEnv(num_envs=4, n=2, reward_noise=1.0)
    env.reset(seed=[3, 4])
    env.step(np.ones((4, 2)))
    snapshot = env.get_state()
    first = env.step(np.ones((4, 2)))[1]
    env.set_state(snapshot)
    np.testing.assert_array_equal(env.step(np.ones((4, 2)))[1], first)
