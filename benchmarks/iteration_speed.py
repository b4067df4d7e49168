"""Milliseconds per training iteration, per preset and team size (batch 30, one thread).

For each preset and n it times runs of ``--iterations`` iterations from the paper's start
(collect, advantages, radii, sequential agent updates, critic: the cost per iteration depends
on where the policies are, so whole runs from the start are timed, as a Table 3 cell runs
them) and, side by side, a bare rollout of the same batch (the collector alone), and prints
both and their ratio. CPU time, best of ``--repeats`` identical runs (same seed). With
``--replicas R`` every run steps R seeds together and the figures are per seed (the run's time
divided by R), as the experiment commands run them.

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

PRESETS = ("hatrpo", "hatrpo-caatr", "wmatrpo", "wmatrpo-caatr")


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


def measure(preset: str, n_agents: int, iterations: int, repeats: int, replicas: int = 1):
    """(ms per iteration, ms per bare rollout), per seed, for one preset and team size."""
    config = marl_tr.TrainConfig(preset=preset, env_kwargs={"n": n_agents}, batch_size=30,
                                 replicas=replicas)
    best_run = float("inf")
    for _ in range(repeats):
        loop = SequentialTrustRegion(build_parts(config))
        start = time.process_time()
        for _ in range(iterations):
            loop.step()
        best_run = min(best_run, (time.process_time() - start) / iterations)
        rollout_ms = best_block_ms(lambda run=loop: run.collector.collect(run.policies),
                                   iterations, 1)
        loop.env.close()
    return 1e3 * best_run / replicas, rollout_ms / replicas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--agents", nargs="+", type=int, default=[3, 5, 7, 9])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1,
                        help="seeds stepped together; figures per seed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, batch 30; CPU time, "
          f"best of {args.repeats} runs of {args.iterations} iterations from the paper's start"
          + (f"; {args.replicas} replicas per run, figures per seed" if args.replicas > 1
             else ""))
    print(f"{'preset':<15}{'n':>3}{'ms/iter':>10}{'rollout ms':>12}{'ratio':>8}"
          f"{'ms/agent':>10}")
    table: dict[tuple[str, int], float] = {}
    for preset in args.presets:
        for n in args.agents:
            iteration_ms, rollout_ms = measure(preset, n, args.iterations, args.repeats,
                                               args.replicas)
            table[preset, n] = iteration_ms
            print(f"{preset:<15}{n:>3}{iteration_ms:>10.3f}{rollout_ms:>12.3f}"
                  f"{iteration_ms / rollout_ms:>8.1f}{iteration_ms / n:>10.3f}", flush=True)
    if "hatrpo" in args.presets:
        print("\nratio to hatrpo at the same n:")
        for preset in args.presets:
            ratios = [f"n={n}: {table[preset, n] / table['hatrpo', n]:.2f}x"
                      for n in args.agents]
            print(f"  {preset:<15}" + "  ".join(ratios))


if __name__ == "__main__":
    main()
