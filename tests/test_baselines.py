"""The SB3 baselines: a preset's row format and budget, values from the SB3 model itself and
the game's closed form, reproducible seeds, the sweep dispatch, and refusals before any
work."""

from __future__ import annotations

import inspect
import math
import random

import numpy as np
import pytest
import torch

from marl_tr.baselines import (
    BASELINES,
    Baseline,
    SB3Baseline,
    build_baseline,
    is_baseline,
    train_baseline,
)
from marl_tr.experiments.outcomes import measure
from marl_tr.experiments.results import COLUMNS, format_row, parse_row
from marl_tr.experiments.sweeps import Cell, run_cell, sweep

TINY = {"iterations": 3, "batch_size": 10}


@pytest.fixture(scope="module")
def ppo():
    return train_baseline("sb3:ppo", env_kwargs={"n": 3}, seed=5, **TINY)


def test_a_baseline_row_has_a_presets_columns_and_its_values(ppo):
    row = measure(ppo)
    preset = measure(__import__("marl_tr").train(preset="hatrpo", env_kwargs={"n": 3},
                                                 seed=5, **TINY))
    assert set(row) == set(preset)
    # the budget: iterations rollouts of batch_size joint transitions
    assert (row["iterations"], row["batch_size"], row["n_agents"]) == (3, 10, 3)
    assert [m["env_steps"] for m in ppo.metrics] == [10, 20, 30]
    for m in ppo.metrics:  # one-step episodes: one per transition, n agents share the reward
        assert (m["episodes"], m["episode_length_mean"]) == (10, 1.0)
        assert m["episode_return_mean"] == pytest.approx(m["reward_mean"], rel=1e-6)
        assert m["episode_return_team"] == pytest.approx(3 * m["episode_return_mean"],
                                                         rel=1e-12)
    # final means and stds are the SB3 policy's Gaussian at the episode's first observation
    model = ppo.model
    with torch.no_grad():
        obs, _ = model.policy.obs_to_tensor(np.zeros((1, 1), dtype=np.float32))
        dist = model.policy.get_distribution(obs).distribution
    means = dist.mean[0].double().numpy()
    stds = dist.stddev[0].double().numpy()
    np.testing.assert_array_equal(row["final_means"], means)
    np.testing.assert_array_equal(row["final_stds"], stds)
    game = ppo.game
    assert row["expected_reward"] == pytest.approx(
        game.expected_reward(means, stds, clip=True), rel=1e-12)
    # an independent check of the closed form: Monte Carlo through the env's clipping
    mc = game.expected_reward(means, stds, method="monte_carlo", num_samples=400_000, seed=1)
    assert row["expected_reward"] == pytest.approx(mc, abs=3e-3)
    assert row["distance"] == pytest.approx(math.dist(means, [5.0] * 3), rel=1e-12)
    assert row["final_reward_mean"] == ppo.metrics[-1]["reward_mean"]
    assert row["wall_time"] == ppo.wall_time > 0
    assert row["resolved_config"]["baseline"].startswith("sb3:ppo:learning_rate=0.0003")
    assert row["resolved_config"]["sb3"]["n_steps"] == 1  # num_envs = batch_size copies
    assert row["resolved_config"]["initial_means"] == [1.5, 1.5, 1.5]  # the presets' start
    assert math.isnan(row["overshoot_mean"])  # no trust region measured
    assert parse_row(format_row(row))["expected_reward"] == row["expected_reward"]


def test_start_is_the_presets_initial_policy(ppo):
    first = ppo.metrics[0]  # collected by the initial policy
    for i in range(3):
        assert first[f"mean_0_{i}"] == 1.5
        assert first[f"std_0_{i}"] == pytest.approx(0.5, rel=1e-6)
    sb3 = train_baseline("sb3:ppo:start=sb3", env_kwargs={"n": 2}, iterations=1, batch_size=4)
    assert sb3.metrics[0]["mean_0_0"] == 0.0 and sb3.metrics[0]["std_0_0"] == 1.0


