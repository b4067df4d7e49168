"""The pure-numpy differential game (eq. 30): values, expectations, gradient, bad input."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

from marl_tr_envs import DiffGame
from marl_tr_envs.diff_game.expectation import (
    bump_expectation,
    bump_expectation_quadrature,
    normal_cdf,
)


def reward_by_hand(actions, sigma, local=1.0, global_=5.0, m_local=6.5, m_global=10.0):
    """Eq. 30 written out term by term for one joint action."""
    n = len(actions)
    alpha_g = m_global / ((2 * math.pi) ** (n / 2) * math.prod(sigma))
    alpha_l = m_local / (2 * math.pi) ** (n / 2)
    global_sum = sum((a - global_) ** 2 / s**2 for a, s in zip(actions, sigma))
    local_sum = sum((a - local) ** 2 for a in actions)
    return alpha_g * math.exp(-0.5 * global_sum) + alpha_l * math.exp(-0.5 * local_sum)


# ------------------------------------------------------------------------------- values
def test_paper_peaks_n3_to_four_decimals():
    game = DiffGame(n=3)
    peaks = game.peak_rewards()
    assert round(peaks["local"], 4) == 0.4127
    assert round(peaks["global"], 4) == 0.2116
    assert game.higher_peak() == "local"
    assert game.info() == {"peak_rewards": peaks, "higher_peak": "local"}


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_peaks_match_hand_computation(n):
    game = DiffGame(n=n)
    sigma = game.sigma
    assert game.peak_rewards()["local"] == pytest.approx(reward_by_hand([1.0] * n, sigma), 1e-13)
    assert game.peak_rewards()["global"] == pytest.approx(reward_by_hand([5.0] * n, sigma), 1e-13)
    # Up to the other bump's tail, global / local = M_g / (M_l prod sigma): 10 / (6.5 * 3) < 1
    # as soon as sigma_2 = 3 (n >= 2).
    ratio = game.peak_rewards()["global"] / game.peak_rewards()["local"]
    assert ratio == pytest.approx(10.0 / (6.5 * math.prod(sigma)), rel=1e-3)
    assert game.higher_peak() == ("global" if n == 1 else "local")


def test_default_sigma_is_paper_then_ones():
    assert DiffGame(n=1).sigma == (1.0,)
    assert DiffGame(n=2).sigma == (1.0, 3.0)
    assert DiffGame(n=3).sigma == (1.0, 3.0, 1.0)
    assert DiffGame(n=7).sigma == (1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert DiffGame(n=4, sigma=2.0).sigma == (2.0,) * 4
    assert DiffGame(n=2, sigma=np.array([0.5, 4.0])).sigma == (0.5, 4.0)


def test_alphas_follow_eq_30():
    game = DiffGame(n=3, local_mass=2.0, global_mass=7.0, sigma=(1.0, 2.0, 0.5))
    normaliser = (2 * math.pi) ** 1.5
    assert game.alpha_local == pytest.approx(2.0 / normaliser)
    assert game.alpha_global == pytest.approx(7.0 / (normaliser * 1.0))


def test_reward_is_batched_and_matches_hand_computation():
    game = DiffGame(n=3)
    rng = np.random.default_rng(0)
    actions = rng.uniform(0, 7, size=(4, 5, 3))
    rewards = game.reward(actions)
    assert rewards.shape == (4, 5)
    for index in np.ndindex(4, 5):
        assert rewards[index] == pytest.approx(reward_by_hand(actions[index], game.sigma), 1e-12)


def test_reward_clip_option_clips_onto_bounds():
    game = DiffGame(n=2)
    outside = np.array([-3.0, 9.0])
    assert game.reward(outside, clip=True) == pytest.approx(
        reward_by_hand([0.0, 7.0], game.sigma), 1e-12
    )
    assert game.reward(outside) == pytest.approx(reward_by_hand([-3.0, 9.0], game.sigma), 1e-12)


def test_far_peak_is_higher_with_equal_widths_and_says_so():
    game = DiffGame(n=3, sigma=1.0, basin_gap=3.0)
    peaks = game.peak_rewards()
    assert game.global_center == 4.0
    assert peaks["global"] == pytest.approx(10.0 / (2 * math.pi) ** 1.5, rel=1e-6)
    assert peaks["global"] > peaks["local"]
    assert game.higher_peak() == "global"
    assert game.info()["higher_peak"] == "global"


def test_centres_from_gap_or_global_center():
    assert DiffGame().global_center == 5.0
    assert DiffGame(local_center=2.0, basin_gap=1.5).global_center == 3.5
    assert DiffGame(global_center=6.0).basin_gap == 5.0
    assert DiffGame(global_center=0.5).basin_gap == -0.5  # far centre below the local one
    assert DiffGame(global_center=4.0, basin_gap=3.0).global_center == 4.0  # agreeing is fine


def test_info_is_new_each_call():
    game = DiffGame()
    first = game.info()
    first["peak_rewards"]["local"] = -1.0
    assert game.info()["peak_rewards"]["local"] == pytest.approx(0.4127, abs=1e-4)


# ------------------------------------------------------------------------------- gradient
@pytest.mark.parametrize("n", [1, 3, 7])
def test_reward_grad_matches_finite_differences(n):
    game = DiffGame(n=n, sigma=np.linspace(0.7, 2.0, n))
    rng = np.random.default_rng(n)
    points = np.concatenate(
        [rng.normal(1.0, 0.6, size=(3, n)), rng.normal(5.0, 0.8, size=(3, n))], axis=0
    )
    grad = game.reward_grad(points)
    assert grad.shape == points.shape
    step = 1e-6
    for i in range(n):
        shift = np.zeros(n)
        shift[i] = step
        numeric = (game.reward(points + shift) - game.reward(points - shift)) / (2 * step)
        np.testing.assert_allclose(grad[:, i], numeric, rtol=1e-6, atol=1e-10)
    # At the local centre only the global bump's tail pulls, towards (5, ..., 5).
    sigma = np.asarray(game.sigma)
    tail = game.alpha_global * np.exp(-0.5 * np.sum(16.0 / sigma**2))
    np.testing.assert_allclose(game.reward_grad(np.full(n, 1.0)), tail * 4.0 / sigma**2, rtol=1e-12)


# ------------------------------------------------------------------------------- expectations
POLICIES = [
    # (n, means, stds): paper's start, spread over both basins, piled against both bounds.
    (3, [1.5, 1.5, 1.5], [0.5, 0.5, 0.5]),
    (3, [3.0, 4.0, 5.0], [1.0, 2.0, 1.5]),
    (2, [0.3, 6.8], [1.5, 2.0]),
    (7, [1.0, 5.0, 1.2, 4.8, 0.9, 1.1, 5.2], [0.3, 1.0, 0.4, 0.6, 0.2, 0.5, 0.7]),
    (1, [6.5], [3.0]),
]


def monte_carlo(game, means, stds, clip, samples=400_000, seed=0):
    """Mean and standard error of the reward under the product-Gaussian policy."""
    rng = np.random.default_rng(seed)
    actions = np.asarray(means) + np.asarray(stds) * rng.standard_normal((samples, len(means)))
    if clip:
        actions = np.clip(actions, game.low, game.high)
    rewards = game.reward(actions)
    return rewards.mean(), rewards.std(ddof=1) / math.sqrt(samples)


@pytest.mark.parametrize(("n", "means", "stds"), POLICIES)
def test_closed_form_expectation_without_clipping_matches_monte_carlo(n, means, stds):
    game = DiffGame(n=n)
    exact = game.expected_reward(means, stds, clip=False)
    estimate, standard_error = monte_carlo(game, means, stds, clip=False)
    assert abs(exact - estimate) < 5 * standard_error + 1e-12


@pytest.mark.parametrize(("n", "means", "stds"), POLICIES)
def test_clipped_expectation_matches_monte_carlo_with_clipping(n, means, stds):
    game = DiffGame(n=n)
    exact = game.expected_reward(means, stds, clip=True)
    quadrature = game.expected_reward(means, stds, clip=True, method="quadrature")
    estimate, standard_error = monte_carlo(game, means, stds, clip=True, seed=1)
    assert abs(quadrature - estimate) < 5 * standard_error + 1e-12
    assert abs(exact - estimate) < 5 * standard_error + 1e-12
    assert quadrature == pytest.approx(exact, rel=1e-10, abs=1e-15)


def test_clipping_changes_the_expectation_where_mass_leaves_the_box():
    game = DiffGame(n=2, sigma=1.0, global_center=6.5)
    means, stds = [0.2, 6.8], [1.5, 1.5]
    clipped = game.expected_reward(means, stds, clip=True)
    unclipped = game.expected_reward(means, stds, clip=False)
    assert abs(clipped - unclipped) > 0.1 * unclipped
    estimate, standard_error = monte_carlo(game, means, stds, clip=True, seed=2)
    assert abs(clipped - estimate) < 5 * standard_error


def test_monte_carlo_method_is_seeded_and_close():
    game = DiffGame(n=3)
    means, stds = [2.0, 3.0, 4.0], [1.0, 1.0, 1.0]
    first = game.expected_reward(means, stds, method="monte_carlo", num_samples=50_000, seed=3)
    again = game.expected_reward(means, stds, method="monte_carlo", num_samples=50_000, seed=3)
    assert first == again
    assert first == pytest.approx(game.expected_reward(means, stds), rel=0.05)


def test_zero_std_is_a_point_mass_at_the_clipped_mean():
    game = DiffGame(n=3)
    means = np.array([1.0, 8.0, -2.0])
    for method in ("closed_form", "quadrature"):
        value = game.expected_reward(means, np.zeros(3), method=method)
        assert value == pytest.approx(game.reward(means, clip=True), rel=1e-12)
        unclipped = game.expected_reward(means, np.zeros(3), clip=False, method=method)
        assert unclipped == pytest.approx(game.reward(means), rel=1e-12)


def test_expectation_is_batched():
    game = DiffGame(n=3)
    means = np.array([[1.5, 1.5, 1.5], [5.0, 5.0, 5.0]])
    stds = np.array([0.5, 0.5, 0.5])
    batched = game.expected_reward(means, stds)
    assert batched.shape == (2,)
    assert batched[1] == pytest.approx(game.expected_reward(means[1], stds))


def test_small_std_expectation_tends_to_the_peak():
    game = DiffGame(n=3)
    value = game.expected_reward([1.0, 1.0, 1.0], [1e-4] * 3)
    assert value == pytest.approx(game.peak_rewards()["local"], rel=1e-6)


def test_one_dimensional_factor_against_direct_integration():
    # E[f(clip(X))] for X ~ N(2, 1.5^2), f centred at 6 with width 0.8, bounds [0, 7],
    # integrated on a fine grid plus the bound masses.
    mean, std, center, width, low, high = 2.0, 1.5, 6.0, 0.8, 0.0, 7.0
    grid = np.linspace(low, high, 200_001)
    density = np.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    bump = np.exp(-0.5 * ((grid - center) / width) ** 2)
    interior = np.trapezoid(density * bump, grid)
    below = normal_cdf((low - mean) / std)
    above = normal_cdf((mean - high) / std)
    expected = (
        interior
        + below * math.exp(-0.5 * (center / width) ** 2)
        + above * math.exp(-0.5 * ((high - center) / width) ** 2)
    )
    exact = bump_expectation(mean, std, center, width, low, high)
    assert exact == pytest.approx(expected, rel=1e-8)
    assert bump_expectation_quadrature(mean, std, center, width, low, high) == pytest.approx(
        expected, rel=1e-8
    )


def test_normal_cdf_values():
    np.testing.assert_allclose(
        normal_cdf(np.array([-1.959963984540054, 0.0, 1.0])), [0.025, 0.5, 0.8413447460685429]
    )
    # The far tail keeps its relative accuracy (no 1 - Phi(30) cancellation).
    assert normal_cdf(-30.0) == pytest.approx(4.906713927148e-198, rel=1e-10)


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be an integer >= 1, got 0"),
        ({"n": -2}, "n must be an integer >= 1, got -2"),
        ({"n": 2.5}, "n must be an integer >= 1, got 2.5"),
        ({"n": True}, "n must be an integer >= 1, got True"),
        ({"sigma": 0.0}, "sigma must be a finite number > 0, got 0.0"),
        ({"sigma": -1.0}, "sigma must be a finite number > 0, got -1.0"),
        ({"sigma": float("nan")}, "sigma must be a finite number > 0, got nan"),
        ({"sigma": float("inf")}, "sigma must be a finite number > 0, got inf"),
        ({"sigma": (1.0, 0.0, 1.0)}, "sigma[1] must be a finite number > 0, got 0.0"),
        ({"sigma": (1.0, 2.0)}, "sigma must be a number or a sequence of n = 3 numbers"),
        ({"sigma": "1"}, "sigma must be a number or a sequence of 3 numbers"),
        ({"sigma": 1e-120}, "sigma=(1e-120, 1e-120, 1e-120) is too narrow: the global peak's "
         "height alpha_g = M_g / ((2 pi)^(n/2) prod_i sigma_i) overflows float64"),
        ({"sigma": (1e-200, 1e-200, 1.0)}, "is too narrow"),
        ({"low": 7.0, "high": 7.0}, "low must be < high, got low=7.0, high=7.0"),
        ({"low": 8.0, "high": 1.0}, "low must be < high, got low=8.0, high=1.0"),
        ({"high": float("inf")}, "high must be a finite real number, got inf"),
        ({"local_mass": 0.0}, "local_mass must be a finite number > 0, got 0.0"),
        ({"global_mass": -10.0}, "global_mass must be a finite number > 0, got -10.0"),
        ({"basin_gap": 0.0}, "basin_gap must be a finite number > 0, got 0.0"),
        ({"basin_gap": -1.0}, "basin_gap must be a finite number > 0, got -1.0"),
        ({"global_center": 6.0, "basin_gap": 4.0}, "global_center=6.0 contradicts local_center"),
        ({"global_center": 1.0}, "global_center must differ from local_center"),
        ({"local_center": float("nan")}, "local_center must be a finite real number, got nan"),
    ],
)
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DiffGame(**kwargs)


@pytest.mark.parametrize("kwargs", [{"local_center": -1.0}, {"global_center": 7.5}])
def test_centres_outside_bounds_warn(kwargs):
    with pytest.warns(UserWarning, match="outside the action bounds"):
        DiffGame(**kwargs)


def test_centres_inside_bounds_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DiffGame(n=7, basin_gap=6.0)


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ([1.0, 2.0], r"actions must have shape [..., n] with n = 3, got shape (2,)"),
        (1.0, r"actions must have shape [..., n] with n = 3, got shape ()"),
        ([1.0, float("nan"), 2.0], "actions must be finite"),
        ([1.0, float("inf"), 2.0], "actions must be finite"),
        (["a", "b", "c"], "actions must be a real array of shape [..., n] with n = 3"),
    ],
)
def test_bad_actions_raise_value_error(actions, message):
    game = DiffGame(n=3)
    with pytest.raises(ValueError, match=re.escape(message)):
        game.reward(actions)
    with pytest.raises(ValueError, match=re.escape(message)):
        game.reward_grad(actions)


@pytest.mark.parametrize(
    ("means", "stds", "message"),
    [
        ([1.0, 1.0], [1.0, 1.0, 1.0], "means must have shape [..., n] with n = 3"),
        ([1.0, 1.0, 1.0], [1.0, -0.1, 1.0], "stds must be >= 0"),
        ([1.0, float("nan"), 1.0], [1.0, 1.0, 1.0], "means must be finite"),
        ([1.0, 1.0, 1.0], [1.0, float("inf"), 1.0], "stds must be finite"),
    ],
)
def test_bad_policies_raise_value_error(means, stds, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DiffGame(n=3).expected_reward(means, stds)


def test_unknown_expectation_method_lists_the_choices():
    with pytest.raises(ValueError, match="'closed_form', 'quadrature', 'monte_carlo'; got 'mc'"):
        DiffGame().expected_reward([1.0] * 3, [1.0] * 3, method="mc")
