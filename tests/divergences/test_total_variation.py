"""Total variation against its set definition, integrals, Monte Carlo and classic bounds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from marl_tr.distributions import DiagGaussian
from marl_tr.divergences import KL, Hellinger, TotalVariation


def test_categorical_equals_the_largest_set_probability_gap(categoricals):
    p, q = categoricals(8, 4, seed=80), categoricals(8, 4, seed=81)
    value = TotalVariation()(p, q)
    subsets = [s for r in range(5) for s in itertools.combinations(range(4), r)]
    for i in range(8):
        largest = max(abs(p.probs[i, list(s)].sum() - q.probs[i, list(s)].sum()) for s in subsets)
        assert value[i].item() == pytest.approx(float(largest), abs=1e-12)


def test_gaussian_with_equal_stds_has_the_closed_form():
    mean = torch.tensor([[0.0], [1.0], [-2.0]], dtype=torch.float64)
    std = torch.tensor([[1.0], [0.2], [3.0]], dtype=torch.float64)
    shift = torch.tensor([[0.5], [0.1], [4.0]], dtype=torch.float64)
    value = TotalVariation()(DiagGaussian(mean, std), DiagGaussian(mean + shift, std))
    expected = 2 * stats.norm.cdf((shift / (2 * std)).numpy().ravel()) - 1
    np.testing.assert_allclose(value.numpy(), expected, atol=2e-4)


def test_one_dimensional_gaussian_matches_the_integral(gaussians):
    p, q = gaussians(10, 1, seed=82), gaussians(10, 1, seed=83)
    reference = []
    for i in range(10):
        m1, s1, m2, s2 = (t[i, 0].item() for t in (p.mean, p.std, q.mean, q.std))
        value, _ = integrate.quad(
            lambda x, m1=m1, s1=s1, m2=m2, s2=s2: 0.5 * abs(
                stats.norm.pdf(x, m1, s1) - stats.norm.pdf(x, m2, s2)
            ),
            min(m1 - 12 * s1, m2 - 12 * s2), max(m1 + 12 * s1, m2 + 12 * s2), limit=400,
        )
        reference.append(value)
    np.testing.assert_allclose(TotalVariation()(p, q).numpy(), reference, atol=3e-4)


def test_diagonal_gaussian_matches_monte_carlo(gaussians):
    p, q = gaussians(4, 3, seed=84), gaussians(4, 3, seed=85)
    generator = torch.Generator().manual_seed(0)
    x = p.mean + p.std * torch.randn((100_000, 4, 3), generator=generator, dtype=torch.float64)
    log_ratio = (  # log q(x) - log p(x)
        -0.5 * ((x - q.mean) / q.std) ** 2 - torch.log(q.std)
        + 0.5 * ((x - p.mean) / p.std) ** 2 + torch.log(p.std)
    ).sum(-1)
    reference = (1 - log_ratio.exp()).clamp_min(0).mean(0)  # E_p[(1 - q/p)_+]
    torch.testing.assert_close(TotalVariation()(p, q), reference, rtol=3e-2, atol=3e-3)


def test_hellinger_le_cam_and_pinsker_bounds(categoricals, gaussians):
    for p, q, slack in (
        (*(categoricals(5000, 5, seed=s) for s in (86, 87)), 1e-12),
        (*(gaussians(2000, 1, seed=s) for s in (88, 89)), 3e-4),
    ):
        tv, h2 = TotalVariation()(p, q), Hellinger()(p, q)
        assert (h2 <= tv + slack).all()
        assert (tv <= torch.sqrt(h2 * (2 - h2)) + slack).all()
        assert (tv <= torch.sqrt(KL()(p, q) / 2) + slack).all()


def test_bounded_by_one_and_symmetric_far_apart():
    generator = torch.Generator().manual_seed(1)
    mean = 30 * torch.randn(2, 300, 1, generator=generator, dtype=torch.float64)
    std = torch.exp(4 * torch.randn(2, 300, 1, generator=generator, dtype=torch.float64))
    p, q = DiagGaussian(mean[0], std[0]), DiagGaussian(mean[1], std[1])
    value = TotalVariation()(p, q)
    assert ((value >= 0) & (value <= 1)).all()
    torch.testing.assert_close(value, TotalVariation()(q, p))
    assert value.max().item() == pytest.approx(1.0, abs=1e-6)
    assert math.isfinite(value.sum().item())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_nodes": 0}, r"n_nodes must be an integer >= 2, got 0"),
        ({"n_samples": "many"}, r"n_samples must be an integer, got 'many'"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ],
)
def test_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TotalVariation(**kwargs)
