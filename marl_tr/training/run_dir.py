"""A run directory: ``config.yaml`` (resolved, loadable), ``metrics.csv``, ``checkpoint.pt``.

Metrics rows are appended as the run goes (flushed regularly and whenever the run stops,
also on an error), so nothing written is lost. On resume, rows beyond the checkpoint's
iteration are dropped first so that the file equals that of an uninterrupted run.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from marl_tr.config import TrainConfig

__all__ = ["MetricsWriter", "RunDirectory"]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"


class MetricsWriter:
    """Appends metric rows to a CSV file (header from the first row)."""

    def __init__(self, path: Path, flush_every: int = 200) -> None:
        self.path = path
        self.flush_every = flush_every
        self._pending: list[dict[str, Any]] = []
        self._columns: list[str] | None = None
        if path.exists() and path.stat().st_size:
            with path.open(newline="") as handle:
                self._columns = next(csv.reader(handle), None)

    def write(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        new_file = self._columns is None
        if new_file:
            self._columns = list(self._pending[0])
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._columns, restval="nan",
                                    extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerows(self._pending)
        self._pending = []

    def truncate_after(self, iteration: int) -> None:
        """Drop rows whose ``iteration`` is >= ``iteration`` (before resuming there)."""
        self.flush()
        if not self.path.exists():
            return
        with self.path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
            columns = self._columns
        kept = [r for r in rows if int(r["iteration"]) < iteration]
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns or [])
            writer.writeheader()
            writer.writerows(kept)


def read_metrics(path: str | Path) -> list[dict[str, float | str]]:
    """Read a ``metrics.csv`` back (numbers as floats, the agent order as text)."""
    with Path(path).open(newline="") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


class RunDirectory:
    """Files of one run.

    Args:
        path: the directory (created if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsWriter(self.path / METRICS_FILE)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    def write_config(self, config: TrainConfig) -> None:
        config.to_yaml(self.config_path)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.metrics.flush()
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any]:
        if not self.checkpoint_path.exists():
            raise FileNotFoundError(f"no checkpoint to resume from in {self.path}")
        return torch.load(self.checkpoint_path, weights_only=False)


class TensorBoardWriter:
    """Scalar metrics to TensorBoard (needs the ``tensorboard`` package)."""

    def __init__(self, path: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError(
                "tensorboard=True needs the tensorboard package: pip install tensorboard"
            ) from exc
        self.writer = SummaryWriter(str(path))

    def write(self, row: dict[str, Any], numeric_keys: Sequence[str] | None = None) -> None:
        step = int(row["iteration"])
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "iteration" and math.isfinite(value):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()
