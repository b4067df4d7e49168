"""CAATR (eqs. 13-14, Algorithm 2) against hand-worked values, clamps, edge cases and errors."""

from __future__ import annotations

import numpy as np
import pytest

from marl_tr.divergences import DIVERGENCES
from marl_tr.radius import CAATR, RADIUS_SCHEDULERS, ArrayRadiusContext, RadiusInputWarning
from marl_tr.registry import UnknownNameError


def test_hand_worked_three_agents():
    # drifts (0.1, 0.2, 0.3), C = 0.02, eps_base = 1e-3, eps_max = 1:
    #   agent 0: D_-0 = 0.2 + 0.3 = 0.5, eps = max(1e-3, min(1, 0.05)) = 0.05,
    #            delta = 0.02 / 0.55 = 0.036363...
    #   agent 1: D_-1 = 0.4, eps = 0.04, delta = 0.02 / 0.44 = 0.045454...
    #   agent 2: D_-2 = 0.3, eps = 0.03, delta = 0.02 / 0.33 = 0.060606...
    caatr = CAATR(C=0.02, eps_base=1e-3, eps_max=1.0)
    delta = caatr.radii(ArrayRadiusContext(3, iteration=5, drift=[0.1, 0.2, 0.3]))
    np.testing.assert_allclose(delta, [0.02 / 0.55, 0.02 / 0.44, 0.02 / 0.33], rtol=1e-14)
    assert delta.dtype == np.float64 and delta.shape == (3,)


def test_eps_clamped_at_eps_base():
    # drifts (0, 0.004, 0.001): D_-0 = 0.005 -> D/10 = 5e-4 < eps_base = 1e-3 -> eps = 1e-3,
    # delta_0 = 0.02 / 0.006; D_-1 = 0.001 -> eps = 1e-3, delta_1 = 0.02 / 0.002 = 10.
    delta = CAATR().radii_from_drift(np.array([0.0, 0.004, 0.001]))
    np.testing.assert_allclose(delta[:2], [0.02 / 0.006, 10.0], rtol=1e-13)


def test_eps_clamped_at_eps_max():
    # drifts (5, 10, 20), eps_max = 1: D_-0 = 30 -> D/10 = 3 > 1 -> eps = 1, delta = C / 31;
    # D_-2 = 15 -> eps = 1, delta = C / 16. With eps_max = 10 the middle regime applies:
    # eps = D/10, delta = C / (1.1 D).
    delta = CAATR(C=0.1, eps_max=1.0).radii_from_drift(np.array([5.0, 10.0, 20.0]))
    np.testing.assert_allclose(delta, [0.1 / 31, 0.1 / 26, 0.1 / 16], rtol=1e-14)
    delta = CAATR(C=0.1, eps_max=10.0).radii_from_drift(np.array([5.0, 10.0, 20.0]))
    np.testing.assert_allclose(delta, 0.1 / (1.1 * np.array([30.0, 25.0, 15.0])), rtol=1e-14)


def test_still_teammates_give_c_over_eps_base_and_max_delta_caps_it():
    ctx = ArrayRadiusContext(3, drift=[0.0, 0.0, 0.0])
    np.testing.assert_allclose(CAATR(C=0.02, eps_base=1e-3).radii(ctx), [20.0] * 3)
    np.testing.assert_allclose(CAATR(max_delta=0.5).radii(ctx), [0.5] * 3)
    # the cap only binds where eq. 13 exceeds it
    capped = CAATR(max_delta=0.05, initial_delta=0.05).radii(
        ArrayRadiusContext(3, drift=[0.1, 0.2, 0.3])
    )
    np.testing.assert_allclose(capped, [0.02 / 0.55, 0.02 / 0.44, 0.05], rtol=1e-14)


def test_first_iteration_uses_initial_delta():
    ctx = ArrayRadiusContext(4, iteration=0, drift=None)
    np.testing.assert_allclose(CAATR().radii(ctx), [0.1] * 4)
    np.testing.assert_allclose(CAATR(initial_delta=0.3).radii(ctx), [0.3] * 4)


def test_single_agent_uses_initial_delta():
    ctx = ArrayRadiusContext(1, iteration=7, drift=[0.4])
    np.testing.assert_allclose(CAATR(initial_delta=0.25).radii(ctx), [0.25])


