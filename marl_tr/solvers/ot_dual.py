"""The exact discrete dual of the Wasserstein trust-region step (Theorem 1, Corollary 1).

Contract. One agent's step on a finite candidate set: ``B`` samples with masses ``w_b``
(summing to 1), each with ``K`` candidate actions, the advantage ``A_bk`` of moving sample
``b``'s action to candidate ``k`` and the transport cost ``c_bk >= 0`` of that move (each row
has a zero-cost candidate: the sample's own action). The primal problem is the linear
program over transport plans

    max_{P >= 0}  sum_bk P_bk A_bk   s.t.  sum_k P_bk = w_b,   sum_bk P_bk c_bk <= delta,

and its dual (eqs. 4-5) is the one-dimensional convex, piecewise-linear problem

    min_{lam >= 0} g(lam),   g(lam) = lam delta + sum_b w_b max_k (A_bk - lam c_bk).

Strong duality holds (Theorem 1): ``g(lam*)`` is the LP optimum. The optimal plan
(Corollary 1, eqs. 22-25) pushes each sample through the *closest* maximiser map ``T`` (the
cheapest candidate in the row's argmax set, eq. 22) with weight ``1 - t`` and through the
*furthest* one ``T_bar`` (eq. 23) with weight ``t``, one global ``t`` chosen so that the
expected cost is exactly ``delta`` when the constraint binds (eq. 24). **Here ``t`` weights
the furthest map**, so ``t = 0`` is the closest map. When ``lam* = 0`` the plan is the
closest map at 0: the paper's "``t* = 0`` if ``lam* = 0``" (its ``t*`` weights the closest
map, eq. 25) would select the furthest one, which may cost more than ``delta``.

Method, exact to rounding. ``h(lam) = sum_b w_b c_b(T_lam(b))`` with the closest maximiser
is non-increasing and right-continuous, and the subdifferential of ``g`` at ``lam`` is
``[delta - h_furthest(lam), delta - h_closest(lam)]``. If ``h(0) <= delta`` then ``lam* = 0``.
Otherwise ``lam*`` lies in a bracket ``(lo, hi]`` with ``h(lo) > delta >= h(hi)``, starting
from ``hi = 2 (max A - min A) / min{c > 0}`` where every sample stays put. Each iteration,
for all replicas at once, takes one *breakpoint step* (from the closest map valid just below
``hi``, the next breakpoint is ``max_b max_{k: c_bk > c_cur} (A_bk - A_cur) / (c_bk - c_cur)``;
if the furthest map there costs ``>= delta`` it is ``lam*``) and one bisection step on ``h``.
The breakpoint steps make the answer exact; the bisection steps bound the iteration count:
by about ``log2`` of the number of breakpoints (plus a few) while ``lam*`` sits within a few
dozen binades of the ceiling, and after :data:`ARITHMETIC_BISECTIONS` steps at the bracket's
midpoint the bisection halves the float64 values inside the bracket instead, which ends the
search within another 64 steps however widely the breakpoints spread.

Ties. At a breakpoint the tied regularised values ``S_bk = A_bk - lam c_bk`` agree only to
rounding, so candidate ``k`` ties with the row maximiser ``j`` when
``S_bj - S_bk <= tie_rtol * (|A_bk| + lam c_bk + |A_bj| + lam c_bj)`` (default
:data:`TIE_RTOL` ``= 1e-12``, about 4500 machine epsilons of the terms involved). Near-ties
within that tolerance are treated as ties, which moves the returned value by at most the
tolerance. Among candidates of equal cost in a tie set, the lowest index is chosen.

Everything is computed in float64 numpy; torch inputs are detached, moved to the CPU and
cast to float64. Outputs are numpy arrays. Bad input raises a ``ValueError`` naming the
argument before any work starts. Costs whose spread times the value range overflows float64
(``(max A - min A) * max c / min{c > 0}`` above about ``1e300``) are not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from marl_tr.validation import check_in_range

__all__ = [
    "ARITHMETIC_BISECTIONS",
    "MAX_ITERATIONS",
    "TIE_RTOL",
    "WEIGHT_SUM_RTOL",
    "DualSolution",
    "DualSolutions",
    "solve_dual",
    "solve_duals",
    "solve_duals_trusted",
]

TIE_RTOL = 1e-12
"""Relative tolerance under which two candidates' regularised values tie (see the module doc)."""

