"""Where an iteration of the exact W1 dual (``ot_dual``) spends its time, per part.

Runs ``--preset`` (default ``wmatrpo-dual-caatr``) for ``--iterations`` iterations from the
paper's start at each ``--agents`` n (batch 30, one thread) with a wall-clock timer around
each part, and prints milliseconds per iteration:

- ``Q fit``: the learned critic's fit (``LearnedQ.fit``; 0 with the oracle);
- ``candidates + Q values``: the solver's candidate set and their values (``_continuous``),
  of which ``Q values`` is the critic's evaluation (``ActionValues``);
- ``solve``: the exact dual (``solve_duals_trusted``);
- ``projection``: the pushed-forward policy fitted to the policy class;
- ``shrink``: the measured radius search back into the ball (``radius_step``);
- ``dual step``: the solver's whole step, all agents; ``iteration``: the loop's whole step.

The timers add a little to every timed call, so the totals sit above
``iteration_speed.py``'s figures (CPU time, best of several rounds); use this script for the
shares, that one for the ratios to ``hatrpo``.

With ``--replicas R`` the run steps ``R`` seeds together (as the experiment commands run
them) and the figures are per seed (the run's time divided by ``R``).

With ``--versus hatrpo`` it also times that preset's run of the same length beside each
breakdown (``--repeats`` rounds, medians of the within-round ratios) and prints the ratio of
the iteration to it, and the ratio left if the solve and the shrink cost nothing, and if the
Q fit did too: a bound on what faster solves alone could reach.

    python benchmarks/dual_breakdown.py
    python benchmarks/dual_breakdown.py --agents 9 --preset wmatrpo-dual-caatr:critic=oracle_q
    python benchmarks/dual_breakdown.py --replicas 10
    python benchmarks/dual_breakdown.py --agents 3 5 7 9 --versus hatrpo --repeats 3
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import time

import torch

import marl_tr
from marl_tr.critics.base import ActionValues
from marl_tr.critics.learned import LearnedQ
from marl_tr.solvers import dual_step
from marl_tr.training.loop import SequentialTrustRegion

#: (label, owner, attribute): the parts timed, in the order printed.
PARTS = (
    ("Q fit", LearnedQ, "fit"),
    ("candidates + Q values", dual_step.OTDual, "_continuous"),
    ("  of which Q values", ActionValues, "__call__"),
    ("solve", dual_step, "solve_duals_trusted"),
    ("projection", dual_step.OTDual, "_project"),
    ("shrink", dual_step, "radius_step"),
    ("dual step", dual_step.OTDual, "step"),
    ("iteration", SequentialTrustRegion, "_step"),
)


def timed(totals: dict[str, float], label: str, function):
    """``function`` with its wall time added to ``totals[label]``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - start

    return wrapper


def breakdown(preset: str, n_agents: int, iterations: int,
              replicas: int = 1) -> dict[str, float]:
    """Milliseconds per iteration (and per seed) of each part over one run."""
    totals: dict[str, float] = collections.defaultdict(float)
    originals = []
    for label, owner, name in PARTS:
        original = getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, timed(totals, label, original))
    try:
        marl_tr.train(marl_tr.TrainConfig(preset=preset, env_kwargs={"n": n_agents},
                                           batch_size=30, iterations=iterations,
                                           replicas=replicas))
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)
    return {label: 1e3 * totals[label] / iterations / replicas for label, _, _ in PARTS}


def bounds(preset: str, versus: str, n_agents: int, iterations: int, replicas: int,
           repeats: int) -> tuple[dict[str, float], list[float]]:
    """The breakdown of the last round, and the medians over rounds of the ratios of the
    iteration to ``versus``'s (timed the same way, in turn): as is, without solve and shrink,
    and also without the Q fit."""
    ratios = []
    for _ in range(repeats):
        base = breakdown(versus, n_agents, iterations, replicas)["iteration"]
        parts = breakdown(preset, n_agents, iterations, replicas)
        free = parts["iteration"] - parts["solve"] - parts["shrink"]
        ratios.append((parts["iteration"] / base, free / base, (free - parts["Q fit"]) / base))
    return parts, [statistics.median(column) for column in zip(*ratios)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="wmatrpo-dual-caatr")
    parser.add_argument("--agents", type=int, nargs="+", default=[3, 9])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--replicas", type=int, default=1,
                        help="seeds stepped together; figures per seed")
    parser.add_argument("--versus", default=None,
                        help="a preset to compare with, e.g. hatrpo (ratios and bounds)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds with --versus")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.versus:
        both = {n: bounds(args.preset, args.versus, n, args.iterations, args.replicas,
                          args.repeats) for n in args.agents}
        results = {n: parts for n, (parts, _) in both.items()}
    else:
        results = {n: breakdown(args.preset, n, args.iterations, args.replicas)
                   for n in args.agents}
    per_seed = f", {args.replicas} replicas, per seed" if args.replicas > 1 else ""
    print(f"{args.preset}, batch 30, {args.iterations} iterations from the paper's start"
          f"{per_seed}; wall ms per iteration")
    print(f"{'part':24s}" + "".join(f"{f'n={n}':>10s}" for n in args.agents))
    for label, _, _ in PARTS:
        print(f"{label:24s}" + "".join(f"{results[n][label]:10.3f}" for n in args.agents))
    if args.versus:
        print(f"\niteration's ratio to {args.versus}'s (median of {args.repeats} rounds)")
        for index, label in enumerate(("iteration", "if solve + shrink were free",
                                       "  and the Q fit too")):
            print(f"{label:28s}" + "".join(f"{both[n][1][index]:8.2f}" for n in args.agents))


if __name__ == "__main__":
    main()
