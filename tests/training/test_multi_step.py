"""Multi-step envs through the one loop: an env factory callable, sync == async copies,
resume (exact with a saved env state, a documented seeded restart without), evaluation
episodes and episode statistics, reporting."""

from __future__ import annotations

import functools
import math
import re
import shutil
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr.api import _progress_line, return_summary
from marl_tr.config import TrainConfig
from marl_tr.evaluation import evaluate
from marl_tr.experiments.outcomes import measure
from marl_tr.training.env_adapters import (
    AsyncParallelEnvAdapter,
    ParallelEnvAdapter,
    env_label,
    make_env,
    worker_count,
)
from marl_tr.training.loop import SeededRestartWarning, SequentialTrustRegion, restart_seeds
from marl_tr.training.setup import build_parts
from marl_tr_envs.diff_game.envs import parallel_env as diff_parallel_env

PARALLEL = "marl_tr_envs.diff_game.envs:parallel_env"
#: a small multi-step run on the diff game's PettingZoo shell (noisy rewards: the env's own
#: generator matters, so copies must be seeded and stepped alike)
SMALL = dict(env=PARALLEL, env_kwargs={"n": 2, "episode_length": 3, "reward_noise": 0.3},
             profile="multi_step", batch_size=24, num_envs=4, policy_hidden=(4,),
             critic_hidden=(4,), eval_interval=2, eval_episodes=2, seed=1)


def metrics_text(path) -> str:
    return (path / "metrics.csv").read_text()


# ---------------------------------------------------------------------------------------
# train(env=callable)
# ---------------------------------------------------------------------------------------
def test_train_takes_an_env_factory_callable(tmp_path):
    """A module-level factory is recorded by name (the run directory rebuilds it); the run is
    the one of its 'module:factory' string."""
    by_callable = marl_tr.train(env=diff_parallel_env, env_kwargs={"n": 2}, iterations=3,
                                run_dir=str(tmp_path / "a"))
    assert by_callable.config.env == "marl_tr_envs.diff_game.envs:parallel_env"
    marl_tr.train(env=PARALLEL, env_kwargs={"n": 2}, iterations=3, run_dir=str(tmp_path / "b"))
    assert metrics_text(tmp_path / "a") == metrics_text(tmp_path / "b")
    config = TrainConfig(env=diff_parallel_env, env_kwargs={"n": 2}, iterations=1)
    assert marl_tr.train(config).config.env == PARALLEL  # in a TrainConfig too


def test_a_lambda_factory_runs_and_resumes_only_when_given_again(tmp_path):
    factory = lambda **kw: diff_parallel_env(**kw)  # noqa: E731 - the case under test
    label = env_label(factory)
    assert label.startswith("<callable ") and "<lambda>" in label
    run = tmp_path / "run"
    result = marl_tr.train(env=factory, env_kwargs={"n": 2}, iterations=2, run_dir=str(run))
    assert result.config.env == label
    with pytest.raises(ValueError, match=r"cannot be imported by name .*resume=DIR, env=factory"):
        marl_tr.train(resume=run, iterations=4)
    with pytest.raises(ValueError, match=r"is not the env of the run"):
        marl_tr.train(resume=run, iterations=4, env=diff_parallel_env)
    with pytest.warns(SeededRestartWarning):  # the shell has no state to save
        resumed = marl_tr.train(resume=run, iterations=4, env=factory)
    assert [row["iteration"] for row in resumed.metrics] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"env must be a string .*marl_tr\.train\(env=factory\)"):
        TrainConfig(env=factory).validate()