WEIGHT_SUM_RTOL = 1e-9
"""Given sample weights must sum to 1 within ``max(WEIGHT_SUM_RTOL, B * eps)``, ``eps`` the
machine epsilon of their input dtype (float32 weights carry rounding of about ``B * 6e-8``);
they are used as given, not renormalised."""

MAX_ITERATIONS = 256
"""Cap on the lockstep breakpoint + bisection iterations (in practice: a few dozen at most;
bisecting bit patterns after :data:`ARITHMETIC_BISECTIONS` bounds them by about 130)."""

ARITHMETIC_BISECTIONS = 64
"""Bisection steps at the bracket's arithmetic midpoint; later ones halve the floats in it."""


@dataclass(frozen=True, eq=False)
class DualSolution:
    """The solution of one problem (:func:`solve_dual`).

    Attributes:
        lam: ``lam*``, the minimiser of the dual ``g`` over ``lam >= 0``.
        value: ``g(lam*) = lam* delta + sum_b w_b max_k (A_bk - lam* c_bk)``, the LP optimum.
        objective: the plan's value ``sum(plan * values)`` (equals ``value`` to rounding).
        plan: the optimal transport plan ``[B, K]``; row ``b`` sums to ``w_b``.
        cost: the plan's expected cost ``sum(plan * costs)`` (``delta`` when binding).
        bound: ``lam* delta``, Proposition 1's lower bound on the surrogate gain.
        t: the weight of the furthest map in the plan (0: the closest map alone).
        binding: whether the constraint binds (``lam* > 0``).
        closest: the closest maximiser map at ``lam*`` (eq. 22), candidate indices ``[B]``.
        furthest: the furthest maximiser map at ``lam*`` (eq. 23), ``[B]``.
        iterations: the solver iterations this problem took (0 when ``lam* = 0``).
    """

    lam: float
    value: float
    objective: float
    plan: np.ndarray
    cost: float
    bound: float
    t: float
    binding: bool
    closest: np.ndarray
    furthest: np.ndarray
    iterations: int


@dataclass(frozen=True, eq=False)
class DualSolutions:
    """``R`` independent solutions (:func:`solve_duals`): :class:`DualSolution`'s fields with a
    leading replica axis: ``lam, value, objective, cost, bound, t, binding, iterations [R]``,
    ``plan [R, B, K]``, ``closest, furthest [R, B]``."""

    lam: np.ndarray
    value: np.ndarray
    objective: np.ndarray
    plan: np.ndarray
    cost: np.ndarray
    bound: np.ndarray
    t: np.ndarray
    binding: np.ndarray
    closest: np.ndarray
    furthest: np.ndarray
    iterations: np.ndarray

    def __len__(self) -> int:
        return int(self.lam.shape[0])

    def replica(self, r: int) -> DualSolution:
        """Replica ``r``'s solution as a :class:`DualSolution`."""
        return DualSolution(
            lam=float(self.lam[r]), value=float(self.value[r]),
            objective=float(self.objective[r]), plan=self.plan[r].copy(),
            cost=float(self.cost[r]), bound=float(self.bound[r]), t=float(self.t[r]),
            binding=bool(self.binding[r]), closest=self.closest[r].copy(),
            furthest=self.furthest[r].copy(), iterations=int(self.iterations[r]),
        )


