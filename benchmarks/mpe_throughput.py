"""MPE throughput and returns: HATRPO on ``simple_spread`` (3 agents, continuous actions).

    python benchmarks/mpe_throughput.py                    # throughput, then returns at 300k
    python benchmarks/mpe_throughput.py --skip-returns     # throughput only (about a minute)

1. **Throughput**: training env steps per second (collection and updates, everything the
   loop does; 4,000 env steps per iteration: the multi_step profile's 20 copies x 200 steps)
   with ``vectorization="sync"`` (copies stepped in this process) and ``"async"`` (chunks of
   copies in subprocesses, one per core), after one warm-up iteration.
2. **Returns**: the mean episode return per agent after 300,000 env steps (75 iterations),
   for 3 seeds run as replicas of one run (replica r is bit for bit the run with seed r), as
   mean +- sd over the seeds: the training episodes of the last 10 iterations (the last
   40,000 steps), and the evaluation episodes (deterministic policy) at the end.

Everything else is the multi_step profile's defaults (MLP (64, 64) policy and critic, Adam
critic at 5e-4 with 5 passes over 4 minibatches, value normalisation, GAE over T = 200) and
HATRPO's multi-step radius (KL 0.01). One torch thread.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import marl_tr
from marl_tr.config import TrainConfig
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.setup import build_parts

ENV = "simple_spread"
ENV_KWARGS = {"continuous_actions": True}


def throughput(vectorization: str, iterations: int, preset: str) -> tuple[float, float]:
    """Training env steps per second and the share of the time spent collecting."""
    parts = build_parts(TrainConfig(env=ENV, env_kwargs=ENV_KWARGS, preset=preset,
                                    vectorization=vectorization, eval_interval=0, seed=0))
    loop = SequentialTrustRegion(parts)
    collect = loop.collect
    spent = [0.0]

    def timed():
        start = time.perf_counter()
        batch = collect()
        spent[0] += time.perf_counter() - start
        return batch

    loop.collect = timed
    try:
        loop.step()  # warm-up: imports, first optimiser, worker start
        spent[0] = 0.0
        start = time.perf_counter()
        for _ in range(iterations):
            loop.step()
        wall = time.perf_counter() - start
    finally:
        parts.close()
    return parts.config.batch_size * iterations / wall, spent[0] / wall


def returns(steps: int, seeds: int, preset: str, vectorization: str) -> None:
    iterations = steps // 4000
    start = time.perf_counter()
    result = marl_tr.train(env=ENV, env_kwargs=ENV_KWARGS, preset=preset, iterations=iterations,
                           replicas=seeds, seed=0, eval_interval=iterations, eval_episodes=32,
                           vectorization=vectorization)
    wall = time.perf_counter() - start
    runs = result.split()
    final = np.array([run.final_return(10) for run in runs])
    evaluated = np.array([run.final_return(1, "eval_return_mean") for run in runs])
    first = np.array([run.column("episode_return_mean")[1] for run in runs])
    print(f"\nreturns after {iterations * 4000:,} env steps ({iterations} iterations), "
          f"{seeds} seeds as replicas, {vectorization}, {wall:.0f} s:")
    print(f"  seeds {[run.config.seed for run in runs]}")
    print(f"  training episodes, iteration 2:       {first.mean():.2f} +- {first.std(ddof=1):.2f}"
          f"  ({', '.join(f'{v:.2f}' for v in first)})")
    print(f"  training episodes, last 10 iterations: {final.mean():.2f} +- "
          f"{final.std(ddof=1):.2f}  ({', '.join(f'{v:.2f}' for v in final)})")
    print(f"  evaluation at the end (32 episodes):   {evaluated.mean():.2f} +- "
          f"{evaluated.std(ddof=1):.2f}  ({', '.join(f'{v:.2f}' for v in evaluated)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hatrpo")
    parser.add_argument("--iterations", type=int, default=3, help="measured iterations")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip-returns", action="store_true")
    parser.add_argument("--vectorization", choices=("auto", "sync", "async"), default="auto",
                        help="of the returns run (auto: the faster one measured)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    print(f"{args.preset} on {ENV} (3 agents, continuous), 4,000 env steps per iteration; "
          f"{cores} cores, load average {load:.1f} at the start")
    speeds = {}
    for mode in ("sync", "async"):
        speed, collecting = throughput(mode, args.iterations, args.preset)
        speeds[mode] = speed
        print(f"  {mode:>5}: {speed:7.0f} env steps/s  ({100 * collecting:.0f} % collecting)")
    if not args.skip_returns:
        mode = max(speeds, key=speeds.get) if args.vectorization == "auto" else args.vectorization
        returns(args.steps, args.seeds, args.preset, mode)


if __name__ == "__main__":
    main()
