"""The paper's experiments: Table 3 and a basin-gap study, run through the sweep machinery.

    from marl_tr.experiments import reproduce_table3, reproduce_basin_gap
    table = reproduce_table3(iterations=4000, seeds=5, out="results/table3")
    print(table.markdown)

Both are sweeps (so they batch seeds into replicated runs, run those in parallel and resume
from their ``cells.csv``) followed
by a summary over seeds written as CSV and Markdown. The measures (distance, left-basin
fraction, reached-the-higher-peak, constraint overshoot) are defined in
``marl_tr.experiments.outcomes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marl_tr.experiments import outcomes
from marl_tr.experiments.fingerprint import code_fingerprint
from marl_tr.experiments.report import (
    fmt,
    fmt_mean_sd,
    fmt_vector,
    group_rows,
    markdown_document,
    markdown_table,
    mean_sd,
    vector_mean,
    write_csv,
)
from marl_tr.experiments.sweeps import (
    MAX_REPLICAS,
    SweepResult,
    format_seeds,
    parse_seeds,
    sweep,
)

__all__ = [
    "BASIN_GAP_PRESETS",
    "MATRIX_GAMES",
    "MATRIX_PRESETS",
    "OTHER_CODE_MARK",
    "STABLE_TOLERANCE",
    "TABLE2",
    "TABLE3",
    "TABLE3_EXTRA",
    "TABLE3_METHODS",
    "TABLE3_N",
    "TABLE3_PRESETS",
    "VARIANTS",
    "ExperimentResult",
    "PaperEntry",
    "fingerprint_note",
    "reproduce_basin_gap",
    "reproduce_matrix_games",
    "reproduce_sensitivity",
    "reproduce_table3",
    "reproduce_variants",
]

#: Table 2's budget for the differential game (delta and C live in the presets).
TABLE2: dict[str, int] = {"iterations": 4000, "batch_size": 30}
#: Table 3's methods, as presets, with the paper's names.
TABLE3_PRESETS: dict[str, str] = {
    "hatrpo": "Standard HATRPO",
    "hatrpo-caatr": "HATRPO with CAATR",
    "wmatrpo-caatr": "W-MATRPO with CAATR",
}
#: Table 3's team sizes.
TABLE3_N: tuple[int, ...] = (3, 5, 7, 9)
#: Rows beyond the paper's, same table: the trust regions held at their radius and the
#: paper's exact update (Theorem 1's dual), with a learned and an oracle Q.
TABLE3_EXTRA: dict[str, str] = {
    "hatrpo-tr": "HATRPO, KL held at the radius (exact_radius)",
    "wmatrpo-tr-caatr": "W-MATRPO + CAATR, exact W1 held at the radius (exact_radius)",
    "wmatrpo-dual-caatr": "W-MATRPO + CAATR, exact dual (Thm. 1), learned Q",
    "wmatrpo-dual-caatr:critic=oracle_q": "W-MATRPO + CAATR, exact dual (Thm. 1), oracle Q",
}
#: Every method the Table 3 command runs by default, with its label.
TABLE3_METHODS: dict[str, str] = {**TABLE3_PRESETS, **TABLE3_EXTRA}


@dataclass(frozen=True)
class PaperEntry:
    """One line of the paper's Table 3: final mean actions and the distance to (5, ..., 5)."""

    actions: tuple[float, ...]
    distance: float


# Reference values, copied from Table 3 of "When Distance Matters: Wasserstein Trust Regions
# for Multi-Agent Coordination" ("Final Actions" and "Distance" columns). They are the paper's
# results to compare with, not results of this library.
TABLE3: dict[tuple[str, int], PaperEntry] = {
    ("hatrpo", 3): PaperEntry((0.995, 1.002, 1.013), 6.9227),
    ("hatrpo-caatr", 3): PaperEntry((1.063, 1.040, 1.011), 6.8623),
    ("wmatrpo-caatr", 3): PaperEntry((3.829, 3.517, 3.466), 2.4335),
    ("hatrpo", 5): PaperEntry((1.004, 0.992, 0.999, 0.999, 1.017), 8.9393),
    ("hatrpo-caatr", 5): PaperEntry((1.008, 0.963, 0.973, 1.030, 1.006), 8.9534),
    ("wmatrpo-caatr", 5): PaperEntry((3.566, 3.571, 3.537, 3.509, 3.508), 3.2690),
    ("hatrpo", 7): PaperEntry((1.016, 1.027, 1.025, 1.035, 1.026, 1.034, 1.015), 10.5157),
    ("hatrpo-caatr", 7): PaperEntry((0.958, 0.953, 1.024, 0.988, 0.977, 0.961, 0.998), 10.6361),
    ("wmatrpo-caatr", 7): PaperEntry((3.536, 3.557, 3.554, 3.522, 3.481, 3.592, 3.506), 3.8760),
    ("hatrpo", 9): PaperEntry(
        (1.014, 0.996, 0.952, 0.987, 0.978, 1.001, 0.964, 0.954, 0.976), 12.0590),
    ("hatrpo-caatr", 9): PaperEntry(
        (1.042, 0.981, 1.038, 0.990, 1.033, 1.035, 0.944, 1.029, 0.987), 11.9741),
    ("wmatrpo-caatr", 9): PaperEntry(
        (3.540, 3.565, 3.569, 3.574, 3.577, 3.574, 3.492, 3.525, 3.587), 4.3330),
}

