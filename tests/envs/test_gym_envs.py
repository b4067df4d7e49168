"""The Gymnasium joint view: API conformance, trainer contract, steps, clipping, bad input."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import marl_tr_envs
from marl_tr_envs import ClimbingGame, DiffGame, GameEnv

CHECKED_CONFIGS = [
    ("DiffGame-v0", {"n": 1}),
    ("DiffGame-v0", {"n": 2}),
    ("DiffGame-v0", {"n": 3}),
    ("DiffGame-v0", {"n": 7}),
    ("DiffGame-v0", {"n": 3, "episode_length": 4, "reward_noise": 0.5}),
    # Bounds [-1, 1] (no Box-range warning), both centres inside, the far peak higher.
    (
        "DiffGame-v0",
        {"n": 2, "sigma": 1.0, "local_center": -0.5, "basin_gap": 1.0, "low": -1.0, "high": 1.0},
    ),
    ("ClimbingGame-v0", {}),
    ("ClimbingGame-v0", {"episode_length": 3, "reward_noise": 1.0}),
    ("PenaltyGame-v0", {}),
    ("PenaltyGame-v0", {"k": -50.0}),
]


def test_every_suite_id_is_registered_and_checked():
    assert {env_id for env_id, _ in CHECKED_CONFIGS} == set(marl_tr_envs.SUITE)
    for env_id in marl_tr_envs.SUITE:
        spec = gym.spec(env_id)
        assert spec.max_episode_steps is None
        assert spec.vector_entry_point is not None


@pytest.mark.parametrize(("env_id", "kwargs"), CHECKED_CONFIGS)
def test_check_env_passes_without_unexpected_warnings(env_id, kwargs, strict_warnings):
    with strict_warnings():
        env = gym.make(env_id, **kwargs)
        check_env(env.unwrapped)
        env.close()


@pytest.mark.parametrize(("env_id", "kwargs"), CHECKED_CONFIGS)
def test_rollout_through_gym_make_with_wrappers(env_id, kwargs, strict_warnings):
    with strict_warnings():
        env = gym.make(env_id, **kwargs)
        env.action_space.seed(0)
        observation, info = env.reset(seed=0)
        episode_length = kwargs.get("episode_length", 1)
        for step in range(1, episode_length + 1):
            observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert type(reward) is float
            assert terminated is (step == episode_length)
            assert truncated is False
            assert observation.dtype == np.float32
            np.testing.assert_allclose(observation, [step / episode_length], rtol=1e-6)
            np.testing.assert_array_equal(
                info["agent_rewards"], np.full(env.unwrapped.game.n_agents, reward)
            )


def test_trainer_contract_of_the_diff_game_env():
    env = gym.make("DiffGame-v0", n=4, low=-1.0, high=2.0, basin_gap=0.5)
    base = env.unwrapped
    assert isinstance(base.game, DiffGame)
    assert base.possible_agents == ["agent_0", "agent_1", "agent_2", "agent_3"]
    assert base.action_space == spaces.Box(-1.0, 2.0, (4,), np.float32)
    for agent in base.possible_agents:
        assert base.agent_action_spaces[agent] == spaces.Box(-1.0, 2.0, (1,), np.float32)
        assert base.agent_observation_spaces[agent] == base.observation_space
    assert base.observation_space == spaces.Box(0.0, 1.0, (1,), np.float32)
    # Distinct space objects per agent (each carries its own RNG).
    assert base.agent_action_spaces["agent_0"] is not base.agent_action_spaces["agent_1"]
    for method in ("reward", "reward_grad", "peak_rewards", "higher_peak", "expected_reward"):
        assert callable(getattr(base.game, method))


def test_trainer_contract_of_the_matrix_game_env():
    base = gym.make("ClimbingGame-v0").unwrapped
    assert isinstance(base.game, ClimbingGame)
    assert base.action_space == spaces.MultiDiscrete([3, 3])
    assert base.agent_action_spaces == {
        "agent_0": spaces.Discrete(3),
        "agent_1": spaces.Discrete(3),
    }
    assert base.game.payoff.shape == (3, 3)


def test_step_reward_and_info_of_the_diff_game():
    env = gym.make("DiffGame-v0", n=3)
    _, reset_info = env.reset(seed=0)
    assert reset_info["higher_peak"] == "local"
    assert reset_info["peak_rewards"]["local"] == pytest.approx(0.41270864, abs=1e-8)
    _, reward, terminated, truncated, info = env.step(np.array([1.0, 1.0, 1.0], np.float32))
    assert reward == pytest.approx(0.41270864, abs=1e-8)
    assert (terminated, truncated) == (True, False)
    assert info["reward_without_noise"] == reward
    assert info["higher_peak"] == "local"
    assert set(info["peak_rewards"]) == {"local", "global"}
    np.testing.assert_array_equal(info["agent_rewards"], [reward] * 3)


def test_out_of_bounds_actions_are_clipped():
    env = gym.make("DiffGame-v0", n=2, disable_env_checker=True)
    env.reset(seed=0)
    _, reward, *_ = env.step(np.array([-5.0, 100.0]))
    assert reward == pytest.approx(float(env.unwrapped.game.reward([0.0, 7.0])), rel=1e-15)


def test_reward_noise_is_seeded_and_has_the_asked_spread():
    env = gym.make("DiffGame-v0", n=3, reward_noise=0.5, episode_length=400)
    action = np.full(3, 1.0, np.float32)

    def noises(seed):
        env.reset(seed=seed)
        values = []
        for _ in range(400):
            _, reward, _, _, info = env.step(action)
            values.append(reward - info["reward_without_noise"])
        return np.array(values)

    first, again, other = noises(7), noises(7), noises(8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert abs(first.mean()) < 4 * 0.5 / np.sqrt(400)
    assert first.std() == pytest.approx(0.5, rel=0.15)


def test_multi_step_episode_and_no_step_after_the_end():
    env = marl_tr_envs.DiffGameEnv(n=2, episode_length=2)
    env.reset(seed=0)
    assert env.step(np.ones(2))[2] is False
    assert env.step(np.ones(2))[2] is True
    with pytest.raises(RuntimeError, match=re.escape("call reset()")):
        env.step(np.ones(2))


def test_generic_shell_takes_a_game_instance():
    env = GameEnv(game=DiffGame(n=2, sigma=1.0))
    env.reset(seed=0)
    assert env.game.higher_peak() == "global"
    assert marl_tr_envs.DiffGameEnv(game=DiffGame(n=5)).action_space.shape == (5,)


# ------------------------------------------------------------------------------- bad input
def test_unknown_keyword_is_a_value_error_listing_the_accepted_ones():
    with pytest.raises(
        ValueError, match=r"unknown keyword argument\(s\) 'nn' \(did you mean 'n'\?\)"
    ) as error:
        gym.make("DiffGame-v0", nn=7)
    for keyword in ("basin_gap", "episode_length", "global_mass", "n", "reward_noise", "sigma"):
        assert keyword in str(error.value)
    with pytest.raises(ValueError, match="accepted keywords: episode_length, game, k, render_mode"):
        gym.make("PenaltyGame-v0", penalty=-3)
    with pytest.raises(ValueError, match="accepted keywords: episode_length, game, render_mode"):
        gym.make("ClimbingGame-v0", k=-3)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "message"),
    [
        ("DiffGame-v0", {"n": 0}, "n must be an integer >= 1, got 0"),
        ("DiffGame-v0", {"sigma": -1.0}, "sigma must be a finite number > 0, got -1.0"),
        ("DiffGame-v0", {"sigma": (1.0, 2.0)}, "sigma must be a number or a sequence of n = 3"),
        ("DiffGame-v0", {"low": 1.0, "high": 0.0}, "low must be < high"),
        ("DiffGame-v0", {"local_mass": 0.0}, "local_mass must be a finite number > 0, got 0.0"),
        ("DiffGame-v0", {"episode_length": 0}, "episode_length must be an integer >= 1, got 0"),
        ("DiffGame-v0", {"reward_noise": -0.1}, "reward_noise must be a finite number >= 0"),
        ("PenaltyGame-v0", {"k": 5.0}, "k must be a finite number <= 0"),
        ("DiffGame-v0", {"game": DiffGame(n=2), "n": 2}, "got both game="),
        ("DiffGame-v0", {"game": ClimbingGame()}, "needs game to be a DiffGame"),
    ],
)
def test_bad_settings_raise_value_error(env_id, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make(env_id, **kwargs)


def test_render_mode_must_be_one_the_game_offers():
    with pytest.raises(ValueError, match="render_mode must be one of None, 'rgb_array' for "
                       "DiffGameEnv, got 'human'"):
        marl_tr_envs.DiffGameEnv(render_mode="human")
    with pytest.raises(ValueError, match="render_mode must be one of None, 'ansi' for "
                       "ClimbingGameEnv, got 'rgb_array'"):
        marl_tr_envs.ClimbingGameEnv(render_mode="rgb_array")


@pytest.mark.parametrize(
    ("env_id", "action", "message"),
    [
        ("DiffGame-v0", [1.0, np.nan, 1.0], "actions must be finite"),
        ("DiffGame-v0", [1.0, 1.0], "actions must have shape [3] with n = 3, got shape (2,)"),
        (
            "DiffGame-v0",
            [[1.0, 1.0, 1.0]],
            "actions must have shape [3] with n = 3, got shape (1, 3)",
        ),
        ("ClimbingGame-v0", [0, 5], "actions out of range (agent_0: 0..2, agent_1: 0..2)"),
    ],
)
def test_bad_actions_raise_before_anything_changes(env_id, action, message):
    env = gym.make(env_id, episode_length=2, disable_env_checker=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        env.step(np.asarray(action))
    observation, *_ = env.step(env.action_space.sample())
    np.testing.assert_allclose(observation, [0.5])  # the failed step did not count
