"""Batched multi-agent environments, as the training loop sees them.

The loop talks to one interface, ``MultiAgentVecEnv``: ``num_envs`` copies stepped together,
per-agent observations and actions as arrays, a global state for the centralised critic, a
team reward, and termination and truncation told apart (with the true successor state of a
finished episode, for bootstrapping a truncation). Two adapters:

- ``JointVectorEnvAdapter``: a Gymnasium vector env with a joint action (the native vector
  envs of ``marl_tr_envs``), which declares its agents through ``possible_agents`` and
  ``agent_action_spaces``; batched numpy, no Python loop over copies.
- ``ParallelEnvAdapter``: any PettingZoo ``ParallelEnv`` factory (multi-step episodes
  included), ``num_envs`` copies stepped in a Python loop in this process, auto-reset on
  episode end (``vectorization="sync"``; the reference).
- ``AsyncParallelEnvAdapter``: the same copies stepped in parallel (``vectorization=
  "async"``), in chunks of copies, one per core: each chunk is a ``ParallelEnvAdapter`` seen
  as one joint single-agent ``gymnasium.Env`` (``JointParallelEnv``); this process steps the
  first chunk while Gymnasium's ``AsyncVectorEnv`` steps the others in subprocesses, the data
  in shared memory. It returns the transitions of ``ParallelEnvAdapter`` for the same seeds
  and actions: the chunks run its code.

``make_env`` picks one from an id: a Gymnasium id (``"DiffGame-v0"``,
``"marl_tr_envs:DiffGame-v0"``), an MPE task's short name (``"simple_spread"``; the
``[mpe]`` extra, ``marl_tr_envs.mpe``), a PettingZoo factory ``"package.module:factory"`` or
a factory callable (``env_label`` names it in configs).

**Env state for exact resumption.** A PettingZoo copy that offers ``get_state()`` and
``set_state(state)`` with plain data (numpy arrays, numbers, strings, containers: what a
checkpoint stores without pickling) is saved with the run (``MultiAgentVecEnv.get_state``);
the MPE tasks of ``marl_tr_envs.mpe`` do. Env copies are never pickled into a checkpoint:
loading a pickle runs code, and a run directory must not. Without such a state, a resumed run
restarts the episodes under way from seeded resets (see ``Collector.restart``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "AsyncParallelEnvAdapter",
    "EnvStep",
    "JointParallelEnv",
    "JointVectorEnvAdapter",
    "MultiAgentVecEnv",
    "NonFiniteRewardError",
    "ParallelEnvAdapter",
    "env_label",
    "make_env",
    "resolve_factory",
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
        agent_rewards: per-agent rewards ``[E, n]`` (float64) where the env gives them
            (PettingZoo envs), else ``None`` (every agent receives the team reward).
        final_obs: per agent, the true successor observations ``[E, obs_dim_i]`` (before any
            auto-reset); ``None``: they are ``obs`` where no copy finished.
    """

    obs: list[np.ndarray]
    state: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_state: np.ndarray
    agent_rewards: np.ndarray | None = None
    final_obs: list[np.ndarray] | None = None


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
    #: ``step`` raises ``NonFiniteRewardError`` on a NaN or infinite reward (off while the
    #: env is only probed)
    validate_rewards: bool = True

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
        """A snapshot for exact resumption made of plain data (numpy arrays, numbers, strings,
        containers: what a checkpoint stores without pickling), or ``None`` if the env cannot
        give one."""
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
        if self.validate_rewards:
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
        return EnvStep(agent_obs, state, reward, terminated, truncated, final_state,
                       final_obs=[final_state] * len(self.agents))

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


# ---------------------------------------------------------------------------------------
# one PettingZoo copy: the functions both the sync and the async adapters step it with
# ---------------------------------------------------------------------------------------
def _supports_state(env: Any) -> bool:
    try:
        np.asarray(env.state())
    except (NotImplementedError, AttributeError):
        return False
    return True


