"""Radius schedulers: the trust-region radius ``delta_i`` of every agent, every iteration.

The loop hands a scheduler a ``RadiusContext``: what it has observed this iteration, with
the expensive quantities computed only on demand. Schedulers are small picklable objects;
those with memory implement ``state_dict``/``load_state_dict`` so that runs resume exactly.

Besides the interface, this module holds the checks every scheduler shares (added after
the skeleton; the original public names are unchanged):

- ``RadiusInputWarning``: the warning category for context values a scheduler repairs
  (a negative drift, a non-finite ``q_i``). A ``UserWarning``, not a ``RuntimeWarning``.
- ``agent_array``: a context quantity as a checked float64 ``[n]`` array, with a stated
  policy for negative and non-finite entries.
- ``check_radii``: the output contract (float64 ``[n]``, finite, > 0);
  ``RadiusScheduler.checked_radii`` applies it to any scheduler, built-in or user-written.
- ``agent_count``: ``ctx.n_agents`` checked to be an integer >= 1.
- ``check_divergence_option`` / ``build_divergence`` / ``DivergenceOption``: a scheduler's
  ``divergence`` option, kept as the user gave it (config string or instance, so that
  ``repr``/``spec()`` stay readable) and resolved lazily through
  ``marl_tr.divergences.DIVERGENCES`` (so that construction does not depend on import
  order).
- ``ArrayRadiusContext`` now checks that its arrays have ``n_agents`` entries.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from marl_tr.divergences.base import Divergence
from marl_tr.registry import Plugin, Registry, split_spec

__all__ = [
    "RADIUS_QUANTITIES",
    "RADIUS_SCHEDULERS",
    "ArrayRadiusContext",
    "DivergenceOption",
    "PreviousSteps",
    "RadiusContext",
    "RadiusInputWarning",
    "RadiusScheduler",
    "agent_array",
    "agent_count",
    "build_divergence",
    "check_below_supremum",
    "check_divergence_option",
    "check_radii",
]


class RadiusInputWarning(UserWarning):
    """A context value a scheduler could not use as given and repaired (e.g. set to 0)."""


def agent_count(ctx: RadiusContext) -> int:
    """``ctx.n_agents`` checked to be an integer >= 1."""
    n = ctx.n_agents
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"RadiusContext.n_agents must be an integer >= 1, got {n!r}")
    return int(n)


def agent_array(
    values: Any,
    n: int,
    name: str,
    *,
    negative: Literal["warn", "error", "zero"] = "warn",
    nonfinite: Literal["warn", "error", "zero"] = "warn",
) -> np.ndarray:
    """A per-agent context quantity as a float64 array ``[n]``.

    Args:
        values: anything ``np.asarray`` reads as ``n`` real numbers.
        n: number of agents.
        name: what the values are, for messages (``"drift"``).
        negative: ``"warn"``: a negative entry is replaced by 0 with a
            ``RadiusInputWarning``; ``"zero"``: replaced by 0 silently (a legitimate value
            that means "nothing", e.g. a step that did not improve); ``"error"``:
            ``ValueError``.
        nonfinite: the same choice for NaN and +-inf entries.

    Returns:
        A fresh float64 array ``[n]`` whose entries are finite and >= 0.

    Raises:
        ValueError: wrong shape, non-real values, or a bad entry under ``"error"``.
    """
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be {n} real numbers, got {values!r}") from exc
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one value per agent), got {array.shape}")
    for label, bad, policy in (
        ("non-finite", ~np.isfinite(array), nonfinite),
        ("negative", np.isfinite(array) & (array < 0), negative),
    ):
        if bad.any():
            where = ", ".join(f"agent {i}: {float(array[i])!r}" for i in np.flatnonzero(bad))
            if policy == "error":
                raise ValueError(f"{name} has {label} values ({where}); expected finite >= 0")
            if policy == "warn":
                warnings.warn(
                    f"{name} has {label} values ({where}); treating them as 0",
                    RadiusInputWarning,
                    stacklevel=3,
                )
            array[bad] = 0.0
    return array


def check_radii(values: Any, n: int, owner: str = "radius scheduler") -> np.ndarray:
    """The radius contract: float64 ``[n]``, every entry finite and > 0.

    Raises:
        ValueError: naming ``owner`` and the offending agents.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{owner} returned radii of shape {array.shape}, expected ({n},)")
    bad = ~(np.isfinite(array) & (array > 0))
    if bad.any():
        where = ", ".join(f"agent {i}: {float(array[i])!r}" for i in np.flatnonzero(bad))
        raise ValueError(f"{owner} returned radii that are not finite and > 0 ({where})")
    return array


