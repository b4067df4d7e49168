"""``marl_tr.train``: run the sequential trust-region loop from Python.

    import marl_tr
    result = marl_tr.train(preset="wmatrpo-caatr", env_kwargs={"n": 3}, iterations=500, seed=0)
    result.final_means()          # [n, d] mean actions of state-independent Gaussian policies
    result.expected_reward()      # E[r] of the final joint policy (envs with an analytic core)
    result.metrics[-1]            # the last iteration's metrics
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marl_tr.config import TrainConfig
from marl_tr.policies import GaussianPolicy, Policy
from marl_tr.training.loop import SequentialTrustRegion, TrainingError
from marl_tr.training.run_dir import RunDirectory, TensorBoardWriter, read_metrics
from marl_tr.training.setup import build_parts

__all__ = ["TrainResult", "TrainingError", "train"]

#: Fields a resumed run may change (everything else must match the saved config).
RESUMABLE_CHANGES = ("iterations", "log_interval", "checkpoint_interval", "progress",
                     "tensorboard")


@dataclass
class TrainResult:
    """What a run produced.

    A run with ``replicas > 1`` holds several independent seeds; ``split()`` gives one
    single-seed ``TrainResult`` per replica, on which the per-run accessors work.

    Attributes:
        config: the resolved config (every field set).
        policies: the final policies, one per agent (each holding every replica).
        metrics: one dict per iteration and replica (see ``SequentialTrustRegion.step``).
        run_dir: the run directory, if one was used.
        game: the env's analytic core, if it has one (e.g. the differential game).
        wall_time: seconds spent in the training loop (all replicas together).
        agents: the agents' names.
    """

    config: TrainConfig
    policies: list[Policy]
    metrics: list[dict[str, Any]]
    run_dir: Path | None = None
    game: Any = None
    wall_time: float = 0.0
    agents: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return self.config.replicas

    def split(self) -> list[TrainResult]:
        """One single-replica result per replica (replica ``r``: the run with seed
        ``seed + r``; its ``wall_time`` is the shared wall time divided by ``R``)."""
        if self.replicas == 1:
            return [self]
        return [
            TrainResult(
                config=self.config.replace(seed=self.config.seed + r, replicas=1),
                policies=[p.replica(r) for p in self.policies],
                metrics=[row for row in self.metrics if row.get("replica", 0) == r],
                run_dir=self.run_dir, game=self.game, wall_time=self.wall_time / self.replicas,
                agents=self.agents,
            )
            for r in range(self.replicas)
        ]

    def _single(self, what: str) -> None:
        if self.replicas != 1:
            raise ValueError(
                f"{what} is defined per run; this result holds {self.replicas} replicas: use "
                "result.split()"
            )

    def final_means(self) -> np.ndarray:
        """Mean actions ``[n, d]`` of state-independent Gaussian policies."""
        self._single("final_means()")
        return np.array([self._gaussian(p).mean.detach()[0].tolist() for p in self.policies])

    def final_stds(self) -> np.ndarray:
        """Stds ``[n, d]`` of Gaussian policies."""
        self._single("final_stds()")
        return np.array([self._gaussian(p).std().detach()[0].tolist() for p in self.policies])

    @staticmethod
    def _gaussian(policy: Policy) -> GaussianPolicy:
        if not (isinstance(policy, GaussianPolicy) and policy.state_independent):
            raise ValueError(
                "final means/stds are defined for state-independent Gaussian policies "
                f"(policy_hidden=()), got {type(policy).__name__}"
            )
        return policy

    def expected_reward(self, clip: bool = True) -> float:
        """``E[r]`` of the final joint policy from the env's analytic core (with clipping).

        Raises:
            ValueError: the env has no analytic expected reward, or several replicas.
        """
        self._single("expected_reward()")
        if self.game is None or not hasattr(self.game, "expected_reward"):
            raise ValueError("this env has no analytic expected reward (no 'game' core)")
        means, stds = self.final_means(), self.final_stds()
        if means.shape[1] != 1:
            raise ValueError("expected_reward needs one action dimension per agent")
        return float(self.game.expected_reward(means[:, 0], stds[:, 0], clip=clip))

    def column(self, name: str) -> np.ndarray:
        """One metric over iterations as an array."""
        self._single("column()")
        return np.array([row.get(name, math.nan) for row in self.metrics], dtype=float)


def _progress_bar(config: TrainConfig, start: int):
    show = config.progress
    if show is None:
        show = sys.stderr.isatty() and config.iterations - start >= 2000
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.iterations, initial=start, desc="train", unit="it")


def _resume_config(run_dir: Path, overrides: dict[str, Any]) -> TrainConfig:
    saved = TrainConfig.from_yaml(run_dir / "config.yaml")
    wanted = saved.replace(**overrides)  # refuses unknown keys; normalises values
    refused = sorted(
        k for k in overrides
        if k not in (*RESUMABLE_CHANGES, "run_dir") and getattr(wanted, k) != getattr(saved, k)
    )
    if refused:
        raise ValueError(
            f"cannot change {refused} when resuming {run_dir}; a resumed run may only "
            f"change {', '.join(RESUMABLE_CHANGES)}"
        )
    return saved.replace(**{k: v for k, v in overrides.items() if k in RESUMABLE_CHANGES},
                         run_dir=str(run_dir))


def train(
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    resume: str | Path | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train with the sequential trust-region loop.

    Args:
        config: a ``TrainConfig`` (or a dict of its fields); keyword ``overrides`` are applied
            on top. With neither, the defaults: HATRPO-style settings on ``DiffGame-v0``.
        resume: a run directory to continue from its checkpoint (its saved config is used;
            only ``iterations`` and logging options may change).
        **overrides: any ``TrainConfig`` field.

    Returns:
        A ``TrainResult``.

    Raises:
        ValueError / UnknownNameError: bad settings, before any training work.
        TrainingError: the run cannot continue (e.g. a NaN reward from the env); metrics and
            files written so far are kept.
    """
    if resume is not None:
        run_path = Path(resume)
        config = _resume_config(run_path, overrides)
    else:
        if isinstance(config, dict):
            config = TrainConfig.from_dict(config)
        config = config or TrainConfig()
        if overrides:
            config = config.replace(**overrides)
    parts = build_parts(config)
    loop = SequentialTrustRegion(parts)
    resolved = parts.config
    directory = RunDirectory(resolved.run_dir) if resolved.run_dir else None
    metrics: list[dict[str, Any]] = []
    if resume is not None:
        assert directory is not None
        state = directory.load_checkpoint()
        loop.load_state_dict(state)
        directory.metrics.truncate_after(loop.iteration)
        metrics = [row for row in read_metrics(directory.metrics.path)]
    if directory is not None:
        directory.write_config(resolved)  # also after a resume: it may change iterations
    board = TensorBoardWriter(directory.path / "tensorboard") if (
        directory is not None and resolved.tensorboard) else None
    bar = _progress_bar(resolved, loop.iteration)
    start = time.perf_counter()
    try:
        while loop.iteration < resolved.iterations:
            rows = loop.step()
            metrics.extend(rows)
            if directory is not None:
                for row in rows:
                    directory.metrics.write(row)
                interval = resolved.checkpoint_interval
                if interval and loop.iteration % interval == 0:
                    directory.save_checkpoint(loop.state_dict())
            if board is not None:
                board.write(rows[0])
            if bar is not None:
                bar.update(1)
            if resolved.log_interval and loop.iteration % resolved.log_interval == 0:
                print(_progress_line(rows[0]), flush=True)
        if directory is not None:
            directory.save_checkpoint(loop.state_dict())
    finally:
        wall = time.perf_counter() - start
        if directory is not None:
            directory.metrics.flush()
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
        parts.env.close()
    return TrainResult(
        config=resolved, policies=parts.policies, metrics=metrics,
        run_dir=directory.path if directory else None, game=parts.env.game, wall_time=wall,
        agents=list(parts.env.agents),
    )


def _progress_line(row: dict[str, Any]) -> str:
    means = [f"{v:.3f}" for k, v in row.items() if k.startswith("mean_0_")]
    text = f"iter {int(row['iteration']) + 1:>6}  reward {row['reward_mean']:.4f}"
    if means:
        text += "  means " + " ".join(means)
    return text
