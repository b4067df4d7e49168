"""Every error a user can cause ends ``marl-tr`` with one line on stderr and exit status 2,
before any file is written (output paths are checked up front); a TrainingError exits 1 with
one line; ``--debug`` / ``MARL_TR_DEBUG=1`` show the traceback; the Python API raises clear
``TypeError``s / ``ValueError``s naming the bad value."""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
from pathlib import Path

import pytest

import marl_tr
from marl_tr.cli import main
from marl_tr.training.run_dir import read_metrics


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("finished") / "done"
    marl_tr.train(env_kwargs={"n": 2}, iterations=3, run_dir=str(path))
    return path


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch, finished_run):
    """Every command runs in a scratch directory holding a file, a directory with a finished
    run, a bad YAML file and an empty directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MARL_TR_DEBUG", raising=False)
    Path("afile").write_text("not a directory\n")
    Path("bad.yaml").write_text("iterations: [3\n")
    Path("emptydir").mkdir()
    shutil.copytree(finished_run, "done")


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's own errors
        return int(exit_.code)


BAD_CLI = [
    # output paths, checked before any work
    (["train", "--iterations", "2", "--run-dir", "afile"],
     "run_dir must be a directory, but 'afile' is a file"),
    (["train", "--iterations", "2", "--run-dir", "afile/run"],
     "run_dir 'afile/run' cannot be created: 'afile' is a file, not a directory"),
    (["train", "--iterations", "2", "--run-dir", "done"],
     "run_dir 'done' already holds a run (checkpoint.pt, metrics.csv); continue it with "
     "resume='done' (marl-tr train --resume done)"),
    (["sweep", "--presets", "hatrpo", "--set", "iterations=2", "--out", "emptydir"],
     "--out must be a file, but 'emptydir' is a directory"),
    (["sweep", "--presets", "hatrpo", "--set", "iterations=2", "--out", "afile/results.csv"],
     "--out 'afile/results.csv' cannot be created: 'afile' is a file, not a directory"),
    (["reproduce", "table3", "--iterations", "2", "--seeds", "1", "--n", "3", "--out", "afile"],
     "--out must be a directory, but 'afile' is a file"),
    (["reproduce", "figure1", "--iterations", "2", "--out", "afile/sub"],
     "--out 'afile/sub' cannot be created: 'afile' is a file"),
    (["reproduce", "basin-gap", "--iterations", "2", "--out", "afile"],
     "--out must be a directory, but 'afile' is a file"),
    # config files
    (["train", "--config", "missing.yaml"], "--config file 'missing.yaml' does not exist"),
    (["train", "--config", "bad.yaml"], "'bad.yaml' is not valid YAML: "),
    (["train", "--config", "emptydir"], "--config file 'emptydir' is a directory"),
    # run directories and checkpoints
    (["train", "--resume", "afile"], "resume must be a run directory, but 'afile' is a file"),
    (["train", "--resume", "emptydir"], "'emptydir' is not a run directory: it has no "
     "config.yaml"),
    (["train", "--resume", "nowhere"], "no run directory 'nowhere'"),
    (["train", "--resume", "done", "--iterations", "1"],
     "iterations=1 is fewer than the 3 already done in 'done'"),
    (["train", "--resume", "done", "--seed", "4"], "cannot change ['seed'] when resuming"),
    (["train", "--resume", "done", "--iterations", "9", "--run-dir", "elsewhere"],
     "run_dir='elsewhere' differs from the run being resumed ('done'): a resumed run "
     "continues in its own directory"),
    (["train", "--resume", "done", "--iterations", "9", "--config", "bad.yaml"],
     "--config bad.yaml cannot be used with --resume: a resumed run keeps the config.yaml in "
     "done"),
    (["convert-checkpoint", "done"], "needs trust=True"),
    # values
    (["train", "--iterations", "abc"], "argument --iterations: invalid int value: 'abc'"),
    (["reproduce", "table3", "--iterations", "-5"],
     "argument --iterations: expected an integer >= 0, got '-5'"),
    (["reproduce", "matrix", "--batch-size", "0"],
     "argument --batch-size: expected an integer >= 1, got '0'"),
    (["sweep", "--presets", "hatrpo", "--iterations", "-5"],
     "argument --iterations: expected an integer >= 0, got '-5'"),
    (["train", "--divergence", "nope"], "Unknown divergence 'nope'"),
    (["train", "--env", "math:sqrt"], "env 'math:sqrt' must name a factory of PettingZoo "
     "ParallelEnvs"),
    (["train", "--env", "simple_spread", "--env-kwargs", "continuous_actions=no"],
     "env_kwargs continuous_actions='no': env 'simple_spread' takes true or false for "
     "continuous_actions"),
    (["train", "--env", "simple_spread", "--env-kwargs", "local_ratio=2"],
     "env 'simple_spread' with env_kwargs {'local_ratio': 2} could not be made: "
     "AssertionError: local_ratio is a proportion"),
    (["train", "--import", "no_such_module_xyz"], "--import no_such_module_xyz: cannot import"),
    (["train", "--checkpoint-seconds", "-1"], "checkpoint_seconds must be >= 0"),
    (["sweep"], "the following arguments are required: --presets"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_CLI, ids=[" ".join(a) for a, _ in BAD_CLI])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, message):
    before = tree(tmp_path)
    assert run_cli(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert re.match(r"marl-tr( [\w-]+)*: error: ", lines[0]), lines[0]
    assert message in lines[0]
    assert tree(tmp_path) == before  # refused before any file was written


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_directory_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert run_cli(["train", "--iterations", "2", "--run-dir", "locked/run"]) == 2
        assert "cannot be created: 'locked' is not writable" in capsys.readouterr().err
        assert run_cli(["reproduce", "table3", "--out", "locked"]) == 2
        assert "--out 'locked' is not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_an_output_directory_on_a_read_only_file_system_is_refused(tmp_path, capsys,
                                                                   monkeypatch):
    """Permission bits pass (as for a superuser, or a read-only mount): writing is probed,
    and refused before any training, naming the option and the reason."""
    from marl_tr.training import run_dir

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(run_dir.tempfile, "mkstemp", read_only)
    (tmp_path / "results").mkdir()
    before = tree(tmp_path)
    assert run_cli(["reproduce", "table3", "--iterations", "1", "--out", "results"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--out 'results' is not writable (read-only file system)")
    assert run_cli(["sweep", "--presets", "hatrpo", "--out", "new/sweep.csv"]) == 2
    assert ("--out 'new/sweep.csv' cannot be created: '.' is not writable (read-only file "
            "system)") in capsys.readouterr().err
    assert run_cli(["train", "--iterations", "1", "--run-dir", "run"]) == 2
    assert "run_dir 'run' cannot be created" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_a_training_error_is_one_line_exit_1_naming_the_checkpoint(capsys, monkeypatch):
    from marl_tr_envs import DiffGameVectorEnv

    original = DiffGameVectorEnv.step
    calls = []

    def step(self, actions):
        calls.append(1)
        obs, rewards, terminated, truncated, infos = original(self, actions)
        if len(calls) == 3:
            rewards = rewards.copy()
            rewards[1] = math.nan
        return obs, rewards, terminated, truncated, infos

    monkeypatch.setattr(DiffGameVectorEnv, "step", step)
    assert run_cli(["train", "--iterations", "6", "--run-dir", "nan"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("marl-tr: error: iteration 2: ")
    assert lines[0].endswith("the checkpoint in 'nan' holds iteration 2 (the last good one): "
                             "once the cause is fixed, resume with marl-tr train --resume nan")
    assert len(read_metrics("nan/metrics.csv")) == 2


def test_a_repair_on_resume_is_a_one_line_warning(capsys, monkeypatch):
    with Path("done/metrics.csv").open("ab") as handle:
        handle.write(b"3,0,0,0.5")  # a torn row past the checkpoint
    assert run_cli(["train", "--resume", "done", "--iterations", "4"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["marl-tr: warning: 'done/metrics.csv': dropped a torn last row; the run "
                   "continues from iteration 3"]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_exception(monkeypatch, how):
    argv = ["train", "--iterations", "-2"]
    if how == "flag":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("MARL_TR_DEBUG", "1")
    with pytest.raises(ValueError, match="iterations must be an integer >= 0, got -2"):
        main(argv)


# ---------------------------------------------------------------------------------------
# the Python API
# ---------------------------------------------------------------------------------------
BAD_API = [
    ((("hatrpo",), {}), TypeError,
     r"config must be a TrainConfig, a dict of its fields or None, got 'hatrpo' \(str\); to "
     r"pick a preset write train\(preset='hatrpo'\)"),
    (((42,), {}), TypeError, r"config must be a TrainConfig, .* got 42 \(int\)"),
    (((), {"env": "math:sqrt"}), TypeError,
     r"env 'math:sqrt' must name a factory of PettingZoo ParallelEnvs that accepts env_kwargs "
     r"\{\}; calling it raised TypeError: .*sqrt"),
    (((), {"env": "math:pi"}), TypeError,
     r"env 'math:pi' must name a factory of PettingZoo ParallelEnvs, got a float"),
    (((), {"run_dir": 123}), TypeError,
     r"run_dir must be a path \(str or os\.PathLike\), got 123 \(int\)"),
    (((), {"run_dir": ""}), ValueError, r"run_dir must be a non-empty path, got ''"),
    (((), {"run_dir": "afile"}), ValueError, r"run_dir must be a directory, but 'afile' is a file"),
    (((), {"resume": 123}), TypeError, r"resume must be a path \(str or os\.PathLike\), got 123"),
    ((({"iterations": 2},), {"resume": "done"}), TypeError,
     r"a resumed run continues its saved config"),
    (((), {"checkpoint_interval": -1}), ValueError,
     r"checkpoint_interval must be an integer >= 0, got -1"),
    (((), {"checkpoint_seconds": math.nan}), ValueError, r"checkpoint_seconds must be finite"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_API,
                         ids=[f"{i}-{case[1].__name__}" for i, case in enumerate(BAD_API)])
def test_bad_api_input_is_a_clear_error_before_any_file_is_written(tmp_path, call, error,
                                                                   message):
    args, kwargs = call
    before = tree(tmp_path)
    with pytest.raises(error, match=message) as info:
        marl_tr.train(*args, **kwargs)
    assert "\n" not in str(info.value)
    assert tree(tmp_path) == before


def test_a_path_object_is_a_run_dir(tmp_path):
    result = marl_tr.train(env_kwargs={"n": 2}, iterations=2, run_dir=tmp_path / "p")
    assert result.config.run_dir == str(tmp_path / "p")
    assert len(read_metrics(tmp_path / "p" / "metrics.csv")) == 2
