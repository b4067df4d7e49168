"""KL: closed forms against torch.distributions and Monte Carlo; options; zero-mass actions."""

from __future__ import annotations

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
