"""Squared Hellinger distance against numerical integration; its Hessian constant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from marl_tr.distributions import Categorical
from marl_tr.divergences import Divergence, Hellinger


def _bhattacharyya_by_quadrature(m1: float, s1: float, m2: float, s2: float) -> float:
    value, _ = integrate.quad(
        lambda x: math.sqrt(stats.norm.pdf(x, m1, s1) * stats.norm.pdf(x, m2, s2)),
        -np.inf, np.inf, epsabs=1e-13,
    )
    return value


def test_gaussian_matches_integral_of_root_density_product(gaussians):
    p, q = gaussians(10, 1, seed=50), gaussians(10, 1, seed=51)
    reference = [
        1.0 - _bhattacharyya_by_quadrature(
            p.mean[i, 0].item(), p.std[i, 0].item(), q.mean[i, 0].item(), q.std[i, 0].item()
        )
        for i in range(10)
    ]
    np.testing.assert_allclose(Hellinger()(p, q).numpy(), reference, atol=1e-10)


def test_diagonal_gaussian_multiplies_coefficients(gaussians, split_dimensions):
    p, q = gaussians(10, 3, seed=52), gaussians(10, 3, seed=53)
    per_dimension = [
        Hellinger()(p_k, q_k) for p_k, q_k in zip(split_dimensions(p), split_dimensions(q))
    ]
    coefficient = torch.stack([1.0 - h for h in per_dimension]).prod(0)
    torch.testing.assert_close(Hellinger()(p, q), 1.0 - coefficient)


def test_categorical_matches_one_minus_bhattacharyya(categoricals):
    p, q = categoricals(50, 6, seed=54), categoricals(50, 6, seed=55)
    reference = 1.0 - (p.probs * q.probs).sqrt().sum(-1)
    value = Hellinger()(p, q)
    torch.testing.assert_close(value, reference)
    torch.testing.assert_close(value, Hellinger()(q, p))
    assert (value >= 0).all() and (value <= 1).all()


def test_disjoint_categoricals_are_at_distance_one():
    p = Categorical(torch.tensor([[0.0, float("-inf")]], dtype=torch.float64))
    q = Categorical(torch.tensor([[float("-inf"), 0.0]], dtype=torch.float64))
    assert Hellinger()(p, q).item() == pytest.approx(1.0, abs=1e-15)


def test_autograd_hessian_is_a_quarter_of_the_fisher_information(gaussians, categoricals):
    """The constant 1/4 of ``Hellinger.hvp``, checked on the autograd Hessian."""
    gaussian = gaussians(4, 2, seed=56)
    tangent = (torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64))
    mean_part, std_part = Divergence.hvp(Hellinger(), gaussian, tangent)
    torch.testing.assert_close(mean_part, tangent[0] / gaussian.std**2 / 4)
    torch.testing.assert_close(std_part, 2 * tangent[1] / gaussian.std**2 / 4)

    categorical = categoricals(4, 5, seed=57)
    logits_tangent = torch.randn(4, 5, dtype=torch.float64)
    probs = categorical.probs
    fisher = torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)
    (product,) = Divergence.hvp(Hellinger(), categorical, (logits_tangent,))
    torch.testing.assert_close(product, (fisher @ logits_tangent.unsqueeze(-1)).squeeze(-1) / 4)


def test_takes_no_options():
    with pytest.raises(TypeError):
        Hellinger(scale=2)  # type: ignore[call-arg]
