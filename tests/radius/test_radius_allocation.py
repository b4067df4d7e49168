"""The budget solvers of marl_tr.radius.allocation against SLSQP, linprog and hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from radius_testkit import log_model, quadratic_model, slsqp_split, sqrt_model
from scipy.optimize import linprog

from marl_tr.radius import RadiusInputWarning
from marl_tr.radius.allocation import check_bounds, greedy_fill, price_fill, proportional_fill


def assert_feasible(delta, total, floor, cap=math.inf):
    assert delta.dtype == np.float64
    assert delta.sum() == pytest.approx(total, rel=1e-12)
    assert (delta >= floor * (1 - 1e-12)).all()
    assert (delta <= cap * (1 + 1e-12)).all()


# -- proportional_fill: the smooth-divergence KKT split ----------------------------------


def test_proportional_hand_worked_no_floor_binding():
    # q = (1, 2, 7), total 0.3, floor 0.01: shares 0.3 * (0.1, 0.2, 0.7), all above the floor.
    delta = proportional_fill(np.array([1.0, 2.0, 7.0]), 0.3, 0.01)
    np.testing.assert_allclose(delta, [0.03, 0.06, 0.21], rtol=1e-14)


def test_proportional_hand_worked_floor_binding():
    # q = (0.01, 1, 3): agent 0's share 0.3 * 0.01 / 4.01 = 0.00075 < floor 0.01, so it is
    # clamped at 0.01 and the rest 0.29 is split 1 : 3 -> 0.0725, 0.2175.
    delta = proportional_fill(np.array([0.01, 1.0, 3.0]), 0.3, 0.01)
    np.testing.assert_allclose(delta, [0.01, 0.0725, 0.2175], rtol=1e-14)


def test_proportional_cascading_floors_are_exact():
    # total 1, floor 0.2, q = (1, 2, 12): shares (1, 2, 12) / 15 = (0.067, 0.133, 0.8).
    # Clamping agent 0 leaves 0.8 split 2 : 12 -> agent 1 gets 0.114 < 0.2, so it is clamped
    # too and agent 2 takes the rest: (0.2, 0.2, 0.6). A one-shot clamp would give
    # (0.2, 0.2, 0.8), which breaks the budget.
    delta = proportional_fill(np.array([1.0, 2.0, 12.0]), 1.0, 0.2)
    np.testing.assert_allclose(delta, [0.2, 0.2, 0.6], rtol=1e-14)


def test_proportional_all_zero_is_equal_split():
    np.testing.assert_allclose(proportional_fill(np.zeros(4), 0.4, 0.01), [0.1] * 4)


def test_proportional_zero_weights_get_the_floor():
    delta = proportional_fill(np.array([0.0, 1.0, 1.0]), 0.3, 0.02)
    np.testing.assert_allclose(delta, [0.02, 0.14, 0.14], rtol=1e-14)


def test_proportional_is_scale_free():
    q = np.array([1.0, 3.0, 6.0])
    expected = proportional_fill(q, 0.5, 0.01)
    for scale in (1e-300, 1e-150, 1e150, 1e300):
        np.testing.assert_allclose(proportional_fill(q * scale, 0.5, 0.01), expected, rtol=1e-13)


@pytest.mark.parametrize("seed", range(12))
def test_proportional_matches_slsqp(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 8))
    q = rng.lognormal(0.0, 1.0, size=n)
    if seed % 2:  # make some agents nearly silent, so that floors bind
        q[: n // 2] *= 1e-3
    total = float(rng.uniform(0.05, 2.0))
    floor = float(rng.uniform(0.02, 0.5)) * total / n
    delta = proportional_fill(q, total, floor)
    models = [sqrt_model(math.sqrt(2 * qi)) for qi in q]
    reference = slsqp_split([m[0] for m in models], [m[1] for m in models], total, floor)
    assert_feasible(delta, total, floor)
    np.testing.assert_allclose(delta, reference, rtol=1e-5, atol=1e-9 * total)
    if seed % 2:
        assert np.isclose(delta, floor).any()  # the case really has a binding floor


# -- price_fill: the W1 branch's bisection on a shared price -----------------------------


@pytest.mark.parametrize("seed", range(12))
def test_price_fill_matches_slsqp_log_model(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 8))
    k = rng.lognormal(0.0, 1.0, size=n)
    b = rng.lognormal(-2.0, 1.0, size=n)
    if seed % 2:
        k[: n // 2] *= 0.01  # weak agents: their responses fall below the floor
    models = [log_model(ki, bi) for ki, bi in zip(k, b)]
    total = float(rng.uniform(0.05, 1.0))
    floor = float(rng.uniform(0.05, 0.5)) * total / n
    delta = price_fill([m[2] for m in models], total, floor, tol=1e-12)
    reference = slsqp_split([m[0] for m in models], [m[1] for m in models], total, floor)
    assert_feasible(delta, total, floor)
    np.testing.assert_allclose(delta, reference, rtol=1e-5, atol=1e-8 * total)


@pytest.mark.parametrize("seed", range(6))
def test_price_fill_matches_slsqp_sqrt_model(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(2, 8))
    a = rng.lognormal(0.0, 1.0, size=n)
    models = [sqrt_model(ai) for ai in a]
    total, floor = 0.3, 0.1 * 0.3 / n
    delta = price_fill([m[2] for m in models], total, floor, tol=1e-12)
    reference = slsqp_split([m[0] for m in models], [m[1] for m in models], total, floor)
    np.testing.assert_allclose(delta, reference, rtol=1e-5, atol=1e-8 * total)


@pytest.mark.parametrize("seed", range(4))
def test_price_fill_with_sqrt_responses_equals_proportional_fill(seed):
    # I_i = sqrt(2 delta q_i) has c_i(lambda) = q_i / (2 lambda^2): the bisection must agree
    # with the exact water-filling to the stated tolerance (tol * total per radius).
    rng = np.random.default_rng(300 + seed)
    q = rng.lognormal(0.0, 2.0, size=6)
    responses = [sqrt_model(math.sqrt(2 * qi))[2] for qi in q]
    tol = 1e-10
    delta = price_fill(responses, 0.6, 0.01, tol=tol)
    np.testing.assert_allclose(delta, proportional_fill(q, 0.6, 0.01), rtol=0, atol=tol * 0.6)


def test_price_fill_hand_worked():
    # c_i(lambda) = max(0, k_i / lambda - 1) with k = (1, 3): at lambda = 4/5 the responses
    # are (0.25, 2.75), sum 3 = total; the floor 0.1 does not bind.
    responses = [log_model(1.0, 1.0)[2], log_model(3.0, 1.0)[2]]
    np.testing.assert_allclose(price_fill(responses, 3.0, 0.1, tol=1e-13), [0.25, 2.75],
                               rtol=1e-9)


def test_price_fill_leftover_rules():
    # c_i(0) = m_i k_i = (0.02, 0.06): the agents want 0.08 of a budget of 0.2 at price 0.
    responses = [quadratic_model(1.0, 0.02)[2], quadratic_model(2.0, 0.03)[2]]
    # proportional: scaled by 0.2 / 0.08 = 2.5 -> (0.05, 0.15)
    np.testing.assert_allclose(price_fill(responses, 0.2, 0.01), [0.05, 0.15], rtol=1e-14)
    # equal: leftover 0.12 split -> (0.08, 0.12)
    np.testing.assert_allclose(price_fill(responses, 0.2, 0.01, leftover="equal"),
                               [0.08, 0.12], rtol=1e-14)
    # with the floor 0.04 the demand is (0.04, 0.06) = 0.1 -> proportional x2 = (0.08, 0.12)
    np.testing.assert_allclose(price_fill(responses, 0.2, 0.04), [0.08, 0.12], rtol=1e-14)


def test_price_fill_quadratic_model_matches_slsqp_when_budget_binds():
    models = [quadratic_model(1.0, 0.2), quadratic_model(2.0, 0.3), quadratic_model(0.1, 0.1)]
    delta = price_fill([m[2] for m in models], 0.3, 0.01, tol=1e-13)
    reference = slsqp_split([m[0] for m in models], [m[1] for m in models], 0.3, 0.01)
    np.testing.assert_allclose(delta, reference, rtol=1e-5, atol=1e-9)


def test_price_fill_tiny_and_huge_prices():
    for k in (1e-12, 1e12):  # lambda* ~ k: needs bracketing far below / above 1
        responses = [log_model(k, 1.0)[2], log_model(2 * k, 1.0)[2]]
        # k/lam - 1 + 2k/lam - 1 = 1 -> lam = k -> responses (0, 1) -> floor 0.01 binds:
        # 2k/lam - 1 = 0.99 -> delta = (0.01, 0.99)
        np.testing.assert_allclose(price_fill(responses, 1.0, 0.01, tol=1e-12),
                                   [0.01, 0.99], rtol=1e-8)


def test_price_fill_step_responses_split_the_jump():
    # Responses that jump at the same price (indifferent agents) share the jump equally.
    def step(level, big):
        return lambda price: big if price < level else 0.0

    responses = [step(2.0, 1.0), step(2.0, 1.0), step(1.0, 1.0)]
    delta = price_fill(responses, 1.0, 0.05)
    # at lambda just above 1 agents 0, 1 take 1.0 each (too much), agent 2 the floor: the
    # 0.95 above agent 2's floor is split between the two tied agents.
    np.testing.assert_allclose(delta, [0.475, 0.475, 0.05], rtol=1e-12)


def test_price_fill_min_share_one_never_calls_responses():
    def boom(price):
        raise AssertionError("called")

    np.testing.assert_allclose(price_fill([boom, boom], 0.2, 0.1), [0.1, 0.1])


def test_price_fill_rejects_nan_and_negative_responses():
    with pytest.raises(ValueError, match=r"not NaN; at price 0.0 got agent 1: nan"):
        price_fill([lambda p: 1.0, lambda p: math.nan], 0.5, 0.01)
    with pytest.raises(ValueError, match=r"agent 0: -1.0"):
        price_fill([lambda p: -1.0, lambda p: 1.0], 0.5, 0.01)


def test_price_fill_rejects_responses_that_never_fall():
    with pytest.raises(ValueError, match="stay above the budget"):
        price_fill([lambda p: 10.0, lambda p: 10.0], 0.5, 0.01)


def test_price_fill_warns_when_max_iter_is_too_small():
    responses = [log_model(1.0, 0.1)[2], log_model(2.0, 0.3)[2]]
    with pytest.warns(RadiusInputWarning, match="stopped after max_iter=2 steps"):
        delta = price_fill(responses, 0.5, 0.01, tol=1e-12, max_iter=2)
    assert_feasible(delta, 0.5, 0.01)  # still a valid split


# -- greedy_fill: the fractional knapsack ------------------------------------------------


def test_greedy_fill_hand_worked():
    # total 0.3, floor 0.01, cap 0.2, scores (0.2, 0.3, 0): floors use 0.03, 0.27 remain;
    # agent 1 (best) fills to 0.2 (+0.19), agent 0 takes the last 0.08 -> 0.09.
    delta = greedy_fill(np.array([0.2, 0.3, 0.0]), 0.3, 0.01, 0.2)
    np.testing.assert_allclose(delta, [0.09, 0.2, 0.01], rtol=1e-14)


def test_greedy_fill_ties_share_equally():
    delta = greedy_fill(np.array([1.0, 5.0, 5.0, 0.5]), 1.0, 0.05, 0.3)
    # 0.8 above the floors 0.05: the tied pair (score 5) fills to the cap, +0.25 each;
    # agent 0 (score 1) fills to the cap with 0.25 of the remaining 0.3; agent 3 gets 0.05.
    np.testing.assert_allclose(delta, [0.3, 0.3, 0.3, 0.1], rtol=1e-14)
    np.testing.assert_allclose(greedy_fill(np.zeros(4), 1.0, 0.05, 0.3), [0.25] * 4)


def test_greedy_fill_without_cap_gives_the_rest_to_the_best():
    np.testing.assert_allclose(greedy_fill(np.array([1.0, 2.0, 0.0]), 0.3, 0.01),
                               [0.01, 0.28, 0.01], rtol=1e-14)


@pytest.mark.parametrize("seed", range(8))
def test_greedy_fill_matches_linprog(seed):
    rng = np.random.default_rng(400 + seed)
    n = int(rng.integers(2, 9))
    scores = rng.exponential(size=n)
    total = float(rng.uniform(0.1, 2.0))
    floor = float(rng.uniform(0.0, 1.0)) * total / n
    cap = float(rng.uniform(1.0, 3.0)) * total / n
    delta = greedy_fill(scores, total, floor, cap)
    lp = linprog(-scores, A_eq=np.ones((1, n)), b_eq=[total], bounds=[(floor, cap)] * n,
                 method="highs")
    assert lp.success
    assert_feasible(delta, total, floor, cap)
    np.testing.assert_allclose(delta, lp.x, rtol=1e-9, atol=1e-12)


def test_check_bounds_messages():
    with pytest.raises(ValueError, match=r"3 agents x floor 0.2 exceeds the budget 0.5"):
        check_bounds(3, 0.5, 0.2)
    with pytest.raises(ValueError, match=r"2 agents x cap 0.1 cannot use up the budget 0.5"):
        check_bounds(2, 0.5, 0.0, 0.1)
    with pytest.raises(ValueError, match=r"budget must be finite and > 0, got nan"):
        check_bounds(2, math.nan, 0.0)
    with pytest.raises(ValueError, match=r"floor must be finite and >= 0, got -0.1"):
        check_bounds(2, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"at least one agent, got n=0"):
        check_bounds(0, 1.0, 0.0)
