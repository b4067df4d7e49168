"""``marl_tr.train``: run the sequential trust-region loop from Python.

    import marl_tr
    result = marl_tr.train(preset="wmatrpo-caatr", env_kwargs={"n": 3}, iterations=500, seed=0)
    result.final_means()          # [n, d] mean actions of state-independent Gaussian policies
    result.expected_reward()      # E[r] of the final joint policy (envs with an analytic core)
    result.metrics[-1]            # the last iteration's metrics

    marl_tr.train(preset="hatrpo", iterations=4000, run_dir="runs/a")   # checkpointed
    marl_tr.train(resume="runs/a", iterations=8000)                       # continues exactly
    marl_tr.train(env="simple_spread", env_kwargs={"continuous_actions": True})  # MPE
    marl_tr.train(env=my_parallel_env_factory, preset="ippo")            # any callable

Every argument is checked before any file is written: ``TypeError`` for a wrong type
(``train("hatrpo")``, ``run_dir=123``), ``ValueError`` naming the bad value. A resume is
validated against the checkpoint's fingerprint, the env's spaces and ``metrics.csv``
(``marl_tr.training.run_dir``); ``convert_checkpoint`` converts a trusted checkpoint written
before checkpoint format 1.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import shutil
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marl_tr.config import TrainConfig
from marl_tr.policies import GaussianPolicy, Policy
from marl_tr.training.env_adapters import env_label
from marl_tr.training.loop import SeededRestartWarning, SequentialTrustRegion, TrainingError
from marl_tr.training.run_dir import (
    LEGACY_BACKUP_FILE,
    RESUMABLE_CHANGES,
    CheckpointError,
    RunDirectory,
    TensorBoardWriter,
    check_config_fingerprint,
    check_spaces_fingerprint,
    load_legacy_checkpoint,
    metrics_position_at,
    read_config,
    read_metrics,
    run_fingerprint,
)
from marl_tr.training.setup import RunParts, build_parts

__all__ = ["PROGRESS_DELAY", "RESUMABLE_CHANGES", "CheckpointError", "TrainResult",
           "TrainingError", "convert_checkpoint", "return_summary", "train",
           "unimported_modules"]


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
        timed_iterations: the iterations ``wall_time`` covers (after a resume: those of the
            resumed session alone).
    """

    config: TrainConfig
    policies: list[Policy]
    metrics: list[dict[str, Any]]
    run_dir: Path | None = None
    game: Any = None
    wall_time: float = 0.0
    agents: list[str] = field(default_factory=list)
    timed_iterations: int = 0

    @property
    def replicas(self) -> int:
        return self.config.replicas

    @property
    def multi_step(self) -> bool:
        """Whether the run's episodes last several steps (its profile is not ``one_step``):
        then its outcome is an episode return, not a reward of one play."""
        return self.config.profile not in ("one_step", "auto")

    def final_return(self, window: int = 10, metric: str = "episode_return_mean") -> float:
        """The mean of ``metric`` over the last ``window`` iterations that have it (NaN
        where none has): the run's final episode return (per agent, with a mean team
        reward; ``metric="episode_return_team"`` for the team's sum, ``"eval_return_mean"``
        for the evaluation episodes)."""
        self._single("final_return()")
        values = self.column(metric)
        values = values[np.isfinite(values)][-window:]
        return float(values.mean()) if len(values) else math.nan

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
                agents=self.agents, timed_iterations=self.timed_iterations,
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

    def final_probs(self) -> list[np.ndarray]:
        """Action probabilities ``[K_i]`` per agent of state-independent categorical
        policies (float64)."""
        self._single("final_probs()")
        probs = categorical_probs(self.policies)
        if probs is None:
            raise ValueError("final probabilities are defined for state-independent "
                             "categorical policies (policy_hidden=())")
        return probs

    def expected_reward(self, clip: bool = True) -> float:
        """``E[r]`` of the final joint policy from the env's analytic core: the differential
        game's for Gaussian policies (actions clipped to the box with ``clip``), a matrix
        game's exact one for categorical policies (``clip`` does not apply).

        Raises:
            ValueError: the env has no analytic expected reward, or several replicas.
        """
        self._single("expected_reward()")
        if not isinstance(clip, bool):
            raise ValueError(f"clip must be true or false, got {clip!r}")
        if self.game is None or not hasattr(self.game, "expected_reward"):
            raise ValueError("this env has no analytic expected reward (no 'game' core)")
        if self.policies and getattr(self.policies[0], "action_kind", "") == "discrete":
            return float(self.game.expected_reward(self.final_probs()))
        means, stds = self.final_means(), self.final_stds()
        if means.shape[1] != 1:
            raise ValueError("expected_reward needs one action dimension per agent")
        return float(self.game.expected_reward(means[:, 0], stds[:, 0], clip=clip))

    def column(self, name: str) -> np.ndarray:
        """One metric over iterations as an array (NaN in the rows that lack it).

        Raises:
            ValueError: no row has ``name`` (with the closest names).
        """
        self._single("column()")
        if not any(name in row for row in self.metrics) and self.metrics:
            names = sorted({key for row in self.metrics for key in row})
            close = difflib.get_close_matches(str(name), names, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"no metric {name!r} in this run ({len(names)} metrics, "
                             f"result.metrics[0] lists them){hint}")
        return np.array([row.get(name, math.nan) for row in self.metrics], dtype=float)


