"""KL: closed forms against torch.distributions, Monte Carlo and mpmath (every std ratio);
options; zero-mass actions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Independent, Normal, kl_divergence

from marl_tr.distributions import Categorical, DiagGaussian
from marl_tr.divergences import KL


def _torch_normal(dist: DiagGaussian) -> Independent:
    return Independent(Normal(dist.mean, dist.std), 1)


@pytest.mark.parametrize("dim", [1, 4])
def test_gaussian_kl_matches_torch_in_both_directions(gaussians, dim):
    old, new = gaussians(64, dim, seed=1), gaussians(64, dim, seed=2)
    forward = KL()(old, new)
    reverse = KL(direction="reverse")(old, new)
    torch.testing.assert_close(forward, kl_divergence(_torch_normal(old), _torch_normal(new)))
    torch.testing.assert_close(reverse, kl_divergence(_torch_normal(new), _torch_normal(old)))
    assert not torch.allclose(forward, reverse)


def test_categorical_kl_matches_torch_in_both_directions(categoricals):
    old, new = categoricals(64, 6, seed=3), categoricals(64, 6, seed=4)
    reference_forward = kl_divergence(
        TorchCategorical(logits=old.logits), TorchCategorical(logits=new.logits)
    )
    reference_reverse = kl_divergence(
        TorchCategorical(logits=new.logits), TorchCategorical(logits=old.logits)
    )
    torch.testing.assert_close(KL()(old, new), reference_forward)
    torch.testing.assert_close(KL(direction="reverse")(old, new), reference_reverse)


def test_gaussian_kl_matches_monte_carlo(gaussians):
    old, new = gaussians(3, 2, seed=5), gaussians(3, 2, seed=6)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn((100_000, 3, 2), generator=generator, dtype=torch.float64)
    samples = old.mean + old.std * noise  # [N, B, d]
    log_ratio = (
        _torch_normal(old).log_prob(samples) - _torch_normal(new).log_prob(samples)
    )
    torch.testing.assert_close(KL()(old, new), log_ratio.mean(0), rtol=2e-2, atol=1e-3)


def test_categorical_kl_handles_actions_without_mass():
    no_mass = float("-inf")
    p = Categorical(torch.tensor([[0.0, no_mass, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64))
    q = Categorical(torch.tensor([[0.3, 0.1, 0.0], [0.0, no_mass, 0.0]], dtype=torch.float64))
    # Row 0: p puts no mass on action 1 (0 log 0 = 0). Row 1: q lacks an action p takes.
    forward = KL()(p, q)
    reference = kl_divergence(TorchCategorical(logits=p.logits), TorchCategorical(logits=q.logits))
    torch.testing.assert_close(forward, reference)
    assert torch.isfinite(forward[0]) and forward[1] == float("inf")


def test_gaussian_kl_is_accurate_near_identity():
    mean = torch.zeros(1, 1, dtype=torch.float64)
    std = torch.ones(1, 1, dtype=torch.float64)
    step = 1e-6
    value = KL()(DiagGaussian(mean, std), DiagGaussian(mean, std + step))
    # KL ~ (1/2) * 2 * step^2 (Fisher of the std is 2 / s^2)
    torch.testing.assert_close(value, torch.tensor([step**2], dtype=torch.float64), rtol=1e-5,
                               atol=0.0)


def test_direction_must_be_known():
    message = r"direction must be one of 'forward', 'reverse'; got 'back'"
    with pytest.raises(ValueError, match=message):
        KL(direction="back")


def test_kl_hvp_is_the_known_fisher_matrix(gaussians, categoricals):
    gaussian = gaussians(5, 3, seed=7)
    tangent = (torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64))
    mean_part, std_part = KL().hvp(gaussian, tangent)
    torch.testing.assert_close(mean_part, tangent[0] / gaussian.std**2)
    torch.testing.assert_close(std_part, 2.0 * tangent[1] / gaussian.std**2)

    categorical = categoricals(5, 4, seed=8)
    logits_tangent = torch.randn(5, 4, dtype=torch.float64)
    probs = categorical.probs
    fisher = torch.diag_embed(probs) - probs.unsqueeze(-1) * probs.unsqueeze(-2)
    (product,) = KL(direction="reverse").hvp(categorical, (logits_tangent,))
    torch.testing.assert_close(product, (fisher @ logits_tangent.unsqueeze(-1)).squeeze(-1))


# ---------------------------------------------------------------------------------------
# accuracy of the Gaussian closed form against mpmath (50 digits), every std ratio
# ---------------------------------------------------------------------------------------
def _mpmath_gaussian_kl(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    """``log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2`` in 50-digit arithmetic,
    from the exact values of the (rounded) inputs."""
    import mpmath

    with mpmath.workdps(50):
        mp, sp, mq, sq = (mpmath.mpf(v) for v in (mean_p, std_p, mean_q, std_q))
        value = mpmath.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - mpmath.mpf(1) / 2
        return float(value)


# ratios 1e-12 .. 1e12 (log-spaced) and 1 +- 1e-12 .. 1e-1 (where the old form cancelled)
RATIOS = np.concatenate([np.logspace(-12, 12, 97), 1 + np.logspace(-12, -1, 45),
                         1 - np.logspace(-12, -1, 45)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("std_q", [1e-3, 1.0, 3e5])
def test_gaussian_kl_is_accurate_for_every_std_ratio(dtype, std_q):
    """Relative error at most 16 rounding units of the dtype (measured: 9) for std ratios
    1e-12 .. 1e12, in both directions of the ratio and with a mean offset."""
    q_std = torch.full((len(RATIOS), 1), std_q, dtype=dtype)
    p_std = (torch.tensor(RATIOS).unsqueeze(1) * std_q).to(dtype)
    for offset in (0.0, 0.3):  # the mean term in units of s_q
        p_mean = torch.zeros_like(p_std)
        q_mean = torch.full_like(q_std, offset * std_q)
        for sp, sq, mp, mq in ((p_std, q_std, p_mean, q_mean), (q_std, p_std, q_mean, p_mean)):
            value = KL()(DiagGaussian(mp, sp), DiagGaussian(mq, sq)).double().numpy()
            reference = np.array([
                _mpmath_gaussian_kl(*(float(t[k, 0]) for t in (mp, sp, mq, sq)))
                for k in range(len(RATIOS))
            ])
            assert np.isfinite(value).all()
            exact_zero = reference == 0.0  # the ratio rounded to 1 in this dtype
            assert (value[exact_zero] == 0.0).all()
            error = np.abs(value - reference)[~exact_zero] / reference[~exact_zero]
            assert error.max() <= 16 * torch.finfo(dtype).eps, (error.max(), offset)


def test_gaussian_kl_of_a_tiny_std_is_finite_and_right():
    """KL(N(0, 1e-9^2) || N(0, 1)) = log(1e9) + (1e-18 - 1) / 2 = 20.2233 (it was inf)."""
    zero = torch.zeros(1, 1, dtype=torch.float64)
    value = KL()(DiagGaussian(zero, torch.full_like(zero, 1e-9)),
                 DiagGaussian(zero, torch.ones_like(zero)))
    assert float(value) == pytest.approx(9 * math.log(10) - 0.5, rel=1e-15)
    # float32: a std ratio of 1e-4 (inf before) and one below float32's range (1e-50)
    zero32 = zero.float()
    value = KL()(DiagGaussian(zero32, torch.full_like(zero32, 1e-4)),
                 DiagGaussian(zero32, torch.ones_like(zero32)))
    assert float(value) == pytest.approx(4 * math.log(10) - 0.5, rel=1e-6)
    value = KL()(DiagGaussian(zero32, torch.full_like(zero32, 1e-30)),
                 DiagGaussian(zero32, torch.full_like(zero32, 1e20)))
    assert float(value) == pytest.approx(50 * math.log(10) - 0.5, rel=1e-6)


@pytest.mark.parametrize("ratio", [1e-12, 0.95, 1.0 + 1e-9, 1e12])
def test_gaussian_kl_autograd_gradient_is_finite_and_matches_the_closed_form(ratio):
    """Both branches (series near ratio 1, direct form elsewhere) are evaluated: the unused
    one must not put NaN into autograd's gradient; the gradient equals ``grad_new``."""
    old = DiagGaussian(torch.tensor([[0.2]], dtype=torch.float64),
                       torch.tensor([[1.0]], dtype=torch.float64))
    mean = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    std = torch.tensor([[ratio]], dtype=torch.float64, requires_grad=True)
    KL()(old, DiagGaussian(mean, std)).sum().backward()
    grad_mean, grad_std = KL().grad_new(old, DiagGaussian(mean.detach(), std.detach()))
    torch.testing.assert_close(mean.grad, grad_mean, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(std.grad, grad_std, rtol=1e-9, atol=0.0)
