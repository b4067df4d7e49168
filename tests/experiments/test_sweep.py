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
from marl_tr.experiments import COLUMNS, RUN_COLUMNS, Cell, ResultsFile, parse_seeds, sweep
from marl_tr.experiments.results import format_row

#: The budget of the tiny runs of this module.
TINY = {"iterations": 6, "batch_size": 30}


def _sweep(path, **options):
    return sweep(["hatrpo", "wmatrpo-caatr"], seeds=2, grid={"n": [2]}, fixed=TINY,
                 results=path, workers=1, **options)


def strip(row):
    """A row as CSV text without the columns that say how and when it ran."""
    return {k: v for k, v in format_row(row).items() if k not in RUN_COLUMNS}


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
    ([1, 1], "seeds given twice: \\[1\\]"), ("x", "bad seeds 'x'"),
    ("5-3", "bad seeds '5-3': a range runs from low to high, e.g. 3-5"), (True, "count or a list"),
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
    assert counter.jobs == [[0, 1], [0, 1]]  # one job per preset
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
    assert rerun["job_replicas"] == 1 and expected["job_replicas"] == 2
    assert strip(rerun) == strip(expected)  # alone or in a job: the same row


@pytest.mark.parametrize("max_replicas", [1, 16])
def test_interrupted_sweep_keeps_finished_jobs_rows(tmp_path, count_runs, max_replicas):
    path = tmp_path / "sweep.csv"
    counter = count_runs(fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        _sweep(path, max_replicas=max_replicas)
    kept = ResultsFile(path).finished()
    per_job = 1 if max_replicas == 1 else 2  # two seeds of one preset in one job
    assert sorted(kept) == sorted(counter.keys) and len(kept) == per_job
    assert counter.jobs == ([[0, 1]] if per_job == 2 else [[0]])

    counter = count_runs()
    result = _sweep(path)
    assert len(counter.keys) == 4 - per_job and not set(counter.keys) & set(kept)
    assert len(result.rows) == 4


def test_failed_job_reports_its_cells_and_records_none(tmp_path, count_runs):
    path = tmp_path / "sweep.csv"
    count_runs(fail_on_call=1, error=RuntimeError)
    result = _sweep(path)
    assert len(result.failed) == 2  # both seeds of the first job
    assert all("stopped by the test" in message for message in result.failed.values())
    assert len(result.rows) == 2 and len(ResultsFile(path).finished()) == 2


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


def test_a_results_file_that_is_not_text_is_refused_naming_it(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"key,preset\n\x88\x89garbage\n")
    with pytest.raises(ValueError, match=r"binary\.csv is not a marl_tr sweep results file: "
                       r"it is not UTF-8 text \(byte 11\)"):
        _sweep(path)
    assert path.read_bytes() == b"key,preset\n\x88\x89garbage\n"


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
    ({"presets": ["nope"]}, "Unknown preset 'nope'. Available: happo, hatrpo"),
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
    ({"max_replicas": 0}, "max_replicas must be an integer >= 1, got 0"),
    ({"max_replicas": 2.0}, "max_replicas must be an integer >= 1"),
    ({"grid": {"replicas": [2]}}, "'replicas' cannot be a grid or fixed key; use the "
     "max_replicas argument"),
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
    assert "| preset | env kwargs |" in out
    assert "2 cell(s) run in 1 job(s), 0 already finished" in out
    assert main(argv) == 0
    assert "0 cell(s) run in 0 job(s), 2 already finished" in capsys.readouterr().out
    rows = ResultsFile(tmp_path / "s.csv").finished().values()
    assert sorted(r["job_replicas"] for r in rows) == [2, 2]


@pytest.mark.parametrize(("argv", "match"), [
    (["sweep", "--presets", "hatrpo,nope", "--iterations", "2"], "Unknown preset 'nope'"),
    (["sweep", "--presets", "hatrpo", "--grid", "sigma=(1,3),x", "--iterations", "2"],
     "sigma"),
    (["reproduce", "table3", "--n", "4", "--iterations", "2"], "n must be integers from"),
    (["reproduce", "table3", "--presets", "wmatrpo", "--iterations", "2"],
     "unknown preset\\(s\\) \\['wmatrpo'\\] here; choose from hatrpo"),
    (["reproduce", "figure1", "--env-kwargs", "n=3", "--iterations", "2"], "n=3"),
    # several keys joined into one --set: the message names the value and the fix
    (["sweep", "--presets", "hatrpo", "--set", "iterations=2,batch_size=1"],
     r"iterations must be an integer, got '2,batch_size=1'\. \('iterations=2,batch_size=1' "
     r"is one key with one value: give each key its own --set or --grid, e\.g\. "
     r"--set iterations=2 --set batch_size=1\)"),
])
def test_cli_refuses_bad_input(tmp_path, capsys, argv, match):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv", [
    ["sweep", "--presets", "hatrpo", "--max-replicas", "0"],
    ["reproduce", "table3", "--max-replicas", "x"],
    ["reproduce", "all", "--max-replicas", "-2"],
])
def test_cli_refuses_a_bad_max_replicas(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path / "x")])
    assert stop.value.code == 2
    assert "argument --max-replicas: expected an integer >= 1, got" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# -- Ray Tune backend ------------------------------------------------------------------------------
def test_ray_backend_runs_the_same_cells_one_trial_per_job(tmp_path):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.tune")
    options = {"seeds": "0,1,2,5", "grid": {"n": [2]}, "fixed": TINY}
    local = sweep(["hatrpo", "wmatrpo-caatr"], workers=1, max_replicas=1, **options)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = sweep(["hatrpo", "wmatrpo-caatr"], workers=2, backend="ray",
                       results=tmp_path / "ray.csv", **options)
    finally:
        ray.shutdown()
    assert not remote.failed and sorted(remote.ran) == sorted(c.key for c in remote.cells)
    assert sorted(job.seeds for job in remote.jobs) == [[0, 1, 2], [0, 1, 2], [5], [5]]
    assert [strip(r) for r in remote.rows] == [strip(r) for r in local.rows]
    assert sorted(r["job_replicas"] for r in remote.rows) == [1, 1] + [3] * 6
    assert len(ResultsFile(tmp_path / "ray.csv").finished()) == 8


def test_ctrl_c_on_a_pool_sweep_keeps_finished_rows(tmp_path):
    """A real interrupt: SIGINT to the process group of ``marl-tr sweep --workers 2`` running
    four jobs of two seeds; finished jobs keep all their rows, the rerun regroups the rest."""
    path = tmp_path / "sweep.csv"
    command = [sys.executable, "-m", "marl_tr", "sweep", "--presets", "hatrpo", "--seeds", "8",
               "--grid", "n=2", "--iterations", "150", "--out", str(path), "--workers", "2",
               "--max-replicas", "2"]
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
    assert len(kept) % 2 == 0  # whole jobs of two seeds
    again = sweep("hatrpo", seeds=8, grid={"n": [2]}, fixed={"iterations": 150}, results=path,
                  workers=1)
    assert sorted(again.skipped) == sorted(kept) and len(again.rows) == 8
