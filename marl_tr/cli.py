"""Command line: ``marl-tr`` (or ``python -m marl_tr``).

    marl-tr train --preset wmatrpo-caatr --env DiffGame-v0 --env-kwargs n=7 --seed 0
    marl-tr train --divergence js --radius kkt:divergence=js --solver natural_gradient
    marl-tr train --resume runs/my-run --iterations 2000
    marl-tr list                      # every plug-in: summary, options and their defaults
    marl-tr sweep --presets hatrpo,wmatrpo-caatr,sb3:ppo --seeds 5 --grid n=3,5   # experiments
    marl-tr reproduce table3 --out results/table3                         # and figure1, ...
    marl-tr convert-checkpoint --trust runs/old-run   # a checkpoint from before format 1
    marl-tr train --import my_divergences --divergence mean_shift   # a plug-in of yours

Every ``TrainConfig`` field is a ``--flag``; ``marl-tr train --help`` documents them all, and
every command's ``--help`` ends with examples. Every command takes ``--import MODULE``
(repeatable) and runs with the working directory first on ``sys.path`` and the
``marl_tr.plugins`` entry points loaded (``marl_tr.plugins``), so a user's plug-ins can be
named. On a terminal a run shows a progress bar once it has taken ``api.PROGRESS_DELAY``
seconds.
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
import inspect
import os
import re
import sys
import textwrap
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from marl_tr.api import PROGRESS_DELAY
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


#: The words an on/off option takes on the command line.
_BOOL_WORDS = {"true": True, "false": False, "yes": True, "no": False, "on": True,
               "off": False, "1": True, "0": False}


def _bool(text: str) -> bool:
    value = _BOOL_WORDS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(_BOOL_WORDS)} or none, got {text!r}")
    return value


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
        return (_optional(_bool) if optional else None), True
    if origin is tuple:
        parse: Callable[[str], Any] = _sizes
    elif origin is dict:
        parse = _kwargs
    elif base in (int, float, str):
        parse = base
    else:  # pragma: no cover - every field type is covered above
        parse = str
    return (_optional(parse) if optional else parse), False


#: Help of fields whose command-line behaviour differs from the Python API's.
_CLI_HELP = {
    "log_interval": "print a progress line every this many iterations (0: never) (default: "
                    "every iterations/10; from Python: 0)",
    "run_dir": "directory for config.yaml, metrics.csv and checkpoint.pt (default: "
               "runs/<preset>_<env>_s<seed>_<date-time>; from Python: none, kept in memory)",
    "progress": "show a progress bar (default: on a terminal, once a run has taken "
                f"{PROGRESS_DELAY:g} s)",
}


def _field_help(item: dataclasses.Field) -> str:
    """A ``TrainConfig`` field's ``--help`` line: its help, without the ``preset.`` marker
    of preset fields, and its default (on the command line)."""
    if item.name in _CLI_HELP:
        return _CLI_HELP[item.name]
    help_text = str(item.metadata.get("help", ""))
    if help_text.startswith("preset."):
        help_text = help_text[len("preset."):].strip()
    if help_text.startswith("profile."):  # its values per profile are in the text
        help_text = help_text[len("profile."):].strip() + " (default: the preset's, else the " \
            "profile's)"
    elif item.name in LIBRARY_DEFAULTS:
        help_text += f" (default: the preset's, else {LIBRARY_DEFAULTS[item.name]!r})"
    elif item.default is not dataclasses.MISSING:
        help_text += f" (default: {item.default!r})"
    return help_text


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training options (TrainConfig fields)")
    hints = typing.get_type_hints(TrainConfig)
    for item in dataclasses.fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        help_text = _field_help(item)
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

    listing = commands.add_parser(
        "list", help="list registered plug-ins and environments, with their options",
        description="List every registered plug-in (yours too, with --import or an installed "
        "package's marl_tr.plugins entry point): its name, aliases, one-line summary and "
        "options with their defaults, as config strings take them (name:key=value,...); "
        "and the environments with their keywords.")
    listing.add_argument("what", nargs="?", default="all", choices=("all", *_LISTED),
                         help="one kind only (default: all)")
    listing.set_defaults(handler=_list)

    plot = commands.add_parser(
        "plot", help="draw learning curves of run directories (a PNG)",
        description="Draw a metric of metrics.csv against env steps for every run directory "
        "given: the seeds (replicas, runs) of one setting as their mean with a band of one "
        "standard deviation. Needs matplotlib (the [plot] extra).")
    plot.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                      help="run directories (config.yaml and metrics.csv)")
    plot.add_argument("--metric", default="episode_return_mean",
                      help="a column of metrics.csv (default: episode_return_mean; also "
                      "episode_return_team, eval_return_mean, reward_mean, ...)")
    plot.add_argument("--out", type=Path, default=Path("learning_curves.png"),
                      metavar="FILE.png", help="the PNG to write (default: learning_curves.png)")
    plot.add_argument("--x", default="env_steps", choices=("env_steps", "iteration"),
                      help="the horizontal axis (default: env_steps)")
    plot.set_defaults(handler=_plot)

    from marl_tr.experiments.cli import EXAMPLES, add_experiment_commands

    add_experiment_commands(commands)  # sweep, reproduce
    _finish_commands(parser, {**_EXAMPLES, **EXAMPLES})
    return parser


#: ``--help`` examples by command path (``reproduce table3`` is ``("reproduce", "table3")``).
_EXAMPLES: dict[tuple[str, ...], str] = {
    ("train",): """\
  marl-tr train                                    # HATRPO settings, 3 agents, 200 iterations
  marl-tr train --preset wmatrpo-caatr --env-kwargs n=7 --seed 0
  marl-tr train --divergence js --radius kkt:divergence=js --solver natural_gradient
  marl-tr train --preset hatrpo --replicas 10 --iterations 4000   # seeds 0-9 stepped together
  marl-tr train --preset hatrpo --env ClimbingGame-v0 --progress true
  marl-tr train --import my_divergences --divergence mean_shift   # in ./my_divergences.py
  marl-tr train --solver my_solvers:MyAscent:lr=0.1        # a class by module path
  marl-tr train --run-dir runs/demo --iterations 100
  marl-tr train --resume runs/demo --iterations 300        # continue it exactly""",
    ("convert-checkpoint",): """\
  marl-tr convert-checkpoint --trust runs/old-run
  marl-tr train --resume runs/old-run --iterations 8000    # then resume it""",
    ("list",): """\
  marl-tr list                              # everything
  marl-tr list solvers                      # one kind, with each one's options and defaults
  marl-tr list baselines                    # the SB3 reference learners (sb3:ppo, ...)
  marl-tr list divergences --import my_divergences   # your own plug-ins too""",
    ("plot",): """\
  marl-tr plot runs/demo                                   # learning_curves.png
  marl-tr plot runs/a runs/b --metric reward_mean --x iteration --out curves.png""",
}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _finish_commands(parser: argparse.ArgumentParser,
                     examples: dict[tuple[str, ...], str],
                     path: tuple[str, ...] = ()) -> None:
    """On every command (``marl-tr X`` and ``marl-tr reproduce Y``): the examples of its
    ``--help``, and ``--import MODULE`` on each one that runs something."""
    for name, sub in _subparsers(parser).items():
        here = (*path, name)
        sub.formatter_class = argparse.RawDescriptionHelpFormatter  # keeps the examples
        if sub.description:
            sub.description = textwrap.fill(" ".join(sub.description.split()), width=78)
        if here in examples:
            sub.epilog = "examples:\n" + examples[here]
        if _subparsers(sub):
            _finish_commands(sub, examples, here)
        elif not any("--import" in action.option_strings for action in sub._actions):
            sub.add_argument(
                "--import", dest="imports", action="append", default=[], metavar="MODULE",
                help="import MODULE first: a module of yours (the working directory is on "
                "the path) that registers plug-ins, whose names then work here; a resumed "
                "config may only name plug-in modules imported so. Repeatable")