def categorical_probs(policies: list[Any]) -> list[np.ndarray] | None:
    """The first replica's action probabilities ``[K_i]`` (float64) of state-independent
    categorical policies, one per agent; ``None`` for any other policies."""
    if not all(getattr(p, "action_kind", "") == "discrete"
               and getattr(p, "state_independent", False) for p in policies):
        return None
    import torch

    with torch.no_grad():
        return [torch.softmax(p.logits.detach()[0].double(), -1).numpy() for p in policies]


#: With ``progress=None``, a run on a terminal shows its progress bar once it has taken this
#: many seconds (a shorter run shows none).
PROGRESS_DELAY = 2.0


def _progress_bar(config: TrainConfig, start: int):
    """The run's progress bar (on stderr): ``progress=True`` shows it at once, ``None`` (the
    default) on a terminal once the run has taken ``PROGRESS_DELAY`` seconds, ``False``
    never."""
    show = config.progress
    if show is None:
        show = sys.stderr.isatty()
    if not show or config.iterations <= start:
        return None
    from tqdm.auto import tqdm

    delay = PROGRESS_DELAY if config.progress is None else 0.0
    return tqdm(total=config.iterations, initial=start, desc="train", unit="it", delay=delay)


# ---------------------------------------------------------------------------------------
# assembling a run: new or resumed, every check before any file is written
# ---------------------------------------------------------------------------------------
@dataclass
class _Session:
    parts: RunParts
    loop: SequentialTrustRegion
    directory: RunDirectory | None
    metrics: list[dict[str, Any]]


def _env_factory(config: TrainConfig | None,
                 overrides: dict[str, Any]) -> tuple[Any, dict[str, Any], Any]:
    """Take an env factory callable out of ``overrides`` or ``config``: returns the config
    and overrides with its ``env_label`` instead, and the callable (``None`` if none)."""
    factory = None
    if callable(overrides.get("env")):
        factory = overrides["env"]
        overrides = {**overrides, "env": env_label(factory)}
    elif isinstance(config, TrainConfig) and callable(config.env):
        factory = config.env
        config = dataclasses.replace(config, env=env_label(factory))
    elif isinstance(config, dict) and callable(config.get("env")):
        factory = config["env"]
        config = {**config, "env": env_label(factory)}
    return config, overrides, factory


def _new_session(config: Any, overrides: dict[str, Any]) -> _Session:
    config, overrides, factory = _env_factory(config, overrides)
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    elif config is None:
        config = TrainConfig()
    elif not isinstance(config, TrainConfig):
        hint = f"; to pick a preset write train(preset={config!r})" if isinstance(config, str) \
            else ""
        raise TypeError(
            f"config must be a TrainConfig, a dict of its fields or None, got {config!r} "
            f"({type(config).__name__}){hint}"
        )
    if overrides:
        config = config.replace(**overrides)
    if config.run_dir is not None:
        path = RunDirectory.check_new(config.run_dir)
        if not isinstance(config.run_dir, str):
            config = config.replace(run_dir=str(path))
    parts = build_parts(config, env_factory=factory)
    directory = None
    try:
        loop = SequentialTrustRegion(parts)
        if parts.config.run_dir:
            directory = RunDirectory(parts.config.run_dir)
            directory.lock()
            RunDirectory.check_new(directory.path)  # again, now that no other run can start
    except BaseException:
        if directory is not None:
            directory.unlock()
        parts.close()
        raise
    return _Session(parts, loop, directory, [])


