"""Stable-Baselines3 baselines: one centralised controller on the joint view of a game.

``sb3:ppo`` and ``sb3:a2c`` (Stable-Baselines3) and ``sb3:trpo`` (sb3-contrib) train SB3's
``MlpPolicy`` on ``gymnasium.make(env, **env_kwargs)``: one policy that picks the whole joint
action (a diagonal Gaussian over the joint ``Box`` of the differential game, a product of
categoricals over a matrix game's ``MultiDiscrete``) from the team reward. Both packages are
the optional extra ``pip install "marl_tr[baselines]"``, imported only when a baseline is
checked or trained.

Choices, so that a row compares with a preset's:

* **Budget.** A rollout is ``batch_size`` joint transitions from ``num_envs`` copies
  (default ``batch_size``: one step each, as the presets on one-step games), so ``n_steps =
  batch_size / num_envs`` and ``iterations`` rollouts use exactly ``iterations * batch_size``
  env steps. The SGD minibatch (``minibatch_size``, SB3's ``batch_size``) defaults to the whole
  rollout.
* **Start.** ``start="env"`` (default) starts from the presets' initial policy: the mean at
  the episode's first observation is ``init_mean`` exactly (the env's suggestion, the paper's
  1.5, unless set) and the std ``init_std`` (0.5). ``start="sb3"`` keeps SB3's own
  initialisation (mean 0, std 1).
* **Hyperparameters.** SB3's defaults (tests check them against SB3's signatures), options of
  the config string: ``"sb3:ppo:learning_rate=0.001,n_epochs=5"``; ``hidden`` is the MLP
  of the policy and of the value function (SB3's ``(64, 64)``, tanh).
* **What is reported.** The final policy's distribution at the episode's first observation:
  per-agent means and stds of the joint Gaussian (or per-agent probabilities), from which
  ``E[r]`` comes from the game's closed form, as for presets. The learner runs on the CPU,
  seeded by SB3 (``seed``); the process's global random states are restored afterwards.

What this module uses from SB3 besides the algorithms: ``DummyVecEnv`` and ``BaseCallback``
(a metrics row per rollout, with the loop's episode columns: ``episode_return_mean`` of the
team reward, ``episode_return_team`` summed over agents, ``episode_length_mean``). The
library's own training loop keeps its own logger (durable, byte-exact CSV rows on resume, per
replica) and its own normalisation (batched over replicas in torch); SB3's ``Logger`` and
``RunningMeanStd`` serve one numpy stream and give neither.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import math
import random
import sys
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from marl_tr.baselines.base import (
    BASELINES,
    Baseline,
    BaselineConfig,
    BaselineResult,
    CategoricalMarginal,
    GaussianMarginal,
)
from marl_tr.validation import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    check_probability,
)

__all__ = ["SB3A2C", "SB3PPO", "SB3TRPO", "SB3Baseline", "import_algorithm"]

#: pip line of the optional extra.
INSTALL_HINT = 'pip install "marl_tr[baselines]"'
#: Hidden-layer activations, by name.
_ACTIVATIONS = ("tanh", "relu")


def import_algorithm(module: str, name: str, package: str) -> type:
    """``module.name`` (an SB3 algorithm class), with an install hint when it is missing.

    Raises:
        ValueError: the package is not installed (names the extra to install).
    """
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        raise ValueError(f"baseline needs {package}, which is not installed: "
                         f"{INSTALL_HINT}") from None


def _sizes(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be layer sizes like (64, 64), got {value!r}")
    return tuple(check_int(f"{name} layer size", v, minimum=1) for v in value)


@contextlib.contextmanager
def _global_random_state() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global random states afterwards (SB3 seeds
    them all)."""
    import torch

    python = random.getstate()
    numpy_state = np.random.get_state()  # noqa: NPY002 - SB3 seeds the legacy global one
    torch_state = torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)  # noqa: NPY002
        torch.random.set_rng_state(torch_state)


