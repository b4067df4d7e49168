"""Learning curves from run directories: ``marl-tr plot RUN_DIR... [--metric NAME] [--out F]``.

Every run directory holds a ``metrics.csv`` (one row per iteration and replica) and the
resolved ``config.yaml``. ``learning_curves`` reads them, treats every replica of every run as
one seed, groups the seeds of the same setting (equal configs but for the seed, the replicas
and the budget) and draws, per group, the mean over seeds of a metric against env steps with
a band of one standard deviation (sample sd, ``ddof=1``; no band for a single seed). A metric
that is NaN in some iterations (``eval_return_mean`` between evaluations, an episode return in
an iteration where no episode ended) is drawn through the iterations where it has values.
Drawn with matplotlib's ``Figure`` API (no pyplot, no display: the Agg canvas renders the
PNG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marl_tr.training.run_dir import RunDirectory, check_output_path, read_config, read_metrics

__all__ = ["Curve", "learning_curves", "load_curves", "plot_curves"]

#: Config fields that do not make two runs different settings (seeds of one setting).
_SEED_FIELDS = ("seed", "replicas", "iterations", "run_dir", "progress", "log_interval",
                "checkpoint_interval", "checkpoint_seconds", "tensorboard")


@dataclass
class Curve:
    """One setting's seeds of one metric.

    Attributes:
        label: the setting's name in the legend.
        x: env steps (or iterations) ``[K]``.
        seeds: the metric per seed ``[S, K]`` (NaN where a seed has no value).
    """

    label: str
    x: np.ndarray
    seeds: np.ndarray

    def mean_sd(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, mean, sd)`` over the seeds, at the points where some seed has a value (sd:
        ``ddof=1``, NaN with one value)."""
        finite = np.isfinite(self.seeds)
        keep = finite.any(0)
        values = self.seeds[:, keep]
        counts = finite[:, keep].sum(0)
        mean = np.nanmean(values, axis=0)
        sd = np.full(mean.shape, math.nan)
        several = counts > 1
        if several.any():
            sd[several] = np.nanstd(values[:, several], axis=0, ddof=1)
        return self.x[keep], mean, sd


def _label(config: Any) -> str:
    preset = config.preset or "custom"
    kwargs = ",".join(f"{k}={v}" for k, v in sorted(config.env_kwargs.items()))
    return f"{preset} on {config.env}" + (f" ({kwargs})" if kwargs else "")


def load_curves(run_dirs: Sequence[str | Path], metric: str = "episode_return_mean",
                x: str = "env_steps") -> list[Curve]:
    """The curves of ``metric`` in ``run_dirs``, one per setting (see the module doc).

    Args:
        run_dirs: run directories (each with ``config.yaml`` and ``metrics.csv``).
        metric: a column of ``metrics.csv``.
        x: ``"env_steps"`` (joint transitions per replica) or ``"iteration"``.

    Raises:
        FileNotFoundError: a directory without ``metrics.csv``.
        ValueError: an unknown ``x`` or a metric no run has (the columns are listed).
    """
    if x not in ("env_steps", "iteration"):
        raise ValueError(f"x must be 'env_steps' or 'iteration', got {x!r}")
    if not run_dirs:
        raise ValueError("give at least one run directory")
    groups: dict[str, tuple[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
    for run_dir in run_dirs:
        directory = RunDirectory.existing(run_dir, "RUN_DIR")
        if not directory.metrics_path.exists():
            raise FileNotFoundError(f"{str(directory.path)!r} has no metrics.csv")
        config = read_config(directory.config_path, "config.yaml")
        rows = read_metrics(directory.metrics_path)
        if rows and metric not in rows[0]:
            numeric = [k for k, v in rows[0].items() if isinstance(v, float)]
            raise ValueError(f"{str(directory.path)!r} has no metric {metric!r}; its columns: "
                             f"{', '.join(numeric)}")
        key = repr(sorted((k, repr(v)) for k, v in config.to_dict().items()
                          if k not in _SEED_FIELDS))
        label, seeds = groups.setdefault(key, (_label(config), []))
        for replica in sorted({int(row.get("replica", 0)) for row in rows}):
            mine = [row for row in rows if int(row.get("replica", 0)) == replica]
            iterations = np.array([row["iteration"] for row in mine], dtype=float)
            if x == "iteration":
                xs = iterations + 1
            elif "env_steps" in mine[0]:
                xs = np.array([row["env_steps"] for row in mine], dtype=float)
            else:  # a run from before env_steps was logged
                xs = (iterations + 1) * config.batch_size
            ys = np.array([row[metric] for row in mine], dtype=float)
            seeds.append((xs, ys))
    curves = []
    labels = [label for label, _ in groups.values()]
    for index, (label, seeds) in enumerate(groups.values()):
        if labels.count(label) > 1:
            label = f"{label} [{index + 1}]"
        grid = np.unique(np.concatenate([xs for xs, _ in seeds]))
        table = np.full((len(seeds), len(grid)), math.nan)
        for s, (xs, ys) in enumerate(seeds):
            table[s, np.searchsorted(grid, xs)] = ys
        curves.append(Curve(f"{label} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})",
                            grid, table))
    return curves


def plot_curves(curves: Sequence[Curve], out: str | Path, metric: str,
                x: str = "env_steps") -> Path:
    """Draw ``curves`` (mean and a +-1 sd band each) into the PNG ``out``."""
    try:
        from matplotlib.figure import Figure  # no pyplot: Agg renders the PNG headless
    except ImportError as exc:
        raise ValueError(f"plotting needs matplotlib: pip install -e \".[plot]\" ({exc})") from None
    out = check_output_path("--out", out, kind="file")
    figure = Figure(figsize=(8, 5), dpi=100)
    ax = figure.add_subplot()
    for curve in curves:
        xs, mean, sd = curve.mean_sd()
        (line,) = ax.plot(xs, mean, label=curve.label, linewidth=1.5)
        band = np.isfinite(sd)
        if band.any():
            ax.fill_between(xs, np.where(band, mean - sd, mean), np.where(band, mean + sd, mean),
                            color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("env steps (joint transitions per seed)" if x == "env_steps" else "iteration")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out


def learning_curves(run_dirs: Sequence[str | Path], metric: str = "episode_return_mean",
                    out: str | Path = "learning_curves.png", x: str = "env_steps") -> Path:
    """Read the runs and draw their learning curves into ``out`` (a PNG); returns its path.

    Raises:
        ValueError / FileNotFoundError: as ``load_curves``, or a bad ``out``.
    """
    check_output_path("--out", out, kind="file")
    return plot_curves(load_curves(run_dirs, metric, x), out, metric, x)
