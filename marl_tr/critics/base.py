"""Critics with action values, beside the loop's state-value critic (registry ``CRITICS``).

The loop always trains a centralised ``V(s)`` (``marl_tr.training.critic``) for its
advantages. A solver that needs the advantage of actions *not taken* (the exact W1 dual,
Theorem 1: ``A(s, a'_i, a_-i)`` at candidate actions ``a'_i``) needs ``Q(s, a)`` as well; a
critic plug-in provides it:

- ``v``: no action values (the default; V alone);
- ``q``: a learned centralised ``Q_phi(s, a)``, trained on eq. 19's TD error towards
  ``r + gamma V_target(s')`` (``marl_tr.critics.learned``);
- ``oracle_q``: ``Q`` read from the env's analytic core (one-step games): an ORACLE, to
  separate critic error from the update rule in studies (``marl_tr.critics.oracle``).

``ActionValues`` serves one update position: for agent ``i`` (per replica), the values
``M_factor * (Q(s, a'_i, a_-i) - V(s))`` at candidate actions ``a'_i``, with the teammates'
batch actions ``a_-i`` held fixed and eq. 15's teammate factor applied.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

from marl_tr.registry import Plugin, Registry

__all__ = ["CRITICS", "ActionCritic", "ActionValues", "JointActionEncoder"]


class JointActionEncoder:
    """Joint actions as network inputs: Box actions clipped to their bounds and scaled to
    ``[-1, 1]`` (per dimension where both bounds are finite), Discrete actions one-hot.

    Args:
        action_spaces: per agent, ``Box`` (1-D) or ``Discrete``.
    """

    def __init__(self, action_spaces: Sequence[spaces.Space]) -> None:
        self.parts: list[tuple[str, Any]] = []
        for space in action_spaces:
            if isinstance(space, spaces.Discrete):
                self.parts.append(("discrete", int(space.n)))
            else:
                low = np.asarray(space.low, dtype=np.float64)
                high = np.asarray(space.high, dtype=np.float64)
                self.parts.append(("box", (low, high, np.isfinite(low) & np.isfinite(high))))
        self.size = sum(self.width(i) for i in range(len(self.parts)))
        self._constants: dict[tuple[int, torch.dtype], tuple[Tensor, ...]] = {}

    def encode_agent(self, agent: int, actions: Tensor) -> Tensor:
        """Agent ``agent``'s actions ``[..., d]`` (Box) or ``[...]`` (Discrete) -> features."""
        kind, info = self.parts[agent]
        if kind == "discrete":
            return torch.nn.functional.one_hot(actions.long(), info).to(torch.get_default_dtype())
        lo, hi, centre, half = self._box_constants(agent, actions.dtype)
        clipped = torch.maximum(torch.minimum(actions, hi), lo)
        return (clipped - centre) / half

    def _box_constants(self, agent: int, dtype: torch.dtype) -> tuple[Tensor, ...]:
        """``(lo, hi, centre, half)`` of Box agent ``agent`` in ``dtype`` (made once)."""
        key = (agent, dtype)
        if key not in self._constants:
            low, high, finite = self.parts[agent][1]
            with np.errstate(invalid="ignore"):  # inf - inf where a bound is infinite
                centre, half = 0.5 * (low + high), 0.5 * (high - low)
            self._constants[key] = tuple(torch.as_tensor(x, dtype=dtype) for x in (
                np.where(finite, low, -np.inf), np.where(finite, high, np.inf),
                np.where(finite, centre, 0.0), np.where(finite, half, 1.0)))
        return self._constants[key]

    def columns(self, agent: int) -> slice:
        """Agent ``agent``'s feature columns in ``encode``'s output."""
        start = sum(self.width(i) for i in range(agent))
        return slice(start, start + self.width(agent))

    def width(self, agent: int) -> int:
        """Agent ``agent``'s number of features."""
        kind, info = self.parts[agent]
        return info if kind == "discrete" else len(info[0])

    def encode(self, joint: Sequence[Tensor]) -> Tensor:
        """Per-agent actions (leading shapes equal) -> ``[..., size]``."""
        return torch.cat([self.encode_agent(i, a).to(torch.get_default_dtype())
                          for i, a in enumerate(joint)], dim=-1)


