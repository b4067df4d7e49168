"""Training configuration: one dataclass, validated before any work, saved as YAML.

Fields marked *preset* default to ``None``: the preset fills them (``hatrpo``,
``wmatrpo-caatr``, ...), and whatever the user sets explicitly wins over the preset. A
resolved config (``resolve``) has every field set and is what a run directory stores; loading
it back (``TrainConfig.from_yaml``) reproduces the run.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from marl_tr.registry import parse_kwargs
from marl_tr.validation import (
    check_choice,
    check_in_range,
    check_int,
    check_non_negative,
    check_positive,
)

__all__ = ["LIBRARY_DEFAULTS", "PRESET_FIELDS", "TrainConfig"]


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class TrainConfig:
    """Everything a training run needs. Every field has a ``--flag`` in the CLI."""

    # -- what to train on -----------------------------------------------------------------
    env: str = _help(
        "Gymnasium id with a native vector env (DiffGame-v0, ClimbingGame-v0, ...) or a "
        "PettingZoo ParallelEnv factory 'package.module:factory'",
        default="DiffGame-v0",
    )
    env_kwargs: dict[str, Any] = _help(  # noqa: RUF009 - field() with help metadata
        "keyword arguments of the env, e.g. {n: 7} (CLI: n=7,sigma=(1,3,1))",
        default_factory=dict,
    )
    # -- the algorithm (preset fields) ----------------------------------------------------
    preset: str | None = _help(
        "named algorithm (hatrpo, hatrpo-caatr, wmatrpo, wmatrpo-caatr, ...); it fills the "
        "fields below that are left unset", default=None,
    )
    divergence: str | None = _help("preset. trust-region divergence config string", default=None)
    radius: str | None = _help("preset. radius scheduler config string", default=None)
    solver: str | None = _help("preset. constrained-step solver config string", default=None)
    normalize_advantages: bool | None = _help(
        "preset. normalise advantages per batch (cancels a constant baseline in one-step "
        "games)", default=None,
    )
    critic_lr: float | None = _help("preset. critic learning rate", default=None)
    critic_optimizer: str | None = _help("preset. critic optimiser: sgd or adam", default=None)
    critic: str | None = _help(
        "preset. critic with action values beside V(s), config string: v (none), q (learned "
        "Q, eq. 19; e.g. q:hidden=(64,64),updates=8) or oracle_q (the env's analytic reward, "
        "an oracle)", default=None,
    )
    agent_order: str | None = _help(
        "preset. 'random' (a fresh permutation per iteration, HATRPO), 'fixed', or "
        "'simultaneous' (no eq. 15 teammate correction: every agent sees the plain "
        "advantage, as in MAPPO/IPPO)", default=None,
    )
    # -- budget and reproducibility ---------------------------------------------------------
    iterations: int = _help("training iterations", default=200)
    batch_size: int = _help("joint transitions per iteration (T * num_envs)", default=30)
    num_envs: int | None = _help(
        "env copies stepped together; default: batch_size (one step each, right for one-step "
        "games)", default=None,
    )
    seed: int = _help("seed of everything (env, sampling, agent order)", default=0)
    replicas: int = _help(
        "independent runs stepped together (vectorised); replica r is the run with seed "
        "seed + r", default=1,
    )
    # -- policies ---------------------------------------------------------------------------
    policy: str = _help(
        "policy class: auto (gaussian for Box, categorical for Discrete actions), gaussian, "
        "categorical or 'package.module:Class'", default="auto",
    )
    policy_hidden: tuple[int, ...] = _help(
        "policy MLP hidden sizes; () is the state-independent policy of the paper's game",
        default=(),
    )
    init_mean: float | None = _help(
        "initial Gaussian mean; default: the env's suggested start (the paper's 1.5 for "
        "DiffGame) or the centre of the action box", default=None,
    )
    init_std: float | None = _help(
        "initial Gaussian std; default: the env's suggested start (0.5) or 0.5", default=None
    )
    std_param: str = _help("std parameterisation: log_std or bounded", default="log_std")
    min_std: float = _help("std floor (keeps a collapsed policy finite)", default=1e-3)
    # -- critic and advantages --------------------------------------------------------------
    critic_hidden: tuple[int, ...] = _help(
        "critic MLP hidden sizes; () is a linear V(s) (a learned baseline)", default=()
    )
    critic_epochs: int = _help("critic gradient steps per iteration", default=1)
    gamma: float = _help("discount factor", default=0.99)
    gae_lambda: float = _help("GAE lambda", default=0.95)
    max_log_factor: float | None = _help(
        "clamp |log| of the eq. 15 teammate ratio product (None: no clamp)", default=20.0
    )
    # -- numerics, logging, output ------------------------------------------------------------
    dtype: str = _help("torch dtype: float32 or float64", default="float32")
    log_interval: int = _help("print a progress line every this many iterations (0: never)",
                              default=0)
    checkpoint_interval: int = _help(
        "with a run_dir, write a checkpoint every this many iterations (0: not by count); "
        "one is also written at the end, on a TrainingError and on Ctrl-C", default=1000
    )
    checkpoint_seconds: float = _help(
        "with a run_dir, also write a checkpoint once this many seconds have passed since "
        "the last one (0: not by time)", default=60.0
    )
    run_dir: str | None = _help(
        "directory for config.yaml, metrics.csv and checkpoint.pt (None: keep in memory)",
        default=None,
    )
    progress: bool | None = _help("show a progress bar (default: on a terminal, for long runs)",
                                  default=None)
    tensorboard: bool = _help("also write TensorBoard scalars (needs tensorboard)",
                              default=False)

    # -- construction helpers -----------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are refused with the accepted ones listed."""
        names = cls.field_names()
        unknown = sorted(set(values) - set(names))
        if unknown:
            hints = [
                f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, names, 1))
                else repr(k) for k in unknown
            ]
            raise ValueError(
                f"Unknown config key(s) {', '.join(hints)}. Accepted: {', '.join(names)}"
            )
        values = dict(values)
        for key in ("policy_hidden", "critic_hidden"):
            if key in values and values[key] is not None:
                values[key] = _as_sizes(key, values[key])
        if isinstance(values.get("env_kwargs"), str):
            values["env_kwargs"] = parse_kwargs(values["env_kwargs"])
        if isinstance(values.get("env_kwargs"), dict):  # YAML gives lists; configs use tuples
            values["env_kwargs"] = {k: _tuples(v) for k, v in values["env_kwargs"].items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("policy_hidden", "critic_hidden"):
            out[key] = list(out[key])
        return out

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(_plain(self.to_dict()), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(
                f"{path}: expected a mapping of config keys, got {type(data).__name__}"
            )
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        return self.from_dict({**dataclasses.asdict(self), **changes})

    # -- validation of plain fields (plug-ins are validated when built) -----------------------
    def validate(self) -> None:
        """Check every plain field; raise ``ValueError`` naming the bad value."""
        check_int("iterations", self.iterations, minimum=0)
        check_int("batch_size", self.batch_size, minimum=1)
        if self.num_envs is not None:
            check_int("num_envs", self.num_envs, minimum=1)
            if self.batch_size % self.num_envs:
                raise ValueError(
                    f"batch_size ({self.batch_size}) must be a multiple of num_envs "
                    f"({self.num_envs})"
                )
        check_int("seed", self.seed, minimum=0)
        check_int("replicas", self.replicas, minimum=1)
        if self.agent_order is not None:
            check_choice("agent_order", self.agent_order, ("random", "fixed", "simultaneous"))
        if self.init_std is not None:
            check_positive("init_std", self.init_std)
        if self.init_mean is not None:
            check_in_range("init_mean", self.init_mean, -1e6, 1e6)
        check_positive("min_std", self.min_std)
        check_int("critic_epochs", self.critic_epochs, minimum=0)
        if self.critic_lr is not None:
            check_positive("critic_lr", self.critic_lr)
        if self.critic_optimizer is not None:
            check_choice("critic_optimizer", self.critic_optimizer, ("sgd", "adam"))
        check_in_range("gamma", self.gamma, 0.0, 1.0)
        check_in_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        if self.max_log_factor is not None:
            check_positive("max_log_factor", self.max_log_factor)
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_int("log_interval", self.log_interval, minimum=0)
        check_int("checkpoint_interval", self.checkpoint_interval, minimum=0)
        check_non_negative("checkpoint_seconds", self.checkpoint_seconds)
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a mapping, got {self.env_kwargs!r}")
        _as_sizes("policy_hidden", self.policy_hidden)
        _as_sizes("critic_hidden", self.critic_hidden)


#: Values of the preset fields when neither the user nor a preset sets them.
LIBRARY_DEFAULTS: dict[str, Any] = {
    "divergence": "kl",
    "radius": "fixed:delta=0.1",
    "solver": "natural_gradient",
    "normalize_advantages": True,
    "critic_lr": 0.2,
    "critic_optimizer": "sgd",
    "critic": "v",
    "agent_order": "random",
}
PRESET_FIELDS = tuple(LIBRARY_DEFAULTS)


def _as_sizes(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, str):
        from marl_tr.registry import parse_value

        value = parse_value(value) if value.strip() else ()
        if isinstance(value, int):
            value = (value,)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a sequence of layer sizes, got {value!r}")
    return tuple(check_int(f"{name} layer size", v, minimum=1) for v in value)


def _tuples(value: Any) -> Any:
    """Lists to tuples, recursively (the inverse of ``_plain`` for sequences)."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """Convert tuples to lists recursively (safe YAML)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
