"""Results that match the code that made them: every row carries the code's fingerprint, a
resumed sweep reuses only rows of the running code (unless told otherwise), and the pages say
which code made what they show."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import marl_tr
from marl_tr.experiments import ResultsFile, reproduce_variants, sweep
from marl_tr.experiments.fingerprint import code_fingerprint, source_hash
from marl_tr.experiments.paper import OTHER_CODE_MARK

TINY = {"iterations": 3, "batch_size": 30}
FAKE = "0.0.0+000000000000"


def _sweep(path, **options):
    return sweep(["hatrpo"], seeds=2, grid={"n": [2]}, fixed=TINY, results=path, workers=1,
                 **options)


def _set_fingerprint(path: Path, key: str, fingerprint: str) -> None:
    """Rewrite one row's fingerprint in a results CSV (as if other code had made it)."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
        columns = list(rows[0])
    for row in rows:
        if row["key"] == key:
            row["fingerprint"] = fingerprint
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_the_fingerprint_is_the_version_and_a_hash_of_the_source(tmp_path):
    assert code_fingerprint() == f"{marl_tr.__version__}+{source_hash()}"
    # a hash of paths and contents: any change of a file changes it
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("x = 1\n")
    before = source_hash((package,))
    (package / "a.py").write_text("x = 2\n")
    assert source_hash((package,)) != before
    (package / "a.py").write_text("x = 1\n")
    assert source_hash((package,)) == before
    (package / "b.py").write_text("")
    assert source_hash((package,)) != before


def test_every_row_carries_the_running_codes_fingerprint(tmp_path):
    result = _sweep(tmp_path / "s.csv")
    assert {row["fingerprint"] for row in result.rows} == {code_fingerprint()}
    assert {row["fingerprint"] for row in ResultsFile(tmp_path / "s.csv").rows()} == {
        code_fingerprint()}


def test_resume_reuses_matching_cells_and_recomputes_other_codes(tmp_path, capsys):
    path = tmp_path / "s.csv"
    first = _sweep(path)
    stale = first.rows[1]["key"]
    _set_fingerprint(path, stale, FAKE)
    again = _sweep(path, echo=True)
    assert again.ran == [stale]  # recomputed: made by other code
    assert first.rows[0]["key"] in again.skipped
    assert "1 finished cell(s) were made by other code" in capsys.readouterr().err
    finished = ResultsFile(path).finished()  # the newest row of a key wins
    assert finished[stale]["fingerprint"] == code_fingerprint()
    # on request, a row of other code is reused as it is
    _set_fingerprint(path, stale, FAKE)
    kept = _sweep(path, reuse_other_code=True)
    assert kept.ran == [] and {row["fingerprint"] for row in kept.rows} == {
        FAKE, code_fingerprint()}


def test_pages_mark_lines_made_by_other_code_and_list_the_fingerprints(tmp_path):
    out = tmp_path / "variants"
    presets = ["hatrpo", "wmatrpo-tr"]
    first = reproduce_variants(presets=presets, seeds=1, out=out, workers=1, **TINY)
    page = first.files["markdown"].read_text()
    assert OTHER_CODE_MARK not in page
    assert f"{code_fingerprint()} (2 cells, the running code)" in page
    cells = out / "cells.csv"
    _set_fingerprint(cells, first.sweep.rows[1]["key"], FAKE)
    reused = reproduce_variants(presets=presets, seeds=1, out=out, workers=1,
                                reuse_other_code=True, **TINY)
    page = reused.files["markdown"].read_text()
    marked = [line for line in page.splitlines() if OTHER_CODE_MARK in line]
    assert len(marked) == 2 and "wmatrpo-tr" in marked[0]  # the table line, and the note
    assert f"{FAKE} (1 cells, OTHER CODE)" in page


PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.mark.slow
@pytest.mark.skipif(not (PUBLISHED / "table3" / "cells.csv").exists(),
                    reason="no published results")
def test_published_table3_cells_reproduce():
    """One published cell per Table 3 method (n = 3, seed 0) rerun at the page's budget.

    Presets the sensitivity study calls stable must give the published final means to the
    page's printed precision (3 decimals); for chaotic ones, whose per-seed numbers depend on
    rounding, the published row must come from the running code (same fingerprint), so that
    rerunning the page's command on this code gives the page. Run with
    ``python -m pytest -q -m slow tests/experiments/test_fingerprints.py``.
    """
    rows = {(r["preset"], r["n_agents"], r["seed"]): r
            for r in ResultsFile(PUBLISHED / "table3" / "cells.csv").rows()}
    stable = _stable_presets()
    checked = 0
    for (preset, n, seed), row in sorted(rows.items()):
        if n != 3 or seed != 0:
            continue
        if preset not in stable:
            assert row["fingerprint"] == code_fingerprint(), (
                f"{preset}: the published row was made by {row['fingerprint']}, not by the "
                f"running code {code_fingerprint()}: regenerate docs/results")
            continue
        result = marl_tr.train(preset=preset, env_kwargs={"n": 3}, seed=0,
                               iterations=row["iterations"], batch_size=row["batch_size"])
        means = result.final_means()[:, 0]
        assert [round(m, 3) for m in means] == [round(m, 3) for m in row["final_means"]], preset
        checked += 1
    assert checked >= 1


def _stable_presets() -> set[str]:
    path = PUBLISHED / "sensitivity" / "sensitivity.csv"
    if not path.exists():
        return set()
    with path.open(newline="") as handle:
        return {row["preset"] for row in csv.DictReader(handle) if row["stable"] == "True"}
