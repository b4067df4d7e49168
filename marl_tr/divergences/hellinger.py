"""Squared Hellinger distance: the short example of adding a divergence.

One class and one decorator are all a divergence needs (see ``docs/extending.md``).

``H^2(p, q) = 1 - BC(p, q)`` with the Bhattacharyya coefficient ``BC = int sqrt(p q)``, in
``[0, 1]``. Closed forms:

- diagonal Gaussians: ``BC = prod_k sqrt(2 s1 s2 / (s1^2 + s2^2))
  exp(-(m1 - m2)^2 / (4 (s1^2 + s2^2)))``;
- categoricals: ``H^2 = sum_k (sqrt(p_k) - sqrt(q_k))^2 / 2``.

Near identity ``H^2 ~ E_p[(d log p)^2] / 8 = theta^T F theta / 8``: the Hessian is a quarter
of the Fisher information.
"""

from __future__ import annotations

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian
from marl_tr.divergences.base import DIVERGENCES
from marl_tr.divergences.fisher import FisherCurvature

__all__ = ["Hellinger"]


@DIVERGENCES.register("hellinger")
class Hellinger(FisherCurvature):
    """Squared Hellinger distance ``1 - BC(old, new)`` (symmetric, smooth, closed form).

    Computed as ``-expm1(log BC)`` for Gaussians and as ``sum (sqrt p - sqrt q)^2 / 2`` for
    categoricals, so it stays accurate (and non-negative) near identity. ``hvp`` is the
    Fisher information of ``old`` divided by 4.
    """

    supports_continuous = True
    supports_discrete = True
    symmetric = True
    supremum = 1.0
    fisher_scale = 0.25
    closed_form = True
    supported_distributions = (DiagGaussian, Categorical)

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        if isinstance(old, Categorical):
            root_gap = torch.exp(0.5 * old.log_probs) - torch.exp(0.5 * new.log_probs)
            return 0.5 * root_gap.square().sum(-1)
        var_sum = old.std.square() + new.std.square()
        log_bc = -0.5 * torch.log1p(
            (old.std - new.std).square() / (2.0 * old.std * new.std)
        ) - (old.mean - new.mean).square() / (4.0 * var_sum)
        return -torch.expm1(log_bc.sum(-1))
