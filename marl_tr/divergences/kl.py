"""Kullback-Leibler divergence: HATRPO's trust region, in closed form.

``KL(p || q) = E_p[log p - log q]``. For diagonal Gaussians it is a sum over action
dimensions of

    ``log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2``,

and for categoricals ``sum_k p_k (log p_k - log q_k)``. Value, gradient and Hessian-vector
product are all analytic: they sit on the hot path of natural-gradient trust-region steps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.divergences.base import DIVERGENCES
from marl_tr.divergences.fisher import FisherCurvature
from marl_tr.validation import check_choice

__all__ = ["KL", "categorical_kl", "gaussian_kl", "kl_divergence"]

KL_DIRECTIONS = ("forward", "reverse")


def gaussian_kl(mean_p: Tensor, std_p: Tensor, mean_q: Tensor, std_q: Tensor) -> Tensor:
    """``KL(N(mean_p, std_p^2) || N(mean_q, std_q^2))`` summed over dimensions.

    Written as ``(x - log1p(x)) / 2 + (m_p - m_q)^2 / (2 s_q^2)`` with
    ``x = (s_p - s_q)(s_p + s_q) / s_q^2``, which keeps its accuracy near ``p == q``.

    Args:
        mean_p, std_p, mean_q, std_q: ``[B, d]``.

    Returns:
        ``[B]``.
    """
    var_q = std_q.square()
    variance_ratio_minus_one = (std_p - std_q) * (std_p + std_q) / var_q
    per_dim = (
        variance_ratio_minus_one
        - torch.log1p(variance_ratio_minus_one)
        + (mean_p - mean_q).square() / var_q
    )
    return 0.5 * per_dim.sum(-1)


def _log_ratio_where_supported(log_p: Tensor, log_q: Tensor, probs_p: Tensor) -> Tensor:
    """``log p - log q`` where ``p > 0`` and 0 elsewhere (so ``0 * log 0`` counts as 0)."""
    return torch.where(probs_p > 0, log_p - log_q, torch.zeros_like(log_p))


def categorical_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """``KL(p || q) = sum_k p_k (log p_k - log q_k)`` from normalised log-probabilities.

    Args:
        log_p, log_q: ``[B, K]``.

    Returns:
        ``[B]``; ``+inf`` where ``q`` puts no mass on an action that ``p`` can take.
    """
    probs_p = log_p.exp()
    return (probs_p * _log_ratio_where_supported(log_p, log_q, probs_p)).sum(-1)


def kl_divergence(p: ActionDistribution, q: ActionDistribution) -> Tensor:
    """``KL(p || q)`` per state, ``[B]``, for two ``DiagGaussian`` or two ``Categorical``."""
    if isinstance(p, DiagGaussian):
        return gaussian_kl(p.mean, p.std, q.mean, q.std)
    if isinstance(p, Categorical):
        return categorical_kl(p.log_probs, q.log_probs)
    raise ValueError(f"No closed-form KL for {type(p).__name__}")


@DIVERGENCES.register("kl")
class KL(FisherCurvature):
    """Kullback-Leibler divergence between the old and the new policy.

    HATRPO's trust region: the paper's per-agent constraint (eq. 3) with KL in place of W1.

    Args:
        direction: ``"forward"`` for ``KL(old || new)`` (TRPO's and HATRPO's choice) or
            ``"reverse"`` for ``KL(new || old)``. Both have the Fisher information of ``old``
            as Hessian at identity.

    Value, ``grad_new`` and ``hvp`` are closed forms (no autograd):

    - Gaussian, forward: ``d/dm_new = (m_new - m_old) / s_new^2``,
      ``d/ds_new = (s_new^2 - s_old^2 - (m_new - m_old)^2) / s_new^3``;
      reverse: ``(m_new - m_old) / s_old^2`` and ``s_new / s_old^2 - 1 / s_new``.
    - Categorical (logits), forward: ``p_new - p_old``; reverse:
      ``p_new * (r - sum(p_new * r))`` with ``r = log p_new - log p_old``.
    - ``hvp``: the Fisher information of ``old`` (``marl_tr.divergences.fisher``).
    """

    supports_continuous = True
    supports_discrete = True
    closed_form = True
    supported_distributions = (DiagGaussian, Categorical)

    def __init__(self, direction: str = "forward") -> None:
        self.direction = check_choice("direction", direction, KL_DIRECTIONS)

    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        if self.direction == "forward":
            return kl_divergence(old, new)
        return kl_divergence(new, old)

    def grad_new(self, old: ActionDistribution, new: ActionDistribution) -> Params:
        self.check(old, new)
        forward = self.direction == "forward"
        if isinstance(new, DiagGaussian):
            mean_step = new.mean - old.mean
            std_old = old.std
            if forward:
                inv_var_new = new.std.square().reciprocal()
                grad_std = (
                    new.std.square() - std_old.square() - mean_step.square()
                ) * inv_var_new / new.std
                return (mean_step * inv_var_new, grad_std)
            inv_var_old = std_old.square().reciprocal()
            return (mean_step * inv_var_old, new.std * inv_var_old - new.std.reciprocal())
        probs_new = new.probs
        if forward:
            return (probs_new - old.probs,)
        log_ratio = _log_ratio_where_supported(
            new.log_probs, old.log_probs, probs_new
        )
        mean_log_ratio = (probs_new * log_ratio).sum(-1, keepdim=True)
        return (probs_new * (log_ratio - mean_log_ratio),)