def _resume_config(saved: TrainConfig, run_dir: Path, overrides: dict[str, Any]) -> TrainConfig:
    elsewhere = overrides.get("run_dir")
    if elsewhere is not None and Path(elsewhere).resolve() != run_dir.resolve():
        raise ValueError(
            f"run_dir={str(elsewhere)!r} differs from the run being resumed ({str(run_dir)!r}): "
            "a resumed run continues in its own directory; leave run_dir out (copy the "
            "directory first to continue a copy)")
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


#: ``module:Name`` inside a config string (not ``name:key=value`` arguments).
_MODULE_REF = re.compile(
    r"(?<![\w.\-])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*:\s*[A-Za-z_]\w*(?![\w=])")
_OWN_PACKAGES = ("marl_tr", "marl_tr_envs")


def unimported_modules(config: TrainConfig) -> list[tuple[str, str]]:
    """``(field, module)`` for every module a config's plug-in strings would import that is
    not imported yet (the library's own packages and registered names excepted).

    A ``"pkg.mod:Class"`` string imports ``pkg.mod`` when the run is built, so a config from
    an untrusted source can name any importable module; a resumed config may only name
    modules that are already imported.
    """
    from marl_tr.critics import CRITICS
    from marl_tr.divergences import DIVERGENCES
    from marl_tr.policies import POLICIES
    from marl_tr.presets import PRESETS
    from marl_tr.radius import RADIUS_SCHEDULERS
    from marl_tr.solvers import SOLVERS

    registries = (DIVERGENCES, RADIUS_SCHEDULERS, SOLVERS, PRESETS, POLICIES, CRITICS)
    found = []
    for name in TrainConfig.field_names():
        value = getattr(config, name)
        if name == "run_dir" or not isinstance(value, str):
            continue
        for module in _MODULE_REF.findall(value):
            if module in sys.modules or module.split(".")[0] in _OWN_PACKAGES:
                continue
            if name != "env" and any(module in registry for registry in registries):
                continue
            found.append((name, module))
    return found


def _refuse_unimported_modules(config: TrainConfig, where: str) -> None:
    missing = unimported_modules(config)
    if missing:
        field, module = missing[0]
        raise ValueError(
            f"the config in {where!r} names module {module!r} ({field}="
            f"{getattr(config, field)!r}), which is not imported; plug-in strings import "
            "modules, so a run directory from elsewhere could run code through them: if you "
            f"trust it, import the module first (marl-tr train --import {module} --resume "
            f"{where}, or `import {module}` in Python)"
        )


def _saved_config(directory: RunDirectory) -> TrainConfig:
    """A run directory's ``config.yaml``. One written before profiles existed (no
    ``profile`` key) resolves as it did then: with the library defaults (``one_step``) for
    every field it does not name."""
    config = read_config(directory.config_path, "config.yaml")
    try:
        text = directory.config_path.read_text()
    except OSError:  # pragma: no cover - read a moment ago
        return config
    if not any(line.startswith("profile:") for line in text.splitlines()):
        config = config.replace(profile="one_step")
    return config


def _resume_session(resume: Any, overrides: dict[str, Any]) -> _Session:
    directory = RunDirectory.existing(resume, "resume")
    directory.lock()  # before reading anything: no other run may write meanwhile
    try:
        return _resume_locked(directory, overrides)
    except BaseException:
        directory.unlock()
        raise