def _has_safe_state(env: Any) -> bool:
    """Whether a copy offers ``get_state``/``set_state`` (plain data, see the module doc)."""
    return callable(getattr(env, "get_state", None)) and callable(getattr(env, "set_state",
                                                                          None))


class _CopyLayout:
    """How one copy of a ``ParallelEnv`` is read and driven (shared by every adapter).

    Args:
        env: one copy (already reset once).
        team_reward: ``"mean"`` or ``"sum"`` of the agents' rewards.
    """

    def __init__(self, env: Any, team_reward: str) -> None:
        if team_reward not in ("mean", "sum"):
            raise ValueError(f"team_reward must be 'mean' or 'sum', got {team_reward!r}")
        self.agents = list(env.possible_agents)
        self.observation_spaces = [env.observation_space(a) for a in self.agents]
        self.action_spaces = [env.action_space(a) for a in self.agents]
        for agent, space in zip(self.agents, self.action_spaces):
            _check_action_space(agent, space)
        self.obs_dims = [_flat_dim(s) for s in self.observation_spaces]
        self.team_reward = team_reward
        self.has_state = _supports_state(env)

    def state(self, env: Any, obs: dict[str, Any]) -> np.ndarray:
        """The global state ``[S]``: ``env.state()`` where implemented, else the agents'
        observations concatenated."""
        if self.has_state:
            return np.asarray(env.state(), dtype=np.float64).reshape(-1)
        return np.concatenate([np.asarray(obs[a], dtype=np.float64).reshape(-1)
                               for a in self.agents])

    def check_agents(self, obs: dict[str, Any]) -> None:
        if set(obs) != set(self.agents):
            raise ValueError(
                f"the trainer needs every agent alive for the whole episode; got observations "
                f"for {sorted(obs)} instead of {sorted(self.agents)}"
            )

    def joint(self, actions: Sequence[Any]) -> dict[str, Any]:
        """Per-agent actions -> the copy's action dict: Box actions clipped to their bounds,
        Discrete ones as ints."""
        out = {}
        for k, agent in enumerate(self.agents):
            space = self.action_spaces[k]
            if isinstance(space, spaces.Discrete):
                out[agent] = int(np.asarray(actions[k]).reshape(()))
            else:
                out[agent] = np.clip(actions[k], space.low, space.high).astype(space.dtype)
        return out

    def joint_batch(self, actions: Sequence[np.ndarray]) -> list[Any]:
        """``joint`` for every copy at once: per agent, the clipped Box actions ``[E, d]``
        (row ``e`` is copy ``e``'s, the values ``joint`` gives) or the Discrete ones as a list
        of ints."""
        out: list[Any] = []
        for k, space in enumerate(self.action_spaces):
            if isinstance(space, spaces.Discrete):
                out.append(np.asarray(actions[k]).reshape(-1).astype(np.int64).tolist())
            else:
                out.append(np.clip(actions[k], space.low, space.high).astype(space.dtype))
        return out

    def outcome(self, rew: dict[str, Any], term: dict[str, Any],
                trunc: dict[str, Any]) -> tuple[np.ndarray, float, bool, bool]:
        """``(agent rewards [n], team reward, terminated, truncated)`` of one step: the team's
        episode ends when any agent's does, and termination wins over truncation."""
        agent_rewards = np.array([float(rew.get(a, 0.0)) for a in self.agents])
        team = float(np.mean(agent_rewards) if self.team_reward == "mean"
                     else np.sum(agent_rewards))
        terminated = any(bool(term.get(a, False)) for a in self.agents)
        truncated = not terminated and any(bool(trunc.get(a, False)) for a in self.agents)
        return agent_rewards, team, terminated, truncated