def solve_dual(
    values: Any, costs: Any, delta: Any, weights: Any | None = None, *,
    tie_rtol: float = TIE_RTOL,
) -> DualSolution:
    """Solve one trust-region step's dual exactly (Theorem 1) and build its plan (Corollary 1).

    Args:
        values: advantages ``A [B, K]`` of moving sample ``b`` to candidate ``k`` (numpy,
            torch or nested sequences; finite).
        costs: transport costs ``c [B, K]``, finite and ``>= 0``, with a zero in every row.
        delta: the radius, a finite number ``> 0``.
        weights: sample masses ``w [B]``, finite, ``>= 0`` and summing to 1 (within
            :data:`WEIGHT_SUM_RTOL`, or ``B`` machine epsilons of their dtype if more; used
            as given, not renormalised); ``None`` for uniform ``1 / B``.
        tie_rtol: the relative tie tolerance (module doc), in ``(0, 1e-3]``: ties at a
            breakpoint agree only to rounding, so 0 would miss them.

    Returns:
        A :class:`DualSolution`.

    Raises:
        ValueError: on bad input (naming the argument), before any work.
    """
    A, C, d, w, rtol = _validate(values, costs, delta, weights, tie_rtol, batched=False)
    return _solve(A[None], C[None], d, w[None], rtol).replica(0)


def solve_duals(
    values: Any, costs: Any, delta: Any, weights: Any | None = None, *,
    tie_rtol: float = TIE_RTOL,
) -> DualSolutions:
    """Solve ``R`` independent duals in lockstep, vectorised over replicas and samples.

    Args:
        values: advantages ``A [R, B, K]``.
        costs: transport costs ``c [R, B, K]`` (finite, ``>= 0``, a zero in every row).
        delta: radii ``[R]``, or one scalar for all replicas (finite, ``> 0``).
        weights: sample masses ``[R, B]`` (each replica's summing to 1, as in
            :func:`solve_dual`), or ``None``: uniform.
        tie_rtol: the relative tie tolerance (module doc), in ``(0, 1e-3]``: ties at a
            breakpoint agree only to rounding, so 0 would miss them.

    Returns:
        A :class:`DualSolutions`; replica ``r`` equals ``solve_dual`` on replica ``r``'s data.

    Raises:
        ValueError: on bad input (naming the argument), before any work.
    """
    A, C, d, w, rtol = _validate(values, costs, delta, weights, tie_rtol, batched=True)
    return _solve(A, C, d, w, rtol)


# -- validation ---------------------------------------------------------------------------
def _input_eps(x: Any) -> float:
    """The machine epsilon of ``x``'s floating dtype (float64's for anything else)."""
    if isinstance(x, torch.Tensor):
        return torch.finfo(x.dtype).eps if x.is_floating_point() else float(np.finfo(float).eps)
    dtype = getattr(x, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind == "f":
        return float(np.finfo(dtype).eps)
    return float(np.finfo(float).eps)


def _as_float_array(name: str, x: Any) -> np.ndarray:
    """``x`` as a float64 numpy array (a copy); torch tensors are detached and moved to CPU."""
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers, got a tensor of dtype {x.dtype}")
        return x.detach().to(device="cpu", dtype=torch.float64).numpy().copy()
    try:
        array = np.asarray(x)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{name} must be a rectangular array of real numbers, got a ragged "
                         f"nested sequence") from exc
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got an array of dtype {array.dtype}")
    return np.array(array, dtype=np.float64, order="C")


def _first_bad(name: str, array: np.ndarray, bad: np.ndarray, allowed: str) -> None:
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} must be {allowed}, got {float(array[index])!r} at index {index}")


