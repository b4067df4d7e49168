"""Jensen-Shannon divergence: a bounded, symmetric, smooth trust-region measure.

``JS(p, q) = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2``; it lies in
``[0, ln 2]``. Exact for categoricals. Between Gaussians it has no closed form; writing

    ``JS = ln 2 - E_p[softplus(log q - log p)] / 2 - E_q[softplus(log p - log q)] / 2``,

each expectation is taken on fixed nodes ``mean + std * z`` (differentiable in the new
parameters): Gauss-Hermite in 1-D, a seeded antithetic sample set for diagonal Gaussians in
``d > 1`` (JS does not factor over dimensions). The ``"jeffreys_bound"`` method returns the
cheap upper bound ``(KL(p || q) + KL(q || p)) / 8``, which holds because the generators
satisfy ``f_JS(t) <= (t - 1) ln(t) / 8`` pointwise, and is tight to second order at
identity. Near identity ``JS ~ theta^T F theta / 8``: the Hessian is a quarter of the
Fisher information, which ``hvp`` returns analytically.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.divergences.base import DIVERGENCES, Divergence
from marl_tr.divergences.fisher import fisher_vector_product
from marl_tr.divergences.integration import normal_expectation_nodes
from marl_tr.divergences.kl import categorical_kl, kl_divergence
from marl_tr.validation import check_choice, check_int

__all__ = ["JensenShannon", "categorical_js", "gaussian_js"]

JS_METHODS = ("quadrature", "jeffreys_bound")
_LOG_2 = math.log(2.0)


def categorical_js(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Exact JS between categoricals from normalised log-probabilities ``[B, K] -> [B]``."""
    log_mixture = torch.logaddexp(log_p, log_q) - _LOG_2
    return 0.5 * (categorical_kl(log_p, log_mixture) + categorical_kl(log_q, log_mixture))


def _log_two_minus_softplus(x: Tensor) -> Tensor:
    """``ln 2 - ln(1 + e^x) = -ln(1 + expm1(x) / 2)``, accurate near ``x = 0`` and beyond."""
    near_zero = x.abs() < 1.0
    accurate_near_zero = -torch.log1p(0.5 * torch.expm1(torch.where(near_zero, x, 0.0 * x)))
    return torch.where(near_zero, accurate_near_zero, _LOG_2 - torch.nn.functional.softplus(x))


def _log_density_ratio_on_nodes(
    mean_a: Tensor, std_a: Tensor, mean_b: Tensor, std_b: Tensor, nodes: Tensor
) -> Tensor:
    """``log N_b(x) - log N_a(x)`` at ``x = mean_a + std_a * z`` for every node ``z``.

    Args:
        mean_a, std_a, mean_b, std_b: ``[B, d]``.
        nodes: ``[n, d]``.

    Returns:
        ``[B, n]`` (summed over dimensions).
    """
    z = nodes.unsqueeze(0)
    std_step = std_a - std_b
    # x standardised under b is z + shift; written so that a == b gives exactly 0.
    shift = ((mean_a - mean_b).unsqueeze(1) + std_step.unsqueeze(1) * z) / std_b.unsqueeze(1)
    log_std_ratio = torch.log1p(std_step / std_b).sum(-1, keepdim=True)
    return log_std_ratio - (shift * (z + 0.5 * shift)).sum(-1)


def gaussian_js(p: DiagGaussian, q: DiagGaussian, nodes: Tensor, weights: Tensor) -> Tensor:
    """JS between diagonal Gaussians on a fixed rule for ``E_{z ~ N(0, I)}``.

    Args:
        p, q: batch ``B``, dimension ``d``.
        nodes: ``[n, d]``; weights: ``[n]`` summing to 1.

    Returns:
        ``[B]``.
    """
    gap_under_p = _log_density_ratio_on_nodes(p.mean, p.std, q.mean, q.std, nodes)
    gap_under_q = _log_density_ratio_on_nodes(q.mean, q.std, p.mean, p.std, nodes)
    both = _log_two_minus_softplus(torch.stack((gap_under_p, gap_under_q)))
    return 0.5 * (both @ weights).sum(0)


@DIVERGENCES.register("js", aliases=("jensen_shannon",))
class JensenShannon(Divergence):
    """Jensen-Shannon divergence between the old and the new policy.

    Args:
        method: ``"quadrature"`` (default): exact for categoricals, Gauss-Hermite with
            ``n_nodes`` nodes for 1-D Gaussians, ``n_samples`` seeded antithetic samples
            for diagonal Gaussians with ``d > 1``. ``"jeffreys_bound"``: the closed-form
            upper bound ``(KL(old || new) + KL(new || old)) / 8``.
        n_nodes: Gauss-Hermite nodes (>= 2; exact for polynomial integrands of degree
            ``2 n_nodes - 1``).
        n_samples: sample-set size for ``d > 1`` (>= 2).
        seed: seed of that sample set (>= 0).

    Flags: symmetric, smooth at identity (``hvp`` = Fisher / 4, analytic), not a metric
    (its square root is). ``closed_form`` is False: Gaussians need quadrature unless
    ``method="jeffreys_bound"``.
    """

    supports_continuous = True
    supports_discrete = True
    symmetric = True
    smooth_at_identity = True
    supported_distributions = (DiagGaussian, Categorical)

    def __init__(
        self, method: str = "quadrature", n_nodes: int = 32, n_samples: int = 512, seed: int = 0
    ) -> None:
        self.method = check_choice("method", method, JS_METHODS)
        self.n_nodes = check_int("n_nodes", n_nodes, minimum=2)
        self.n_samples = check_int("n_samples", n_samples, minimum=2)
        self.seed = check_int("seed", seed, minimum=0)

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        if self.method == "jeffreys_bound":
            return (kl_divergence(old, new) + kl_divergence(new, old)) / 8.0
        if isinstance(old, Categorical):
            return categorical_js(old.log_probs, new.log_probs)
        nodes, weights = normal_expectation_nodes(
            old.mean.shape[-1], self.n_nodes, self.n_samples, self.seed, old.mean.dtype,
            old.mean.device,
        )
        return gaussian_js(old, new, nodes, weights)

    def hvp(self, old: ActionDistribution, tangent: Params) -> Params:
        self.check_supported(old)
        return fisher_vector_product(old, tangent, scale=0.25)
