"""Jobs: grouping a sweep's pending seeds into replicated ``train`` calls, planning them for the
pool, resuming inside a partly finished group, and rows identical to one run per seed."""

from __future__ import annotations

import math

import pytest

import marl_tr.api
import marl_tr.experiments.sweeps as sweeps
from marl_tr.experiments import RUN_COLUMNS, Cell, Job, ResultsFile, make_jobs, plan_jobs, sweep
from marl_tr.experiments.results import format_row

TINY = {"iterations": 6, "batch_size": 30}


def cells(seeds, preset="hatrpo", n=2, **overrides):
    return [Cell(preset, seed, env_kwargs={"n": n}, overrides={**TINY, **overrides})
            for seed in seeds]


def seeds_of(jobs):
    return [job.seeds for job in jobs]


def strip(row):
    """A row as CSV text without the columns that say how and when it ran."""
    return {k: v for k, v in format_row(row).items() if k not in RUN_COLUMNS}


# -- grouping --------------------------------------------------------------------------------------
def test_consecutive_seeds_of_one_configuration_form_one_job():
    assert seeds_of(make_jobs(cells([0, 1, 2, 5, 6]))) == [[0, 1, 2], [5, 6]]
    assert seeds_of(make_jobs(cells([6, 2, 0, 5, 1]))) == [[0, 1, 2], [5, 6]]  # any order
    assert seeds_of(make_jobs(cells([3, 9]))) == [[3], [9]]


def test_configurations_never_share_a_job():
    mixed = [*cells([0, 1], "hatrpo"), *cells([0, 1], "wmatrpo-caatr"), *cells([2], n=3),
             *cells([2], iterations=7), *cells([2])]
    jobs = make_jobs(mixed)
    assert seeds_of(jobs) == [[0, 1, 2], [0, 1], [2], [2]]
    assert [job.cells[0].preset for job in jobs] == ["hatrpo", "wmatrpo-caatr", "hatrpo",
                                                     "hatrpo"]
    assert all(len({cell.config_key for cell in job.cells}) == 1 for job in jobs)


@pytest.mark.parametrize(("seeds", "max_replicas", "expected"), [
    (range(20), 16, [10, 10]),       # the fewest jobs, near-equal
    (range(17), 16, [9, 8]),
    (range(16), 16, [16]),
    (range(7), 3, [3, 2, 2]),
    (range(4), 1, [1, 1, 1, 1]),     # max_replicas=1: one job per cell, as before replicas
    ([0, 1, 2, 3, 7, 8], 2, [2, 2, 2]),
])
def test_max_replicas_splits_a_run_of_seeds(seeds, max_replicas, expected):
    jobs = make_jobs(cells(seeds), max_replicas)
    assert [job.replicas for job in jobs] == expected
    assert [seed for job in jobs for seed in job.seeds] == sorted(seeds)


def test_single_configurations_run_one_seed_per_job():
    group = [*cells([0, 1, 2]), *cells([0, 1, 2], "wmatrpo")]
    jobs = make_jobs(group, single={group[3].config_key})
    assert [(job.cells[0].preset, job.replicas) for job in jobs] == [
        ("hatrpo", 3), ("wmatrpo", 1), ("wmatrpo", 1), ("wmatrpo", 1)]


def test_job_checks_its_cells_and_round_trips():
    job = Job(tuple(cells([4, 5, 6])))
    assert Job.from_dict(job.to_dict()) == job and job.replicas == 3
    assert job.config()["seed"] == 4 and job.config()["replicas"] == 3
    assert job.label() == "hatrpo seeds 4-6 n=2,iterations=6,batch_size=30"
    assert seeds_of(job.halves()) == [[4, 5], [6]]
    with pytest.raises(ValueError, match="consecutive"):
        Job(tuple(cells([0, 2])))
    with pytest.raises(ValueError, match="share one configuration"):
        Job((*cells([0]), *cells([1], "wmatrpo")))
    with pytest.raises(ValueError, match="at least one cell"):
        Job(())
    with pytest.raises(ValueError, match="cell given twice"):
        make_jobs([*cells([0]), *cells([0])])
    with pytest.raises(ValueError, match="max_replicas must be an integer >= 1"):
        make_jobs(cells([0]), 0)


# -- planning for the pool -------------------------------------------------------------------------
def linear_cost(job):
    """A stand-in cost: agents x replicas, plus a fixed part per job."""
    return job.cells[0].env_kwargs["n"] * (10 + job.replicas)


def test_plan_submits_the_most_expensive_jobs_first():
    jobs = make_jobs([*cells(range(4), n=3), *cells(range(4), n=9), *cells(range(2), n=5)])
    for workers in (1, 2):
        planned = plan_jobs(jobs, workers, linear_cost)
        assert [job.cells[0].env_kwargs["n"] for job in planned] == [9, 5, 3]  # 126, 60, 42
        assert sorted(map(linear_cost, planned), reverse=True) == list(map(linear_cost, planned))