class ParallelEnvAdapter(MultiAgentVecEnv):
    """``num_envs`` copies of a PettingZoo ``ParallelEnv``, stepped in a Python loop.

    Team reward: the mean (``team_reward="mean"``) or sum of the agents' rewards; the agents'
    own rewards come with each step (``EnvStep.agent_rewards``). An episode ends for the team
    when any agent terminates or is truncated (termination wins); the copy is then reset. The
    global state is ``env.state()`` when the env implements it, else the concatenation of the
    agents' observations. Box actions are clipped to their bounds before stepping (the
    policy's unclipped sample is what is trained on). All agents must stay alive for the
    whole episode.
    """

    def __init__(
        self, factory: Callable[[], Any], num_envs: int, team_reward: str = "mean"
    ) -> None:
        if team_reward not in ("mean", "sum"):
            raise ValueError(f"team_reward must be 'mean' or 'sum', got {team_reward!r}")
        self.envs = [factory() for _ in range(num_envs)]
        first = self.envs[0]
        obs, _ = first.reset(seed=0)  # probe the global state once (the run reseeds later)
        self.layout = layout = _CopyLayout(first, team_reward)
        self.num_envs = num_envs
        self.agents = layout.agents
        self.observation_spaces = layout.observation_spaces
        self.action_spaces = layout.action_spaces
        self._last_obs = [obs] * num_envs
        self.state_dim = int(layout.state(first, obs).size)
        self.game = getattr(first, "game", None)

    def _collect(self, per_env: list[dict[str, Any]], states: list[np.ndarray]):
        obs = [np.stack([np.asarray(o[a], dtype=np.float64).reshape(-1) for o in per_env])
               for a in self.agents]
        return obs, (np.stack(states) if states else None)

    def reset(self, seed: Seed = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Copy ``e`` of block ``j`` is reset with ``seed[j] + e`` (``seed + e`` for an int)."""
        return self.reset_each(_copy_seeds(seed, self.num_envs))

    def reset_each(self, seeds: Sequence[int | None]) -> tuple[list[np.ndarray], np.ndarray]:
        """Reset copy ``e`` with ``seeds[e]``."""
        per_env, states = [], []
        for env, copy_seed in zip(self.envs, seeds, strict=True):
            obs, _ = env.reset(seed=copy_seed)
            self.layout.check_agents(obs)
            per_env.append(obs)
            states.append(self.layout.state(env, obs))
        self._last_obs = per_env
        agent_obs, state = self._collect(per_env, states)
        self.state_dim = state.shape[1]
        return agent_obs, state

    def step(self, actions: Sequence[np.ndarray]) -> EnvStep:
        layout, agents, copies = self.layout, self.agents, self.num_envs
        prepared = layout.joint_batch(actions)
        agent_obs = [np.empty((copies, dim)) for dim in layout.obs_dims]
        state = np.empty((copies, self.state_dim))
        rewards = np.empty(copies)
        agent_rewards = np.empty((copies, len(agents)))
        terminated = np.zeros(copies, dtype=bool)
        truncated = np.zeros(copies, dtype=bool)
        finished: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}  # copy -> final state, obs
        per_env = []
        for index, env in enumerate(self.envs):
            obs, rew, term, trunc, _ = env.step(
                {agent: prepared[k][index] for k, agent in enumerate(agents)})
            (agent_rewards[index], rewards[index], terminated[index],
             truncated[index]) = layout.outcome(rew, term, trunc)
            if terminated[index] or truncated[index]:
                obs = obs or self._last_obs[index]
                finished[index] = (layout.state(env, obs), obs)
                obs, _ = env.reset()
            else:
                layout.check_agents(obs)
            for k, agent in enumerate(agents):
                agent_obs[k][index] = np.asarray(obs[agent], dtype=np.float64).reshape(-1)
            state[index] = layout.state(env, obs)
            per_env.append(obs)
        if self.validate_rewards:
            check_rewards(agent_rewards, agents)
        final_state, successors = state, agent_obs
        if finished:
            final_state = state.copy()
            successors = [rows.copy() for rows in agent_obs]
            for index, (final, obs) in finished.items():
                final_state[index] = final
                for k, agent in enumerate(agents):
                    successors[k][index] = np.asarray(obs[agent], dtype=np.float64).reshape(-1)
        self._last_obs = per_env
        return EnvStep(agent_obs, state, rewards, terminated, truncated, final_state,
                       agent_rewards, successors)

    def get_state(self) -> Any | None:
        """Every copy's ``get_state()`` (and the last observations), or ``None`` unless every
        copy offers a plain-data state."""
        if not all(_has_safe_state(env) for env in self.envs):
            return None
        return {"copies": [env.get_state() for env in self.envs],
                "last_obs": [dict(obs) for obs in self._last_obs]}

    def set_state(self, state: Any) -> None:
        copies = state["copies"]
        if len(copies) != self.num_envs:
            raise ValueError(f"the saved env state has {len(copies)} copies, this env "
                             f"{self.num_envs}")
        for env, saved in zip(self.envs, copies):
            env.set_state(saved)
        self._last_obs = [dict(obs) for obs in state["last_obs"]]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _copy_seeds(seed: Seed, num_envs: int) -> list[int | None]:
    """Copy ``e`` of block ``j``: ``seed[j] + e`` (``seed + e`` for an int, ``None``: none)."""
    seeds = [seed] if seed is None or isinstance(seed, (int, np.integer)) else list(seed)
    if num_envs % len(seeds):
        raise ValueError(f"{len(seeds)} seed blocks do not divide {num_envs} copies")
    block = num_envs // len(seeds)
    return [None if seeds[e // block] is None else int(seeds[e // block]) + e % block
            for e in range(num_envs)]


# ---------------------------------------------------------------------------------------
# the joint view of a chunk of copies, and the async adapter over such chunks
# ---------------------------------------------------------------------------------------
class JointParallelEnv(gym.Env):
    """``copies`` copies of a ``ParallelEnv`` as one single-agent ``gymnasium.Env``: the
    joint view that ``AsyncVectorEnv`` steps in a subprocess.

    The copies are a ``ParallelEnvAdapter`` (the same code as ``vectorization="sync"``,
    auto-reset included). Everything one step gives travels in the observation, a float64
    array ``[copies, D]`` (so ``AsyncVectorEnv`` moves it through shared memory): per copy the
    agents' observations, the state, the agents' successor observations, the successor
    state, the team reward, the agents' rewards, and ``terminated`` and ``truncated`` (0/1);
    ``unpack`` splits it. The env's own reward is 0 and its episode never ends (the copies
    reset themselves). Action: a ``Tuple`` of the agents' batched spaces (``Box(copies, d)``
    or ``MultiDiscrete``). ``pending_seeds`` sets the seeds of the next ``reset``;
    ``env_state`` reads and writes the copies' ``get_state()``.

    Args:
        factory: builds one copy.
        copies: copies in this env.
        team_reward: ``"mean"`` or ``"sum"``.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's attribute

    def __init__(self, factory: Callable[[], Any], copies: int = 1,
                 team_reward: str = "mean") -> None:
        self.copies = ParallelEnvAdapter(factory, copies, team_reward)
        layout = self.copies.layout
        n, state_dim = len(layout.agents), self.copies.state_dim
        self.sizes = [*layout.obs_dims, state_dim, *layout.obs_dims, state_dim, 1, n, 1, 1]
        self.bounds = np.cumsum([0, *self.sizes])
        self.observation_space = spaces.Box(-np.inf, np.inf, (copies, int(self.bounds[-1])),
                                            np.float64)
        self.action_space = spaces.Tuple([
            spaces.MultiDiscrete([space.n] * copies) if isinstance(space, spaces.Discrete)
            else spaces.Box(np.broadcast_to(space.low, (copies, *space.shape)),
                            np.broadcast_to(space.high, (copies, *space.shape)),
                            dtype=space.dtype)
            for space in layout.action_spaces])
        self.pending_seeds: list[int | None] | None = None

    def _pack(self, obs: list[np.ndarray], state: np.ndarray, step: EnvStep | None) -> np.ndarray:
        copies = self.copies.num_envs
        zeros = np.zeros((copies, 1))
        if step is None:  # after a reset: successors are the observations, nothing happened
            parts = [*obs, state, *obs, state, zeros, np.zeros((copies, len(obs))), zeros, zeros]
        else:
            parts = [*obs, state, *step.final_obs, step.final_state, step.reward[:, None],
                     step.agent_rewards, step.terminated[:, None], step.truncated[:, None]]
        return np.concatenate([np.asarray(part, dtype=np.float64) for part in parts], axis=1)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        seeds, self.pending_seeds = self.pending_seeds, None
        per_copy = seeds if seeds is not None else ([seed] * self.copies.num_envs
                                                    if seed is None else None)
        if per_copy is None:  # one int: copy e gets seed + e (as ParallelEnvAdapter)
            obs, state = self.copies.reset(seed=seed)
        else:
            obs, state = self.copies.reset_each(per_copy)
        return self._pack(obs, state, None), {}

    def step(self, action: Sequence[Any]) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.copies.validate_rewards = False  # checked by the adapter that reads the batch
        step = self.copies.step(list(action))
        return self._pack(step.obs, step.state, step), 0.0, False, False, {}

    def unpack(self, rows: np.ndarray) -> EnvStep:
        """``[E, D]`` rows of one or more of these envs -> the copies' ``EnvStep``."""
        b, n = self.bounds, len(self.copies.agents)
        cut = [rows[:, b[k]:b[k + 1]] for k in range(len(self.sizes))]
        obs, state = cut[:n], cut[n]
        final_obs, final_state = cut[n + 1:2 * n + 1], cut[2 * n + 1]
        reward, agent_rewards, terminated, truncated = cut[2 * n + 2:]
        return EnvStep([np.ascontiguousarray(o) for o in obs], np.ascontiguousarray(state),
                       reward[:, 0].copy(), terminated[:, 0] > 0.5, truncated[:, 0] > 0.5,
                       np.ascontiguousarray(final_state), np.ascontiguousarray(agent_rewards),
                       [np.ascontiguousarray(o) for o in final_obs])

    @property
    def env_state(self) -> Any | None:
        return self.copies.get_state()

    @env_state.setter
    def env_state(self, state: Any) -> None:
        self.copies.set_state(state)

    def close(self) -> None:
        self.copies.close()