def test_the_seed_reproduces_and_the_global_random_state_is_left_alone(ppo):
    random.seed(123)
    torch.manual_seed(123)
    before = (random.random(), torch.rand(1).item())
    random.seed(123)
    torch.manual_seed(123)
    again = train_baseline("sb3:ppo", env_kwargs={"n": 3}, seed=5, **TINY)
    assert (random.random(), torch.rand(1).item()) == before
    assert again.metrics == ppo.metrics
    np.testing.assert_array_equal(again.final_means(), ppo.final_means())
    other = train_baseline("sb3:ppo", env_kwargs={"n": 3}, seed=6, **TINY)
    assert other.metrics[0]["reward_mean"] != ppo.metrics[0]["reward_mean"]


def test_trpo_and_a2c_and_a_rollout_of_several_steps():
    trpo = train_baseline("sb3:trpo:target_kl=0.02", env_kwargs={"n": 2}, iterations=2,
                          batch_size=8, num_envs=2, seed=0)
    assert trpo.model.n_steps == 4 and trpo.model.target_kl == 0.02
    assert [m["env_steps"] for m in trpo.metrics] == [8, 16]
    a2c = train_baseline("sb3:a2c", env_kwargs={"n": 2, "episode_length": 3}, iterations=2,
                         batch_size=6, num_envs=2, seed=0)
    assert a2c.final_means().shape == (2, 1)
    for m in a2c.metrics:  # each rollout: one whole 3-step episode on each of 2 copies
        assert (m["episodes"], m["episode_length_mean"]) == (2, 3.0)
        assert m["episode_return_mean"] == pytest.approx(3 * m["reward_mean"], rel=1e-6)


def test_matrix_game_baseline_reports_the_payoff_expectation():
    result = train_baseline("sb3:ppo", env="ClimbingGame-v0", iterations=2, batch_size=8,
                            seed=0)
    probs = [p.probs for p in result.policies]
    assert [p.shape for p in probs] == [(3,), (3,)]
    np.testing.assert_allclose([p.sum() for p in probs], 1.0, rtol=1e-12)
    payoff = np.array([[11, -30, 0], [-30, 7, 6], [0, 0, 5]], dtype=float)
    assert result.expected_reward() == pytest.approx(probs[0] @ payoff @ probs[1], rel=1e-12)
    with pytest.raises(ValueError, match="discrete actions"):
        result.final_means()


def test_options_default_to_sb3s_own_defaults():
    from sb3_contrib import TRPO
    from stable_baselines3 import A2C, PPO

    for name, cls in (("sb3:ppo", PPO), ("sb3:a2c", A2C), ("sb3:trpo", TRPO)):
        baseline = BASELINES.build(name)
        sb3 = inspect.signature(cls).parameters
        for option in type(baseline).sb3_options:
            assert getattr(baseline, option) == sb3[option].default, (name, option)
        assert baseline.hidden == (64, 64)  # SB3's MlpPolicy net_arch


@pytest.mark.parametrize("name", BASELINES.names())
def test_conformance_spec_round_trips(name):
    baseline = BASELINES.build(name)
    assert isinstance(baseline, (Baseline, SB3Baseline))
    assert BASELINES.build(baseline.spec()) == baseline
    changed = BASELINES.build(f"{name}:learning_rate=0.01,hidden=(16,)")
    assert BASELINES.build(changed.spec()) == changed != baseline


@pytest.mark.parametrize(("spec", "expected"), [
    ("sb3:ppo", True), ("sb3:ppo:n_epochs=5", True), ("sb3:dqn", True), ("SB3:PPO", True),
    ("hatrpo", False), ("wmatrpo-caatr:C=0.05", False),
    ("wmatrpo-caatr:solver='primal_dual:inner_steps=10'", False),
    ("marl_tr.baselines.sb3:SB3PPO", True), ("marl_tr.presets:HATRPO", False), ("", False),
])
def test_is_baseline(spec, expected):
    assert is_baseline(spec) is expected


