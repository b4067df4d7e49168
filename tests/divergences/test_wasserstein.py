"""W1, eq. 31's bound and W2 against independent references (scipy, quadrature, POT)."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from marl_tr.distributions import Categorical, DiagGaussian
from marl_tr.divergences import DIVERGENCES, Wasserstein1, Wasserstein1Bound, Wasserstein2


def _gaussian(mean, std, dtype=torch.float64) -> DiagGaussian:
    return DiagGaussian(torch.tensor(mean, dtype=dtype), torch.tensor(std, dtype=dtype))


def _quantile_integral_w1(m1: float, s1: float, m2: float, s2: float) -> float:
    """``int_0^1 |F1^-1(u) - F2^-1(u)| du``: the definition of W1 in one dimension."""
    value, _ = integrate.quad(
        lambda u: abs(stats.norm.ppf(u, m1, s1) - stats.norm.ppf(u, m2, s2)),
        0.0, 1.0, limit=400, epsabs=1e-11,
    )
    return value


# -- W1 between Gaussians ----------------------------------------------------------------
def test_gaussian_w1_matches_quantile_integral(gaussians):
    old, new = gaussians(12, 1, seed=11), gaussians(12, 1, seed=12)
    value = Wasserstein1()(old, new)
    reference = [
        _quantile_integral_w1(old.mean[i, 0].item(), old.std[i, 0].item(),
                              new.mean[i, 0].item(), new.std[i, 0].item())
        for i in range(12)
    ]
    np.testing.assert_allclose(value.numpy(), reference, rtol=1e-6, atol=1e-8)


def test_gaussian_w1_matches_scipy_on_large_samples(gaussians):
    old, new = gaussians(3, 1, seed=13), gaussians(3, 1, seed=14)
    value = Wasserstein1()(old, new)
    rng = np.random.default_rng(0)
    for i in range(3):
        x = rng.normal(old.mean[i, 0].item(), old.std[i, 0].item(), 200_000)
        y = rng.normal(new.mean[i, 0].item(), new.std[i, 0].item(), 200_000)
        assert value[i].item() == pytest.approx(stats.wasserstein_distance(x, y), abs=2e-2)


def test_equal_stds_give_the_mean_gap_and_equal_means_the_folded_std():
    old = _gaussian([[0.0], [1.0], [2.0]], [[0.5], [1e-3], [2.0]])
    shifted = _gaussian([[0.7], [-1.0], [2.0]], [[0.5], [1e-3], [3.0]])
    value = Wasserstein1()(old, shifted)
    expected = torch.tensor([0.7, 2.0, math.sqrt(2.0 / math.pi)], dtype=torch.float64)
    torch.testing.assert_close(value, expected)


def test_diagonal_w1_is_the_sum_over_dimensions(gaussians, split_dimensions):
    old, new = gaussians(8, 3, seed=15), gaussians(8, 3, seed=16)
    per_dimension = [
        Wasserstein1()(old_k, new_k)
        for old_k, new_k in zip(split_dimensions(old), split_dimensions(new))
    ]
    torch.testing.assert_close(Wasserstein1()(old, new), sum(per_dimension))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("mean_step", "std_step", "expected_grad"),
    [
        (0.3, 0.0, (1.0, 0.0)),  # equal stds: |dm|, derivative 0 in the std
        (-0.3, 0.0, (-1.0, 0.0)),
        (0.0, 0.2, (0.0, math.sqrt(2.0 / math.pi))),  # equal means
        (0.0, 0.0, (0.0, 0.0)),  # identity: the zero subgradient
        (0.3, 1e-30, (1.0, 0.0)),  # below float32's smallest normal
    ],
)
def test_w1_value_and_gradient_stay_finite_at_singular_points(
    dtype, mean_step, std_step, expected_grad
):
    old = _gaussian([[0.5]], [[1.0]], dtype)
    mean = torch.tensor([[0.5 + mean_step]], dtype=dtype, requires_grad=True)
    std = torch.tensor([[1.0 + std_step]], dtype=dtype, requires_grad=True)
    divergence = Wasserstein1()
    value = divergence(old, DiagGaussian(mean, std))
    value.sum().backward()
    assert torch.isfinite(value).all()
    expected = torch.tensor(expected_grad, dtype=dtype)
    torch.testing.assert_close(torch.stack([mean.grad[0, 0], std.grad[0, 0]]), expected)
    analytic = divergence.grad_new(old, DiagGaussian(mean.detach(), std.detach()))
    torch.testing.assert_close(torch.stack([analytic[0][0, 0], analytic[1][0, 0]]), expected)


@pytest.mark.parametrize("dim", [1, 3])
def test_pot_quantile_path_agrees_with_the_closed_form(gaussians, dim):
    old, new = gaussians(16, dim, seed=17), gaussians(16, dim, seed=18)
    exact = Wasserstein1()(old, new)
    through_pot = Wasserstein1(method="pot")(old, new)
    torch.testing.assert_close(through_pot, exact, rtol=3e-3, atol=1e-6)


def test_pot_euclidean_path_reduces_to_one_dimension_when_one_coordinate_moves():
    old = _gaussian([[0.0, 1.0]], [[1.0, 0.5]])
    new = _gaussian([[0.8, 1.0]], [[1.6, 0.5]])
    euclidean = Wasserstein1(method="pot", ground="l2", n_samples=200)(old, new)
    one_dimensional = Wasserstein1()(
        _gaussian([[0.0]], [[1.0]]), _gaussian([[0.8]], [[1.6]])
    )
    torch.testing.assert_close(euclidean, one_dimensional, rtol=3e-2, atol=0.0)


def test_pot_euclidean_path_lies_between_its_projections_and_the_l1_value(
    gaussians, split_dimensions
):
    old, new = gaussians(4, 2, seed=19), gaussians(4, 2, seed=20)
    euclidean = Wasserstein1(method="pot", ground="l2", n_samples=200)(old, new)
    manhattan = Wasserstein1()(old, new)
    largest_marginal = torch.stack(
        [Wasserstein1()(o, n) for o, n in zip(split_dimensions(old), split_dimensions(new))]
    ).amax(0)
    assert (euclidean <= manhattan * 1.03).all()
    assert (euclidean >= largest_marginal * 0.97).all()
    assert (euclidean < manhattan * 0.99).any()  # the Euclidean cost is genuinely smaller


def test_euclidean_ground_cost_needs_pot_beyond_one_dimension(gaussians):
    w1_l2 = DIVERGENCES.build("w1:ground=l2")
    old, new = gaussians(4, 2, seed=21), gaussians(4, 2, seed=22)
    with pytest.raises(ValueError, match=r"no closed form for 2 action dimensions.*method='pot'"):
        w1_l2(old, new)
    with pytest.raises(ValueError, match="no closed form"):
        w1_l2.grad_new(old, new)
    old_1d, new_1d = gaussians(4, 1, seed=21), gaussians(4, 1, seed=22)
    torch.testing.assert_close(w1_l2(old_1d, new_1d), Wasserstein1()(old_1d, new_1d))


def test_closed_form_flag_follows_the_method():
    assert Wasserstein1.closed_form
    assert Wasserstein1().closed_form
    assert not Wasserstein1(method="pot").closed_form
    assert Wasserstein1.closed_form  # the class flag is untouched


# -- ordinal categoricals ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["closed_form", "pot"])
def test_ordinal_w1_matches_weighted_scipy(categoricals, method):
    old, new = categoricals(10, 5, seed=23), categoricals(10, 5, seed=24)
    value = Wasserstein1(method=method, spacing=0.5)(old, new)
    support = 0.5 * np.arange(5)
    reference = [
        stats.wasserstein_distance(support, support, old.probs[i].numpy(), new.probs[i].numpy())
        for i in range(10)
    ]
    np.testing.assert_allclose(value.numpy(), reference, rtol=1e-9, atol=1e-12)


def test_ordinal_w2_matches_emd_with_squared_cost(categoricals):
    old, new = categoricals(6, 4, seed=25), categoricals(6, 4, seed=26)
    value = Wasserstein2(spacing=2.0)(old, new)
    support = 2.0 * np.arange(4.0)
    squared_cost = (support[:, None] - support[None, :]) ** 2
    reference = [
        math.sqrt(ot.emd2(old.probs[i].numpy(), new.probs[i].numpy(), squared_cost))
        for i in range(6)
    ]
    np.testing.assert_allclose(value.numpy(), reference, rtol=1e-8)


# -- eq. 31 and W2 --------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    st.floats(-10, 10), st.floats(1e-3, 10), st.floats(-10, 10), st.floats(1e-3, 10)
)
def test_eq31_bound_is_never_below_w1(m1, s1, m2, s2):
    old, new = _gaussian([[m1]], [[s1]]), _gaussian([[m2]], [[s2]])
    w1 = Wasserstein1()(old, new).item()
    assert Wasserstein1Bound()(old, new).item() >= w1 * (1 - 1e-12)
    # W1 <= W2 by Jensen (W2 squares its steps: below 1e-154 they underflow to 0).
    assert Wasserstein2()(old, new).item() >= w1 * (1 - 1e-12) - 1e-150


def test_eq31_bound_on_many_pairs_is_tight_only_for_equal_stds(gaussians):
    old, new = gaussians(5000, 3, seed=27), gaussians(5000, 3, seed=28)
    w1, bound = Wasserstein1()(old, new), Wasserstein1Bound()(old, new)
    assert (bound > w1).all()
    assert (Wasserstein2()(old, new) <= bound).all()
    same_std = DiagGaussian(new.mean, old.std)
    torch.testing.assert_close(Wasserstein1Bound()(old, same_std), Wasserstein1()(old, same_std))


def test_w2_matches_pot_bures_wasserstein(gaussians):
    old, new = gaussians(6, 3, seed=29), gaussians(6, 3, seed=30)
    value = Wasserstein2()(old, new)
    for i in range(6):
        reference = ot.gaussian.bures_wasserstein_distance(
            old.mean[i].numpy(), new.mean[i].numpy(),
            np.diag(old.std[i].numpy() ** 2), np.diag(new.std[i].numpy() ** 2),
        )
        assert value[i].item() == pytest.approx(float(reference), rel=1e-7)


@pytest.mark.parametrize("name", ["w2", "w1_bound"])
def test_gradient_at_identity_is_zero_not_nan(gaussians, name):
    dist = gaussians(4, 2, seed=31)
    mean = dist.mean.clone().requires_grad_(True)
    std = dist.std.clone().requires_grad_(True)
    DIVERGENCES.build(name)(dist, DiagGaussian(mean, std)).sum().backward()
    assert torch.equal(mean.grad, torch.zeros_like(mean))
    assert torch.equal(std.grad, torch.zeros_like(std))


# -- options ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "exact"}, r"method must be one of 'closed_form', 'pot'; got 'exact'"),
        ({"ground": "l3"}, r"ground must be one of 'l1', 'l2'; got 'l3'"),
        ({"spacing": 0.0}, r"spacing must be > 0 \(finite\), got 0.0"),
        ({"spacing": -1}, r"spacing must be > 0 \(finite\), got -1"),
        ({"n_samples": 1}, r"n_samples must be an integer >= 2, got 1"),
        ({"n_samples": 2.5}, r"n_samples must be an integer, got 2.5"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ],
)
def test_w1_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Wasserstein1(**kwargs)


def test_w2_rejects_bad_spacing_and_bound_rejects_categoricals(categoricals):
    with pytest.raises(ValueError, match=r"spacing must be > 0"):
        Wasserstein2(spacing=-0.5)
    dist = categoricals(2, 3, seed=0)
    with pytest.raises(ValueError, match=r"does not support discrete actions \(Categorical\)"):
        Wasserstein1Bound()(dist, dist)


def test_w1_alias_and_config_string():
    built = DIVERGENCES.build("wasserstein:method=pot,n_samples=64")
    assert built == Wasserstein1(method="pot", n_samples=64)
    assert isinstance(DIVERGENCES.build("w1"), Wasserstein1)


def test_categorical_input_is_not_read_as_gaussian():
    dist = Categorical(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="different kinds: Categorical and DiagGaussian"):
        Wasserstein2()(dist, _gaussian([[0.0], [0.0]], [[1.0], [1.0]]))
