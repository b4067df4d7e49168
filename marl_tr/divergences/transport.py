"""Optimal-transport costs through POT, the general path behind the Wasserstein divergences.

POT (``ot``) is imported lazily: it loads a large compiled module (about 0.6 s), which only
the sample- and support-based paths need. The helpers on torch tensors are differentiable
(through POT's torch backend, or through transport duals); ``kantorovich_vertices``,
``triangle_inequality_holds`` and ``discrete_transport_duals`` work on numpy arrays.

POT's ``ot.wasserstein_1d(..., p)`` returns ``W_p`` **to the power p**; the helpers here
return ``W_p`` itself (the ``p``-th root is taken with a zero gradient at 0).
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MAX_VERTEX_ACTIONS",
    "discrete_transport",
    "discrete_transport_duals",
    "euclidean_w1_between_clouds",
    "import_pot",
    "kantorovich_vertices",
    "ordinal_wasserstein",
    "safe_root",
    "softmax_pullback",
    "triangle_inequality_holds",
    "w1_from_vertices",
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


# -- W1 between categoricals under a ground cost matrix ----------------------------------------
#
# Kantorovich-Rubinstein duality on a finite set: when the cost ``C [K, K]`` has a zero diagonal
# and satisfies the triangle inequality ``C_ik <= C_ij + C_jk`` (a metric, or a quasi-metric if
# it is not symmetric), the transport cost from ``p`` to ``q`` is
#
#     ``W(p, q) = max_f f . (p - q)``  over  ``P = {f : f_0 = 0, f_i - f_j <= C_ij}``,
#
# the source potential being ``f`` and the target potential ``-f``. ``P`` is a bounded polytope
# (``|f_i| <= max(C_i0, C_0i)``), so the maximum is reached at one of its vertices. Each vertex
# has ``K - 1`` linearly independent tight constraints, which form a spanning tree of the ``K``
# actions: enumerating every spanning tree rooted at action 0 and, for each tree edge, which of
# its two constraints is tight, and keeping the feasible points, lists every vertex. Once listed
# (at most ``binom(2K - 2, K - 1)`` of them: 70 for ``K = 5``), W is a matrix product and a max
# per row, and the maximising vertex is the optimal dual potential.

MAX_VERTEX_ACTIONS = 7
"""The largest number of actions whose dual vertices are enumerated (``K^(K-2) * 2^(K-1)``
candidate points: 2,000 for ``K = 5``, about a million for ``K = 7``); beyond, the exact
solver is POT's network simplex per distinct row."""


def triangle_inequality_holds(cost: np.ndarray, rtol: float = 1e-9) -> bool:
    """Whether ``cost[i, k] <= cost[i, j] + cost[j, k]`` for all ``i, j, k``.

    Args:
        cost: ``[K, K]``, non-negative with a zero diagonal.
        rtol: tolerance relative to the largest entry (rounding in computed distances).
    """
    slack = cost[:, :, None] + cost[None, :, :] - cost[:, None, :]  # [i, j, k]
    return bool(slack.min() >= -rtol * max(float(cost.max()), 1.0))


@functools.cache
def _rooted_trees(num_actions: int) -> np.ndarray:
    """Every spanning tree of ``num_actions`` labelled nodes, rooted at node 0.

    Returns:
        ``parents [T, K]`` (``T = K^(K-2)``): the parent of each node, ``parents[:, 0] = 0``.
    """
    others = num_actions - 1
    grids = np.meshgrid(*([np.arange(num_actions)] * others), indexing="ij")
    parents = np.stack([g.reshape(-1) for g in grids], axis=1)  # every map {1..K-1} -> {0..K-1}
    parents = np.concatenate([np.zeros((len(parents), 1), dtype=np.int64), parents], axis=1)
    node = np.broadcast_to(np.arange(num_actions), parents.shape).copy()
    rows = np.arange(len(parents))[:, None]
    for _ in range(num_actions):  # a tree: following parents reaches 0 from every node
        node = parents[rows, node]
    return parents[(node == 0).all(axis=1)]


def _ancestry(parents: np.ndarray) -> np.ndarray:
    """``paths [T, K, K]``: ``paths[t, j, c] = 1`` when node ``c != 0`` lies on the path from
    node ``j`` up to the root 0 of tree ``t`` (``j`` included)."""
    trees, num_actions = parents.shape
    paths = np.zeros((trees, num_actions, num_actions))
    node = np.broadcast_to(np.arange(num_actions), parents.shape).copy()
    rows = np.arange(trees)[:, None]
    columns = np.arange(num_actions)[None, :]
    for _ in range(num_actions - 1):
        paths[rows, columns, node] = 1.0
        node = parents[rows, node]
    paths[:, :, 0] = 0.0
    return paths