def _resume_locked(directory: RunDirectory, overrides: dict[str, Any]) -> _Session:
    where = str(directory.path)
    saved = _saved_config(directory)
    factory = overrides.pop("env", None)
    # the run's env factory callable may be given again
    if factory is not None and (not callable(factory) or env_label(factory) != saved.env):
        raise ValueError(
            f"resume: env={factory!r} is not the env of the run in {where!r} "
            f"({saved.env!r}); a resumed run keeps its env (pass its factory callable "
            "again only when config.yaml names it as '<callable ...>')")
    config = _resume_config(saved, directory.path, overrides)
    checkpoint = directory.load_checkpoint()
    check_config_fingerprint(checkpoint.fingerprint, config, where)
    if config.iterations < checkpoint.iteration:
        raise ValueError(
            f"iterations={config.iterations} is fewer than the {checkpoint.iteration} already "
            f"done in {where!r}; a resumed run can only continue: give iterations >= "
            f"{checkpoint.iteration}"
        )
    _refuse_unimported_modules(config, where)
    repair = directory.check_metrics(checkpoint)
    parts = build_parts(config, env_factory=factory)
    try:
        check_spaces_fingerprint(checkpoint.fingerprint, parts.env, where)
        loop = SequentialTrustRegion(parts)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SeededRestartWarning)
                loop.load_state_dict(checkpoint.state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"the checkpoint in {where!r} does not fit this run ({_first_line(exc)}); "
                "refusing to resume"
            ) from None
        if loop.iteration != checkpoint.iteration:
            raise CheckpointError(
                f"the checkpoint in {where!r} says iteration {checkpoint.iteration}, its loop "
                f"state {loop.iteration}; refusing to resume")
    except BaseException:
        parts.close()
        raise
    for warning in caught:  # shown, and kept in the run directory's log
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
        if issubclass(warning.category, SeededRestartWarning):
            directory.log(f"resumed at iteration {loop.iteration}: {warning.message}")
    if loop.resumed_exactly:
        directory.log(f"resumed at iteration {loop.iteration}: exactly (the env state was "
                      "saved)")
    directory.repair_metrics(repair, checkpoint.iteration)
    metrics = read_metrics(directory.metrics_path) if directory.metrics_path.exists() else []
    return _Session(parts, loop, directory, metrics)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