def _default_run_dir(config: TrainConfig) -> str:
    name = (config.preset or "custom").replace(":", "_").replace(",", "_")
    env = config.env.replace(":", "_").replace("/", "_")
    base = Path("runs") / f"{name}_{env}_s{config.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    path, count = base, 1
    while path.exists():  # two runs started in the same second
        count += 1
        path = base.with_name(f"{base.name}-{count}")
    return str(path)


def _refuse_baseline(preset: str | None) -> None:
    """A baseline (``sb3:ppo``) is not a preset of the loop: say where it runs."""
    from marl_tr.baselines import is_baseline

    if preset is not None and is_baseline(preset):
        raise ValueError(
            f"{preset!r} is a baseline (a centralised learner outside the trust-region loop), "
            f"not a preset: run it where presets are compared, e.g. marl-tr sweep --presets "
            f"hatrpo,{preset} (or marl_tr.baselines.train_baseline in Python)")


def _train(args: argparse.Namespace) -> int:
    from marl_tr.api import train
    from marl_tr.training.run_dir import read_config

    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("command", "handler", "config", "resume", "imports", "debug")}
    _refuse_baseline(overrides.get("preset"))
    if args.resume is not None:
        if args.config:
            raise ValueError(
                f"--config {args.config} cannot be used with --resume: a resumed run keeps "
                f"the config.yaml in {args.resume}; give what may change (such as "
                "--iterations) as flags")
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
    timed = result.timed_iterations
    together = f" x {config.replicas} replicas stepped together" if config.replicas > 1 else ""
    session = (f" ({timed} of them in this session)" if timed != config.iterations else "")
    print(f"{config.iterations} iterations{together}{session} in {result.wall_time:.2f} s "
          f"({1e3 * result.wall_time / max(1, timed):.3f} ms/iteration)")
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
    from marl_tr.api import return_summary

    for line in return_summary(result):  # multi-step envs: the episode return
        print(line)
    if result.run_dir is not None:
        print(f"run directory: {result.run_dir}")


