"""Kullback-Leibler divergence: HATRPO's trust region, in closed form.

``KL(p || q) = E_p[log p - log q]``. For diagonal Gaussians it is a sum over action
dimensions of

    ``psi(s_p / s_q) + (m_p - m_q)^2 / (2 s_q^2)``,   ``psi(r) = (r^2 - 1) / 2 - log r``,

and for categoricals ``sum_k p_k (log p_k - log q_k)``. Value, gradient and Hessian-vector
product are all analytic: they sit on the hot path of natural-gradient trust-region steps.

Accuracy: ``gaussian_kl`` is accurate to a few units of the dtype's rounding, relative, for
every std ratio the dtype can represent (checked against mpmath for ratios ``1e-12 .. 1e12``
in float32 and float64, ``tests/divergences/test_kl.py``). Two ranges need care: near
``r = 1``, ``psi`` is the small difference of two nearly equal terms, so it is summed from a
series without that cancellation; far from 1, ``log r`` is taken from the ratio itself, not
as ``log1p(r^2 - 1) / 2``, which loses ``r^2`` below the rounding unit of 1 and returns
``log 0 = -inf`` (``KL = inf`` for ``r < 1e-8`` in float64, ``r < 2e-4`` in float32).
"""

from __future__ import annotations

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.divergences.base import DIVERGENCES
from marl_tr.divergences.fisher import FisherCurvature
from marl_tr.tensor_constants import constant_like
from marl_tr.validation import check_choice

__all__ = ["KL", "categorical_kl", "gaussian_kl", "kl_divergence"]

KL_DIRECTIONS = ("forward", "reverse")


#: ``psi`` is summed from its series where ``|t| <= 1/10``, ``t = (r^2 - 1) / (r^2 + 1)``.
_SERIES_LIMIT = 0.1
#: ``1 / (2k + 3)``, ``k = 0, 1, ...``: the series ``S(y)`` (see ``_psi_series``), with as
#: many terms as reach the dtype's rounding for ``y = t^2 <= 1/100``.
_SERIES = {torch.float64: tuple(1.0 / (2 * k + 3) for k in range(8)),
           torch.float32: tuple(1.0 / (2 * k + 3) for k in range(4))}


def _psi_series(t: Tensor) -> Tensor:
    """``psi`` from ``t = (r^2 - 1) / (r^2 + 1)`` for ``|t| <= 1/10``, without cancellation.

    With ``x = r^2 - 1 = 2t / (1 - t)``: ``log r^2 = log1p(x) = 2 atanh(t) = 2 (t + t^3 S(t^2))``,
    ``S(y) = sum_k y^k / (2k + 3)``, so ``psi = (x - log1p(x)) / 2 = t^2 (1 / (1 - t) - t S(t^2))``:
    the bracket is ``1 + 2t/3 + O(t^2)``, so no digits cancel.
    """
    y = t * t
    coefficients = _SERIES.get(t.dtype, _SERIES[torch.float64])
    series = torch.full_like(y, coefficients[-1])
    for coefficient in coefficients[-2::-1]:
        series = torch.addcmul(constant_like(coefficient, y), series, y)
    return y * torch.addcmul(torch.reciprocal(1.0 - t), t, series, value=-1.0)


def _std_ratio_term(std_p: Tensor, std_q: Tensor) -> Tensor:
    """``psi(s_p / s_q) = (r^2 - 1) / 2 - log r`` elementwise, accurate for every ratio.

    Near ``r = 1`` (``|t| <= 1/10``, ``r`` in about ``[0.905, 1.106]``) from its series in
    ``t = x / (2 + x)``, ``x = r^2 - 1 = d (2 + d)``, ``d = (s_p - s_q) / s_q`` (the difference
    is exact there, so ``t`` keeps a small relative error even where ``r`` rounds to 1).
    Elsewhere ``(r / 2) r - 1/2 - log r``, which loses at most a few digits to cancellation
    at the series' boundary; where ``r`` underflows to 0, ``log r`` is ``log s_p - log s_q``.
    """
    # d >= 1 is far from the series' range: the clamp keeps x and t finite (no NaN gradients
    # from the branch that is not used)
    d = ((std_p - std_q) / std_q).clamp_max(1.0)
    x = torch.addcmul(d + d, d, d)
    t = x / (2.0 + x)
    series = _psi_series(t.clamp(-_SERIES_LIMIT, _SERIES_LIMIT))
    ratio = std_p / std_q
    log_ratio = torch.log(ratio)
    if bool((ratio == 0).any()):  # ratios below the dtype's range (float32: 1e-45)
        log_ratio = torch.where(ratio > 0, log_ratio, torch.log(std_p) - torch.log(std_q))
    direct = torch.addcmul(constant_like(-0.5, ratio), ratio, ratio, value=0.5) - log_ratio
    return torch.where(t.abs() <= _SERIES_LIMIT, series, direct)


def gaussian_kl(mean_p: Tensor, std_p: Tensor, mean_q: Tensor, std_q: Tensor) -> Tensor:
    """``KL(N(mean_p, std_p^2) || N(mean_q, std_q^2))`` summed over dimensions.

    ``psi(s_p / s_q) + z^2 / 2`` per dimension with ``z = (m_p - m_q) / s_q`` (formed as a
    ratio, so ``s_q^2`` never under- or overflows); ``psi`` as in ``_std_ratio_term``.
    Relative error a few units of rounding for any representable std ratio; ``inf`` only
    where the true value exceeds the dtype's range.

    Args:
        mean_p, std_p, mean_q, std_q: ``[B, d]``.

    Returns:
        ``[B]``.
    """
    z = (mean_p - mean_q) / std_q
    return torch.addcmul(_std_ratio_term(std_p, std_q), z, z, value=0.5).sum(-1)


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