_DEFINITIONS = (
    "distance: Euclidean distance from the final mean actions to (g, ..., g), g = 5 (Table 3's "
    "'Distance'); with the paper's widths (5, ..., 5) is the lower peak, so a small distance "
    "is not a high reward.",
    "E[r]: expected reward of the final joint Gaussian policy, actions clipped to [0, 7], from "
    "the game's closed form.",
    "left basin: fraction of agents whose final mean is closer to g than to l (> (l + g) / 2).",
    "in bounds: fraction of agents whose final mean lies inside the action bounds [0, 7] "
    "(outside, the clipped actions sit on the bound: the reward there is flat).",
    "median distance: the median over seeds (robust to runs whose means left the box).",
    f"reached higher peak: E[r] >= max({outcomes.REACH_FRACTION} r_hi, (r_hi + r_lo) / 2), "
    "r_hi / r_lo the rewards at the higher / lower peak.",
    "ratio: divergence reached / trust-region radius (delta = 0.1, or CAATR's delta_i) over "
    "the steps where the agent moved: mean, max and fraction of steps with ratio > 1.",
)


@dataclass
class ExperimentResult:
    """A summarised experiment.

    Attributes:
        rows: the summary, one dict per line of the table (also the CSV's rows).
        markdown: the Markdown page (title, command, table, notes).
        sweep: the underlying sweep (per-seed rows in ``sweep.rows``).
        files: paths written, by kind (``cells``, ``csv``, ``markdown``).
    """

    rows: list[dict[str, Any]]
    markdown: str
    sweep: SweepResult
    files: dict[str, Path] = field(default_factory=dict)


def _ints(name: str, values: int | Iterable[int], allowed: Sequence[int] | None = None
          ) -> list[int]:
    values = [values] if isinstance(values, int) else list(values)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 1
           or (allowed is not None and v not in allowed)]
    if bad or not values:
        allowed_text = f" from {tuple(allowed)}" if allowed is not None else " >= 1"
        raise ValueError(f"{name} must be integers{allowed_text}, got {values!r}")
    return values


def _presets(presets: Iterable[str], allowed: Sequence[str] | None = None) -> list[str]:
    """Preset names; with ``allowed``, only those (others are checked by the sweep)."""
    names = [presets] if isinstance(presets, str) else list(presets)
    if not names:
        raise ValueError("give at least one preset")
    bad = [p for p in names if allowed is not None and p not in allowed]
    if bad:
        raise ValueError(f"unknown preset(s) {bad} here; choose from {', '.join(allowed)}")
    return names


def _finish(result: ExperimentResult, out: Path | None, name: str) -> ExperimentResult:
    if out is not None:
        result.files["csv"] = write_csv(out / f"{name}.csv", result.rows)
        result.files["markdown"] = out / f"{name}.md"
        result.files["markdown"].write_text(result.markdown)
        if result.sweep.path is not None:
            result.files["cells"] = result.sweep.path
    return result


def _run_sweep(out: Path | None, presets: list[str], seeds: list[int], settings: list[dict],
               budget: Mapping[str, int], run: Mapping[str, Any]) -> SweepResult:
    outcome = sweep(presets, seeds, settings=settings, fixed=dict(budget),
                    results=None if out is None else out / "cells.csv", **run)
    if outcome.failed:
        failed = "; ".join(outcome.failed.values())
        raise RuntimeError(f"{len(outcome.failed)} cell(s) failed (rerun to retry): {failed}")
    return outcome


def _overshoot_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Overshoot over seeds: mean of the runs' mean ratios, largest ratio, mean fraction > 1."""
    maxima = [r["overshoot_max"] for r in rows if math.isfinite(r["overshoot_max"])]
    return {
        "overshoot_mean": mean_sd(r["overshoot_mean"] for r in rows)[0],
        "overshoot_max": max(maxima) if maxima else math.nan,
        "overshoot_fraction": mean_sd(r["overshoot_fraction"] for r in rows)[0],
    }