class SB3Baseline(Baseline):
    """Shared machinery of the SB3 baselines (see the module docstring).

    Subclasses name the algorithm (``algorithm``: module, class, package) and which of their
    options are SB3 constructor arguments (``sb3_options``); ``hidden``, ``activation``,
    ``start`` and ``minibatch_size`` are handled here.
    """

    algorithm: ClassVar[tuple[str, str, str]] = ("", "", "")
    #: Options passed to the SB3 constructor under the same name.
    sb3_options: ClassVar[tuple[str, ...]] = ()
    #: Whether the SB3 class takes ``batch_size`` (the SGD minibatch).
    has_minibatch: ClassVar[bool] = False

    hidden: tuple[int, ...]
    activation: str
    start: str

    def _check_common(self, hidden: Any, activation: str, start: str) -> None:
        self.hidden = _sizes("hidden", hidden)
        self.activation = check_choice("activation", activation, _ACTIVATIONS)
        self.start = check_choice("start", start, ("env", "sb3"))

    # -- what SB3 gets ---------------------------------------------------------------------
    def _algorithm_class(self) -> type:
        module, name, package = self.algorithm
        return import_algorithm(module, name, package)

    def _package_version(self) -> str:
        module, _, package = self.algorithm
        top = importlib.import_module(module.split(".")[0])
        return f"{package} {getattr(top, '__version__', '?')}"

    def _constructor_kwargs(self, config: BaselineConfig, std: float) -> dict[str, Any]:
        """Everything the SB3 class is built with, except the policy, env and seed (``std``:
        the initial std with ``start="env"``)."""
        import torch

        steps = config.batch_size // config.copies
        kwargs: dict[str, Any] = {name: getattr(self, name) for name in self.sb3_options}
        kwargs["n_steps"] = steps
        if self.has_minibatch:
            minibatch = getattr(self, "minibatch_size", None)
            kwargs["batch_size"] = config.batch_size if minibatch is None else minibatch
        policy_kwargs: dict[str, Any] = {
            "net_arch": {"pi": list(self.hidden), "vf": list(self.hidden)},
            "activation_fn": torch.nn.Tanh if self.activation == "tanh" else torch.nn.ReLU,
        }
        if self.start == "env":
            policy_kwargs["log_std_init"] = math.log(std)
        kwargs["policy_kwargs"] = policy_kwargs
        return kwargs

    @staticmethod
    def _start(config: BaselineConfig, game: Any = None) -> tuple[Any, float]:
        """The presets' initial (mean, std): the config's, else the env's suggestion, else
        the box centre (set later, from the space) and 0.5."""
        suggested = getattr(game, "initial_policy", None) or {}
        mean = config.init_mean if config.init_mean is not None else suggested.get("mean")
        std = config.init_std if config.init_std is not None else suggested.get("std", 0.5)
        return mean, float(std)

    # -- building --------------------------------------------------------------------------
    def _make_env(self, config: BaselineConfig) -> Any:
        import gymnasium as gym
        from gymnasium import spaces
        from stable_baselines3.common.vec_env import DummyVecEnv

        import marl_tr_envs  # noqa: F401  (registers the suite's ids)

        if config.env not in gym.registry:
            what = ("a PettingZoo factory has none" if ":" in config.env
                    else "no Gymnasium id of that name is registered; MPE tasks have none")
            raise ValueError(
                f"baseline {self.spec()!r} needs a Gymnasium id with a joint view (e.g. "
                f"DiffGame-v0), got env {config.env!r} ({what})")

        def make() -> Any:
            return gym.make(config.env, **config.env_kwargs)

        vec_env = DummyVecEnv([make] * config.copies)
        space = vec_env.action_space
        if not isinstance(space, (spaces.Box, spaces.MultiDiscrete)):
            vec_env.close()
            raise ValueError(
                f"baseline {self.spec()!r} handles joint Box (Gaussian) or MultiDiscrete "
                f"actions, env {config.env!r} has {space!r}")
        return vec_env

    def _build(self, config: BaselineConfig) -> tuple[Any, Any, dict[str, Any]]:
        """(the SB3 model, its vectorised env, the constructor's keywords), seeded, not
        trained."""
        cls = self._algorithm_class()
        vec_env = self._make_env(config)
        try:
            mean, std = self._start(config, _game(vec_env))
            kwargs = self._constructor_kwargs(config, std)
            model = cls("MlpPolicy", vec_env, seed=config.seed, device="cpu", verbose=0,
                        **kwargs)
            if self.start == "env":
                self._set_start(model, mean, vec_env.action_space)
        except BaseException:
            vec_env.close()
            raise
        return model, vec_env, kwargs

    @staticmethod
    def _set_start(model: Any, mean: Any, space: Any) -> None:
        """Put the Gaussian's mean at the episode's first observation on ``mean`` (None: the
        box centre): the hidden layers' biases start at 0 and their input is 0 there, so the
        mean is the action head's bias."""
        import torch
        from gymnasium import spaces

        if not isinstance(space, spaces.Box):
            return  # categorical heads start uniform, as the presets' do
        if mean is None:
            low, high = np.asarray(space.low, float), np.asarray(space.high, float)
            mean = np.where(np.isfinite(low) & np.isfinite(high), 0.5 * (low + high), 0.0)
        mean = np.broadcast_to(np.asarray(mean, dtype=float), space.shape).ravel()
        with torch.no_grad():
            model.policy.action_net.bias.copy_(torch.as_tensor(mean, dtype=torch.float32))

    def check(self, config: BaselineConfig) -> None:
        """Build the model and its env (no training), so that every refusal comes first."""
        if importlib.util.find_spec(self.algorithm[0].split(".")[0]) is None:
            raise ValueError(f"baseline {self.spec()!r} needs {self.algorithm[2]}, which is "
                             f"not installed: {INSTALL_HINT}")
        with _global_random_state():
            _, vec_env, _ = self._build(config)
        vec_env.close()

    # -- training --------------------------------------------------------------------------
    def train(self, config: BaselineConfig) -> BaselineResult:
        with _global_random_state():
            model, vec_env, kwargs = self._build(config)
            try:
                recorder = _recorder_class()(config, _first_observation(config))
                initial = _marginals(model, recorder.observation)
                start = time.perf_counter()
                if config.iterations:
                    model.learn(total_timesteps=config.env_steps, callback=recorder,
                                log_interval=None)
                wall = time.perf_counter() - start
                recorder.close()
                policies = _marginals(model, recorder.observation)
                game = _game(vec_env)
                agents = list(getattr(vec_env.envs[0].unwrapped, "possible_agents", []))
            finally:
                vec_env.close()
        details: dict[str, Any] = {"library": self._package_version(),
                                   "n_steps": kwargs["n_steps"], "sb3": _plain(kwargs)}
        if all(isinstance(part, GaussianMarginal) for part in initial):
            details["initial_means"] = [float(part.mean[0]) for part in initial]
            details["initial_stds"] = [float(part.std[0]) for part in initial]
        return BaselineResult(
            config=config.replace(details=details), policies=policies,
            metrics=recorder.rows, game=game, wall_time=wall, agents=agents, model=model)


