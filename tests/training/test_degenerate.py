"""Degenerate numerics: no signal means no step, a collapsed std stays finite, bad rewards stop
the run with a clear error (files kept), non-finite gradients or parameters never land."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr import PRESETS
from marl_tr.config import TrainConfig
from marl_tr.training.loop import SequentialTrustRegion, TrainingError
from marl_tr.training.run_dir import read_metrics
from marl_tr.training.setup import build_parts

PRESET_NAMES = PRESETS.names()
def initial_parameters(config: TrainConfig):
    """The parameters a run starts from (state-independent policies: deterministic)."""
    parts = build_parts(config)
    parts.env.close()
    return [p.flat_parameters() for p in parts.policies]


# ---------------------------------------------------------------------------------------
# no signal: no step
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_all_equal_rewards_mean_no_step(preset, dtype):
    """Every action is clipped to 0, so every reward is r(0, 0, 0): advantages carry no
    signal and no agent may move (the mean of 30 equal rewards is inexact in floating
    point, so this also checks that normalisation does not amplify rounding)."""
    config = TrainConfig(preset=preset, env_kwargs={"n": 3}, iterations=4, init_mean=-100.0,
                         dtype=dtype)
    start = initial_parameters(config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all, let alone one per iteration
        result = marl_tr.train(config)
    assert len(set(result.column("reward_mean"))) == 1  # the same constant reward each time
    for i, policy in enumerate(result.policies):
        assert result.column(f"moved_{i}").tolist() == [0.0] * 4
        assert result.column(f"divergence_{i}").tolist() == [0.0] * 4
        assert torch.equal(policy.flat_parameters(), start[i])
    assert np.isfinite(result.column("critic_loss")).all()


# ---------------------------------------------------------------------------------------
# collapsed std
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("std_param", ["log_std", "bounded"])
def test_collapsed_std_stays_on_the_floor_and_finite(std_param):
    """HATRPO collapses the std on the differential game; it must stay at the floor, finite,
    without warnings, for many iterations after the collapse (on it from iteration 52 on,
    with the default signal test)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = marl_tr.train(preset="hatrpo", env_kwargs={"n": 3}, iterations=120, seed=1,
                               std_param=std_param, min_std=0.01)
    stds = np.stack([result.column(f"std_0_{i}") for i in range(3)], axis=1)
    assert (stds >= 0.01).all()
    assert np.all(stds[-40:] < 0.0102)  # collapsed onto the floor for the last 40 iterations
    for policy in result.policies:
        assert torch.isfinite(policy.flat_parameters()).all()
    for row in result.metrics:
        for key, value in row.items():
            if isinstance(value, float) and key.split("_")[0] in ("divergence", "improvement",
                                                                  "mean", "std"):
                assert math.isfinite(value), (row["iteration"], key)


def test_collapsing_std_under_primal_dual_stays_finite():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = marl_tr.train(preset="wmatrpo", env_kwargs={"n": 3}, iterations=60, seed=1,
                               min_std=0.01, init_std=0.02)
    assert np.all(result.final_stds() >= 0.01)
    assert all(torch.isfinite(p.flat_parameters()).all() for p in result.policies)
    assert np.isfinite(result.column("reward_mean")).all()


# ---------------------------------------------------------------------------------------
# non-finite rewards from the env
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_value", [math.nan, math.inf, -math.inf])
def test_non_finite_reward_from_a_parallel_env_stops_the_run(plugins, tmp_path, bad_value):
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError,
                       match=r"^iteration 3: .*non-finite reward.*agent 'agent_1'") as info:
        marl_tr.train(env="loop_plugins:toy_env",
                      env_kwargs={"n": 3, "target": 1.0, "bad_step": 3, "bad_value": bad_value},
                      iterations=10, batch_size=6, run_dir=str(run_dir))
    assert isinstance(info.value, RuntimeError)
    # what was written so far stays: the resolved config and the 3 completed iterations
    saved = TrainConfig.from_yaml(run_dir / "config.yaml")
    assert saved.env == "loop_plugins:toy_env" and saved.divergence == "kl"
    rows = read_metrics(run_dir / "metrics.csv")
    assert [row["iteration"] for row in rows] == [0.0, 1.0, 2.0]