def _seed_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What every summary line has: means and sds over the seeds of one setting."""
    first = rows[0]
    distance, distance_sd = mean_sd(r["distance"] for r in rows)
    distance_median = float(np.median([r["distance"] for r in rows]))
    reward, reward_sd = mean_sd(r["expected_reward"] for r in rows)
    reached = [r["reached_higher_peak"] for r in rows if r["reached_higher_peak"] is not None]
    return {
        "seeds": len(rows),
        "iterations": first["iterations"],
        "batch_size": first["batch_size"],
        "distance_mean": distance,
        "distance_sd": distance_sd,
        "distance_median": distance_median,
        "final_actions_mean": vector_mean(r["final_means"] for r in rows),
        "final_stds_mean": vector_mean(r["final_stds"] for r in rows),
        "expected_reward_mean": reward,
        "expected_reward_sd": reward_sd,
        "peak_local": first["peak_local"],
        "peak_global": first["peak_global"],
        "higher_peak": first["higher_peak"],
        "left_basin_fraction": mean_sd(r["left_basin_fraction"] for r in rows)[0],
        "inside_bounds_fraction": mean_sd(r["inside_bounds_fraction"] for r in rows)[0],
        "reached_higher_count": sum(bool(v) for v in reached),
        "lambda_mean": _nan_mean(r["lambda_mean"] for r in rows),
        "fingerprints": sorted({r["fingerprint"] for r in rows}),
        **_overshoot_summary(rows),
        "wall_time_mean": mean_sd(r["wall_time"] for r in rows)[0],
    }


def _nan_mean(values: Iterable[float]) -> float:
    """The mean of the finite values (NaN if none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _run_options(workers: int | None, max_replicas: int, backend: str, ray_address: str | None,
                 echo: bool, reuse_other_code: bool = False) -> dict[str, Any]:
    return {"workers": workers, "max_replicas": max_replicas, "backend": backend,
            "ray_address": ray_address, "echo": echo, "reuse_other_code": reuse_other_code}


#: The mark of a summary line with cells made by other code than the running one.
OTHER_CODE_MARK = " (other code)"


def _code_mark(line: Mapping[str, Any]) -> str:
    """``OTHER_CODE_MARK`` when some of a line's cells were made by other code."""
    return OTHER_CODE_MARK if set(line.get("fingerprints", ())) - {code_fingerprint()} else ""


def fingerprint_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """Which code made the cells shown: each fingerprint with its number of cells."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("fingerprint") or "unknown"] = counts.get(
            row.get("fingerprint") or "unknown", 0) + 1
    current = code_fingerprint()
    parts = [f"{fp} ({count} cells{', the running code' if fp == current else ', OTHER CODE'})"
             for fp, count in sorted(counts.items())]
    return "code fingerprints of the cells (version+source hash): " + "; ".join(parts) + (
        f". Lines marked{OTHER_CODE_MARK} hold cells made by other code than the running "
        "one (reused on request)" if set(counts) - {current} else "")


# -- Table 3 ------------------------------------------------------------------------------------
def table3_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Table 3's summary lines from per-seed sweep rows, by team size then method."""
    order = list(TABLE3_METHODS)
    groups = group_rows(rows, ("n_agents", "preset"))
    lines = []
    for (n, preset), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1])
                                            if kv[0][1] in order else len(order))):
        paper = TABLE3.get((preset, n))
        lines.append({
            "n": n, "preset": preset, "method": TABLE3_METHODS.get(preset, preset),
            "paper_distance": paper.distance if paper else math.nan,
            "paper_final_actions": list(paper.actions) if paper else [],
            **_seed_summary(members),
        })
    return lines


def _outcome_cells(line: Mapping[str, Any]) -> list[str]:
    """The cells "E[r]", "r(local) / r(far)", "left basin", "in bounds" and
    "ratio mean / max / >1" of a summary line."""
    return [
        fmt_mean_sd(line["expected_reward_mean"], line["expected_reward_sd"], 4),
        f"{fmt(line['peak_local'], 4)} / {fmt(line['peak_global'], 4)}",
        fmt(line["left_basin_fraction"], 2), fmt(line["inside_bounds_fraction"], 2),
        f"{fmt(line['overshoot_mean'], 2)} / {fmt(line['overshoot_max'], 2)} / "
        f"{fmt(line['overshoot_fraction'], 2)}",
    ]


def _table3_markdown(lines: Sequence[Mapping[str, Any]]) -> str:
    headers = ["n", "method", "paper distance", "distance", "median distance",
               "paper final actions", "final actions (mean over seeds)", "E[r]",
               "r(local) / r(far)", "left basin", "in bounds", "ratio mean / max / >1",
               "seeds"]
    body = [[
        str(line["n"]), line["method"] + _code_mark(line), fmt(line["paper_distance"], 4),
        fmt_mean_sd(line["distance_mean"], line["distance_sd"]),
        fmt(line["distance_median"], 3),
        fmt_vector(line["paper_final_actions"]), fmt_vector(line["final_actions_mean"]),
        *_outcome_cells(line),
        str(line["seeds"]),
    ] for line in lines]
    return markdown_table(headers, body)


def reproduce_table3(
    *,
    iterations: int = TABLE2["iterations"],
    seeds: int | str | Iterable[int] = 5,
    n: int | Iterable[int] = TABLE3_N,
    presets: Iterable[str] = tuple(TABLE3_METHODS),
    batch_size: int = TABLE2["batch_size"],
    out: str | Path | None = None,
    workers: int | None = None,
    max_replicas: int = MAX_REPLICAS,
    backend: str = "local",
    ray_address: str | None = None,
    echo: bool = False,
    reuse_other_code: bool = False,
) -> ExperimentResult:
    """Table 3: HATRPO, HATRPO + CAATR and W-MATRPO + CAATR on the differential game, and
    beside them (``TABLE3_EXTRA``) the trust regions held at their radius and the exact dual.

    Table 2's settings (delta 0.1, C by team size, N(1.5, 0.5^2) start) come from the presets;
    the budget from ``iterations`` and ``batch_size``. Each (method, n)'s seeds run as
    replicated jobs of up to ``max_replicas`` seeds, jobs in parallel, and the sweep resumes
    from ``out/cells.csv``.

    Args:
        iterations: training iterations per run (Table 2: 4000).
        seeds: a count (5 = seeds 0-4; at least 5 for the real table) or a seed list.
        n: team sizes, some of 3, 5, 7, 9.
        presets: some of ``TABLE3_METHODS`` (the paper's three and ``TABLE3_EXTRA``).
        batch_size: joint transitions per iteration (Table 2: 30).
        out: directory for ``cells.csv`` (per seed), ``table3.csv`` and ``table3.md``; None:
            write nothing.
        workers, max_replicas, backend, ray_address, echo: see ``sweep``.

    Returns:
        An ``ExperimentResult``; ``rows`` have the columns n, preset, method, paper_distance,
        paper_final_actions, seeds, iterations, batch_size, distance_mean, distance_sd,
        final_actions_mean, final_stds_mean, expected_reward_mean, expected_reward_sd,
        peak_local, peak_global, higher_peak, left_basin_fraction, reached_higher_count,
        overshoot_mean, overshoot_max, overshoot_fraction, wall_time_mean (the mean of the
        cells' ``wall_time``: each its job's loop seconds divided by the job's replicas).

    Raises:
        ValueError: bad input, before any run.
    """
    sizes = _ints("n", n, TABLE3_N)
    names = _presets(presets, tuple(TABLE3_METHODS))
    seed_list = parse_seeds(seeds)
    out = Path(out) if out is not None else None
    outcome = _run_sweep(out, names, seed_list, [{"n": k} for k in sizes],
                         {"iterations": iterations, "batch_size": batch_size},
                         _run_options(workers, max_replicas, backend, ray_address, echo,
                                      reuse_other_code))
    lines = table3_rows(outcome.rows)
    command = ["marl-tr", "reproduce", "table3", "--iterations", str(iterations),
               "--seeds", format_seeds(seed_list), "--n", ",".join(map(str, sizes)),
               "--presets", ",".join(names), "--batch-size", str(batch_size)]
    if out is not None:
        command += ["--out", str(out)]
    notes = list(_DEFINITIONS)
    if len(seed_list) < 5:
        notes.insert(0, f"only {len(seed_list)} seed(s): not the real table (use >= 5).")
    if iterations != TABLE2["iterations"] or batch_size != TABLE2["batch_size"]:
        notes.insert(0, f"budget {iterations} iterations x batch {batch_size}, not Table 2's "
                     f"{TABLE2['iterations']} x {TABLE2['batch_size']}.")
    notes.append(fingerprint_note(outcome.rows))
    markdown = markdown_document("Table 3: the differential game", command,
                                 _table3_markdown(lines), notes)
    return _finish(ExperimentResult(lines, markdown, outcome), out, "table3")