# ---------------------------------------------------------------------------------------
# running, with checkpoints
# ---------------------------------------------------------------------------------------
class _DeferredInterrupt:
    """Ctrl-C (SIGINT) sets ``requested`` instead of interrupting: the run stops after the
    iteration under way, with a checkpoint. A second Ctrl-C interrupts at once. Only in the
    main thread, and only while SIGINT has Python's default handler."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _DeferredInterrupt:
        if (self.enabled and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("interrupted: stopping after this iteration with a checkpoint (Ctrl-C again to "
              "stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _run(session: _Session) -> TrainResult:
    parts, loop, directory, metrics = (session.parts, session.loop, session.directory,
                                       session.metrics)
    resolved = parts.config
    fingerprint = run_fingerprint(resolved, parts.env) if directory is not None else None
    interval, seconds = resolved.checkpoint_interval, resolved.checkpoint_seconds
    board = bar = None
    start, first_iteration = time.perf_counter(), loop.iteration
    try:
        if directory is not None:
            # also after a resume: it may change iterations
            directory.write_config(resolved, sources=parts.sources)
            if resolved.tensorboard:
                board = TensorBoardWriter(directory.path / "tensorboard")
        bar = _progress_bar(resolved, loop.iteration)
        last_save = time.monotonic()
        with _DeferredInterrupt(directory is not None) as interrupt:
            while loop.iteration < resolved.iterations:
                rows = loop.step()
                metrics.extend(rows)
                if board is not None:
                    board.write(rows[0])
                if bar is not None:
                    bar.update(1)
                if resolved.log_interval and loop.iteration % resolved.log_interval == 0:
                    print(_progress_line(rows[0], multi_step=resolved.profile != "one_step"),
                          flush=True)
                stop = interrupt.requested  # read once: a later Ctrl-C counts next iteration
                if directory is not None:
                    for row in rows:
                        directory.metrics.write(row)
                    if stop or (loop.iteration < resolved.iterations and (
                            (interval and loop.iteration % interval == 0)
                            or (seconds and time.monotonic() - last_save >= seconds))):
                        directory.save_checkpoint(loop.state_dict(), iteration=loop.iteration,
                                                  fingerprint=fingerprint)
                        last_save = time.monotonic()
                if stop:
                    raise KeyboardInterrupt(
                        f"stopped after iteration {loop.iteration - 1}; the checkpoint in "
                        f"{str(directory.path)!r} holds it: resume with marl-tr train --resume "
                        f"{directory.path}")
        if directory is not None:
            directory.save_checkpoint(loop.state_dict(), iteration=loop.iteration,
                                      fingerprint=fingerprint)
    except TrainingError as exc:
        if directory is not None:
            _checkpoint_last_good(exc, resolved, directory, fingerprint, loop.iteration,
                                  parts.env_factory)
        raise
    finally:
        wall = time.perf_counter() - start
        if directory is not None:
            directory.metrics.flush()
            directory.unlock()
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
        parts.close()
    return TrainResult(
        config=resolved, policies=parts.policies, metrics=metrics,
        run_dir=directory.path if directory else None, game=parts.env.game, wall_time=wall,
        agents=list(parts.env.agents), timed_iterations=loop.iteration - first_iteration,
    )


def _checkpoint_last_good(exc: TrainingError, config: TrainConfig, directory: RunDirectory,
                          fingerprint: dict[str, Any] | None, target: int,
                          factory: Any = None) -> None:
    """After a ``TrainingError`` in iteration ``target``: checkpoint the state after
    iteration ``target - 1`` and say so in a note on ``exc``.

    The failed iteration has already changed the loop (random streams, env), so the last good
    state is rebuilt: a fresh loop replays the iterations since the last checkpoint, and is
    saved only if it reproduces the rows already written, byte for byte.
    """
    saved_at = directory.checkpoint_iteration
    if saved_at != target:
        try:
            if _replay_and_save(config, directory, fingerprint, target, factory):
                saved_at = target
        except Exception:  # the checkpoint already there stays; the note says which
            saved_at = directory.checkpoint_iteration
    where = str(directory.path)
    if saved_at is None:
        exc.add_note(f"no checkpoint could be written in {where!r}")
    else:
        good = " (the last good one)" if saved_at == target else ""
        exc.add_note(f"the checkpoint in {where!r} holds iteration {saved_at}{good}: once the "
                     f"cause is fixed, resume with marl-tr train --resume {where}")


def _replay_and_save(config: TrainConfig, directory: RunDirectory,
                     fingerprint: dict[str, Any] | None, target: int,
                     factory: Any = None) -> bool:
    directory.metrics.flush()
    path = directory.metrics_path
    written = path.read_bytes() if path.exists() else b""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already shown by the run itself
        parts = build_parts(config, env_factory=factory)
        try:
            loop = SequentialTrustRegion(parts)
            if directory.checkpoint_iteration is not None:
                checkpoint = directory.load_checkpoint()
                loop.load_state_dict(checkpoint.state)
                offset = checkpoint.metrics.bytes
            else:
                offset = len(directory.metrics.header())
            rows: list[dict[str, Any]] = []
            while loop.iteration < target:
                rows.extend(loop.step())
            if directory.metrics.encode(rows) != written[offset:]:
                return False
            directory.save_checkpoint(loop.state_dict(), iteration=target,
                                      fingerprint=fingerprint)
        finally:
            parts.close()
    return True


def train(
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    resume: str | Path | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train with the sequential trust-region loop.

    With a ``run_dir``, the run writes ``config.yaml``, ``metrics.csv`` and ``checkpoint.pt``
    there: a checkpoint every ``checkpoint_interval`` iterations and every
    ``checkpoint_seconds``, at the end, after the last good iteration on a ``TrainingError``
    and, on Ctrl-C, after the iteration under way.

    Args:
        config: a ``TrainConfig`` (or a dict of its fields); keyword ``overrides`` are applied
            on top. With neither, the defaults: HATRPO-style settings on ``DiffGame-v0``.
        resume: a run directory to continue from its checkpoint (its saved config is used;
            only ``iterations`` and logging/checkpoint options may change). The checkpoint
            must match ``config.yaml``, the env's spaces and ``metrics.csv``; rows past the
            checkpoint are dropped.
        **overrides: any ``TrainConfig`` field. ``env`` may also be a PettingZoo
            ``ParallelEnv`` factory callable (called with ``env_kwargs``); the config records
            its ``"module:name"``, or ``"<callable ...>"`` for one that cannot be imported
            by name (a lambda, a closure), which a resume then needs again:
            ``train(resume=DIR, env=factory)``.

    Returns:
        A ``TrainResult``.

    Raises:
        TypeError: ``config``, ``run_dir`` or ``resume`` of the wrong type.
        ValueError / UnknownNameError: bad settings or output paths, before any training work.
        CheckpointError (a ``ValueError``): a checkpoint or run directory that cannot be
            resumed: unsafe, legacy, damaged, or not matching the config, env or metrics.
        FileNotFoundError: no run directory or checkpoint to resume.
        TrainingError: the run cannot continue (e.g. a NaN reward from the env); metrics and
            files written so far are kept, and a note says which iteration is checkpointed.
        KeyboardInterrupt: Ctrl-C, after checkpointing the iteration under way.
    """
    if resume is not None:
        if config is not None:
            raise TypeError(
                "train(config, resume=...): a resumed run continues its saved config; pass "
                f"only the changes a resume allows as keywords ({', '.join(RESUMABLE_CHANGES)})"
            )
        session = _resume_session(resume, overrides)
    else:
        session = _new_session(config, overrides)
    return _run(session)


