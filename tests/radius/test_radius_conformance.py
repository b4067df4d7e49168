"""Every registered radius scheduler honours the same contract (parametrised over the registry)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from radius_testkit import log_model

from marl_tr.radius import (
    RADIUS_SCHEDULERS,
    ArrayRadiusContext,
    BudgetScheduler,
    PreviousSteps,
    RadiusScheduler,
)
from marl_tr.registry import UnknownNameError

NAMES = RADIUS_SCHEDULERS.names()
CONTEXT_QUANTITIES = {"drift", "natural_gradient_norms", "price_responses", "previous"}


def full_context(n: int, seed: int = 0) -> ArrayRadiusContext:
    """A context with every quantity filled with random values."""
    rng = np.random.default_rng(seed)
    models = [log_model(k, b) for k, b in zip(rng.lognormal(0, 1, n), rng.lognormal(-2, 1, n))]
    previous = PreviousSteps(
        radius=np.full(n, 0.1),
        divergence=rng.uniform(0.0, 0.1, n),
        improvement=rng.normal(0.01, 0.02, n),
    )
    return ArrayRadiusContext(
        n,
        iteration=10,
        drift=rng.exponential(0.05, n),
        natural_gradient_norms=rng.lognormal(0, 1, n),
        price_responses=[m[2] for m in models],
        previous=previous,
    )


def test_the_built_ins_are_registered():
    assert {"fixed", "caatr", "kkt", "greedy"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 3, 7])
def test_defaults_give_finite_positive_float64(name, n):
    scheduler = RADIUS_SCHEDULERS.build(name)
    for seed in range(3):
        delta = scheduler.radii(full_context(n, seed))
        assert isinstance(delta, np.ndarray)
        assert delta.dtype == np.float64 and delta.shape == (n,)
        assert np.isfinite(delta).all() and (delta > 0).all()
        if isinstance(scheduler, BudgetScheduler):
            assert delta.sum() == pytest.approx(scheduler.budget(n), rel=1e-9)
            assert (delta >= scheduler.floor(n) * (1 - 1e-12)).all()
    if scheduler.uses <= {"drift", "previous"}:  # these do not exist at iteration 0
        first = scheduler.radii(ArrayRadiusContext(n, iteration=0))
        assert first.shape == (n,) and np.isfinite(first).all() and (first > 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_pickle_round_trip(name):
    scheduler = RADIUS_SCHEDULERS.build(name)
    ctx = full_context(5, seed=1)
    expected = scheduler.radii(ctx)  # also fills the divergence cache
    clone = pickle.loads(pickle.dumps(scheduler))
    assert clone == scheduler and clone is not scheduler
    np.testing.assert_array_equal(clone.radii(ctx), expected)


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip_and_repr(name):
    scheduler = RADIUS_SCHEDULERS.build(name)
    spec = scheduler.spec()
    assert spec.startswith(name)
    assert RADIUS_SCHEDULERS.build(spec) == scheduler
    assert RADIUS_SCHEDULERS.build({"name": name, **scheduler.config()}) == scheduler
    text = repr(scheduler)
    assert text.startswith(f"{type(scheduler).__name__}(") and text.endswith(")")
    for key, value in scheduler.config().items():
        assert f"{key}={value!r}" in text
    assert "object at 0x" not in text


@pytest.mark.parametrize("name", NAMES)
def test_interface(name):
    scheduler = RADIUS_SCHEDULERS.build(name)
    assert isinstance(scheduler, RadiusScheduler)
    assert scheduler.uses <= CONTEXT_QUANTITIES
    assert scheduler.state_dict() == {}
    scheduler.load_state_dict(scheduler.state_dict())
    scheduler.reset(4)
    assert hash(scheduler) == hash(RADIUS_SCHEDULERS.build(name))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_keyword_is_refused_with_the_accepted_list(name):
    with pytest.raises(ValueError, match=rf"Unknown keyword\(s\) 'bogus' for radius scheduler "
                                         rf"'{name}'. Accepted: "):
        RADIUS_SCHEDULERS.build(f"{name}:bogus=1")


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UnknownNameError, match=r"Unknown radius scheduler 'caatrr'. Did you mean "
                                              r"'caatr'\? Available: caatr, fixed, greedy, kkt"):
        RADIUS_SCHEDULERS.build("caatrr")


def test_a_user_scheduler_plugs_in():
    @RADIUS_SCHEDULERS.register("test_halving")
    class Halving(RadiusScheduler):
        def __init__(self, delta: float = 0.2) -> None:
            self.delta = delta

        def radii(self, ctx):
            return np.full(ctx.n_agents, self.delta / 2 ** ctx.iteration)

    try:
        built = RADIUS_SCHEDULERS.build("test_halving:delta=0.4")
        assert built.checked_radii(ArrayRadiusContext(2, iteration=2)).tolist() == [0.1, 0.1]
        assert built.spec() == "test_halving:delta=0.4"
    finally:  # keep the registry as the other tests expect it
        del RADIUS_SCHEDULERS._classes["test_halving"]
