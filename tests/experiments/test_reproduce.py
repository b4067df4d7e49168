"""The reproduce targets end to end on tiny budgets: Table 3 against direct ``train`` calls,
Figure 1's PNG, the basin-gap study's verdicts, the generator of docs/results, Table 3's data."""

from __future__ import annotations

import csv
import json
import math
import struct

import numpy as np
import pytest

import marl_tr
from marl_tr.cli import main
from marl_tr.experiments import (
    TABLE3,
    TABLE3_METHODS,
    TABLE3_PRESETS,
    paper_distance,
    reproduce_all,
    reproduce_basin_gap,
    reproduce_figure1,
)
from marl_tr.experiments.figure import FIGURE_DPI, FIGURE_SIZE

TABLE3_COLUMNS = [
    "n", "preset", "method", "paper_distance", "paper_final_actions", "seeds", "iterations",
    "batch_size", "distance_mean", "distance_sd", "distance_median", "final_actions_mean",
    "final_stds_mean", "expected_reward_mean", "expected_reward_sd", "peak_local",
    "peak_global", "higher_peak", "left_basin_fraction", "inside_bounds_fraction",
    "reached_higher_count", "lambda_mean", "fingerprints", "overshoot_mean", "overshoot_max",
    "overshoot_fraction", "wall_time_mean",
]


def _direct(preset: str, seed: int, tiny: dict[str, int]) -> dict[str, float]:
    """What Table 3 should say for one seed, from a direct ``train`` call."""
    result = marl_tr.train(preset=preset, env_kwargs={"n": 3}, seed=seed, **tiny)
    means = result.final_means()[:, 0]
    ratios = np.concatenate([result.column(f"constraint_ratio_{i}")[
        result.column(f"moved_{i}") > 0] for i in range(3)])
    return {"distance": float(np.linalg.norm(means - 5.0)), "means": means,
            "reward": result.expected_reward(), "ratio_max": float(ratios.max()),
            "left": float(np.mean(np.abs(means - 5) < np.abs(means - 1))),
            "peaks": result.game.peak_rewards()}