class ActionCritic(Plugin, ABC):
    """A critic the loop trains beside ``V(s)``; with ``action_values``, it scores actions.

    Class attributes:
        action_values: it gives ``Q(s, a)`` (``q_values``).
        oracle: its values come from the env's analytic core, not from data.
        autograd_free: ``fit`` needs no autograd.
    """

    action_values: ClassVar[bool] = False
    oracle: ClassVar[bool] = False
    autograd_free: ClassVar[bool] = True

    def check_env(self, env: Any) -> None:
        """Raise ``ValueError`` if this critic cannot serve ``env`` (a ``MultiAgentVecEnv``)."""

    def reset(self, env: Any, replicas: int, seed: int, gamma: float, value_critic: Any) -> None:
        """Called once before training: build networks for ``env``'s spaces (a
        ``MultiAgentVecEnv``), ``R`` replicas (replica ``r`` seeded from ``seed + r``), beside
        the loop's state-value critic."""

    def q_values(self, states: Tensor, joint: Sequence[Tensor]) -> Tensor:
        """``Q(s, a)`` for rows ``[R*N, S]`` and per-agent actions (rows ``R*N``, replica-major)
        -> ``[R*N]``."""
        raise NotImplementedError(f"critic {self.spec()!r} has no action values")

    def batch_features(self, states: Tensor, joint: Sequence[Tensor]) -> Any:
        """What ``candidate_q`` needs of a batch (rows ``[R*B]``), made once per iteration:
        by default the states and the per-agent actions themselves."""
        return states, list(joint)

    def candidate_q(self, features: Any, agents: np.ndarray, candidates: Tensor) -> Tensor:
        """``Q(s_b, a'_k, a_-i,b)`` at candidate actions ``[R*B, K, ...]`` of the agent
        ``agents[r]`` that replica ``r`` updates, the others' batch actions held fixed
        (``features`` from ``batch_features``) -> ``[R*B, K]``."""
        states, joint = features
        rows, k = candidates.shape[:2]
        flat = candidates.reshape(rows * k, *candidates.shape[2:])
        replica_of_row = torch.arange(rows * k) // (rows // len(agents) * k)
        inputs = []
        for agent, actions in enumerate(joint):
            taken = actions.repeat_interleave(k, dim=0)
            updated = torch.from_numpy(agents == agent)[replica_of_row]
            if bool(updated.any()):
                mask = updated.view(-1, *([1] * (taken.dim() - 1)))
                taken = torch.where(mask, flat.to(taken.dtype), taken)
            inputs.append(taken)
        return self.q_values(states.repeat_interleave(k, dim=0), inputs).view(rows, k)

    def fit(self, batch: Any, value_critic: Any) -> list[float]:
        """Learn from a batch (after the agents' updates); the per-replica loss (NaN: none)."""
        return [float("nan")] * batch.replicas

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


CRITICS: Registry[ActionCritic] = Registry("critic", ActionCritic)


@CRITICS.register("v")
class ValueOnly(ActionCritic):
    """No action values: the loop's ``V(s)`` alone (every solver but ``ot_dual``)."""


class ActionValues:
    """The values of one agent's candidate actions at one update position (``R`` replicas).

    ``values(candidates)[row, k] = factor[row] * (Q(s_row, a'_k, a_-i,row) - V(s_row))``.

    Args:
        critic: a critic with action values.
        states: ``[R*B, S]`` global states of the batch's samples.
        joint: per agent, the batch actions ``[R*B, ...]``.
        agents: ``[R]`` the agent replica ``r`` updates.
        baseline: ``V(s)`` per sample ``[R*B]``.
        factor: eq. 15's teammate product per sample ``[R*B]`` (``None``: 1).
        action_space: the updated agent's action space (the same in every replica).
        features: ``critic.batch_features(states, joint)`` when already made (the loop makes
            them once per iteration for every position); ``None``: made here.
    """

    def __init__(self, critic: ActionCritic, states: Tensor, joint: Sequence[Tensor],
                 agents: np.ndarray, baseline: Tensor, factor: Tensor | None,
                 action_space: spaces.Space, features: Any = None) -> None:
        self.critic = critic
        self.action_space = action_space
        self.agents = np.asarray(agents)
        self.baseline = baseline
        self.factor = factor
        self.replicas = len(self.agents)
        self.batch_size = states.shape[0] // self.replicas
        self.features = critic.batch_features(states, joint) if features is None else features

    def __call__(self, candidates: Tensor) -> Tensor:
        """Candidate actions of the updated agent ``[R*B, K, ...]`` -> values ``[R*B, K]``."""
        with torch.no_grad():
            q = self.critic.candidate_q(self.features, self.agents, candidates)
            advantage = q - self.baseline.unsqueeze(1)
            return advantage if self.factor is None else advantage * self.factor.unsqueeze(1)
