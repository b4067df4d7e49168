"""Wall time of the full Table 3 (3 methods x n = 3, 5, 7, 9 x 10 seeds x 4000 iterations,
batch 30) through ``marl_tr.experiments.reproduce_table3``, all cores. Target: <= 3 minutes
on a 2-core machine.

    python benchmarks/table3_wall_time.py            # the real thing (minutes)
    python benchmarks/table3_wall_time.py --quick    # two short budgets, extrapolated

``--quick`` runs the same table at two small iteration counts (default 25 and 100) and
extrapolates the wall time linearly to 4000 iterations (``wall = a + b * iterations``; ``a``
is the fixed cost: validation, worker start-up, first-call warm-up). It also prints the
per-iteration cost of each (method, n) and a second estimate from it. Early iterations are not
always as costly as late ones (the std collapses, line searches change), so treat the quick
figures as estimates and confirm with one full run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import numpy as np

from marl_tr.experiments import TABLE3_N, TABLE3_PRESETS, reproduce_table3
from marl_tr.experiments.report import group_rows, markdown_table
from marl_tr.experiments.sweeps import default_workers

FULL_ITERATIONS = 4000
TARGET_SECONDS = 180.0


def timed_table(iterations: int, seeds: int, workers: int) -> tuple[float, list[dict[str, Any]]]:
    """Wall seconds of one Table 3 from scratch (a fresh output directory) and its cells."""
    with tempfile.TemporaryDirectory(prefix="table3_bench_") as out:
        start = time.perf_counter()
        result = reproduce_table3(iterations=iterations, seeds=seeds, out=out, workers=workers)
        return time.perf_counter() - start, result.sweep.rows


def per_iteration_ms(rows: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """Mean loop milliseconds per iteration of each (preset, n), over seeds."""
    return {(preset, n): 1e3 * float(np.mean([r["wall_time"] / r["iterations"] for r in group]))
            for (preset, n), group in group_rows(rows, ("preset", "n_agents")).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="two short budgets and a linear extrapolation to 4000 iterations")
    parser.add_argument("--quick-iterations", default="25,100",
                        help="the two short budgets of --quick (default: 25,100)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per cell (default: 10)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="parallel runs (default: the number of cores)")
    args = parser.parse_args()
    cells = len(TABLE3_PRESETS) * len(TABLE3_N) * args.seeds
    print(f"Table 3: {cells} runs ({len(TABLE3_PRESETS)} methods x n = {TABLE3_N} x "
          f"{args.seeds} seeds), batch 30, {args.workers} worker(s)")
    if not args.quick:
        wall, rows = timed_table(FULL_ITERATIONS, args.seeds, args.workers)
        print(f"full Table 3, {FULL_ITERATIONS} iterations: {wall:.1f} s "
              f"(target {TARGET_SECONDS:.0f} s: {'met' if wall <= TARGET_SECONDS else 'missed'})")
    else:
        short, long = (int(v) for v in args.quick_iterations.split(","))
        wall_short, _ = timed_table(short, args.seeds, args.workers)
        wall_long, rows = timed_table(long, args.seeds, args.workers)
        slope = (wall_long - wall_short) / (long - short)
        fixed = wall_short - slope * short
        estimate = fixed + slope * FULL_ITERATIONS
        print(f"{short} iterations: {wall_short:.1f} s; {long} iterations: {wall_long:.1f} s")
        print(f"linear fit: {fixed:.1f} s fixed + {1e3 * slope:.1f} ms per iteration of the "
              f"whole table -> {FULL_ITERATIONS} iterations: about {estimate:.0f} s "
              f"(target {TARGET_SECONDS:.0f} s)")
        loop_seconds = sum(ms for ms in per_iteration_ms(rows).values()) * args.seeds
        by_cost = fixed + loop_seconds * FULL_ITERATIONS / 1e3 / args.workers
        print(f"from per-iteration costs ({long}-iteration runs): about {by_cost:.0f} s")
    costs = per_iteration_ms(rows)
    print()
    print(markdown_table(["method", *(f"n = {n} (ms/it)" for n in TABLE3_N)], [
        [preset, *(f"{costs.get((preset, n), float('nan')):.2f}" for n in TABLE3_N)]
        for preset in TABLE3_PRESETS
    ]))


if __name__ == "__main__":
    main()
