"""Jensen-Shannon: exact cases, numerical integration against references, the Jeffreys bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from marl_tr.distributions import Categorical, DiagGaussian
from marl_tr.divergences import JensenShannon

LN2 = math.log(2.0)


def _binary_entropy(a: float) -> float:
    return -sum(x * math.log(x) for x in (a, 1.0 - a) if x > 0)


def _scipy_js(m1: float, s1: float, m2: float, s2: float) -> float:
    """The definition ``int (p log(2p/(p+q)) + q log(2q/(p+q))) / 2``, by adaptive quadrature."""
    p, q = stats.norm(m1, s1), stats.norm(m2, s2)

    def density(x: float) -> float:
        log_p, log_q = p.logpdf(x), q.logpdf(x)
        log_m = np.logaddexp(log_p, log_q) - LN2
        return 0.5 * (np.exp(log_p) * (log_p - log_m) + np.exp(log_q) * (log_q - log_m))

    low = min(m1 - 40 * s1, m2 - 40 * s2)
    high = max(m1 + 40 * s1, m2 + 40 * s2)
    breaks = sorted([m1 + k * s1 for k in (-3, 0, 3)] + [m2 + k * s2 for k in (-3, 0, 3)])
    value, _ = integrate.quad(density, low, high, points=breaks, limit=2000, epsabs=1e-13)
    return value


def _monte_carlo_js(p: DiagGaussian, q: DiagGaussian, n: int, seed: int) -> torch.Tensor:
    """``(E_p[log p - log m] + E_q[log q - log m]) / 2`` with independent samples."""
    generator = torch.Generator().manual_seed(seed)

    def log_density(dist: DiagGaussian, x: torch.Tensor) -> torch.Tensor:
        z = (x - dist.mean) / dist.std
        return (-0.5 * z**2 - torch.log(dist.std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    halves = []
    for own in (p, q):
        noise = torch.randn((n, *own.mean.shape), generator=generator, dtype=own.mean.dtype)
        x = own.mean + own.std * noise
        log_p, log_q = log_density(p, x), log_density(q, x)
        log_m = torch.logaddexp(log_p, log_q) - LN2
        halves.append((log_density(own, x) - log_m).mean(0))
    return 0.5 * (halves[0] + halves[1])


def test_exact_on_bernoulli_pairs():
    pairs = [(0.5, 0.5), (0.1, 0.7), (0.9, 0.2), (0.3, 0.31)]
    p = Categorical.from_probs(torch.tensor([[a, 1 - a] for a, _ in pairs], dtype=torch.float64))
    q = Categorical.from_probs(torch.tensor([[b, 1 - b] for _, b in pairs], dtype=torch.float64))
    expected = [
        _binary_entropy((a + b) / 2) - (_binary_entropy(a) + _binary_entropy(b)) / 2
        for a, b in pairs
    ]
    np.testing.assert_allclose(JensenShannon()(p, q).numpy(), expected, rtol=1e-10, atol=1e-15)


def test_disjoint_supports_give_ln2():
    no_mass = float("-inf")
    p = Categorical(torch.tensor([[0.0, no_mass, no_mass]], dtype=torch.float64))
    q = Categorical(torch.tensor([[no_mass, 0.0, 0.0]], dtype=torch.float64))
    assert JensenShannon()(p, q).item() == pytest.approx(LN2, rel=1e-15)


@pytest.mark.parametrize("dim", [1, 3])
def test_symmetric_and_within_zero_ln2_even_far_apart(dim):
    generator = torch.Generator().manual_seed(0)
    batch = 500
    mean = 30.0 * torch.randn(2, batch, dim, generator=generator, dtype=torch.float64)
    std = torch.exp(4.0 * torch.randn(2, batch, dim, generator=generator, dtype=torch.float64))
    p, q = DiagGaussian(mean[0], std[0]), DiagGaussian(mean[1], std[1])
    forward, backward = JensenShannon()(p, q), JensenShannon()(q, p)
    torch.testing.assert_close(forward, backward)
    assert (forward >= 0).all() and (forward <= LN2).all()


def test_categorical_symmetric_and_bounded(categoricals):
    p, q = categoricals(2000, 5, seed=40), categoricals(2000, 5, seed=41)
    value = JensenShannon()(p, q)
    torch.testing.assert_close(value, JensenShannon()(q, p))
    assert (value >= 0).all() and (value <= LN2).all()


def test_one_dimensional_quadrature_matches_adaptive_integration():
    rng = np.random.default_rng(1)
    batch = 16
    params = np.stack(
        [rng.normal(0, 1, batch), np.exp(rng.uniform(-2, 2, batch)),
         rng.normal(0, 1, batch), np.exp(rng.uniform(-2, 2, batch))], axis=1
    )  # standard deviations up to e^4 apart
    p = DiagGaussian(torch.tensor(params[:, :1]), torch.tensor(params[:, 1:2]))
    q = DiagGaussian(torch.tensor(params[:, 2:3]), torch.tensor(params[:, 3:4]))
    reference = [_scipy_js(*row) for row in params]
    np.testing.assert_allclose(JensenShannon()(p, q).numpy(), reference, atol=2e-4)


@pytest.mark.parametrize(("dim", "rtol"), [(1, 2e-2), (3, 3e-2)])
def test_gaussian_js_matches_monte_carlo(gaussians, dim, rtol):
    p, q = gaussians(4, dim, seed=42), gaussians(4, dim, seed=43)
    reference = _monte_carlo_js(p, q, n=100_000, seed=0)
    torch.testing.assert_close(JensenShannon()(p, q), reference, rtol=rtol, atol=2e-3)


def test_jeffreys_bound_holds_on_many_pairs(categoricals, gaussians):
    bound = JensenShannon(method="jeffreys_bound")
    p, q = categoricals(20_000, 4, seed=44), categoricals(20_000, 4, seed=45)
    assert (JensenShannon()(p, q) <= bound(p, q)).all()

    # Gaussians from near identity (where the bound is tight) to far apart.
    old = gaussians(5000, 1, seed=46)
    scale = torch.logspace(-3, 0.5, 5000, dtype=torch.float64).unsqueeze(-1)
    generator = torch.Generator().manual_seed(0)
    new = DiagGaussian(
        old.mean + scale * torch.randn(5000, 1, generator=generator, dtype=torch.float64),
        old.std * torch.exp(scale * torch.randn(5000, 1, generator=generator, dtype=torch.float64)),
    )
    js, upper = JensenShannon()(old, new), bound(old, new)
    assert (js <= upper * (1 + 1e-4)).all()  # 1e-4: the trapezoid rule's relative error
    assert (js < 0.5 * upper).any()  # the bound is loose far from identity


def test_near_identity_js_is_an_eighth_of_the_fisher_quadratic_form():
    mean = torch.tensor([[0.3]], dtype=torch.float64)
    std = torch.tensor([[0.7]], dtype=torch.float64)
    step_mean, step_std = 1e-3, -2e-3
    value = JensenShannon()(
        DiagGaussian(mean, std), DiagGaussian(mean + step_mean, std + step_std)
    )
    quadratic_form = (step_mean**2 + 2 * step_std**2) / std**2
    torch.testing.assert_close(value, quadratic_form.squeeze(-1) / 8, rtol=1e-2, atol=0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "exact"}, r"method must be one of 'quadrature', 'jeffreys_bound'; got 'exact'"),
        ({"n_nodes": 1}, r"n_nodes must be an integer >= 2, got 1"),
        ({"n_samples": 0}, r"n_samples must be an integer >= 2, got 0"),
        ({"seed": -3}, r"seed must be an integer >= 0, got -3"),
    ],
)
def test_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JensenShannon(**kwargs)
