"""Shared fixtures of the loop tests: the test plug-in module on sys.path, metric-row
comparison and parameter snapshots."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


@pytest.fixture
def plugins(monkeypatch):
    """Make ``loop_plugins`` importable (for 'loop_plugins:...' config strings); clears the
    recording solver's calls."""
    monkeypatch.syspath_prepend(str(HERE))
    import loop_plugins

    loop_plugins.ShiftSolver.calls.clear()
    yield loop_plugins
    loop_plugins.ShiftSolver.calls.clear()


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def assert_rows_equal(rows_a, rows_b) -> None:
    """Metric rows equal key by key, exactly (NaN equals NaN)."""
    assert len(rows_a) == len(rows_b)
    for k, (a, b) in enumerate(zip(rows_a, rows_b)):
        assert list(a) == list(b), f"row {k}: columns differ"
        diff = {key: (a[key], b[key]) for key in a if not _same(a[key], b[key])}
        assert not diff, f"row {k} differs: {diff}"


@pytest.fixture
def rows_equal():
    """``rows_equal(rows_a, rows_b)``: assert two lists of metric rows are identical."""
    return assert_rows_equal


@pytest.fixture
def snapshot():
    """``snapshot(policies)``: a list of flat parameter copies."""
    return lambda policies: [p.flat_parameters().clone() for p in policies]


@pytest.fixture
def params_equal():
    """``params_equal(a, b)``: bitwise equality of two lists of parameter vectors/policies."""

    def check(a, b) -> bool:
        a = [p if isinstance(p, torch.Tensor) else p.flat_parameters() for p in a]
        b = [p if isinstance(p, torch.Tensor) else p.flat_parameters() for p in b]
        return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))

    return check
