"""Render modes: images of the documented shape and dtype that show the last joint action
where the game's reward says it is, texts with the payoff table, and both libraries'
checkers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import marl_tr_envs
from marl_tr_envs import DiffGame, GameEnv, MatrixGame, make_parallel
from marl_tr_envs.rendering import PANEL_HEIGHT, RGB_SIZE, render_modes

RED = (230, 40, 40)


def red_pixels(image: np.ndarray) -> np.ndarray:
    """``[k, 2]`` (row, column) of the pure marker red."""
    return np.argwhere((image == RED).all(axis=-1))


def pixel(value: float, low: float, high: float, size: int = RGB_SIZE) -> int:
    return int(np.clip(np.floor((value - low) / (high - low) * size), 0, size - 1))


def test_two_agent_contour_marks_the_joint_action_and_peaks_where_the_reward_is():
    env = gym.make("DiffGame-v0", n=2, render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    assert before.shape == (RGB_SIZE, RGB_SIZE, 3) and before.dtype == np.uint8
    assert len(red_pixels(before)) == 0  # no action yet
    env.step(np.array([2.0, 4.5], dtype=np.float32))
    image = env.render()
    assert image.shape == (RGB_SIZE, RGB_SIZE, 3) and image.dtype == np.uint8
    marked = red_pixels(image)
    centre = marked.mean(axis=0)
    # agent 0 left to right, agent 1 bottom to top, over the box [0, 7]
    assert abs(centre[1] - pixel(2.0, 0.0, 7.0)) <= 1.0
    assert abs(centre[0] - (RGB_SIZE - 1 - pixel(4.5, 0.0, 7.0))) <= 1.0
    # the brightest colour (yellow end of the scale) sits on the reward's grid maximum,
    # found here by brute force on the pixel centres
    game = env.unwrapped.game
    grid = (np.arange(RGB_SIZE) + 0.5) * 7.0 / RGB_SIZE
    a0, a1 = np.meshgrid(grid, grid[::-1])
    rewards = game.reward(np.stack([a0, a1], axis=-1))
    best = np.unravel_index(np.argmax(rewards), rewards.shape)
    brightness = before.astype(int).sum(axis=-1)
    brightness[(before == 255).all(axis=-1)] = 0  # the white centre rings
    brightest = np.unravel_index(np.argmax(brightness), brightness.shape)
    assert np.abs(np.subtract(brightest, best)).max() <= 2
    # a point of higher reward is drawn higher on the colour scale (more green+red)
    low_point, high_point = (200, 40), best
    assert rewards[high_point] > rewards[low_point]
    assert brightness[high_point] > brightness[low_point]


def test_per_agent_view_for_three_agents():
    env = gym.make("DiffGame-v0", n=3, render_mode="rgb_array")
    env.reset(seed=0)
    action = np.array([1.2, 0.8, 1.6])
    env.step(action)
    image = env.render()
    assert image.shape == (3 * PANEL_HEIGHT, RGB_SIZE, 3) and image.dtype == np.uint8
    game = env.unwrapped.game
    grid = (np.arange(RGB_SIZE) + 0.5) * 7.0 / RGB_SIZE
    for agent in range(3):
        panel = image[agent * PANEL_HEIGHT: (agent + 1) * PANEL_HEIGHT]
        columns = np.unique(red_pixels(panel)[:, 1])
        assert columns.tolist() == [pixel(action[agent], 0.0, 7.0)]
        # the curve's highest point is where r(a_i; a_-i) is largest along agent i's axis
        actions = np.repeat(action[None, :], RGB_SIZE, axis=0)
        actions[:, agent] = grid
        best = int(np.argmax(game.reward(actions)))
        lit = (panel[: PANEL_HEIGHT - 6] != panel[0, 0]).any(axis=-1)
        lit[:, columns[0]] = False  # not the red line
        tops = np.where(lit.any(axis=0), lit.argmax(axis=0), PANEL_HEIGHT)
        plateau = np.flatnonzero(tops == tops.min())  # the top row is a few pixels wide
        assert plateau[0] <= best <= plateau[-1]
        assert abs(plateau.mean() - best) <= 2


def test_ansi_payoff_table_brackets_the_last_joint_action():
    env = gym.make("PenaltyGame-v0", k=-20.0, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and "no joint action yet" in text and "[" not in text
    env.step(np.array([0, 2]))
    text = env.render()
    rows = text.splitlines()
    assert rows[3].split() == ["0", "10", "0", "[-20]"]  # row of agent 0's action 0
    assert "last joint action (0, 2): payoff -20; optimum 10 at (0, 0), (2, 2)" in text


def test_ansi_for_more_than_two_agents_lists_each_agents_payoffs():
    payoff = np.arange(8.0).reshape(2, 2, 2)
    env = GameEnv(game=MatrixGame(payoff=payoff), render_mode="ansi")
    env.reset(seed=0)
    env.step(np.array([1, 0, 1]))
    lines = env.render().splitlines()
    # agent 1 varies its action with the others at (1, ., 1): payoff[1, 0, 1], payoff[1, 1, 1]
    assert lines[2].endswith("[5]  7")
    assert lines[-1].startswith("last joint action (1, 0, 1): payoff 5")


def test_render_modes_are_declared_and_nothing_is_drawn_without_one():
    assert gym.make("DiffGame-v0").unwrapped.metadata["render_modes"] == ["rgb_array"]
    assert gym.make("ClimbingGame-v0").unwrapped.metadata["render_modes"] == ["ansi"]
    assert render_modes(DiffGame(n=4)) == ("rgb_array",)
    env = gym.make("DiffGame-v0", disable_env_checker=True)
    env.reset(seed=0)
    assert env.unwrapped.render() is None
    with pytest.raises(ValueError, match="render_mode must be one of None for "
                       "DiffGameVectorEnv, got 'rgb_array'"):
        gym.make_vec("DiffGame-v0", num_envs=2, render_mode="rgb_array")


@pytest.mark.parametrize(("env_id", "kwargs", "mode"), [
    ("DiffGame-v0", {"n": 2}, "rgb_array"),
    ("DiffGame-v0", {"n": 5, "episode_length": 3}, "rgb_array"),
    ("ClimbingGame-v0", {}, "ansi"),
    ("PenaltyGame-v0", {"k": -5.0}, "ansi"),
])
def test_gymnasium_and_pettingzoo_checkers_pass_with_rendering(env_id, kwargs, mode,
                                                               strict_warnings):
    from pettingzoo.test import parallel_api_test, render_test
    from pettingzoo.utils.conversions import parallel_to_aec

    with strict_warnings():
        env = gym.make(env_id, render_mode=mode, **kwargs)
        check_env(env.unwrapped)  # also remakes the env in every declared mode and renders
        env.close()
        parallel_api_test(make_parallel(env_id, render_mode=mode, **kwargs), num_cycles=5)

    def make(render_mode=None):
        # PettingZoo's render test asks for "human" first only to read the declared modes
        chosen = None if render_mode == "human" else render_mode
        return parallel_to_aec(make_parallel(env_id, render_mode=chosen, **kwargs))

    render_test(make)


def test_parallel_env_renders_the_joint_action_of_its_agents():
    env = make_parallel("DiffGame-v0", n=2, render_mode="rgb_array")
    env.reset(seed=0)
    env.step({"agent_0": np.array([5.0]), "agent_1": np.array([1.0])})
    centre = red_pixels(env.render()).mean(axis=0)
    assert abs(centre[1] - pixel(5.0, 0.0, 7.0)) <= 1.0
    assert abs(centre[0] - (RGB_SIZE - 1 - pixel(1.0, 0.0, 7.0))) <= 1.0
    assert marl_tr_envs.DiffGameParallelEnv.metadata["render_modes"] == ["rgb_array"]