class _JointFactory:
    """A picklable ``() -> JointParallelEnv`` (sent to the subprocesses)."""

    def __init__(self, factory: Callable[[], Any], copies: int, team_reward: str) -> None:
        self.factory, self.copies, self.team_reward = factory, copies, team_reward

    def __call__(self) -> JointParallelEnv:
        return JointParallelEnv(self.factory, self.copies, self.team_reward)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_count(num_envs: int, cores: int) -> int:
    """Subprocesses for ``num_envs`` copies on ``cores`` cores: the largest divisor of
    ``num_envs`` that is at most ``cores`` (every worker steps as many copies)."""
    return max(w for w in range(1, min(num_envs, max(cores, 1)) + 1) if num_envs % w == 0)


class AsyncParallelEnvAdapter(MultiAgentVecEnv):
    """``num_envs`` copies of a PettingZoo ``ParallelEnv`` stepped in parallel: split into
    ``chunks`` equal chunks (one per core by default), the first stepped in this process while
    Gymnasium's ``AsyncVectorEnv`` steps the others, each a ``JointParallelEnv`` in its own
    subprocess (a step costs one message per subprocess, not per copy; the step's data travel
    in shared memory).

    Every chunk runs ``ParallelEnvAdapter``'s code, so the transitions are those of
    ``vectorization="sync"`` for the same seeds and actions. With one chunk (one core, or a
    prime number of copies above the cores) nothing runs in a subprocess.

    Args:
        factory: builds one copy (picklable by cloudpickle: a module function, a lambda, ...).
        num_envs: copies ``E``.
        team_reward: ``"mean"`` or ``"sum"``.
        chunks: a divisor of ``num_envs`` (default ``worker_count(E, cores)``).
    """

    def __init__(self, factory: Callable[[], Any], num_envs: int, team_reward: str = "mean",
                 chunks: int | None = None) -> None:
        chunks = worker_count(num_envs, available_cores()) if chunks is None else chunks
        if chunks < 1 or num_envs % chunks:
            raise ValueError(f"chunks must divide num_envs ({num_envs}), got {chunks!r}")
        self.chunk = num_envs // chunks
        self.local = JointParallelEnv(factory, self.chunk, team_reward)  # the first chunk
        self.layout = self.local.copies.layout
        self.state_dim = self.local.copies.state_dim
        self.game = self.local.copies.game
        self.num_envs, self.chunks = num_envs, chunks
        self.agents = self.layout.agents
        self.observation_spaces = self.layout.observation_spaces
        self.action_spaces = self.layout.action_spaces
        self.vec = None
        if chunks > 1:
            try:
                self.vec = gym.vector.AsyncVectorEnv(
                    [_JointFactory(factory, self.chunk, team_reward) for _ in range(chunks - 1)],
                    autoreset_mode=gym.vector.AutoresetMode.DISABLED,
                )
            except BaseException:
                self.local.close()
                raise

    def _unpack(self, local: np.ndarray, remote: np.ndarray | None) -> EnvStep:
        rows = local if remote is None else np.concatenate(
            [local, np.asarray(remote, dtype=np.float64).reshape(-1, local.shape[1])])
        return self.local.unpack(rows)

    def _slices(self, values: Sequence[Any]) -> list[Any]:
        c = self.chunk
        return [values[w * c:(w + 1) * c] for w in range(self.chunks)]

    def reset(self, seed: Seed = None) -> tuple[list[np.ndarray], np.ndarray]:
        """Copy ``e`` of block ``j`` is reset with ``seed[j] + e`` (as ``ParallelEnvAdapter``)."""
        parts = self._slices(_copy_seeds(seed, self.num_envs))
        remote = None
        if self.vec is not None:
            self.vec.set_attr("pending_seeds", parts[1:])
            self.vec.reset_async()
        self.local.pending_seeds = parts[0]
        local, _ = self.local.reset()
        if self.vec is not None:
            remote, _ = self.vec.reset_wait()
        step = self._unpack(local, remote)
        return step.obs, step.state

    def step(self, actions: Sequence[np.ndarray]) -> EnvStep:
        shaped = []
        for action, space in zip(actions, self.action_spaces):
            action = np.asarray(action)
            if isinstance(space, spaces.Discrete):
                shaped.append(action.reshape(self.chunks, self.chunk).astype(np.int64))
            else:
                shaped.append(action.reshape(self.chunks, self.chunk, *space.shape))
        remote = None
        if self.vec is not None:  # the subprocesses step their chunks while this one steps its
            self.vec.step_async(tuple(a[1:] for a in shaped))
        local = self.local.step(tuple(a[0] for a in shaped))[0]
        if self.vec is not None:
            remote = self.vec.step_wait()[0]
        step = self._unpack(local, remote)
        if self.validate_rewards:
            check_rewards(step.agent_rewards, self.agents)
        return step

    def get_state(self) -> Any | None:
        states = [self.local.env_state]
        if self.vec is not None:
            states += list(self.vec.get_attr("env_state"))
        if any(state is None for state in states):
            return None
        return {"copies": [c for s in states for c in s["copies"]],
                "last_obs": [o for s in states for o in s["last_obs"]]}

    def set_state(self, state: Any) -> None:
        copies, last = state["copies"], state["last_obs"]
        if len(copies) != self.num_envs:
            raise ValueError(f"the saved env state has {len(copies)} copies, this env "
                             f"{self.num_envs}")
        parts = [{"copies": c, "last_obs": o}
                 for c, o in zip(self._slices(copies), self._slices(last))]
        self.local.env_state = parts[0]
        if self.vec is not None:
            self.vec.set_attr("env_state", parts[1:])

    def close(self) -> None:
        try:
            if self.vec is not None:
                self.vec.close()
        finally:
            self.local.close()


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


