"""Every registered divergence honours the interface, for each kind of input it supports."""

from __future__ import annotations

import pytest
import torch

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian
from marl_tr.divergences import DIVERGENCES, Divergence
from marl_tr_envs import MPE_MOVES

NAMES = DIVERGENCES.names()
BATCH = 7
# options that change what a registered divergence computes (categoricals here have 5 actions)
OPTIONS = [
    "w1:cost=((0,1,2,1,1),(1,0,1,2,2),(2,1,0,1,1),(1,2,1,0,2),(1,2,1,2,0))",  # a metric
    "w1:cost=((0,9,1,1,1),(1,0,1,1,1),(1,1,0,2,1),(1,1,1,0,1),(1,1,1,1,0))",  # no metric
    "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1))",  # (ground=l2 refuses 3-D Gaussians)
    "w1:embedding=env",
]
CASES = NAMES + OPTIONS


def _build(case: str) -> Divergence:
    """The divergence a name or config string gives, with the MPE moves bound to
    ``embedding=env`` (as the training setup binds an env's declared geometry)."""
    divergence = DIVERGENCES.build(case)
    if getattr(divergence, "uses_env_action_geometry", False):
        divergence.bind_action_geometry([MPE_MOVES, MPE_MOVES])
    return divergence


def _supported_pairs(divergence: Divergence, gaussians, categoricals, dtype=torch.float64):
    """(label, old, new) for each input kind the flags declare."""
    pairs = []
    if divergence.supports_continuous:
        for dim in (1, 3):
            old = gaussians(BATCH, dim, seed=70, dtype=dtype)
            pairs.append((f"gaussian d={dim}", old, gaussians(BATCH, dim, seed=71, dtype=dtype)))
    if divergence.supports_discrete:
        old = categoricals(BATCH, 5, seed=72, dtype=dtype)
        pairs.append(("categorical K=5", old, categoricals(BATCH, 5, seed=73, dtype=dtype)))
    return pairs


def _with_grad(dist: ActionDistribution) -> tuple[ActionDistribution, tuple[torch.Tensor, ...]]:
    leaves = tuple(p.detach().clone().requires_grad_(True) for p in dist.params())
    return type(dist).from_params(leaves), leaves


def test_the_builtins_are_registered():
    assert NAMES == ["hellinger", "js", "kl", "tv", "w1", "w1_bound", "w2"]
    assert DIVERGENCES.aliases() == {
        "jensen_shannon": "js", "total_variation": "tv", "wasserstein": "w1"
    }


@pytest.mark.parametrize("case", CASES)
def test_builds_from_defaults_and_round_trips_its_spec(case):
    divergence = _build(case)
    assert isinstance(divergence, Divergence)
    assert type(divergence).registry_name == case.split(":")[0]
    assert DIVERGENCES.build(divergence.spec()) == divergence
    assert divergence.supports_continuous or divergence.supports_discrete
    if divergence.is_metric:
        assert divergence.symmetric


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_are_finite_non_negative_and_shaped_per_state(name, dtype, gaussians, categoricals):
    divergence = _build(name)
    for label, old, new in _supported_pairs(divergence, gaussians, categoricals, dtype):
        value = divergence(old, new)
        assert value.shape == (BATCH,), label
        assert value.dtype == dtype, label
        assert torch.isfinite(value).all(), label
        assert (value >= 0).all(), label
        assert (value > 0).all(), f"{label}: different distributions must be apart"
        if divergence.symmetric:
            torch.testing.assert_close(divergence(new, old), value, msg=label)


@pytest.mark.parametrize("name", CASES)
def test_zero_at_identity_with_finite_gradients(name, gaussians, categoricals):
    divergence = _build(name)
    for label, old, _ in _supported_pairs(divergence, gaussians, categoricals):
        same, leaves = _with_grad(old)
        value = divergence(old, same)
        assert torch.equal(value, torch.zeros(BATCH, dtype=value.dtype)), label
        gradients = torch.autograd.grad(value.sum(), leaves)
        analytic = divergence.grad_new(old, old)
        for autograd_part, analytic_part, leaf in zip(gradients, analytic, leaves):
            assert autograd_part.shape == leaf.shape and analytic_part.shape == leaf.shape
            assert torch.isfinite(autograd_part).all(), label
            assert torch.isfinite(analytic_part).all(), label
            if divergence.smooth_at_identity:  # a minimum with a zero gradient
                torch.testing.assert_close(analytic_part, torch.zeros_like(leaf), msg=label)


@pytest.mark.parametrize("name", CASES)
def test_grad_new_is_shaped_like_the_parameters(name, gaussians, categoricals):
    divergence = _build(name)
    for label, old, new in _supported_pairs(divergence, gaussians, categoricals):
        gradient = divergence.grad_new(old, new)
        assert [g.shape for g in gradient] == [p.shape for p in new.params()], label
        assert all(torch.isfinite(g).all() for g in gradient), label


@pytest.mark.parametrize("name", CASES)
def test_hvp_exists_exactly_where_smooth(name, gaussians, categoricals):
    divergence = _build(name)
    for label, old, _ in _supported_pairs(divergence, gaussians, categoricals):
        tangent = tuple(torch.ones_like(p) for p in old.params())
        if divergence.smooth_at_identity:
            product = divergence.hvp(old, tangent)
            assert [t.shape for t in product] == [p.shape for p in old.params()], label
            assert all(torch.isfinite(t).all() for t in product), label
        else:
            with pytest.raises(NotImplementedError, match="not smooth at identity"):
                divergence.hvp(old, tangent)


@pytest.mark.parametrize("name", CASES)
def test_refuses_unsupported_kinds_and_mismatched_inputs(name, gaussians, categoricals):
    divergence = _build(name)
    gaussian = gaussians(BATCH, 2, seed=74)
    categorical = categoricals(BATCH, 4, seed=75)
    if not divergence.supports_discrete:
        with pytest.raises(ValueError, match=r"does not support discrete actions \(Categorical\)"):
            divergence(categorical, categorical)
    supported = gaussian if divergence.supports_continuous else categorical
    other = categorical if supported is gaussian else gaussian
    with pytest.raises(ValueError, match="of different kinds"):
        divergence(supported, other)
    if isinstance(supported, DiagGaussian):
        mismatched = gaussians(BATCH, 3, seed=76)
    else:
        mismatched = Categorical(torch.zeros(BATCH, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="Mismatched distributions"):
        divergence(supported, mismatched)
    with pytest.raises(ValueError, match="Mismatched distributions"):
        divergence.grad_new(supported, mismatched)


@pytest.mark.parametrize("name", CASES)
def test_refuses_a_distribution_type_it_has_no_formula_for(name):
    class SquashedGaussian(DiagGaussian):
        """A continuous distribution the closed forms were not written for."""

    divergence = _build(name)
    dist = SquashedGaussian(torch.zeros(2, 1), torch.ones(2, 1))
    if divergence.supported_distributions and not isinstance(
        dist, divergence.supported_distributions
    ):
        with pytest.raises(ValueError, match="has no formula for SquashedGaussian"):
            divergence(dist, dist)
    else:  # SquashedGaussian subclasses DiagGaussian: accepted by the Gaussian formulas
        assert torch.isfinite(divergence(dist, dist)).all()
