"""Total variation distance: the largest difference in probability of any set of actions.

``TV(p, q) = sup_A |P(A) - Q(A)| = int |p - q| / 2``, in ``[0, 1]``. Since
``|p - q| / (p + q) = |tanh((log p - log q) / 2)|``, it is the mixture mean
``E_m[|tanh(t / 2)|]`` and shares the integration rules of ``marl_tr.divergences.mixture``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian
from marl_tr.divergences.base import DIVERGENCES, Divergence
from marl_tr.divergences.mixture import gaussian_mixture_mean
from marl_tr.validation import check_int

__all__ = ["TotalVariation"]


def _tv_integrand(log_ratio: Tensor) -> Tensor:
    """``|p - q| / (p + q)`` at a point where ``log p - log q = t``: ``|tanh(t / 2)|``."""
    return torch.tanh(0.5 * log_ratio).abs()


@DIVERGENCES.register("tv", aliases=("total_variation",))
class TotalVariation(Divergence):
    """Total variation distance between the old and the new policy.

    Categoricals: exact, ``sum_k |p_k - q_k| / 2``. Diagonal Gaussians: the trapezoid rule
    on merged grids in 1-D (absolute error about ``1e-4`` with the default nodes), a fixed
    seeded sample set for ``d > 1``.

    Args:
        n_nodes: grid points per distribution for 1-D Gaussians (>= 2).
        n_samples: sample-set size for Gaussians with ``d > 1`` (>= 2).
        seed: seed of that sample set (>= 0).

    Flags: symmetric, a metric, not smooth at identity (it grows like ``|theta|``; the
    gradient there is the zero subgradient). ``closed_form`` is False (Gaussians).
    """

    supports_continuous = True
    supports_discrete = True
    symmetric = True
    is_metric = True
    supremum = 1.0
    supported_distributions = (DiagGaussian, Categorical)

    def __init__(self, n_nodes: int = 128, n_samples: int = 512, seed: int = 0) -> None:
        self.n_nodes = check_int("n_nodes", n_nodes, minimum=2)
        self.n_samples = check_int("n_samples", n_samples, minimum=2)
        self.seed = check_int("seed", seed, minimum=0)

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        if isinstance(old, Categorical):
            return 0.5 * (old.probs - new.probs).abs().sum(-1)
        value = gaussian_mixture_mean(
            old, new, _tv_integrand, self.n_nodes, self.n_samples, self.seed
        )
        return value.clamp_max(1.0)  # a mean of values <= 1, up to rounding
