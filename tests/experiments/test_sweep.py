"""Sweeps: stable cell keys, resume, interruption, torn rows, bad input, the CLI, Ray."""

from __future__ import annotations

import csv
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import marl_tr
import marl_tr.experiments.sweeps as sweeps
from marl_tr.cli import main
from marl_tr.experiments import COLUMNS, Cell, ResultsFile, parse_seeds, sweep

#: The budget of the tiny runs of this module.
TINY = {"iterations": 6, "batch_size": 30}


def _sweep(path, **options):
    return sweep(["hatrpo", "wmatrpo-caatr"], seeds=2, grid={"n": [2]}, fixed=TINY,
                 results=path, workers=1, **options)


def _drop_row(path, key):
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = [row for row in rows if row[0] != key]
    assert len(kept) == len(rows) - 1
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(kept)


# -- cells -----------------------------------------------------------------------------------------
def test_cell_key_is_stable_and_covers_every_setting():
    cell = Cell("hatrpo", 3, env_kwargs={"sigma": (1, 3)}, overrides={"iterations": 5})
    same = Cell("hatrpo", 3, env_kwargs={"sigma": [1, 3]}, overrides={"iterations": 5})
    assert cell.key == same.key == Cell.from_dict(cell.to_dict()).key
    assert len(cell.key) == 16
    others = [Cell("hatrpo", 4, env_kwargs={"sigma": (1, 3)}, overrides={"iterations": 5}),
              Cell("wmatrpo", 3, env_kwargs={"sigma": (1, 3)}, overrides={"iterations": 5}),
              Cell("hatrpo", 3, env_kwargs={"sigma": (1, 2)}, overrides={"iterations": 5}),
              Cell("hatrpo", 3, env_kwargs={"sigma": (1, 3)}, overrides={"iterations": 6})]
    assert len({cell.key, *(o.key for o in others)}) == 5


@pytest.mark.parametrize(("given", "expected"), [
    (3, [0, 1, 2]), ("2", [0, 1]), ("3-5", [3, 4, 5]), ("0,4,9", [0, 4, 9]), ([7], [7]),
])
def test_parse_seeds(given, expected):
    assert parse_seeds(given) == expected


@pytest.mark.parametrize(("given", "match"), [
    (0, "number of seeds must be >= 1"), ([], "at least one"), ([-1], "bad: \\[-1\\]"),
    ([1, 1], "seeds given twice: \\[1\\]"), ("x", "bad seeds 'x'"), (True, "count or a list"),
    ([1.5], "non-negative integers"),
])
def test_bad_seeds_are_refused(given, match):
    with pytest.raises(ValueError, match=match):
        parse_seeds(given)


# -- resume and interruption -----------------------------------------------------------------------
def test_rerun_skips_finished_cells_and_reruns_only_a_deleted_one(tmp_path, count_runs):
    path = tmp_path / "sweep.csv"
    counter = count_runs()
    first = _sweep(path)
    assert len(counter.keys) == 4 and sorted(first.ran) == sorted(counter.keys)
    assert [row["key"] for row in first.rows] == [cell.key for cell in first.cells]

    counter = count_runs()
    again = _sweep(path)
    assert counter.keys == [] and again.ran == [] and len(again.skipped) == 4
    assert again.rows == first.rows

    victim = first.rows[1]["key"]
    _drop_row(path, victim)
    counter = count_runs()
    third = _sweep(path)
    assert counter.keys == [victim] and third.ran == [victim]
    assert len(list(ResultsFile(path).rows())) == 4
    rerun = next(row for row in third.rows if row["key"] == victim)
    expected = next(row for row in first.rows if row["key"] == victim)
    assert rerun["final_means"] == expected["final_means"]  # same seed, same numbers


