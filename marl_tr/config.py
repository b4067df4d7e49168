"""Training configuration: one dataclass, validated before any work, saved as YAML.

Fields marked *preset* or *profile* default to ``None`` and are filled when the run is
built, in the order user > preset > profile > library default:

- a *preset* (``hatrpo``, ``wmatrpo-caatr``, ...) fills the algorithm's fields;
- a *profile* (``marl_tr.profiles``: ``one_step`` for the suite's one-shot games, whose
  values are the library defaults, ``multi_step`` for envs whose episodes last several
  steps, e.g. MPE) fills the fields that depend on the kind of env: batch layout, network
  sizes, critic training, value normalisation, evaluation. ``profile="auto"`` picks one
  from the env.

A resolved config (``setup.resolve_config``) has every field set and is what a run directory
stores; loading it back (``TrainConfig.from_yaml``) reproduces the run.
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


@dataclass(frozen=True)
class _FloatRange:
    """The smallest positive normal and the largest finite number of a float dtype (as
    ``torch.finfo`` gives them; kept here so that configs load without importing torch)."""

    tiny: float
    max: float


_FINFO = {"float32": _FloatRange(1.1754943508222875e-38, 3.4028234663852886e38),
          "float64": _FloatRange(2.2250738585072014e-308, 1.7976931348623157e308)}

__all__ = ["LAYERED_FIELDS", "LIBRARY_DEFAULTS", "PRESET_FIELDS", "PROFILE_FIELDS",
           "ConfigWarning", "TrainConfig"]


class ConfigWarning(UserWarning):
    """A setting that runs but probably does not fit the env (e.g. a state-independent
    policy on an env whose observations vary)."""


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class TrainConfig:
    """Everything a training run needs. Every field has a ``--flag`` in the CLI."""

    # -- what to train on -----------------------------------------------------------------
    env: str = _help(
        "Gymnasium id with a native vector env (DiffGame-v0, ClimbingGame-v0, ...), an MPE "
        "task's short name (simple_spread, simple_reference, simple_speaker_listener; needs "
        "the [mpe] extra) or a PettingZoo ParallelEnv factory 'package.module:factory' "
        "(from Python, marl_tr.train(env=factory) also takes the callable itself)",
        default="DiffGame-v0",
    )
    env_kwargs: dict[str, Any] = _help(  # noqa: RUF009 - field() with help metadata
        "keyword arguments of the env, e.g. {n: 7} (CLI: n=7,sigma=(1,3,1))",
        default_factory=dict,
    )
    vectorization: str = _help(
        "how PettingZoo env copies are stepped: 'sync' (in this process) or 'async' (in "
        "subprocesses, Gymnasium's AsyncVectorEnv; the same batches as sync). The suite's "
        "Gymnasium ids always step their copies in one batched numpy call", default="sync",
    )
    profile: str = _help(
        "defaults that fit the env, below the preset's: 'auto' (one_step for the suite's "
        "one-shot games and envs whose episodes end after one step, multi_step otherwise), "
        "'one_step' (the library defaults) or 'multi_step' (MLPs, Adam critic over "
        "minibatches, value normalisation, T steps per copy with GAE, evaluation)",
        default="auto",
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
    batch_size: int | None = _help(
        "profile. joint transitions per iteration and replica (T * num_envs); one_step 30, "
        "multi_step 4000", default=None)
    num_envs: int | None = _help(
        "profile. env copies stepped together (each steps T = batch_size / num_envs times "
        "per iteration); one_step: batch_size (one step each), multi_step 20",
        default=None,
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
    policy_hidden: tuple[int, ...] | None = _help(
        "profile. policy MLP hidden sizes; () is the state-independent policy of the "
        "paper's game (one_step), multi_step (64, 64)", default=None,
    )
    share_parameters: bool = _help(
        "one policy for all agents (they must have identical spaces), which sees an "
        "agent-id one-hot after its observation; updated once per iteration on every "
        "agent's samples", default=False,
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
    critic_hidden: tuple[int, ...] | None = _help(
        "profile. critic MLP hidden sizes; () is a linear V(s), a learned baseline "
        "(one_step), multi_step (64, 64)", default=None,
    )
    critic_epochs: int | None = _help(
        "profile. critic passes over the batch per iteration; one_step 1, multi_step 5",
        default=None)
    critic_minibatches: int | None = _help(
        "profile. minibatches per critic pass (one gradient step each, a fresh shuffle per "
        "pass); one_step 1 (the full batch), multi_step 4", default=None)
    value_norm: bool | None = _help(
        "profile. normalise the critic's targets by a running mean and std (HARL's "
        "ValueNorm); one_step false, multi_step true", default=None)
    gamma: float = _help("discount factor", default=0.99)
    gae_lambda: float = _help("GAE lambda", default=0.95)
    max_log_factor: float | None = _help(
        "clamp |log| of the eq. 15 teammate ratio product (None: no clamp)", default=20.0
    )
    signal_level: float | None = _help(
        "level of the test that an agent's surrogate gradient stands out of its own sampling "
        "noise (no step where it does not; solvers.base.gradient_signal), e.g. 0.01; None "
        "(default): no test, as the paper and HARL (with CAATR the test lets radii grow while "
        "agents wait, see docs/paper-notes.md)", default=None,
    )
    # -- evaluation -----------------------------------------------------------------------
    eval_interval: int | None = _help(
        "profile. every this many iterations, play eval_episodes episodes with the "
        "deterministic policy (0: never); one_step 0, multi_step 10", default=None)
    eval_episodes: int = _help("episodes per evaluation (per replica)", default=10)
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
        if not isinstance(values, dict):
            raise TypeError(f"a config must be a mapping of TrainConfig fields, got "
                            f"{type(values).__name__} {values!r:.60}")
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
            if out[key] is not None:
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
        if not isinstance(self.env, str):
            raise ValueError(
                f"env must be a string (a Gymnasium id, an MPE short name or "
                f"'package.module:factory'), got {self.env!r}; a factory callable is taken by "
                "marl_tr.train(env=factory)"
            )
        check_choice("vectorization", self.vectorization, ("sync", "async"))
        if not isinstance(self.profile, str) or not self.profile.strip():
            raise ValueError(f"profile must be 'auto' or a profile name, got {self.profile!r}")
        check_int("iterations", self.iterations, minimum=0)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, minimum=1)
        if self.num_envs is not None:
            check_int("num_envs", self.num_envs, minimum=1)
            if self.batch_size is not None and self.batch_size % self.num_envs:
                raise ValueError(
                    f"batch_size ({self.batch_size}) must be a multiple of num_envs "
                    f"({self.num_envs})"
                )
        check_int("seed", self.seed, minimum=0)
        check_int("replicas", self.replicas, minimum=1)
        if self.agent_order is not None:
            check_choice("agent_order", self.agent_order, ("random", "fixed", "simultaneous"))
        check_choice("dtype", self.dtype, ("float32", "float64"))
        # the policy's numbers must be representable in the training dtype (normal floats)
        finfo = _FINFO[self.dtype]
        if self.init_std is not None:
            check_in_range("init_std", self.init_std, finfo.tiny, 1e6)
        if self.init_mean is not None:
            check_in_range("init_mean", self.init_mean, -1e6, 1e6)
        check_in_range("min_std", self.min_std, finfo.tiny, 1e6)
        if self.critic_epochs is not None:
            check_int("critic_epochs", self.critic_epochs, minimum=0)
        if self.critic_minibatches is not None:
            check_int("critic_minibatches", self.critic_minibatches, minimum=1)
        for name in ("normalize_advantages", "value_norm", "share_parameters", "progress",
                     "tensorboard"):
            value = getattr(self, name)
            optional = name in ("normalize_advantages", "value_norm", "progress")
            if not isinstance(value, bool) and not (optional and value is None):
                allowed = "true, false or none" if optional else "true or false"
                raise ValueError(f"{name} must be {allowed}, got {value!r}")
        if self.eval_interval is not None:
            check_int("eval_interval", self.eval_interval, minimum=0)
        check_int("eval_episodes", self.eval_episodes, minimum=1)
        if self.critic_lr is not None:
            check_positive("critic_lr", self.critic_lr)
        if self.critic_optimizer is not None:
            check_choice("critic_optimizer", self.critic_optimizer, ("sgd", "adam"))
        check_in_range("gamma", self.gamma, 0.0, 1.0)
        check_in_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        if self.max_log_factor is not None:
            check_in_range("max_log_factor", self.max_log_factor, 0.0, float(finfo.max),
                           low_open=True)
        if self.signal_level is not None:
            check_in_range("signal_level", self.signal_level, 0.0, 1.0, low_open=True)
        check_int("log_interval", self.log_interval, minimum=0)
        check_int("checkpoint_interval", self.checkpoint_interval, minimum=0)
        check_non_negative("checkpoint_seconds", self.checkpoint_seconds)
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a mapping, got {self.env_kwargs!r}")
        for name in ("policy_hidden", "critic_hidden"):
            if getattr(self, name) is not None:
                _as_sizes(name, getattr(self, name))


#: Fields a preset fills (the algorithm).
PRESET_FIELDS = ("divergence", "radius", "solver", "normalize_advantages", "critic_lr",
                 "critic_optimizer", "critic", "agent_order")
#: Fields a profile fills (what depends on the kind of env); ``num_envs`` left unset by every
#: layer is ``batch_size`` (one step per copy).
PROFILE_FIELDS = ("batch_size", "num_envs", "policy_hidden", "critic_hidden", "critic_epochs",
                  "critic_minibatches", "value_norm", "eval_interval")
#: Every field resolved through the layers user > preset > profile > library default.
LAYERED_FIELDS = (*PRESET_FIELDS, *PROFILE_FIELDS)

#: Values of the layered fields when neither the user, the preset nor the profile sets them:
#: the paper's one-step game (the ``one_step`` profile adds nothing to them).
LIBRARY_DEFAULTS: dict[str, Any] = {
    "divergence": "kl",
    "radius": "fixed:delta=0.1",
    "solver": "natural_gradient",
    "normalize_advantages": True,
    "critic_lr": 0.2,
    "critic_optimizer": "sgd",
    "critic": "v",
    "agent_order": "random",
    "batch_size": 30,
    "policy_hidden": (),
    "critic_hidden": (),
    "critic_epochs": 1,
    "critic_minibatches": 1,
    "value_norm": False,
    "eval_interval": 0,
}


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