class _CheckedFactory:
    """``factory(**env_kwargs)``, refusing with a ``TypeError`` naming ``target`` when it is
    not a factory of PettingZoo ``ParallelEnv``s (e.g. ``"math:sqrt"``). Picklable when
    ``factory`` is (the async adapter sends it to its subprocesses)."""

    def __init__(self, target: str, factory: Any, env_kwargs: dict[str, Any]) -> None:
        if not callable(factory):
            raise TypeError(f"env {target!r} must name a factory of PettingZoo ParallelEnvs, "
                            f"got a {type(factory).__name__} ({factory!r})")
        self.target, self.factory, self.env_kwargs = target, factory, dict(env_kwargs)

    def __call__(self) -> Any:
        self._check_flags()
        try:
            env = self.factory(**self.env_kwargs)
        except TypeError as exc:
            raise TypeError(
                f"env {self.target!r} must name a factory of PettingZoo ParallelEnvs that "
                f"accepts env_kwargs {self.env_kwargs!r}; calling it raised TypeError: {exc}"
            ) from exc
        except Exception as exc:  # the env's own check of its arguments, or a bug in it
            message = str(exc).strip().splitlines()
            raise ValueError(
                f"env {self.target!r} with env_kwargs {self.env_kwargs!r} could not be made: "
                f"{type(exc).__name__}{': ' + message[0] if message else ''}") from exc
        if not all(hasattr(env, name) for name in ("possible_agents", "reset", "step",
                                                   "action_space", "observation_space")):
            raise TypeError(f"env {self.target!r} must return a PettingZoo ParallelEnv, but it "
                            f"returned {type(env).__name__} {env!r:.60}")
        if not env.possible_agents:
            raise ValueError(f"env {self.target!r} with env_kwargs {self.env_kwargs!r} has no "
                             "agents")
        return env

    def _check_flags(self) -> None:
        """Refuse a non-bool value for a keyword whose default is a bool (the string
        ``'no'`` is true to Python: ``continuous_actions=no`` would mean yes)."""
        try:
            parameters = inspect.signature(self.factory).parameters
        except (TypeError, ValueError):  # no signature to read
            return
        for name, value in self.env_kwargs.items():
            default = parameters[name].default if name in parameters else None
            if isinstance(default, bool) and not isinstance(value, bool):
                raise ValueError(f"env_kwargs {name}={value!r}: env {self.target!r} takes true "
                                 f"or false for {name}")


