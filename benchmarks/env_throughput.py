"""Env-steps per second: the native DiffGame vector env against Gymnasium's SyncVectorEnv.

Both step the same game (``DiffGame-v0``, n = 7 by default) with the same autoreset mode
(same-step) and the same pre-drawn random actions; timings are taken side by side in one run and
the best of a few repeats is reported. Usage::

    python benchmarks/env_throughput.py [--n 7] [--num-envs 1024] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

import marl_tr_envs  # noqa: F401  (registers DiffGame-v0)


def steps_per_second(env: gym.vector.VectorEnv, actions: np.ndarray, repeats: int) -> float:
    """Best-of-``repeats`` env-steps per second over ``len(actions)`` batched steps."""
    env.reset(seed=0)
    env.step(actions[0])  # warm-up
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in actions:
            env.step(batch)
        best = min(best, time.perf_counter() - start)
    return len(actions) * env.num_envs / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=7, help="agents")
    parser.add_argument("--num-envs", type=int, default=1024, help="sub-environments")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (best is kept)")
    parser.add_argument("--native-steps", type=int, default=2000, help="batched steps, native")
    parser.add_argument("--sync-steps", type=int, default=20, help="batched steps, sync")
    args = parser.parse_args()

    native = gym.make_vec("DiffGame-v0", num_envs=args.num_envs, n=args.n)
    sync = gym.make_vec(
        "DiffGame-v0",
        num_envs=args.num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        n=args.n,
    )
    rng = np.random.default_rng(0)
    game = native.game
    shape = (max(args.native_steps, args.sync_steps), args.num_envs, args.n)
    actions = rng.uniform(game.low, game.high, size=shape).astype(np.float32)

    native_rate = steps_per_second(native, actions[: args.native_steps], args.repeats)
    sync_rate = steps_per_second(sync, actions[: args.sync_steps], args.repeats)
    print(f"DiffGame-v0, n={args.n}, num_envs={args.num_envs}, best of {args.repeats} repeats")
    print(f"native GameVectorEnv : {native_rate / 1e6:8.2f} M env-steps/s")
    print(f"gymnasium SyncVectorEnv: {sync_rate / 1e6:8.3f} M env-steps/s")
    print(f"speed-up             : {native_rate / sync_rate:8.1f}x")
    native.close()
    sync.close()


if __name__ == "__main__":
    main()
