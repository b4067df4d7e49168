"""Reproduce the paper's differential-game results (Table 3, Figure 1, the basin-gap study and
the other pages of ``marl-tr reproduce all``), each page with the exact command that made it.

    python examples/reproduce_paper.py                        # Table 2's budget, 5 seeds
    python examples/reproduce_paper.py --iterations 50 --seeds 2 --out results/preview
    python examples/reproduce_paper.py --seeds 5 --out docs/results   # the committed pages

By default it writes under ``results/reproduce_paper`` in the working directory (a scratch
directory, ignored by git), never over the committed ``docs/results``: name that directory
with ``--out`` to regenerate them. The same as ``marl-tr reproduce all``. The seeds of each
method and setting are trained together as replicated runs (``--max-replicas``; the results
do not depend on it). Every sweep resumes from its ``cells.csv``: after an interruption, run
the same command again. Do not edit the generated pages by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from marl_tr.experiments import MAX_REPLICAS, reproduce_all

#: Where the example writes unless told otherwise (relative to the working directory).
DEFAULT_OUT = Path("results") / "reproduce_paper"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output directory (default: {DEFAULT_OUT}, a scratch directory; "
                        "docs/results holds the committed pages)")
    parser.add_argument("--iterations", type=int, default=4000,
                        help="iterations per run (default: Table 2's 4000)")
    parser.add_argument("--seeds", default="5", help="seed count or list (default: 5)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel runs (default: the number of cores)")
    parser.add_argument("--max-replicas", type=int, default=MAX_REPLICAS,
                        help="the most seeds of one method and setting trained together as "
                        f"one replicated run (default: {MAX_REPLICAS}; 1: one run per seed)")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    reproduce_all(out=args.out, iterations=args.iterations, seeds=args.seeds,
                  workers=args.workers, max_replicas=args.max_replicas, echo=True)
    print((args.out / "README.md").read_text())


if __name__ == "__main__":  # required: the process pool starts workers with "spawn"
    main()
