"""The command line: a tiny training run writes its run directory, --help documents every
TrainConfig field, bad input exits 2 with a message, ``list`` shows the registries."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch

import marl_tr
from marl_tr import DIVERGENCES, POLICIES, PRESETS, RADIUS_SCHEDULERS, SOLVERS
from marl_tr.cli import main
from marl_tr.config import TrainConfig
from marl_tr.training.run_dir import read_metrics


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run every command in a scratch directory (the CLI's default run dir is ./runs)."""
    monkeypatch.chdir(tmp_path)


def per_agent_columns(i: int) -> list[str]:
    return [f"radius_{i}", f"divergence_{i}", f"constraint_ratio_{i}", f"improvement_{i}",
            f"moved_{i}", f"backtracks_{i}", f"step_fraction_{i}", f"mean_0_{i}", f"std_0_{i}"]


def test_train_writes_config_metrics_and_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    status = main(["train", "--iterations", "5", "--env-kwargs", "n=2", "--seed", "1",
                   "--run-dir", str(run)])
    assert status == 0
    out = capsys.readouterr().out
    assert "5 iterations in" in out and f"run directory: {run}" in out
    assert "seed 1: final means " in out and "; expected reward " in out

    config = TrainConfig.from_yaml(run / "config.yaml")
    assert (config.iterations, config.seed, config.env_kwargs) == (5, 1, {"n": 2})
    assert (config.divergence, config.solver) == ("kl", "natural_gradient")  # resolved
    rows = read_metrics(run / "metrics.csv")
    assert len(rows) == 5
    assert [row["iteration"] for row in rows] == [0, 1, 2, 3, 4]
    columns = list(rows[0])
    assert columns[:7] == ["iteration", "replica", "seed", "reward_mean", "episode_return_mean",
                           "critic_loss", "order"]
    assert {row["replica"] for row in rows} == {0} and {row["seed"] for row in rows} == {1}
    assert set(per_agent_columns(0) + per_agent_columns(1)) <= set(columns)
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    assert checkpoint["iteration"] == 5 and len(checkpoint["policies"]) == 2

    # the same settings through the Python API give the same metrics, byte for byte
    marl_tr.train(config.replace(run_dir=str(tmp_path / "api")))
    assert (run / "metrics.csv").read_text() == (tmp_path / "api" / "metrics.csv").read_text()


def test_train_flags_of_every_kind(tmp_path):
    run = tmp_path / "run"
    status = main(["train", "--preset", "wmatrpo-caatr", "--iterations", "2",
                   "--env-kwargs", "n=3,sigma=(1,3,1)", "--normalize-advantages", "false",
                   "--policy-hidden", "()", "--max-log-factor", "none", "--no-tensorboard",
                   "--dtype", "float64", "--run-dir", str(run)])
    assert status == 0
    config = TrainConfig.from_yaml(run / "config.yaml")
    assert config.preset == "wmatrpo-caatr" and config.solver == "primal_dual"
    assert config.normalize_advantages is False
    assert config.max_log_factor is None
    assert list(config.env_kwargs["sigma"]) == [1, 3, 1]
    assert config.dtype == "float64"


@pytest.mark.parametrize(("word", "value"), [("no", False), ("OFF", False), ("0", False),
                                             ("yes", True), ("on", True)])
def test_on_off_options_read_the_usual_words(tmp_path, word, value):
    run = tmp_path / "run"
    assert main(["train", "--iterations", "0", "--value-norm", word, "--run-dir", str(run)]) == 0
    assert TrainConfig.from_yaml(run / "config.yaml").value_norm is value


def test_train_from_a_config_file_with_overrides(tmp_path):
    TrainConfig(preset="hatrpo", env_kwargs={"n": 2}, iterations=50, seed=4).to_yaml(
        tmp_path / "base.yaml")
    assert main(["train", "--config", str(tmp_path / "base.yaml"), "--iterations", "3",
                 "--run-dir", str(tmp_path / "run")]) == 0
    config = TrainConfig.from_yaml(tmp_path / "run" / "config.yaml")
    assert (config.preset, config.iterations, config.seed) == ("hatrpo", 3, 4)
    assert len(read_metrics(tmp_path / "run" / "metrics.csv")) == 3


