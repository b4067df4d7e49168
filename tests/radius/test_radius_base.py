"""The fixed scheduler and the shared checks of marl_tr.radius.base."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from marl_tr.radius import (
    CAATR,
    RADIUS_SCHEDULERS,
    ArrayRadiusContext,
    FixedRadius,
    PreviousSteps,
    RadiusInputWarning,
    RadiusScheduler,
)
from marl_tr.radius.base import agent_array, check_radii


@pytest.mark.parametrize("n", [1, 2, 9])
def test_fixed_returns_delta_for_every_agent(n):
    delta = FixedRadius(0.03).radii(ArrayRadiusContext(n, drift=[1.0] * n))
    assert delta.dtype == np.float64 and delta.shape == (n,)
    assert delta.tolist() == [0.03] * n
    assert FixedRadius().radii(ArrayRadiusContext(n)).tolist() == [0.1] * n  # Table 2


@pytest.mark.parametrize(
    ("delta", "message"),
    [(0, r"delta must be > 0 \(finite\), got 0"), (-0.1, r"got -0.1"),
     (float("nan"), r"delta must be finite, got nan"), ("0.1", r"must be a real number")],
)
def test_fixed_rejects_bad_delta(delta, message):
    with pytest.raises(ValueError, match=message):
        FixedRadius(delta)


def test_fixed_config_string():
    assert RADIUS_SCHEDULERS.build("fixed:delta=0.05") == FixedRadius(0.05)
    assert RADIUS_SCHEDULERS.build("fixed:delta=0.05").spec() == "fixed:delta=0.05"


def test_agent_array_policies():
    values = [1.0, -2.0, float("nan")]
    with pytest.raises(ValueError, match=r"x has non-finite values \(agent 2: nan\); expected"):
        agent_array(values, 3, "x", nonfinite="error")
    with pytest.raises(ValueError, match=r"x has negative values \(agent 1: -2.0\)"):
        agent_array(values, 3, "x", negative="error", nonfinite="zero")
    with pytest.warns(RadiusInputWarning) as record:
        out = agent_array(values, 3, "x")
    assert len(record) == 2
    assert out.tolist() == [1.0, 0.0, 0.0]
    assert agent_array(values, 3, "x", negative="zero", nonfinite="zero").tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match=r"x must have shape \(2,\) \(one value per agent\)"):
        agent_array([1.0, 2.0, 3.0], 2, "x")
    with pytest.raises(ValueError, match=r"x must be 2 real numbers, got \['a', 'b'\]"):
        agent_array(["a", "b"], 2, "x")


def test_check_radii_contract():
    assert check_radii([0.1, 0.2], 2).dtype == np.float64
    with pytest.raises(ValueError, match=r"S returned radii of shape \(3,\), expected \(2,\)"):
        check_radii([0.1, 0.2, 0.3], 2, owner="S")
    with pytest.raises(ValueError, match=r"not finite and > 0 \(agent 0: 0.0, agent 2: inf\)"):
        check_radii([0.0, 0.1, float("inf")], 3)


def test_checked_radii_guards_user_schedulers():
    class Broken(RadiusScheduler):
        def radii(self, ctx):
            return np.full(ctx.n_agents, -1.0)

    with pytest.raises(ValueError, match=r"Broken\(\) returned radii that are not finite and > 0"):
        Broken().checked_radii(ArrayRadiusContext(2))
    ctx = ArrayRadiusContext(3, drift=[0.1, 0.2, 0.3])
    np.testing.assert_array_equal(CAATR().checked_radii(ctx), CAATR().radii(ctx))


def test_array_context_checks_sizes():
    with pytest.raises(ValueError, match="drift has 2 entries but n_agents is 3"):
        ArrayRadiusContext(3, drift=[0.1, 0.2])
    with pytest.raises(ValueError, match="natural_gradient_norms has 4 entries but n_agents is 3"):
        ArrayRadiusContext(3, natural_gradient_norms=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="price_responses has 1 entries but n_agents is 2"):
        ArrayRadiusContext(2, price_responses=[abs])
    previous = PreviousSteps(np.ones(3), np.ones(2), np.ones(3))
    with pytest.raises(ValueError, match=r"previous\.divergence has 2 entries but n_agents is 3"):
        ArrayRadiusContext(3, previous=previous)
    with pytest.raises(ValueError, match="n_agents must be an integer >= 1, got 0"):
        ArrayRadiusContext(0)


def test_every_scheduler_checks_n_agents():
    class Odd(ArrayRadiusContext):
        pass

    ctx = Odd(2)
    ctx.n_agents = 2.0  # type: ignore[assignment]
    for name in RADIUS_SCHEDULERS.names():
        with pytest.raises(ValueError, match=r"n_agents must be an integer >= 1, got 2.0"):
            RADIUS_SCHEDULERS.build(name).radii(ctx)


def test_resolved_divergence_is_cached_but_not_pickled():
    caatr = CAATR()
    first = caatr.resolved_divergence()
    assert caatr.resolved_divergence() is first
    assert first.registry_name == "w1"
    assert "_resolved_divergence" not in pickle.loads(pickle.dumps(caatr)).__dict__
    caatr.divergence = "w2"  # a changed option is re-resolved
    assert caatr.resolved_divergence().registry_name == "w2"


@pytest.mark.parametrize(("divergence", "radius", "message"), [
    ("js", "fixed:delta=0.9", r"delta=0\.9 is at or above the largest value 'js' can take "
                              r"\(0\.693147\): the trust region would never bind"),
    ("tv", "caatr:initial_delta=1.5", r"initial_delta=1\.5 is at or above the largest value "
                                      r"'tv' can take \(1\)"),
    ("hellinger", "caatr:max_delta=1.0", r"max_delta=1\.0 is at or above the largest value "
                                         r"'hellinger' can take \(1\)"),
])
def test_a_radius_a_bounded_divergence_cannot_reach_is_refused(divergence, radius, message):
    """JS <= ln 2, TV <= 1, squared Hellinger <= 1: at or above, no step length reaches the
    radius (before, a run went on without ever moving)."""
    import marl_tr

    with pytest.raises(ValueError, match=message):
        marl_tr.train(divergence=divergence, solver="exact_radius", radius=radius,
                      iterations=1)
    marl_tr.train(divergence="js", solver="exact_radius", radius="fixed:delta=0.6",
                  iterations=1)


def test_a_scheduler_that_names_a_quantity_no_context_gives_is_refused():
    from marl_tr.radius import RadiusScheduler

    with pytest.raises(TypeError, match=r"radius scheduler Misspelt: uses names \['driftt'\], "
                                        r"which no RadiusContext gives; it gives drift, "):
        class Misspelt(RadiusScheduler):
            uses = frozenset({"driftt"})

            def radii(self, ctx):
                return np.ones(1)
