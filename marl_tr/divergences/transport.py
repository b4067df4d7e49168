"""Optimal-transport costs through POT, the general path behind the Wasserstein divergences.

POT (``ot``) is imported lazily: it loads a large compiled module (about 0.6 s), which only
the sample- and support-based paths need. All helpers take and return torch tensors and are
differentiable through POT's torch backend.

POT's ``ot.wasserstein_1d(..., p)`` returns ``W_p`` **to the power p**; the helpers here
return ``W_p`` itself (the ``p``-th root is taken with a zero gradient at 0).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

__all__ = [
    "euclidean_w1_between_clouds",
    "import_pot",
    "ordinal_wasserstein",
    "safe_root",
    "wasserstein_1d_columns",
]


def import_pot() -> ModuleType:
    """Import POT on first use, with an installation hint when it is missing."""
    try:
        import ot
    except ImportError as exc:  # pragma: no cover - POT is a dependency
        raise ImportError(
            "This divergence path needs POT (Python Optimal Transport): pip install pot"
        ) from exc
    return ot


def safe_root(value: Tensor, p: float) -> Tensor:
    """``value ** (1 / p)`` for ``value >= 0``, with gradient 0 (not infinity) at 0."""
    if p == 1:
        return value
    positive = value > 0
    base = torch.where(positive, value, torch.ones_like(value))
    return torch.where(positive, base ** (1.0 / p), torch.zeros_like(value))


def wasserstein_1d_columns(
    values_p: Tensor,
    values_q: Tensor,
    weights_p: Tensor | None = None,
    weights_q: Tensor | None = None,
    p: int = 1,
) -> Tensor:
    """``W_p`` between 1-D discrete distributions, one per column.

    Args:
        values_p, values_q: support points ``[n, C]`` and ``[m, C]``.
        weights_p, weights_q: their masses ``[n, C]`` / ``[m, C]`` (columns summing to 1),
            or ``None`` for uniform masses.
        p: the order (1 or more).

    Returns:
        ``W_p`` per column, ``[C]``.
    """
    ot = import_pot()
    cost = ot.wasserstein_1d(values_p, values_q, weights_p, weights_q, p=p)
    return safe_root(cost, p)


def ordinal_wasserstein(probs_p: Tensor, probs_q: Tensor, spacing: float, p: int = 1) -> Tensor:
    """``W_p`` between categoricals on the ordinal support ``0, spacing, 2 spacing, ...``.

    Args:
        probs_p, probs_q: ``[B, K]``.
        spacing: the distance between neighbouring actions.
        p: the order.

    Returns:
        ``[B]``.
    """
    batch, num_actions = probs_p.shape
    support = spacing * torch.arange(num_actions, dtype=probs_p.dtype, device=probs_p.device)
    values = support.unsqueeze(-1).expand(num_actions, batch).contiguous()
    return wasserstein_1d_columns(values, values, probs_p.T, probs_q.T, p=p)


def euclidean_w1_between_clouds(points_p: Tensor, points_q: Tensor) -> Tensor:
    """W1 under the Euclidean ground cost between uniform point clouds, one pair per state.

    Solves one exact transport problem (``ot.emd2``) per state: ``O(n^3)`` each, so keep
    ``n`` in the hundreds.

    Args:
        points_p, points_q: ``[B, n, d]``.

    Returns:
        ``[B]``.
    """
    ot = import_pot()
    cost = torch.cdist(points_p, points_q)
    masses = ot.unif(points_p.shape[1], type_as=cost)
    return torch.stack([ot.emd2(masses, masses, state_cost) for state_cost in cost])