def test_non_finite_reward_in_the_first_batch_names_the_agent(plugins, tmp_path):
    """A PettingZoo env's per-agent rewards: the error names the agent (first batch, so it
    is raised before any critic work)."""
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"^iteration 0: the environment returned a "
                       r"non-finite reward .*nan.* at env copy 0, agent 'agent_2'"):
        marl_tr.train(env="loop_plugins:toy_env",
                      env_kwargs={"n": 3, "bad_step": 0, "bad_agent": 2}, iterations=5,
                      batch_size=4, run_dir=str(run_dir))
    assert TrainConfig.from_yaml(run_dir / "config.yaml").env == "loop_plugins:toy_env"


def test_non_finite_reward_from_a_vector_env_stops_the_run(monkeypatch, tmp_path):
    from marl_tr_envs import DiffGameVectorEnv

    original = DiffGameVectorEnv.step
    calls = []

    def step(self, actions):
        calls.append(1)
        obs, rewards, terminated, truncated, infos = original(self, actions)
        if len(calls) == 5:  # one step per iteration: iteration 4
            rewards = rewards.copy()
            rewards[2] = math.inf
        return obs, rewards, terminated, truncated, infos

    monkeypatch.setattr(DiffGameVectorEnv, "step", step)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingError,
                       match=r"^iteration 4: .*non-finite reward .*inf.* at env copy 2 "
                             r"\(the team reward shared by all agents\)"):
        marl_tr.train(preset="wmatrpo-caatr", env_kwargs={"n": 3}, iterations=10,
                      run_dir=str(run_dir))
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [0, 1, 2, 3]
    assert TrainConfig.from_yaml(run_dir / "config.yaml").preset == "wmatrpo-caatr"


def test_training_error_is_exported_by_the_api():
    import marl_tr.api

    assert marl_tr.api.TrainingError is TrainingError


# ---------------------------------------------------------------------------------------
# non-finite gradients and parameters
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["hatrpo", "wmatrpo", "wmatrpo-tr",
                                    "wmatrpo-dual:critic=oracle_q"])
def test_non_finite_advantages_mean_no_step_with_a_warning(monkeypatch, preset):
    """A NaN advantage in iteration 1: every agent refuses to step (a warning), the
    parameters stay as they were, and training continues."""
    original = SequentialTrustRegion.advantages
    snapshots = {}

    def advantages(self, batch):
        flat, returns, values = original(self, batch)
        snapshots[self.iteration] = [p.flat_parameters() for p in self.policies]
        if self.iteration == 1:
            flat = flat.clone()
            flat[3] = math.nan
        return flat, returns, values

    monkeypatch.setattr(SequentialTrustRegion, "advantages", advantages)
    with pytest.warns(RuntimeWarning, match="non-finite surrogate gradient"):
        result = marl_tr.train(preset=preset, env_kwargs={"n": 2}, iterations=3, seed=0)
    for i in range(2):
        assert result.column(f"moved_{i}").tolist() == [1.0, 0.0, 1.0]
        assert torch.equal(snapshots[1][i], snapshots[2][i])  # iteration 1 changed nothing
        assert torch.isfinite(result.policies[i].flat_parameters()).all()


def test_a_step_to_non_finite_parameters_is_undone(plugins):
    config = TrainConfig(env_kwargs={"n": 2}, iterations=2, solver="loop_plugins:NaNSolver")
    start = initial_parameters(config)
    with pytest.warns(RuntimeWarning, match="produced non-finite parameters; step undone"):
        result = marl_tr.train(config)
    for i, policy in enumerate(result.policies):
        assert torch.equal(policy.flat_parameters(), start[i])
        assert result.column(f"moved_{i}").tolist() == [0.0, 0.0]
