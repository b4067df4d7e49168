"""``marl-tr plot``: learning curves of run directories, seeds as mean +- sd, a valid PNG."""

from __future__ import annotations

import numpy as np
import pytest

import marl_tr
from marl_tr.cli import main
from marl_tr.experiments.plot import load_curves

RUN = dict(env="marl_tr_envs.diff_game.envs:parallel_env",
           env_kwargs={"n": 2, "episode_length": 2}, profile="multi_step", batch_size=8,
           num_envs=4, policy_hidden=(4,), critic_hidden=(4,), iterations=3)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    marl_tr.train(seed=0, replicas=2, run_dir=str(base / "a"), **RUN)  # seeds 0 and 1
    marl_tr.train(seed=2, run_dir=str(base / "b"), **RUN)              # seed 2, same setting
    marl_tr.train(seed=0, run_dir=str(base / "c"), **{**RUN, "preset": "mappo"})
    return base


def test_seeds_of_one_setting_are_grouped_as_mean_and_sd(runs):
    curves = load_curves([runs / "a", runs / "b", runs / "c"], "episode_return_mean")
    assert [c.label for c in curves] == [
        "custom on marl_tr_envs.diff_game.envs:parallel_env (episode_length=2,n=2) (3 seeds)",
        "mappo on marl_tr_envs.diff_game.envs:parallel_env (episode_length=2,n=2) (1 seed)"]
    seeds = [marl_tr.training.run_dir.read_metrics(runs / d / "metrics.csv") for d in "ab"]
    table = np.array([[row["episode_return_mean"] for row in rows if row["replica"] == r]
                      for rows, r in ((seeds[0], 0), (seeds[0], 1), (seeds[1], 0))])
    x, mean, sd = curves[0].mean_sd()
    np.testing.assert_array_equal(x, [8, 16, 24])
    np.testing.assert_allclose(mean, table.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sd, table.std(0, ddof=1), rtol=1e-12)
    assert np.isnan(curves[1].mean_sd()[2]).all()  # one seed: no band


def test_plot_writes_a_png(runs, tmp_path, capsys):
    out = tmp_path / "figs" / "curves.png"
    assert main(["plot", str(runs / "a"), str(runs / "b"), str(runs / "c"), "--out",
                 str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    assert imread(out).shape[:2] == (500, 800)
    assert f"learning curves of episode_return_mean: {out}" in capsys.readouterr().out


def test_plot_of_a_missing_metric_lists_the_columns(runs, tmp_path, capsys):
    assert main(["plot", str(runs / "a"), "--metric", "nope",
                 "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "has no metric 'nope'; its columns: iteration, replica, seed, reward_mean" in err
    assert not (tmp_path / "x.png").exists()


def test_fmt_significant_keeps_small_values_readable():
    from marl_tr.experiments.report import fmt_significant
    assert fmt_significant(4.2e-05) == "4.2e-05"
    assert fmt_significant(0.012345) == "0.0123"
    assert fmt_significant(12.345) == "12.3"
    assert fmt_significant(0.0) == "0"
    assert fmt_significant(float("nan")) == "—" and fmt_significant(None) == "—"