# -- variants: what the paper leaves open, and the baselines ------------------------------------
#: Presets compared on the paper's game: the paper's methods, the PPO baselines, and
#: W-MATRPO + CAATR with the choices the paper leaves open made differently.
VARIANTS: dict[str, str] = {
    "hatrpo": "HATRPO (KL, natural gradient)",
    "happo": "HAPPO (PPO clip, sequential)",
    "mappo": "MAPPO (PPO clip, simultaneous)",
    "wmatrpo": "W-MATRPO, fixed radius (eq. 31 W1, plain eqs. 16-18)",
    "wmatrpo-caatr": "W-MATRPO + CAATR as in the paper (eq. 31 W1, plain eqs. 16-18)",
    "wmatrpo-caatr:w1=exact": "... with the exact W1",
    "wmatrpo-caatr:solver='primal_dual:inner_steps=10'": "... with 10 inner steps",
    "wmatrpo-caatr:solver='primal_dual:safeguard=shrink'": "... with the step shrunk back into "
                                                          "the ball",
    "wmatrpo-caatr:solver='primal_dual:optimizer=adam,lr_theta=0.001,safeguard=shrink'":
        "... with Adam (lr 1e-3) and the shrink safeguard",
    "hatrpo-tr": "KL held at the radius (exact_radius, gradient direction)",
    "wmatrpo-tr": "exact W1 held at the radius (exact_radius, gradient direction)",
    "wmatrpo-tr-caatr": "... with CAATR radii",
    "wmatrpo-tr:solver='exact_radius:direction=natural'": "exact W1 held at the radius, "
                                                          "Fisher (KL) direction",
    "wmatrpo-dual": "exact dual (Thm. 1, Cor. 1), learned Q",
    "wmatrpo-dual:critic=oracle_q": "exact dual (Thm. 1, Cor. 1), oracle Q",
    "wmatrpo-dual-caatr": "exact dual + CAATR, learned Q",
    "wmatrpo-dual-caatr:critic=oracle_q": "exact dual + CAATR, oracle Q",
    "sb3:ppo": "Centralised PPO (Stable-Baselines3): one policy over the joint action",
    "sb3:trpo": "Centralised TRPO (sb3-contrib): one KL trust region on the joint policy",
}


