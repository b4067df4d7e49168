"""Sweeps: presets x seeds x grids of env keywords and ``TrainConfig`` fields, resumable.

    from marl_tr.experiments import sweep
    result = sweep(["hatrpo", "wmatrpo-caatr"], seeds=5, grid={"n": [3, 5]},
                   fixed={"iterations": 500}, results="results/sweep.csv")
    result.rows        # one record per cell (see ``results.COLUMNS``)

A *cell* is one training run: a preset, an env, its keywords, a seed and the other
``TrainConfig`` fields it sets. Its ``key`` is a hash of exactly those, so the same cell always
has the same key. Cells run in a local process pool (``spawn`` context, one torch thread per
worker) or, with ``backend="ray"``, as Ray Tune trials; each finished cell is appended to the
results CSV at once, and a rerun skips every cell already there. Every input is checked, and
every distinct configuration built once (a zero-iteration ``train``), before any cell runs.

The key covers what the cell sets, not the library's defaults: after a change of library code
or defaults, give the sweep a new results file (each row keeps its ``resolved_config``).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from marl_tr.config import TrainConfig
from marl_tr.experiments.outcomes import measure
from marl_tr.experiments.results import ResultsFile, format_row, parse_row

__all__ = [
    "BACKENDS",
    "Cell",
    "SweepResult",
    "default_workers",
    "execute",
    "format_seeds",
    "make_cells",
    "parse_seeds",
    "run_cell",
    "sweep",
    "train_cell",
]

#: Ways to run the cells.
BACKENDS = ("local", "ray")

#: ``TrainConfig`` fields a grid may not set, and what to use instead.
_RESERVED = {
    "preset": "the presets argument (--presets)",
    "seed": "the seeds argument (--seeds)",
    "env": "the env argument (--env)",
    "env_kwargs": "one grid key per env keyword",
    "run_dir": "nothing: sweep cells keep their runs in memory",
}


def _canonical(value: Any) -> Any:
    """JSON-ready copy: tuples become lists, mapping keys are sorted by ``json.dumps``."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


