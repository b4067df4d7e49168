"""Batched multi-agent environments, as the training loop sees them.

The loop talks to one interface, ``MultiAgentVecEnv``: ``num_envs`` copies stepped together,
per-agent observations and actions as arrays, a global state for the centralised critic, a
team reward, and termination and truncation told apart (with the true successor state of a
finished episode, for bootstrapping a truncation). Two adapters:

- ``JointVectorEnvAdapter``: a Gymnasium vector env with a joint action (the native vector
  envs of ``marl_tr_envs``), which declares its agents through ``possible_agents`` and
  ``agent_action_spaces``; batched numpy, no Python loop over copies.
- ``ParallelEnvAdapter``: any PettingZoo ``ParallelEnv`` factory (multi-step episodes
  included), ``num_envs`` copies stepped in a Python loop, auto-reset on episode end.

``make_env`` picks one from an id: a Gymnasium id (``"DiffGame-v0"``,
``"marl_tr_envs:DiffGame-v0"``) or a PettingZoo factory ``"package.module:factory"``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "EnvStep",
    "JointVectorEnvAdapter",
    "MultiAgentVecEnv",
    "NonFiniteRewardError",
    "ParallelEnvAdapter",
    "make_env",
]


Seed = int | Sequence[int] | None


class NonFiniteRewardError(ValueError):
    """An environment returned a NaN or infinite reward."""


@dataclass
class EnvStep:
    """One batched transition.

    Attributes:
        obs: per agent, next observations ``[E, obs_dim_i]`` (after auto-reset).
        state: next global state ``[E, S]`` (after auto-reset).
        reward: team reward ``[E]`` (float64).
        terminated: ``[E]`` bool, the episode ended in a terminal state (no bootstrap).
        truncated: ``[E]`` bool, the episode was cut (bootstrap from ``final_state``).
        final_state: the true successor state ``[E, S]`` (before any auto-reset).
    """

    obs: list[np.ndarray]
    state: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_state: np.ndarray


def _flat_dim(space: spaces.Space) -> int:
    if not isinstance(space, spaces.Box):
        raise ValueError(
            f"observations must be Box spaces for the trainer, got {space!r}"
        )
    return int(np.prod(space.shape))


def _check_action_space(agent: str, space: spaces.Space) -> None:
    if isinstance(space, spaces.Box):
        if len(space.shape) != 1:
            raise ValueError(f"agent {agent!r}: Box actions must be 1-D, got shape {space.shape}")
    elif not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"agent {agent!r}: unsupported action space {space!r}; the trainer supports Box "
            "(1-D) and Discrete actions"
        )


def check_rewards(rewards: np.ndarray, agents: Sequence[str] | None) -> None:
    """Raise ``NonFiniteRewardError`` naming the env copy (and agent) of a bad reward.

    Args:
        rewards: ``[E]`` team rewards or ``[E, n]`` per-agent rewards.
        agents: agent names for the columns of a 2-D ``rewards``.
    """
    finite = np.isfinite(rewards)
    if finite.all():
        return
    bad = np.argwhere(~finite)[0]
    where = f"env copy {int(bad[0])}"
    if rewards.ndim == 2 and agents is not None:
        where += f", agent {agents[int(bad[1])]!r}"
    else:
        where += " (the team reward shared by all agents)"
    raise NonFiniteRewardError(
        f"the environment returned a non-finite reward ({float(rewards[tuple(bad)])}) at {where}"
    )


class MultiAgentVecEnv(ABC):
    """``num_envs`` copies of a cooperative multi-agent environment.

    Attributes:
        num_envs: ``E``.
        agents: agent names, in a fixed order.
        observation_spaces / action_spaces: per agent (same order).
        state_dim: size ``S`` of the global state.
        game: the environment's analytic core when it has one (``None`` otherwise).
    """

    num_envs: int
    agents: list[str]
    observation_spaces: list[spaces.Box]
    action_spaces: list[spaces.Space]
    state_dim: int
    game: Any = None

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @abstractmethod
    def reset(self, seed: Seed = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Reset every copy. Returns per-agent observations and the state ``[E, S]``.

        ``seed``: an int, or one int per replica block (``k`` ints split the copies into
        ``k`` equal consecutive blocks; block ``j`` is then exactly an env of
        ``E / k`` copies reset with ``seed[j]``).
        """

    @abstractmethod
    def step(self, actions: Sequence[np.ndarray]) -> EnvStep:
        """Step every copy with per-agent actions ``[E, act_dim_i]`` or ``[E]``."""

    def get_state(self) -> Any | None:
        """A picklable snapshot for exact resumption, or ``None`` if the env cannot give one."""
        return None

    def set_state(self, state: Any) -> None:
        """Restore ``get_state()``."""
        raise NotImplementedError(f"{type(self).__name__} cannot restore a saved state")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


