"""Milliseconds per training iteration, per preset and team size (batch 30, one thread).

For each preset and n it times runs of ``--iterations`` iterations from the paper's start
(collect, advantages, radii, sequential agent updates, critic), and, side by side, a bare
rollout of the same batch (the collector alone), and prints both and their ratio. CPU time,
best of ``--repeats`` identical runs (same seed).

The cost of an iteration depends on where the policies are: an agent whose advantages are
all zero (a collapsed W-MATRPO run, say) takes no step and costs little. So two figures per
run: ``ms/iter``, the whole run's mean (as a Table 3 cell runs it), and ``stepping``, the mean
over the iterations in which every agent of every replica took a step (the solver's full
cost), with the share of such iterations. The ratios to ``hatrpo`` are printed for both.
With ``--replicas R`` every run steps R seeds together and the figures are per seed (the
run's time divided by R), as the experiment commands run them.

    python benchmarks/iteration_speed.py
    python benchmarks/iteration_speed.py --presets hatrpo --agents 3 --iterations 300
"""

from __future__ import annotations

import argparse
import time

import torch

import marl_tr
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.setup import build_parts

PRESETS = ("hatrpo", "hatrpo-caatr", "wmatrpo", "wmatrpo-caatr", "wmatrpo-tr", "wmatrpo-tr-caatr",
           "wmatrpo-dual", "wmatrpo-dual-caatr", "wmatrpo-dual-caatr:critic=oracle_q")


def best_block_ms(run_once, iterations: int, repeats: int) -> float:
    """Best mean CPU milliseconds per call over ``repeats`` blocks of ``iterations`` calls.

    Process CPU time (``time.process_time``), not wall time: on a shared 2-core machine it
    does not count the time other processes hold the core.
    """
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(iterations):
            run_once()
        best = min(best, (time.process_time() - start) / iterations)
    return 1e3 * best


def measure(preset: str, n_agents: int, iterations: int, repeats: int, replicas: int = 1,
            **settings):
    """Per seed, for one preset and team size: (ms per iteration over the whole run, ms per
    iteration in which every agent stepped, the share of those iterations, ms per bare
    rollout)."""
    config = marl_tr.TrainConfig(preset=preset, env_kwargs={"n": n_agents}, batch_size=30,
                                 replicas=replicas, **settings)
    moved_keys = [f"moved_{i}" for i in range(n_agents)]
    best_run = best_stepping = float("inf")
    share = 0.0
    for _ in range(repeats):
        loop = SequentialTrustRegion(build_parts(config))
        stepping: list[float] = []
        start = time.process_time()
        for _ in range(iterations):
            before = time.process_time()
            rows = loop.step()
            if all(row[key] for row in rows for key in moved_keys):
                stepping.append(time.process_time() - before)
        best_run = min(best_run, (time.process_time() - start) / iterations)
        if stepping:
            best_stepping = min(best_stepping, sum(stepping) / len(stepping))
        share = len(stepping) / iterations
        rollout_ms = best_block_ms(lambda run=loop: run.collector.collect(run.policies),
                                   iterations, 1)
        loop.env.close()
    stepping_ms = 1e3 * best_stepping / replicas if share else float("nan")
    return 1e3 * best_run / replicas, stepping_ms, share, rollout_ms / replicas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--agents", nargs="+", type=int, default=[3, 5, 7, 9])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1,
                        help="seeds stepped together; figures per seed")
    parser.add_argument("--no-signal-test", action="store_true",
                        help="signal_level=None: agents step whenever their gradient is not "
                        "zero, so that every iteration costs a full update (a like-for-like "
                        "cost of the solvers)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, batch 30; CPU time, "
          f"best of {args.repeats} runs of {args.iterations} iterations from the paper's start"
          + (f"; {args.replicas} replicas per run, figures per seed" if args.replicas > 1
             else ""))
    print(f"{'preset':<36}{'n':>3}{'ms/iter':>10}{'stepping':>10}{'share':>7}"
          f"{'rollout ms':>12}{'ratio':>8}{'ms/agent':>10}")
    table: dict[tuple[str, int], tuple[float, float]] = {}
    for preset in args.presets:
        for n in args.agents:
            iteration_ms, stepping_ms, share, rollout_ms = measure(
                preset, n, args.iterations, args.repeats, args.replicas,
                **({"signal_level": None} if args.no_signal_test else {}))
            table[preset, n] = (iteration_ms, stepping_ms)
            print(f"{preset:<36}{n:>3}{iteration_ms:>10.3f}{stepping_ms:>10.3f}{share:>7.0%}"
                  f"{rollout_ms:>12.3f}{iteration_ms / rollout_ms:>8.1f}"
                  f"{iteration_ms / n:>10.3f}", flush=True)
    if "hatrpo" in args.presets:
        for column, label in ((0, "whole runs"), (1, "stepping iterations")):
            print(f"\nratio to hatrpo at the same n ({label}):")
            for preset in args.presets:
                ratios = [f"n={n}: {table[preset, n][column] / table['hatrpo', n][column]:.2f}x"
                          for n in args.agents]
                print(f"  {preset:<36}" + "  ".join(ratios))


if __name__ == "__main__":
    main()