def convert_checkpoint(run_dir: str | Path, *, trust: bool = False) -> Path:
    """Convert a checkpoint written before format 1 into the current, safe format.

    The old file is a plain pickle: it is read with ``weights_only=True`` allowing only the
    numpy and ``PreviousSteps`` globals such checkpoints hold, checked against a loop built
    from ``config.yaml``, and stamped with that config's fingerprint. Only for a run
    directory you trust (``trust=True``): the conversion vouches that the checkpoint belongs
    to this ``config.yaml``. The old file is kept as ``checkpoint.legacy.pt``.

    Returns:
        The path of the kept legacy file.

    Raises:
        ValueError: ``trust`` not given, nothing to convert, or a checkpoint that does not
            fit the run (``CheckpointError``).
    """
    directory = RunDirectory.existing(run_dir, "run_dir")
    where = str(directory.path)
    if trust is not True:
        raise ValueError(
            f"converting the checkpoint in {where!r} needs trust=True (marl-tr "
            "convert-checkpoint --trust DIR): do it only for a run directory you trust"
        )
    try:
        directory.load_checkpoint()
    except CheckpointError as exc:
        if not exc.legacy:
            raise
    else:
        raise ValueError(f"the checkpoint in {where!r} is already in the current format: "
                         "nothing to convert")
    state = load_legacy_checkpoint(directory.checkpoint_path)
    config = _saved_config(directory)
    _refuse_unimported_modules(config, where)
    parts = build_parts(config)
    try:
        loop = SequentialTrustRegion(parts)
        try:
            policies = state.get("policies")
            if not isinstance(policies, list) or len(policies) != len(loop.policies):
                raise ValueError(f"{len(policies) if isinstance(policies, list) else 'no'} "
                                 f"policies for {len(loop.policies)} agents")
            loop.load_state_dict(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"the legacy checkpoint in {where!r} does not fit its config.yaml "
                f"({_first_line(exc)}); not converted") from None
        fingerprint = run_fingerprint(parts.config, parts.env)
    finally:
        parts.close()
    position = metrics_position_at(directory.metrics_path, loop.iteration * config.replicas,
                                   config.replicas)
    backup = directory.path / LEGACY_BACKUP_FILE
    shutil.copy2(directory.checkpoint_path, backup)
    directory.write_checkpoint_payload(state, loop.iteration, fingerprint, position)
    return backup


def _progress_line(row: dict[str, Any], multi_step: bool = False) -> str:
    """One progress line: the mean reward and action 0's means (one-step games), or the
    episode return, its team sum and length, and the last evaluation (multi-step envs)."""
    if multi_step:
        text = (f"iter {int(row['iteration']) + 1:>6}  steps {int(row['env_steps']):>9}  "
                f"return {row['episode_return_mean']:.3f} (team {row['episode_return_team']:.3f},"
                f" length {row['episode_length_mean']:.1f})")
        value = row.get("eval_return_mean", math.nan)
        if math.isfinite(value):
            text += f"  eval {value:.3f}"
        return text
    means = [f"{v:.3f}" for k, v in row.items() if k.startswith("mean_0_")]
    text = f"iter {int(row['iteration']) + 1:>6}  reward {row['reward_mean']:.4f}"
    if means:
        text += "  means " + " ".join(means)
    return text


def return_summary(result: TrainResult, window: int = 10) -> list[str]:
    """Lines on a multi-step run's episode returns, one per seed (none for one-step runs):
    the mean episode return over the last ``window`` iterations (per agent and the team's
    sum), the mean episode length and the last evaluation."""
    longer = any(row.get("episode_length_mean", 1) > 1 for row in result.metrics)
    if not (result.multi_step or longer):  # (a multi-step env may run the one-step profile)
        return []
    lines = []
    for single in result.split():
        line = (f"seed {single.config.seed}: episode return {single.final_return(window):.3f} "
                f"per agent, {single.final_return(window, 'episode_return_team'):.3f} team "
                f"(last {window} iterations; length "
                f"{single.final_return(window, 'episode_length_mean'):.1f})")
        evaluated = (single.column("eval_return_mean")
                     if any("eval_return_mean" in row for row in single.metrics) else [])
        evaluated = [value for value in evaluated if np.isfinite(value)]
        if evaluated:
            line += f"; last evaluation {evaluated[-1]:.3f}"
        lines.append(line)
    return lines
