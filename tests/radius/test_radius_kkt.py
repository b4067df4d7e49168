"""The kkt scheduler (HATRPO-W): branch choice, budgets, floors, context checks, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from radius_testkit import RoughStub, SmoothStub, log_model, slsqp_split

from marl_tr.divergences import DIVERGENCES
from marl_tr.radius import RADIUS_SCHEDULERS, ArrayRadiusContext, KKTAllocation, RadiusInputWarning


def context(n, q=None, responses=None):
    return ArrayRadiusContext(n, iteration=3, natural_gradient_norms=q, price_responses=responses)


def test_smooth_branch_hand_worked():
    # q = (1, 2, 7), budget 0.1 per agent = 0.3, floor 0.1 * 0.3 / 3 = 0.01 (not binding):
    # delta = 0.3 * q / 10 = (0.03, 0.06, 0.21).
    kkt = KKTAllocation()  # divergence "kl": smooth at identity
    delta = kkt.radii(context(3, q=[1.0, 2.0, 7.0]))
    np.testing.assert_allclose(delta, [0.03, 0.06, 0.21], rtol=1e-14)


def test_smooth_branch_binding_floor():
    # q = (0.01, 1, 3): agent 0 is clamped at 0.01, the rest 0.29 split 1 : 3.
    delta = KKTAllocation().radii(context(3, q=[0.01, 1.0, 3.0]))
    np.testing.assert_allclose(delta, [0.01, 0.0725, 0.2175], rtol=1e-14)


def test_branch_follows_smooth_at_identity():
    q = [1.0, 2.0, 7.0]
    responses = [log_model(k, 0.1)[2] for k in (1.0, 1.0, 1.0)]  # symmetric: equal split
    ctx = context(3, q=q, responses=responses)
    np.testing.assert_allclose(KKTAllocation(divergence=SmoothStub()).radii(ctx),
                               [0.03, 0.06, 0.21], rtol=1e-14)
    np.testing.assert_allclose(KKTAllocation(divergence=RoughStub()).radii(ctx), [0.1] * 3,
                               rtol=1e-9)
    # the registered divergences: KL is smooth at identity, W1 is not
    np.testing.assert_allclose(KKTAllocation(divergence="w1").radii(ctx), [0.1] * 3, rtol=1e-9)


def test_w1_branch_matches_slsqp():
    rng = np.random.default_rng(7)
    k, b = rng.lognormal(0, 1, size=5), rng.lognormal(-2, 1, size=5)
    models = [log_model(ki, bi) for ki, bi in zip(k, b)]
    kkt = KKTAllocation(delta_total=0.4, min_share=0.2, divergence="w1", tol=1e-12)
    delta = kkt.radii(context(5, responses=[m[2] for m in models]))
    reference = slsqp_split([m[0] for m in models], [m[1] for m in models], 0.4, 0.2 * 0.4 / 5)
    np.testing.assert_allclose(delta, reference, rtol=1e-5, atol=1e-9)
    assert delta.sum() == pytest.approx(0.4, rel=1e-12)


def test_w1_branch_leftover_option():
    responses = [lambda p: 0.01, lambda p: 0.03]  # want 0.04 of 0.2 at any price
    ctx = context(2, responses=responses)
    np.testing.assert_allclose(KKTAllocation(divergence="w1").radii(ctx), [0.05, 0.15])
    np.testing.assert_allclose(KKTAllocation(divergence="w1", leftover="equal").radii(ctx),
                               [0.09, 0.11])


def test_budget_per_agent_and_total():
    q = [1.0, 1.0, 2.0, 4.0]
    per_agent = KKTAllocation(delta_per_agent=0.05).radii(context(4, q=q))
    assert per_agent.sum() == pytest.approx(0.2)
    total = KKTAllocation(delta_total=0.05).radii(context(4, q=q))
    assert total.sum() == pytest.approx(0.05)
    np.testing.assert_allclose(total, [0.00625, 0.00625, 0.0125, 0.025])
    assert KKTAllocation().delta_per_agent == 0.1 and KKTAllocation().delta_total is None
    assert KKTAllocation(delta_total=1.0).delta_per_agent is None


def test_equal_signals_reduce_to_the_fixed_radius():
    for n in (1, 3, 7):
        np.testing.assert_allclose(KKTAllocation().radii(context(n, q=[2.5] * n)), [0.1] * n)


def test_min_share_one_is_the_equal_split_without_reading_the_context():
    class Silent(ArrayRadiusContext):
        def natural_gradient_norms(self, divergence):
            raise AssertionError("should not be computed")

    np.testing.assert_allclose(KKTAllocation(min_share=1.0).radii(Silent(3)), [0.1] * 3)


def test_zero_and_non_finite_q():
    np.testing.assert_allclose(KKTAllocation().radii(context(3, q=[0.0, 0.0, 0.0])), [0.1] * 3)
    with pytest.warns(RadiusInputWarning,
                      match=r"natural_gradient_norms has non-finite values \(agent 1: nan, "
                            r"agent 2: inf\); treating them as 0"):
        delta = KKTAllocation().radii(context(3, q=[1.0, math.nan, math.inf]))
    np.testing.assert_allclose(delta, [0.28, 0.01, 0.01], rtol=1e-14)
    with pytest.warns(RadiusInputWarning, match=r"negative values \(agent 0: -1.0\)"):
        delta = KKTAllocation().radii(context(2, q=[-1.0, 3.0]))
    np.testing.assert_allclose(delta, [0.01, 0.19], rtol=1e-14)


def test_wrong_number_of_responses():
    class Short(ArrayRadiusContext):
        def price_responses(self, divergence):
            return [lambda p: 1.0]

    with pytest.raises(ValueError, match="price_responses has 1 entries for 3 agents"):
        KKTAllocation(divergence="w1").radii(Short(3))


def test_check_divergence_requires_the_same_divergence():
    KKTAllocation().check_divergence(DIVERGENCES.build("kl"))
    with pytest.raises(ValueError, match=r"budget measured in KL\(direction='forward'\).*"
                                         r"build it with divergence='w1:"):
        KKTAllocation().check_divergence(DIVERGENCES.build("w1"))
    with pytest.raises(ValueError, match="build it with divergence='kl:direction=reverse'"):
        KKTAllocation().check_divergence(DIVERGENCES.build("kl:direction=reverse"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta_per_agent": 0.1, "delta_total": 0.3},
         r"give delta_per_agent \(0.1\) or delta_total \(0.3\), not both"),
        ({"delta_per_agent": 0}, r"delta_per_agent must be > 0 \(finite\), got 0"),
        ({"delta_per_agent": -0.1}, r"delta_per_agent must be > 0 \(finite\), got -0.1"),
        ({"delta_total": float("nan")}, r"delta_total must be finite, got nan"),
        ({"delta_total": 0.0}, r"delta_total must be > 0 \(finite\), got 0.0"),
        ({"min_share": 0}, r"min_share must be in \(0.0, 1.0\], got 0"),
        ({"min_share": 1.5}, r"min_share must be in \(0.0, 1.0\], got 1.5"),
        ({"leftover": "drop"}, r"leftover must be one of 'proportional', 'equal'; got 'drop'"),
        ({"tol": 0.0}, r"tol must be in \(0.0, 1.0\), got 0.0"),
        ({"max_iter": 0}, r"max_iter must be an integer >= 1, got 0"),
        ({"max_iter": 2.5}, r"max_iter must be an integer, got 2.5"),
        ({"divergence": None}, r"divergence must be a divergence config string"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KKTAllocation(**kwargs)


def test_config_strings():
    assert RADIUS_SCHEDULERS.build("kkt:delta_total=0.3,divergence=w1") == KKTAllocation(
        delta_total=0.3, divergence="w1"
    )
    with pytest.raises(ValueError, match=r"Unknown keyword\(s\) 'delta' for radius scheduler "
                                         r"'kkt'. Accepted: delta_per_agent, delta_total"):
        RADIUS_SCHEDULERS.build("kkt:delta=0.3")