def _game(vec_env: Any) -> Any:
    """The env's analytic core (``.game``), or None."""
    return getattr(vec_env.envs[0].unwrapped, "game", None)


def _plain(value: Any) -> Any:
    """Constructor arguments as plain data (classes by name)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, type):
        return value.__name__
    return value


def _first_observation(config: BaselineConfig) -> np.ndarray:
    """The first observation of an episode (a fresh copy of the env reset with the run's
    seed; the suite's games always start from ``[0]``), ``[1, obs_dim]``."""
    import gymnasium as gym

    env = gym.make(config.env, **config.env_kwargs)
    try:
        observation, _ = env.reset(seed=config.seed)
    finally:
        env.close()
    return np.asarray(observation, dtype=np.float32).reshape(1, -1)


def _distribution(model: Any, observation: np.ndarray) -> Any:
    import torch

    with torch.no_grad():
        tensor, _ = model.policy.obs_to_tensor(observation)
        return model.policy.get_distribution(tensor).distribution


def _marginals(model: Any, observation: np.ndarray) -> list[Any]:
    """Per agent, the marginal of the policy's distribution at ``observation``."""
    import torch

    distribution = _distribution(model, observation)
    if isinstance(distribution, list):  # MultiDiscrete: one categorical per agent
        return [CategoricalMarginal(torch.softmax(part.logits[0].double(), -1).numpy().copy())
                for part in distribution]
    mean = distribution.mean[0].double().numpy()
    std = distribution.stddev[0].double().numpy()
    return [GaussianMarginal(mean[i: i + 1].copy(), std[i: i + 1].copy())
            for i in range(mean.shape[0])]


@functools.cache
def _recorder_class() -> type:
    """The SB3 callback class (made on first use: SB3 is optional)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Recorder(BaseCallback):
        """Writes one metrics row per rollout, as the loop writes one per iteration, and
        drives the progress bar."""

        def __init__(self, config: BaselineConfig, observation: np.ndarray) -> None:
            super().__init__(verbose=0)
            self.config = config
            self.observation = observation
            self.rows: list[dict[str, Any]] = []
            self.bar = _progress_bar(config)
            copies = config.copies
            self.running = {"return": np.zeros(copies), "team": np.zeros(copies),
                            "length": np.zeros(copies)}
            self.ended: dict[str, list[float]] = {"return": [], "team": [], "length": []}

        def _on_step(self) -> bool:
            """Per env copy: add the step's team reward (the mean of ``agent_rewards`` where
            the env gives them, in float64; SB3's buffer holds float32), its agents' rewards
            summed and a step; close the copies whose episode ended."""
            rewards = np.asarray(self.locals["rewards"], dtype=float)
            infos = self.locals["infos"]
            agents = [np.asarray(info.get("agent_rewards", np.nan), dtype=float)
                      for info in infos]
            given = np.array([np.isfinite(a).all() for a in agents])
            mean = np.array([a.mean() for a in agents])
            self.running["return"] += np.where(given, mean, rewards)
            self.running["team"] += np.array([a.sum() for a in agents])
            self.running["length"] += 1
            for copy in np.flatnonzero(np.asarray(self.locals["dones"])):
                for name, values in self.running.items():
                    self.ended[name].append(float(values[copy]))
                    values[copy] = 0.0
            return True

        def _on_rollout_end(self) -> None:
            rewards = np.asarray(self.model.rollout_buffer.rewards, dtype=float)

            def mean(name: str) -> float:
                return float(np.mean(self.ended[name])) if self.ended[name] else math.nan

            row: dict[str, Any] = {
                "iteration": len(self.rows), "replica": 0, "seed": self.config.seed,
                "env_steps": int(self.model.num_timesteps),
                "reward_mean": float(rewards.mean()),
                "episode_return_mean": mean("return"),
                "episode_return_team": mean("team"),
                "episode_length_mean": mean("length"),
                "episodes": len(self.ended["return"]),
            }
            for i, part in enumerate(_marginals(self.model, self.observation)):
                if isinstance(part, GaussianMarginal):
                    row[f"mean_0_{i}"] = float(part.mean[0])
                    row[f"std_0_{i}"] = float(part.std[0])
            self.rows.append(row)
            self.ended = {name: [] for name in self.ended}
            if self.bar is not None:
                self.bar.update(1)

        def close(self) -> None:
            if self.bar is not None:
                self.bar.close()

    return Recorder


def _progress_bar(config: BaselineConfig) -> Any:
    show = config.progress
    if show is None:
        show = sys.stderr.isatty() and config.iterations >= 200
    if not show or not config.iterations:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.iterations, desc=":".join(config.baseline.split(":")[:2]),
                unit="it")


# -- the built-ins --------------------------------------------------------------------------
@BASELINES.register("sb3:ppo")
class SB3PPO(SB3Baseline):
    """Centralised PPO (Stable-Baselines3) on the joint view: one MLP policy picks the joint
    action.

    Args:
        learning_rate: Adam step size (SB3: 3e-4).
        n_epochs: passes over each rollout (SB3: 10).
        minibatch_size: SGD minibatch (SB3's batch_size; None: the whole rollout).
        gamma: discount (SB3: 0.99).
        gae_lambda: GAE lambda (SB3: 0.95).
        clip_range: PPO's clip (SB3: 0.2).
        ent_coef: entropy bonus (SB3: 0.0).
        vf_coef: value-loss weight (SB3: 0.5).
        max_grad_norm: gradient clipping (SB3: 0.5).
        normalize_advantage: per minibatch (SB3: True).
        target_kl: stop the epochs past this KL (SB3: None, no limit).
        hidden: policy and value MLP sizes (SB3: (64, 64)).
        activation: tanh (SB3's) or relu.
        start: "env" (the presets' initial policy) or "sb3" (SB3's initialisation).
    """

    summary = "centralised PPO (Stable-Baselines3) on the joint view, same env-step budget"
    algorithm = ("stable_baselines3", "PPO", "stable-baselines3")
    sb3_options = ("learning_rate", "n_epochs", "gamma", "gae_lambda", "clip_range",
                   "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage", "target_kl")
    has_minibatch = True

    def __init__(self, learning_rate: float = 3e-4, n_epochs: int = 10,
                 minibatch_size: int | None = None, gamma: float = 0.99,
                 gae_lambda: float = 0.95, clip_range: float = 0.2, ent_coef: float = 0.0,
                 vf_coef: float = 0.5, max_grad_norm: float = 0.5,
                 normalize_advantage: bool = True, target_kl: float | None = None,
                 hidden: tuple[int, ...] = (64, 64), activation: str = "tanh",
                 start: str = "env") -> None:
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.n_epochs = check_int("n_epochs", n_epochs, minimum=1)
        self.minibatch_size = (None if minibatch_size is None
                               else check_int("minibatch_size", minibatch_size, minimum=2))
        self.gamma = check_probability("gamma", gamma)
        self.gae_lambda = check_probability("gae_lambda", gae_lambda)
        self.clip_range = check_positive("clip_range", clip_range)
        self.ent_coef = check_non_negative("ent_coef", ent_coef)
        self.vf_coef = check_non_negative("vf_coef", vf_coef)
        self.max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        self.normalize_advantage = bool(normalize_advantage)
        self.target_kl = None if target_kl is None else check_positive("target_kl", target_kl)
        self._check_common(hidden, activation, start)


@BASELINES.register("sb3:a2c")
class SB3A2C(SB3Baseline):
    """Centralised A2C (Stable-Baselines3) on the joint view.

    Args:
        learning_rate: RMSprop step size (SB3: 7e-4).
        gamma: discount (SB3: 0.99).
        gae_lambda: GAE lambda (SB3: 1.0).
        ent_coef: entropy bonus (SB3: 0.0).
        vf_coef: value-loss weight (SB3: 0.5).
        max_grad_norm: gradient clipping (SB3: 0.5).
        normalize_advantage: (SB3: False).
        use_rms_prop: RMSprop, else Adam (SB3: True).
        hidden: policy and value MLP sizes (SB3: (64, 64)).
        activation: tanh (SB3's) or relu.
        start: "env" (the presets' initial policy) or "sb3" (SB3's initialisation).
    """

    summary = "centralised A2C (Stable-Baselines3) on the joint view, same env-step budget"
    algorithm = ("stable_baselines3", "A2C", "stable-baselines3")
    sb3_options = ("learning_rate", "gamma", "gae_lambda", "ent_coef", "vf_coef",
                   "max_grad_norm", "normalize_advantage", "use_rms_prop")

    def __init__(self, learning_rate: float = 7e-4, gamma: float = 0.99,
                 gae_lambda: float = 1.0, ent_coef: float = 0.0, vf_coef: float = 0.5,
                 max_grad_norm: float = 0.5, normalize_advantage: bool = False,
                 use_rms_prop: bool = True, hidden: tuple[int, ...] = (64, 64),
                 activation: str = "tanh", start: str = "env") -> None:
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.gamma = check_probability("gamma", gamma)
        self.gae_lambda = check_probability("gae_lambda", gae_lambda)
        self.ent_coef = check_non_negative("ent_coef", ent_coef)
        self.vf_coef = check_non_negative("vf_coef", vf_coef)
        self.max_grad_norm = check_positive("max_grad_norm", max_grad_norm)
        self.normalize_advantage = bool(normalize_advantage)
        self.use_rms_prop = bool(use_rms_prop)
        self._check_common(hidden, activation, start)


@BASELINES.register("sb3:trpo")
class SB3TRPO(SB3Baseline):
    """Centralised TRPO (sb3-contrib) on the joint view: one KL trust region on the joint
    policy, where HATRPO has one per agent.

    Args:
        learning_rate: the value function's Adam step size (sb3-contrib: 1e-3).
        target_kl: the KL radius of each step (sb3-contrib: 0.01).
        minibatch_size: the value function's minibatch (sb3-contrib's batch_size; None: the
            whole rollout).
        gamma: discount (0.99).
        gae_lambda: GAE lambda (0.95).
        cg_max_steps: conjugate-gradient steps (15).
        cg_damping: Fisher damping (0.1).
        line_search_shrinking_factor: backtracking factor (0.8).
        line_search_max_iter: backtracking steps (10).
        n_critic_updates: value-function passes per rollout (10).
        normalize_advantage: (True).
        hidden: policy and value MLP sizes ((64, 64)).
        activation: tanh or relu.
        start: "env" (the presets' initial policy) or "sb3" (SB3's initialisation).
    """

    summary = "centralised TRPO (sb3-contrib) on the joint view, same env-step budget"
    algorithm = ("sb3_contrib", "TRPO", "sb3-contrib")
    sb3_options = ("learning_rate", "target_kl", "gamma", "gae_lambda", "cg_max_steps",
                   "cg_damping", "line_search_shrinking_factor", "line_search_max_iter",
                   "n_critic_updates", "normalize_advantage")
    has_minibatch = True

    def __init__(self, learning_rate: float = 1e-3, target_kl: float = 0.01,
                 minibatch_size: int | None = None, gamma: float = 0.99,
                 gae_lambda: float = 0.95, cg_max_steps: int = 15, cg_damping: float = 0.1,
                 line_search_shrinking_factor: float = 0.8, line_search_max_iter: int = 10,
                 n_critic_updates: int = 10, normalize_advantage: bool = True,
                 hidden: tuple[int, ...] = (64, 64), activation: str = "tanh",
                 start: str = "env") -> None:
        self.learning_rate = check_positive("learning_rate", learning_rate)
        self.target_kl = check_positive("target_kl", target_kl)
        self.minibatch_size = (None if minibatch_size is None
                               else check_int("minibatch_size", minibatch_size, minimum=2))
        self.gamma = check_probability("gamma", gamma)
        self.gae_lambda = check_probability("gae_lambda", gae_lambda)
        self.cg_max_steps = check_int("cg_max_steps", cg_max_steps, minimum=1)
        self.cg_damping = check_non_negative("cg_damping", cg_damping)
        self.line_search_shrinking_factor = check_probability(
            "line_search_shrinking_factor", line_search_shrinking_factor)
        self.line_search_max_iter = check_int("line_search_max_iter", line_search_max_iter,
                                              minimum=1)
        self.n_critic_updates = check_int("n_critic_updates", n_critic_updates, minimum=1)
        self.normalize_advantage = bool(normalize_advantage)
        self._check_common(hidden, activation, start)
