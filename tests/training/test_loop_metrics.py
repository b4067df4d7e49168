"""The loop's per-agent metrics against closed forms: the divergence each step reached
(between the logged policies before and after it), the constraint ratio, the agent order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

import marl_tr


def kl(m1, s1, m2, s2):
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def w1_bound(m1, s1, m2, s2):
    return abs(m1 - m2) + abs(s1 - s2)  # eq. 31


def w1_exact(m1, s1, m2, s2):
    dm, ds = m1 - m2, s1 - s2
    if ds == 0:
        return abs(dm)
    return (abs(ds) * math.sqrt(2 / math.pi) * math.exp(-dm**2 / (2 * ds**2))
            + dm * (1 - 2 * norm.cdf(-dm / abs(ds))))


@pytest.mark.parametrize(("preset", "formula"), [
    ("hatrpo", kl), ("wmatrpo", w1_bound), ("wmatrpo:w1=exact", w1_exact),
])
def test_reported_divergence_is_the_closed_form_between_logged_policies(preset, formula):
    result = marl_tr.train(preset=preset, env_kwargs={"n": 3}, iterations=8, seed=3,
                           dtype="float64")
    previous = [(1.5, 0.5)] * 3  # the start the env suggests
    for row in result.metrics:
        for i in range(3):
            now = (row[f"mean_0_{i}"], row[f"std_0_{i}"])
            expected = formula(*previous[i], *now) if row[f"moved_{i}"] else 0.0
            assert row[f"divergence_{i}"] == pytest.approx(expected, rel=1e-7, abs=1e-13), (
                row["iteration"], i)
            assert row[f"constraint_ratio_{i}"] == pytest.approx(
                row[f"divergence_{i}"] / row[f"radius_{i}"], rel=1e-12)
            previous[i] = now
    if preset == "hatrpo":  # the line search keeps every accepted step in the KL ball
        for i in range(3):
            assert (result.column(f"divergence_{i}") <= 0.1 * (1 + 1e-9)).all()
            assert result.column(f"moved_{i}").sum() > 0


def test_fixed_agent_order():
    result = marl_tr.train(env_kwargs={"n": 4}, iterations=5, agent_order="fixed")
    assert [row["order"] for row in result.metrics] == ["0,1,2,3"] * 5


def test_random_agent_order_is_a_fresh_permutation_each_iteration():
    result = marl_tr.train(env_kwargs={"n": 4}, iterations=12, seed=0)
    orders = [tuple(int(a) for a in row["order"].split(",")) for row in result.metrics]
    assert all(sorted(order) == [0, 1, 2, 3] for order in orders)
    assert len(set(orders)) > 3
    assert np.isfinite(result.column("reward_mean")).all()


def test_result_accessors_check_their_arguments():
    result = marl_tr.train(env_kwargs={"n": 2}, iterations=2, seed=0)
    with pytest.raises(ValueError, match=r"no metric 'divergence0' in this run \(\d+ metrics, "
                       r"result\.metrics\[0\] lists them\); did you mean 'divergence_0'"):
        result.column("divergence0")
    with pytest.raises(ValueError, match=r"clip must be true or false, got 'no'"):
        result.expected_reward(clip="no")
    with pytest.raises(ValueError, match="state-independent categorical policies"):
        result.final_probs()
    assert marl_tr.train(env_kwargs={"n": 2}, iterations=0).column("reward_mean").size == 0


def test_the_expected_reward_of_categorical_policies_on_a_matrix_game_is_exact():
    """E[r] = sum_a payoff[a] prod_i p_i(a_i), summed here by hand from the final
    probabilities."""
    result = marl_tr.train(env="ClimbingGame-v0", preset="hatrpo", iterations=5, seed=0)
    probs = result.final_probs()
    assert [p.shape for p in probs] == [(3,), (3,)]
    np.testing.assert_allclose([p.sum() for p in probs], 1.0, rtol=1e-12)
    payoff = np.asarray(result.game.payoff, dtype=float)
    by_hand = sum(payoff[a, b] * probs[0][a] * probs[1][b] for a in range(3) for b in range(3))
    assert result.expected_reward() == pytest.approx(by_hand, rel=1e-12)