def test_interrupted_sweep_keeps_finished_rows(tmp_path, count_runs):
    path = tmp_path / "sweep.csv"
    counter = count_runs(fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        _sweep(path)
    kept = ResultsFile(path).finished()
    assert sorted(kept) == sorted(counter.keys) and len(kept) == 2

    counter = count_runs()
    result = _sweep(path)
    assert len(counter.keys) == 2 and not set(counter.keys) & set(kept)
    assert len(result.rows) == 4


def test_failed_cell_is_reported_and_not_recorded(tmp_path, count_runs):
    path = tmp_path / "sweep.csv"
    count_runs(fail_on_call=1, error=RuntimeError)
    result = _sweep(path)
    assert len(result.failed) == 1 and "stopped by the test" in next(iter(result.failed.values()))
    assert len(result.rows) == 3 and len(ResultsFile(path).finished()) == 3


def test_torn_last_row_is_ignored_then_repaired(tmp_path):
    path = tmp_path / "sweep.csv"
    cell = Cell("hatrpo", 0, env_kwargs={"n": 2}, overrides=dict(TINY))
    store = ResultsFile(path)
    store.append(sweeps.run_cell(cell))
    with path.open("a") as handle:
        handle.write("deadbeef,hatrpo,DiffGame-v0,{")  # a hard kill mid-row
    assert list(store.finished()) == [cell.key]
    store.append(sweeps.run_cell(Cell("hatrpo", 1, env_kwargs={"n": 2}, overrides=dict(TINY))))
    text = path.read_text()
    assert "deadbeef" not in text and text.count("\n") == 3


def test_foreign_csv_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a marl_tr sweep results file"):
        _sweep(path)


def test_record_has_every_column_and_the_paper_measures(tmp_path):
    result = sweep("wmatrpo-caatr", seeds=[3], grid={"n": [3]}, fixed=TINY, workers=1)
    (row,) = result.rows
    assert set(row) == set(COLUMNS)
    direct = marl_tr.train(preset="wmatrpo-caatr", env_kwargs={"n": 3}, seed=3, **TINY)
    means = direct.final_means()[:, 0]
    assert row["final_means"] == means.tolist()
    assert row["distance"] == pytest.approx(math.dist(means, [5.0] * 3), rel=1e-12)
    assert row["expected_reward"] == direct.expected_reward()
    assert row["expected_reward_unclipped"] == direct.expected_reward(clip=False)
    assert row["higher_peak"] == "local" and row["sigma"] == [1.0, 3.0, 1.0]
    ratios = direct.column("constraint_ratio_0")[direct.column("moved_0") > 0]
    assert row["ratio_max"][0] == pytest.approx(ratios.max())
    assert row["iterations"] == TINY["iterations"] and row["n_agents"] == 3


# -- bad input, refused before any run -------------------------------------------------------------
@pytest.mark.parametrize(("options", "match"), [
    ({"presets": ["nope"]}, "Unknown preset 'nope'. Available: hatrpo"),
    ({"grid": {"n": [0]}}, "n must be an integer >= 1, got 0"),
    ({"grid": {"n": ["three"]}}, "n must be an integer >= 1"),
    ({"grid": {"foo": [1]}}, "unknown keyword argument.*'foo'.*accepted keywords"),
    ({"grid": {"seed": [1]}}, "'seed' cannot be a grid or fixed key; use the seeds"),
    ({"grid": {"n": 3}}, "must be a list of values"),
    ({"grid": {"n": []}}, "is empty"),
    ({"seeds": [0, 0]}, "seeds given twice"),
    ({"seeds": "a-b"}, "bad seeds"),
    ({"fixed": {"iterations": -1}}, "iterations must be an integer >= 0"),
    ({"backend": "spark"}, "unknown backend 'spark'; choose one of local, ray"),
    ({"workers": 0}, "workers must be an integer >= 1"),
    ({"presets": []}, "non-empty list of preset names"),
])
def test_bad_input_is_refused_before_any_run(tmp_path, count_runs, options, match):
    counter = count_runs()
    settings = {"presets": ["hatrpo"], "seeds": 1, "grid": {"n": [3]}, "fixed": TINY,
                "results": tmp_path / "sweep.csv", "workers": 1, **options}
    with pytest.raises(ValueError, match=match):
        sweep(settings.pop("presets"), **settings)
    assert counter.keys == [] and not (tmp_path / "sweep.csv").exists()


# -- the command line ------------------------------------------------------------------------------
def test_cli_sweep_runs_and_resumes(tmp_path, capsys):
    argv = ["sweep", "--presets", "hatrpo", "--seeds", "0,1", "--grid", "n=2", "--set",
            "batch_size=30", "--iterations", "4", "--out", str(tmp_path / "s.csv"),
            "--workers", "1", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| preset | env kwargs |" in out and "2 cell(s) run, 0 already finished" in out
    assert main(argv) == 0
    assert "0 cell(s) run, 2 already finished" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "match"), [
    (["sweep", "--presets", "hatrpo,nope", "--iterations", "2"], "Unknown preset 'nope'"),
    (["sweep", "--presets", "hatrpo", "--grid", "sigma=(1,3),x", "--iterations", "2"],
     "sigma"),
    (["reproduce", "table3", "--n", "4", "--iterations", "2"], "n must be integers from"),
    (["reproduce", "table3", "--presets", "wmatrpo", "--iterations", "2"],
     "unknown preset\\(s\\) \\['wmatrpo'\\] here; choose from hatrpo"),
    (["reproduce", "figure1", "--env-kwargs", "n=3", "--iterations", "2"], "n=3"),
])
def test_cli_refuses_bad_input(tmp_path, capsys, argv, match):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


# -- Ray Tune backend ------------------------------------------------------------------------------
def test_ray_backend_runs_the_same_cells(tmp_path):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    local = sweep("hatrpo", seeds=2, grid={"n": [2]}, fixed=TINY, workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = sweep("hatrpo", seeds=2, grid={"n": [2]}, fixed=TINY, workers=2,
                       backend="ray", results=tmp_path / "ray.csv")
    finally:
        ray.shutdown()
    assert not remote.failed and sorted(remote.ran) == sorted(c.key for c in remote.cells)
    assert [r["final_means"] for r in remote.rows] == [r["final_means"] for r in local.rows]
    assert len(ResultsFile(tmp_path / "ray.csv").finished()) == 2


def test_ctrl_c_on_a_pool_sweep_keeps_finished_rows(tmp_path):
    """A real interrupt: SIGINT to the process group of ``marl-tr sweep --workers 2``."""
    path = tmp_path / "sweep.csv"
    command = [sys.executable, "-m", "marl_tr", "sweep", "--presets", "hatrpo", "--seeds", "8",
               "--grid", "n=2", "--iterations", "60", "--out", str(path), "--workers", "2"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(ResultsFile(path).finished()) < 1 and process.poll() is None:
        assert time.monotonic() < deadline, "no cell finished within 60 s"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    kept = ResultsFile(path).finished()
    assert kept and path.read_text().endswith("\n")
    if len(kept) < 8:  # interrupted before the end (the usual case)
        assert process.returncode == 130 and "rerun the same command to resume" in err
    again = sweep("hatrpo", seeds=8, grid={"n": [2]}, fixed={"iterations": 60}, results=path,
                  workers=1)
    assert sorted(again.skipped) == sorted(kept) and len(again.rows) == 8
