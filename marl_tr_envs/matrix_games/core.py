"""Cooperative matrix games with a local-optimum trap (Claus and Boutilier, 1998).

Every agent receives the payoff of the joint action. Two classic 2-agent, 3-action instances:

* the **climbing game**: the optimum (0, 0) pays 11 but sits next to -30 penalties, so
  independent learners drift to the safe but worse equilibrium (1, 1) (payoff 7);
* the **penalty game**: two optima (0, 0) and (2, 2) pay 10, miscoordinating between them costs
  ``k <= 0``, and (1, 1) pays a safe 2.

Payoffs as in Claus and Boutilier (1998), "The Dynamics of Reinforcement Learning in Cooperative
Multiagent Systems" (rows: agent 0's action, columns: agent 1's). Some later code bases list the
climbing game with the 6 moved to entry (2, 1); the original has it at (1, 2).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from marl_tr_envs._validation import check_finite
from marl_tr_envs.game import CooperativeGame

__all__ = ["CLIMBING_PAYOFF", "ClimbingGame", "MatrixGame", "PenaltyGame", "penalty_payoff"]

#: Climbing game payoff [agent 0 action, agent 1 action].
CLIMBING_PAYOFF: tuple[tuple[float, ...], ...] = ((11, -30, 0), (-30, 7, 6), (0, 0, 5))

_PROBABILITY_TOLERANCE = 1e-6


def penalty_payoff(k: float) -> tuple[tuple[float, ...], ...]:
    """The penalty game's payoff ``[[10, 0, k], [0, 2, 0], [k, 0, 10]]``."""
    return ((10.0, 0.0, k), (0.0, 2.0, 0.0), (k, 0.0, 10.0))


