"""Figure 1: the 2-agent differential game's mean-action paths over its reward contours.

    from marl_tr.experiments import reproduce_figure1
    figure = reproduce_figure1(iterations=4000, seed=0, out="results/figure1")
    figure.files["png"]

The three methods run in parallel (one process each); every path starts at the initial
policy's mean and follows ``(mean_0_0, mean_0_1)`` after each iteration. The contours are eq. 30
on the action box, from the game core; both peaks (their rewards in the legend, the higher one
starred) and the start point are marked. Drawn with matplotlib's ``Figure`` API, no pyplot: the
PNG is rendered by the headless Agg canvas, whatever backend the caller uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marl_tr.experiments.paper import TABLE2, TABLE3_PRESETS
from marl_tr.experiments.report import (
    fmt,
    fmt_vector,
    markdown_document,
    markdown_table,
    write_csv,
)
from marl_tr.experiments.results import format_row, parse_row
from marl_tr.experiments.sweeps import default_workers, execute, make_cells, train_cell

__all__ = ["FIGURE_DPI", "FIGURE_SIZE", "Figure1", "draw_figure1", "reproduce_figure1",
           "run_trajectory"]

#: Figure size in inches and resolution: 8 x 6.4 in at 100 dpi is an 800 x 640 PNG.
FIGURE_SIZE: tuple[float, float] = (8.0, 6.4)
FIGURE_DPI = 100
_GRID_POINTS = 241


@dataclass
class Figure1:
    """Figure 1's data and files.

    Attributes:
        paths: ``{preset: array [iterations + 1, 2]}``, the start then each iteration's means.
        rows: one results record per preset (as a sweep's rows).
        surface: the contour data (``x``, ``y``, ``z``) and the game's centres and peaks.
        files: paths written (``png``, ``csv``, ``markdown``).
    """

    paths: dict[str, np.ndarray]
    rows: list[dict[str, Any]]
    surface: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def _start(result: Any) -> list[float]:
    mean = result.config.init_mean
    if mean is None:
        mean = (getattr(result.game, "initial_policy", None) or {}).get("mean", math.nan)
    values = np.broadcast_to(np.asarray(mean, dtype=float).ravel(), (2,))
    return values.tolist()


def run_trajectory(cell: Mapping[str, Any]) -> dict[str, Any]:
    """Train one 2-agent cell; return its record, mean-action path and reward surface."""
    result, row = train_cell(cell)
    if len(result.policies) != 2 or result.game is None:
        raise ValueError("Figure 1 needs a 2-agent game with an analytic core (n=2)")
    path = np.column_stack([result.column("mean_0_0"), result.column("mean_0_1")])
    game = result.game
    axis = np.linspace(game.low, game.high, _GRID_POINTS)
    x, y = np.meshgrid(axis, axis)
    surface = {
        "x": x, "y": y, "z": game.team_reward(np.stack([x, y], axis=-1)),
        "local_center": game.local_center, "global_center": game.global_center,
        "peaks": game.peak_rewards(), "higher_peak": game.higher_peak(),
        "low": game.low, "high": game.high,
    }
    return {"row": parse_row(format_row(row)), "path": np.vstack([_start(result), path]),
            "surface": surface}


def draw_figure1(paths: Mapping[str, np.ndarray], surface: Mapping[str, Any],
                 path: str | Path, *, title: str | None = None) -> Path:
    """Draw the paths over the reward contours and save a PNG of ``FIGURE_SIZE`` x ``FIGURE_DPI``.

    Args:
        paths: ``{label: array [steps, 2]}``; the first row is the start point.
        surface: as ``Figure1.surface``.
        path: the PNG to write.
        title: the figure's title.
    """
    from matplotlib.figure import Figure  # no pyplot: no display needed, Agg renders the PNG

    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    ax = figure.add_subplot()
    filled = ax.contourf(surface["x"], surface["y"], surface["z"], levels=30, cmap="viridis")
    figure.colorbar(filled, ax=ax, label="reward r(a1, a2) (eq. 30)")
    ax.contour(surface["x"], surface["y"], surface["z"], levels=12, colors="white",
               linewidths=0.4, alpha=0.5)
    colors = ["tab:red", "tab:orange", "tab:cyan", "tab:pink", "tab:olive", "tab:gray"]
    for (label, points), color in zip(paths.items(), colors * (1 + len(paths) // 6)):
        ax.plot(points[:, 0], points[:, 1], color=color, linewidth=1.4, label=label, zorder=4)
        ax.plot(points[-1, 0], points[-1, 1], marker="X", markersize=10, color=color,
                markeredgecolor="black", linestyle="none", zorder=5)
    peaks, higher = surface["peaks"], surface["higher_peak"]
    for name, center, marker in (("local", surface["local_center"], "o"),
                                 ("global", surface["global_center"], "s")):
        star = name == higher
        text = "near" if name == "local" else "far"
        ax.plot(center, center, linestyle="none", marker="*" if star else marker,
                markersize=18 if star else 11, color="gold" if star else "white",
                markeredgecolor="black", zorder=3,
                label=f"{text} peak ({fmt(center, 0)}, {fmt(center, 0)}): r = "
                f"{fmt(peaks[name], 4)}" + (" (higher)" if star else ""))
    start = next(iter(paths.values()))[0] if paths else None
    if start is not None:
        ax.plot(start[0], start[1], linestyle="none", marker="D", markersize=8, color="black",
                markeredgecolor="white", zorder=6,
                label=f"start ({fmt(start[0], 1)}, {fmt(start[1], 1)})")
    low, high = surface["low"], surface["high"]
    margin = 0.03 * (high - low)
    ax.set_xlim(low - margin, high + margin)
    ax.set_ylim(low - margin, high + margin)
    ax.set_xlabel("agent 1 mean action")
    ax.set_ylabel("agent 2 mean action")
    ax.set_title(title or "2-agent differential game: mean-action paths (X: final)")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=FIGURE_DPI)
    return path


def _figure_markdown(rows: Sequence[Mapping[str, Any]], command: list[str], png: str) -> str:
    table = markdown_table(
        ["preset", "final actions", "final stds", "E[r]", "distance", "left basin"],
        [[r["preset"], fmt_vector(r["final_means"]), fmt_vector(r["final_stds"], 4),
          fmt(r["expected_reward"], 4), fmt(r["distance"]), fmt(r["left_basin_fraction"], 2)]
         for r in rows],
    )
    return markdown_document("Figure 1: the 2-agent differential game", command,
                             f"![Figure 1]({png})\n\n{table}")


def reproduce_figure1(
    *,
    iterations: int = TABLE2["iterations"],
    seed: int = 0,
    presets: Iterable[str] = tuple(TABLE3_PRESETS),
    env_kwargs: Mapping[str, Any] | None = None,
    batch_size: int = TABLE2["batch_size"],
    out: str | Path | None = None,
    workers: int | None = None,
) -> Figure1:
    """Figure 1: HATRPO, HATRPO + CAATR and W-MATRPO + CAATR with 2 agents.

    Args:
        iterations: training iterations (Table 2: 4000).
        seed: the seed of every run.
        presets: the methods.
        env_kwargs: the game's keywords; ``n`` must be 2 (default ``{"n": 2}``: widths (1, 3)).
        batch_size: joint transitions per iteration.
        out: directory for ``figure1.png``, ``figure1_paths.csv`` and ``figure1.md``; None:
            draw nothing.
        workers: parallel runs (default: the number of cores).

    Raises:
        ValueError: bad input (before any run), or a run failed.
    """
    kwargs = {"n": 2, **(env_kwargs or {})}
    if kwargs["n"] != 2:
        raise ValueError(f"Figure 1 is the 2-agent game; got n={kwargs['n']!r}")
    names = [presets] if isinstance(presets, str) else list(presets)
    cells = make_cells(names, [seed], grid={k: [v] for k, v in kwargs.items()},
                       fixed={"iterations": iterations, "batch_size": batch_size})
    outputs: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    execute(run_trajectory, [c.to_dict() for c in cells], workers or default_workers(),
            lambda item, value: outputs.__setitem__(item["preset"], value),
            lambda item, exc: errors.append(f"{item['preset']}: {exc}"))
    if errors:
        raise ValueError("Figure 1 run(s) failed: " + "; ".join(errors))
    ordered = [outputs[cell.preset] for cell in cells]
    figure = Figure1(
        paths={cell.preset: value["path"] for cell, value in zip(cells, ordered)},
        rows=[value["row"] for value in ordered], surface=ordered[0]["surface"],
    )
    if out is not None:
        out = Path(out)
        figure.files["png"] = draw_figure1(figure.paths, figure.surface, out / "figure1.png")
        figure.files["csv"] = write_csv(out / "figure1_paths.csv", [
            {"preset": name, "step": step, "mean_0": float(x), "mean_1": float(y)}
            for name, points in figure.paths.items() for step, (x, y) in enumerate(points)
        ])
        command = ["marl-tr", "reproduce", "figure1", "--iterations", str(iterations),
                   "--seed", str(seed), "--presets", ",".join(names),
                   "--batch-size", str(batch_size), "--out", str(out)]
        extra = {k: v for k, v in kwargs.items() if k != "n"}
        if extra:
            command[4:4] = ["--env-kwargs", ",".join(f"{k}={v!r}" for k, v in extra.items())]
        figure.files["markdown"] = out / "figure1.md"
        figure.files["markdown"].write_text(_figure_markdown(figure.rows, command, "figure1.png"))
    return figure

