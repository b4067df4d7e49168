"""Splitting a joint trust-region budget among agents (pure numpy, no policies involved).

Every function here solves one form of

    maximise  sum_i I_i(delta_i)   s.t.   sum_i delta_i = total,   floor <= delta_i (<= cap)

for concave per-agent improvement models ``I_i``, with the floor (and cap) as exact bounds.
The KKT conditions give the common *water-filling* shape: one shared price ``lambda``;
every agent's radius is its unconstrained response to that price, clamped to its bounds;
``lambda`` is whatever makes the radii add up to ``total``.

- ``proportional_fill``: ``I_i(delta) = sqrt(2 delta q_i)`` (the natural-gradient model of a
  divergence smooth at identity). The response is ``q_i / (2 lambda^2)``, i.e. radii
  proportional to ``q_i``; solved exactly by sorting.
- ``price_fill``: arbitrary concave ``I_i`` known only through their price responses
  ``c_i(lambda) = argmax_delta I_i(delta) - lambda delta`` (W1 and other divergences that
  are not smooth at identity); solved by bisection on ``lambda``.
- ``greedy_fill``: linear ``I_i(delta) = s_i delta`` between the floor and a cap (a
  fractional knapsack). The greedy order by ``s_i`` is optimal: highest scores are filled to
  the cap first, and the response to a price is a step, so the "water" fills agents one
  score level at a time.

All return float64 ``[n]`` arrays that sum to ``total`` (up to rounding) and respect the
bounds exactly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from marl_tr.radius.base import RadiusInputWarning

__all__ = ["check_bounds", "greedy_fill", "price_fill", "proportional_fill"]

#: relative slack when comparing ``n * floor`` or ``n * cap`` with ``total``.
_ROUNDING = 1e-12


def check_bounds(n: int, total: float, floor: float, cap: float = math.inf) -> None:
    """Raise ``ValueError`` unless ``n * floor <= total <= n * cap`` (feasibility).

    Args:
        n: number of agents (>= 1).
        total: the joint budget, finite and > 0.
        floor: lower bound per agent, >= 0.
        cap: upper bound per agent (``inf``: none).
    """
    if n < 1:
        raise ValueError(f"need at least one agent, got n={n}")
    if not (math.isfinite(total) and total > 0):
        raise ValueError(f"the budget must be finite and > 0, got {total!r}")
    if not (math.isfinite(floor) and floor >= 0):
        raise ValueError(f"the floor must be finite and >= 0, got {floor!r}")
    if n * floor > total * (1 + _ROUNDING):
        raise ValueError(f"{n} agents x floor {floor} exceeds the budget {total}")
    if n * cap < total * (1 - _ROUNDING):
        raise ValueError(f"{n} agents x cap {cap} cannot use up the budget {total}")


def _equal(n: int, total: float) -> np.ndarray:
    return np.full(n, total / n, dtype=np.float64)


def proportional_fill(weights: np.ndarray, total: float, floor: float) -> np.ndarray:
    """Radii proportional to ``weights`` above a floor, summing to ``total`` (exact).

    Maximises ``sum_i sqrt(2 delta_i q_i)`` with ``q = weights`` subject to
    ``sum_i delta_i = total`` and ``delta_i >= floor``. KKT: ``delta_i = s q_i`` for the
    free agents and ``delta_i = floor`` for the clamped ones, where ``s q_j <= floor`` for
    every clamped ``j``. The clamped agents are a prefix of the agents sorted by ``q``; the
    first prefix length ``k`` for which the smallest free share ``s_k q`` reaches the floor
    satisfies all conditions (if prefix ``k-1`` fails, ``s_k q_{k-1} < floor``), so a
    single pass over the sorted weights finds the solution exactly.

    Args:
        weights: ``q_i``, float ``[n]``, finite and >= 0 (not checked here).
        total: the budget, > 0.
        floor: the lower bound per agent, ``n * floor <= total``.

    Returns:
        ``delta``, float64 ``[n]``. All weights zero: the equal split.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.size
    check_bounds(n, total, floor)
    top = w.max()
    if top <= 0 or n * floor >= total * (1 - _ROUNDING):
        return _equal(n, total)
    w = w / top  # scale-free: q may be 1e-300 or 1e300
    order = np.argsort(w, kind="stable")
    ws = w[order]
    tail = np.cumsum(ws[::-1])[::-1]  # tail[k] = sum(ws[k:])
    for k in range(n):
        rest = total - k * floor
        if rest * ws[k] >= floor * tail[k]:  # smallest free share >= floor
            break
    delta = np.empty(n, dtype=np.float64)
    delta[order[:k]] = floor
    delta[order[k:]] = rest * ws[k:] / tail[k]
    return delta