def _plot(args: argparse.Namespace) -> int:
    from marl_tr.experiments.plot import learning_curves

    out = learning_curves(args.run_dirs, metric=args.metric, out=args.out, x=args.x)
    print(f"learning curves of {args.metric}: {out}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from marl_tr.api import convert_checkpoint

    backup = convert_checkpoint(args.run_dir, trust=args.trust)
    print(f"converted {args.run_dir / 'checkpoint.pt'} (the old file is kept as {backup}); "
          f"resume with: marl-tr train --resume {args.run_dir}")
    return 0


#: The kinds ``marl-tr list`` shows, in order.
_LISTED = ("divergences", "radius", "solvers", "presets", "critics", "policies", "baselines",
           "envs")
#: Constructor arguments that are not options (the loop passes them).
_NOT_OPTIONS = frozenset({"replicas", "generators", "obs_dim", "act_dim", "num_actions"})


#: A full stop that ends a sentence: not after "eq", "eqs", "al", "e.g", "i.e", "cf", "vs",
#: and followed by a capital (or a bracket or quote).
_SENTENCE_END = re.compile(
    r"(?<!\beq)(?<!\beqs)(?<!\bal)(?<!e\.g)(?<!i\.e)(?<!\bcf)(?<!\bvs)\.\s+(?=[A-Z(`\"'])")


def _summary(cls: type) -> str:
    """A plug-in's one-line summary: its ``summary`` attribute, else the first sentence of
    its docstring (whole, however the docstring wraps it)."""
    summary = getattr(cls, "summary", "")
    if isinstance(summary, str) and summary.strip():
        return summary.strip()
    paragraph = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
    end = _SENTENCE_END.search(paragraph)
    return paragraph if end is None else paragraph[: end.start() + 1]


def _options(function: Any, skip: frozenset[str] = _NOT_OPTIONS) -> str:
    """``name=default, ...`` of a constructor's keyword options (``name`` alone: required),
    written as config strings take them."""
    from marl_tr.registry import format_value

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return ""
    parts = []
    for item in parameters:
        if item.kind not in (item.POSITIONAL_OR_KEYWORD, item.KEYWORD_ONLY) \
                or item.name in skip:
            continue
        parts.append(item.name if item.default is item.empty
                     else f"{item.name}={format_value(item.default)}")
    return ", ".join(parts)


def _print_entry(name: str, summary: str, options: str) -> None:
    print(textwrap.fill(summary or "-", width=100, initial_indent=f"  {name:<20} ",
                        subsequent_indent=" " * 23))
    if options:
        print(textwrap.fill(options, width=100, initial_indent=" " * 23 + "options: ",
                            subsequent_indent=" " * 32))


def _list(args: argparse.Namespace) -> int:
    import marl_tr
    from marl_tr.baselines import BASELINES
    from marl_tr.critics import CRITICS

    registries = {
        "divergences": marl_tr.DIVERGENCES, "radius": marl_tr.RADIUS_SCHEDULERS,
        "solvers": marl_tr.SOLVERS, "presets": marl_tr.PRESETS, "critics": CRITICS,
        "policies": marl_tr.POLICIES, "baselines": BASELINES,
    }
    for kind, registry in registries.items():
        if args.what not in ("all", kind):
            continue
        print(f"{kind}:")
        aliases: dict[str, list[str]] = {}
        for alias, canonical in registry.aliases().items():
            aliases.setdefault(canonical, []).append(alias)
        for entry in registry.names():
            cls = registry.get(entry)
            label = entry + (f" ({', '.join(sorted(aliases[entry]))})" if entry in aliases
                             else "")
            _print_entry(label, _summary(cls), _options(cls))
    if args.what in ("all", "envs"):
        import marl_tr_envs
        from marl_tr_envs.shells.episode import EpisodeSettings

        print("envs:")
        episode = _options(EpisodeSettings)
        for env_id, entry in marl_tr_envs.SUITE.items():
            game = entry.gym_class.game_class
            options = ", ".join(part for part in (_options(game) if game else "", episode)
                                if part)
            _print_entry(env_id, _summary(game) if game else "", options)
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


@contextlib.contextmanager
def _plugins(args: argparse.Namespace) -> Iterator[None]:
    """While a command runs: the working directory first on ``sys.path`` (as for ``python
    -m``), the ``marl_tr.plugins`` entry points loaded and the ``--import`` modules imported
    (and recorded for worker processes); the path and the record are restored afterwards."""
    from marl_tr import plugins

    path, recorded = list(sys.path), os.environ.get(plugins.IMPORTS_VARIABLE)
    try:
        plugins.add_working_directory()
        plugins.load_entry_points()
        plugins.import_modules(getattr(args, "imports", None) or [])
        yield
    finally:
        sys.path[:] = path
        if recorded is None:
            os.environ.pop(plugins.IMPORTS_VARIABLE, None)
        else:
            os.environ[plugins.IMPORTS_VARIABLE] = recorded


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
        with _plugins(args):
            return int(args.handler(args))
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            with _plugins(args):
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
