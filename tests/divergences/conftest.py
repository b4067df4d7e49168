"""Random batches of distribution pairs for the divergence tests (float64 by default)."""

from __future__ import annotations

import pytest
import torch

from marl_tr.distributions import Categorical, DiagGaussian


def random_gaussians(
    batch: int, dim: int, seed: int, dtype: torch.dtype = torch.float64
) -> DiagGaussian:
    """Means in about [-2, 2], stds in [0.3, 2.3]."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, dim, generator=generator, dtype=dtype)
    std = 0.3 + 2.0 * torch.rand(batch, dim, generator=generator, dtype=dtype)
    return DiagGaussian(mean, std)


def random_categoricals(
    batch: int, num_actions: int, seed: int, dtype: torch.dtype = torch.float64
) -> Categorical:
    generator = torch.Generator().manual_seed(seed)
    return Categorical(1.5 * torch.randn(batch, num_actions, generator=generator, dtype=dtype))


def marginals(dist: DiagGaussian) -> list[DiagGaussian]:
    """The 1-D marginals of a diagonal Gaussian, one ``[B, 1]`` distribution per dimension."""
    return [
        DiagGaussian(dist.mean[:, k : k + 1], dist.std[:, k : k + 1])
        for k in range(dist.mean.shape[-1])
    ]


@pytest.fixture
def split_dimensions():
    """``split_dimensions(dist)``: the 1-D marginals of a diagonal Gaussian."""
    return marginals


@pytest.fixture
def gaussians():
    """Factory ``gaussians(batch, dim, seed)``."""
    return random_gaussians


@pytest.fixture
def categoricals():
    """Factory ``categoricals(batch, num_actions, seed)``."""
    return random_categoricals