def price_fill(
    responses: Sequence[Callable[[float], float]],
    total: float,
    floor: float,
    *,
    tol: float = 1e-8,
    max_iter: int = 100,
    leftover: Literal["proportional", "equal"] = "proportional",
) -> np.ndarray:
    """Split ``total`` by one shared price found by bisection.

    Agent ``i`` takes ``max(floor, c_i(lambda))`` at price ``lambda``; ``lambda`` is set so
    that these add up to ``total``. With ``c_i`` the maximiser of
    ``I_i(delta) - lambda delta`` this is the KKT solution of the budget problem for concave
    ``I_i``. The bisection keeps a bracket ``lo < lambda* <= hi`` and stops when the radii at
    the two ends differ by at most ``tol * total`` in sum; the result interpolates between
    the two ends so that it sums to ``total`` exactly, and each radius is then within
    ``tol * total`` of the exact KKT radius. Discontinuous responses (several agents
    indifferent at the same price) are handled the same way: the bracket shrinks to the
    jump and the interpolation splits it.

    When the agents want less than the budget even at price 0
    (``sum_i max(floor, c_i(0)) < total``) the KKT price would be 0 with budget left over;
    since the radii must use the budget, the leftover is given out according to
    ``leftover``: ``"proportional"`` scales every radius by the same factor,
    ``"equal"`` adds the same amount to each.

    Args:
        responses: ``c_i(price) -> divergence``, one per agent, non-increasing in
            ``price >= 0``; values must be >= 0 and not NaN (``+inf`` is allowed: an agent
            that would take any amount at that price).
        total: the budget, > 0.
        floor: the lower bound per agent, ``n * floor <= total``.
        tol: stopping tolerance, relative to ``total``.
        max_iter: bisection steps at most (after bracketing).
        leftover: rule for budget the agents do not want at price 0.

    Returns:
        ``delta``, float64 ``[n]``.

    Raises:
        ValueError: a response that is NaN or negative, or responses that never drop to the
            budget as the price grows.
    """
    n = len(responses)
    check_bounds(n, total, floor)
    if n * floor >= total * (1 - _ROUNDING):
        return _equal(n, total)

    def demand(price: float) -> np.ndarray:
        values = np.array([float(c(price)) for c in responses], dtype=np.float64)
        bad = np.isnan(values) | (values < 0)
        if bad.any():
            where = ", ".join(f"agent {i}: {float(values[i])!r}" for i in np.flatnonzero(bad))
            raise ValueError(
                f"price responses must be >= 0 and not NaN; at price {price!r} got {where}"
            )
        return np.maximum(values, floor)

    d_lo = demand(0.0)
    if d_lo.sum() <= total:
        if leftover == "proportional":
            return d_lo * (total / d_lo.sum())
        return d_lo + (total - d_lo.sum()) / n

    # Bracket lambda* within a factor 2, so that the bisection's precision is relative to
    # the price's own scale: double from 1 while the demand exceeds the budget, else halve.
    d_zero = d_lo
    lo, hi, d_one = 1.0, 1.0, demand(1.0)
    if d_one.sum() > total:
        d_lo, d_hi = d_one, d_one
        while d_hi.sum() > total:
            lo, d_lo = hi, d_hi
            hi *= 2.0
            if not math.isfinite(hi):
                raise ValueError(
                    f"price responses stay above the budget {total} at every price; they "
                    "must fall towards 0 as the price grows"
                )
            d_hi = demand(hi)
    else:
        d_lo, d_hi = d_one, d_one
        while d_lo.sum() <= total:
            hi, d_hi = lo, d_lo
            lo *= 0.5
            if lo == 0.0:  # below the smallest float: lambda* is 0 to machine precision
                d_lo = d_zero
                break
            d_lo = demand(lo)

    gap = d_lo.sum() - d_hi.sum()
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        if gap <= tol * total or not lo < mid < hi:  # converged, or float resolution
            break
        d_mid = demand(mid)
        if d_mid.sum() > total:
            lo, d_lo = mid, d_mid
        else:
            hi, d_hi = mid, d_mid
        gap = d_lo.sum() - d_hi.sum()
    else:
        if gap > tol * total:
            warnings.warn(
                f"price bisection stopped after max_iter={max_iter} steps with the budget "
                f"gap {gap:.3g} > tol * total = {tol * total:.3g}; the split is feasible "
                "but each radius may be off the optimum by up to the gap",
                RadiusInputWarning,
                stacklevel=2,
            )
    if not np.isfinite(d_lo).all():
        raise ValueError(
            "price responses are infinite at price 0 but below the budget at every price "
            "> 0; they must be continuous in the price"
        )
    theta = (total - d_hi.sum()) / (d_lo.sum() - d_hi.sum())
    return d_hi + theta * (d_lo - d_hi)


def greedy_fill(
    scores: np.ndarray, total: float, floor: float, cap: float = math.inf
) -> np.ndarray:
    """Greedy split: every agent gets ``floor``, then the highest scores fill up to ``cap``.

    Maximises ``sum_i scores_i * delta_i`` subject to ``sum_i delta_i = total`` and
    ``floor <= delta_i <= cap`` (a fractional knapsack, for which the greedy order is
    optimal). Agents with equal scores share their level's allowance equally, so equal
    scores give equal radii.

    Args:
        scores: improvement per unit of radius, float ``[n]`` (finite).
        total: the budget, > 0.
        floor: lower bound per agent, ``n * floor <= total``.
        cap: upper bound per agent, ``n * cap >= total`` (``inf``: the top score level takes
            everything above the floors).

    Returns:
        ``delta``, float64 ``[n]``.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.size
    check_bounds(n, total, floor, cap)
    delta = np.full(n, floor, dtype=np.float64)
    remaining = total - n * floor
    for level in np.unique(s)[::-1]:  # highest score first
        if remaining <= 0:
            break
        members = np.flatnonzero(s == level)
        grant = min(remaining, (cap - floor) * members.size)
        delta[members] += grant / members.size
        remaining -= grant
    return delta
