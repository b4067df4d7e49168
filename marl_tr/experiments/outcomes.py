"""What one training run achieved, measured the same way for every experiment.

Definitions (used by sweeps, Table 3, Figure 1 and the basin-gap study):

* **Distance** (Table 3's "Distance"): the Euclidean distance from the final mean actions to
  the far centre ``(g, ..., g)`` (``g = 5`` in the paper), ``||mu - g 1||_2``. It is not a reward:
  with the paper's widths ``(g, ..., g)`` is the *lower* peak.
* **Left the near basin**: agent ``i`` left it when its final mean is strictly closer to the far
  centre ``g`` than to the local centre ``l``: ``|mu_i - g| < |mu_i - l|`` (for ``g > l``: ``mu_i >
  (l + g) / 2``). The *left-basin fraction* is the fraction of agents that left it.
* **Reached the higher peak**: judged by the expected reward ``E[r]`` of the final joint policy
  (actions clipped to the action box, from the env's analytic core). With ``r_hi`` and ``r_lo``
  the rewards at the higher and the lower peak, a run reached the higher peak when
  ``E[r] >= max(REACH_FRACTION * r_hi, (r_hi + r_lo) / 2)``: within 10 % of the higher peak's
  reward *and* closer to it than to the lower peak's (a policy parked on the lower peak never
  counts). If the peaks tie, ``E[r] >= REACH_FRACTION * r_hi`` (either peak counts).
* **Matrix games** (categorical policies): ``E[r]`` of the final joint policy from the payoff
  table, and the probability that it plays an optimal joint action.
* **Episode return** (multi-step envs, no analytic core needed): ``final_return_mean``, the
  mean over the last 10 iterations of the mean episode return (per agent, with a mean team
  reward; ``final_return_team`` for the sum over agents), and ``eval_return_mean``, the last
  evaluation's (deterministic policy).
* **lambda**: the mean over iterations and agents of the solver's logged dual variable
  (``ot_dual``'s ``lambda*``; ``primal_dual``'s ``lambda``).
* **Constraint overshoot**: ``constraint_ratio_i = divergence reached / radius`` of agent ``i``'s
  step (the radius is delta = 0.1 for fixed-radius presets, CAATR's delta_i otherwise), over the
  iterations where the agent moved (``moved_i = 1``). Per agent: the mean ratio, the largest
  ratio and the fraction of moves with ratio > ``1 + OVERSHOOT_TOLERANCE``; pooled over agents
  for the run's scalar summary.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "OVERSHOOT_TOLERANCE",
    "REACH_FRACTION",
    "left_basin",
    "measure",
    "overshoot",
    "paper_distance",
    "reached_higher_peak",
]

#: A run reached the higher peak when ``E[r]`` is at least this fraction of its reward (and
#: closer to it than to the lower peak's reward).
REACH_FRACTION = 0.9
#: A move overshoots its radius when ``divergence / radius > 1 + OVERSHOOT_TOLERANCE``.
OVERSHOOT_TOLERANCE = 1e-6


def paper_distance(means: Any, global_center: float) -> float:
    """Table 3's distance: ``||means - (g, ..., g)||_2`` over every agent and action dim."""
    values = np.asarray(means, dtype=float).ravel()
    return float(np.linalg.norm(values - float(global_center)))


def left_basin(means: Any, local_center: float, global_center: float) -> np.ndarray:
    """Per agent: whether its final mean is strictly closer to ``g`` than to ``l``.

    Args:
        means: final means ``[n]`` or ``[n, 1]``.
        local_center: ``l``.
        global_center: ``g``.

    Returns:
        A boolean array ``[n]``.
    """
    values = np.asarray(means, dtype=float).reshape(len(means), -1)[:, 0]
    return np.abs(values - global_center) < np.abs(values - local_center)


