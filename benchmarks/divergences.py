"""Microseconds per call of every registered divergence, and closed-form W1 against POT.

Run: ``python benchmarks/divergences.py [--min-time 0.2]`` (one torch thread, float32).

Table 1: each divergence with its default options, at batch 30 (the paper's game) and 4096,
for a 1-D Gaussian policy and a categorical over 5 actions where supported: the value alone
and the value followed by ``grad_new`` (what a primal-dual step computes).

Table 2: the closed-form W1 against the ``method="pot"`` path (POT's ``wasserstein_1d`` on
256-point quantile representations, or on the probabilities for categoricals): time and the
largest absolute difference in value (computed in float64).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian
from marl_tr.divergences import DIVERGENCES, Divergence, Wasserstein1

BATCHES = (30, 4096)
NUM_ACTIONS = 5


def microseconds_per_call(function: Callable[[], object], min_time: float) -> float:
    """Median over 5 rounds of the mean time per call, each round at least ``min_time / 5``."""
    function()  # warm-up (lazy imports, caches)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time / 25 or calls < 3:
        function()
        calls += 1
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(rounds)


def policy_pair(kind: str, batch: int, dtype: torch.dtype) -> tuple[ActionDistribution, ...]:
    generator = torch.Generator().manual_seed(batch)
    if kind == "gaussian":
        mean = torch.randn(2, batch, 1, generator=generator, dtype=dtype)
        std = 0.3 + torch.rand(2, batch, 1, generator=generator, dtype=dtype)
        return DiagGaussian(mean[0], std[0]), DiagGaussian(mean[1], std[1])
    logits = torch.randn(2, batch, NUM_ACTIONS, generator=generator, dtype=dtype)
    return Categorical(logits[0]), Categorical(logits[1])


def kinds_of(divergence: Divergence) -> list[str]:
    return [
        kind for kind, ok in (("gaussian", divergence.supports_continuous),
                              ("categorical", divergence.supports_discrete)) if ok
    ]


def divergence_table(min_time: float) -> None:
    print("Table 1: microseconds per call (float32, 1 thread, default options)")
    print(f"{'divergence':<11} {'input':<12} {'batch':>6} {'value':>10} {'value+grad_new':>15}")
    for name in DIVERGENCES.names():
        divergence = DIVERGENCES.build(name)
        for kind in kinds_of(divergence):
            label = "gauss d=1" if kind == "gaussian" else f"categ K={NUM_ACTIONS}"
            for batch in BATCHES:
                old, new = policy_pair(kind, batch, torch.float32)

                def value(div=divergence, old=old, new=new):
                    return div(old, new)

                def value_and_grad(div=divergence, old=old, new=new):
                    return div(old, new), div.grad_new(old, new)

                print(
                    f"{name:<11} {label:<12} {batch:>6} "
                    f"{microseconds_per_call(value, min_time):>10.1f} "
                    f"{microseconds_per_call(value_and_grad, min_time):>15.1f}"
                )


def w1_against_pot(min_time: float) -> None:
    print("\nTable 2: W1 closed form vs POT (method='pot', n_samples=256)")
    print(f"{'input':<12} {'batch':>6} {'closed us':>10} {'pot us':>10} {'max |diff|':>11}")
    closed, through_pot = Wasserstein1(), Wasserstein1(method="pot")
    for kind in ("gaussian", "categorical"):
        label = "gauss d=1" if kind == "gaussian" else f"categ K={NUM_ACTIONS}"
        for batch in BATCHES:
            old, new = policy_pair(kind, batch, torch.float32)
            closed_time = microseconds_per_call(lambda: closed(old, new), min_time)  # noqa: B023
            pot_time = microseconds_per_call(lambda: through_pot(old, new), min_time)  # noqa: B023
            old64, new64 = policy_pair(kind, batch, torch.float64)
            gap = (closed(old64, new64) - through_pot(old64, new64)).abs().max().item()
            print(f"{label:<12} {batch:>6} {closed_time:>10.1f} {pot_time:>10.1f} {gap:>11.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=0.5,
                        help="seconds spent timing each entry (default 0.5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    divergence_table(args.min_time)
    w1_against_pot(args.min_time)


if __name__ == "__main__":
    main()