@pytest.mark.parametrize(("fields", "match"), [
    ({"baseline": "sb3:dqn"}, r"Unknown baseline 'sb3:dqn'\. Did you mean 'sb3:.*'\? "
     r"Available: sb3:a2c, sb3:ppo, sb3:trpo"),
    ({"baseline": "sb3:ppo:epochs=3"}, r"Unknown keyword\(s\) 'epochs' for baseline "
     r"'sb3:ppo'\. Accepted: activation, clip_range"),
    ({"baseline": "sb3:ppo:start=zero"}, "start must be one of"),
    ({"baseline": "sb3:ppo", "critic_lr": 0.1}, r"does not take the TrainConfig field\(s\) "
     r"\['critic_lr'\]"),
    ({"baseline": "sb3:ppo", "replicas": 2}, "replicas must be 1 for a baseline"),
    ({"baseline": "sb3:ppo", "batch_size": 10, "num_envs": 3},
     r"batch_size \(10\) must be a multiple of num_envs \(3\)"),
    ({"baseline": "sb3:ppo", "env": "my_envs:parallel_env"}, "needs a Gymnasium id"),
    ({"baseline": "sb3:ppo", "env": "simple_spread"},
     "needs a Gymnasium id with a joint view .*MPE tasks have none"),
    ({"baseline": "hatrpo"}, "'hatrpo' is not a baseline"),
    ({"baseline": "sb3:ppo", "colour": 1}, r"unknown setting\(s\) \['colour'\]"),
])
def test_bad_settings_are_refused_before_any_work(fields, match):
    with pytest.raises(ValueError, match=match):
        build_baseline(**fields)


def test_a_missing_package_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sb3_contrib" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs sb3-contrib, which is not installed: "
                       r"pip install \"marl_tr\[baselines\]\""):
        build_baseline(baseline="sb3:trpo")


def test_sweep_runs_baselines_beside_presets_in_one_row_format(tmp_path):
    result = sweep(["hatrpo", "sb3:trpo"], seeds=2, grid={"n": [2]}, fixed=TINY, workers=1,
                   results=tmp_path / "cells.csv")
    assert [row["preset"] for row in result.rows] == ["hatrpo", "hatrpo", "sb3:trpo",
                                                      "sb3:trpo"]
    assert all(set(row) == set(COLUMNS) for row in result.rows)
    baseline_jobs = [job for job in result.jobs if job.cells[0].preset == "sb3:trpo"]
    assert [job.seeds for job in baseline_jobs] == [[0], [1]]  # one seed per job
    # a cell's row is the direct run's, seed for seed
    direct = train_baseline("sb3:trpo", env_kwargs={"n": 2}, seed=1, **TINY)
    row = result.rows[3]
    assert row["seed"] == 1 and row["final_means"] == direct.final_means()[:, 0].tolist()
    assert row["expected_reward"] == direct.expected_reward()
    again = run_cell(Cell("sb3:trpo", 1, env_kwargs={"n": 2}, overrides=dict(TINY)))
    assert again["expected_reward"] == row["expected_reward"] and again["key"] == row["key"]
    rerun = sweep(["hatrpo", "sb3:trpo"], seeds=2, grid={"n": [2]}, fixed=TINY, workers=1,
                  results=tmp_path / "cells.csv")
    assert rerun.ran == [] and len(rerun.skipped) == 4


def test_sweep_refuses_a_bad_baseline_cell_before_any_run():
    with pytest.raises(ValueError, match=r"bad sweep cell \[sb3:ppo seed=0 .*critic_lr.*\]: "
                       "a baseline does not take"):
        sweep(["hatrpo", "sb3:ppo"], seeds=1, fixed={**TINY, "critic_lr": 0.1}, workers=1)


def test_train_names_where_a_baseline_runs(tmp_path, monkeypatch, capsys):
    from marl_tr.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--preset", "sb3:ppo", "--iterations", "2"]) == 2
    assert "'sb3:ppo' is a baseline" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
