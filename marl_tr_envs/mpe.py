"""The cooperative MPE tasks (``mpe2``, the ``[mpe]`` extra) as fast PettingZoo envs with a
safe state.

``mpe2``'s ``parallel_env`` runs its AEC env through PettingZoo's AEC-to-parallel conversion
and wrappers, one agent at a time. ``MPEParallelEnv`` drives the same ``raw_env`` (the same
scenario, world and physics) one joint step at a time: the same observations, rewards and
episode ends for the same seeds and actions (``tests/envs/test_mpe.py`` checks it against
``mpe2``'s own ``parallel_env``), in less time. It also offers ``get_state()`` /
``set_state()``: the world's positions, velocities, utterances, colours and goals, the step
count and the generator state, as numpy arrays, numbers and strings, which a checkpoint
stores without pickling (runs on these envs resume exactly).

Tasks by short name (``TASKS``; the versioned name, e.g. ``simple_spread_v3``, works too):

- ``simple_spread``: N agents (default 3) cover N landmarks; per-agent rewards mix the
  shared coverage term and the agent's own collisions (``local_ratio``, default 0.5).
- ``simple_reference``: 2 agents, each must reach a landmark only the other knows.
- ``simple_speaker_listener``: a speaker that sees the goal colour and a listener that moves.

Every task takes ``mpe2``'s keywords (``continuous_actions`` (default ``False``: discrete),
``max_cycles`` (25), ``N`` and ``local_ratio`` for ``simple_spread``, ...).

Example:
    >>> env = parallel_env("simple_spread", continuous_actions=True)   # doctest: +SKIP
    >>> obs, infos = env.reset(seed=0)                                 # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl_tr_envs.action_geometry import MPE_MOVES

__all__ = ["TASKS", "MPEParallelEnv", "TaskFactory", "parallel_env", "short_names",
           "task_name"]

#: Short name -> the ``mpe2`` module of the task.
TASKS: dict[str, str] = {
    "simple_spread": "mpe2.simple_spread_v3",
    "simple_reference": "mpe2.simple_reference_v3",
    "simple_speaker_listener": "mpe2.simple_speaker_listener_v4",
}

_INSTALL_HINT = 'the MPE tasks need the mpe2 package: pip install -e ".[mpe]" (or pip install mpe2)'


def short_names() -> list[str]:
    """Every name ``task_name`` accepts: the short names and the versioned ones."""
    return [*TASKS, *(module.rpartition(".")[2] for module in TASKS.values())]


def task_name(name: Any) -> str | None:
    """The task a short or versioned name stands for (``None``: not an MPE task name)."""
    if not isinstance(name, str):
        return None
    if name in TASKS:
        return name
    for task, module in TASKS.items():
        if name == module.rpartition(".")[2]:
            return task
    return None


def _import_task(task: str) -> Any:
    try:
        return importlib.import_module(TASKS[task])
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "mpe2":
            raise ValueError(f"env {task!r}: {_INSTALL_HINT}") from None
        raise


class MPEParallelEnv(ParallelEnv):
    """One MPE task as a PettingZoo ``ParallelEnv``, stepped one joint step at a time.

    Box actions out of ``[0, 1]`` are clipped (as ``mpe2``'s ``ClipOutOfBoundsWrapper``);
    a discrete action out of range is refused. All agents live for the whole episode, which
    ends by truncation after ``max_cycles`` steps.

    Args:
        task: a key of ``TASKS``.
        **kwargs: the task's ``raw_env`` keywords.
    """

    metadata: ClassVar[dict[str, Any]] = {"name": "mpe", "render_modes": ["rgb_array"],
                                          "is_parallelizable": True}

    def __init__(self, task: str, **kwargs: Any) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.task = task
        self.raw = _import_task(task).raw_env(**kwargs)
        missing = [name for name in ("_execute_world_step", "current_actions", "steps",
                                     "max_cycles", "scenario", "world")
                   if not hasattr(self.raw, name)]
        if missing:  # pragma: no cover - an mpe2 release that changed its internals
            raise ValueError(f"this mpe2 release's raw_env lacks {missing}; use "
                             f"'{TASKS[task]}:parallel_env' instead")
        self.render_mode = kwargs.get("render_mode")
        self.possible_agents = list(self.raw.possible_agents)
        self.agents: list[str] = []
        self.observation_spaces = {a: self.raw.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: self.raw.action_space(a) for a in self.possible_agents}
        self.state_space = self.raw.state_space
        self._obs: dict[str, np.ndarray] | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _observe(self) -> dict[str, np.ndarray]:
        self._obs = {agent: self.raw.observe(agent) for agent in self.possible_agents}
        return dict(self._obs)

    def state(self) -> np.ndarray:
        """The agents' observations concatenated (float32), as ``mpe2``'s ``state()``."""
        if self._obs is None:
            self._observe()
        return np.concatenate([self._obs[a] for a in self.possible_agents], axis=None)

    def reset(self, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        self.raw.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._observe(), {agent: {} for agent in self.agents}

    def _action(self, agent: str, action: Any) -> Any:
        space = self.action_spaces[agent]
        if isinstance(space, spaces.Discrete):
            value = int(np.asarray(action).reshape(()))
            if not 0 <= value < space.n:
                raise ValueError(f"the action of {agent} must be in [0, {space.n}), got "
                                 f"{action!r}")
            return value
        return np.clip(np.asarray(action, dtype=space.dtype), space.low, space.high)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.agents:
            raise RuntimeError("no live agents (episode over or not started); call reset()")
        missing = [agent for agent in self.agents if agent not in actions]
        if missing:
            raise ValueError(f"actions are missing for agents {missing}")
        raw = self.raw
        for index, agent in enumerate(self.possible_agents):
            raw.current_actions[index] = self._action(agent, actions[agent])
        raw._execute_world_step()
        raw.steps += 1
        truncated = raw.steps >= raw.max_cycles
        terminated = not truncated and bool(raw.scenario.is_terminal(raw.world))
        observations = self._observe()
        rewards = {agent: float(raw.rewards[agent]) for agent in self.possible_agents}
        terminations = dict.fromkeys(self.possible_agents, terminated)
        truncations = dict.fromkeys(self.possible_agents, truncated)
        infos = {agent: {} for agent in self.possible_agents}
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def action_embedding(self, agent: str) -> np.ndarray | None:
        """The geometry of an agent's discrete moves (``marl_tr_envs.action_geometry``): the
        five moves (no-op, left, right, down, up) as 2-D displacements, ``MPE_MOVES``;
        ``None`` for continuous actions or actions that are not moves (a speaker's words)."""
        space = self.action_spaces[agent]
        body = next((a for a in self.raw.world.agents if a.name == agent), None)
        if (isinstance(space, spaces.Discrete) and int(space.n) == len(MPE_MOVES)
                and body is not None and body.movable):
            return MPE_MOVES
        return None

    def render(self) -> Any:
        return self.raw.render()

    def close(self) -> None:
        self.raw.close()

    # -- a state made of plain data ------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The env's state as numpy arrays, numbers and strings (no objects).

        Holds every entity's position, velocity, utterance and colour, each agent's goals (as
        entity indices), the step count, the live agents and the generator state.
        """
        world = self.raw.world
        entities = world.entities

        def array(value: Any) -> np.ndarray | None:
            return None if value is None else np.array(value, dtype=np.float64)

        def index(entity: Any) -> int:
            return -1 if entity is None else next(
                k for k, other in enumerate(entities) if other is entity)

        return {
            "task": self.task,
            "steps": int(self.raw.steps),
            "agents": list(self.agents),
            "rng": json.dumps(self.raw.np_random.bit_generator.state),
            "positions": [array(e.state._p_pos) for e in entities],
            "velocities": [array(e.state._p_vel) for e in entities],
            "utterances": [array(getattr(e.state, "_c", None)) for e in entities],
            "colors": [array(e._color) for e in entities],
            "goals": [[index(getattr(a, "_goal_a", None)), index(getattr(a, "_goal_b", None))]
                      for a in world.agents],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore ``get_state()`` (of an env of the same task and keywords).

        Raises:
            ValueError: a state of another task or world.
        """
        world = self.raw.world
        entities = world.entities
        if state.get("task") != self.task or len(state["positions"]) != len(entities):
            raise ValueError(f"a state of {state.get('task')!r} with {len(state['positions'])} "
                             f"entities does not fit task {self.task!r} ({len(entities)})")

        def array(value: Any) -> np.ndarray | None:
            return None if value is None else np.array(value, dtype=np.float64)

        for k, entity in enumerate(entities):
            entity.state._p_pos = array(state["positions"][k])
            entity.state._p_vel = array(state["velocities"][k])
            if hasattr(entity.state, "_c"):
                entity.state._c = array(state["utterances"][k])
            entity._color = array(state["colors"][k])
        for agent, (goal_a, goal_b) in zip(world.agents, state["goals"]):
            if hasattr(agent, "_goal_a"):
                agent._goal_a = None if goal_a < 0 else entities[goal_a]
                agent._goal_b = None if goal_b < 0 else entities[goal_b]
        self.raw.np_random.bit_generator.state = json.loads(state["rng"])
        self.raw.steps = int(state["steps"])
        self.agents = list(state["agents"])
        self._obs = None


class TaskFactory:
    """A picklable factory of one task's envs: ``TaskFactory("simple_spread")(**kwargs)``."""

    def __init__(self, task: str) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.task = task

    def __call__(self, **kwargs: Any) -> MPEParallelEnv:
        return MPEParallelEnv(self.task, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        """The task's ``raw_env`` keywords (so that callers can check the kwargs' types)."""
        return inspect.signature(_import_task(self.task).raw_env)

    def __repr__(self) -> str:
        return f"TaskFactory({self.task!r})"


def parallel_env(task: str = "simple_spread", **kwargs: Any) -> MPEParallelEnv:
    """The MPE task ``task`` (a short or versioned name) as an ``MPEParallelEnv``.

    Raises:
        ValueError: an unknown task (the known ones listed) or mpe2 not installed.
    """
    name = task_name(task)
    if name is None:
        raise ValueError(f"unknown MPE task {task!r}; known: {', '.join(short_names())}")
    return MPEParallelEnv(name, **kwargs)