def reached_higher_peak(expected_reward: float, peaks: dict[str, float]) -> bool:
    """Whether ``E[r]`` counts as reaching the higher peak (see the module docstring).

    Args:
        expected_reward: ``E[r]`` of the final joint policy (clipped actions).
        peaks: ``{"local": r(l, ..., l), "global": r(g, ..., g)}``.
    """
    high, low = max(peaks.values()), min(peaks.values())
    threshold = REACH_FRACTION * high
    if high > low:
        threshold = max(threshold, 0.5 * (high + low))
    return bool(expected_reward >= threshold)


def overshoot(metrics: list[dict[str, Any]], n_agents: int) -> dict[str, Any]:
    """Constraint-overshoot statistics of a run (see the module docstring).

    Args:
        metrics: the run's per-iteration metrics (``constraint_ratio_i``, ``moved_i``).
        n_agents: number of agents.

    Returns:
        Per-agent lists ``ratio_mean``, ``ratio_max``, ``ratio_over_fraction`` and
        ``moved_fraction`` (NaN where an agent never moved) and the pooled scalars
        ``overshoot_mean``, ``overshoot_max``, ``overshoot_fraction``.
    """
    per_agent: list[np.ndarray] = []
    moved_fraction: list[float] = []
    for i in range(n_agents):
        ratios = np.array([row.get(f"constraint_ratio_{i}", math.nan) for row in metrics],
                          dtype=float)
        moved = np.array([row.get(f"moved_{i}", 0) for row in metrics], dtype=float) > 0
        picked = ratios[moved & np.isfinite(ratios)]
        per_agent.append(picked)
        moved_fraction.append(float(moved.mean()) if len(moved) else math.nan)
    pooled = np.concatenate(per_agent) if per_agent else np.array([])

    def stats(values: np.ndarray) -> tuple[float, float, float]:
        if not len(values):
            return math.nan, math.nan, math.nan
        over = float(np.mean(values > 1.0 + OVERSHOOT_TOLERANCE))
        return float(values.mean()), float(values.max()), over

    columns = [stats(values) for values in per_agent]
    total = stats(pooled)
    return {
        "ratio_mean": [c[0] for c in columns],
        "ratio_max": [c[1] for c in columns],
        "ratio_over_fraction": [c[2] for c in columns],
        "moved_fraction": moved_fraction,
        "overshoot_mean": total[0],
        "overshoot_max": total[1],
        "overshoot_fraction": total[2],
    }


def _policy_summary(result: Any) -> dict[str, Any]:
    try:
        means, stds = result.final_means(), result.final_stds()
    except ValueError:  # not state-independent Gaussian policies
        return {"final_means": [], "final_stds": []}
    squeeze = means.shape[1] == 1
    return {
        "final_means": (means[:, 0] if squeeze else means).tolist(),
        "final_stds": (stds[:, 0] if squeeze else stds).tolist(),
    }


def _game_summary(result: Any, means: list[Any]) -> dict[str, Any]:
    """Peak rewards, expected rewards, distance and basin measures (envs with a game core)."""
    game = result.game
    nan = math.nan
    out: dict[str, Any] = {
        "sigma": [], "local_center": nan, "global_center": nan, "peak_local": nan,
        "peak_global": nan, "higher_peak": "", "distance": nan, "expected_reward": nan,
        "expected_reward_unclipped": nan, "left_basin_fraction": nan,
        "inside_bounds_fraction": nan, "reached_higher_peak": None,
    }
    if game is None or not hasattr(game, "peak_rewards"):
        return out
    peaks = game.peak_rewards()
    out.update(
        sigma=list(getattr(game, "sigma", ())), local_center=float(game.local_center),
        global_center=float(game.global_center), peak_local=float(peaks["local"]),
        peak_global=float(peaks["global"]), higher_peak=game.higher_peak(),
    )
    if not means or np.ndim(means[0]) != 0:  # the game has one action dimension per agent
        return out
    out["distance"] = paper_distance(means, game.global_center)
    out["left_basin_fraction"] = float(
        left_basin(means, game.local_center, game.global_center).mean())
    inside = (np.asarray(means) >= game.low) & (np.asarray(means) <= game.high)
    out["inside_bounds_fraction"] = float(inside.mean())
    out["expected_reward"] = result.expected_reward(clip=True)
    out["expected_reward_unclipped"] = result.expected_reward(clip=False)
    out["reached_higher_peak"] = reached_higher_peak(out["expected_reward"], peaks)
    return out


