"""Summaries of sweep rows: grouping, mean and sd over seeds, CSV and Markdown output."""

from __future__ import annotations

import csv
import json
import math
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "fmt",
    "fmt_mean_sd",
    "fmt_vector",
    "group_rows",
    "markdown_document",
    "markdown_table",
    "mean_sd",
    "provenance",
    "vector_mean",
    "write_csv",
]


def group_rows(rows: Iterable[Mapping[str, Any]], keys: Sequence[str] | Callable[[Any], Any]
               ) -> dict[Any, list[Mapping[str, Any]]]:
    """Rows grouped by the values of ``keys`` (or a key function), in first-seen order."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        key = keys(row) if callable(keys) else tuple(row[k] for k in keys)
        groups.setdefault(key, []).append(row)
    return groups


def mean_sd(values: Iterable[Any]) -> tuple[float, float]:
    """Mean and sample sd (``ddof=1``) of the finite values; NaN where undefined."""
    array = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
    array = array[np.isfinite(array)]
    if not len(array):
        return math.nan, math.nan
    sd = float(np.std(array, ddof=1)) if len(array) > 1 else math.nan
    return float(np.mean(array)), sd


def vector_mean(vectors: Iterable[Sequence[float]]) -> list[float]:
    """Element-wise mean of equal-length vectors (an empty list if there are none)."""
    stacked = [list(v) for v in vectors if v]
    if not stacked:
        return []
    return np.mean(np.array(stacked, dtype=float), axis=0).tolist()


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; an em dash for NaN/None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, (bool, str)):
        return str(value)
    return f"{float(value):.{digits}f}"


def fmt_significant(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (``4.2e-05``, ``0.0123``, ``12.3``); an em
    dash for NaN/None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{float(value):.{digits}g}"


def fmt_mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """``mean ± sd`` (just the mean when the sd is undefined)."""
    if not math.isfinite(sd):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(sd, digits)}"


def fmt_vector(values: Sequence[float] | None, digits: int = 3) -> str:
    """``(v1, v2, ...)``; an em dash for none."""
    if not values:
        return "—"
    return "(" + ", ".join(fmt(v, digits) for v in values) + ")"


def _cell_text(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows (columns: the first row's keys; lists as JSON, floats with ``repr``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0]) if rows else []
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell_text(row.get(c)) for c in columns])
    return path


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def provenance() -> str:
    """``marl_tr <version>, commit <sha>[+dirty], <UTC date>`` (commit when in a git tree).

    ``+dirty``: the library's source (``marl_tr``, ``marl_tr_envs``, ``pyproject.toml``)
    differs from the commit; generated pages and results being rewritten do not count.
    """
    import marl_tr

    text = f"marl_tr {marl_tr.__version__}"
    root = Path(marl_tr.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                             capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "marl_tr", "marl_tr_envs", "pyproject.toml"],
                               cwd=root, text=True, capture_output=True, timeout=10).stdout
        text += f", commit {sha}{'+dirty' if dirty.strip() else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return text + f", {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"


def markdown_document(title: str, command: Sequence[str], body: str,
                      notes: Sequence[str] = ()) -> str:
    """A Markdown page: title, the command that made it, provenance, body, notes."""
    parts = [f"# {title}", "", "Made by:", "", "```", shlex.join(command), "```", "",
             f"({provenance()})", "", body.rstrip(), ""]
    if notes:
        parts += ["Notes:", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(parts)
