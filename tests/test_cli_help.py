"""What the command line says about itself: help texts that match its behaviour, examples in
every command's ``--help`` (each one parses), ``marl-tr list`` with whole summaries and every
option's default, the progress bar's default, and the examples' scratch output."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import runpy
import shlex
from pathlib import Path

import pytest

import marl_tr
from marl_tr import api
from marl_tr.baselines import BASELINES
from marl_tr.cli import _subparsers, build_parser, main
from marl_tr.config import TrainConfig
from marl_tr.critics import CRITICS
from marl_tr.registry import format_value

ROOT = Path(__file__).resolve().parents[1]


def commands(parser=None, path=()):
    """Every command that runs something: ``(path, parser)``."""
    parser = parser or build_parser()
    children = _subparsers(parser)
    if not children:
        yield path, parser
    for name, child in children.items():
        yield from commands(child, (*path, name))


def field_help(name: str) -> str:
    parser = dict(commands())[("train",)]
    (action,) = [a for a in parser._actions if a.dest == name]
    return action.help.replace("%%", "%")


def test_help_texts_say_what_the_command_line_does():
    for item in dataclasses.fields(TrainConfig):
        assert not field_help(item.name).startswith("preset."), item.name
    assert "default: the preset's, else 'kl'" in field_help("divergence")
    assert "default: every iterations/10" in field_help("log_interval")
    assert "default: runs/<preset>_<env>_s<seed>_<date-time>" in field_help("run_dir")
    assert "None: keep in memory" not in field_help("run_dir")
    assert f"once a run has taken {api.PROGRESS_DELAY:g} s" in field_help("progress")


def test_every_command_has_examples_that_parse(capsys):
    found = dict(commands())
    assert {("train",), ("list",), ("sweep",), ("convert-checkpoint",), ("reproduce", "table3"),
            ("reproduce", "variants"), ("reproduce", "all")} <= set(found)
    for path, parser in found.items():
        text = parser.format_help()
        assert "examples:\n" in text, path
        lines = text.split("examples:\n", 1)[1].strip().splitlines()
        assert len(lines) >= 2, path
        assert shlex.split(lines[0])[1:len(path) + 1] == list(path), path
        for line in lines:
            words = shlex.split(line, comments=True)
            assert words[0] == "marl-tr", line
            build_parser().parse_args(words[1:])  # exits on an unparseable example


@pytest.mark.parametrize("kind", ["divergences", "radius", "solvers", "presets", "critics",
                                  "policies", "baselines"])
def test_list_shows_each_plug_ins_whole_summary_and_options(kind, capsys):
    registry = {"divergences": marl_tr.DIVERGENCES, "radius": marl_tr.RADIUS_SCHEDULERS,
                "solvers": marl_tr.SOLVERS, "presets": marl_tr.PRESETS, "critics": CRITICS,
                "policies": marl_tr.POLICIES, "baselines": BASELINES}[kind]
    assert main(["list", kind]) == 0
    text = " ".join(capsys.readouterr().out.split())  # undo the wrapping
    assert text.startswith(f"{kind}:")
    for name in registry.names():
        cls = registry.get(name)
        assert f" {name} " in text
        for option in inspect.signature(cls).parameters.values():
            if option.default is option.empty or option.name in ("replicas", "generators"):
                continue
            assert f"{option.name}={format_value(option.default)}" in text, (name, option)
    for cut in (" eq.", " eqs.", " et al.", "(eqs."):
        assert not any(line.rstrip().endswith(cut) for line in text.split(" options: ")), cut


def test_list_summaries_are_whole_sentences(capsys):
    assert main(["list", "radius"]) == 0
    out = capsys.readouterr().out
    assert "Coordination-aware adaptive trust region (eqs. 13-14, Algorithm 2)." in out
    assert main(["list", "envs"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "DiffGame-v0 The differential game of eq. 30:" in out
    assert "options: n=3, sigma=None" in out and "episode_length=1, reward_noise=0.0" in out
    assert "PenaltyGame-v0" in out and "k=-10.0" in out


class FakeStderr:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(("progress", "tty", "delay"), [
    (None, True, api.PROGRESS_DELAY), (None, False, None), (True, False, 0.0),
    (False, True, None),
])
def test_progress_bar_default_is_on_for_terminals_once_a_run_takes_a_while(
        monkeypatch, progress, tty, delay):
    monkeypatch.setattr(api.sys, "stderr", FakeStderr(tty))
    bar = api._progress_bar(TrainConfig(iterations=50, progress=progress), 0)
    if delay is None:
        assert bar is None
    else:
        assert bar.delay == delay and bar.total == 50
        bar.close()
    assert api._progress_bar(TrainConfig(iterations=5, progress=True), 5) is None  # done


def test_examples_write_under_a_scratch_directory_by_default():
    example = runpy.run_path(str(ROOT / "examples" / "reproduce_paper.py"))
    out = example["build_parser"]().parse_args([]).out
    assert out == Path("results") / "reproduce_paper"
    assert not out.is_absolute() and out.parts[0] == "results"  # ignored by git
    assert "/results/" in (ROOT / ".gitignore").read_text().split()
    everything = dict(commands())[("reproduce", "all")]
    assert everything.parse_args([]).out == Path("results/all")
    assert isinstance(everything, argparse.ArgumentParser)


def test_the_experiments_help_names_their_targets_and_default_presets():
    from marl_tr.experiments import paper
    from marl_tr.experiments.cli import TABLE3_METHOD_NAMES

    assert tuple(paper.TABLE3_METHODS) == TABLE3_METHOD_NAMES
    parsers = dict(commands())
    table3 = parsers[("reproduce", "table3")]
    (presets,) = [a for a in table3._actions if a.dest == "presets"]
    assert presets.help.endswith(f"{', '.join(paper.TABLE3_METHODS)} (default: all)")
    gap = parsers[("reproduce", "basin-gap")]
    (presets,) = [a for a in gap._actions if a.dest == "presets"]
    named = presets.help.split("default: ")[1]
    assert all(p.split(":")[0] in named for p in paper.BASIN_GAP_PRESETS)
    reproduce = _subparsers(build_parser())["reproduce"]
    targets = set(_subparsers(reproduce))
    (action,) = [a for a in build_parser()._subparsers._group_actions[0]._choices_actions
                 if a.dest == "reproduce"]
    assert all(target in action.help for target in targets), (targets, action.help)