class MatrixGame(CooperativeGame):
    """A one-shot cooperative game given by its payoff tensor.

    Args:
        payoff: Finite payoff ``[K_0, ..., K_{n-1}]``: entry ``payoff[a_0, ..., a_{n-1}]`` is the
            team reward of the joint action; agent ``i`` has ``K_i >= 1`` discrete actions.

    Raises:
        ValueError: A payoff that is not a finite real array with at least one dimension.
    """

    def __init__(self, *, payoff: Any) -> None:
        try:
            array = np.array(payoff, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"payoff must be a real array [K_0, ..., K_(n-1)], got {payoff!r}"
            ) from None
        if array.ndim < 1 or array.size == 0:
            raise ValueError(
                f"payoff must have one dimension per agent and at least one action each, got "
                f"shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"payoff must be finite, got {payoff!r}")
        array.setflags(write=False)
        self._payoff = array

    @property
    def n_agents(self) -> int:
        """The number of agents (the payoff's number of dimensions)."""
        return self._payoff.ndim

    @property
    def payoff(self) -> np.ndarray:
        """The payoff tensor ``[K_0, ..., K_{n-1}]`` (read-only)."""
        return self._payoff

    @property
    def action_counts(self) -> tuple[int, ...]:
        """``(K_0, ..., K_{n-1})``."""
        return self._payoff.shape

    def __repr__(self) -> str:
        return f"{type(self).__name__}(payoff={self._payoff.tolist()})"

    # ----------------------------------------------------------------------------- spaces
    def agent_action_space(self, agent_index: int) -> spaces.Discrete:
        """``Discrete(K_i)``."""
        return spaces.Discrete(self._payoff.shape[agent_index])

    def joint_action_space(self) -> spaces.MultiDiscrete:
        """``MultiDiscrete([K_0, ..., K_{n-1}])``; component ``i`` is agent ``i``'s action."""
        return spaces.MultiDiscrete(list(self._payoff.shape))

    # ----------------------------------------------------------------------------- rewards
    def prepare_actions(
        self, actions: Any, batch_shape: tuple[int, ...] | None = None, *, clip: bool = True
    ) -> np.ndarray:
        """Check joint actions ``[*batch_shape, n]``: integers with ``0 <= a_i < K_i``.

        Discrete actions are never clipped (``clip`` is ignored): an out-of-range action is an
        error. Integer-valued floats are accepted. Returns int64.
        """
        n = self.n_agents
        expected = "[..., n]" if batch_shape is None else str([*batch_shape, n])
        array = np.asarray(actions)
        if array.dtype.kind not in "iuf":
            raise ValueError(
                f"actions must be integers of shape {expected} with n = {n}, got {actions!r}"
            )
        shape_ok = (
            array.ndim >= 1 and array.shape[-1] == n
            if batch_shape is None
            else array.shape == (*batch_shape, n)
        )
        if not shape_ok:
            raise ValueError(
                f"actions must have shape {expected} with n = {n}, got shape {array.shape}"
            )
        if array.dtype.kind == "f" and not (np.isfinite(array) & (array == np.round(array))).all():
            raise ValueError(f"actions must be finite whole numbers, got {actions!r}")
        counts = np.asarray(self._payoff.shape)
        if ((array < 0) | (array >= counts)).any():
            allowed = ", ".join(f"agent_{i}: 0..{k - 1}" for i, k in enumerate(counts))
            raise ValueError(f"actions out of range ({allowed}), got {actions!r}")
        return array.astype(np.int64)

    def team_reward(self, actions: np.ndarray) -> np.ndarray:
        """The payoff of prepared joint actions ``[..., n]``; float64 ``[...]``."""
        return self._payoff[tuple(np.moveaxis(actions, -1, 0))]

    def expected_reward(self, probs_per_agent: Sequence[Any]) -> np.ndarray | float:
        """Exact expected payoff of independent mixed strategies.

        ``E[r] = sum_a payoff[a] prod_i p_i(a_i)``.

        Args:
            probs_per_agent: One probability vector per agent, ``[..., K_i]`` (leading batch
                dimensions broadcast).

        Returns:
            The expected payoff ``[...]`` (a float for 1-D inputs).

        Raises:
            ValueError: Not one vector per agent, wrong lengths, negative or non-finite entries,
                or vectors that do not sum to 1 (tolerance 1e-6).
        """
        if isinstance(probs_per_agent, np.ndarray) and probs_per_agent.ndim == 1:
            probs_per_agent = [probs_per_agent]
        if len(probs_per_agent) != self.n_agents:
            raise ValueError(
                f"probs_per_agent must hold one probability vector per agent "
                f"(n = {self.n_agents}), got {len(probs_per_agent)}"
            )
        checked = []
        for index, probs in enumerate(probs_per_agent):
            name = f"probs_per_agent[{index}]"
            array = np.asarray(probs, dtype=np.float64)
            count = self._payoff.shape[index]
            if array.ndim < 1 or array.shape[-1] != count:
                raise ValueError(f"{name} must have shape [..., {count}], got {array.shape}")
            if not np.isfinite(array).all() or (array < 0).any():
                raise ValueError(f"{name} must be finite and >= 0, got {probs!r}")
            if (np.abs(array.sum(axis=-1) - 1.0) > _PROBABILITY_TOLERANCE).any():
                raise ValueError(f"{name} must sum to 1, got {probs!r}")
            checked.append(array)
        letters = string.ascii_letters[: self.n_agents]
        subscripts = ",".join(f"...{letter}" for letter in letters) + f",{letters}->..."
        value = np.einsum(subscripts, *checked, self._payoff)
        return float(value) if np.ndim(value) == 0 else value

    # ----------------------------------------------------------------------------- the truth
    def optimal_joint_actions(self) -> list[tuple[int, ...]]:
        """Every joint action with the highest payoff."""
        best = self._payoff.max()
        return [tuple(int(a) for a in index) for index in np.argwhere(self._payoff == best)]

    def pure_nash_equilibria(self) -> list[tuple[int, ...]]:
        """Joint actions where no agent gains by changing its own action alone."""
        is_best_response = np.ones(self._payoff.shape, dtype=bool)
        for axis in range(self.n_agents):
            is_best_response &= self._payoff >= self._payoff.max(axis=axis, keepdims=True)
        return [tuple(int(a) for a in index) for index in np.argwhere(is_best_response)]

    def info(self) -> dict[str, Any]:
        """``optimal_joint_actions``, ``optimal_reward`` and ``pure_nash_equilibria`` (new dict)."""
        return {
            "optimal_joint_actions": self.optimal_joint_actions(),
            "optimal_reward": float(self._payoff.max()),
            "pure_nash_equilibria": self.pure_nash_equilibria(),
        }


class ClimbingGame(MatrixGame):
    """The climbing game: payoff ``[[11, -30, 0], [-30, 7, 6], [0, 0, 5]]`` (2 agents, 3 actions).

    The optimum (0, 0) pays 11; the other pure equilibrium (1, 1) pays 7. No parameters.
    """

    def __init__(self) -> None:
        super().__init__(payoff=CLIMBING_PAYOFF)


class PenaltyGame(MatrixGame):
    """The penalty game: payoff ``[[10, 0, k], [0, 2, 0], [k, 0, 10]]`` (2 agents, 3 actions).

    Args:
        k: The miscoordination penalty, a finite number ``<= 0`` (default -10). The more
            negative, the stronger the pull towards the safe equilibrium (1, 1) paying 2.

    Raises:
        ValueError: ``k`` positive or not finite.
    """

    def __init__(self, *, k: float = -10.0) -> None:
        k = check_finite("k", k)
        if k > 0:
            raise ValueError(f"k must be a finite number <= 0 (a penalty), got {k!r}")
        self._k = k
        super().__init__(payoff=penalty_payoff(k))

    @property
    def k(self) -> float:
        """The miscoordination penalty."""
        return self._k

    def __repr__(self) -> str:
        return f"PenaltyGame(k={self._k})"