# ---------------------------------------------------------------------------------------
# sync == async
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_async_copies_give_the_sync_transitions(chunks):
    """The same seeds and actions (out-of-bounds ones included) through both adapters, the
    copies in 1, 2 or 4 chunks (this process steps the first, subprocesses the others): equal
    observations, states, rewards, agent rewards, episode ends and successor states."""
    kwargs = {"n": 2, "episode_length": 3, "reward_noise": 0.5}
    sync = make_env(PARALLEL, dict(kwargs), 4, "sync")
    spawned = AsyncParallelEnvAdapter(functools.partial(diff_parallel_env, **kwargs), 4,
                                      chunks=chunks)
    try:
        assert isinstance(sync, ParallelEnvAdapter)
        assert (spawned.vec is None) == (chunks == 1)
        assert (spawned.agents, spawned.state_dim) == (sync.agents, sync.state_dim)
        first_a, first_b = sync.reset(seed=[5, 9]), spawned.reset(seed=[5, 9])
        for a, b in zip(first_a[0], first_b[0]):
            np.testing.assert_array_equal(a, b)
        rng = np.random.default_rng(0)
        for _ in range(7):  # past two episode ends
            actions = [rng.uniform(-3, 10, (4, 1)) for _ in range(2)]
            a, b = sync.step(actions), spawned.step(actions)
            for name in ("state", "reward", "terminated", "truncated", "final_state",
                         "agent_rewards"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
            for x, y in zip(a.obs + a.final_obs, b.obs + b.final_obs):
                np.testing.assert_array_equal(x, y)
    finally:
        sync.close()
        spawned.close()


@pytest.mark.parametrize(("copies", "cores", "workers"), [
    (20, 2, 2), (20, 16, 10), (20, 40, 20), (7, 2, 1), (3, 8, 3), (1, 4, 1)])
def test_async_copies_are_split_into_equal_chunks_one_per_core(copies, cores, workers):
    assert worker_count(copies, cores) == workers


def test_vectorization_async_builds_the_async_adapter():
    env = make_env(PARALLEL, {"n": 2}, 2, "async")
    try:
        assert isinstance(env, AsyncParallelEnvAdapter)
    finally:
        env.close()


def test_async_training_gives_the_sync_run(tmp_path):
    sync = marl_tr.train(iterations=3, run_dir=str(tmp_path / "sync"), **SMALL)
    spawned = marl_tr.train(iterations=3, vectorization="async", run_dir=str(tmp_path / "async"),
                            **SMALL)
    assert spawned.config.vectorization == "async"
    assert metrics_text(tmp_path / "sync") == metrics_text(tmp_path / "async")
    for a, b in zip(sync.policies, spawned.policies):
        assert torch.equal(a.flat_parameters(), b.flat_parameters())


# ---------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------
def interrupted(tmp_path, name: str, total: int, stop: int, **config: Any):
    """An uninterrupted run of ``total`` iterations and one stopped after ``stop``, resumed."""
    full = tmp_path / f"{name}-full"
    part = tmp_path / f"{name}-part"
    marl_tr.train(iterations=total, run_dir=str(full), **config)
    marl_tr.train(iterations=stop, run_dir=str(part), **config)
    return full, part


def test_resume_without_an_env_state_restarts_episodes_from_seeded_resets(tmp_path, rows_equal):
    """The diff game's PettingZoo shell cannot save its state: the resumed run warns, logs it
    in run.log, restarts its episodes from restart_seeds and is deterministic (two resumes of
    the same checkpoint agree); its first rows differ from the uninterrupted run's only
    through the env."""
    full, part = interrupted(tmp_path, "pz", total=5, stop=3, **SMALL)
    again = tmp_path / "pz-again"
    shutil.copytree(part, again)
    seeds = restart_seeds(SMALL["seed"], 1, 3)
    with pytest.warns(SeededRestartWarning, match=re.escape(f"resets seeded {seeds}")):
        marl_tr.train(resume=part, iterations=5)
    with pytest.warns(SeededRestartWarning):
        marl_tr.train(resume=again, iterations=5)
    assert metrics_text(part) == metrics_text(again)
    log = (part / "run.log").read_text()
    assert log.startswith("resumed at iteration 3: the env copies of") and "seeded" in log
    rows_full = marl_tr.training.run_dir.read_metrics(full / "metrics.csv")
    rows_part = marl_tr.training.run_dir.read_metrics(part / "metrics.csv")
    rows_equal(rows_full[:3], rows_part[:3])  # before the checkpoint: the same run
    assert rows_full[3]["reward_mean"] != rows_part[3]["reward_mean"]  # fresh episodes
    assert seeds == restart_seeds(SMALL["seed"], 1, 3) != restart_seeds(SMALL["seed"], 1, 4)


def test_a_checkpoint_loads_weights_only_and_holds_no_pickled_env(tmp_path):
    marl_tr.train(iterations=2, run_dir=str(tmp_path / "run"), **SMALL)
    raw = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert raw["collector"]["env"] is None  # no state offered: nothing of the env stored


# ---------------------------------------------------------------------------------------
# evaluation and episode statistics
# ---------------------------------------------------------------------------------------
def test_evaluation_plays_the_deterministic_policy():
    """One-step diff game: every evaluation episode's return is the team reward at the
    (clipped) mean actions, for every copy and replica."""
    parts = build_parts(TrainConfig(env_kwargs={"n": 3}, replicas=2, init_mean=2.5,
                                    dtype="float64"))
    env = make_env("DiffGame-v0", {"n": 3}, 2 * 4)
    try:
        result = evaluate(parts.policies, env, [3, 8], replicas=2, dtype=torch.float64)
    finally:
        env.close()
        parts.close()
    expected = parts.env.game.team_reward(np.full((1, 3), 2.5))[0]
    np.testing.assert_allclose(result.returns, np.full((2, 4), expected), rtol=1e-12)
    np.testing.assert_allclose(result.team_returns, 3 * result.returns, rtol=1e-12)
    assert (result.lengths == 1).all()


def test_episode_statistics_and_evaluation_columns():
    result = marl_tr.train(iterations=4, **SMALL)
    rows = result.metrics
    assert [row["env_steps"] for row in rows] == [24, 48, 72, 96]
    for row in rows:  # 4 copies x 6 steps: 8 whole episodes of 3 steps per batch
        assert row["episodes"] == 8 and row["episode_length_mean"] == 3.0
        # every agent receives the team reward: the team's sum is n times the mean
        assert row["episode_return_team"] == pytest.approx(2 * row["episode_return_mean"])
    evaluated = [math.isfinite(row["eval_return_mean"]) for row in rows]
    assert evaluated == [False, True, False, True]
    assert rows[1]["eval_length_mean"] == 3.0
    assert result.final_return(window=2) == pytest.approx(
        np.mean([rows[2]["episode_return_mean"], rows[3]["episode_return_mean"]]))
    record = measure(result)
    assert record["final_return_mean"] == pytest.approx(result.final_return())
    assert record["eval_return_mean"] == rows[3]["eval_return_mean"]


def test_progress_line_and_summary_show_the_episode_return():
    result = marl_tr.train(iterations=2, **SMALL)
    line = _progress_line(result.metrics[1], multi_step=True)
    row = result.metrics[1]
    assert line.startswith("iter      2  steps        48  return ")
    assert f"return {row['episode_return_mean']:.3f} (team {row['episode_return_team']:.3f}, "\
           "length 3.0)" in line and f"eval {row['eval_return_mean']:.3f}" in line
    (summary,) = return_summary(result)
    assert summary.startswith(f"seed 1: episode return {result.final_return():.3f} per agent")
    one_step = marl_tr.train(env_kwargs={"n": 2}, iterations=1)
    assert return_summary(one_step) == []
    assert _progress_line(one_step.metrics[0]).startswith("iter      1  reward ")


def test_loop_records_whether_a_resume_was_exact(tmp_path):
    marl_tr.train(iterations=1, run_dir=str(tmp_path / "run"), **SMALL)
    parts = build_parts(TrainConfig(iterations=1, **SMALL))
    loop = SequentialTrustRegion(parts)
    try:
        state = loop.state_dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SeededRestartWarning)
            loop.load_state_dict(state)
        assert loop.resumed_exactly is False
    finally:
        parts.close()


def test_replica_r_of_a_multi_step_run_is_the_run_with_seed_plus_r(rows_equal):
    """Minibatch shuffles, value normalisation, evaluation seeds: all per replica."""
    together = marl_tr.train(iterations=3, replicas=2, **SMALL).split()
    for r, single in enumerate(together):
        alone = marl_tr.train(iterations=3, **{**SMALL, "seed": SMALL["seed"] + r})
        rows_equal([{k: v for k, v in row.items() if k != "replica"} for row in single.metrics],
                   [{k: v for k, v in row.items() if k != "replica"} for row in alone.metrics])