#: How ``env_label`` marks a factory callable that cannot be imported back by name.
CALLABLE_PREFIX = "<callable "


def env_label(factory: Callable[..., Any]) -> str:
    """The config string of an env factory callable.

    ``"module:qualname"`` when importing that name gives back this very object (then a
    config, a run directory and a sweep can rebuild the env by name), else
    ``"<callable module.qualname>"`` (a lambda, a closure, a ``functools.partial``): such a
    run can only be built, or resumed, with the callable passed again.

    Raises:
        TypeError: ``factory`` is not callable.
    """
    if not callable(factory):
        raise TypeError(f"an env factory must be callable, got {factory!r}")
    module = getattr(factory, "__module__", None) or type(factory).__module__
    qualname = getattr(factory, "__qualname__", None)
    if qualname is None:
        inner = getattr(factory, "func", None)  # functools.partial
        qualname = (f"{type(factory).__qualname__}({getattr(inner, '__qualname__', '?')})"
                    if inner is not None else type(factory).__qualname__)
    found: Any = sys.modules.get(module)  # never imports: the callable's module is loaded
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is factory and "<" not in qualname:
        return f"{module}:{qualname}"
    return f"{CALLABLE_PREFIX}{module}.{qualname}>"


def resolve_factory(env: str | Callable[..., Any],
                    factory: Callable[..., Any] | None = None) -> tuple[str, Any]:
    """What ``env`` names: ``("native", gym_id)`` for a Gymnasium id with a native vector
    env, else ``("parallel", factory)`` for a PettingZoo ``ParallelEnv`` factory.

    Args:
        env: a Gymnasium id, an MPE short name, ``"package.module:factory"``, a factory
            callable, or the ``env_label`` of ``factory``.
        factory: the callable a ``"<callable ...>"`` label stands for.

    Raises:
        ValueError: an unknown id (a close one suggested), an unimportable module, a label of
            a callable that is not given.
    """
    import marl_tr_envs  # noqa: F401 - registers the suite's ids
    from marl_tr_envs import mpe

    if callable(env):
        return "parallel", env
    if not isinstance(env, str):
        raise TypeError(f"env must be a string or a factory callable, got {env!r}")
    if factory is not None:
        if env_label(factory) != env:
            raise ValueError(f"the env factory given is {env_label(factory)!r}, but the config "
                             f"names env {env!r}")
        return "parallel", factory
    if env.startswith(CALLABLE_PREFIX):
        raise ValueError(
            f"env {env!r} is a factory callable that cannot be imported by name (a lambda, a "
            "closure, a partial): pass the callable itself, marl_tr.train(env=factory, ...) "
            "(also to resume: marl_tr.train(resume=DIR, env=factory))")
    task = mpe.task_name(env)
    if task is not None:
        return "parallel", mpe.TaskFactory(task)
    if ":" in env and env.partition(":")[2] not in gym.registry:
        return "parallel", _import_factory(env)
    name = env.partition(":")[2] if ":" in env else env
    if name not in gym.registry:
        import difflib

        known = [*gym.registry, *mpe.short_names()]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown environment {env!r}.{hint} Give a registered Gymnasium id with a "
            "native vector env (e.g. 'DiffGame-v0'), an MPE task (e.g. 'simple_spread') or a "
            "PettingZoo factory 'package.module:factory'"
        )
    spec = gym.registry[name]
    if spec.vector_entry_point is None:
        raise ValueError(
            f"Gymnasium env {name!r} has no native vector env declaring its agents; give a "
            "PettingZoo factory 'package.module:factory' instead"
        )
    return "native", env


