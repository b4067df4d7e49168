"""Radius schedulers: the trust-region radius ``delta_i`` of every agent, every iteration.

The loop hands a scheduler a ``RadiusContext``: what it has observed this iteration, with
the expensive quantities computed only on demand. Schedulers are small picklable objects;
those with memory implement ``state_dict``/``load_state_dict`` so that runs resume exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from marl_tr.divergences.base import Divergence
from marl_tr.registry import Plugin, Registry

__all__ = [
    "RADIUS_SCHEDULERS",
    "ArrayRadiusContext",
    "PreviousSteps",
    "RadiusContext",
    "RadiusScheduler",
]


@dataclass(frozen=True)
class PreviousSteps:
    """What each agent's update reached at the previous iteration (arrays ``[n]``).

    Attributes:
        radius: the radius the agent was given.
        divergence: the divergence its accepted step actually reached (``E_s D``).
        improvement: the surrogate improvement of its accepted step.
    """

    radius: np.ndarray
    divergence: np.ndarray
    improvement: np.ndarray


class RadiusContext(ABC):
    """What the loop observes at the start of an iteration (before any agent moves).

    Attributes:
        iteration: 0-based iteration index.
        n_agents: number of agents.
        previous: the previous iteration's per-agent step records (``None`` at first).
    """

    iteration: int
    n_agents: int
    previous: PreviousSteps | None

    @abstractmethod
    def drift(self, divergence: Divergence) -> np.ndarray | None:
        """Per-agent drift ``E_s[D(pi_j^(t-1), pi_j^(t))]`` on this batch's states, ``[n]``.

        ``None`` while no previous policy exists (first iteration).
        """

    @abstractmethod
    def natural_gradient_norms(self, divergence: Divergence) -> np.ndarray:
        """``q_i = g_i^T H_i^-1 g_i`` per agent, ``[n]``.

        ``g_i``: gradient of agent i's surrogate at the current policy (batch advantages,
        no teammate correction); ``H_i``: Hessian of ``divergence`` at the current policy.
        Needs a ``smooth_at_identity`` divergence. May hold zeros (no signal).
        """

    @abstractmethod
    def price_responses(self, divergence: Divergence) -> Sequence[Callable[[float], float]]:
        """Per agent, ``c_i(price)``: the divergence its penalised step reaches at a price.

        ``c_i`` is non-increasing in ``price >= 0``; used for KKT allocation under divergences
        that are not smooth at identity (W1), by bisection on one shared price.
        """


class ArrayRadiusContext(RadiusContext):
    """A context from precomputed values: for tests, and for users driving a scheduler."""

    def __init__(
        self,
        n_agents: int,
        iteration: int = 0,
        drift: Sequence[float] | None = None,
        natural_gradient_norms: Sequence[float] | None = None,
        price_responses: Sequence[Callable[[float], float]] | None = None,
        previous: PreviousSteps | None = None,
    ) -> None:
        self.n_agents = n_agents
        self.iteration = iteration
        self.previous = previous
        self._drift = None if drift is None else np.asarray(drift, dtype=np.float64)
        self._q = (
            None if natural_gradient_norms is None
            else np.asarray(natural_gradient_norms, dtype=np.float64)
        )
        self._responses = price_responses

    def drift(self, divergence: Divergence) -> np.ndarray | None:
        return self._drift

    def natural_gradient_norms(self, divergence: Divergence) -> np.ndarray:
        if self._q is None:
            raise ValueError("this context was built without natural_gradient_norms")
        return self._q

    def price_responses(self, divergence: Divergence) -> Sequence[Callable[[float], float]]:
        if self._responses is None:
            raise ValueError("this context was built without price_responses")
        return self._responses


class RadiusScheduler(Plugin, ABC):
    """Returns ``delta_i > 0`` for every agent each iteration.

    Class attributes:
        uses: which ``RadiusContext`` quantities it reads (``"drift"``,
            ``"natural_gradient_norms"``, ``"price_responses"``, ``"previous"``), so that
            the loop can refuse a pairing or skip work.
    """

    uses: ClassVar[frozenset[str]] = frozenset()

    def reset(self, n_agents: int) -> None:
        """Called once at the start of a run."""

    @abstractmethod
    def radii(self, ctx: RadiusContext) -> np.ndarray:
        """``delta`` per agent, ``[n]`` float64, each finite and > 0."""

    def check_divergence(self, divergence: Divergence) -> None:
        """Raise ``ValueError`` if this scheduler cannot work with the loop's divergence."""

    def state_dict(self) -> dict[str, Any]:
        """Mutable state for checkpoints (empty for memoryless schedulers)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


RADIUS_SCHEDULERS: Registry[RadiusScheduler] = Registry("radius scheduler", RadiusScheduler)