def test_plan_splits_a_job_that_would_leave_a_worker_idle():
    (job,) = make_jobs(cells(range(10)))
    assert seeds_of(plan_jobs([job], 1, linear_cost)) == [list(range(10))]
    assert seeds_of(plan_jobs([job], 2, linear_cost)) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    # with a large fixed part per job, splitting costs more than it saves
    assert len(plan_jobs([job], 2, lambda j: 1000 + j.replicas)) == 1


def test_plan_balances_table3_on_two_workers():
    table = [cell for preset in ("hatrpo", "hatrpo-caatr", "wmatrpo-caatr")
             for n in (3, 5, 7, 9) for cell in cells(range(10), preset, n, iterations=4000)]
    _, profiles = sweeps._prepare(["hatrpo", "hatrpo-caatr", "wmatrpo-caatr"], 10,
                                  settings=[{"n": n} for n in (3, 5, 7, 9)],
                                  fixed={**TINY, "iterations": 4000}, replicas=True)
    def cost(job):
        return profiles[job.config_key].cost(job.replicas)

    planned = plan_jobs(make_jobs(table), 2, cost)
    assert len(planned) == 12 and {job.replicas for job in planned} == {10}
    assert planned[0].cells[0].preset == "wmatrpo-caatr" and planned[0].cells[0].env_kwargs == {
        "n": 9}
    total = sum(map(cost, planned))
    assert sweeps._makespan(map(cost, planned), 2) < 1.02 * total / 2  # within 2 % of even
    hatrpo_9 = make_jobs(cells(range(10), "hatrpo", 9, iterations=4000))[0]
    assert cost(planned[0]) > 2 * cost(hatrpo_9)  # W-MATRPO costs more per iteration


# -- rows: batched == one run per seed -------------------------------------------------------------
PARITY = {"seeds": "0,1,2,5,6", "grid": {"n": [2, 3]}, "fixed": TINY, "workers": 1}
PRESETS = ["hatrpo", "hatrpo-caatr", "wmatrpo-caatr"]


def test_batched_rows_equal_one_run_per_seed(tmp_path):
    single = sweep(PRESETS, max_replicas=1, results=tmp_path / "single.csv", **PARITY)
    batched = sweep(PRESETS, results=tmp_path / "batched.csv", **PARITY)
    pairs = sweep(PRESETS, max_replicas=2, **PARITY)
    assert not single.failed and not batched.failed and not pairs.failed
    assert len(single.jobs) == 30 and len(batched.jobs) == 12 and len(pairs.jobs) == 18
    assert sorted(seeds_of(batched.jobs)) == sorted([[0, 1, 2], [5, 6]] * 6)
    expected = [strip(row) for row in single.rows]
    assert len(expected) == 30
    assert [strip(row) for row in batched.rows] == expected
    assert [strip(row) for row in pairs.rows] == expected
    # what the file holds reads back the same
    on_disk = ResultsFile(tmp_path / "batched.csv").finished()
    assert [strip(on_disk[row["key"]]) for row in single.rows] == expected
    for row in batched.rows:  # the job columns
        size = 3 if row["seed"] < 5 else 2
        assert row["job_replicas"] == size and row["job_seed"] == (0 if size == 3 else 5)
        assert row["wall_time"] == pytest.approx(row["job_wall_time"] / size, rel=1e-12)
        assert row["cell_time"] == pytest.approx(row["job_time"] / size, rel=1e-12)
        assert row["job_wall_time"] <= row["job_time"]
    for row in single.rows:
        assert row["job_replicas"] == 1 and row["job_seed"] == row["seed"]
        assert row["wall_time"] == row["job_wall_time"]


def test_resume_runs_only_the_missing_cells_of_a_partly_finished_group(tmp_path, count_runs):
    path = tmp_path / "sweep.csv"
    counter = count_runs()
    sweep("hatrpo", seeds="0,1,4", grid={"n": [2]}, fixed=TINY, results=path, workers=1)
    assert counter.jobs == [[0, 1], [4]]
    counter = count_runs()
    resumed = sweep("hatrpo", seeds=7, grid={"n": [2]}, fixed=TINY, results=path, workers=1)
    assert sorted(counter.jobs) == [[2, 3], [5, 6]] and len(resumed.skipped) == 3
    assert [row["seed"] for row in resumed.rows] == list(range(7))
    alone = sweep("hatrpo", seeds=7, grid={"n": [2]}, fixed=TINY, workers=1, max_replicas=1)
    assert [strip(row) for row in resumed.rows] == [strip(row) for row in alone.rows]


def test_configurations_that_cannot_run_replicas_run_one_seed_per_job(monkeypatch, capsys):
    real = marl_tr.api.train

    def no_replicas(*args, **kwargs):
        if kwargs.get("replicas", 1) > 1:
            raise ValueError("needs agents with identical spaces (stand-in)")
        return real(*args, **kwargs)

    monkeypatch.setattr(marl_tr.api, "train", no_replicas)
    result = sweep("hatrpo", seeds=3, grid={"n": [2]}, fixed=TINY, workers=1, echo=True)
    assert not result.failed and seeds_of(result.jobs) == [[0], [1], [2]]
    assert "cannot run replicas; its seeds run one per job" in capsys.readouterr().err
    assert all(math.isfinite(row["distance"]) for row in result.rows)