def kantorovich_vertices(cost: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The vertices of ``{f : f_0 = 0, f_i - f_j <= cost_ij}`` (module comment).

    Args:
        cost: ``[K, K]`` finite, non-negative, zero diagonal, satisfying the triangle
            inequality (``triangle_inequality_holds``); ``2 <= K <= MAX_VERTEX_ACTIONS``.
        chunk: trees processed at once (memory bound).

    Returns:
        ``[M, K]`` float64, distinct vertices, ``[:, 0] = 0``.

    Raises:
        ValueError: ``K`` outside ``[2, MAX_VERTEX_ACTIONS]``.
    """
    cost = np.asarray(cost, dtype=np.float64)
    num_actions = cost.shape[0]
    if not 2 <= num_actions <= MAX_VERTEX_ACTIONS:
        raise ValueError(
            f"the number of actions must be in [2, {MAX_VERTEX_ACTIONS}] to enumerate the dual "
            f"vertices, got {num_actions}"
        )
    scale = max(float(cost.max()), 1.0)
    tolerance = 1e-9 * scale
    parents = _rooted_trees(num_actions)
    children = np.arange(1, num_actions)
    # edge of child c: tight "f_parent - f_c = C[parent, c]" (bit 0) or "f_c - f_parent =
    # C[c, parent]" (bit 1); the step f_c - f_parent is -C[parent, c] or +C[c, parent]
    bits = ((np.arange(2 ** (num_actions - 1))[:, None] >> np.arange(num_actions - 1)) & 1)
    found = []
    for start in range(0, len(parents), chunk):
        block = parents[start : start + chunk]
        down = -cost[block[:, 1:], children]  # [T, K-1]
        up = cost[children, block[:, 1:]]
        steps = np.where(bits[None, :, :] == 1, up[:, None, :], down[:, None, :])  # [T, O, K-1]
        paths = _ancestry(block)[:, :, 1:]  # [T, K, K-1]
        points = np.einsum("toc,tjc->toj", steps, paths).reshape(-1, num_actions)
        gaps = points[:, :, None] - points[:, None, :] - cost  # f_i - f_j - C_ij
        feasible = (gaps <= tolerance).all(axis=(1, 2))
        found.append(points[feasible])
    points = np.concatenate(found)
    _, first = np.unique(np.round(points / scale, 9), axis=0, return_index=True)
    return points[np.sort(first)]


def w1_from_vertices(probs_p: Tensor, probs_q: Tensor, vertices: Tensor) -> tuple[Tensor, Tensor]:
    """``max_m vertices[m] . (p - q)`` per row: W1 under the cost whose dual vertices these are.

    Differentiable in both inputs (through the max: the maximising vertex).

    Args:
        probs_p, probs_q: ``[B, K]``.
        vertices: ``[M, K]`` (``kantorovich_vertices``), same dtype and device.

    Returns:
        ``(value [B], index [B])``: the index of the maximising vertex, whose negation is the
        target potential (``dW/dq = -vertices[index]`` up to a constant).
    """
    scores = (probs_p - probs_q) @ vertices.T
    return scores.max(dim=-1)


def softmax_pullback(probs: Tensor, grad_probs: Tensor) -> Tensor:
    """``d/dz`` of a function of ``probs = softmax(z)`` from its gradient in ``probs``:
    ``probs * (g - sum(probs * g))``, ``[B, K]`` (constants in ``g`` cancel)."""
    centre = (probs * grad_probs).sum(-1, keepdim=True)
    return probs * (grad_probs - centre)


def discrete_transport_duals(
    probs_p: np.ndarray, probs_q: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact transport cost from ``p`` to ``q`` under ``cost`` per row, with dual potentials.

    One ``ot.emd`` (network simplex) per distinct ``(p, q)`` row; rows with ``p == q`` cost
    0 with zero potentials. Any non-negative cost works (no triangle inequality needed).

    Args:
        probs_p, probs_q: ``[B, K]`` float64, rows summing to 1.
        cost: ``[K, K]`` float64; ``cost[i, j]`` moves mass from ``p``'s action ``i`` to
            ``q``'s action ``j``.

    Returns:
        ``(value [B], u [B, K], v [B, K])``: ``value = u . p + v . q``, so that ``u`` and
        ``v`` are ``dW/dp`` and ``dW/dq`` up to constants (where the duals are unique).
    """
    ot = import_pot()
    pairs = np.concatenate([probs_p, probs_q], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    num_actions = probs_p.shape[1]
    values = np.zeros(len(unique))
    source = np.zeros((len(unique), num_actions))
    target = np.zeros((len(unique), num_actions))
    for row, pair in enumerate(unique):
        p, q = pair[:num_actions], pair[num_actions:]
        if np.array_equal(p, q):
            continue
        _, log = ot.emd(p, q, cost, log=True)
        values[row], source[row], target[row] = log["cost"], log["u"], log["v"]
    inverse = inverse.reshape(-1)
    return values[inverse], source[inverse], target[inverse]


class _DiscreteTransport(torch.autograd.Function):
    """``discrete_transport_duals``'s value with its duals as the backward pass."""

    @staticmethod
    def forward(ctx, probs_p: Tensor, probs_q: Tensor, cost: np.ndarray) -> Tensor:  # type: ignore[override]
        values, source, target = discrete_transport_duals(
            probs_p.detach().cpu().double().numpy(), probs_q.detach().cpu().double().numpy(), cost
        )
        like = {"dtype": probs_p.dtype, "device": probs_p.device}
        ctx.save_for_backward(torch.as_tensor(source, **like), torch.as_tensor(target, **like))
        return torch.as_tensor(values, **like)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        source, target = ctx.saved_tensors
        return grad.unsqueeze(-1) * source, grad.unsqueeze(-1) * target, None


def discrete_transport(probs_p: Tensor, probs_q: Tensor, cost: np.ndarray) -> Tensor:
    """Exact transport cost ``[B]`` between categoricals ``[B, K]`` under ``cost [K, K]``
    (POT's network simplex per distinct row), differentiable through its dual potentials."""
    return _DiscreteTransport.apply(probs_p, probs_q, cost)
