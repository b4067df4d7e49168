"""The ``marl-tr sweep`` and ``marl-tr reproduce`` subcommands.

    marl-tr sweep --presets hatrpo,wmatrpo-caatr --seeds 5 --grid n=3,5 --set iterations=500 \\
        --out results/sweep.csv
    marl-tr reproduce table3 --seeds 5 --out results/table3
    marl-tr reproduce figure1 --out results/figure1
    marl-tr reproduce basin-gap --gaps 2,3,4 --sigmas paper 1.0 --out results/basin_gap
    marl-tr reproduce variants --presets "hatrpo;wmatrpo-caatr;sb3:ppo" --seeds 5
    marl-tr reproduce all --out results/all

Wherever presets are named, a baseline may be too: ``sb3:ppo``, ``sb3:a2c`` (Stable-Baselines3)
or ``sb3:trpo`` (sb3-contrib), a centralised learner on the joint view with the same env-step
budget (``marl_tr.baselines``; ``pip install "marl_tr[baselines]"``). Every command takes
``--import MODULE`` (added by ``marl_tr.cli``), so the plug-ins a module registers can be named.
``EXAMPLES`` holds each command's ``--help`` examples.

Seeds of one configuration are trained together as replicated runs of up to
``--max-replicas`` seeds (default 16; 1: one run per seed); rows do not depend on it. Interrupt
any of them (Ctrl-C) and rerun the same command: finished cells are kept and skipped.
``--out`` is checked before the first cell runs: ``sweep``'s must be a writable (or creatable)
file, ``reproduce``'s a writable (or creatable) directory; otherwise the command exits with
status 2 and one line naming the path. ``build_parser`` in ``marl_tr.cli`` registers them with
``add_experiment_commands``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from marl_tr.experiments.sweeps import MAX_REPLICAS
from marl_tr.registry import _split_top_level, parse_kwargs, parse_value
from marl_tr.training.run_dir import check_output_path

__all__ = ["EXAMPLES", "add_experiment_commands"]

#: ``--help`` examples by command path (``marl_tr.cli`` puts them in each command's epilog).
EXAMPLES: dict[tuple[str, ...], str] = {
    ("sweep",): """\
  marl-tr sweep --presets hatrpo,wmatrpo-caatr --seeds 5 --grid n=3,5 --out results/sweep.csv
  marl-tr sweep --presets hatrpo,sb3:ppo --seeds 3 --set iterations=500   # with a baseline
  marl-tr sweep --presets wmatrpo-caatr --grid "sigma=1.0,(1,3,1)" --set basin_gap=3
  marl-tr sweep --import my_presets --presets js-trpo --seeds 5   # a preset of ./my_presets.py
  marl-tr sweep --presets hatrpo --seeds 10 --workers 4 --max-replicas 5""",
    ("reproduce",): """\
  marl-tr reproduce table3 --seeds 10 --out results/table3
  marl-tr reproduce variants --presets "hatrpo;sb3:ppo;sb3:trpo"
  marl-tr reproduce all --iterations 50 --seeds 2 --out results/preview   # a quick preview""",
    ("reproduce", "table3"): """\
  marl-tr reproduce table3 --seeds 10 --out results/table3
  marl-tr reproduce table3 --n 3,5 --presets hatrpo,wmatrpo-caatr --iterations 1000""",
    ("reproduce", "variants"): """\
  marl-tr reproduce variants                       # the built-in list, n = 3, 5 seeds
  marl-tr reproduce variants --presets "hatrpo;wmatrpo-caatr;sb3:ppo;sb3:trpo" --n 3,5
  marl-tr reproduce variants --presets "wmatrpo-caatr:C=0.05;wmatrpo-caatr:C=0.1\"""",
    ("reproduce", "matrix"): """\
  marl-tr reproduce matrix --seeds 5 --out results/matrix
  marl-tr reproduce matrix --games ClimbingGame-v0 --presets "hatrpo;wmatrpo\"""",
    ("reproduce", "sensitivity"): """\
  marl-tr reproduce sensitivity --seeds 5 --out results/sensitivity
  marl-tr reproduce sensitivity --n 5 --presets hatrpo,wmatrpo-caatr""",
    ("reproduce", "figure1"): """\
  marl-tr reproduce figure1 --out results/figure1
  marl-tr reproduce figure1 --env-kwargs sigma=1.0 --seed 3 --out results/figure1_sigma1""",
    ("reproduce", "basin-gap"): """\
  marl-tr reproduce basin-gap --out results/basin_gap
  marl-tr reproduce basin-gap --gaps 2,3,4 --sigmas paper 1.0 --n 3,5""",
    ("reproduce", "all"): """\
  marl-tr reproduce all --out results/all
  marl-tr reproduce all --iterations 50 --seeds 2 --out results/preview   # a quick preview""",
}


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _grid_item(text: str) -> tuple[str, list[Any]]:
    key, value = _assignment(text)
    parts = [part for part in _split_top_level(value, ",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"no values in {text!r}")
    return key, [parse_value(part) for part in parts]


def _set_item(text: str) -> tuple[str, Any]:
    key, value = _assignment(text)
    return key, parse_value(value)


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 3,5,7, got {text!r}") from None


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


_positive = _at_least(1)
_non_negative = _at_least(0)


def _float_list(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 2,3,4, got {text!r}") from None


def _sigma(text: str) -> Any:
    if text.strip().lower() == "paper":
        return "paper"
    values = _float_list(text)
    return values[0] if len(values) == 1 else values


def _names(text: str) -> list[str]:
    return [part.strip() for part in _split_top_level(text, ",") if part.strip()]


def _kwargs(text: str) -> dict[str, Any]:
    try:
        return parse_kwargs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_run_options(parser: argparse.ArgumentParser, *, backend: bool = True) -> None:
    group = parser.add_argument_group("how to run")
    group.add_argument("--workers", type=int, default=None,
                       help="parallel runs (jobs) (default: the number of cores; 1: in this "
                       "process)")
    if backend:
        group.add_argument("--backend", choices=("local", "ray"), default="local",
                           help="local process pool, or Ray Tune trials (pip install "
                           "'marl_tr[ray]') (default: local)")
        group.add_argument("--ray-address", default=None,
                           help="a running Ray cluster (--backend ray; default: a local one)")
        group.add_argument("--max-replicas", type=_positive, default=MAX_REPLICAS,
                           help="the most consecutive seeds of one configuration trained "
                           "together as one replicated run (a job; rows do not depend on it); "
                           f"1: one run per seed (default: {MAX_REPLICAS})")
        group.add_argument("--quiet", action="store_true", help="no per-job progress lines")
        group.add_argument("--reuse-other-code", action="store_true",
                           help="reuse finished cells made by other code (another source "
                           "fingerprint; the pages mark them); default: recompute them")


#: Table 3's methods, as its ``--presets`` help names them (a test keeps this equal to
#: ``paper.TABLE3_METHODS``; the parser does not import the experiments).
TABLE3_METHOD_NAMES = ("hatrpo", "hatrpo-caatr", "wmatrpo-caatr", "hatrpo-tr", "wmatrpo-tr-caatr",
                       "wmatrpo-dual-caatr", "wmatrpo-dual-caatr:critic=oracle_q")


def _add_budget(parser: argparse.ArgumentParser, *, seeds: bool = True,
                presets: str | None = None) -> None:
    """Iterations, batch size, and as asked ``--seeds`` and ``--presets`` (whose help ends
    with ``presets``)."""
    group = parser.add_argument_group("budget (Table 2 by default)")
    group.add_argument("--iterations", type=_non_negative, default=4000,
                       help="training iterations per run (default: 4000)")
    group.add_argument("--batch-size", type=_positive, default=30,
                       help="joint transitions per iteration (default: 30)")
    if seeds:
        group.add_argument("--seeds", default="5",
                           help="a count (5 = seeds 0-4), a range 3-7 or a list 0,4,9 "
                           "(default: 5; at least 5 for the real table)")
    if presets:
        group.add_argument("--presets", type=_names, default=None,
                           help=f"comma-separated presets, {presets}")


def _run_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"workers": args.workers, "max_replicas": args.max_replicas, "backend": args.backend,
            "ray_address": args.ray_address, "echo": not args.quiet,
            "reuse_other_code": args.reuse_other_code}


def _optional(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _guarded(handler: Callable[[argparse.Namespace], int],
             out: str = "dir") -> Callable[..., int]:
    """Check ``--out`` before any work (a ``out`` file or directory); exit 130 on Ctrl-C
    (finished cells kept) and 1 on failed cells, with one line on stderr."""

    def run(args: argparse.Namespace) -> int:
        if getattr(args, "out", None) is not None:
            check_output_path("--out", args.out, kind="file" if out == "file" else "dir")
        try:
            return handler(args)
        except KeyboardInterrupt:
            print("\ninterrupted: finished cells are kept; rerun the same command to resume",
                  file=sys.stderr)
            return 130
        except RuntimeError as exc:
            print(f"marl-tr: {' '.join(str(exc).split())}", file=sys.stderr)
            return 1

    return run


# -- handlers ------------------------------------------------------------------------------------
def _sweep(args: argparse.Namespace) -> int:
    from marl_tr.experiments.report import fmt, fmt_vector, markdown_table
    from marl_tr.experiments.sweeps import sweep

    grid = dict(args.grid or [])
    fixed = dict(args.set or [])
    if args.iterations is not None:
        fixed["iterations"] = args.iterations
    outcome = sweep(args.presets, args.seeds, env=args.env, grid=grid, fixed=fixed,
                    results=args.out, **_run_kwargs(args))
    print(markdown_table(
        ["preset", "env kwargs", "overrides", "seed", "final means", "distance", "E[r]",
         "return", "left basin", "ratio mean / max", "wall s"],
        [[row["preset"], str(row["env_kwargs"]), str(row["overrides"]), str(row["seed"]),
          fmt_vector(row["final_means"]), fmt(row["distance"]), fmt(row["expected_reward"], 4),
          fmt(row.get("final_return_mean"), 3),  # the episode return (multi-step envs)
          fmt(row["left_basin_fraction"], 2),
          f"{fmt(row['overshoot_mean'], 2)} / {fmt(row['overshoot_max'], 2)}",
          fmt(row["wall_time"], 1)] for row in outcome.rows],
    ))
    print(f"\n{len(outcome.ran)} cell(s) run in {len(outcome.jobs)} job(s), "
          f"{len(outcome.skipped)} already finished; results: {outcome.path}")
    for key, message in outcome.failed.items():
        print(f"FAILED {key}: {message}", file=sys.stderr)
    return 1 if outcome.failed else 0


def _print_experiment(result: Any) -> None:
    print(result.markdown)
    for kind, path in result.files.items():
        print(f"{kind}: {path}")


def _table3(args: argparse.Namespace) -> int:
    from marl_tr.experiments.paper import reproduce_table3

    result = reproduce_table3(iterations=args.iterations, batch_size=args.batch_size,
                              seeds=args.seeds, out=args.out, **_optional(args, "n", "presets"),
                              **_run_kwargs(args))
    _print_experiment(result)
    return 0


def _variants(args: argparse.Namespace) -> int:
    from marl_tr.experiments.paper import reproduce_variants

    presets = {} if args.presets is None else {"presets": args.presets}
    result = reproduce_variants(iterations=args.iterations, batch_size=args.batch_size,
                                seeds=args.seeds, out=args.out, n=args.n, **presets,
                                **_run_kwargs(args))
    _print_experiment(result)
    return 0


def _matrix(args: argparse.Namespace) -> int:
    from marl_tr.experiments.paper import reproduce_matrix_games

    result = reproduce_matrix_games(iterations=args.iterations, batch_size=args.batch_size,
                                    seeds=args.seeds, out=args.out,
                                    **_optional(args, "presets", "games"), **_run_kwargs(args))
    _print_experiment(result)
    return 0


def _sensitivity(args: argparse.Namespace) -> int:
    from marl_tr.experiments.paper import reproduce_sensitivity

    result = reproduce_sensitivity(iterations=args.iterations, batch_size=args.batch_size,
                                   seeds=args.seeds, out=args.out, n=args.n,
                                   **_optional(args, "presets"), **_run_kwargs(args))
    _print_experiment(result)
    return 0


def _basin_gap(args: argparse.Namespace) -> int:
    from marl_tr.experiments.paper import reproduce_basin_gap

    result = reproduce_basin_gap(
        iterations=args.iterations, batch_size=args.batch_size, seeds=args.seeds,
        out=args.out, **_optional(args, "n", "presets", "gaps", "sigmas"), **_run_kwargs(args))
    _print_experiment(result)
    return 0


def _figure1(args: argparse.Namespace) -> int:
    from marl_tr.experiments.figure import reproduce_figure1

    figure = reproduce_figure1(iterations=args.iterations, batch_size=args.batch_size,
                               seed=args.seed, out=args.out, workers=args.workers,
                               env_kwargs=args.env_kwargs,
                               **_optional(args, "presets"))
    print((figure.files["markdown"]).read_text())
    for kind, path in figure.files.items():
        print(f"{kind}: {path}")
    return 0


def _all(args: argparse.Namespace) -> int:
    from marl_tr.experiments.reproduce import reproduce_all

    reproduce_all(out=args.out, iterations=args.iterations, batch_size=args.batch_size,
                  seeds=args.seeds, **_run_kwargs(args))
    print(f"written: {Path(args.out) / 'README.md'} (and table3/, figure1/, basin_gap/)")
    return 0


# -- registration ---------------------------------------------------------------------------------
def _add_sweep(commands: Any) -> None:
    parser = commands.add_parser(
        "sweep", help="run presets x seeds x grids, resumable, in parallel",
        description="Run every cell of presets x seeds x grid (env keywords and TrainConfig "
        "fields) and append each finished cell to one results CSV; a rerun skips finished "
        "cells. Everything is checked before the first run.",
    )
    parser.add_argument("--presets", type=_names, required=True,
                        help="comma-separated presets or baselines, e.g. "
                        "hatrpo,wmatrpo-caatr,sb3:ppo (marl-tr list presets, marl-tr list "
                        "baselines)")
    parser.add_argument("--seeds", default="1",
                        help="a count (5 = seeds 0-4), a range 3-7 or a list 0,4,9 (default: 1)")
    parser.add_argument("--env", default="DiffGame-v0", help="env id (default: DiffGame-v0)")
    parser.add_argument("--grid", type=_grid_item, action="append", metavar="KEY=V1,V2",
                        help="sweep KEY over values (an env keyword or a TrainConfig field); "
                        "brackets group: sigma=(1,3,1),1.0 is two values. Repeatable")
    parser.add_argument("--set", type=_set_item, action="append", metavar="KEY=VALUE",
                        help="fix KEY to one value in every cell (sigma=(1,3,1) is one "
                        "value). Repeatable")
    parser.add_argument("--iterations", type=_non_negative, default=None,
                        help="training iterations per cell (default: TrainConfig's)")
    parser.add_argument("--out", type=Path, default=Path("results/sweep.csv"),
                        help="the results CSV (default: results/sweep.csv)")
    _add_run_options(parser)
    parser.set_defaults(handler=_guarded(_sweep, out="file"))


def _add_reproduce(commands: Any) -> None:
    parser = commands.add_parser(
        "reproduce", help="reproduce the paper: table3, variants, matrix, sensitivity, "
        "figure1, basin-gap or all",
        description="Reproduce the paper's experiments (Table 2's settings by default).",
    )
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")

    table3 = targets.add_parser("table3", help="Table 3: 3 methods x n = 3, 5, 7, 9 x seeds",
                                description="Table 3 (resumable: rerun to continue).")
    _add_budget(table3, presets=f"some of Table 3's methods: {', '.join(TABLE3_METHOD_NAMES)} "
                "(default: all)")
    table3.add_argument("--n", type=_int_list, default=None,
                        help="team sizes, some of 3,5,7,9 (default: all)")
    table3.add_argument("--out", type=Path, default=Path("results/table3"),
                        help="output directory (default: results/table3)")
    _add_run_options(table3)
    table3.set_defaults(handler=_guarded(_table3))

    variants = targets.add_parser(
        "variants", help="the paper's methods, PPO baselines and W-MATRPO variants side by side",
        description="Presets compared on the paper's game and budget (resumable).")
    _add_budget(variants)
    variants.add_argument("--n", type=_int_list, default=[3],
                          help="team sizes (default: 3)")
    variants.add_argument("--presets", type=lambda text: [p for p in text.split(";") if p],
                          default=None, help="preset or baseline config strings separated by "
                          "';', e.g. 'hatrpo;sb3:ppo' (default: the built-in list of "
                          "variants)")
    variants.add_argument("--out", type=Path, default=Path("results/variants"),
                          help="output directory (default: results/variants)")
    _add_run_options(variants)
    variants.set_defaults(handler=_guarded(_variants))

    matrix = targets.add_parser(
        "matrix", help="the climbing and penalty games: KL and W1 trust regions on discrete "
        "actions", description="Categorical policies on the matrix games (resumable).")
    _add_budget(matrix)
    matrix.add_argument("--games", type=_names, default=None,
                        help="comma-separated games (default: ClimbingGame-v0,PenaltyGame-v0)")
    matrix.add_argument("--presets", type=lambda text: [p for p in text.split(";") if p],
                        default=None, help="preset config strings separated by ';' "
                        "(default: the built-in list)")
    matrix.add_argument("--out", type=Path, default=Path("results/matrix"),
                        help="output directory (default: results/matrix)")
    _add_run_options(matrix)
    matrix.set_defaults(handler=_guarded(_matrix))

    sensitivity = targets.add_parser(
        "sensitivity", help="which presets' per-seed numbers survive float32 -> float64",
        description="Every seed in float32 and in float64: stable presets' per-seed numbers "
        "reproduce, chaotic presets' only as distributions over seeds (resumable).")
    _add_budget(sensitivity, presets="any (default: Table 3's methods)")
    sensitivity.add_argument("--n", type=_positive, default=3, help="team size (default: 3)")
    sensitivity.add_argument("--out", type=Path, default=Path("results/sensitivity"),
                             help="output directory (default: results/sensitivity)")
    _add_run_options(sensitivity)
    sensitivity.set_defaults(handler=_guarded(_sensitivity))

    figure1 = targets.add_parser("figure1", help="Figure 1: 2-agent paths over the contours",
                                 description="Figure 1: the 2-agent game, one run per method.")
    _add_budget(figure1, seeds=False,
                presets="any (default: the paper's hatrpo, hatrpo-caatr, wmatrpo-caatr)")
    figure1.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    figure1.add_argument("--env-kwargs", type=_kwargs, default=None,
                         help="game keywords besides n=2, e.g. sigma=1.0")
    figure1.add_argument("--out", type=Path, default=Path("results/figure1"),
                         help="output directory (default: results/figure1)")
    _add_run_options(figure1, backend=False)
    figure1.set_defaults(handler=_guarded(_figure1))

    gap = targets.add_parser(
        "basin-gap", help="which presets reach the truly higher peak, by basin_gap and sigma",
        description="Vary basin_gap and sigma; report which presets reach the higher peak "
        "(judged by expected reward).")
    _add_budget(gap, presets="any (default: hatrpo, hatrpo-caatr, wmatrpo-caatr, "
                "wmatrpo-tr-caatr, wmatrpo-dual-caatr and its critic=oracle_q variant)")
    gap.add_argument("--gaps", type=_float_list, default=None,
                     help="basin_gap values (default: 2,3,4)")
    gap.add_argument("--sigmas", type=_sigma, nargs="+", default=None,
                     help="far-bump widths: 'paper', one number for every agent, or per-agent "
                     "numbers 1,3,1 (default: paper 1.0)")
    gap.add_argument("--n", type=_int_list, default=None, help="team size(s) (default: 3)")
    gap.add_argument("--out", type=Path, default=Path("results/basin_gap"),
                     help="output directory (default: results/basin_gap)")
    _add_run_options(gap)
    gap.set_defaults(handler=_guarded(_basin_gap))

    everything = targets.add_parser("all", help="all of the above into one directory",
                                    description="Table 3, the variants, the matrix games, the "
                                    "precision study, Figure 1 and the basin-gap study, with an "
                                    "index README.md.")
    _add_budget(everything)
    everything.add_argument("--out", type=Path, default=Path("results/all"),
                            help="output directory (default: results/all; the committed "
                            "pages are made with --out docs/results)")
    _add_run_options(everything)
    everything.set_defaults(handler=_guarded(_all))


def add_experiment_commands(commands: Any) -> None:
    """Register ``sweep`` and ``reproduce`` on ``marl-tr``'s subparsers."""
    _add_sweep(commands)
    _add_reproduce(commands)
