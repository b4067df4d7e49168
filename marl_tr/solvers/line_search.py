"""Step lengths measured along a ray: the radius search the trust-region solvers share.

Along a parameter ray ``theta(t) = theta_old + t d`` (``d [R, P]`` per replica), the measured
constraint ``D(t) = E_s D(pi_old, pi_theta(t))`` is 0 at ``t = 0``. ``radius_step`` finds, per
replica, a length ``t`` with

    ``(1 - rtol) delta <= D(t) <= delta``        (never above ``delta``: it is measured)

by a safeguarded secant search in ``(log t, log D)``: a divergence that behaves like
``c t^p`` near the old policy (``p = 1`` for W1 and other norms of the step, ``p = 2`` for
divergences smooth at identity such as KL) is hit in one step from either end of the
bracket ``[lo, hi]`` (``D(lo) <= delta < D(hi)``), and geometric bisection takes over when
the secant leaves the bracket. Each round evaluates the trial length times ``fractions`` in
one batched pass (a line search's backtracking lengths come for free with a policy whose
candidates batch) and every evaluated length refines the bracket. Replicas search in
lockstep and never influence each other. ``max_t`` caps the length (``max_t = 1`` shrinks a
proposed step back into the ball, and keeps it whole when it is inside already).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from marl_tr.solvers.base import AgentProblem, numpy_dtype
from marl_tr.validation import check_in_range, check_int

__all__ = ["Backtracking", "RayPoint", "radius_step"]


@dataclass(frozen=True)
class Backtracking:
    """HARL's backtracking line search: try the step times ``coef^0, coef^1, ...``
    (``tries`` of them) and accept the first inside the radius whose gain is positive and at
    least ``accept_ratio`` of the expected gain. Checked on construction (``ValueError``)."""

    line_search: bool = True
    tries: int = 10
    coef: float = 0.8
    accept_ratio: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.line_search, bool):
            raise ValueError(f"line_search must be true or false, got {self.line_search!r}")
        check_int("max_backtracks", self.tries, minimum=1)
        check_in_range("backtrack_coef", self.coef, 0.0, 1.0, low_open=True, high_open=True)
        check_in_range("accept_ratio", self.accept_ratio, 0.0, 1.0)

    @property
    def fractions(self) -> np.ndarray:
        """``coef^0, coef^1, ..., coef^(tries - 1)``."""
        return float(self.coef) ** np.arange(self.tries)

    def acceptable(self, gains: np.ndarray, divergences: np.ndarray, expected: np.ndarray,
                   radius: np.ndarray) -> np.ndarray:
        """HARL's rule, elementwise: inside the ball, a real gain, enough of the expected."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return (divergences <= radius) & (gains > 0) & (gains / expected > self.accept_ratio)


@dataclass
class RayPoint:
    """Where the search stopped, per replica (arrays ``[R]``).

    Attributes:
        t: the step length (0 where no feasible length was found or the replica was inactive).
        divergence: ``D(t)`` measured there (0 at ``t = 0``).
        gain: the surrogate gain ``E[M (ratio - 1)]`` there.
        log_prob: ``log pi_theta(t)(a_i)`` per sample ``[R*B]`` (the old ones at ``t = 0``).
        rounds: the batched evaluations the replica used.
        hit: whether ``D(t)`` reached the band ``[(1 - rtol) delta, delta]`` (or ``t == max_t``
            inside the ball).
        first_divergence: ``D`` at the first trial length ``[R]`` (NaN where not searched).
        measured: every round's ``(lengths [R, K], gains [R, K], divergences [R, K],
            log_probs [R, K, B])``.
        hit_round: the round each replica hit in (0 where it did not).
        width: ``K``, the lengths per round.

    Properties ``lengths / gains / divergences [R, K]`` and ``log_probs [R, K, B]``: the
    round in which a replica hit, all ``K`` lengths of it (``t`` is one of them); NaN lengths
    (zero gains, divergences and log-probabilities) where the replica did not hit. Picked on
    first use: a caller that needs only ``t`` and its values pays nothing for them.
    """

    t: np.ndarray
    divergence: np.ndarray
    gain: np.ndarray
    log_prob: Tensor
    rounds: np.ndarray
    hit: np.ndarray
    first_divergence: np.ndarray
    measured: list[tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]]
    hit_round: np.ndarray
    width: int

    @property
    def lengths(self) -> np.ndarray:
        return self._hit_round_values[0]

    @property
    def gains(self) -> np.ndarray:
        return self._hit_round_values[1]

    @property
    def divergences(self) -> np.ndarray:
        return self._hit_round_values[2]

    @property
    def log_probs(self) -> Tensor:
        return self._hit_round_values[3]

    @functools.cached_property
    def _hit_round_values(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]:
        replicas, hit, measured = len(self.t), self.hit, self.measured
        rows = np.arange(replicas)
        if not hit.any():
            k, b = self.width, self.log_prob.shape[0] // replicas
            return (np.full((replicas, k), np.nan), np.zeros((replicas, k)),
                    np.zeros((replicas, k)),
                    torch.zeros(replicas, k, b, dtype=self.log_prob.dtype))
        if len(measured) == 1:
            lengths, gains, divergences, log_probs = measured[0]
        else:
            lengths, gains, divergences = (np.stack([m[j] for m in measured])[self.hit_round, rows]
                                           for j in range(3))
            log_probs = torch.stack([m[3] for m in measured], 1)[
                torch.from_numpy(rows), torch.from_numpy(self.hit_round)]
        if not hit.all():
            column = hit[:, None]
            lengths = np.where(column, lengths, np.nan)
            gains, divergences = np.where(column, gains, 0.0), np.where(column, divergences, 0.0)
            log_probs = torch.where(torch.from_numpy(hit).view(-1, 1, 1), log_probs,
                                    torch.zeros_like(log_probs))
        return lengths, gains, divergences, log_probs