def variants_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One summary line per preset (in ``VARIANTS`` order)."""
    order = list(VARIANTS)
    groups = group_rows(rows, ("n_agents", "preset"))
    return [
        {"n": n, "preset": preset, "method": VARIANTS.get(preset, preset),
         **_seed_summary(members)}
        for (n, preset), members in sorted(
            groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1])
                                            if kv[0][1] in order else len(order)))
    ]


def _variants_markdown(lines: Sequence[Mapping[str, Any]]) -> str:
    headers = ["n", "method", "preset", "distance", "median distance",
               "final actions (mean over seeds)", "E[r]", "r(local) / r(far)", "left basin",
               "in bounds", "ratio mean / max / >1", "ms/it per seed", "seeds"]
    body = [[
        str(line["n"]), line["method"] + _code_mark(line), f"`{line['preset']}`",
        fmt_mean_sd(line["distance_mean"], line["distance_sd"]),
        fmt(line["distance_median"], 3),
        fmt_vector(line["final_actions_mean"]),
        *_outcome_cells(line),
        fmt(1e3 * line["wall_time_mean"] / line["iterations"], 3),
        str(line["seeds"]),
    ] for line in lines]
    return markdown_table(headers, body)


def reproduce_variants(
    *,
    iterations: int = TABLE2["iterations"],
    seeds: int | str | Iterable[int] = 5,
    n: int | Iterable[int] = 3,
    presets: Iterable[str] = tuple(VARIANTS),
    batch_size: int = TABLE2["batch_size"],
    out: str | Path | None = None,
    workers: int | None = None,
    max_replicas: int = MAX_REPLICAS,
    backend: str = "local",
    ray_address: str | None = None,
    echo: bool = False,
    reuse_other_code: bool = False,
) -> ExperimentResult:
    """The paper's methods, the PPO baselines and W-MATRPO + CAATR variants, side by side.

    Same game, start and budget as Table 3 (default n = 3). Arguments as in
    ``reproduce_table3``; ``presets`` are config strings (any, not only ``VARIANTS``).
    """
    sizes = _ints("n", n)
    names = _presets(presets)
    seed_list = parse_seeds(seeds)
    out = Path(out) if out is not None else None
    outcome = _run_sweep(out, names, seed_list, [{"n": k} for k in sizes],
                         {"iterations": iterations, "batch_size": batch_size},
                         _run_options(workers, max_replicas, backend, ray_address, echo,
                                      reuse_other_code))
    lines = variants_rows(outcome.rows)
    command = ["marl-tr", "reproduce", "variants", "--iterations", str(iterations),
               "--seeds", format_seeds(seed_list), "--n", ",".join(map(str, sizes)),
               "--batch-size", str(batch_size)]
    if list(names) != list(VARIANTS):
        command += ["--presets", ";".join(names)]
    if out is not None:
        command += ["--out", str(out)]
    notes = [*_DEFINITIONS,
             "ms/it per seed: loop seconds per iteration of one seed (its replicated job's "
             "time divided by the job's replicas)."]
    notes.append(fingerprint_note(outcome.rows))
    markdown = markdown_document("Variants and baselines on the differential game", command,
                                 _variants_markdown(lines), notes)
    return _finish(ExperimentResult(lines, markdown, outcome), out, "variants")


# -- the basin-gap study ------------------------------------------------------------------------
def _sigma_label(row: Mapping[str, Any]) -> str:
    given = row["env_kwargs"].get("sigma")
    widths = fmt_vector(row["sigma"], 1)
    return f"paper {widths}" if given is None else widths


def basin_gap_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The basin-gap summary lines from per-seed sweep rows, one per setting and preset."""
    lines = []
    for members in group_rows(rows, lambda r: (repr(sorted(r["env_kwargs"].items())),
                                               r["preset"])).values():  # preset-major
        first = members[0]
        summary = _seed_summary(members)
        lines.append({
            "n": first["n_agents"], "basin_gap": first["global_center"] - first["local_center"],
            "sigma": first["sigma"], "sigma_label": _sigma_label(first), "preset": first["preset"],
            **summary,
            "reached_fraction": summary["reached_higher_count"] / summary["seeds"],
        })
    sigmas = list(dict.fromkeys(line["sigma_label"] for line in lines))
    return sorted(lines, key=lambda line: (line["n"], sigmas.index(line["sigma_label"]),
                                           line["basin_gap"]))  # stable: presets keep order


