"""The results CSV of a sweep: one row per finished cell, appended as soon as its job finishes.

The file is the sweep's memory: a rerun reads it and skips every cell whose ``key`` is in it.
The rows of one job (one replicated run of several seeds) are written with one ``write`` call,
flushed and ``fsync``-ed under an exclusive lock, so an interrupted sweep loses no finished
row; a row torn by a hard kill (a last line with no newline) is dropped when the file is next
opened (the job's complete rows before it stay: each row stands alone). Floats are written
with ``repr`` (they read back bit for bit), lists and mappings as JSON.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "RUN_COLUMNS", "ResultsFile", "format_row", "parse_row"]

#: The results CSV's columns and how each is stored: str, int, float, bool or json.
COLUMNS: dict[str, str] = {
    "key": "str",                   # stable hash of the cell (preset, env, kwargs, seed, overrides)
    "preset": "str",
    "env": "str",
    "env_kwargs": "json",           # the env keywords of the cell
    "overrides": "json",            # TrainConfig fields the cell sets (iterations, batch_size, ...)
    "seed": "int",
    "n_agents": "int",
    "iterations": "int",            # resolved
    "batch_size": "int",            # resolved
    "final_means": "json",          # per agent (a list of lists for multi-dim actions)
    "final_stds": "json",
    "distance": "float",            # ||final means - (g, ..., g)||_2, Table 3's "Distance"
    "expected_reward": "float",     # E[r] of the final joint policy, actions clipped
    "expected_reward_unclipped": "float",
    "peak_local": "float",          # r(l, ..., l)
    "peak_global": "float",         # r(g, ..., g)
    "higher_peak": "str",           # local, global or tie
    "sigma": "json",                # the game's widths per agent
    "local_center": "float",
    "global_center": "float",
    "left_basin_fraction": "float",  # fraction of agents with |mu - g| < |mu - l|
    "inside_bounds_fraction": "float",  # fraction of agents with low <= mu <= high
    "reached_higher_peak": "bool",  # E[r] >= max(0.9 r_hi, (r_hi + r_lo) / 2)
    "final_reward_mean": "float",   # the last batch's mean reward
    "final_return_mean": "float",   # episode return (per agent), mean of the last 10 iterations
    "final_return_team": "float",   # the same for the team's sum over agents
    "eval_return_mean": "float",    # the last evaluation's mean episode return (per agent)
    "final_probs": "json",          # per agent, categorical policies' final probabilities
    "optimal_joint_probability": "float",  # matrix games: P(an optimal joint action)
    "lambda_mean": "float",         # mean logged dual variable (ot_dual, primal_dual)
    "ratio_mean": "json",           # per agent: mean divergence/radius over moves
    "ratio_max": "json",            # per agent: largest divergence/radius
    "ratio_over_fraction": "json",  # per agent: fraction of moves with ratio > 1
    "moved_fraction": "json",       # per agent: fraction of iterations it moved
    "overshoot_mean": "float",      # pooled over agents
    "overshoot_max": "float",
    "overshoot_fraction": "float",
    "resolved_config": "json",      # the run's full TrainConfig (library defaults included)
    "fingerprint": "str",           # the code that made the row: version+source hash
    "wall_time": "float",           # the cell's share of its job's loop: job_wall_time / replicas
    "cell_time": "float",           # the cell's share of its whole job: job_time / job_replicas
    "job_replicas": "int",          # seeds of the cell's job (one replicated train call)
    "job_seed": "int",              # the job's first seed (it ran job_seed .. +job_replicas-1)
    "job_wall_time": "float",       # seconds in the job's training loop (all its replicas)
    "job_time": "float",            # seconds for the whole job (set-up and measures included)
    "finished_at": "str",           # UTC, ISO 8601
}

#: Columns that say how and when a cell ran (its job, the machine's speed), not what it
#: produced: every other column is the same whether the cell ran alone or in a job of many
#: seeds (replica r of a job is bit for bit the run with seed job_seed + r).
RUN_COLUMNS: tuple[str, ...] = ("wall_time", "cell_time", "job_replicas", "job_seed",
                                "job_wall_time", "job_time", "finished_at")


def _format(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if kind == "float":  # NaN as empty: it reads back as the one ``math.nan``
        return "" if math.isnan(float(value)) else repr(float(value))
    if kind == "bool":
        return "1" if value else "0"
    if kind == "int":
        return str(int(value))
    return str(value)


def _parse(kind: str, text: str) -> Any:
    if kind == "str":
        return text
    if text == "":
        return math.nan if kind == "float" else None
    if kind == "json":
        return json.loads(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text == "1"
    return int(text)


def format_row(row: Mapping[str, Any]) -> dict[str, str]:
    """A row as the CSV's strings (missing columns become empty)."""
    return {name: _format(kind, row.get(name)) for name, kind in COLUMNS.items()}


def parse_row(text_row: Mapping[str, str]) -> dict[str, Any]:
    """A CSV row back as values.

    Raises:
        ValueError: a column is missing or cannot be parsed.
    """
    missing = [name for name in COLUMNS if text_row.get(name) is None]
    if missing:
        raise ValueError(f"missing column(s) {missing}")
    return {name: _parse(kind, text_row[name]) for name, kind in COLUMNS.items()}


class ResultsFile:
    """One sweep's results CSV (see the module docstring).

    Args:
        path: the CSV file; created with its header on the first append.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _header(self) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(COLUMNS)
        return buffer.getvalue()

    def _check_header(self, first_line: str) -> None:
        found = next(csv.reader([first_line]), [])
        if found != list(COLUMNS):
            raise ValueError(
                f"{self.path} is not a marl_tr sweep results file of this version: its header "
                f"is {found[:6]}... but the columns are {list(COLUMNS)[:6]}...; give another "
                "results file"
            )

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every complete, parseable row (a torn or unreadable line is skipped)."""
        if not self.path.exists():
            return
        try:
            with self.path.open(newline="", encoding="utf-8") as handle:
                text = handle.read()
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{self.path} is not a marl_tr sweep results file: it is not UTF-8 text "
                f"(byte {exc.start}); give another results file") from None
        if not text:
            return
        lines = text.splitlines(keepends=True)
        self._check_header(lines[0])
        if not lines[-1].endswith("\n"):
            lines = lines[:-1]  # torn by a hard kill
        for text_row in csv.DictReader(lines):
            with contextlib.suppress(ValueError, TypeError):
                row = parse_row(text_row)
                if row["key"]:
                    yield row

    def finished(self) -> dict[str, dict[str, Any]]:
        """Rows by cell key (the last row wins if a key appears twice)."""
        return {row["key"]: row for row in self.rows()}

    def append(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Append one row durably; returns the row as it reads back."""
        return self.extend([row])[0]

    def extend(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Append rows durably with one write (a job's rows land together); returns them as
        they read back."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
        for row in rows:
            writer.writerow(format_row(row))
        text = buffer.getvalue()
        if not text:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as handle, _locked(handle):
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                handle.write(self._header().encode())
            else:
                self._repair_tail(handle, size)
            handle.write(text.encode())
            handle.flush()
            os.fsync(handle.fileno())
        return [parse_row(line) for line in csv.DictReader(io.StringIO(self._header() + text))]

    def _repair_tail(self, handle: Any, size: int) -> None:
        """Check the header; cut a torn last line (no newline) before appending."""
        handle.seek(0)
        self._check_header(handle.readline().decode(errors="replace"))
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        handle.truncate(handle.read().rfind(b"\n") + 1)


@contextlib.contextmanager
def _locked(handle: Any) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
