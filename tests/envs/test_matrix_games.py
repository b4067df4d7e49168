"""Climbing and penalty games (Claus and Boutilier, 1998): payoffs, expectations, bad input."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from marl_tr_envs import ClimbingGame, MatrixGame, PenaltyGame


def test_climbing_payoff_and_facts():
    game = ClimbingGame()
    np.testing.assert_array_equal(game.payoff, [[11, -30, 0], [-30, 7, 6], [0, 0, 5]])
    assert game.n_agents == 2
    assert game.info() == {
        "optimal_joint_actions": [(0, 0)],
        "optimal_reward": 11.0,
        "pure_nash_equilibria": [(0, 0), (1, 1)],
    }


@pytest.mark.parametrize("k", [-10.0, -100.0, 0.0])
def test_penalty_payoff_and_facts(k):
    game = PenaltyGame(k=k)
    np.testing.assert_array_equal(game.payoff, [[10, 0, k], [0, 2, 0], [k, 0, 10]])
    assert game.optimal_joint_actions() == [(0, 0), (2, 2)]
    assert game.pure_nash_equilibria() == [(0, 0), (1, 1), (2, 2)]


def test_default_penalty_is_minus_ten():
    assert PenaltyGame().k == -10.0
    assert PenaltyGame().payoff[0, 2] == -10.0


def test_payoff_is_read_only():
    with pytest.raises(ValueError, match="read-only"):
        ClimbingGame().payoff[0, 0] = 100.0


def test_reward_is_a_batched_payoff_lookup():
    game = ClimbingGame()
    actions = np.array(list(itertools.product(range(3), range(3)))).reshape(3, 3, 2)
    np.testing.assert_array_equal(game.reward(actions), game.payoff)
    assert game.reward(np.array([1.0, 2.0])) == 6.0  # integer-valued floats are accepted


def test_expected_reward_is_exact():
    game = PenaltyGame(k=-20.0)
    p0, p1 = np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.1, 0.3])
    by_hand = sum(p0[i] * p1[j] * game.payoff[i, j] for i in range(3) for j in range(3))
    assert game.expected_reward([p0, p1]) == pytest.approx(by_hand, rel=1e-14)
    # Pure strategies give the payoff entry.
    assert game.expected_reward([[0, 0, 1.0], [1.0, 0, 0]]) == -20.0
    # Batched over leading dimensions.
    batched = game.expected_reward([np.stack([p0, p1]), np.stack([p1, p0])])
    assert batched.shape == (2,)
    assert batched[0] == pytest.approx(by_hand)


def test_general_matrix_game_with_three_agents():
    payoff = np.arange(24, dtype=float).reshape(2, 3, 4)
    game = MatrixGame(payoff=payoff)
    assert game.n_agents == 3
    assert game.joint_action_space().nvec.tolist() == [2, 3, 4]
    assert game.agent_action_space(2).n == 4
    assert game.reward([1, 2, 3]) == 23.0
    uniform = [np.full(k, 1.0 / k) for k in (2, 3, 4)]
    assert game.expected_reward(uniform) == pytest.approx(payoff.mean())
    assert game.optimal_joint_actions() == [(1, 2, 3)]


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (1.0, "k must be a finite number <= 0 (a penalty), got 1.0"),
        (float("nan"), "k must be a finite real number, got nan"),
        (float("-inf"), "k must be a finite real number, got -inf"),
        ("big", "k must be a finite real number, got 'big'"),
    ],
)
def test_bad_penalty_raises_value_error(k, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        PenaltyGame(k=k)


@pytest.mark.parametrize(
    ("payoff", "message"),
    [
        ([[1.0, float("nan")]], "payoff must be finite"),
        (5.0, "payoff must have one dimension per agent"),
        ([["a"]], "payoff must be a real array"),
    ],
)
def test_bad_payoff_raises_value_error(payoff, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MatrixGame(payoff=payoff)


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        ([0, 3], "actions out of range (agent_0: 0..2, agent_1: 0..2), got [0, 3]"),
        ([-1, 0], "actions out of range"),
        ([0.5, 1], "actions must be finite whole numbers"),
        ([float("nan"), 1], "actions must be finite whole numbers"),
        ([0, 1, 2], "actions must have shape [..., n] with n = 2, got shape (3,)"),
        ([True, False], "actions must be integers of shape [..., n] with n = 2"),
    ],
)
def test_bad_actions_raise_value_error(actions, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ClimbingGame().reward(actions)


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        ([[1.0, 0.0, 0.0]], "one probability vector per agent (n = 2), got 1"),
        ([[0.5, 0.5], [1.0, 0.0, 0.0]], "probs_per_agent[0] must have shape [..., 3]"),
        ([[0.5, 0.6, -0.1], [1.0, 0.0, 0.0]], "probs_per_agent[0] must be finite and >= 0"),
        ([[0.5, 0.4, 0.0], [1.0, 0.0, 0.0]], "probs_per_agent[0] must sum to 1"),
    ],
)
def test_bad_probabilities_raise_value_error(probs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ClimbingGame().expected_reward(probs)