def _next_length(lo: np.ndarray, d_lo: np.ndarray, hi: np.ndarray, d_hi: np.ndarray,
                 target: np.ndarray, order: float, max_growth: float,
                 max_t: float, rtol: float) -> np.ndarray:
    """The next trial length per replica from the bracket ``[lo, hi]`` and its values.

    A proposal must lie inside the bracket by a margin of ``rtol / 10`` of its width, else the
    bracket is bisected: the margin forces progress on a poor model, and is well below the
    band's own width in ``t`` (about ``rtol t / order``), so that a proposal aimed at the band
    just inside an end of the bracket (a first trial a rounding error above the radius) is
    kept.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        upper_known = np.isfinite(hi)
        lower_known = lo > 0
        both = upper_known & lower_known & (d_lo > 0) & np.isfinite(d_hi)
        slope = np.log(d_hi / d_lo) / np.log(hi / lo)
        secant = lo * np.exp(np.log(target / d_lo) / slope)  # in (log t, log D)
        # one end known: the power law D ~ c t^order through it
        from_hi = hi * (target / d_hi) ** (1.0 / order)
        from_lo = np.where(d_lo > 0, lo * (target / d_lo) ** (1.0 / order), lo * max_growth)
        proposal = np.where(both & (slope > 0), secant, np.where(lower_known, from_lo, from_hi))
        proposal = np.where(lower_known, np.minimum(proposal, lo * max_growth), proposal)
        proposal = np.minimum(proposal, max_t)
        # strictly inside the bracket, away from its ends; else bisect it geometrically
        width = np.where(upper_known, hi - lo, np.inf)
        margin = 0.1 * rtol * width
        inside = (proposal > lo + margin) & (proposal < hi - margin)
        middle = np.where(lower_known, np.sqrt(lo * hi), hi * 1e-3)
        usable = np.isfinite(proposal) & (proposal > 0)
        return np.where(upper_known & ~(inside & usable), middle,
                        np.where(usable, proposal, np.nan))


def radius_step(
    problem: AgentProblem,
    direction: Tensor,
    initial: np.ndarray,
    *,
    order: float = 1.0,
    active: np.ndarray | None = None,
    rtol: float = 1e-3,
    max_rounds: int = 30,
    max_growth: float = 1e3,
    max_t: float = math.inf,
    fractions: Sequence[float] = (1.0,),
) -> RayPoint:
    """Per replica, the longest measured step along ``direction`` inside the radius, up to
    the band ``[(1 - rtol) delta, delta]``.

    Args:
        problem: the update position's problem (its policy holds the old parameters).
        direction: ``d [R, P]``.
        initial: first trial lengths ``[R]`` (> 0), e.g. a closed form or a quadratic model.
        order: the assumed power ``p`` of ``D ~ c t^p`` while one end of the bracket is known.
        active: ``[R]`` replicas to search (others report ``t = 0``).
        rtol: relative width of the accepted band below ``delta``.
        max_rounds: at most this many batched evaluations.
        max_growth: a trial grows at most this factor past the longest feasible one.
        max_t: the longest length allowed (``D(max_t) <= delta`` ends the search there).
        fractions: ``K`` multiples of the trial length evaluated each round, decreasing,
            the first 1.

    Returns:
        A ``RayPoint``. Where ``hit`` is false the longest feasible length found is returned
        (its divergence below the band), or ``t = 0`` if none was.
    """
    replicas = problem.replicas
    fractions = np.asarray(fractions, dtype=np.float64)
    k = len(fractions)
    active = np.ones(replicas, dtype=bool) if active is None else np.asarray(active, bool)
    radius = problem.radius
    target = radius * (1.0 - 0.5 * rtol)  # aim inside the band, away from its edges
    floor = radius * (1.0 - rtol)
    lo, d_lo, g_lo = np.zeros(replicas), np.zeros(replicas), np.zeros(replicas)
    hi, d_hi = np.full(replicas, np.inf), np.full(replicas, np.inf)
    rounds = np.zeros(replicas)
    hit = np.zeros(replicas, dtype=bool)
    # where lo was measured (round * K + column; -1: not yet) and the round each replica hit
    # in: log-probabilities are picked once, after the search
    lo_at = np.full(replicas, -1)
    hit_round = np.zeros(replicas, dtype=np.int64)
    measured: list[tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]] = []
    t = np.where(active, np.minimum(np.asarray(initial, dtype=np.float64), max_t), 0.0)
    searching = active & np.isfinite(t) & (t > 0)
    # lengths in the parameters' precision (rounded as ``.to(dtype)`` would), cast in NumPy
    step_dtype = numpy_dtype(direction.dtype)
    column = fractions.astype(step_dtype)[:, None]  # [K, 1]
    rows = np.arange(replicas)
    first_divergence = np.full(replicas, np.nan)
    with np.errstate(invalid="ignore"):
        for round_index in range(max_rounds):
            if not searching.any():
                break
            trial = np.where(searching, t, 0.0)
            lengths = trial[:, None] * fractions  # [R, K]
            scale = trial.astype(step_dtype)[:, None, None] * column  # [R, K, 1]
            candidates = (problem.old_params.unsqueeze(1)
                          + torch.from_numpy(scale) * direction.unsqueeze(1))
            gains, divergences, log_probs = problem.evaluate_candidates(candidates)
            measured.append((lengths, gains, divergences, log_probs))
            rounds += searching
            if round_index == 0:
                first_divergence = np.where(searching, divergences[:, 0], np.nan)
            inside = (searching[:, None] & np.isfinite(divergences) & np.isfinite(gains)
                      & (divergences <= radius[:, None]))
            # the longest feasible length of this round, and the shortest overshoot above it
            best = np.where(inside, lengths, -1.0).argmax(1)
            best_length = lengths[rows, best]
            better = inside[rows, best] & (best_length > lo)
            lo = np.where(better, best_length, lo)
            d_lo = np.where(better, divergences[rows, best], d_lo)
            g_lo = np.where(better, gains[rows, best], g_lo)
            lo_at = np.where(better, round_index * k + best, lo_at)
            above = searching[:, None] & ~inside & (lengths > lo[:, None]) & (lengths < hi[:, None])
            if above.any():
                shortest = np.where(above, lengths, np.inf).argmin(1)
                found = above[rows, shortest]
                value = divergences[rows, shortest]
                hi = np.where(found, lengths[rows, shortest], hi)
                d_hi = np.where(found, np.where(np.isfinite(value), value, np.inf), d_hi)
            done = better & ((d_lo >= floor) | (lo >= max_t))
            if done.any():
                hit |= done
                hit_round = np.where(done, round_index, hit_round)
                searching &= ~done
                if not searching.any():
                    break
            t = _next_length(lo, d_lo, hi, d_hi, target, order, max_growth, max_t, rtol)
            searching &= np.isfinite(t) & (t > 0)
    return _ray_point(problem, k, measured, lo, d_lo, g_lo, lo_at, rounds, hit, hit_round,
                      first_divergence)


def _ray_point(problem: AgentProblem, k: int,
               measured: list[tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]],
               lo: np.ndarray, d_lo: np.ndarray, g_lo: np.ndarray, lo_at: np.ndarray,
               rounds: np.ndarray, hit: np.ndarray, hit_round: np.ndarray,
               first_divergence: np.ndarray) -> RayPoint:
    """The ``RayPoint`` of a finished search: the log-probabilities at ``lo`` picked from the
    rounds ``measured`` (``[R, K]`` lengths, gains and divergences and ``[R, K, B]``
    log-probabilities per round)."""
    replicas = problem.replicas
    rows = np.arange(replicas)
    log_prob = problem.old_log_prob
    known = lo_at >= 0
    if known.any():  # then some round was measured
        all_log_probs = (measured[0][3] if len(measured) == 1
                         else torch.cat([m[3] for m in measured], 1))  # [R, rounds * K, B]
        flat = torch.from_numpy(np.where(known, lo_at, 0) + rows * all_log_probs.shape[1])
        picked = all_log_probs.flatten(0, 1).index_select(0, flat).reshape(-1)
        log_prob = picked if known.all() else torch.where(
            torch.from_numpy(known).repeat_interleave(problem.batch_size), picked, log_prob)
    return RayPoint(lo, d_lo, g_lo, log_prob, rounds, hit, first_divergence, measured,
                    hit_round, k)