def check_divergence_option(value: Any, name: str = "divergence") -> str | Divergence:
    """Check a ``divergence`` option: a config string (``"w1"``, ``"kl"``) or an instance.

    Only the syntax of a string is checked here; the name is looked up on first use
    (``build_divergence``), so that a scheduler can be configured before the module
    registering a user's divergence is imported.
    """
    if isinstance(value, Divergence):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{name} must be a divergence config string such as 'w1' or 'kl' (see "
            f"marl_tr.divergences.DIVERGENCES) or a Divergence instance, got {value!r}"
        )
    split_spec(value)  # raises ValueError on bad key=value syntax
    return value.strip()


def check_below_supremum(name: str, radius: float, divergence: Divergence) -> None:
    """``ValueError`` where a radius option is at or above the largest value the trust
    region's divergence can take (``Divergence.supremum``): such a radius never binds, and
    no step length reaches it."""
    if radius >= divergence.supremum:
        kind = divergence.spec().split(":")[0]
        raise ValueError(
            f"{name}={radius!r} is at or above the largest value {kind!r} can take "
            f"({divergence.supremum:.6g}): the trust region would never bind; give {name} < "
            f"{divergence.supremum:.6g}")


def build_divergence(spec: str | Divergence) -> Divergence:
    """Resolve a ``divergence`` option through ``marl_tr.divergences.DIVERGENCES``.

    Raises:
        UnknownNameError: (a ``ValueError``) for an unknown name, listing the available ones.
    """
    from marl_tr.divergences import DIVERGENCES  # imported here: registration order

    return DIVERGENCES.build(spec)


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
        n = agent_count(self)
        given: dict[str, Any] = {
            "drift": self._drift,
            "natural_gradient_norms": self._q,
            "price_responses": price_responses,
        }
        if previous is not None:
            given.update({f"previous.{k}": v for k, v in vars(previous).items()})
        for label, value in given.items():
            if value is None:
                continue
            size = np.shape(value)[0] if np.ndim(value) >= 1 else 1
            if size != n:
                raise ValueError(f"{label} has {size} entries but n_agents is {n}")

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


class DivergenceOption:
    """Mixin for schedulers with a ``divergence`` option.

    The option stays what the user gave (a config string such as ``"w1"``, or an instance)
    so that ``repr``/``spec()`` remain readable; ``resolved_divergence()`` builds it on first
    use and caches it (the cache is not pickled).
    """

    divergence: str | Divergence

    def resolved_divergence(self) -> Divergence:
        """The ``divergence`` option as a ``Divergence`` (built once, then cached)."""
        cached = self.__dict__.get("_resolved_divergence")
        if cached is None or cached[0] != self.divergence:
            cached = (self.divergence, build_divergence(self.divergence))
            self.__dict__["_resolved_divergence"] = cached
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_resolved_divergence", None)
        return state


#: What a ``RadiusContext`` gives a scheduler (``RadiusScheduler.uses`` names some of them).
RADIUS_QUANTITIES = frozenset({"drift", "natural_gradient_norms", "price_responses",
                               "previous"})


class RadiusScheduler(Plugin, ABC):
    """Returns ``delta_i > 0`` for every agent each iteration.

    Class attributes:
        uses: which ``RadiusContext`` quantities it reads (``"drift"``,
            ``"natural_gradient_norms"``, ``"price_responses"``, ``"previous"``), so that
            the loop can refuse a pairing or skip work.
    """

    uses: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = sorted(set(cls.uses) - RADIUS_QUANTITIES)
        if unknown:
            raise TypeError(f"radius scheduler {cls.__name__}: uses names {unknown}, which no "
                            f"RadiusContext gives; it gives {', '.join(sorted(RADIUS_QUANTITIES))}")

    @property
    def autograd_free(self) -> bool:
        """Whether computing radii never needs autograd (see ``Divergence.autograd_free``).
        False unless a scheduler says so."""
        return False

    def reset(self, n_agents: int) -> None:
        """Called once at the start of a run."""

    def radii_batch(self, contexts: Sequence[RadiusContext]) -> np.ndarray:
        """``radii`` of several independent replicas, ``[R, n]``. Override to vectorise; the
        result must equal the per-replica calls."""
        return np.stack([np.asarray(self.radii(ctx), dtype=np.float64) for ctx in contexts])

    @abstractmethod
    def radii(self, ctx: RadiusContext) -> np.ndarray:
        """``delta`` per agent, ``[n]`` float64, each finite and > 0."""

    def checked_radii(self, ctx: RadiusContext) -> np.ndarray:
        """``radii(ctx)`` checked against the contract (``check_radii``): for the loop."""
        return check_radii(self.radii(ctx), agent_count(ctx), owner=repr(self))

    def check_divergence(self, divergence: Divergence) -> None:
        """Raise ``ValueError`` if this scheduler cannot work with the loop's divergence."""

    def state_dict(self) -> dict[str, Any]:
        """Mutable state for checkpoints (empty for memoryless schedulers)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


RADIUS_SCHEDULERS: Registry[RadiusScheduler] = Registry("radius scheduler", RadiusScheduler)