def _verdicts(lines: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per setting: which presets reach its higher peak (majority of seeds)."""
    sentences = []
    for members in group_rows(lines, ("n", "basin_gap", "sigma_label")).values():
        first = members[0]
        winners = [f"{m['preset']} ({m['reached_higher_count']}/{m['seeds']})" for m in members
                   if m["reached_fraction"] >= 0.5]
        sentences.append(
            f"n = {first['n']}, gap {fmt(first['basin_gap'], 1)}, sigma {first['sigma_label']}: "
            f"higher peak is the {'far' if first['higher_peak'] == 'global' else 'near'} one "
            f"({first['higher_peak']}); reached by "
            + (", ".join(winners) if winners else "no preset") + "."
        )
    return sentences


def _basin_gap_markdown(lines: Sequence[Mapping[str, Any]]) -> str:
    headers = ["n", "gap", "sigma", "higher peak", "r(near) / r(far)", "preset", "E[r]",
               "reached (seeds)", "left basin", "distance", "final actions"]
    body = [[
        str(line["n"]), fmt(line["basin_gap"], 1), line["sigma_label"], line["higher_peak"],
        f"{fmt(line['peak_local'], 4)} / {fmt(line['peak_global'], 4)}",
        line["preset"] + _code_mark(line),
        fmt_mean_sd(line["expected_reward_mean"], line["expected_reward_sd"], 4),
        f"{line['reached_higher_count']}/{line['seeds']}", fmt(line["left_basin_fraction"], 2),
        fmt_mean_sd(line["distance_mean"], line["distance_sd"]),
        fmt_vector(line["final_actions_mean"], 2),
    ] for line in lines]
    return markdown_table(headers, body) + "\n\n" + "\n".join(
        f"- {sentence}" for sentence in _verdicts(lines))


def _sigma_setting(sigma: Any) -> dict[str, Any]:
    if sigma is None or sigma == "paper":
        return {}
    return {"sigma": list(sigma) if isinstance(sigma, (list, tuple)) else sigma}


def _sigmas_flag(sigmas: Sequence[Any]) -> list[str]:
    return ["paper" if s is None or s == "paper" else
            ",".join(map(str, s)) if isinstance(s, (list, tuple)) else str(s) for s in sigmas]


#: The basin-gap study's methods: the paper's three, W1 held at the radius and the exact dual.
BASIN_GAP_PRESETS: tuple[str, ...] = (*TABLE3_PRESETS, "wmatrpo-tr-caatr", "wmatrpo-dual-caatr",
                                      "wmatrpo-dual-caatr:critic=oracle_q")


def reproduce_basin_gap(
    *,
    gaps: Iterable[float] = (2.0, 3.0, 4.0),
    sigmas: Sequence[Any] = ("paper", 1.0),
    n: int | Iterable[int] = 3,
    presets: Iterable[str] = BASIN_GAP_PRESETS,
    iterations: int = TABLE2["iterations"],
    seeds: int | str | Iterable[int] = 5,
    batch_size: int = TABLE2["batch_size"],
    out: str | Path | None = None,
    workers: int | None = None,
    max_replicas: int = MAX_REPLICAS,
    backend: str = "local",
    ray_address: str | None = None,
    echo: bool = False,
    reuse_other_code: bool = False,
) -> ExperimentResult:
    """Which presets reach the truly global optimum as the basins move apart and change width.

    Every setting (team size x ``basin_gap`` x ``sigma``) is a differential game; the game
    core says which peak is higher (with ``sigma = 1`` for every agent the far bump, of mass
    10 > 6.5, is the higher one; with the paper's widths the near one is). A run *reached*
    the higher peak when its expected reward says so (``outcomes.reached_higher_peak``); the
    summary lists, per setting, the presets that reached it in at least half of their seeds.

    Args:
        gaps: ``basin_gap`` values (``g - l``; the paper's is 4).
        sigmas: widths of the far bump: ``"paper"`` (or None) for the paper's (1, 3, 1, 1, ...),
            a number for every agent, or one number per agent.
        n: team size(s).
        presets: any registered presets (default: ``BASIN_GAP_PRESETS``).
        iterations, seeds, batch_size: as for ``reproduce_table3``.
        out: directory for ``cells.csv``, ``basin_gap.csv`` and ``basin_gap.md``.
        workers, max_replicas, backend, ray_address, echo: see ``sweep``.

    Returns:
        An ``ExperimentResult``; ``rows`` have n, basin_gap, sigma, sigma_label, preset, the
        seed summary (as in Table 3) and ``reached_fraction``.

    Raises:
        ValueError: bad input, before any run.
    """
    sizes = _ints("n", n)
    names = _presets(presets)
    seed_list = parse_seeds(seeds)
    gap_list = list(gaps)
    if not gap_list or not isinstance(sigmas, Sequence) or isinstance(sigmas, str) or not sigmas:
        raise ValueError(f"gaps and sigmas must be non-empty lists, got {gaps!r}, {sigmas!r}")
    settings = [{"n": k, "basin_gap": gap, **_sigma_setting(sigma)}
                for k in sizes for sigma in sigmas for gap in gap_list]
    out = Path(out) if out is not None else None
    outcome = _run_sweep(out, names, seed_list, settings,
                         {"iterations": iterations, "batch_size": batch_size},
                         _run_options(workers, max_replicas, backend, ray_address, echo,
                                      reuse_other_code))
    lines = basin_gap_rows(outcome.rows)
    command = ["marl-tr", "reproduce", "basin-gap", "--gaps", ",".join(map(str, gap_list)),
               "--sigmas", *_sigmas_flag(sigmas), "--n", ",".join(map(str, sizes)),
               "--presets", ",".join(names), "--iterations", str(iterations),
               "--seeds", format_seeds(seed_list), "--batch-size", str(batch_size)]
    if out is not None:
        command += ["--out", str(out)]
    markdown = markdown_document("Basin-gap study: which presets reach the higher peak",
                                 command, _basin_gap_markdown(lines),
                                 [*_DEFINITIONS, fingerprint_note(outcome.rows)])
    return _finish(ExperimentResult(lines, markdown, outcome), out, "basin_gap")


# -- the matrix games: KL against W1 on discrete actions -------------------------------------------
#: The matrix games (env id -> its keyword settings, one line each).
MATRIX_GAMES: dict[str, list[dict[str, Any]]] = {
    "ClimbingGame-v0": [{}],
    "PenaltyGame-v0": [{"k": -10.0}, {"k": -100.0}],
}
#: Methods on the matrix games: categorical policies, W1 under the ordinal ground metric
#: (actions 0, 1, 2 on a line) for the W-MATRPO presets (eq. 31 is for Gaussians only).
MATRIX_PRESETS: dict[str, str] = {
    "hatrpo": "HATRPO (KL, natural gradient)",
    "hatrpo-tr": "KL held at the radius (exact_radius)",
    "mappo": "MAPPO (PPO clip, simultaneous)",
    "wmatrpo-caatr": "W-MATRPO + CAATR, eqs. 16-18 (exact categorical W1)",
    "wmatrpo-tr": "exact W1 held at the radius (exact_radius)",
    "wmatrpo-tr-caatr": "... with CAATR radii",
    "wmatrpo-dual": "exact dual (Thm. 1), learned Q",
    "wmatrpo-dual:critic=oracle_q": "exact dual (Thm. 1), oracle Q",
}


def matrix_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One summary line per (game, setting, preset), presets in ``MATRIX_PRESETS`` order."""
    order = list(MATRIX_PRESETS)
    lines = []
    groups = group_rows(rows, lambda r: (r["env"], repr(sorted(r["env_kwargs"].items())),
                                         r["preset"]))
    for (env, _, preset), members in groups.items():
        reward, reward_sd = mean_sd(r["expected_reward"] for r in members)
        optimal, optimal_sd = mean_sd(r["optimal_joint_probability"] for r in members)
        lines.append({
            "game": env.removesuffix("-v0"), "env_kwargs": members[0]["env_kwargs"],
            "preset": preset, "method": MATRIX_PRESETS.get(preset, preset),
            "seeds": len(members), "iterations": members[0]["iterations"],
            "expected_reward_mean": reward, "expected_reward_sd": reward_sd,
            "optimal_probability_mean": optimal, "optimal_probability_sd": optimal_sd,
            "optimal_count": sum(r["optimal_joint_probability"] >= 0.9 for r in members),
            "final_probs_mean": [vector_mean(r["final_probs"][i] for r in members)
                                 for i in range(members[0]["n_agents"])],
            "lambda_mean": _nan_mean(r["lambda_mean"] for r in members),
            "fingerprints": sorted({r["fingerprint"] for r in members}),
            **_overshoot_summary(members),
            "wall_time_mean": mean_sd(r["wall_time"] for r in members)[0],
        })
    return sorted(lines, key=lambda line: (line["game"], repr(line["env_kwargs"]),
                                           order.index(line["preset"])
                                           if line["preset"] in order else len(order)))


def _matrix_markdown(lines: Sequence[Mapping[str, Any]]) -> str:
    headers = ["game", "setting", "method", "preset", "E[r]", "P(optimal joint action)",
               "optimal (>= 0.9)", "final probabilities (mean over seeds)", "lambda",
               "ratio mean / max / >1", "seeds"]
    body = [[
        line["game"], ", ".join(f"{k}={v}" for k, v in line["env_kwargs"].items()) or "-",
        line["method"] + _code_mark(line), f"`{line['preset']}`",
        fmt_mean_sd(line["expected_reward_mean"], line["expected_reward_sd"], 2),
        fmt_mean_sd(line["optimal_probability_mean"], line["optimal_probability_sd"], 2),
        f"{line['optimal_count']}/{line['seeds']}",
        "; ".join(fmt_vector(p, 2) for p in line["final_probs_mean"]),
        fmt(line["lambda_mean"], 3),
        f"{fmt(line['overshoot_mean'], 2)} / {fmt(line['overshoot_max'], 2)} / "
        f"{fmt(line['overshoot_fraction'], 2)}",
        str(line["seeds"]),
    ] for line in lines]
    return markdown_table(headers, body)


def reproduce_matrix_games(
    *,
    games: Iterable[str] = tuple(MATRIX_GAMES),
    presets: Iterable[str] = tuple(MATRIX_PRESETS),
    iterations: int = TABLE2["iterations"],
    seeds: int | str | Iterable[int] = 5,
    batch_size: int = TABLE2["batch_size"],
    out: str | Path | None = None,
    workers: int | None = None,
    max_replicas: int = MAX_REPLICAS,
    backend: str = "local",
    ray_address: str | None = None,
    echo: bool = False,
    reuse_other_code: bool = False,
) -> ExperimentResult:
    """The climbing and penalty games: KL and W1 trust regions on categorical policies.

    Every method starts from uniform policies over the three actions (free logits), with the
    presets' radius (0.1). Measures: ``E[r]`` of the final joint policy, the probability of
    an optimal joint action, the final probabilities, lambda and the constraint ratio.

    Args:
        games: some of ``MATRIX_GAMES`` (each with its settings).
        presets: any registered presets (default: ``MATRIX_PRESETS``).
        iterations, seeds, batch_size, out, workers, max_replicas, backend, ray_address, echo:
            as for ``reproduce_table3``.
    """
    names = _presets(presets)
    seed_list = parse_seeds(seeds)
    chosen = [games] if isinstance(games, str) else list(games)
    unknown = [g for g in chosen if g not in MATRIX_GAMES]
    if unknown or not chosen:
        raise ValueError(f"games must be some of {', '.join(MATRIX_GAMES)}, got {chosen!r}")
    out = Path(out) if out is not None else None
    run = _run_options(workers, max_replicas, backend, ray_address, echo, reuse_other_code)
    budget = {"iterations": iterations, "batch_size": batch_size}
    rows: list[dict[str, Any]] = []
    sweeps = []
    for game in chosen:
        name = game.removesuffix("-v0").lower()
        outcome = sweep(names, seed_list, env=game, settings=MATRIX_GAMES[game],
                        fixed=budget, results=None if out is None else out / f"{name}.cells.csv",
                        **run)
        if outcome.failed:
            failed = "; ".join(outcome.failed.values())
            raise RuntimeError(f"{len(outcome.failed)} cell(s) failed (rerun to retry): "
                               f"{failed}")
        rows.extend(outcome.rows)
        sweeps.append(outcome)
    lines = matrix_rows(rows)
    command = ["marl-tr", "reproduce", "matrix", "--iterations", str(iterations),
               "--seeds", format_seeds(seed_list), "--batch-size", str(batch_size)]
    if list(names) != list(MATRIX_PRESETS):
        command += ["--presets", ";".join(names)]
    if out is not None:
        command += ["--out", str(out)]
    notes = [
        "E[r]: expected payoff of the final joint policy (the payoff table under the product of "
        "the agents' final probabilities).",
        "P(optimal joint action): probability that the final joint policy plays a joint action "
        "of the highest payoff; optimal (>= 0.9): seeds where it is at least 0.9.",
        "lambda: the solver's dual variable averaged over iterations and agents (ot_dual: "
        "lambda* of Theorem 1; primal_dual: eq. 18's lambda).",
        "W1 between categoricals uses the ordinal ground metric |i - j| (actions on a line).",
        _DEFINITIONS[-1],
    ]
    notes.append(fingerprint_note(rows))
    markdown = markdown_document("Matrix games: KL and W1 trust regions on discrete actions",
                                 command, _matrix_markdown(lines), notes)
    combined = SweepResult(rows=rows, cells=[c for s in sweeps for c in s.cells],
                           jobs=[j for s in sweeps for j in s.jobs],
                           path=None if out is None else sweeps[0].path)
    return _finish(ExperimentResult(lines, markdown, combined), out, "matrix")


# -- sensitivity: which per-seed numbers are stable ------------------------------------------------
#: Per-seed outcomes whose final means move by less than this under float32 -> float64 are
#: called stable (the per-seed numbers reproduce); otherwise only their distribution over seeds.
STABLE_TOLERANCE = 0.01


def sensitivity_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per preset: how far each seed's outcome moves between float32 and float64 runs."""
    pairs: dict[tuple[str, int], dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        dtype = row["overrides"].get("dtype", "float32")
        pairs.setdefault((row["preset"], row["seed"]), {})[dtype] = row
    lines: dict[str, dict[str, Any]] = {}
    for (preset, _), both in pairs.items():
        if set(both) != {"float32", "float64"}:
            continue
        a, b = both["float32"], both["float64"]
        moved = (float(np.max(np.abs(np.asarray(a["final_means"], float)
                                     - np.asarray(b["final_means"], float))))
                 if a["final_means"] and b["final_means"] else math.nan)
        line = lines.setdefault(preset, {"preset": preset, "seeds": 0, "mean_moves": [],
                                         "reward_moves": [], "rewards32": [], "rewards64": []})
        line["seeds"] += 1
        line["mean_moves"].append(moved)
        line["reward_moves"].append(abs(a["expected_reward"] - b["expected_reward"]))
        line["rewards32"].append(a["expected_reward"])
        line["rewards64"].append(b["expected_reward"])
    out = []
    for preset, line in lines.items():
        largest = float(np.nanmax(line["mean_moves"])) if line["mean_moves"] else math.nan
        out.append({
            "preset": preset, "seeds": line["seeds"],
            "largest_mean_move": largest,
            "median_mean_move": float(np.nanmedian(line["mean_moves"])),
            "largest_reward_move": float(np.nanmax(line["reward_moves"])),
            "reward32": mean_sd(line["rewards32"]), "reward64": mean_sd(line["rewards64"]),
            "stable": bool(largest < STABLE_TOLERANCE),
        })
    return out


def reproduce_sensitivity(
    *,
    presets: Iterable[str] = tuple(TABLE3_METHODS),
    n: int = 3,
    iterations: int = TABLE2["iterations"],
    seeds: int | str | Iterable[int] = 5,
    batch_size: int = TABLE2["batch_size"],
    out: str | Path | None = None,
    workers: int | None = None,
    max_replicas: int = MAX_REPLICAS,
    backend: str = "local",
    ray_address: str | None = None,
    echo: bool = False,
    reuse_other_code: bool = False,
) -> ExperimentResult:
    """How per-seed outcomes move under a change that should not matter: every seed run in
    float32 and in float64. Presets whose final means stay within ``STABLE_TOLERANCE`` are
    *stable* (their per-seed numbers reproduce); the others are chaotic, and only their
    distribution over seeds (median, quantiles) is a result.
    """
    names = _presets(presets)
    seed_list = parse_seeds(seeds)
    out = Path(out) if out is not None else None
    outcome = sweep(names, seed_list, settings=[{"n": n}],
                    grid={"dtype": ["float32", "float64"]},
                    fixed={"iterations": iterations, "batch_size": batch_size},
                    results=None if out is None else out / "cells.csv",
                    **_run_options(workers, max_replicas, backend, ray_address, echo,
                                   reuse_other_code))
    if outcome.failed:
        raise RuntimeError(f"{len(outcome.failed)} cell(s) failed (rerun to retry): "
                           + "; ".join(outcome.failed.values()))
    lines = sensitivity_rows(outcome.rows)
    headers = ["preset", "largest move of a final mean", "median move", "largest move of E[r]",
               "E[r] float32", "E[r] float64", "per-seed numbers", "seeds"]
    body = [[f"`{x['preset']}`", fmt(x["largest_mean_move"], 4), fmt(x["median_mean_move"], 4),
             fmt(x["largest_reward_move"], 4), fmt_mean_sd(*x["reward32"], 4),
             fmt_mean_sd(*x["reward64"], 4),
             "stable" if x["stable"] else "chaotic: distribution only", str(x["seeds"])]
            for x in lines]
    command = ["marl-tr", "reproduce", "sensitivity", "--iterations", str(iterations),
               "--seeds", format_seeds(seed_list), "--n", str(n)]
    if out is not None:
        command += ["--out", str(out)]
    notes = [f"Each seed runs twice, in float32 and in float64 (the same seed, config and "
             f"code); a preset is stable when no final mean moves by {STABLE_TOLERANCE} or "
             "more. Chaotic presets' per-seed numbers depend on rounding; read their rows as "
             "distributions over seeds."]
    notes.append(fingerprint_note(outcome.rows))
    markdown = markdown_document(f"Sensitivity of per-seed outcomes (n = {n})", command,
                                 markdown_table(headers, body), notes)
    return _finish(ExperimentResult(lines, markdown, outcome), out, "sensitivity")