def _categorical_summary(result: Any) -> dict[str, Any]:
    """Final probabilities of state-independent categorical policies and, for a matrix game,
    ``E[r]`` of the final joint policy and the probability of playing an optimal joint action
    (NaN / empty otherwise)."""
    out: dict[str, Any] = {"final_probs": [], "optimal_joint_probability": math.nan,
                           "expected_reward": math.nan}
    from marl_tr.api import categorical_probs

    probs = categorical_probs(result.policies) if result.policies else None
    if probs is None:
        return out
    out["final_probs"] = [row.tolist() for row in probs]
    game = result.game
    if game is not None and hasattr(game, "optimal_joint_actions"):
        out["expected_reward"] = float(game.expected_reward(probs))
        out["optimal_joint_probability"] = float(sum(
            np.prod([probs[i][a] for i, a in enumerate(joint)])
            for joint in game.optimal_joint_actions()))
    return out


def _dual_summary(metrics: list[dict[str, Any]], n_agents: int) -> dict[str, Any]:
    """The mean dual variable ``lambda`` over iterations and agents where a solver logs one
    (``ot_dual``'s ``lambda*``, ``primal_dual``'s ``lambda``); NaN otherwise."""
    values = [row.get(f"lambda_{i}", math.nan) for row in metrics for i in range(n_agents)]
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return {"lambda_mean": float(np.mean(finite)) if finite else math.nan}


def _last_finite(metrics: list[dict[str, Any]], key: str, window: int) -> float:
    """The mean of the last ``window`` finite values of ``key`` (NaN if none)."""
    values = [float(row[key]) for row in metrics
              if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
    return float(np.mean(values[-window:])) if values else math.nan


def _return_summary(result: Any, window: int = 10) -> dict[str, float]:
    """Episode returns (multi-step envs): the mean of the last ``window`` iterations' mean
    episode return, per agent and the team's sum, and the last evaluation's."""
    metrics = result.metrics
    return {"final_return_mean": _last_finite(metrics, "episode_return_mean", window),
            "final_return_team": _last_finite(metrics, "episode_return_team", window),
            "eval_return_mean": _last_finite(metrics, "eval_return_mean", 1)}


def measure(result: Any) -> dict[str, Any]:
    """Every outcome of a finished run (a ``TrainResult``) as one flat record.

    Returns:
        ``n_agents``, ``iterations`` and ``batch_size`` (resolved), ``final_means`` and
        ``final_stds`` (lists, empty for policies without them), the game measures (NaN for
        envs without an analytic core), the overshoot statistics, ``final_reward_mean`` (the
        last batch's mean reward), ``resolved_config`` (the run's full ``TrainConfig``, so a
        change of library defaults can be seen) and ``wall_time`` (seconds in the loop; for
        one replica of ``TrainResult.split()``, the replicated run's divided by its replicas).
    """
    n_agents = len(result.policies)
    policy = _policy_summary(result)
    last = result.metrics[-1] if result.metrics else {}
    game = _game_summary(result, policy["final_means"])
    categorical = _categorical_summary(result)
    if math.isnan(game["expected_reward"]):
        game["expected_reward"] = categorical["expected_reward"]
    return {
        "n_agents": n_agents,
        "iterations": int(result.config.iterations),
        "batch_size": int(result.config.batch_size),
        **policy,
        **game,
        "final_probs": categorical["final_probs"],
        "optimal_joint_probability": categorical["optimal_joint_probability"],
        **_dual_summary(result.metrics, n_agents),
        "final_reward_mean": float(last.get("reward_mean", math.nan)),
        **_return_summary(result),
        **overshoot(result.metrics, n_agents),
        "resolved_config": {k: v for k, v in result.config.to_dict().items()
                            if k not in ("run_dir", "progress")},
        "wall_time": float(result.wall_time),
    }