def _validate(
    values: Any, costs: Any, delta: Any, weights: Any | None, tie_rtol: float, *,
    batched: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Check everything; return ``A, C`` (``[B, K]`` or ``[R, B, K]``), ``delta [R]``,
    ``w`` (``[B]`` or ``[R, B]``) and the tie tolerance."""
    rtol = check_in_range("tie_rtol", tie_rtol, 0.0, 1e-3, low_open=True)
    ndim, axes = (3, "[R, B, K]") if batched else (2, "[B, K]")
    A = _as_float_array("values", values)
    C = _as_float_array("costs", costs)
    if A.ndim != ndim:
        raise ValueError(f"values must be a {ndim}-D array {axes}, got shape {A.shape}")
    if C.shape != A.shape:
        raise ValueError(f"costs must have the shape of values {A.shape}, got {C.shape}")
    if 0 in A.shape:
        raise ValueError(f"values must be non-empty {axes} (at least one sample and one "
                         f"candidate), got shape {A.shape}")
    lead = A.shape[:-1]  # [B] or [R, B]
    replicas = A.shape[0] if batched else 1

    d = _as_float_array("delta", delta)
    if batched and d.ndim == 0:
        d = np.full(replicas, float(d))
    if d.shape != ((replicas,) if batched else ()):
        allowed = f"a scalar or shape ({replicas},)" if batched else "a scalar"
        raise ValueError(f"delta must be {allowed}, got shape {d.shape}")
    if not batched:
        if not (np.isfinite(d) and d > 0):
            raise ValueError(f"delta must be > 0 (finite), got {float(d)!r}")
        d = d.reshape(1)
    _first_bad("delta", d, ~(np.isfinite(d) & (d > 0)), "> 0 (finite)")

    _first_bad("values", A, ~np.isfinite(A), "finite")
    _first_bad("costs", C, ~(np.isfinite(C) & (C >= 0)), "finite and >= 0")
    no_zero = C.min(axis=-1) != 0
    if no_zero.any():
        row = tuple(int(i) for i in np.argwhere(no_zero)[0])
        raise ValueError(
            f"costs must have a zero-cost candidate (the sample's own action) in every row, "
            f"got smallest cost {float(C[row].min())!r} in row {row}")

    if weights is None:
        w = np.full(lead, 1.0 / lead[-1])
    else:
        w = _as_float_array("weights", weights)
        if w.shape != lead:
            raise ValueError(f"weights must have shape {lead} (values' leading axes), "
                             f"got {w.shape}")
        _first_bad("weights", w, ~(np.isfinite(w) & (w >= 0)), "finite and >= 0")
        sums = np.atleast_1d(w.sum(axis=-1))
        within = max(WEIGHT_SUM_RTOL, lead[-1] * _input_eps(weights))
        off = np.abs(sums - 1.0) > within
        if off.any():
            where = f" (replica {int(np.argmax(off))})" if batched else ""
            raise ValueError(f"weights must sum to 1 (within {within:g}), got sum "
                             f"{float(sums[np.argmax(off)])!r}{where}")
    _lambda_ceiling(A, C)  # refuses values and costs whose scales overflow
    return A, C, d, w, rtol


# -- the solver ---------------------------------------------------------------------------
class _Problem:
    """``R`` problems' data and the per-``lam`` evaluations the solver needs.

    The tie test of the module doc, ``S_bj - S_bk <= rtol (|A_bk| + lam c_bk + |A_bj| +
    lam c_bj)`` for the row maximiser ``j``, is evaluated with the candidate's terms on one
    side and the maximiser's on the other: ``A_bk + rtol |A_bk| - lam (1 - rtol) c_bk >=
    S_bj - rtol (|A_bj| + lam c_bj)``, so that the per-candidate side is one fused pass over
    arrays made once per problem.
    """

    def __init__(self, A: np.ndarray, C: np.ndarray, w: np.ndarray, rtol: float) -> None:
        A, C = np.ascontiguousarray(A), np.ascontiguousarray(C)
        self.A, self.C, self.w, self.rtol = A, C, w, rtol
        self.absA = np.abs(A)
        self._raised = A + rtol * self.absA  # the candidate's side of the tie test
        self._scaled_costs = (1.0 - rtol) * C
        self._massless = bool((w <= 0).any())
        # row starts in the flattened [R, B, K] arrays: x[r, b, index[r, b]] is one take
        self._starts = np.arange(A.shape[0] * A.shape[1]).reshape(A.shape[:2]) * A.shape[2]

    def subset(self, replicas: np.ndarray) -> _Problem:
        """The problem of the replicas ``replicas`` (indices) alone."""
        return _Problem(self.A[replicas], self.C[replicas], self.w[replicas], self.rtol)

    def gather(self, x: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``x[r, b, index[r, b]]``: ``[R, B, K]`` (C-contiguous) and ``[R, B]`` -> ``[R, B]``."""
        return x.reshape(-1)[self._starts + index]

    def tied(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The maximisers of ``A - lam c`` (``[R, B, K]`` bool, ties as in the module doc)
        and the row maxima ``[R, B]`` (eq. 21)."""
        column = lam.reshape(-1, 1, 1)
        regularised = self.A - column * self.C
        flat = self._starts + regularised.argmax(-1)
        top = regularised.reshape(-1)[flat]
        bar = top - self.rtol * (self.absA.reshape(-1)[flat]
                                 + lam[:, None] * self.C.reshape(-1)[flat])
        return self._raised - column * self._scaled_costs >= bar[..., None], top

    def closest_of(self, tied: np.ndarray) -> np.ndarray:
        """The closest maximiser map ``[R, B]`` (eq. 22): the cheapest tied candidate."""
        return np.where(tied, self.C, np.inf).argmin(-1)

    def furthest_of(self, tied: np.ndarray) -> np.ndarray:
        """The furthest maximiser map ``[R, B]`` (eq. 23): the costliest tied candidate."""
        return np.where(tied, self.C, -np.inf).argmax(-1)

    def closest(self, lam: np.ndarray) -> np.ndarray:
        return self.closest_of(self.tied(lam)[0])

    def cost(self, index: np.ndarray) -> np.ndarray:
        """``h = sum_b w_b c_b(index_b)`` per replica ``[R]``."""
        return (self.w * self.gather(self.C, index)).sum(-1)

    def next_breakpoint(self, current: np.ndarray) -> np.ndarray:
        """The largest ``lam`` below which some row's map leaves ``current`` ``[R, B]`` for a
        costlier candidate: ``max_b max_{k: c_bk > c_cur} (A_bk - A_cur) / (c_bk - c_cur)``
        over rows with mass; ``-inf`` when there is none. ``[R]``."""
        flat = self._starts + current
        rise = self.C - self.C.reshape(-1)[flat][..., None]
        gain = self.A - self.A.reshape(-1)[flat][..., None]
        costlier = rise > 0
        per_row = np.where(costlier, gain / np.where(costlier, rise, 1.0), -np.inf).max(-1)
        if self._massless:
            per_row = np.where(self.w > 0, per_row, -np.inf)
        return per_row.max(-1)


def _lambda_ceiling(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Per replica (``[R]``; a number for ``[B, K]``), a lambda above every breakpoint:
    ``2 (max A - min A) / min{c > 0}`` (every map is the zero-cost one above
    ``span / smallest move``). ``ValueError`` where it overflows float64 (then no search
    could resolve lambda*)."""
    with np.errstate(over="ignore", invalid="ignore"):
        span = A.max(axis=(-2, -1)) - A.min(axis=(-2, -1))
        smallest_move = np.where(C > 0, C, np.inf).min(axis=(-2, -1))
        ceiling = 2.0 * span / smallest_move
    bad = ~np.isfinite(np.atleast_1d(ceiling))
    if bad.any():
        r = int(np.argmax(bad))
        where = f" (replica {r})" if np.ndim(ceiling) else ""
        raise ValueError(
            f"values and costs are too far apart in scale for float64: values span "
            f"{float(np.atleast_1d(span)[r])!r} while the smallest positive cost is "
            f"{float(np.atleast_1d(smallest_move)[r])!r}{where} (their ratio bounds lambda* "
            "and overflows); rescale values or costs")
    return ceiling


def solve_duals_trusted(A: np.ndarray, C: np.ndarray, delta: np.ndarray,
                        w: np.ndarray) -> DualSolutions:
    """:func:`solve_duals` for a caller that built the arrays itself (the solver ``ot_dual``):
    float64 numpy ``A, C [R, B, K]``, ``delta [R]``, ``w [R, B]`` summing to 1 per replica,
    ``A`` finite. Only the costs are checked (finite, ``>= 0``, a zero per row: they come from
    a divergence's ground metric, which may be a plug-in); where they fail, the checked
    :func:`solve_duals` names the fault."""
    costs_ok = bool(np.isfinite(C).all()) and bool((C.min(axis=-1) == 0).all()) and C.min() >= 0
    if not costs_ok:
        return solve_duals(A, C, delta, w)
    return _solve(A, C, delta, w, TIE_RTOL)


def _solve(A: np.ndarray, C: np.ndarray, delta: np.ndarray, w: np.ndarray,
           rtol: float) -> DualSolutions:
    """The lockstep solver on validated ``A, C [R, B, K]``, ``delta [R]``, ``w [R, B]``."""
    problem = _Problem(A, C, w, rtol)
    R = A.shape[0]
    zero = np.zeros(R)
    tied, top = problem.tied(zero)  # `top`: the row maxima at lam*, filled in by the search
    closest0 = problem.closest_of(tied)
    cost0 = problem.cost(closest0)
    binding = cost0 > delta

    # answers, filled in as replicas finish; the slack ones (lam* = 0) are final already
    lam_star = zero.copy()
    low, low_cost = closest0, cost0.copy()
    high, high_cost = problem.furthest_of(tied), cost0.copy()  # a slack plan is `low` alone
    iterations = np.zeros(R, dtype=np.int64)
    if binding.any():
        _search(problem, delta, binding, lam_star, low, low_cost, high, high_cost, top,
                iterations)

    # the plan: (1 - t) closest + t furthest, t chosen so that the cost is delta (eq. 24)
    spread = high_cost - low_cost
    mixes = binding & (spread > 0)
    t = np.where(mixes, np.clip((delta - low_cost) / np.where(mixes, spread, 1.0), 0.0, 1.0),
                 0.0)
    t_rows = np.where(low != high, t[:, None], 0.0)  # [R, B]; a row with one map keeps w_b
    plan = np.zeros(A.shape)
    entries = plan.reshape(-1)
    entries[problem._starts + low] = w * (1.0 - t_rows)
    entries[problem._starts + high] += w * t_rows
    value = lam_star * delta + (w * top).sum(-1)
    return DualSolutions(
        lam=lam_star, value=value, objective=np.sum(plan * A, axis=(1, 2)), plan=plan,
        cost=np.sum(plan * C, axis=(1, 2)), bound=lam_star * delta, t=t, binding=binding,
        closest=low, furthest=high, iterations=iterations,
    )


def _middle_float(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The float64 halfway between ``0 <= lo <= hi`` (finite) in bit pattern: the floats of
    ``(lo, hi]`` are halved by each such bisection, whatever the binades they span."""
    lo_bits, hi_bits = lo.view(np.int64), hi.view(np.int64)
    return (lo_bits + (hi_bits - lo_bits) // 2).view(np.float64)


def _search(problem: _Problem, delta: np.ndarray, binding: np.ndarray, lam_star: np.ndarray,
            low: np.ndarray, low_cost: np.ndarray, high: np.ndarray, high_cost: np.ndarray,
            top: np.ndarray, iterations: np.ndarray) -> None:
    """``lam*`` of the binding replicas, with the closest (``low``) and furthest (``high``)
    maps there, their costs and the row maxima (``top``), written into the given arrays
    (their slack rows untouched).

    The search runs on the replicas still searching only: ``rows`` are their indices in the
    given arrays, and once half of them have finished, the rest continue on a smaller copy
    of the problem (every replica's arithmetic is its own, so its answer does not change).
    """
    rows = np.flatnonzero(binding)
    if len(rows) < len(binding):
        problem = problem.subset(rows)
    delta = delta[rows]
    ceiling = _lambda_ceiling(problem.A, problem.C)
    # bracket (lo, hi] with h(lo) > delta >= h(hi); `current` is the closest map valid just
    # below hi and `current_cost` its cost (always <= delta)
    lo = np.zeros(len(rows))
    hi = ceiling
    current = problem.closest(hi)
    current_cost = problem.cost(current)
    active = np.ones(len(rows), dtype=bool)

    def finish(done: np.ndarray, lam: np.ndarray, closest: np.ndarray, closest_cost: np.ndarray,
               furthest: np.ndarray, furthest_cost: np.ndarray, row_top: np.ndarray) -> None:
        # the closest map at lam costs <= current_cost <= delta in exact arithmetic; should
        # rounding say otherwise, keep `current` (a maximiser at lam too)
        ok = closest_cost <= delta
        into = rows[done]
        lam_star[into] = lam[done]
        low[into] = np.where(ok[:, None], closest, current)[done]
        low_cost[into] = np.where(ok, closest_cost, current_cost)[done]
        high[into] = furthest[done]
        high_cost[into] = furthest_cost[done]
        top[into] = row_top[done]

    for step in range(1, MAX_ITERATIONS + 1):
        iterations[rows[active]] = step
        # breakpoint step: the next breakpoint at or below hi; lam* if the furthest map there
        # reaches delta
        at = np.maximum(np.minimum(problem.next_breakpoint(current), hi), lo)
        tied, row_top = problem.tied(at)
        furthest = problem.furthest_of(tied)
        furthest_cost = problem.cost(furthest)
        done = active & ((furthest_cost >= delta) | (at <= lo))
        if done.any():
            closest = problem.closest_of(tied)
            finish(done, at, closest, problem.cost(closest), furthest, furthest_cost, row_top)
            active &= ~done
            searching = int(active.sum())
            if not searching:
                return
            if 2 * searching <= len(active):  # go on with the searching replicas alone
                keep = np.flatnonzero(active)
                problem, rows, delta, active = problem.subset(keep), rows[keep], delta[keep], \
                    active[keep]
                lo, hi, at, furthest = lo[keep], hi[keep], at[keep], furthest[keep]
                furthest_cost, current, current_cost = (furthest_cost[keep], current[keep],
                                                        current_cost[keep])
        # otherwise lam* < at, and just below `at` the furthest map there is the closest one
        hi = np.where(active, at, hi)
        current = np.where(active[:, None], furthest, current)
        current_cost = np.where(active, furthest_cost, current_cost)
        # bisection step on h: the bracket's midpoint, or its middle float once arithmetic
        # halving has run long (lam* many binades below the ceiling)
        mid = 0.5 * (lo + hi) if step <= ARITHMETIC_BISECTIONS else _middle_float(lo, hi)
        mid_map = problem.closest(mid)
        mid_cost = problem.cost(mid_map)
        above = mid_cost > delta
        lo = np.where(active & above, mid, lo)
        below = active & ~above
        hi = np.where(below, mid, hi)
        current = np.where(below[:, None], mid_map, current)
        current_cost = np.where(below, mid_cost, current_cost)
    if active.any():  # pragma: no cover - the cap is far above what the bracket allows
        tied, row_top = problem.tied(hi)
        furthest = problem.furthest_of(tied)
        finish(active, hi, current, current_cost, furthest, problem.cost(furthest), row_top)