def test_reproduce_table3_end_to_end_matches_direct_train(tmp_path, capsys, tiny):
    out = tmp_path / "table3"
    argv = ["reproduce", "table3", "--iterations", str(tiny["iterations"]), "--seeds", "2",
            "--n", "3", "--out", str(out), "--workers", "2", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| n | method | paper distance | distance |" in printed
    assert "only 2 seed(s): not the real table" in printed
    with (out / "table3.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == TABLE3_COLUMNS
    # the paper's three methods, then the rows beyond the paper (no paper values)
    assert [row["preset"] for row in rows] == list(TABLE3_METHODS)
    assert (out / "table3.md").read_text().count("\n| 3 |") == len(TABLE3_METHODS)
    for row in rows[len(TABLE3_PRESETS):]:
        assert math.isnan(float(row["paper_distance"]))
    for row in rows[:len(TABLE3_PRESETS)]:
        runs = [_direct(row["preset"], seed, tiny) for seed in (0, 1)]
        distances = [run["distance"] for run in runs]
        rewards = [run["reward"] for run in runs]
        assert float(row["distance_mean"]) == pytest.approx(np.mean(distances), rel=1e-12)
        assert float(row["distance_sd"]) == pytest.approx(np.std(distances, ddof=1), rel=1e-9)
        assert float(row["distance_median"]) == pytest.approx(np.median(distances), rel=1e-12)
        assert float(row["inside_bounds_fraction"]) == np.mean(
            [np.mean((run["means"] >= 0) & (run["means"] <= 7)) for run in runs])
        assert json.loads(row["final_actions_mean"]) == pytest.approx(
            np.mean([run["means"] for run in runs], axis=0).tolist(), rel=1e-12)
        assert float(row["expected_reward_mean"]) == pytest.approx(np.mean(rewards), rel=1e-12)
        assert float(row["expected_reward_sd"]) == pytest.approx(np.std(rewards, ddof=1),
                                                                 rel=1e-9)
        assert float(row["peak_local"]) == runs[0]["peaks"]["local"]
        assert float(row["peak_global"]) == runs[0]["peaks"]["global"]
        assert row["higher_peak"] == "local"
        assert float(row["left_basin_fraction"]) == np.mean([run["left"] for run in runs])
        assert float(row["overshoot_max"]) == pytest.approx(
            max(run["ratio_max"] for run in runs), rel=1e-12)
        paper = TABLE3[(row["preset"], 3)]
        assert float(row["paper_distance"]) == paper.distance
        assert json.loads(row["paper_final_actions"]) == list(paper.actions)
        assert row["seeds"] == "2" and row["iterations"] == str(tiny["iterations"])
    # resumable: the same command again runs nothing and writes the same table
    before = (out / "table3.csv").read_text()
    assert main(argv) == 0
    assert (out / "table3.csv").read_text() == before


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def test_figure1_png(tmp_path, tiny):
    figure = reproduce_figure1(out=tmp_path, workers=1, **tiny)
    width, height = _png_size(figure.files["png"])
    assert (width, height) == (FIGURE_SIZE[0] * FIGURE_DPI, FIGURE_SIZE[1] * FIGURE_DPI)
    import matplotlib.image

    assert matplotlib.image.imread(figure.files["png"]).shape == (height, width, 4)
    assert list(figure.paths) == list(TABLE3_PRESETS)
    for points in figure.paths.values():
        assert points.shape == (tiny["iterations"] + 1, 2)
        assert points[0].tolist() == [1.5, 1.5]  # the paper's start
    assert figure.surface["higher_peak"] == "local"
    assert (tmp_path / "figure1_paths.csv").read_text().count("\n") == 1 + 3 * (
        tiny["iterations"] + 1)
    assert "![Figure 1](figure1.png)" in figure.files["markdown"].read_text()


def test_basin_gap_study_judges_by_the_truly_higher_peak(tmp_path, tiny):
    # 20 iterations: with the default signal test HATRPO reaches the near peak at 15
    study = reproduce_basin_gap(gaps=(4.0,), sigmas=("paper", 1.0), presets=["hatrpo"],
                                seeds=1, workers=1, out=tmp_path, **{**tiny, "iterations": 20})
    paper, unit = study.rows
    assert paper["higher_peak"] == "local" and unit["higher_peak"] == "global"
    assert paper["sigma_label"] == "paper (1.0, 3.0, 1.0)" and unit["sigma"] == [1.0] * 3
    # HATRPO stays near (1, 1, 1): the higher peak with the paper's widths, not with sigma = 1
    assert paper["reached_fraction"] == 1.0 and unit["reached_fraction"] == 0.0
    text = (tmp_path / "basin_gap.md").read_text()
    assert "higher peak is the near one (local); reached by hatrpo (1/1)" in text
    assert "higher peak is the far one (global); reached by no preset" in text
    assert "--sigmas paper 1.0" in text


def test_reproduce_all_writes_every_page_with_its_command(tmp_path):
    out = tmp_path / "results"
    results = reproduce_all(out=out, iterations=1, seeds=1, workers=1)
    index = (out / "README.md").read_text()
    for page in ("table3/table3.md", "figure1/figure1.md", "basin_gap/basin_gap.md",
                 "variants/variants.md", "matrix/matrix.md", "sensitivity/sensitivity.md"):
        assert f"]({page})" in index and (out / page).exists()
    assert "marl-tr reproduce table3 --iterations 1 --seeds 1 --n 3,5,7,9" in index
    assert (out / "figure1" / "figure1.png").exists()
    # the results page, next to the directory, written from the runs
    page = (tmp_path / "results.md").read_text()
    assert f"marl-tr reproduce all --iterations 1 --batch-size 30 --seeds 1 --out {out}" in page
    for title in ("## Table 3", "## What does not reproduce, and the mechanism",
                  "## Variants and baselines (n = 3)", "## Figure 1 (2 agents)",
                  "## Basin gap"):
        assert title in page
    assert "![Figure 1](results/figure1/figure1.png)" in page
    hatrpo = [x for x in results["table3"].rows if x["preset"] == "hatrpo"]
    for line in hatrpo:  # the numbers on the page are those of the runs
        assert f"n = {line['n']}: {line['distance_mean']:.3f} vs" in page
    # a one-iteration run is nowhere near the paper: the page must not claim it reproduces
    assert "Table 3's row **does not reproduce**" in page


@pytest.mark.parametrize("key", sorted(TABLE3, key=str), ids=str)
def test_table3_reference_values_are_self_consistent(key):
    entry = TABLE3[key]
    assert len(entry.actions) == key[1]
    assert paper_distance(entry.actions, 5.0) == pytest.approx(entry.distance, abs=2e-3)
    assert not math.isnan(entry.distance)


def test_reproduce_variants_accepts_preset_config_strings(tmp_path, capsys, tiny):
    """Config-string presets (nested quotes included) run through the sweep, and each line
    equals direct ``train`` calls with the same preset string."""
    presets = ["hatrpo", "mappo",
               "wmatrpo-caatr:solver='primal_dual:optimizer=adam,lr_theta=0.001,"
               "safeguard=shrink'"]
    out = tmp_path / "variants"
    argv = ["reproduce", "variants", "--iterations", str(tiny["iterations"]), "--seeds", "2",
            "--presets", ";".join(presets), "--out", str(out), "--workers", "1", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| n | method | preset | distance |" in printed
    with (out / "variants.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["preset"] for row in rows] == presets
    assert rows[2]["method"].startswith("... with Adam")
    for row in rows:
        runs = [_direct(row["preset"], seed, tiny) for seed in (0, 1)]
        assert float(row["distance_mean"]) == pytest.approx(
            np.mean([run["distance"] for run in runs]), rel=1e-12)
        assert float(row["expected_reward_mean"]) == pytest.approx(
            np.mean([run["reward"] for run in runs]), rel=1e-12)
    assert float(rows[2]["overshoot_max"]) <= 1.0 + 1e-9  # the shrink safeguard holds the ball