def test_teammate_drift_sum_is_exact_for_mixed_scales():
    # D_-1 = 1e10 + 1e-3; D_-0 = 2e-3 exactly (a "sum minus own" would lose it to rounding)
    delta = CAATR(C=1.0, eps_base=1e-6).radii_from_drift(np.array([1e10, 1e-3, 1e-3]))
    assert delta[0] == pytest.approx(1.0 / (2e-3 * 1.1), rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_monotone_decreasing_in_teammate_drift(seed):
    rng = np.random.default_rng(seed)
    n = 5
    caatr = CAATR(C=0.1, eps_base=1e-3, eps_max=0.5)
    drift = rng.exponential(0.05, size=n)
    base = caatr.radii_from_drift(drift)
    for j in range(n):
        for bump in (1e-4, 0.01, 1.0, 100.0):
            moved = drift.copy()
            moved[j] += bump
            delta = caatr.radii_from_drift(moved)
            others = np.arange(n) != j
            assert (delta[others] < base[others]).all()  # teammates of j shrink
            assert delta[j] == base[j]  # j's own drift does not change its radius


def test_negative_drift_warns_and_counts_as_zero():
    ctx = ArrayRadiusContext(3, drift=[0.1, -0.2, 0.3])
    with pytest.warns(RadiusInputWarning, match=r"drift has negative values \(agent 1: -0.2\)"):
        delta = CAATR().radii(ctx)
    np.testing.assert_allclose(delta, CAATR().radii_from_drift(np.array([0.1, 0.0, 0.3])))


def test_non_finite_drift_is_an_error():
    ctx = ArrayRadiusContext(3, drift=[0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match=r"drift has non-finite values \(agent 1: nan\)"):
        CAATR().radii(ctx)


def test_drift_of_wrong_length_is_an_error():
    class Liar(ArrayRadiusContext):
        def drift(self, divergence):
            return np.array([0.1, 0.2])

    with pytest.raises(ValueError, match=r"drift must have shape \(3,\).*got \(2,\)"):
        CAATR().radii(Liar(3))


def test_drift_is_requested_in_the_configured_divergence():
    seen = []

    class Recorder(ArrayRadiusContext):
        def drift(self, divergence):
            seen.append(divergence)
            return np.array([0.1, 0.2, 0.3])

    CAATR(divergence="w2").radii(Recorder(3))
    assert [d.registry_name for d in seen] == ["w2"]


def test_config_string_and_table_2_values():
    for c in (0.02, 0.10, 0.15):
        caatr = RADIUS_SCHEDULERS.build(f"caatr:C={c},eps_base=1e-3")
        assert caatr == CAATR(C=c)
    assert repr(CAATR()) == (
        "CAATR(C=0.02, eps_base=0.001, eps_max=1.0, divergence='w1', initial_delta=0.1, "
        "max_delta=None)"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"C": 0}, r"C must be > 0 \(finite\), got 0"),
        ({"C": -0.02}, r"C must be > 0 \(finite\), got -0.02"),
        ({"C": float("inf")}, r"C must be finite, got inf"),
        ({"C": "big"}, r"C must be a real number, got 'big'"),
        ({"eps_base": 0.0}, r"eps_base must be > 0 \(finite\), got 0.0"),
        ({"eps_base": 0.5, "eps_max": 0.1}, r"eps_base \(0.5\) must be <= eps_max \(0.1\)"),
        ({"eps_max": float("nan")}, r"eps_max must be finite, got nan"),
        ({"initial_delta": 0}, r"initial_delta must be > 0 \(finite\), got 0"),
        ({"max_delta": -1.0}, r"max_delta must be > 0 \(finite\), got -1.0"),
        ({"max_delta": 0.05}, r"initial_delta \(0.1\) must be <= max_delta \(0.05\)"),
        ({"divergence": 3}, r"divergence must be a divergence config string .* got 3"),
        ({"divergence": " "}, r"divergence must be a divergence config string .* got ' '"),
        ({"divergence": "w1:ground=l1,spacing"}, r"Bad argument 'spacing' in 'ground=l1,spa"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CAATR(**kwargs)


def test_bad_arguments_through_the_registry():
    with pytest.raises(ValueError, match=r"Cannot build radius scheduler 'caatr'.*C must be > 0"):
        RADIUS_SCHEDULERS.build("caatr:C=-1")
    with pytest.raises(ValueError, match=r"Unknown keyword\(s\) 'eps' for radius scheduler"):
        RADIUS_SCHEDULERS.build("caatr:eps=0.1")


def test_unknown_divergence_name_fails_on_first_use_with_the_list():
    caatr = CAATR(divergence="w3")
    with pytest.raises(UnknownNameError, match=r"Unknown divergence 'w3'.*Available: "):
        caatr.radii(ArrayRadiusContext(3, drift=[0.1, 0.2, 0.3]))
    with pytest.raises(UnknownNameError, match=r"Unknown divergence 'w3'"):
        caatr.check_divergence(DIVERGENCES.build("kl"))  # the loop's config-time check
