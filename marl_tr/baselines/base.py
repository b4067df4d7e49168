"""Baselines: reference learners outside the trust-region loop (registry ``BASELINES``).

A baseline trains one centralised controller on the joint view of a game
(``gymnasium.make(env)``: the joint action, the team reward) with the same env-step budget
as a preset, ``iterations x batch_size``, and reports the same way: ``train_baseline``
returns a ``BaselineResult``, which ``marl_tr.experiments.outcomes.measure`` turns into a
results row like a preset's (E[r] of the final joint policy from the game's closed form,
distance, final means and stds, the last batch's reward, wall time, seed).

    from marl_tr.baselines import train_baseline
    result = train_baseline("sb3:ppo", env_kwargs={"n": 3}, iterations=500, seed=0)
    result.final_means(), result.expected_reward()

A baseline is selected by a config string wherever a preset is accepted in sweeps
(``marl-tr sweep --presets hatrpo,sb3:ppo``, ``marl-tr reproduce variants --presets
"hatrpo;sb3:ppo"``); ``is_baseline`` tells the two apart. Built-ins (``marl_tr.baselines.sb3``):
``sb3:ppo`` and ``sb3:a2c`` (Stable-Baselines3), ``sb3:trpo`` (sb3-contrib), each needing the
``[baselines]`` extra, imported only when a baseline is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from marl_tr.registry import Plugin, Registry, UnknownNameError, split_spec
from marl_tr.validation import check_int, check_positive

__all__ = [
    "BASELINES",
    "BASELINE_FIELDS",
    "Baseline",
    "BaselineConfig",
    "BaselineResult",
    "CategoricalMarginal",
    "GaussianMarginal",
    "build_baseline",
    "is_baseline",
    "train_baseline",
]

#: The ``TrainConfig`` fields that set a baseline's run: env, budget, seed and start.
_BUDGET_FIELDS: tuple[str, ...] = ("env", "env_kwargs", "iterations", "batch_size", "num_envs",
                                   "seed", "init_mean", "init_std")
#: The ``TrainConfig`` fields a baseline takes (a sweep cell's settings); others are refused.
BASELINE_FIELDS: tuple[str, ...] = (*_BUDGET_FIELDS, "replicas", "progress")


@dataclass(frozen=True)
class BaselineConfig:
    """A baseline run's settings: the budget and the env, as in ``TrainConfig``.

    Attributes:
        baseline: the baseline's config string (every option resolved, ``Plugin.spec()``).
        env: a Gymnasium id (the joint view is ``gymnasium.make(env, **env_kwargs)``).
        env_kwargs: the env's keyword arguments.
        iterations: rollouts (updates); the budget is ``iterations * batch_size`` env steps.
        batch_size: joint transitions per rollout.
        num_envs: env copies stepped together (default: ``batch_size``, one step each).
        seed: the seed of the run.
        init_mean: the initial Gaussian mean (None: the env's suggestion, as for presets).
        init_std: the initial Gaussian std (None: the env's suggestion, else 0.5).
        progress: show a progress bar (None: on a terminal, for long runs).
        details: what the learner resolved (library version, its hyperparameters), recorded
            in ``to_dict()`` (a results row's ``resolved_config``).
    """

    baseline: str
    env: str = "DiffGame-v0"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    iterations: int = 200
    batch_size: int = 30
    num_envs: int | None = None
    seed: int = 0
    init_mean: float | None = None
    init_std: float | None = None
    progress: bool | None = None
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check_int("iterations", self.iterations, minimum=0)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("seed", self.seed, minimum=0)
        if self.num_envs is not None:
            check_int("num_envs", self.num_envs, minimum=1)
            if self.batch_size % self.num_envs:
                raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of "
                                 f"num_envs ({self.num_envs})")
        if self.init_std is not None:
            check_positive("init_std", self.init_std)
        if not isinstance(self.env, str) or not self.env.strip():
            raise ValueError(f"env must be a Gymnasium id, got {self.env!r}")
        if not isinstance(self.env_kwargs, Mapping):
            raise ValueError(f"env_kwargs must be a mapping, got {self.env_kwargs!r}")

    @property
    def preset(self) -> str:
        """The baseline's config string (what a results row's ``preset`` column holds)."""
        return self.baseline

    @property
    def replicas(self) -> int:
        """Always 1: a baseline run is one seed."""
        return 1

    @property
    def copies(self) -> int:
        """Env copies stepped together (``num_envs``, else ``batch_size``)."""
        return self.num_envs if self.num_envs is not None else self.batch_size

    @property
    def env_steps(self) -> int:
        """The budget: ``iterations * batch_size`` joint transitions."""
        return self.iterations * self.batch_size

    def replace(self, **changes: Any) -> BaselineConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every setting as plain data (``details`` flattened in)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "details"}
        out["env_kwargs"] = dict(self.env_kwargs)
        return {**out, "runner": "baseline", **self.details}


@dataclass(frozen=True)
class GaussianMarginal:
    """One agent's marginal of a final joint Gaussian policy (at the episode's first
    observation).

    Attributes:
        mean: ``[d]`` mean action.
        std: ``[d]`` standard deviation.
    """

    mean: np.ndarray
    std: np.ndarray
    action_kind: ClassVar[str] = "continuous"
    state_independent: ClassVar[bool] = True


@dataclass(frozen=True)
class CategoricalMarginal:
    """One agent's marginal of a final joint policy over discrete actions.

    Attributes:
        probs: ``[K]`` action probabilities.
    """

    probs: np.ndarray
    action_kind: ClassVar[str] = "discrete"
    state_independent: ClassVar[bool] = True

    @property
    def logits(self) -> Any:
        """``[1, K]`` log-probabilities as a torch tensor (softmax gives ``probs`` back)."""
        import torch

        with np.errstate(divide="ignore"):
            return torch.from_numpy(np.log(self.probs))[None]


@dataclass
class BaselineResult:
    """What a baseline run produced; the per-run accessors of ``marl_tr.TrainResult``.

    Attributes:
        config: the run's ``BaselineConfig``.
        policies: the final joint policy's per-agent marginals (``GaussianMarginal`` or
            ``CategoricalMarginal``), at the episode's first observation.
        metrics: one dict per iteration, with the loop's names: ``iteration``, ``replica``
            (0), ``seed``, ``env_steps``, ``reward_mean`` (the rollout's mean team reward),
            ``episode_return_mean`` (episodes ended in the rollout: team reward summed over
            steps), ``episode_return_team`` (also summed over agents), ``episode_length_mean``,
            ``episodes``, and for Gaussian policies ``mean_0_i`` and ``std_0_i`` per agent
            ``i`` (the policy that collected the rollout).
        game: the env's analytic core, if it has one.
        wall_time: seconds in the learner's training loop.
        agents: the agents' names.
        model: the trained learner (e.g. the Stable-Baselines3 model), not picklable in
            general.
    """

    config: BaselineConfig
    policies: list[GaussianMarginal | CategoricalMarginal]
    metrics: list[dict[str, Any]]
    game: Any = None
    wall_time: float = 0.0
    agents: list[str] = field(default_factory=list)
    model: Any = field(default=None, repr=False)
    run_dir: Path | None = None

    @property
    def replicas(self) -> int:
        return 1

    def split(self) -> list[BaselineResult]:
        """``[self]``: a baseline run holds one seed."""
        return [self]

    def _gaussian(self) -> list[GaussianMarginal]:
        if not all(isinstance(p, GaussianMarginal) for p in self.policies):
            raise ValueError("final means/stds are defined for Gaussian policies; this "
                             "baseline's policy is over discrete actions (see .policies)")
        return self.policies  # type: ignore[return-value]

    def final_means(self) -> np.ndarray:
        """Mean actions ``[n, d]`` of the final joint Gaussian, per agent."""
        return np.array([p.mean for p in self._gaussian()], dtype=float)

    def final_stds(self) -> np.ndarray:
        """Stds ``[n, d]`` of the final joint Gaussian, per agent."""
        return np.array([p.std for p in self._gaussian()], dtype=float)

    def expected_reward(self, clip: bool = True) -> float:
        """``E[r]`` of the final joint policy from the env's analytic core: the differential
        game's closed form for a Gaussian (actions clipped to the box with ``clip``, as the
        learner's actions are), a matrix game's payoff table for discrete actions.

        Raises:
            ValueError: the env has no analytic expected reward.
        """
        if self.game is None or not hasattr(self.game, "expected_reward"):
            raise ValueError("this env has no analytic expected reward (no 'game' core)")
        if all(isinstance(p, CategoricalMarginal) for p in self.policies):
            if not hasattr(self.game, "optimal_joint_actions"):
                raise ValueError("this env has no expected reward for discrete policies")
            return float(self.game.expected_reward([p.probs for p in self.policies]))
        means, stds = self.final_means(), self.final_stds()
        if means.shape[1] != 1:
            raise ValueError("expected_reward needs one action dimension per agent")
        return float(self.game.expected_reward(means[:, 0], stds[:, 0], clip=clip))

    def column(self, name: str) -> np.ndarray:
        """One metric over iterations as an array."""
        return np.array([row.get(name, math.nan) for row in self.metrics], dtype=float)


class Baseline(Plugin, ABC):
    """A learner outside the trust-region loop, trained on the joint view of a game.

    Subclasses keep every constructor argument (their options) as an attribute of the same
    name, as every plug-in does, and implement ``check`` (cheap: everything but the
    learning) and ``train``.
    """

    #: One line for ``marl-tr list``.
    summary: ClassVar[str] = ""

    @abstractmethod
    def check(self, config: BaselineConfig) -> None:
        """Refuse, with a ``ValueError`` naming the fix, what this baseline cannot run
        (a missing optional package, an env or action space it does not handle), before any
        work."""

    @abstractmethod
    def train(self, config: BaselineConfig) -> BaselineResult:
        """Train with ``config``'s budget and seed; return the final policy's marginals."""


BASELINES: Registry[Baseline] = Registry("baseline", Baseline)


def _target(spec: str) -> str:
    try:
        return split_spec(spec)[0].strip().lower()
    except ValueError:
        return spec.strip().lower()


def is_baseline(spec: Any) -> bool:
    """Whether a sweep's preset string names a baseline rather than a preset: a ``Baseline``,
    a registered baseline name (``"sb3:ppo"``, ``"sb3:ppo:n_epochs=5"``), any
    ``"sb3..."`` name (unknown ones are then refused by ``BASELINES`` with the available
    names), or ``"pkg.mod:Class"`` naming a ``Baseline`` subclass."""
    if isinstance(spec, Baseline):
        return True
    if not isinstance(spec, str) or not spec.strip():
        return False
    target = _target(spec)
    if target in BASELINES or target.partition(":")[0] == "sb3":
        return True
    _, sep, attr = target.partition(":")
    if not sep or not attr.isidentifier():
        return False
    try:
        cls = BASELINES.get(split_spec(spec)[0])
    except (UnknownNameError, TypeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, Baseline)


def _config(fields: Mapping[str, Any]) -> tuple[str | Baseline, dict[str, Any]]:
    """Split ``train_baseline``'s keywords into the baseline, and the config's fields."""
    from marl_tr.config import TrainConfig

    values = dict(fields)
    names = set(TrainConfig.field_names())
    unknown = sorted(set(values) - names - {"baseline"})
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for a baseline; it takes "
                         f"{', '.join(BASELINE_FIELDS)}")
    refused = sorted(k for k in set(values) & names
                     if k not in BASELINE_FIELDS and k != "preset")
    if refused:
        raise ValueError(
            f"a baseline does not take the TrainConfig field(s) {refused}: they set the "
            f"trust-region loop; a baseline takes {', '.join(_BUDGET_FIELDS)}, and its own "
            "options in its config string (e.g. 'sb3:ppo:learning_rate=0.001'; marl-tr list "
            "baselines)")
    replicas = values.pop("replicas", 1)
    if replicas != 1:
        raise ValueError(f"replicas must be 1 for a baseline (one seed per run), got "
                         f"{replicas!r}; run the seeds one by one")
    baseline = values.pop("baseline", None)
    preset = values.pop("preset", None)
    if baseline is not None and preset is not None and baseline != preset:
        raise ValueError(f"give the baseline once, got baseline={baseline!r} and "
                         f"preset={preset!r}")
    chosen = baseline if baseline is not None else preset
    if chosen is None:
        raise ValueError("no baseline given: e.g. train_baseline('sb3:ppo', ...)")
    return chosen, values


def _build(spec: str | Baseline) -> Baseline:
    if isinstance(spec, str):
        if not is_baseline(spec):
            raise ValueError(f"{spec!r} is not a baseline; baselines: "
                             f"{', '.join(BASELINES.names())} (or 'package.module:Class')")
        target = _target(spec)
        if target.partition(":")[0] == "sb3" and target not in BASELINES:
            close = difflib.get_close_matches(target, BASELINES.names(), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"Unknown baseline {spec.strip()!r}.{hint} Available: "
                                   f"{', '.join(BASELINES.names())}")
    return BASELINES.build(spec)


def build_baseline(**fields: Any) -> tuple[Baseline, BaselineConfig]:
    """The baseline and its checked config from ``train_baseline``'s keywords, with every
    check of ``Baseline.check`` done: nothing is trained.

    Raises:
        ValueError: an unknown baseline or option, a field a baseline does not take, a bad
            value, a missing optional package (with the ``pip install`` line).
    """
    chosen, values = _config(fields)
    baseline = _build(chosen)
    config = BaselineConfig(baseline=baseline.spec(), **values)
    baseline.check(config)
    return baseline, config


def train_baseline(baseline: str | Baseline | None = None, /, **fields: Any) -> BaselineResult:
    """Train a baseline with a preset's budget and report like a preset.

    Args:
        baseline: a config string (``"sb3:ppo"``, ``"sb3:trpo:target_kl=0.02"``) or a
            ``Baseline``; ``preset=`` is accepted instead (a sweep cell's settings).
        **fields: the ``TrainConfig`` fields a baseline takes (``BASELINE_FIELDS``): env,
            env_kwargs, iterations, batch_size, num_envs, seed, init_mean, init_std,
            progress; ``replicas`` must be 1.

    Returns:
        A ``BaselineResult``.

    Raises:
        ValueError: as ``build_baseline``, before any work.
    """
    if baseline is not None:
        fields = {**fields, "baseline": baseline}
    plugin, config = build_baseline(**fields)
    return plugin.train(config)
