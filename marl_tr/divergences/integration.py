"""Fixed integration nodes for expectations under a standard normal.

Divergences without a closed form for Gaussians (Jensen-Shannon, W1 through POT) evaluate
``E_{z ~ N(0, I)}[f(mean + std * z)]`` on a fixed node set. Writing the sample points as
``mean + std * z`` (reparameterisation) keeps the result differentiable in the new policy's
parameters, and fixed nodes keep it deterministic: the same inputs give the same value, and
``D(p, p)`` is exactly 0.

Nodes are cached per (size, dtype, device): treat the returned tensors as read-only.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "gauss_hermite_nodes",
    "normal_expectation_nodes",
    "normal_quantile_nodes",
    "standard_normal_cloud",
]


@functools.lru_cache(maxsize=64)
def gauss_hermite_nodes(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Probabilists' Gauss-Hermite rule: ``E[f(z)] ~= sum_i w_i f(z_i)`` for ``z ~ N(0, 1)``.

    Exact for polynomials of degree ``<= 2n - 1``.

    Returns:
        Nodes ``[n]`` and weights ``[n]`` (summing to 1).
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    weights = weights / math.sqrt(2.0 * math.pi)
    return (
        torch.as_tensor(nodes, dtype=dtype, device=device),
        torch.as_tensor(weights, dtype=dtype, device=device),
    )


@functools.lru_cache(maxsize=64)
def normal_quantile_nodes(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Standard normal quantiles at the midpoints ``Phi^-1((i + 1/2) / n)``, ``[n]`` (sorted).

    ``mean + std * nodes`` is an ``n``-point quantile representation of ``N(mean, std^2)``:
    the 1-D optimal coupling of two such representations is the index-wise one.
    """
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.special.ndtri(levels).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def standard_normal_cloud(
    n: int, d: int, seed: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``n`` seeded standard-normal points in ``d`` dimensions, ``[n, d]``.

    The set is antithetic (``z`` and ``-z``, plus the origin when ``n`` is odd) and scaled so
    that each coordinate has sample second moment exactly 1. Its sample mean is then 0 and
    its sample covariance diagonal is 1, which removes the first-order sampling error of the
    estimates near ``new == old``.
    """
    generator = torch.Generator().manual_seed(seed)
    half = torch.randn(n // 2, d, generator=generator, dtype=torch.float64)
    parts = [half, -half] + ([torch.zeros(1, d, dtype=torch.float64)] if n % 2 else [])
    cloud = torch.cat(parts)
    cloud = cloud / cloud.square().mean(0).sqrt()
    return cloud.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def normal_expectation_nodes(
    dim: int, n_nodes: int, n_samples: int, seed: int, dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Nodes ``[n, dim]`` and weights ``[n]`` for ``E_{z ~ N(0, I_dim)}[f(z)]``.

    One dimension: Gauss-Hermite with ``n_nodes`` nodes. More: the seeded antithetic cloud
    of ``n_samples`` points with equal weights (a product rule would need ``n_nodes^dim``
    points).
    """
    if dim == 1:
        nodes, weights = gauss_hermite_nodes(n_nodes, dtype, device)
        return nodes.unsqueeze(-1), weights
    cloud = standard_normal_cloud(n_samples, dim, seed, dtype, device)
    return cloud, torch.full((n_samples,), 1.0 / n_samples, dtype=dtype, device=device)
