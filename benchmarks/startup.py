"""Start-up cost: ``import marl_tr`` and a 1-iteration ``marl-tr train`` beside ``import torch``.

Each command runs as a fresh Python process (what a user and every spawned sweep worker
pays), in turn, ``--repeats`` times after one warm-up round, from a scratch directory (the
train run writes its run directory there). Printed: the median, min and max wall seconds of
each command and the medians' differences from ``import torch``, then whether
``marl-tr train --iterations 1`` is within ``--target`` seconds of ``import torch`` (the
goal: at most 1 s more). The wall time is that of the whole process (interpreter start-up
included), as ``time`` would report it; on a shared machine quote the medians.

    python benchmarks/startup.py
    python benchmarks/startup.py --repeats 9

It also checks, once, which heavy modules each command imported (``torch._dynamo``,
``stable_baselines3``, ``scipy``, ``ot``, ``matplotlib``), which explains most differences.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Modules whose import is worth knowing about when start-up is slow.
HEAVY = ("torch._dynamo", "stable_baselines3", "scipy", "ot", "matplotlib", "pettingzoo",
         "tqdm", "yaml")

_REPORT = ("import json, sys; print('MODULES ' + json.dumps("
           "[m for m in {heavy!r} if m in sys.modules]))")


def commands(python: str) -> dict[str, list[str]]:
    """The timed commands, by label (each a whole process)."""
    return {
        "import torch": [python, "-c", "import torch"],
        "import marl_tr": [python, "-c", "import marl_tr"],
        "marl-tr train --iterations 1": [python, "-m", "marl_tr", "train", "--iterations",
                                         "1"],
    }


def run_once(argv: list[str], cwd: Path) -> float:
    """Wall seconds of one run of ``argv`` (output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return time.perf_counter() - start


def imported_modules(python: str, cwd: Path) -> dict[str, list[str]]:
    """Which ``HEAVY`` modules each command leaves in ``sys.modules``."""
    report = _REPORT.format(heavy=HEAVY)
    scripts = {
        "import torch": f"import torch\n{report}",
        "import marl_tr": f"import marl_tr\n{report}",
        "marl-tr train --iterations 1": (
            "import contextlib, io\nfrom marl_tr.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['train', '--iterations', '1'])\n" + report),
    }
    found = {}
    for label, script in scripts.items():
        done = subprocess.run([python, "-c", script], cwd=cwd, check=True,
                              capture_output=True, text=True)
        line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES "))
        found[label] = json.loads(line[len("MODULES "):])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed rounds after one warm-up (default: 5)")
    parser.add_argument("--target", type=float, default=1.0,
                        help="allowed seconds of train over import torch (default: 1.0)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter to time (default: this one)")
    args = parser.parse_args()
    timed = commands(args.python)
    times: dict[str, list[float]] = {label: [] for label in timed}
    with tempfile.TemporaryDirectory(prefix="marl_tr_startup_") as scratch:
        cwd = Path(scratch)
        for argv in timed.values():  # warm-up: file caches, .pyc files
            run_once(argv, cwd)
        for _ in range(args.repeats):
            for label, argv in timed.items():  # in turn, so drift hits all alike
                times[label].append(run_once(argv, cwd))
        modules = imported_modules(args.python, cwd)
    base = statistics.median(times["import torch"])
    print(f"wall seconds of a fresh process, {args.repeats} rounds "
          f"(python {sys.version.split()[0]}):")
    print(f"  {'command':<30} {'median':>7} {'min':>7} {'max':>7} {'- torch':>8}  imports")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:<30} {median:7.3f} {min(values):7.3f} {max(values):7.3f} "
              f"{median - base:+8.3f}  {', '.join(modules[label]) or '-'}")
    extra = statistics.median(times["marl-tr train --iterations 1"]) - base
    verdict = "within" if extra <= args.target else "OVER"
    print(f"marl-tr train --iterations 1 - import torch = {extra:.3f} s: {verdict} the target "
          f"of {args.target:g} s")


if __name__ == "__main__":
    main()
