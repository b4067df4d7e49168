"""Reproduce the paper's differential-game results into docs/results (Table 3, Figure 1 and
the basin-gap study), each page with the exact command that made it.

    python examples/reproduce_paper.py                        # Table 2's budget, 5 seeds
    python examples/reproduce_paper.py --seeds 10 --out docs/results
    python examples/reproduce_paper.py --iterations 50 --seeds 2 --out /tmp/preview  # a preview

The same as ``marl-tr reproduce all``. The seeds of each method and setting are trained
together as replicated runs (``--max-replicas``; the results do not depend on it). Every sweep
resumes from its ``cells.csv``: after an interruption, run the same command again. Do not edit
the generated pages by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from marl_tr.experiments import MAX_REPLICAS, reproduce_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results"),
                        help="output directory (default: docs/results)")
    parser.add_argument("--iterations", type=int, default=4000,
                        help="iterations per run (default: Table 2's 4000)")
    parser.add_argument("--seeds", default="5", help="seed count or list (default: 5)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel runs (default: the number of cores)")
    parser.add_argument("--max-replicas", type=int, default=MAX_REPLICAS,
                        help="the most seeds of one method and setting trained together as "
                        f"one replicated run (default: {MAX_REPLICAS}; 1: one run per seed)")
    args = parser.parse_args()
    reproduce_all(out=args.out, iterations=args.iterations, seeds=args.seeds,
                  workers=args.workers, max_replicas=args.max_replicas, echo=True)
    print((args.out / "README.md").read_text())


if __name__ == "__main__":  # required: the process pool starts workers with "spawn"
    main()
