"""The greedy scheduler (after HATRPO-G): hand-worked cases, scores, edge cases, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from radius_testkit import RoughStub, SmoothStub

from marl_tr.divergences import DIVERGENCES
from marl_tr.radius import (
    RADIUS_SCHEDULERS,
    ArrayRadiusContext,
    GreedyAllocation,
    PreviousSteps,
    RadiusInputWarning,
)


def context(improvement, divergence, radius=None):
    n = len(improvement)
    previous = PreviousSteps(
        radius=np.asarray(radius if radius is not None else [0.1] * n, dtype=np.float64),
        divergence=np.asarray(divergence, dtype=np.float64),
        improvement=np.asarray(improvement, dtype=np.float64),
    )
    return ArrayRadiusContext(n, iteration=4, previous=previous)


def test_hand_worked_smooth_divergence():
    # KL (smooth): score = improvement / sqrt(divergence + 1e-8)
    #   agent 0: 0.02 / sqrt(0.01) = 0.2;  agent 1: 0.09 / sqrt(0.09) = 0.3;  agent 2: 0.
    # budget 3 x 0.1 = 0.3, floor 0.1 x 0.1 = 0.01, cap 2 x 0.1 = 0.2.
    # Floors use 0.03; agent 1 (best) fills to the cap 0.2 (+0.19); agent 0 takes the last
    # 0.08 -> 0.09; agent 2 keeps its floor 0.01.
    greedy = GreedyAllocation()
    delta = greedy.radii(context([0.02, 0.09, 0.0], [0.01, 0.09, 0.04]))
    np.testing.assert_allclose(delta, [0.09, 0.2, 0.01], rtol=1e-14)
    np.testing.assert_allclose(greedy.scores(context([0.02, 0.09, 0.0], [0.01, 0.09, 0.04])
                                             .previous, 3), [0.2, 0.3, 0.0], rtol=1e-6)


def test_hand_worked_w1_uses_the_plain_ratio():
    # W1 (not smooth): score = improvement / divergence: (0.02/0.01, 0.09/0.09, 0) = (2, 1, 0),
    # so now agent 0 is filled first: 0.2, agent 1 gets the last 0.08 -> 0.09, agent 2 0.01.
    delta = GreedyAllocation(divergence="w1").radii(context([0.02, 0.09, 0.0], [0.01, 0.09, 0.04]))
    np.testing.assert_allclose(delta, [0.2, 0.09, 0.01], rtol=1e-14)
    assert GreedyAllocation(divergence=RoughStub()).radii(
        context([0.02, 0.09, 0.0], [0.01, 0.09, 0.04])
    ).tolist() == pytest.approx([0.2, 0.09, 0.01], rel=1e-14)


def test_smooth_score_does_not_depend_on_the_radius_last_given():
    # Two agents with the same q under the sqrt model I = sqrt(2 q delta), one given a radius
    # 100x smaller: their scores are equal, so they split equally (a plain ratio I / delta
    # would favour the agent that was given less, and the split would oscillate).
    q = 0.5
    divergence = np.array([0.001, 0.1])
    improvement = np.sqrt(2 * q * divergence)
    greedy = GreedyAllocation(divergence=SmoothStub(), eps=1e-300)
    scores = greedy.scores(context(improvement, divergence).previous, 2)
    assert scores[0] == pytest.approx(scores[1], rel=1e-12)
    np.testing.assert_allclose(greedy.radii(context(improvement, divergence)), [0.1, 0.1])


def test_first_iteration_is_the_equal_split():
    ctx = ArrayRadiusContext(4, iteration=0, previous=None)
    np.testing.assert_allclose(GreedyAllocation().radii(ctx), [0.1] * 4)
    np.testing.assert_allclose(GreedyAllocation(delta_total=1.0).radii(ctx), [0.25] * 4)


def test_ties_and_no_improvement_give_equal_shares():
    np.testing.assert_allclose(GreedyAllocation().radii(context([0.0] * 3, [0.1] * 3)), [0.1] * 3)
    # negative improvements are "no evidence": score 0, same as no improvement
    np.testing.assert_allclose(
        GreedyAllocation().radii(context([-0.5, -0.1, 0.0], [0.1, 0.1, 0.1])), [0.1] * 3
    )


def test_no_cap_gives_the_rest_to_the_best():
    delta = GreedyAllocation(max_share=None).radii(context([0.02, 0.09, 0.0], [0.01, 0.09, 0.04]))
    np.testing.assert_allclose(delta, [0.01, 0.28, 0.01], rtol=1e-14)


def test_single_agent_gets_the_whole_budget():
    np.testing.assert_allclose(GreedyAllocation().radii(context([0.3], [0.1])), [0.1])


def test_bad_previous_values_score_zero_with_a_warning():
    ctx = context([0.02, math.nan, 0.05], [0.01, 0.09, -0.04])
    with pytest.warns(RadiusInputWarning) as record:
        delta = GreedyAllocation().radii(ctx)
    messages = " | ".join(str(w.message) for w in record)
    assert "previous.improvement has non-finite values (agent 1: nan)" in messages
    assert "previous.divergence has negative values (agent 2: -0.04)" in messages
    np.testing.assert_allclose(delta, [0.2, 0.05, 0.05], rtol=1e-14)


def test_previous_of_wrong_length_is_an_error():
    previous = PreviousSteps(np.ones(2), np.ones(2), np.ones(2))

    class Liar(ArrayRadiusContext):
        pass

    ctx = Liar(3)
    ctx.previous = previous
    with pytest.raises(ValueError, match=r"previous.improvement must have shape \(3,\)"):
        GreedyAllocation().radii(ctx)


def test_check_divergence():
    GreedyAllocation(divergence="w1").check_divergence(DIVERGENCES.build("w1"))
    with pytest.raises(ValueError, match="build it with divergence='kl:direction=forward'"):
        GreedyAllocation(divergence="w1").check_divergence(DIVERGENCES.build("kl"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_share": 0.5}, r"max_share must be >= 1 \(or None for no cap\), got 0.5"),
        ({"max_share": math.inf}, r"max_share must be finite, got inf"),
        ({"eps": 0}, r"eps must be > 0 \(finite\), got 0"),
        ({"eps": -1e-8}, r"eps must be > 0 \(finite\), got -1e-08"),
        ({"min_share": -0.1}, r"min_share must be in \(0.0, 1.0\], got -0.1"),
        ({"delta_total": -1}, r"delta_total must be > 0 \(finite\), got -1"),
        ({"delta_per_agent": 1, "delta_total": 3}, r"not both"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GreedyAllocation(**kwargs)


def test_config_string():
    built = RADIUS_SCHEDULERS.build("greedy:delta_total=0.5,max_share=none,divergence=w1")
    assert built == GreedyAllocation(delta_total=0.5, max_share=None, divergence="w1")
