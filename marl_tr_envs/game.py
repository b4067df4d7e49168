"""The interface between a game's pure-numpy core and the API shells that serve it.

A :class:`CooperativeGame` is a one-shot, stateless, fully cooperative game: ``n_agents`` agents
act at once, every agent receives the same team reward, and nothing carries over between plays.
The Gymnasium, vector and PettingZoo shells in :mod:`marl_tr_envs.shells` hold no game logic; they
only ask the core for spaces, checked actions, rewards and the facts it reports about itself.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["CooperativeGame", "agent_names"]


def agent_names(n_agents: int) -> list[str]:
    """The agent ids of the suite: ``["agent_0", ..., "agent_{n-1}"]``."""
    return [f"agent_{index}" for index in range(n_agents)]


class CooperativeGame(abc.ABC):
    """A one-shot cooperative game with a batched, pure-numpy reward.

    Joint actions are arrays ``[..., n_agents]``: agent ``i``'s action is component ``i`` and any
    leading dimensions are a batch.
    """

    @property
    @abc.abstractmethod
    def n_agents(self) -> int:
        """The number of agents (>= 1)."""

    @abc.abstractmethod
    def agent_action_space(self, agent_index: int) -> spaces.Space:
        """A new space object for one agent's action (shells cache it; spaces carry an RNG)."""

    @abc.abstractmethod
    def joint_action_space(self) -> spaces.Space:
        """A new space object for the joint action (component ``i`` is agent ``i``'s action)."""

    @abc.abstractmethod
    def prepare_actions(
        self, actions: Any, batch_shape: tuple[int, ...] | None = None, *, clip: bool = True
    ) -> np.ndarray:
        """Check joint actions and bring them into the game's action set.

        Args:
            actions: Array-like ``[*batch_shape, n_agents]``.
            batch_shape: The required leading shape; ``None`` accepts any.
            clip: Whether out-of-bounds continuous actions are clipped onto the bounds (discrete
                games refuse out-of-range actions whatever ``clip`` says).

        Returns:
            The actions as a new or converted array ``[*batch_shape, n_agents]``.

        Raises:
            ValueError: Wrong shape, non-numeric or non-finite entries, or (discrete games) a
                non-integer or out-of-range action. Nothing is modified before it is raised.
        """

    @abc.abstractmethod
    def team_reward(self, actions: np.ndarray) -> np.ndarray:
        """The team reward of actions already passed through :meth:`prepare_actions`.

        Args:
            actions: ``[..., n_agents]``.

        Returns:
            float64 ``[...]``.
        """

    @abc.abstractmethod
    def info(self) -> dict[str, Any]:
        """Facts the game reports about itself (a new dict on every call)."""

    def reward(self, actions: Any, *, clip: bool = False) -> np.ndarray:
        """The team reward of joint actions ``[..., n_agents]``, as float64 ``[...]``.

        Args:
            actions: Array-like ``[..., n_agents]``.
            clip: Clip continuous actions onto the action bounds first, as the environments do.
                By default the game's formula is evaluated at the actions as given.

        Raises:
            ValueError: As :meth:`prepare_actions`.
        """
        return self.team_reward(self.prepare_actions(actions, clip=clip))

    def agent_rewards(self, team_rewards: np.ndarray) -> np.ndarray:
        """Per-agent rewards ``[..., n_agents]`` from team rewards ``[...]``.

        Every agent of a cooperative game receives the team reward.
        """
        team_rewards = np.asarray(team_rewards, dtype=np.float64)
        return np.repeat(team_rewards[..., None], self.n_agents, axis=-1)
