"""Training on MPE (the [mpe] extra) with the multi_step defaults: the return improves over a
short budget (fixed seeds, thresholds from measured runs); runs resume exactly, with sync and
async copies; the CLI names the task by its short name and reports the episode return."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpe2")

import marl_tr
from marl_tr.cli import main

#: the profile's defaults, with a budget a test can afford
SMALL = dict(env="simple_spread", env_kwargs={"continuous_actions": True, "max_cycles": 5},
             batch_size=40, num_envs=4, eval_interval=2, eval_episodes=2, seed=3)


def improvement(result) -> float:
    returns = result.column("episode_return_mean")
    return float(returns[-3:].mean() - returns[:2].mean())


def test_the_defaults_learn_discrete_speaker_listener():
    """Measured (seed 0): the mean return of the first two iterations -37.2, of the last
    three -25.7 (an improvement of 11.5); the test asks for 5."""
    result = marl_tr.train(env="simple_speaker_listener", iterations=10, batch_size=1000,
                           seed=0)
    config = result.config
    assert (config.profile, config.policy_hidden, config.critic_optimizer, config.value_norm,
            config.num_envs) == ("multi_step", (64, 64), "adam", True, 20)
    assert [type(p).__name__ for p in result.policies] == ["CategoricalPolicy"] * 2
    assert improvement(result) > 5.0


def test_the_defaults_learn_continuous_spread():
    """One agent and one landmark, continuous actions. Measured (seed 0): from -13.6 (first
    two iterations) to -10.9 (last three): 2.6 better; the test asks for 1.3."""
    result = marl_tr.train(env="simple_spread", env_kwargs={"continuous_actions": True, "N": 1},
                           iterations=10, batch_size=1000, seed=0)
    assert improvement(result) > 1.3


@pytest.mark.slow
def test_hatrpo_learns_three_agent_continuous_spread():
    """The issue's setting (3 agents, continuous, 4,000 env steps per iteration), 30
    iterations: measured (seed 0) from -26.0 (first two) to -22.6 (last three)."""
    result = marl_tr.train(env="simple_spread", env_kwargs={"continuous_actions": True},
                           preset="hatrpo", iterations=30, seed=0)
    assert improvement(result) > 2.5


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_mpe_runs_resume_exactly(tmp_path, vectorization):
    """The copies' states travel in the checkpoint (plain data, weights_only): the resumed
    run's metrics.csv is the uninterrupted run's, byte for byte, with evaluations."""
    config = dict(SMALL, vectorization=vectorization)
    marl_tr.train(iterations=5, run_dir=str(tmp_path / "full"), **config)
    marl_tr.train(iterations=3, run_dir=str(tmp_path / "part"), **config)
    other = "sync" if vectorization == "async" else "async"  # the same batches: may change
    marl_tr.train(resume=tmp_path / "part", iterations=5, vectorization=other)
    full = (tmp_path / "full" / "metrics.csv").read_text()
    assert full == (tmp_path / "part" / "metrics.csv").read_text()
    assert "eval_return_mean" in full.splitlines()[0]
    assert (tmp_path / "part" / "run.log").read_text().startswith(
        "resumed at iteration 3: exactly")


def test_async_mpe_training_gives_the_sync_run():
    sync = marl_tr.train(iterations=2, **SMALL)
    spawned = marl_tr.train(iterations=2, vectorization="async", **SMALL)
    assert len(sync.metrics) == 2
    for a, b in zip(sync.metrics, spawned.metrics):
        assert a.keys() == b.keys()
        np.testing.assert_array_equal([a[k] for k in a if k != "order"],
                                      [b[k] for k in b if k != "order"])


def test_cli_trains_an_mpe_task_by_short_name(tmp_path, capsys):
    run = tmp_path / "run"
    status = main(["train", "--env", "simple_spread", "--env-kwargs",
                   "continuous_actions=true,max_cycles=5", "--batch-size", "40", "--num-envs",
                   "4", "--iterations", "2", "--run-dir", str(run), "--preset", "ippo"])
    out = capsys.readouterr().out
    assert status == 0
    assert "return " in out.splitlines()[0]  # the progress line shows the episode return
    assert "seed 0: episode return " in out and " per agent, " in out
    assert (run / "config.yaml").read_text().count("critic: v_local") == 1
