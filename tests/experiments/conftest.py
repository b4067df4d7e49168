"""Shared fixtures of the experiment-layer tests (tiny budgets: a few iterations per run)."""

from __future__ import annotations

import pytest

import marl_tr.experiments.sweeps as sweeps


@pytest.fixture
def tiny() -> dict[str, int]:
    """The budget of every tiny run."""
    return {"iterations": 6, "batch_size": 30}


class CallCounter:
    """Stands in for ``sweeps.run_job``, recording the seeds of every job and the key of every
    cell it runs; raises ``error`` on job number ``fail_on_call``."""

    def __init__(self, real, fail_on_call: int | None = None,
                 error: type[BaseException] = KeyboardInterrupt) -> None:
        self.real, self.fail_on_call, self.error = real, fail_on_call, error
        self.keys: list[str] = []
        self.jobs: list[list[int]] = []
        self.calls = 0

    def __call__(self, job):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise self.error("stopped by the test")
        rows = self.real(job)
        self.jobs.append([row["seed"] for row in rows])
        self.keys.extend(row["key"] for row in rows)
        return rows


@pytest.fixture
def count_runs(monkeypatch):
    """A function installing a fresh ``CallCounter`` around the real ``run_job`` (in-process
    sweeps, ``workers=1``, look ``run_job`` up when they call it)."""
    real = sweeps.run_job

    def install(**options) -> CallCounter:
        counter = CallCounter(real, **options)
        monkeypatch.setattr(sweeps, "run_job", counter)
        return counter

    return install
