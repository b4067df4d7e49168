"""Divergences written as expectations under the mixture ``m = (p + q) / 2``.

Several f-divergences are ``D(p, q) = E_m[g(log p - log q)]`` for a bounded function ``g``
of the pointwise log-ratio ``t``: Jensen-Shannon with ``g(t) = ln 2 - H(sigmoid(t))``,
total variation with ``g(t) = |tanh(t / 2)|``. A bounded, non-negative ``g`` keeps every
rule below within ``[0, sup g]``, and ``g(0) = 0`` makes ``D(p, p)`` exactly 0.

- Categoricals: exact, ``sum_k m_k g(t_k)`` (log-ratios capped at ``+-LOG_RATIO_CAP``, which
  also covers actions one or both distributions never take).
- 1-D Gaussians: the trapezoid rule on the merged, sorted grids ``mean + std * z`` of both
  distributions (``n_nodes`` points each on ``[-8, 8]``), normalised by the same rule applied
  to ``m``. The merged grid resolves both scales even when the standard deviations differ by
  orders of magnitude, where a Gauss-Hermite rule on either distribution fails. Error
  ``O(1 / n_nodes^2)``.
- Diagonal Gaussians with ``d > 1`` (such divergences do not factor over dimensions):
  ``(E_p[g] + E_q[g]) / 2`` on ``n_samples`` seeded antithetic points ``z`` shared by both
  distributions, a fixed Monte Carlo rule (relative error about ``1 / sqrt(n_samples)``).

Every rule is differentiable in both distributions' parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from marl_tr.distributions import DiagGaussian
from marl_tr.divergences.integration import standard_grid, standard_normal_cloud

__all__ = ["LOG_RATIO_CAP", "categorical_mixture_mean", "gaussian_mixture_mean"]

LogRatioFunction = Callable[[Tensor], Tensor]
GRID_HALF_WIDTH = 8.0
LOG_RATIO_CAP = 60.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def categorical_mixture_mean(log_p: Tensor, log_q: Tensor, g: LogRatioFunction) -> Tensor:
    """``sum_k m_k g(log p_k - log q_k)`` from normalised log-probabilities ``[B, K] -> [B]``."""
    log_ratio = (log_p - log_q).nan_to_num(nan=0.0).clamp(-LOG_RATIO_CAP, LOG_RATIO_CAP)
    mixture = 0.5 * (log_p.exp() + log_q.exp())
    return (mixture * g(log_ratio)).sum(-1)


def _normal_log_density(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return -0.5 * ((x - mean) / std).square() - torch.log(std) - _HALF_LOG_2PI


def _merged_grid_mean(p: DiagGaussian, q: DiagGaussian, g: LogRatioFunction, n_nodes: int
                      ) -> Tensor:
    """Trapezoid rule on the merged grids of ``p`` and ``q`` (``d == 1``): ``[B]``."""
    nodes = standard_grid(n_nodes, GRID_HALF_WIDTH, p.mean.dtype, p.mean.device)
    grid = torch.cat((p.mean + p.std * nodes, q.mean + q.std * nodes), dim=-1)
    grid = torch.sort(grid, dim=-1, stable=True).values  # stable: the faster CPU kernel
    log_p = _normal_log_density(grid, p.mean, p.std)
    log_q = _normal_log_density(grid, q.mean, q.std)
    mixture = 0.5 * (log_p.exp() + log_q.exp())
    mass = torch.trapezoid(mixture, grid, dim=-1)
    return torch.trapezoid(mixture * g(log_p - log_q), grid, dim=-1) / mass


def _log_density_ratio_on_nodes(
    mean_a: Tensor, std_a: Tensor, mean_b: Tensor, std_b: Tensor, nodes: Tensor
) -> Tensor:
    """``log N_a(x) - log N_b(x)`` at ``x = mean_a + std_a * z`` for every node ``z``.

    Args:
        mean_a, std_a, mean_b, std_b: ``[B, d]``.
        nodes: ``[n, d]``.

    Returns:
        ``[B, n]`` (summed over dimensions); exactly 0 when ``a == b``.
    """
    z = nodes.unsqueeze(0)
    std_step = std_a - std_b
    # x standardised under b is z + shift.
    shift = ((mean_a - mean_b).unsqueeze(1) + std_step.unsqueeze(1) * z) / std_b.unsqueeze(1)
    log_std_ratio = torch.log1p(std_step / std_b).sum(-1, keepdim=True)
    return (shift * (z + 0.5 * shift)).sum(-1) - log_std_ratio


def _sampled_mean(p: DiagGaussian, q: DiagGaussian, g: LogRatioFunction, nodes: Tensor
                  ) -> Tensor:
    """``(E_p[g] + E_q[g]) / 2`` on the shared standard-normal points ``nodes [n, d]``."""
    under_p = g(_log_density_ratio_on_nodes(p.mean, p.std, q.mean, q.std, nodes))
    under_q = g(-_log_density_ratio_on_nodes(q.mean, q.std, p.mean, p.std, nodes))
    return 0.5 * (under_p.mean(-1) + under_q.mean(-1))


def gaussian_mixture_mean(
    p: DiagGaussian, q: DiagGaussian, g: LogRatioFunction, n_nodes: int = 128,
    n_samples: int = 512, seed: int = 0,
) -> Tensor:
    """``E_m[g(log p - log q)]`` between diagonal Gaussians ``[B, d]``, per state ``[B]``.

    Args:
        p, q: the two distributions.
        g: elementwise function of the log-ratio, bounded, with ``g(0) = 0``.
        n_nodes: grid points per distribution (``d == 1``).
        n_samples, seed: the shared sample set (``d > 1``).
    """
    dim = p.mean.shape[-1]
    if dim == 1:
        return _merged_grid_mean(p, q, g, n_nodes)
    nodes = standard_normal_cloud(n_samples, dim, seed, p.mean.dtype, p.mean.device)
    return _sampled_mean(p, q, g, nodes)
