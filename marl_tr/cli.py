"""Command line: ``marl-tr`` (or ``python -m marl_tr``).

    marl-tr train --preset wmatrpo-caatr --env DiffGame-v0 --env-kwargs n=7 --seed 0
    marl-tr train --divergence js --radius kkt --solver natural_gradient
    marl-tr train --resume runs/my-run --iterations 2000
    marl-tr list                      # every registered divergence, scheduler, solver, ...
    marl-tr sweep --presets hatrpo,wmatrpo-caatr --seeds 5 --grid n=3,5   # see experiments
    marl-tr reproduce table3 --out results/table3                         # and figure1, ...
    marl-tr convert-checkpoint --trust runs/old-run   # a checkpoint from before format 1

Every ``TrainConfig`` field is a ``--flag``; ``marl-tr train --help`` documents them all.
Everything is validated before any work starts, output paths included. Every error the user
can cause ends the command with one line on stderr (``marl-tr: error: ...``): exit status 2
for refused input (bad values, paths, configs, run directories, checkpoints), 1 for a
``TrainingError`` during the run (with the checkpointed iteration), 130 for Ctrl-C (after a
checkpoint). ``marl-tr --debug ...`` or ``MARL_TR_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import os
import sys
import time
import types
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from marl_tr.config import LIBRARY_DEFAULTS, TrainConfig
from marl_tr.registry import parse_kwargs, parse_value

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and exit status 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parser(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else parse(text)

    parser.__name__ = getattr(parse, "__name__", "value")
    return parser


def _sizes(text: str) -> tuple[int, ...]:
    value = parse_value(text) if text.strip() else ()
    if isinstance(value, int):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) for v in value):
        raise argparse.ArgumentTypeError(f"expected layer sizes like 64,64 or (), got {text!r}")
    return tuple(value)


def _kwargs(text: str) -> dict[str, Any]:
    try:
        return parse_kwargs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _field_parser(hint: Any) -> tuple[Callable[[str], Any] | None, bool]:
    """(value parser, is_bool) for a resolved dataclass field type."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    base = hint
    if optional:
        base = next(a for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(base)
    if base is bool:
        return (_optional(lambda t: bool(parse_value(t))) if optional else None), True
    if origin is tuple:
        parse: Callable[[str], Any] = _sizes
    elif origin is dict:
        parse = _kwargs
    elif base in (int, float, str):
        parse = base
    else:  # pragma: no cover - every field type is covered above
        parse = str
    return (_optional(parse) if optional else parse), False


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training options (TrainConfig fields)")
    hints = typing.get_type_hints(TrainConfig)
    for item in dataclasses.fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata.get("help", "")
        if item.name in LIBRARY_DEFAULTS:
            help_text += f" (default: the preset's, else {LIBRARY_DEFAULTS[item.name]!r})"
        elif item.default is not dataclasses.MISSING:
            help_text += f" (default: {item.default!r})"
        parse, is_bool = _field_parser(hints[item.name])
        help_text = help_text.replace("%", "%%")
        if is_bool and parse is None:
            group.add_argument(flag, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        elif is_bool:
            group.add_argument(flag, type=parse, default=argparse.SUPPRESS, metavar="BOOL",
                               help=help_text)
        else:
            group.add_argument(flag, type=parse, default=argparse.SUPPRESS,
                               metavar=item.name.upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="marl-tr", description="Trust-region multi-agent RL: one sequential loop, "
        "pluggable divergences, radius schedulers and solvers.",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also: MARL_TR_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train", help="train with the sequential trust-region loop",
        description="Train with the sequential trust-region loop. Options left out take the "
        "preset's value, else the library default.",
    )
    train.add_argument("--config", type=Path, default=None,
                       help="a config.yaml to start from (flags override it)")
    train.add_argument("--resume", type=Path, default=None,
                       help="continue the run in this directory from its checkpoint "
                       "(only --iterations and logging/checkpoint options may change; the "
                       "checkpoint must match config.yaml, the env and metrics.csv)")
    train.add_argument("--import", dest="imports", action="append", default=[],
                       metavar="MODULE",
                       help="import MODULE first (it may register plug-ins); a resumed "
                       "config may only name plug-in modules imported so. Repeatable")
    _add_config_arguments(train)
    train.set_defaults(handler=_train)

    convert = commands.add_parser(
        "convert-checkpoint", help="convert a trusted checkpoint written before format 1",
        description="Convert DIR/checkpoint.pt, written by marl_tr before checkpoint format "
        "1 (a plain pickle), into the current format, which loads without running code. "
        "Only for a run directory you trust: the converted checkpoint is stamped as "
        "belonging to DIR/config.yaml. The old file is kept as checkpoint.legacy.pt.")
    convert.add_argument("run_dir", type=Path, metavar="DIR", help="the run directory")
    convert.add_argument("--trust", action="store_true",
                         help="required: you trust this run directory")
    convert.set_defaults(handler=_convert)

    listing = commands.add_parser("list", help="list registered plug-ins and environments")
    listing.add_argument("what", nargs="?", default="all",
                         choices=("all", "divergences", "radius", "solvers", "presets",
                                  "policies", "envs"))
    listing.set_defaults(handler=_list)

    from marl_tr.experiments.cli import add_experiment_commands

    add_experiment_commands(commands)  # sweep, reproduce
    return parser


def _default_run_dir(config: TrainConfig) -> str:
    name = (config.preset or "custom").replace(":", "_").replace(",", "_")
    env = config.env.replace(":", "_").replace("/", "_")
    base = Path("runs") / f"{name}_{env}_s{config.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    path, count = base, 1
    while path.exists():  # two runs started in the same second
        count += 1
        path = base.with_name(f"{base.name}-{count}")
    return str(path)


def _import_modules(names: Sequence[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"--import {name}: cannot import it ({exc})") from None


def _train(args: argparse.Namespace) -> int:
    from marl_tr.api import train
    from marl_tr.training.run_dir import read_config

    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("command", "handler", "config", "resume", "imports", "debug")}
    _import_modules(args.imports)
    if args.resume is not None:
        result = train(resume=args.resume, **overrides)
    else:
        base = read_config(args.config, "--config") if args.config else TrainConfig()
        config = base.replace(**overrides)
        if config.run_dir is None:
            config = config.replace(run_dir=_default_run_dir(config))
        if "log_interval" not in overrides and config.log_interval == 0:
            config = config.replace(log_interval=max(1, config.iterations // 10))
        result = train(config)
    _print_summary(result)
    return 0


def _print_summary(result: Any) -> None:
    config = result.config
    print(f"preset {config.preset or '(none: library defaults)'}: divergence "
          f"{config.divergence}, radius {config.radius}, solver {config.solver}")
    iterations = max(1, config.iterations)
    together = f" x {config.replicas} replicas stepped together" if config.replicas > 1 else ""
    print(f"{config.iterations} iterations{together} in {result.wall_time:.2f} s "
          f"({1e3 * result.wall_time / iterations:.3f} ms/iteration)")
    game = result.game
    if game is not None and hasattr(game, "peak_rewards"):
        peaks = ", ".join(f"{k} {v:.4f}" for k, v in game.peak_rewards().items())
        print(f"peak rewards: {peaks} (higher: {game.higher_peak()})")
    for single in result.split():
        with contextlib.suppress(ValueError):  # not state-independent Gaussian policies
            means = " ".join(f"{m:.3f}" for m in single.final_means().ravel())
            stds = " ".join(f"{s:.4f}" for s in single.final_stds().ravel())
            line = f"seed {single.config.seed}: final means {means}; stds {stds}"
            with contextlib.suppress(ValueError):  # no analytic expected reward
                line += f"; expected reward {single.expected_reward():.4f}"
            print(line)
    if result.run_dir is not None:
        print(f"run directory: {result.run_dir}")


def _convert(args: argparse.Namespace) -> int:
    from marl_tr.api import convert_checkpoint

    backup = convert_checkpoint(args.run_dir, trust=args.trust)
    print(f"converted {args.run_dir / 'checkpoint.pt'} (the old file is kept as {backup}); "
          f"resume with: marl-tr train --resume {args.run_dir}")
    return 0


def _list(args: argparse.Namespace) -> int:
    import marl_tr

    registries = {
        "divergences": marl_tr.DIVERGENCES, "radius": marl_tr.RADIUS_SCHEDULERS,
        "solvers": marl_tr.SOLVERS, "presets": marl_tr.PRESETS, "policies": marl_tr.POLICIES,
    }
    for name, registry in registries.items():
        if args.what not in ("all", name):
            continue
        print(f"{name}:")
        for entry in registry.names():
            doc = (registry.get(entry).__doc__ or "").strip().splitlines()
            print(f"  {entry:<18} {doc[0] if doc else ''}")
    if args.what in ("all", "envs"):
        import gymnasium as gym

        import marl_tr_envs  # noqa: F401

        print("envs:")
        for env_id, spec in sorted(gym.registry.items()):
            if str(spec.entry_point).startswith("marl_tr_envs"):
                print(f"  {env_id}")
    return 0


def _one_line(exc: BaseException) -> str:
    """An exception's message (and notes) on one line."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    parts = [str(message), *getattr(exc, "__notes__", ())]
    text = " ".join(line.strip() for part in parts for line in str(part).splitlines())
    return text.strip() or type(exc).__name__


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    text = " ".join(str(message).split())
    print(f"marl-tr: warning: {text}", file=sys.stderr)


def _debug(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("MARL_TR_DEBUG", "").strip() \
        not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status.

    Errors the user can cause (bad values, paths, YAML, run directories, checkpoints) print
    one line and return 2; a ``TrainingError`` prints one line and returns 1; Ctrl-C returns
    130. ``--debug`` or ``MARL_TR_DEBUG=1`` lets the exception through (with its traceback).
    """
    import yaml

    from marl_tr.training.loop import TrainingError

    parser = build_parser()
    args = parser.parse_args(argv)
    if _debug(args):
        return int(args.handler(args))
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.handler(args))
        except KeyboardInterrupt as exc:
            detail = _one_line(exc) if str(exc) else "stopped"
            print(f"marl-tr: interrupted: {detail}", file=sys.stderr)
            return 130
        except TrainingError as exc:
            print(f"marl-tr: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        except (ValueError, KeyError, TypeError, OSError, yaml.YAMLError) as exc:
            print(f"marl-tr: error: {_one_line(exc)}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
