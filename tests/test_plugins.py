"""Plug-ins from the command line: ``--import`` on every command, the working directory on the
path for ``module:Class`` strings (without ``PYTHONPATH``), the ``marl_tr.plugins`` entry
points, and the record that sweep workers read. Each scenario runs in a fresh Python process,
so the plug-ins it registers stay out of this test session."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from marl_tr import plugins
from marl_tr.cli import build_parser

MODULE = textwrap.dedent('''
    from marl_tr.presets import PRESETS, Preset


    @PRESETS.register("{name}")
    class Renamed(Preset):
        """HATRPO under another name."""

        def __init__(self, delta: float = 0.05) -> None:
            self.delta = delta

        def settings(self, n_agents):
            return {{"divergence": "kl", "radius": f"fixed:delta={{self.delta}}",
                    "solver": "natural_gradient"}}
''')

#: Runs ``marl_tr.cli.main`` as the console script does: without the working directory (or
#: "") on ``sys.path``, unlike ``python -c`` and ``python -m``.
CONSOLE = textwrap.dedent('''
    import contextlib, io, json, os, sys
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    from marl_tr.cli import main
    for argv in json.loads(sys.argv[1]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(argv)
        print(json.dumps({"status": status, "out": out.getvalue()}))
''')


def console(tmp_path: Path, *argvs: list[str], env: dict[str, str] | None = None) -> list[dict]:
    import json

    done = subprocess.run([sys.executable, "-c", CONSOLE, json.dumps(argvs)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_module_paths_import_and_entry_points_work_as_the_console_script(tmp_path):
    site = tmp_path / "site"  # an "installed" package declaring a marl_tr.plugins entry point
    (site / "demo_marl_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "demo_marl_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: demo-marl-plugin\nVersion: 0.1\n")
    (site / "demo_marl_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[marl_tr.plugins]\ndemo = demo_marl_plugin\n")
    (site / "demo_marl_plugin.py").write_text(MODULE.format(name="entry-point-hatrpo"))
    work = tmp_path / "work"  # the user's directory, with a module of theirs
    work.mkdir()
    (work / "team_presets.py").write_text(MODULE.format(name="renamed-hatrpo"))
    unknown, by_path, listed, imported = console(
        work,
        ["train", "--preset", "renamed-hatrpo", "--iterations", "2", "--run-dir", "a"],
        ["train", "--preset", "team_presets:Renamed:delta=0.02", "--iterations", "2",
         "--run-dir", "b"],
        ["list", "presets", "--import", "team_presets"],
        ["train", "--import", "team_presets", "--preset", "renamed-hatrpo:delta=0.03",
         "--iterations", "2", "--run-dir", "c"],
        env={"PYTHONPATH": str(site)},
    )
    # not imported yet: refused before any work
    assert unknown["status"] == 2 and not (work / "a").exists()
    # found in the working directory without PYTHONPATH
    assert by_path["status"] == 0 and "radius fixed:delta=0.02" in by_path["out"]
    assert listed["status"] == 0
    for name in ("renamed-hatrpo", "entry-point-hatrpo"):
        assert name in listed["out"]
    assert "HATRPO under another name." in listed["out"] and "options: delta=0.05" in listed["out"]
    assert imported["status"] == 0 and "radius fixed:delta=0.03" in imported["out"]
    assert (work / "c" / "metrics.csv").exists()


def test_every_command_takes_import():
    def leaves(parser, path=()):
        from marl_tr.cli import _subparsers

        children = _subparsers(parser)
        if not children:
            yield path, parser
        for name, child in children.items():
            yield from leaves(child, (*path, name))

    found = dict(leaves(build_parser()))
    assert {("train",), ("list",), ("sweep",), ("convert-checkpoint",),
            ("reproduce", "variants"), ("reproduce", "all")} <= set(found)
    for path, parser in found.items():
        (action,) = [a for a in parser._actions if "--import" in a.option_strings]
        assert (action.dest, action.default, action.metavar) == ("imports", [], "MODULE"), path
        assert isinstance(action, argparse._AppendAction), path
    for argv in (["train"], ["list", "solvers"], ["sweep", "--presets", "hatrpo"],
                 ["reproduce", "variants"], ["convert-checkpoint", "x"]):
        args = build_parser().parse_args([*argv, "--import", "a", "--import", "b"])
        assert args.imports == ["a", "b"], argv


def test_import_modules_records_for_workers_and_refuses_a_missing_module(monkeypatch):
    monkeypatch.delenv(plugins.IMPORTS_VARIABLE, raising=False)
    assert plugins.import_modules(["json", "csv"]) == ["json", "csv"]
    plugins.import_modules(["json"])
    assert os.environ[plugins.IMPORTS_VARIABLE] == "json,csv"
    plugins.load_requested()  # a worker: imports what is recorded (already imported here)
    with pytest.raises(ValueError, match=r"--import no_such_module_q: cannot import it .*a file "
                       r"no_such_module_q\.py in the working directory"):
        plugins.import_modules(["no_such_module_q"])


def test_a_module_that_fails_on_import_is_one_line_naming_where(tmp_path, monkeypatch, capsys):
    from marl_tr.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(plugins.IMPORTS_VARIABLE, raising=False)
    (tmp_path / "broken_plugins_q.py").write_text("x = 1\nraise RuntimeError('boom')\n")
    assert main(["train", "--import", "broken_plugins_q", "--iterations", "1",
                 "--run-dir", "run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("marl-tr: error: --import broken_plugins_q: importing it raised "
                          "RuntimeError: boom (")
    assert "broken_plugins_q.py, line 2); fix the module" in err
    assert not (tmp_path / "run").exists()


def test_a_module_whose_dependency_is_missing_names_the_dependency(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.IMPORTS_VARIABLE, raising=False)
    (tmp_path / "needs_missing_q.py").write_text("import no_such_dependency_q\n")
    with pytest.raises(ValueError, match=r"^--import needs_missing_q: importing it failed: it "
                       r"imports 'no_such_dependency_q', which cannot be imported"):
        plugins.import_modules(["needs_missing_q"])


def test_main_restores_the_path_and_the_record(tmp_path, monkeypatch):
    from marl_tr.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(plugins.IMPORTS_VARIABLE, raising=False)
    before = list(sys.path)
    assert main(["list", "radius", "--import", "json"]) == 0
    assert sys.path == before and plugins.IMPORTS_VARIABLE not in os.environ


_BAD_SETTINGS: list = [None]  # what the preset below returns, set by the test


@pytest.mark.parametrize(("settings", "message"), [
    ({"divergnce": "js"}, r"preset 'bad_settings_q' sets 'divergnce' \(did you mean "
                          r"'divergence'\?\), which a preset cannot set; it sets divergence, "),
    ({"iterations": 3}, r"sets 'iterations', which a preset cannot set"),
    ([("divergence", "js")], r"settings\(\) must return a dict of field values, got list"),
])
def test_a_preset_that_sets_what_presets_cannot_is_refused(settings, message):
    """A misspelt or foreign key used to be dropped silently (the run got the defaults)."""
    import marl_tr
    from marl_tr.presets import PRESETS, Preset

    if "bad_settings_q" not in PRESETS:
        @PRESETS.register("bad_settings_q")
        class BadSettings(Preset):
            def settings(self, n_agents):
                return _BAD_SETTINGS[0]

    _BAD_SETTINGS[0] = settings
    with pytest.raises(ValueError, match=message):
        marl_tr.train(preset="bad_settings_q", iterations=1)
