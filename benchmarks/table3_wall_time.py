"""Wall time of the full Table 3 (3 methods x n = 3, 5, 7, 9 x 10 seeds x 4000 iterations,
batch 30) through ``marl_tr.experiments.reproduce_table3``, on 2 workers, each (method, n)'s
seeds batched into one replicated run (a job of up to ``--max-replicas`` seeds). Target: <= 3
minutes on a 2-core machine.

    python benchmarks/table3_wall_time.py            # the real thing (minutes)
    python benchmarks/table3_wall_time.py --quick    # two short budgets, extrapolated
    python benchmarks/table3_wall_time.py --max-replicas 1   # one run per seed, as before

``--quick`` runs the same table at two small iteration counts (default 25 and 100) and
extrapolates the wall time linearly to 4000 iterations (``wall = a + b * iterations``; ``a``
is the fixed cost: validation, worker start-up, first-call warm-up). It also prints each job's
loop cost per iteration and a second estimate from it: the jobs replayed, in the order the
sweep submitted them, on the workers (each to the first free one), at 4000 iterations. Early
iterations are not always as costly as late ones (the std collapses, line searches change), so
treat the quick figures as estimates and confirm with one full run.
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
import time
from typing import Any

from marl_tr.experiments import MAX_REPLICAS, TABLE3_N, TABLE3_PRESETS, reproduce_table3
from marl_tr.experiments.report import markdown_table
from marl_tr.experiments.sweeps import SweepResult

FULL_ITERATIONS = 4000
TARGET_SECONDS = 180.0
WORKERS = 2


def timed_table(iterations: int, seeds: int, workers: int, max_replicas: int
                ) -> tuple[float, SweepResult]:
    """Wall seconds of one Table 3 from scratch (a fresh output directory) and its sweep."""
    with tempfile.TemporaryDirectory(prefix="table3_bench_") as out:
        start = time.perf_counter()
        result = reproduce_table3(iterations=iterations, seeds=seeds, out=out, workers=workers,
                                  max_replicas=max_replicas)
        return time.perf_counter() - start, result.sweep


def job_costs(outcome: SweepResult) -> list[dict[str, Any]]:
    """Per job, in submission order: preset, n, replicas and loop seconds per iteration."""
    rows = {row["key"]: row for row in outcome.rows}
    jobs = []
    for job in outcome.jobs:
        row = rows[job.cells[0].key]
        jobs.append({"preset": row["preset"], "n": row["n_agents"], "replicas": job.replicas,
                     "seconds_per_iteration": row["job_wall_time"] / row["iterations"]})
    return jobs


def replay(jobs: list[dict[str, Any]], workers: int, iterations: int) -> tuple[float, float]:
    """Finishing time of the jobs' loops at ``iterations``, each job (in order) started on the
    first free worker, and the sum of all jobs' loop seconds."""
    loads = [0.0] * workers
    total = 0.0
    for job in jobs:
        seconds = job["seconds_per_iteration"] * iterations
        total += seconds
        heapq.heappush(loads, heapq.heappop(loads) + seconds)
    return max(loads), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="two short budgets and a linear extrapolation to 4000 iterations")
    parser.add_argument("--quick-iterations", default="25,100",
                        help="the two short budgets of --quick (default: 25,100)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per cell (default: 10)")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help=f"parallel jobs (default: {WORKERS})")
    parser.add_argument("--max-replicas", type=int, default=MAX_REPLICAS,
                        help="the most seeds of one replicated run (default: "
                        f"{MAX_REPLICAS}; 1: one run per seed)")
    args = parser.parse_args()
    cells = len(TABLE3_PRESETS) * len(TABLE3_N) * args.seeds
    print(f"Table 3: {cells} runs ({len(TABLE3_PRESETS)} methods x n = {TABLE3_N} x "
          f"{args.seeds} seeds), batch 30, {args.workers} worker(s), up to "
          f"{args.max_replicas} replica(s) per job")
    run = (args.seeds, args.workers, args.max_replicas)
    if not args.quick:
        wall, outcome = timed_table(FULL_ITERATIONS, *run)
        print(f"full Table 3, {FULL_ITERATIONS} iterations: {wall:.1f} s "
              f"(target {TARGET_SECONDS:.0f} s: {'met' if wall <= TARGET_SECONDS else 'missed'})")
        jobs = job_costs(outcome)
        span, total = replay(jobs, args.workers, FULL_ITERATIONS)
        print(f"{len(jobs)} jobs; loops: {total:.1f} s in all, {span:.1f} s on the busiest "
              f"worker (even split: {total / args.workers:.1f} s)")
    else:
        short, long = (int(v) for v in args.quick_iterations.split(","))
        wall_short, _ = timed_table(short, *run)
        wall_long, outcome = timed_table(long, *run)
        slope = (wall_long - wall_short) / (long - short)
        fixed = wall_short - slope * short
        estimate = fixed + slope * FULL_ITERATIONS
        print(f"{short} iterations: {wall_short:.1f} s; {long} iterations: {wall_long:.1f} s")
        print(f"linear fit: {fixed:.1f} s fixed + {1e3 * slope:.1f} ms per iteration of the "
              f"whole table -> {FULL_ITERATIONS} iterations: about {estimate:.0f} s "
              f"(target {TARGET_SECONDS:.0f} s)")
        jobs = job_costs(outcome)
        span, total = replay(jobs, args.workers, FULL_ITERATIONS)
        print(f"from per-iteration costs ({long}-iteration runs, {len(jobs)} jobs replayed on "
              f"{args.workers} worker(s)): about {fixed + span:.0f} s ({fixed:.1f} s fixed + "
              f"{span:.0f} s on the busiest worker; even split {total / args.workers:.0f} s)")
    print()
    print(markdown_table(
        ["order", "method", "n", "replicas", "job ms/it", "ms/it per seed"],
        [[str(i + 1), job["preset"], str(job["n"]), str(job["replicas"]),
          f"{1e3 * job['seconds_per_iteration']:.2f}",
          f"{1e3 * job['seconds_per_iteration'] / job['replicas']:.2f}"]
         for i, job in enumerate(jobs)]))


if __name__ == "__main__":  # required: the process pool starts workers with "spawn"
    main()
