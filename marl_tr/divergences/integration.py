"""Fixed integration nodes on the scale of a standard normal.

Divergences without a closed form for Gaussians (Jensen-Shannon, W1 through POT) evaluate
integrals and expectations under ``N(mean, std^2)`` on fixed standardised nodes ``z``.
Writing the points as ``mean + std * z`` (reparameterisation) keeps the result
differentiable in the new policy's parameters, and fixed nodes keep it deterministic: the
same inputs give the same value, and ``D(p, p)`` is exactly 0.

Nodes are cached per (size, dtype, device): treat the returned tensors as read-only.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["normal_quantile_nodes", "standard_grid", "standard_normal_cloud"]


@functools.lru_cache(maxsize=64)
def standard_grid(n: int, half_width: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``n`` evenly spaced points on ``[-half_width, half_width]``, ``[n]``.

    ``mean + std * grid`` places a trapezoid grid on a Gaussian's own scale.
    """
    return torch.linspace(-half_width, half_width, n, dtype=dtype, device=device)


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