def make_env(env: str | Callable[..., Any], env_kwargs: dict[str, Any], num_envs: int,
             vectorization: str = "sync",
             factory: Callable[..., Any] | None = None) -> MultiAgentVecEnv:
    """Build the batched environment for ``env``.

    Args:
        env: a Gymnasium id with a native vector env that declares its agents
            (``"DiffGame-v0"``; ``marl_tr_envs`` is imported first), an MPE task's short name
            (``"simple_spread"``, ``marl_tr_envs.mpe``), a PettingZoo ``ParallelEnv``
            factory ``"package.module:factory"``, a factory callable, or the ``env_label``
            of ``factory``.
        env_kwargs: keyword arguments for the env constructor / factory.
        num_envs: number of copies ``E``.
        vectorization: ``"sync"`` (in this process) or ``"async"`` (subprocesses) for
            PettingZoo factories; native vector envs batch their copies themselves.
        factory: the callable behind a ``"<callable ...>"`` label.
    """
    kind, target = resolve_factory(env, factory)
    if kind == "native":
        if vectorization != "sync":
            raise ValueError(
                f"vectorization={vectorization!r} applies to PettingZoo envs; env {env!r} has a "
                "native vector env that steps all its copies in one numpy call: leave "
                "vectorization='sync'")
        vec_env = gym.make_vec(target, num_envs=num_envs,
                               vectorization_mode="vector_entry_point", **env_kwargs)
        return JointVectorEnvAdapter(vec_env)
    label = env if isinstance(env, str) else env_label(env)
    build = _CheckedFactory(label, target, env_kwargs)
    if vectorization == "async":
        return AsyncParallelEnvAdapter(build, num_envs)
    if vectorization != "sync":
        raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
    return ParallelEnvAdapter(build, num_envs)
