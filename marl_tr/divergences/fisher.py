"""Fisher-information products in distribution-parameter coordinates.

Every divergence that is smooth at identity (KL, Jensen-Shannon, squared Hellinger) has a
Hessian at ``new == old`` equal to a multiple of the Fisher information ``F`` of ``old``:
``F`` for KL in either direction, ``F / 4`` for JS and for ``H^2 = 1 - BC``. They inherit
:class:`FisherCurvature`, whose analytic ``hvp`` is one call of
:func:`fisher_vector_product` with that multiple.

Coordinates are those of ``ActionDistribution.params()``:

- ``DiagGaussian`` in ``(mean, std)``: ``F = diag(1 / std^2, 2 / std^2)`` per dimension.
- ``Categorical`` in logits: ``F = diag(p) - p p^T`` (singular along the all-ones direction,
  which does not change the distribution).
"""

from __future__ import annotations

from typing import ClassVar

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.divergences.base import Divergence

__all__ = ["FisherCurvature", "fisher_vector_product"]


def fisher_vector_product(
    dist: ActionDistribution, tangent: Params, scale: float = 1.0
) -> Params:
    """``scale * F(dist) @ tangent`` per state, without autograd.

    Args:
        dist: the distribution at which the Fisher information is taken (batch ``B``).
        tangent: a direction shaped like ``dist.params()``: ``(t_mean [B, d], t_std [B, d])``
            for a ``DiagGaussian``, ``(t_logits [B, K],)`` for a ``Categorical``.
        scale: the multiple of ``F`` (1 for KL, 1/4 for JS and squared Hellinger).

    Returns:
        A tuple shaped like ``tangent``.

    Raises:
        ValueError: ``dist`` is neither a ``DiagGaussian`` nor a ``Categorical``, or the
            tangent does not have one tensor per parameter.
    """
    params = dist.params()
    if len(tangent) != len(params):
        raise ValueError(
            f"A tangent for {type(dist).__name__} needs {len(params)} tensor(s) "
            f"({', '.join(dist.param_names)}), got {len(tangent)}"
        )
    if isinstance(dist, DiagGaussian):
        precision = scale / dist.std.square()
        return (tangent[0] * precision, tangent[1] * (2.0 * precision))
    if isinstance(dist, Categorical):
        probs = dist.probs
        weighted = probs * tangent[0]
        return (scale * (weighted - probs * weighted.sum(-1, keepdim=True)),)
    raise ValueError(
        f"No Fisher information for {type(dist).__name__}; known: DiagGaussian, Categorical"
    )


class FisherCurvature(Divergence):
    """Base for divergences whose Hessian at identity is ``fisher_scale`` times ``F(old)``.

    Provides the analytic ``hvp`` (no autograd) and ``diagonal_hessian`` (true for diagonal
    Gaussians, whose Fisher information is diagonal in ``(mean, std)``). Subclasses set
    ``fisher_scale`` and must be smooth at identity.
    """

    smooth_at_identity = True
    fisher_scale: ClassVar[float] = 1.0

    def hvp(self, old: ActionDistribution, tangent: Params) -> Params:
        self.check_supported(old)
        return fisher_vector_product(old, tangent, self.fisher_scale)

    def diagonal_hessian(self, dist: ActionDistribution) -> bool:
        return isinstance(dist, DiagGaussian)
