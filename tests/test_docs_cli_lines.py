"""Every ``marl-tr`` line of README.md and docs/extending.md runs as written, with tiny budgets.

The lines are the ones in ``bash`` code blocks that start with ``marl-tr``. They run in order,
one document at a time, in a scratch directory that holds the example modules of
docs/extending.md (each ``python`` block whose first line is ``# name.py``), through
``marl_tr.cli.main`` in one fresh Python process (which keeps plug-ins registered there out of
this test session). The only changes: ``--iterations N`` becomes ``ceil(N / 1000)`` (a resumed
run still continues), ``--set iterations=N`` becomes 1, ``--seeds N`` becomes 1 and
``--replicas N`` 2; a train, sweep or reproduce line without ``--iterations`` gets
``--iterations 1``, a sweep or reproduce line ``--workers 1``. Each line must exit 0.

The default suite runs the ``train`` and ``list`` lines (fast); ``-m slow`` runs all of them.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", ROOT / "docs" / "extending.md")


def cli_lines(path: Path) -> list[str]:
    """The ``marl-tr`` lines of ``path``'s bash blocks, comments dropped, in order."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["marl-tr"]:
                lines.append(shlex.join(words))
    return lines


def example_modules() -> dict[str, str]:
    """The example modules of docs/extending.md: ``{file name: code}``."""
    text = (ROOT / "docs" / "extending.md").read_text()
    modules = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        match = re.fullmatch(r"# (\w+\.py)", block.splitlines()[0].strip())
        if match:
            modules[match.group(1)] = block
    return modules


def shrink(line: str) -> list[str]:
    """``line``'s arguments (after ``marl-tr``) with the budgets of the module docstring."""
    words = shlex.split(line)[1:]
    out: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("--iterations", "--seeds", "--replicas") and index + 1 < len(words):
            value = words[index + 1]
            small = {"--iterations": str(max(1, math.ceil(int(value) / 1000))),
                     "--seeds": "1", "--replicas": "2"}[word]
            out += [word, small]
            index += 2
            continue
        if word.startswith("iterations=") and out[-1:] == ["--set"]:
            word = "iterations=1"
        out.append(word)
        index += 1
    command = out[0] if out else ""
    sets_iterations = any(w.startswith("iterations=") for w in out)
    if command in ("train", "sweep", "reproduce") and "--iterations" not in out \
            and "--resume" not in out and not sets_iterations:
        out += ["--iterations", "1"]
    if command in ("sweep", "reproduce") and "--workers" not in out:
        out += ["--workers", "1"]
    return out


RUNNER = """
import contextlib, io, json, sys
from marl_tr.cli import main

results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    results.append({"argv": argv, "status": status, "out": out.getvalue()[-1500:],
                    "err": err.getvalue()[-1500:]})
print("RESULTS " + json.dumps(results))
"""


def run_lines(lines: list[str], tmp_path: Path) -> list[dict]:
    for name, code in example_modules().items():
        (tmp_path / name).write_text(code)
    argvs = [shrink(line) for line in lines]
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(argvs)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):])


def assert_all_ran(results: list[dict]) -> None:
    failed = [r for r in results if r["status"] != 0]
    assert not failed, "\n".join(
        f"marl-tr {shlex.join(r['argv'])} -> {r['status']}: {r['err']}" for r in failed)


def test_the_documents_have_cli_lines_and_shrink_keeps_them_runnable():
    readme, extending = (cli_lines(path) for path in DOCS)
    assert "marl-tr train" in readme and "marl-tr list" in readme
    assert any(line.startswith("marl-tr reproduce variants") for line in readme)
    assert any("sb3:ppo" in line for line in readme)
    assert any("--import my_divergences --divergence mean_shift" in line for line in extending)
    assert any(line.startswith("marl-tr train --import my_presets --preset js-trpo")
               for line in extending)
    assert set(example_modules()) == {"my_divergences.py", "my_radius.py", "my_solvers.py",
                                      "my_presets.py", "my_envs.py"}
    assert shrink("marl-tr train --resume runs/demo --iterations 2000") == \
        ["train", "--resume", "runs/demo", "--iterations", "2"]
    assert shrink("marl-tr sweep --presets a,b --seeds 5 --set iterations=500") == \
        ["sweep", "--presets", "a,b", "--seeds", "1", "--set", "iterations=1", "--workers", "1"]
    assert shrink("marl-tr train") == ["train", "--iterations", "1"]


def _fast(line: str) -> bool:
    return line.startswith(("marl-tr train", "marl-tr list")) and "my_envs" not in line


def test_train_and_list_lines_of_the_documents_run(tmp_path):
    lines = [line for path in DOCS for line in cli_lines(path) if _fast(line)]
    lines = list(dict.fromkeys(lines))  # README repeats two lines of docs/extending.md
    assert len(lines) >= 15
    results = run_lines(lines, tmp_path)
    assert_all_ran(results)
    by_line = {shlex.join(r["argv"]): r for r in results}
    listing = by_line["list divergences --import my_divergences"]["out"]
    assert "mean_shift" in listing and "options: scale=1.0" in listing
    resumed = by_line["train --resume runs/demo --iterations 2"]["out"]
    assert "run directory: runs/demo" in resumed


@pytest.mark.slow
@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_cli_line_of_the_document_runs(path, tmp_path):
    results = run_lines(cli_lines(path), tmp_path)
    assert_all_ran(results)
    assert len(results) == len(cli_lines(path))