class JointVectorEnvAdapter(MultiAgentVecEnv):
    """A Gymnasium vector env with a joint action and a declared agent structure.

    The wrapped env must expose ``possible_agents``, ``agent_action_spaces`` and use same-step
    auto-reset (finished copies return their next episode's first observation, with the
    final one in ``infos["final_obs"]``). Every agent observes the joint observation, which is
    also the global state.
    """

    def __init__(self, vec_env: gym.vector.VectorEnv) -> None:
        env = vec_env
        if not hasattr(env, "possible_agents"):
            raise ValueError(
                f"{type(env).__name__} does not declare its agents (possible_agents, "
                "agent_action_spaces); give a PettingZoo factory 'package.module:factory' "
                "instead"
            )
        self.env = env
        self.num_envs = int(env.num_envs)
        self.agents = list(env.possible_agents)
        self.action_spaces = [env.agent_action_spaces[a] for a in self.agents]
        for agent, space in zip(self.agents, self.action_spaces):
            _check_action_space(agent, space)
        obs_space = env.single_observation_space
        self.state_dim = _flat_dim(obs_space)
        self.observation_spaces = [obs_space] * len(self.agents)
        self.game = getattr(env, "game", None)
        self._discrete = all(isinstance(s, spaces.Discrete) for s in self.action_spaces)

    def _obs(self, obs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        state = np.asarray(obs).reshape(self.num_envs, -1)
        return [state] * len(self.agents), state

    def reset(self, seed: Seed = None) -> tuple[list[np.ndarray], np.ndarray]:
        obs, _ = self.env.reset(seed=list(seed) if isinstance(seed, Sequence) else seed)
        return self._obs(obs)

    def step(self, actions: Sequence[np.ndarray]) -> EnvStep:
        if self._discrete:
            joint = np.stack([np.asarray(a).reshape(self.num_envs) for a in actions], axis=1)
        else:
            joint = np.concatenate(
                [np.asarray(a).reshape(self.num_envs, -1) for a in actions], axis=1
            )
        obs, reward, terminated, truncated, infos = self.env.step(joint)
        reward = np.asarray(reward, dtype=np.float64).reshape(self.num_envs)
        check_rewards(reward, None)
        agent_obs, state = self._obs(obs)
        terminated = np.asarray(terminated, dtype=bool).reshape(self.num_envs)
        truncated = np.asarray(truncated, dtype=bool).reshape(self.num_envs) & ~terminated
        final_state = state
        done = terminated | truncated
        if done.any() and "final_obs" in infos:
            final_state = state.copy()
            mask = np.asarray(infos.get("_final_obs", done), dtype=bool)
            final_obs = infos["final_obs"]
            if isinstance(final_obs, np.ndarray) and final_obs.dtype != object:
                final_state[mask] = final_obs.reshape(self.num_envs, -1)[mask]
            else:  # Gymnasium's object array of per-env observations
                for index in np.flatnonzero(mask):
                    final_state[index] = np.asarray(final_obs[index]).reshape(-1)
        return EnvStep(agent_obs, state, reward, terminated, truncated, final_state)

    def get_state(self) -> Any | None:
        getter = getattr(self.env, "get_state", None)
        return None if getter is None else getter()

    def set_state(self, state: Any) -> None:
        setter = getattr(self.env, "set_state", None)
        if setter is None:
            super().set_state(state)
        setter(state)

    def close(self) -> None:
        self.env.close()


class ParallelEnvAdapter(MultiAgentVecEnv):
    """``num_envs`` copies of a PettingZoo ``ParallelEnv``, stepped in a Python loop.

    Team reward: the mean (``team_reward="mean"``) or sum of the agents' rewards. An episode
    ends for the team when any agent terminates or is truncated (termination wins); the
    copy is then reset. The global state is ``env.state()`` when the env implements it, else
    the concatenation of the agents' observations. Box actions are clipped to their bounds
    before stepping (the policy's unclipped sample is what is trained on). All agents must
    stay alive for the whole episode.
    """

    def __init__(
        self, factory: Callable[[], Any], num_envs: int, team_reward: str = "mean"
    ) -> None:
        if team_reward not in ("mean", "sum"):
            raise ValueError(f"team_reward must be 'mean' or 'sum', got {team_reward!r}")
        self.envs = [factory() for _ in range(num_envs)]
        first = self.envs[0]
        self.num_envs = num_envs
        self.agents = list(first.possible_agents)
        self.observation_spaces = [first.observation_space(a) for a in self.agents]
        self.action_spaces = [first.action_space(a) for a in self.agents]
        for agent, space in zip(self.agents, self.action_spaces):
            _check_action_space(agent, space)
        self._obs_dims = [_flat_dim(s) for s in self.observation_spaces]
        self._team_reward = np.mean if team_reward == "mean" else np.sum
        obs, _ = first.reset(seed=0)  # probe the global state once (the run reseeds later)
        self._has_state = self._supports_state(first)
        self._last_obs = [obs] * num_envs
        self.state_dim = int(self._state(first, obs).size)
        self.game = getattr(first, "game", None)

    @staticmethod
    def _supports_state(env: Any) -> bool:
        try:
            np.asarray(env.state())
        except (NotImplementedError, AttributeError):
            return False
        return True

    def _state(self, env: Any, obs: dict[str, Any]) -> np.ndarray:
        if self._has_state:
            return np.asarray(env.state(), dtype=np.float64).reshape(-1)
        return np.concatenate([np.asarray(obs[a], dtype=np.float64).reshape(-1)
                               for a in self.agents])

    def _collect(self, per_env: list[dict[str, Any]], states: list[np.ndarray]):
        obs = [np.stack([np.asarray(o[a], dtype=np.float64).reshape(-1) for o in per_env])
               for a in self.agents]
        return obs, np.stack(states)

    def reset(self, seed: Seed = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Copy ``e`` of block ``j`` is reset with ``seed[j] + e`` (``seed + e`` for an int)."""
        seeds = [seed] if seed is None or isinstance(seed, int) else list(seed)
        if self.num_envs % len(seeds):
            raise ValueError(f"{len(seeds)} seed blocks do not divide {self.num_envs} copies")
        block = self.num_envs // len(seeds)
        per_env, states = [], []
        for index, env in enumerate(self.envs):
            base = seeds[index // block]
            obs, _ = env.reset(seed=None if base is None else base + index % block)
            self._check_agents(env, obs)
            per_env.append(obs)
            states.append(self._state(env, obs))
        self._last_obs = per_env
        agent_obs, state = self._collect(per_env, states)
        self.state_dim = state.shape[1]
        return agent_obs, state

    def _check_agents(self, env: Any, obs: dict[str, Any]) -> None:
        if set(obs) != set(self.agents):
            raise ValueError(
                f"the trainer needs every agent alive for the whole episode; got observations "
                f"for {sorted(obs)} instead of {sorted(self.agents)}"
            )

    def _clip(self, agent_index: int, action: np.ndarray) -> Any:
        space = self.action_spaces[agent_index]
        if isinstance(space, spaces.Discrete):
            return int(action)
        return np.clip(action, space.low, space.high).astype(space.dtype)

    def step(self, actions: Sequence[np.ndarray]) -> EnvStep:
        per_env, states, finals = [], [], []
        rewards = np.empty(self.num_envs)
        agent_rewards = np.empty((self.num_envs, len(self.agents)))
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        for index, env in enumerate(self.envs):
            joint = {a: self._clip(k, actions[k][index]) for k, a in enumerate(self.agents)}
            obs, rew, term, trunc, _ = env.step(joint)
            agent_rewards[index] = [float(rew.get(a, 0.0)) for a in self.agents]
            rewards[index] = self._team_reward(agent_rewards[index])
            terminated[index] = any(bool(term.get(a, False)) for a in self.agents)
            truncated[index] = not terminated[index] and any(
                bool(trunc.get(a, False)) for a in self.agents
            )
            if terminated[index] or truncated[index]:
                finals.append(self._state(env, obs or self._last_obs[index]))
                obs, _ = env.reset()
            else:
                self._check_agents(env, obs)
                finals.append(None)
            per_env.append(obs)
            states.append(self._state(env, obs))
        check_rewards(agent_rewards, self.agents)
        agent_obs, state = self._collect(per_env, states)
        final_state = np.stack([s if f is None else f for s, f in zip(state, finals)])
        self._last_obs = per_env
        return EnvStep(agent_obs, state, rewards, terminated, truncated, final_state)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _import_factory(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for env {target!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(
            f"module {module_name!r} has no attribute {attr!r} (env {target!r})"
        ) from None


def _checked_factory(target: str, factory: Any,
                     env_kwargs: dict[str, Any]) -> Callable[[], Any]:
    """``factory(**env_kwargs)``, refusing with a ``TypeError`` naming ``target`` when it is
    not a factory of PettingZoo ``ParallelEnv``s (e.g. ``"math:sqrt"``)."""
    if not callable(factory):
        raise TypeError(f"env {target!r} must name a factory of PettingZoo ParallelEnvs, got a "
                        f"{type(factory).__name__} ({factory!r})")

    def build() -> Any:
        try:
            env = factory(**env_kwargs)
        except TypeError as exc:
            raise TypeError(
                f"env {target!r} must name a factory of PettingZoo ParallelEnvs that accepts "
                f"env_kwargs {env_kwargs!r}; calling it raised TypeError: {exc}") from exc
        if not all(hasattr(env, name) for name in ("possible_agents", "reset", "step",
                                                   "action_space", "observation_space")):
            raise TypeError(f"env {target!r} must return a PettingZoo ParallelEnv, but it "
                            f"returned {type(env).__name__} {env!r:.60}")
        return env

    return build


def make_env(env_id: str, env_kwargs: dict[str, Any], num_envs: int) -> MultiAgentVecEnv:
    """Build the batched environment for ``env_id``.

    Args:
        env_id: a Gymnasium id with a native vector env that declares its agents
            (``"DiffGame-v0"``; ``marl_tr_envs`` is imported first), or a PettingZoo
            ``ParallelEnv`` factory ``"package.module:factory"``.
        env_kwargs: keyword arguments for the env constructor / factory.
        num_envs: number of copies ``E``.
    """
    import marl_tr_envs  # noqa: F401 - registers the suite's ids

    if ":" in env_id and env_id.partition(":")[2] not in gym.registry:
        factory = _import_factory(env_id)
        return ParallelEnvAdapter(_checked_factory(env_id, factory, env_kwargs), num_envs)
    name = env_id.partition(":")[2] if ":" in env_id else env_id
    if name not in gym.registry:
        import difflib

        close = difflib.get_close_matches(name, list(gym.registry), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown environment {env_id!r}.{hint} Give a registered Gymnasium id with a "
            "native vector env (e.g. 'DiffGame-v0') or a PettingZoo factory "
            "'package.module:factory'"
        )
    spec = gym.registry[name]
    if spec.vector_entry_point is None:
        raise ValueError(
            f"Gymnasium env {name!r} has no native vector env declaring its agents; give a "
            "PettingZoo factory 'package.module:factory' instead"
        )
    vec_env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                           **env_kwargs)
    return JointVectorEnvAdapter(vec_env)
