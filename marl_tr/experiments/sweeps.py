"""Sweeps: presets x seeds x grids of env keywords and ``TrainConfig`` fields, resumable.

    from marl_tr.experiments import sweep
    result = sweep(["hatrpo", "wmatrpo-caatr"], seeds=5, grid={"n": [3, 5]},
                   fixed={"iterations": 500}, results="results/sweep.csv")
    result.rows        # one record per cell (see ``results.COLUMNS``)

A *cell* is one training run: a preset, an env, its keywords, a seed and the other
``TrainConfig`` fields it sets. The preset may also name a baseline (``"sb3:ppo"``,
``marl_tr.baselines``): a centralised learner with the same budget and row format, one seed per
job. Its ``key`` is a hash of exactly those, so the same cell always
has the same key. Every input is checked, and every distinct configuration built once (a
zero-iteration ``train``), before any cell runs.

Cells run in *jobs*: one job is one ``train`` call with ``replicas = k`` covering the
consecutive seeds ``s .. s+k-1`` of one configuration (replica ``r`` is bit for bit the run
with seed ``s + r``, so a cell's row does not depend on how it was batched, apart from the
timing columns ``results.RUN_COLUMNS``). Each configuration's pending seeds are grouped into
maximal runs of consecutive integers, each split into near-equal jobs of at most
``max_replicas`` seeds (``max_replicas=1``: one job per cell). Jobs run in a local process pool
(``spawn`` context, one torch thread per worker, each worker ending with the sweep process even
when that is killed with SIGKILL), most expensive first (``plan_jobs``), or,
with ``backend="ray"``, as Ray Tune trials. When a job finishes, its cells' rows are appended
to the results CSV at once; a rerun skips every cell already there (resumability stays per
cell: the pending seeds of a partly finished group are regrouped).

The key covers what the cell sets, not the library's defaults: after a change of library code
or defaults, give the sweep a new results file (each row keeps its ``resolved_config``).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import json
import math
import os
import re
import statistics
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
from marl_tr.experiments.fingerprint import code_fingerprint
from marl_tr.experiments.outcomes import measure
from marl_tr.experiments.results import ResultsFile, format_row, parse_row

__all__ = [
    "BACKENDS",
    "MAX_REPLICAS",
    "Cell",
    "Job",
    "SweepResult",
    "default_workers",
    "die_with_parent",
    "execute",
    "format_seeds",
    "make_cells",
    "make_jobs",
    "parse_seeds",
    "plan_jobs",
    "run_cell",
    "run_job",
    "sweep",
    "train_cell",
    "train_job",
]

#: Ways to run the cells.
BACKENDS = ("local", "ray")
#: Default for the most seeds one job (one replicated ``train`` call) covers.
MAX_REPLICAS = 16

#: ``TrainConfig`` fields a grid may not set, and what to use instead.
_RESERVED = {
    "preset": "the presets argument (--presets)",
    "seed": "the seeds argument (--seeds)",
    "env": "the env argument (--env)",
    "env_kwargs": "one grid key per env keyword",
    "run_dir": "nothing: sweep cells keep their runs in memory",
    "replicas": "the max_replicas argument (--max-replicas): sweeps batch seeds themselves",
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

    @property
    def config_key(self) -> str:
        """The key of the cell's configuration: everything but the seed (cells with the same
        ``config_key`` can share a replicated run)."""
        data = {k: v for k, v in self.to_dict().items() if k != "seed"}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seed_text(seeds: Sequence[int]) -> str:
    if len(seeds) > 1 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ",".join(map(str, seeds))


@dataclass(frozen=True)
class Job:
    """One ``train`` call of a sweep: the consecutive seeds ``s .. s+k-1`` of one configuration,
    run as ``replicas = k``.

    Attributes:
        cells: the cells, seeds ascending and consecutive, all with the same ``config_key``.

    Raises:
        ValueError: no cells, mixed configurations or seeds that are not consecutive.
    """

    cells: tuple[Cell, ...]

    def __post_init__(self) -> None:
        cells = tuple(self.cells)
        object.__setattr__(self, "cells", cells)
        if not cells:
            raise ValueError("a job needs at least one cell")
        if len({cell.config_key for cell in cells}) != 1:
            raise ValueError("a job's cells must share one configuration (all but the seed)")
        first = cells[0].seed
        if [cell.seed for cell in cells] != list(range(first, first + len(cells))):
            raise ValueError(f"a job's seeds must be consecutive, got {self.seeds}")

    @property
    def replicas(self) -> int:
        """The number of seeds (replicas of the ``train`` call)."""
        return len(self.cells)

    @property
    def seeds(self) -> list[int]:
        return [cell.seed for cell in self.cells]

    @property
    def config_key(self) -> str:
        return self.cells[0].config_key

    def config(self, **changes: Any) -> dict[str, Any]:
        """The ``train`` keyword arguments of this job (``changes`` win)."""
        return self.cells[0].config(replicas=self.replicas, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The job as plain JSON-ready data (what workers receive)."""
        return {"cells": [cell.to_dict() for cell in self.cells]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """The job of ``to_dict()``'s output."""
        return cls(tuple(Cell.from_dict(cell) for cell in data["cells"]))

    def halves(self) -> tuple[Job, Job]:
        """Two jobs of consecutive seeds (the first one the larger); needs ``replicas > 1``."""
        if self.replicas < 2:
            raise ValueError("a one-seed job cannot be split")
        middle = (self.replicas + 1) // 2
        return Job(self.cells[:middle]), Job(self.cells[middle:])

    def label(self) -> str:
        """A short readable description."""
        text = self.cells[0].label()
        prefix = f"{self.cells[0].preset} seed={self.cells[0].seed}"
        return f"{self.cells[0].preset} {_seed_text(self.seeds)}" + text[len(prefix):]


@dataclass
class SweepResult:
    """What a sweep produced.

    Attributes:
        rows: one record per cell, in the order the cells were made (see ``results.COLUMNS``);
            a cell that failed has no row.
        cells: every cell of the sweep.
        jobs: the jobs run by this call, in the order they were submitted.
        ran: keys of the cells run by this call.
        skipped: keys of the cells found finished in the results file.
        failed: ``{key: error message}`` of cells whose run raised (every cell of a failed job).
        path: the results CSV (None: kept in memory only).
    """

    rows: list[dict[str, Any]]
    cells: list[Cell]
    jobs: list[Job] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


# -- running one job ----------------------------------------------------------------------------
@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_job(job: Job | Mapping[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Train one job (one replicated ``train`` call, one torch thread; for a baseline such as
    ``"sb3:ppo"``, one ``marl_tr.baselines.train_baseline`` call of one seed).

    Returns:
        The ``TrainResult`` (all replicas) and one record per cell, in seed order, measured on
        ``result.split()``: ``wall_time`` and ``cell_time`` are the job's loop and total seconds
        divided by its replicas; ``job_replicas``, ``job_seed`` (its first seed),
        ``job_wall_time`` and ``job_time`` describe the whole job.
    """
    job = job if isinstance(job, Job) else Job.from_dict(job)
    train = _trainer(job.cells[0].preset)
    start = time.perf_counter()
    with _one_torch_thread():
        result = train(**job.config())
        parts = result.split()
        measured = [measure(part) for part in parts]
    seconds = time.perf_counter() - start
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = []
    for cell, part, outcome in zip(job.cells, parts, measured):
        if part.config.seed != cell.seed:  # pragma: no cover - TrainResult.split's contract
            raise RuntimeError(f"replica of seed {part.config.seed} reported for {cell.label()}")
        records.append({
            "key": cell.key, **cell.to_dict(), **outcome, "fingerprint": code_fingerprint(),
            "cell_time": seconds / job.replicas, "job_replicas": job.replicas,
            "job_seed": job.cells[0].seed, "job_wall_time": float(result.wall_time),
            "job_time": seconds, "finished_at": finished,
        })
    return result, records


def _is_baseline(preset: str) -> bool:
    from marl_tr.baselines import is_baseline

    return is_baseline(preset)


def _trainer(preset: str) -> Callable[..., Any]:
    """What trains a cell: ``marl_tr.train`` for a preset, ``train_baseline`` for a baseline
    (``"sb3:ppo"``, ...: one seed per job, see ``_baseline_profile``). In a worker process it
    first imports the modules the parent was given with ``--import`` (``marl_tr.plugins``)."""
    from marl_tr.plugins import load_requested

    load_requested()
    if _is_baseline(preset):
        from marl_tr.baselines import train_baseline

        return train_baseline
    from marl_tr.api import train

    return train


#: ``plan_jobs``'s cost factor of a baseline run (measured with one thread: an SB3 PPO or
#: TRPO iteration of 30 transitions costs about 8 HATRPO iterations at n = 3).
BASELINE_FACTOR = 8.0


def _baseline_profile(cell: Cell) -> _Profile:
    """A baseline cell's ``_Profile``, after building its learner without training (every
    refusal before any run). Baselines run one seed per job (not batchable)."""
    import gymnasium as gym

    from marl_tr.baselines import build_baseline

    try:
        _, config = build_baseline(**cell.config(iterations=0, seed=0))
        env = gym.make(config.env, **config.env_kwargs)
        n_agents = len(getattr(env.unwrapped, "possible_agents", ())) or 1
        env.close()
    except ValueError as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ValueError(f"bad sweep cell [{cell.label()}]: {message}"
                         f"{_joined_assignments_hint(cell)}") from None
    iterations = int(cell.overrides.get("iterations", TrainConfig().iterations))
    return _Profile(n_agents=n_agents, iterations=iterations, batch_size=config.batch_size,
                    factor=BASELINE_FACTOR, batchable=False)


def run_job(job: Job | Mapping[str, Any]) -> list[dict[str, Any]]:
    """Train one job and return its cells' records (the function every backend runs)."""
    return train_job(job)[1]


def train_cell(cell: Cell | Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Train one cell alone (a one-seed job); returns the ``TrainResult`` and its record."""
    cell = cell if isinstance(cell, Cell) else Cell.from_dict(cell)
    result, (record,) = train_job(Job((cell,)))
    return result, record


def run_cell(cell: Cell | Mapping[str, Any]) -> dict[str, Any]:
    """Train one cell alone and return its results record."""
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
                first, last = (int(end) for end in text.partition("-")[::2])
                if last < first:
                    raise ValueError(f"bad seeds {original!r}: a range runs from low to high, "
                                     f"e.g. {last}-{first}")
                seeds = list(range(first, last + 1))
            else:
                seeds = int(text)
        except ValueError as exc:
            if str(exc).startswith("bad seeds"):
                raise
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
    return _prepare(presets, seeds, env=env, grid=grid, settings=settings, fixed=fixed)[0]


@dataclass(frozen=True)
class _Profile:
    """What the zero-iteration build of one configuration told: its size, its solver, and
    whether it can run replicas."""

    n_agents: int
    iterations: int
    batch_size: int
    factor: float
    batchable: bool

    def cost(self, replicas: int) -> float:
        return _job_cost(self.iterations, self.n_agents, self.batch_size, self.factor, replicas)


#: The cost model of ``plan_jobs`` (rough, measured on the differential game with one thread):
#: one iteration of a ``k``-replica run costs about ``(n_agents + 1) x factor x
#: (REPLICA_OVERHEAD + k x sqrt(batch_size / 30))``: a replicated run's fixed work per
#: iteration is worth ~25 replicas at batch 30. ``factor`` is 2.4 for the primal-dual solver
#: (W-MATRPO), 1 for the natural gradient (HATRPO), times 1.15 for CAATR radii.
REPLICA_OVERHEAD = 25.0
_SOLVER_FACTORS = {"primal_dual": 2.4}
_RADIUS_FACTORS = {"caatr": 1.15}


def _job_cost(iterations: int, n_agents: int, batch_size: int, factor: float,
              replicas: int) -> float:
    per_replica = math.sqrt(max(batch_size, 1) / 30.0)
    return (max(iterations, 1) * (n_agents + 1) * factor
            * (REPLICA_OVERHEAD + replicas * per_replica))


def _factor(config: Any) -> float:
    def family(text: Any) -> str:
        return str(text).partition(":")[0].strip()

    return (_SOLVER_FACTORS.get(family(config.solver), 1.0)
            * _RADIUS_FACTORS.get(family(config.radius), 1.0))


def _prepare(
    presets: str | Sequence[str],
    seeds: int | str | Iterable[int] = 1,
    *,
    env: str = "DiffGame-v0",
    grid: Mapping[str, Any] | None = None,
    settings: Sequence[Mapping[str, Any]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    replicas: bool = False,
) -> tuple[list[Cell], dict[str, _Profile]]:
    """``make_cells`` and each configuration's ``_Profile`` (by ``config_key``); with
    ``replicas``, also try a 2-replica build of each configuration."""
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
    profiles = _validate(cells, env, fields, replicas and len(seed_list) > 1)
    return cells, profiles


_JOINED_ASSIGNMENT = re.compile(r",\s*[A-Za-z_]\w*=")


def _joined_assignments_hint(cell: Cell) -> str:
    """For a refused cell, a hint where a value reads like several ``KEY=VALUE`` pairs
    (``--set iterations=2,batch_size=1`` is one key with the value ``'2,batch_size=1'``)."""
    joined = [f"{key}={value}" for key, value in {**cell.env_kwargs, **cell.overrides}.items()
              if isinstance(value, str) and _JOINED_ASSIGNMENT.search(value)]
    if not joined:
        return ""
    return (f" ({joined[0]!r} is one key with one value: give each key its own --set or "
            "--grid, e.g. --set iterations=2 --set batch_size=1)")


def _validate(cells: list[Cell], env: str, fields: set[str], replicas: bool
              ) -> dict[str, _Profile]:
    from marl_tr.api import train

    profiles: dict[str, _Profile] = {}
    for cell in cells:
        if cell.config_key in profiles:
            continue
        if _is_baseline(cell.preset):  # e.g. sb3:ppo (marl_tr.baselines), not a preset
            profiles[cell.config_key] = _baseline_profile(cell)
            continue
        try:
            config = TrainConfig.from_dict(cell.config())
            config.validate()
            with _one_torch_thread():
                built = train(**cell.config(iterations=0, seed=0))
        except ValueError as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            extra = sorted(cell.env_kwargs)
            hint = (
                f" Grid keys are TrainConfig fields ({', '.join(sorted(fields))}) or keywords "
                f"of env {env!r} (here {extra} were passed to the env)." if extra else ""
            )
            raise ValueError(f"bad sweep cell [{cell.label()}]: {message}.{hint}"
                             f"{_joined_assignments_hint(cell)}") from None
        batchable = True
        if replicas:  # e.g. agents with different spaces and a random order cannot
            try:
                with _one_torch_thread():
                    train(**cell.config(iterations=0, seed=0, replicas=2))
            except ValueError:
                batchable = False
        profiles[cell.config_key] = _Profile(
            n_agents=len(built.policies), iterations=int(config.iterations),
            batch_size=int(built.config.batch_size), factor=_factor(built.config),
            batchable=batchable)
    return profiles


# -- grouping cells into jobs --------------------------------------------------------------------
def _check_max_replicas(max_replicas: int) -> int:
    if isinstance(max_replicas, bool) or not isinstance(max_replicas, int) or max_replicas < 1:
        raise ValueError(f"max_replicas must be an integer >= 1, got {max_replicas!r}")
    return max_replicas


def _runs(seeds: Sequence[int]) -> list[list[int]]:
    """Sorted seeds as maximal runs of consecutive integers: 0,1,2,5,6 -> [0,1,2], [5,6]."""
    runs: list[list[int]] = []
    for seed in sorted(seeds):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return runs


def make_jobs(cells: Iterable[Cell], max_replicas: int = MAX_REPLICAS, *,
              single: Iterable[str] = ()) -> list[Job]:
    """Group cells into jobs: per configuration (``Cell.config_key``), its seeds as maximal runs
    of consecutive integers, each split into the fewest near-equal jobs of at most
    ``max_replicas`` seeds (20 seeds, at most 16: two jobs of 10).

    Args:
        cells: the cells to run (distinct).
        max_replicas: the most seeds of one job; 1 gives one job per cell.
        single: ``config_key``s whose cells run one per job (configurations that cannot run
            replicas).

    Returns:
        The jobs, by configuration (first-seen order) and then by seed.

    Raises:
        ValueError: ``max_replicas`` is not an integer >= 1, or a cell is given twice.
    """
    max_replicas = _check_max_replicas(max_replicas)
    single = set(single)
    groups: dict[str, dict[int, Cell]] = {}
    for cell in cells:
        group = groups.setdefault(cell.config_key, {})
        if cell.seed in group:
            raise ValueError(f"cell given twice: {cell.label()}")
        group[cell.seed] = cell
    jobs = []
    for config_key, by_seed in groups.items():
        limit = 1 if config_key in single else max_replicas
        for run in _runs(list(by_seed)):
            count = -(-len(run) // limit)
            size, extra = divmod(len(run), count)
            start = 0
            for index in range(count):
                stop = start + size + (1 if index < extra else 0)
                jobs.append(Job(tuple(by_seed[seed] for seed in run[start:stop])))
                start = stop
    return jobs


def _makespan(costs: Iterable[float], workers: int) -> float:
    """The finishing time of greedy scheduling, most expensive first, on ``workers``."""
    loads = [0.0] * workers
    for cost in sorted(costs, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + cost)
    return max(loads)


#: ``plan_jobs`` splits a job only if that shortens the estimated sweep by more than this.
BALANCE_GAIN = 0.03


def plan_jobs(jobs: Sequence[Job], workers: int, cost: Callable[[Job], float]) -> list[Job]:
    """The submission order of ``jobs`` for ``workers`` parallel workers: most expensive first
    (greedy longest-first scheduling, so the workers finish close together). With more than
    one worker, the most expensive splittable job is halved (``Job.halves``) while that shortens
    the estimated finishing time by more than ``BALANCE_GAIN`` (e.g. one 10-seed job and two
    workers: two 5-seed jobs); rows do not depend on the split.

    Args:
        jobs: the jobs (``make_jobs``).
        workers: parallel workers.
        cost: a job's estimated cost (any unit).
    """
    planned = list(jobs)
    if workers > 1 and planned:
        costs = [cost(job) for job in planned]
        best = _makespan(costs, workers)
        while True:
            splittable = [i for i, job in enumerate(planned) if job.replicas > 1]
            if not splittable:
                break
            index = max(splittable, key=lambda i: costs[i])
            halves = planned[index].halves()
            trial = planned[:index] + list(halves) + planned[index + 1:]
            trial_costs = costs[:index] + [cost(h) for h in halves] + costs[index + 1:]
            span = _makespan(trial_costs, workers)
            if span >= best * (1.0 - BALANCE_GAIN):
                break
            planned, costs, best = trial, trial_costs, span
    order = sorted(range(len(planned)), key=lambda i: -cost(planned[i]))
    return [planned[i] for i in order]


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


#: ``prctl`` option: the signal the kernel sends this process when its parent exits.
_PR_SET_PDEATHSIG = 1
#: Seconds between two checks of the parent, where the kernel cannot be asked (not Linux).
PARENT_POLL_SECONDS = 1.0


def _exit_with_parent_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits (``prctl(PR_SET_PDEATHSIG)``);
    False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no usable libc
        return False


def _watch_parent(parent: int, interval: float) -> None:
    """Poll: once this process has another parent than ``parent`` (it was orphaned), exit."""
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Make this process end when the process ``parent`` ends, however it ends (SIGKILL
    included), so that no pool worker outlives a killed sweep and goes on using CPU.

    On Linux the kernel kills it (``PR_SET_PDEATHSIG``, immediate); elsewhere a daemon
    thread checks every ``PARENT_POLL_SECONDS`` whether it was orphaned (its parent id
    changed). A parent that died before this call is caught by the same check.

    Args:
        parent: the pid of the process that started this one.
    """
    if not _exit_with_parent_signal():
        import threading

        threading.Thread(target=_watch_parent, args=(parent, PARENT_POLL_SECONDS),
                         name="marl_tr-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _init_worker(parent: int | None = None) -> None:
    """Pool worker set-up: end with the sweep process ``parent`` (``die_with_parent``), one
    torch thread."""
    if parent is not None:
        die_with_parent(parent)
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
    process pool (one torch thread per worker; each worker ends when this process ends,
    even by SIGKILL: ``die_with_parent``). ``on_result(item, value)`` and
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
                               mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(),))
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
    max_replicas: int = MAX_REPLICAS,
    backend: str = "local",
    ray_address: str | None = None,
    echo: bool = False,
    reuse_other_code: bool = False,
) -> SweepResult:
    """Run every cell of presets x settings x grid x seeds that ``results`` does not hold yet
    from the running code.

    The pending cells run as jobs of consecutive seeds (replicated ``train`` calls; see the
    module docstring, ``make_jobs`` and ``plan_jobs``). A cell's row is the same whatever its
    job, apart from ``results.RUN_COLUMNS`` (its ``wall_time`` and ``cell_time`` are its job's
    divided by the job's replicas).

    Args:
        presets, seeds, env, grid, settings, fixed: the cells (see ``make_cells``).
        results: the results CSV: each job's rows are appended as it finishes, and cells
            already in it are skipped. None: keep the rows in memory only.
        workers: parallel jobs (default: the number of cores). 1 runs in this process.
        max_replicas: the most seeds one job covers (default 16); 1: one job per cell.
        backend: ``"local"`` (a process pool) or ``"ray"`` (one Ray Tune trial per job; needs
            ``pip install "marl_tr[ray]"``).
        ray_address: a Ray cluster to connect to (``backend="ray"``; default: start a local one).
        echo: print a line per finished job to stderr.
        reuse_other_code: reuse finished cells whatever code made them. By default a row is
            reused only when its ``fingerprint`` (``fingerprint.code_fingerprint``: the
            version and a hash of the library's source) is the running code's; others are
            recomputed (and their new rows appended; the newest row of a key wins).

    Returns:
        A ``SweepResult``; ``rows`` follow the cells' order.

    Raises:
        ValueError: bad input (before any run); see ``make_cells``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    workers = _check_workers(workers)
    max_replicas = _check_max_replicas(max_replicas)
    cells, profiles = _prepare(presets, seeds, env=env, grid=grid, settings=settings,
                               fixed=fixed, replicas=max_replicas > 1)
    store = ResultsFile(results) if results is not None else None
    found = store.finished() if store is not None else {}
    keys = {cell.key for cell in cells}
    current = code_fingerprint()
    done = {key: row for key, row in found.items() if key in keys
            and (reuse_other_code or row["fingerprint"] == current)}
    stale = sum(1 for key in keys if key in found and key not in done)
    todo = [c for c in cells if c.key not in done]
    single = {key for key, profile in profiles.items() if not profile.batchable}
    jobs = plan_jobs(make_jobs(todo, max_replicas, single=single), workers,
                     lambda job: profiles[job.config_key].cost(job.replicas))
    outcome = SweepResult(rows=[], cells=cells, jobs=jobs,
                          skipped=[c.key for c in cells if c.key in done],
                          path=store.path if store is not None else None)
    for key in sorted(single & {cell.config_key for cell in todo}):
        label = next(cell.label() for cell in todo if cell.config_key == key)
        _echo(echo, f"note: [{label}] cannot run replicas; its seeds run one per job")
    largest = max((job.replicas for job in jobs), default=0)
    if stale:
        _echo(echo, f"note: {stale} finished cell(s) were made by other code (fingerprint != "
              f"{current}): recomputed (reuse_other_code=True keeps them)")
    _echo(echo, f"sweep: {len(cells)} cells, {len(done)} already finished, {len(todo)} to run "
          f"as {len(jobs)} job(s) of up to {largest} replica(s) on "
          f"{min(workers, max(1, len(jobs)))} {backend} worker(s)")
    finished = 0

    def on_result(item: Any, rows: list[dict[str, Any]]) -> None:
        nonlocal finished
        rows = store.extend(rows) if store is not None else [parse_row(format_row(row))
                                                             for row in rows]
        for row in rows:
            done[row["key"]] = row
            outcome.ran.append(row["key"])
        finished += 1
        _echo(echo, f"[{finished}/{len(jobs)}] {Job.from_dict(item).label()}: "
              f"distance {_mean(row['distance'] for row in rows):.3f}, "
              f"E[r] {_mean(row['expected_reward'] for row in rows):.4f}"
              + (" (means over seeds)" if len(rows) > 1 else "")
              + f", {rows[0]['job_time']:.1f} s")

    def on_error(item: Any, exc: BaseException) -> None:
        job = Job.from_dict(item)
        for cell in job.cells:
            outcome.failed[cell.key] = f"{type(exc).__name__}: {exc}"
        _echo(echo, f"FAILED {job.label()}: {type(exc).__name__}: {exc}")

    items = [job.to_dict() for job in jobs]
    if backend == "ray":
        from marl_tr.experiments.ray_backend import execute_ray

        execute_ray(items, workers, on_result, on_error, address=ray_address)
    else:
        execute(run_job, items, workers, on_result, on_error)
    outcome.rows = [done[cell.key] for cell in cells if cell.key in done]
    return outcome


def _mean(values: Iterable[float]) -> float:
    values = [float(v) for v in values]
    return statistics.fmean(values) if values else math.nan