def test_resume_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "hatrpo", "--iterations", "3", "--env-kwargs", "n=2",
                 "--run-dir", str(run)]) == 0
    provenance = (run / "config.yaml").read_text().splitlines()[0]
    assert provenance.startswith("# set by the preset hatrpo: divergence, radius")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--iterations", "6"]) == 0
    assert len(read_metrics(run / "metrics.csv")) == 6
    # the speed is this session's: its time over its 3 iterations, not over all 6
    assert re.search(r"^6 iterations \(3 of them in this session\) in [\d.]+ s \([\d.]+ "
                     r"ms/iteration\)$", capsys.readouterr().out, re.MULTILINE)
    assert (run / "config.yaml").read_text().splitlines()[0] == provenance
    assert main(["train", "--resume", str(run), "--iterations", "8", "--seed", "9"]) == 2
    assert "marl-tr: error: cannot change ['seed'] when resuming" in capsys.readouterr().err
    assert len(read_metrics(run / "metrics.csv")) == 6


def test_help_lists_every_config_field(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in TrainConfig.field_names():
        assert f"--{name.replace('_', '-')}" in out, name
    assert "--resume" in out and "--config" in out
    assert "(default: 200)" in out  # iterations
    assert "(default: the preset's, else 'kl')" in " ".join(out.split())  # a preset field


@pytest.mark.parametrize(("argv", "message"), [
    (["--divergence", "nope"], "Unknown divergence 'nope'. Available: "
     + ", ".join(DIVERGENCES.names())),
    (["--preset", "hatrpoo"], "Unknown preset 'hatrpoo'. Did you mean 'hatrpo'?"),
    (["--divergence", "w1", "--solver", "natural_gradient"],
     "needs a divergence that is smooth at identity"),
    (["--batch-size", "30", "--num-envs", "7"], "batch_size (30) must be a multiple of "
     "num_envs (7)"),
    (["--env", "DiffGame-v9"], "Unknown environment 'DiffGame-v9'. Did you mean 'DiffGame-v0'?"),
    (["--iterations", "-2"], "iterations must be an integer >= 0, got -2"),
    (["--env-kwargs", "n=3,sigmaa=1"], "unknown keyword argument(s) 'sigmaa'"),
    (["--policy", "categorical"], "policy 'categorical' needs Discrete actions"),
    (["--resume", "missing-dir"], "missing-dir"),
])
def test_bad_input_exits_2_with_the_message(tmp_path, capsys, argv, message):
    status = main(["train", *argv])
    assert status == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("marl-tr: error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "runs").exists()  # refused before any work


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--iterations", "abc"], "invalid int value: 'abc'"),
    (["train", "--policy-hidden", "x,y"], "expected layer sizes"),
    (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["list", "things"], "invalid choice: 'things'"),
])
def test_unparseable_arguments_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_python_m_marl_tr_list_shows_every_registered_name():
    out = subprocess.run([sys.executable, "-m", "marl_tr", "list"], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    for section, registry in [("divergences", DIVERGENCES), ("radius", RADIUS_SCHEDULERS),
                              ("solvers", SOLVERS), ("presets", PRESETS),
                              ("policies", POLICIES)]:
        assert f"{section}:" in out
        block = out.split(f"{section}:", 1)[1].split(":\n", 1)[0]
        entries = [line for line in block.splitlines()[1:]  # continuation lines: deeper
                   if line.startswith("  ") and not line.startswith("   ")]
        listed = [line.split()[0] for line in entries[:len(registry)]]
        assert listed == registry.names(), section
    assert "envs:" in out
    for env_id in ("DiffGame-v0", "ClimbingGame-v0", "PenaltyGame-v0"):
        assert f"  {env_id}" in out


def test_list_one_registry(capsys):
    assert main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "presets:"
    entries = [line for line in out.splitlines()[1:]  # continuation lines are indented deeper
               if line.startswith("  ") and not line.startswith("   ")]
    assert [line.split()[0] for line in entries] == PRESETS.names()
    assert "divergences:" not in out
