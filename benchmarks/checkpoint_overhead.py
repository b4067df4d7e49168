"""What the default periodic checkpoints cost a ``marl-tr train`` run.

Runs ``marl-tr train`` (in this process, one torch thread) ``--repeats`` times in each of two
settings, alternating, into fresh run directories:

- ``end only``: ``--checkpoint-interval 0 --checkpoint-seconds 0``, one checkpoint at the end
  (the default before periodic checkpoints);
- ``default``: the defaults (``TrainConfig.checkpoint_interval`` iterations and
  ``checkpoint_seconds`` seconds).

and prints the median wall time of the training loop (the CLI's ``wall_time``, which includes
the checkpoint writes and their ``fsync``) and process CPU time of each, and the overhead
``default / end only - 1``. On a shared machine that difference is within the noise of
whole runs, so it also times every ``RunDirectory.save_checkpoint`` call of the runs (the
whole of the added work, besides a clock read per iteration) and prints the periodic writes'
total as a share of the loop's wall time, and one checkpoint write on its own.

    python benchmarks/checkpoint_overhead.py
    python benchmarks/checkpoint_overhead.py --iterations 4000 --repeats 7 --preset hatrpo
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch

from marl_tr.cli import main
from marl_tr.config import TrainConfig
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.run_dir import RunDirectory, run_fingerprint
from marl_tr.training.setup import build_parts

SAVES: list[float] = []  # seconds of each save_checkpoint call of the current run
_save = RunDirectory.save_checkpoint


def _timed_save(self, *args, **kwargs):
    start = time.perf_counter()
    try:
        return _save(self, *args, **kwargs)
    finally:
        SAVES.append(time.perf_counter() - start)


RunDirectory.save_checkpoint = _timed_save


def one_run(root: Path, name: str, args: list[str]) -> tuple[float, float, list[float]]:
    """(wall s of the loop as the CLI reports it, process CPU s of the whole command, seconds
    of each checkpoint write, the final one last)."""
    out = io.StringIO()
    SAVES.clear()
    cpu = time.process_time()
    with contextlib.redirect_stdout(out):
        status = main(["train", *args, "--run-dir", str(root / name)])
    cpu = time.process_time() - cpu
    if status != 0:
        raise SystemExit(f"marl-tr train failed with status {status}")
    line = next(line for line in out.getvalue().splitlines() if " iterations" in line)
    return float(line.split(" in ")[1].split(" s ")[0]), cpu, list(SAVES)


def checkpoint_ms(preset: str, root: Path, repeats: int = 50) -> float:
    parts = build_parts(TrainConfig(preset=preset, env_kwargs={"n": 3}))
    loop = SequentialTrustRegion(parts)
    for _ in range(3):
        loop.step()
    directory = RunDirectory(root / "single")
    fingerprint = run_fingerprint(parts.config, parts.env)
    start = time.perf_counter()
    for _ in range(repeats):
        directory.save_checkpoint(loop.state_dict(), iteration=loop.iteration,
                                  fingerprint=fingerprint)
    parts.env.close()
    return 1e3 * (time.perf_counter() - start) / repeats


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--preset", default="hatrpo")
    args = parser.parse_args()
    torch.set_num_threads(1)
    common = ["--preset", args.preset, "--env-kwargs", "n=3", "--iterations",
              str(args.iterations), "--seed", "0"]
    settings = {"end only": [*common, "--checkpoint-interval", "0", "--checkpoint-seconds", "0"],
                "default": common}
    times: dict[str, list[tuple[float, float, list[float]]]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"one checkpoint write ({args.preset}, n=3): {checkpoint_ms(args.preset, root):.2f} "
              "ms")
        one_run(root, "warm-up", settings["end only"])
        for k in range(args.repeats):
            for name, argv in settings.items():
                times[name].append(one_run(root, f"{name.replace(' ', '_')}{k}", argv))
    defaults = TrainConfig()
    print(f"{args.iterations} iterations of {args.preset}, n=3; defaults: checkpoint every "
          f"{defaults.checkpoint_interval} iterations and {defaults.checkpoint_seconds:g} s")
    medians = {name: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
               for name, runs in times.items()}
    for name, (wall, cpu) in medians.items():
        print(f"  {name:<9} loop wall {wall:7.3f} s   command CPU {cpu:7.3f} s   "
              f"(wall of each run: {', '.join(f'{r[0]:.3f}' for r in times[name])})")
    wall = medians["default"][0] / medians["end only"][0] - 1
    cpu = medians["default"][1] / medians["end only"][1] - 1
    print(f"whole runs, default / end only - 1: wall {100 * wall:+.2f} %, CPU {100 * cpu:+.2f} % "
          "(medians; within run-to-run noise)")
    shares = [sum(saves[:-1]) / loop for loop, _, saves in times["default"]]
    counts = {len(saves) - 1 for _, _, saves in times["default"]}
    print(f"periodic checkpoint writes of the default runs: {sorted(counts)} per run, "
          f"{1e3 * statistics.median(sum(s[:-1]) for _, _, s in times['default']):.1f} ms in all "
          f"= {100 * statistics.median(shares):.2f} % of the loop (max {100 * max(shares):.2f} %)")


if __name__ == "__main__":
    main_()