@dataclass(frozen=True)
class Cell:
    """One training run of a sweep.

    Attributes:
        preset: the preset name (or config string).
        seed: the run's seed.
        env: the env id.
        env_kwargs: the env's keyword arguments.
        overrides: other ``TrainConfig`` fields (iterations, batch_size, ...).
    """

    preset: str
    seed: int
    env: str = "DiffGame-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The cell as plain JSON-ready data (what workers receive)."""
        return {"preset": self.preset, "seed": self.seed, "env": self.env,
                "env_kwargs": _canonical(self.env_kwargs),
                "overrides": _canonical(self.overrides)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        """The cell of ``to_dict()``'s output (or of a results row)."""
        return cls(preset=data["preset"], seed=int(data["seed"]), env=data["env"],
                   env_kwargs=dict(data["env_kwargs"]), overrides=dict(data["overrides"]))

    @property
    def key(self) -> str:
        """A stable 16-hex-digit hash of the cell's settings."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def config(self, **changes: Any) -> dict[str, Any]:
        """The ``train`` keyword arguments of this cell (``changes`` win)."""
        return {"progress": False, **self.overrides, "preset": self.preset, "seed": self.seed,
                "env": self.env, "env_kwargs": dict(self.env_kwargs), **changes}

    def label(self) -> str:
        """A short readable description."""
        settings = {**self.env_kwargs, **self.overrides}
        text = ",".join(f"{k}={v}" for k, v in settings.items())
        return f"{self.preset} seed={self.seed}" + (f" {text}" if text else "")

    def cost(self) -> float:
        """A rough relative cost (iterations x batch x agents) to start long cells first."""
        n = self.env_kwargs.get("n", 1)
        n = n if isinstance(n, int) else 1
        return (float(self.overrides.get("iterations", 1)) * n
                * float(self.overrides.get("batch_size", 1)))


@dataclass
class SweepResult:
    """What a sweep produced.

    Attributes:
        rows: one record per cell, in the order the cells were made (see ``results.COLUMNS``);
            a cell that failed has no row.
        cells: every cell of the sweep.
        ran: keys of the cells run by this call.
        skipped: keys of the cells found finished in the results file.
        failed: ``{key: error message}`` of cells whose run raised.
        path: the results CSV (None: kept in memory only).
    """

    rows: list[dict[str, Any]]
    cells: list[Cell]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


# -- running one cell ---------------------------------------------------------------------------
@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_cell(cell: Cell | Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Train one cell with one torch thread; returns the ``TrainResult`` and its record."""
    from marl_tr.api import train

    cell = cell if isinstance(cell, Cell) else Cell.from_dict(cell)
    start = time.perf_counter()
    with _one_torch_thread():
        result = train(**cell.config())
    record = {
        "key": cell.key, **cell.to_dict(), **measure(result),
        "cell_time": time.perf_counter() - start,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return result, record


def run_cell(cell: Cell | Mapping[str, Any]) -> dict[str, Any]:
    """Train one cell and return its results record (the function every backend runs)."""
    return train_cell(cell)[1]


# -- building and checking the cells -------------------------------------------------------------
def parse_seeds(seeds: int | str | Iterable[int]) -> list[int]:
    """Seeds from a count (``5`` -> 0..4), a range ``"3-7"``, a list ``"0,4,9"`` or integers.

    Raises:
        ValueError: not a positive count, a negative or non-integer seed, a duplicate, or none.
    """
    original = seeds
    if isinstance(seeds, str):
        text = seeds.strip()
        try:
            if "," in text:
                seeds = [int(part) for part in text.split(",") if part.strip()]
            elif "-" in text.lstrip("-"):
                first, _, last = text.partition("-")
                seeds = list(range(int(first), int(last) + 1))
            else:
                seeds = int(text)
        except ValueError:
            raise ValueError(
                f"bad seeds {original!r}: give a count (5 = seeds 0-4), a range like 3-7 or a "
                "list like 0,4,9"
            ) from None
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a count or a list of integers, got {original!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"the number of seeds must be >= 1, got {original!r}")
        return list(range(seeds))
    values = list(seeds)
    bad = [s for s in values if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad or not values:
        raise ValueError(
            f"seeds must be non-negative integers (at least one), got {original!r}"
            + (f"; bad: {bad}" if bad else "")
        )
    duplicates = sorted({s for s in values if values.count(s) > 1})
    if duplicates:
        raise ValueError(f"seeds given twice: {duplicates} in {original!r}")
    return values


def format_seeds(seeds: Sequence[int]) -> str:
    """The ``--seeds`` text that ``parse_seeds`` reads back as ``seeds`` (a count for 0..k-1)."""
    seeds = list(seeds)
    return str(len(seeds)) if seeds == list(range(len(seeds))) else ",".join(map(str, seeds))


def _grid_values(key: str, values: Any) -> list[Any]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(
            f"grid[{key!r}] must be a list of values, got {values!r} (use fixed= for one value)"
        )
    values = list(values)
    if not values:
        raise ValueError(f"grid[{key!r}] is empty; give at least one value")
    return values


def _check_keys(keys: Iterable[str]) -> None:
    for key in keys:
        if key in _RESERVED:
            raise ValueError(f"{key!r} cannot be a grid or fixed key; use {_RESERVED[key]}")


def _combinations(
    grid: Mapping[str, Any] | None,
    settings: Sequence[Mapping[str, Any]] | None,
    fixed: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """Every combination of fixed values, explicit settings and the grid's product."""
    grid = {k: _grid_values(k, v) for k, v in (grid or {}).items()}
    fixed = dict(fixed or {})
    settings = [dict(s) for s in settings] if settings is not None else [{}]
    if not settings:
        raise ValueError("settings is empty; give at least one mapping (or leave it out)")
    for setting in settings:
        clash = sorted((set(setting) & set(grid)) | (set(setting) & set(fixed)))
        if clash:
            raise ValueError(f"key(s) {clash} set twice (in settings and in grid/fixed)")
    clash = sorted(set(grid) & set(fixed))
    if clash:
        raise ValueError(f"key(s) {clash} set both in grid and in fixed")
    _check_keys([*grid, *fixed, *(k for s in settings for k in s)])
    products = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    return [{**fixed, **setting, **combo} for setting in settings for combo in products]


def make_cells(
    presets: str | Sequence[str],
    seeds: int | str | Iterable[int] = 1,
    *,
    env: str = "DiffGame-v0",
    grid: Mapping[str, Any] | None = None,
    settings: Sequence[Mapping[str, Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> list[Cell]:
    """The cells of a sweep, checked: every preset, configuration and env keyword is built once
    (a zero-iteration ``train``) before anything runs.

    Args:
        presets: preset names (or config strings such as ``"wmatrpo-caatr:C=0.05"``).
        seeds: a count, a range/list string or integers (see ``parse_seeds``).
        env: the env id.
        grid: ``{key: [values]}``; the sweep runs their product. A key is a ``TrainConfig``
            field (iterations, batch_size, init_mean, ...) or a keyword of the env (n, sigma,
            basin_gap, ...).
        settings: explicit combinations ``[{key: value, ...}, ...]`` crossed with the grid.
        fixed: ``{key: value}`` set in every cell.

    Raises:
        ValueError: an unknown preset or key, a bad value or seed list (naming what is
            allowed).
    """
    names = [presets] if isinstance(presets, str) else list(presets)
    if not names or not all(isinstance(p, str) and p.strip() for p in names):
        raise ValueError(f"presets must be a non-empty list of preset names, got {presets!r}")
    seed_list = parse_seeds(seeds)
    combos = _combinations(grid, settings, fixed)
    fields = set(TrainConfig.field_names())
    cells = []
    for preset, combo, seed in itertools.product(names, combos, seed_list):
        overrides = {k: v for k, v in combo.items() if k in fields}
        env_kwargs = {k: v for k, v in combo.items() if k not in fields}
        cells.append(Cell(preset=preset, seed=seed, env=env, env_kwargs=env_kwargs,
                          overrides=overrides))
    keys = [cell.key for cell in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("the sweep has the same cell twice (repeated preset or grid value)")
    _validate(cells, env, fields)
    return cells


def _validate(cells: list[Cell], env: str, fields: set[str]) -> None:
    from marl_tr.api import train

    checked: set[str] = set()
    for cell in cells:
        probe = Cell(cell.preset, 0, cell.env, cell.env_kwargs, cell.overrides)
        if probe.key in checked:
            continue
        checked.add(probe.key)
        try:
            TrainConfig.from_dict(cell.config()).validate()
            with _one_torch_thread():
                train(**cell.config(iterations=0, seed=0))
        except ValueError as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            extra = sorted(cell.env_kwargs)
            hint = (
                f" Grid keys are TrainConfig fields ({', '.join(sorted(fields))}) or keywords "
                f"of env {env!r} (here {extra} were passed to the env)." if extra else ""
            )
            raise ValueError(f"bad sweep cell [{cell.label()}]: {message}.{hint}") from None


# -- running ------------------------------------------------------------------------------------
def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _check_workers(workers: int | None) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    return workers


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


Report = Callable[[Any, Any], None]


def execute(
    function: Callable[[Any], Any],
    items: Sequence[Any],
    workers: int,
    on_result: Report,
    on_error: Report,
) -> None:
    """Run ``function`` over ``items``: in this process for one worker, else in a ``spawn``
    process pool (one torch thread per worker). ``on_result(item, value)`` and
    ``on_error(item, exception)`` are called here, in this process, as each item finishes.

    On ``KeyboardInterrupt`` the pending items are cancelled and the interrupt re-raised;
    everything reported so far stays reported.
    """
    if workers == 1 or len(items) <= 1:
        for item in items:
            try:
                value = function(item)
            except Exception as exc:  # a failed run must not stop the others
                on_error(item, exc)
            else:
                on_result(item, value)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(items)),
                               mp_context=get_context("spawn"), initializer=_init_worker)
    try:
        futures = {pool.submit(function, item): item for item in items}
        for future in as_completed(futures):
            try:
                value = future.result()
            except Exception as exc:
                on_error(futures[future], exc)
            else:
                on_result(futures[future], value)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _echo(enabled: bool, text: str) -> None:
    if enabled:
        print(text, file=sys.stderr, flush=True)


def sweep(
    presets: str | Sequence[str],
    seeds: int | str | Iterable[int] = 1,
    *,
    env: str = "DiffGame-v0",
    grid: Mapping[str, Any] | None = None,
    settings: Sequence[Mapping[str, Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    results: str | Path | None = None,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    echo: bool = False,
) -> SweepResult:
    """Run every cell of presets x settings x grid x seeds that ``results`` does not hold yet.

    Args:
        presets, seeds, env, grid, settings, fixed: the cells (see ``make_cells``).
        results: the results CSV: finished cells are appended as they finish, and cells
            already in it are skipped. None: keep the rows in memory only.
        workers: parallel runs (default: the number of cores). 1 runs in this process.
        backend: ``"local"`` (a process pool) or ``"ray"`` (Ray Tune trials; needs
            ``pip install "marl_tr[ray]"``).
        ray_address: a Ray cluster to connect to (``backend="ray"``; default: start a local one).
        echo: print a line per finished cell to stderr.

    Returns:
        A ``SweepResult``; ``rows`` follow the cells' order.

    Raises:
        ValueError: bad input (before any run); see ``make_cells``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    workers = _check_workers(workers)
    cells = make_cells(presets, seeds, env=env, grid=grid, settings=settings, fixed=fixed)
    store = ResultsFile(results) if results is not None else None
    found = store.finished() if store is not None else {}
    keys = {cell.key for cell in cells}
    done = {key: row for key, row in found.items() if key in keys}
    todo = sorted((c for c in cells if c.key not in done), key=lambda c: -c.cost())
    outcome = SweepResult(rows=[], cells=cells, skipped=[c.key for c in cells if c.key in done],
                          path=store.path if store is not None else None)
    _echo(echo, f"sweep: {len(cells)} cells, {len(done)} already finished, {len(todo)} to run "
          f"on {min(workers, max(1, len(todo)))} {backend} worker(s)")
    finished = 0

    def on_result(item: Any, row: dict[str, Any]) -> None:
        nonlocal finished
        row = store.append(row) if store is not None else parse_row(format_row(row))
        done[row["key"]] = row
        outcome.ran.append(row["key"])
        finished += 1
        _echo(echo, f"[{finished}/{len(todo)}] {Cell.from_dict(item).label()}: "
              f"distance {row['distance']:.3f}, E[r] {row['expected_reward']:.4f}, "
              f"{row['cell_time']:.1f} s")

    def on_error(item: Any, exc: BaseException) -> None:
        cell = Cell.from_dict(item)
        outcome.failed[cell.key] = f"{type(exc).__name__}: {exc}"
        _echo(echo, f"FAILED {cell.label()}: {type(exc).__name__}: {exc}")

    items = [cell.to_dict() for cell in todo]
    if backend == "ray":
        from marl_tr.experiments.ray_backend import execute_ray

        execute_ray(items, workers, on_result, on_error, address=ray_address)
    else:
        execute(run_cell, items, workers, on_result, on_error)
    outcome.rows = [done[cell.key] for cell in cells if cell.key in done]
    return outcome

