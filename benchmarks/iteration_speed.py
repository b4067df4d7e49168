"""Milliseconds per training iteration, per preset and team size (batch 30, one thread).

For each preset and n it times runs of ``--iterations`` iterations from the paper's start
(collect, advantages, radii, sequential agent updates, critic), and, side by side, a bare
rollout of the same batch (the collector alone), and prints both and their ratio. CPU time
of identical runs (same seed) in ``--repeats`` rounds; each round runs every preset once, in
turn, so that the ratios to ``hatrpo`` are taken within a round, side by side, and a slow
spell of a shared machine moves both sides of a ratio. Times are the best round's; ratios
are the median over rounds of the within-round ratio, with the lowest and highest.

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
import statistics
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


def run_once(preset: str, n_agents: int, iterations: int, replicas: int = 1,
             **settings) -> tuple[float, float, float, float]:
    """One run of ``iterations`` iterations from the paper's start, per seed: (CPU seconds per
    iteration over the whole run, per iteration in which every agent stepped (NaN if none),
    the share of those iterations, CPU seconds per bare rollout of the same batch)."""
    config = marl_tr.TrainConfig(preset=preset, env_kwargs={"n": n_agents}, batch_size=30,
                                 replicas=replicas, **settings)
    moved_keys = [f"moved_{i}" for i in range(n_agents)]
    loop = SequentialTrustRegion(build_parts(config))
    stepping: list[float] = []
    start = time.process_time()
    for _ in range(iterations):
        before = time.process_time()
        rows = loop.step()
        if all(row[key] for row in rows for key in moved_keys):
            stepping.append(time.process_time() - before)
    run = (time.process_time() - start) / iterations
    stepping_mean = sum(stepping) / len(stepping) if stepping else float("nan")
    rollout = best_block_ms(lambda: loop.collector.collect(loop.policies), iterations, 1) / 1e3
    loop.env.close()
    return run / replicas, stepping_mean / replicas, len(stepping) / iterations, rollout / replicas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--agents", nargs="+", type=int, default=[3, 5, 7, 9])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds; each round runs every preset once, in turn")
    parser.add_argument("--replicas", type=int, default=1,
                        help="seeds stepped together; figures per seed")
    parser.add_argument("--no-signal-test", action="store_true",
                        help="signal_level=None: agents step whenever their gradient is not "
                        "zero, so that every iteration costs a full update (a like-for-like "
                        "cost of the solvers)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = {"signal_level": None} if args.no_signal_test else {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, batch 30; CPU time of "
          f"runs of {args.iterations} iterations from the paper's start, {args.repeats} rounds "
          f"(every preset once per round, in turn); times: best round"
          + (f"; {args.replicas} replicas per run, figures per seed" if args.replicas > 1
             else ""))
    print(f"{'preset':<36}{'n':>3}{'ms/iter':>10}{'stepping':>10}{'share':>7}"
          f"{'rollout ms':>12}{'ratio':>8}{'ms/agent':>10}")
    # per (preset, n): every round's (whole-run, stepping) seconds per iteration
    rounds: dict[tuple[str, int], list[tuple[float, float]]] = {}
    shares: dict[tuple[str, int], float] = {}  # the same in every round (same seed)
    rollouts: dict[tuple[str, int], float] = {}  # the best round's bare rollout
    for n in args.agents:
        for _ in range(args.repeats):
            for preset in args.presets:
                run, stepping, share, rollout = run_once(preset, n, args.iterations,
                                                         args.replicas, **settings)
                rounds.setdefault((preset, n), []).append((run, stepping))
                shares[preset, n] = share
                rollouts[preset, n] = min(rollout, rollouts.get((preset, n), float("inf")))
        for preset in args.presets:
            runs = rounds[preset, n]
            iteration_ms = 1e3 * min(r for r, _ in runs)
            stepping_ms = 1e3 * min((s for _, s in runs if s == s), default=float("nan"))
            share, rollout_ms = shares[preset, n], 1e3 * rollouts[preset, n]
            print(f"{preset:<36}{n:>3}{iteration_ms:>10.3f}{stepping_ms:>10.3f}{share:>7.0%}"
                  f"{rollout_ms:>12.3f}{iteration_ms / rollout_ms:>8.1f}"
                  f"{iteration_ms / n:>10.3f}", flush=True)
    if "hatrpo" in args.presets:
        for column, label in ((0, "whole runs"), (1, "stepping iterations")):
            print(f"\nratio to hatrpo at the same n ({label}): the median over rounds of the "
                  f"ratio within a round [lowest, highest]:")
            for preset in args.presets:
                cells = []
                for n in args.agents:
                    ratios = sorted(mine[column] / base[column] for mine, base in
                                    zip(rounds[preset, n], rounds["hatrpo", n]))
                    cells.append(f"n={n}: {statistics.median(ratios):.2f}x "
                                 f"[{ratios[0]:.2f}, {ratios[-1]:.2f}]")
                print(f"  {preset:<36}" + "  ".join(cells))


if __name__ == "__main__":
    main()
