"""Named algorithms: settings of the one sequential loop (registry ``PRESETS``).

A preset fills the preset fields of ``TrainConfig`` (divergence, radius, solver, advantage
normalisation, critic optimiser, agent order) that the user left unset. Nothing else differs
between algorithms: HATRPO and W-MATRPO run the same loop.

The paper's Table 2 gives: trust region delta = 0.1, CAATR constant C = 0.02 (3 and 5
agents), 0.10 (7), 0.15 (9), critic learning rate 0.2, batch 30, 4000 iterations, initial
policy N(1.5, 0.5^2). It gives no CAATR epsilon bounds, no primal-dual learning rates or
inner-step count and no C for other team sizes: those are our documented choices.

Multi-step envs (profile ``multi_step``, e.g. MPE): a preset's radius defaults to
``MULTI_STEP_DELTA`` (KL 0.01, HARL's default ``kl_threshold``; W1 0.05, our untuned choice)
instead of Table 2's 0.1, and the critic settings (optimiser, learning rate) are left to the
profile (Adam at 5e-4, as HARL's tuned MPE settings). CAATR's C keeps Table 2's values, which
were set for the differential game.
"""

from __future__ import annotations

import difflib
import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from marl_tr.config import LAYERED_FIELDS
from marl_tr.registry import Plugin, Registry, format_value
from marl_tr.solvers import SOLVERS as SOLVER_CHECK
from marl_tr.validation import check_choice, check_positive

__all__ = ["MULTI_STEP_DELTA", "PRESETS", "TABLE2_CAATR_C", "Preset", "table2_caatr_c"]

#: The paper's Table 2 CAATR constants by number of agents.
TABLE2_CAATR_C: dict[int, float] = {3: 0.02, 5: 0.02, 7: 0.10, 9: 0.15}


def table2_caatr_c(n_agents: int) -> float:
    """Table 2's C for ``n_agents``; other team sizes take the nearest listed size's C
    (ties go to the smaller team): our choice, the paper lists 3, 5, 7 and 9 only."""
    nearest = min(TABLE2_CAATR_C, key=lambda k: (abs(k - n_agents), k))
    return TABLE2_CAATR_C[nearest]


class Preset(Plugin, ABC):
    """A named set of values for the preset fields of ``TrainConfig``.

    ``settings(n_agents)`` may also accept ``action_kind`` (``"continuous"`` or
    ``"discrete"``, the team's actions) to fit its parts to the action space, and ``profile``
    (``"one_step"``, ``"multi_step"``, ...: the kind of env, see ``marl_tr.profiles``) to
    state its settings for it. It may set profile fields too (``num_envs``, ...): a preset
    wins over the profile.
    """

    summary: ClassVar[str] = ""

    @abstractmethod
    def settings(self, n_agents: int) -> dict[str, Any]:
        """Values of preset fields for a team of ``n_agents``."""

    def settings_for(self, n_agents: int, action_kind: str,
                     profile: str = "one_step") -> dict[str, Any]:
        """``settings`` for a team whose actions are ``action_kind``, on an env of
        ``profile`` (each passed on when the preset's ``settings`` takes it)."""
        accepted = inspect.signature(self.settings).parameters
        kwargs = {name: value for name, value in
                  (("action_kind", action_kind), ("profile", profile)) if name in accepted}
        settings = self.settings(n_agents, **kwargs)
        if not isinstance(settings, dict):
            raise ValueError(f"preset {self.spec()!r}: settings() must return a dict of field "
                             f"values, got {type(settings).__name__}")
        unknown = sorted(set(settings) - set(LAYERED_FIELDS))
        if unknown:
            hints = [f" (did you mean {close[0]!r}?)" if close else "" for close in
                     (difflib.get_close_matches(str(k), LAYERED_FIELDS, n=1) for k in unknown)]
            named = ", ".join(f"{key!r}{hint}" for key, hint in zip(unknown, hints))
            raise ValueError(f"preset {self.spec()!r} sets {named}, which a preset cannot set; "
                             f"it sets {', '.join(LAYERED_FIELDS)}")
        return settings


PRESETS: Registry[Preset] = Registry("preset", Preset)

_COMMON = {"normalize_advantages": True, "critic_lr": 0.2, "critic_optimizer": "sgd",
           "agent_order": "random"}
#: Multi-step envs: the critic's optimiser and learning rate come from the profile.
_COMMON_MULTI_STEP = {"normalize_advantages": True, "agent_order": "random"}

#: The radius of a preset on a multi-step env when its ``delta`` is not given, by divergence
#: family (Table 2's 0.1 was set for the one-step game).
MULTI_STEP_DELTA: dict[str, float] = {"kl": 0.01, "w1": 0.05}


def _radius(delta: float | None, profile: str, family: str) -> float:
    """The preset's ``delta``, else Table 2's 0.1 (one-step) or ``MULTI_STEP_DELTA``."""
    if delta is not None:
        return delta
    return 0.1 if profile == "one_step" else MULTI_STEP_DELTA[family]


def _delta_arg(delta: float | None) -> float | None:
    return None if delta is None else check_positive("delta", delta)


def _caatr(C: float | None, n_agents: int, drift: str, initial_delta: float) -> str:
    value = table2_caatr_c(n_agents) if C is None else C
    return (f"caatr:C={value!r},divergence={format_value(drift)},"
            f"initial_delta={initial_delta!r}")


class _TrustRegionPreset(Preset):
    """Shared shape of the paper's presets: a divergence, a radius rule and a solver."""

    family: ClassVar[str] = "kl"  # the divergence family of the default multi-step radius
    delta: float | None

    @abstractmethod
    def _parts(self, n_agents: int, action_kind: str, delta: float) -> tuple[str, str, str]:
        """(divergence, radius, solver) config strings for the team's ``action_kind`` and
        the radius ``delta``."""

    def settings(self, n_agents: int, action_kind: str = "continuous",
                 profile: str = "one_step") -> dict[str, Any]:
        delta = _radius(self.delta, profile, self.family)
        divergence, radius, solver = self._parts(n_agents, action_kind, delta)
        common = _COMMON if profile == "one_step" else _COMMON_MULTI_STEP
        return {"divergence": divergence, "radius": radius, "solver": solver, **common}


@PRESETS.register("hatrpo")
class HATRPO(_TrustRegionPreset):
    """HATRPO (Kuba et al. 2021): KL(old||new) <= delta, natural gradient with HARL's line
    search, a fresh random agent order per iteration.

    Args:
        delta: the KL radius (default: Table 2's 0.1; multi-step 0.01).
    """

    summary = "KL trust region, fixed radius, natural gradient + line search"

    def __init__(self, delta: float | None = None) -> None:
        self.delta = _delta_arg(delta)

    def _parts(self, n_agents: int, action_kind: str, delta: float) -> tuple[str, str, str]:
        return "kl", f"fixed:delta={delta!r}", "natural_gradient"


@PRESETS.register("hatrpo-caatr")
class HATRPOCAATR(HATRPO):
    """HATRPO with CAATR radii (eqs. 13-14): KL constraint, radius C / (teammate W1 drift +
    eps).

    Args:
        delta: CAATR's radius before any drift exists (default: as the fixed-radius
            preset's ``delta``).
        C: CAATR constant; default Table 2's value for the team size.
    """

    summary = "KL trust region, CAATR radius, natural gradient + line search"

    def __init__(self, delta: float | None = None, C: float | None = None) -> None:
        super().__init__(delta)
        self.C = None if C is None else check_positive("C", C)

    def _parts(self, n_agents: int, action_kind: str, delta: float) -> tuple[str, str, str]:
        return "kl", _caatr(self.C, n_agents, "w1", delta), "natural_gradient"


#: W1 choices of the W-MATRPO presets.
W1_CHOICES = ("auto", "exact", "bound")


@PRESETS.register("wmatrpo")
class WMATRPO(_TrustRegionPreset):
    """W-MATRPO with a fixed radius: a W1 constraint enforced by the primal-dual solver
    (eqs. 16-18), which does not guarantee the radius (see ``exact_radius``, ``wmatrpo-tr``).

    Args:
        delta: the W1 radius (default: Table 2's 0.1; multi-step 0.05).
        w1: ``"auto"`` (default: the paper's eq. 31, ``|dm| + |ds|``, an upper bound of W1
            as the paper computed it, for Gaussian policies; the exact W1 for categorical
            ones, which eq. 31 does not cover), ``"bound"`` (eq. 31 always: Gaussians only)
            or ``"exact"`` (the exact W1).
        solver: the solver config string (default: the paper's plain primal-dual).
    """

    summary = "W1 trust region, fixed radius, primal-dual (eqs. 16-18)"
    default_w1: ClassVar[str] = "bound"  # what "auto" means for Gaussian policies
    family = "w1"

    def __init__(self, delta: float | None = None, w1: str = "auto",
                 solver: str = "primal_dual") -> None:
        self.delta = _delta_arg(delta)
        self.w1 = check_choice("w1", w1, W1_CHOICES)
        if not isinstance(solver, str) or not solver.strip():
            raise ValueError(f"solver must be a solver config string, got {solver!r}")
        self.solver = solver

    def divergence(self, action_kind: str = "continuous") -> str:
        """The W1 divergence's config string for the team's ``action_kind``."""
        w1 = self.w1
        if w1 == "auto":
            w1 = "exact" if action_kind == "discrete" else self.default_w1
        return "w1" if w1 == "exact" else "w1_bound"

    def _parts(self, n_agents: int, action_kind: str, delta: float) -> tuple[str, str, str]:
        return self.divergence(action_kind), f"fixed:delta={delta!r}", self.solver


@PRESETS.register("wmatrpo-caatr")
class WMATRPOCAATR(WMATRPO):
    """W-MATRPO with CAATR radii (the paper's method): W1 constraint, radius C / (teammate W1
    drift + eps), primal-dual solver.

    Args:
        delta: CAATR's radius before any drift exists (default: as the fixed-radius
            preset's ``delta``).
        C: CAATR constant; default Table 2's value for the team size.
        w1: ``"bound"`` (eq. 31, the paper's computation) or ``"exact"``.
        solver: the solver config string.
    """

    summary = "W1 trust region, CAATR radius, primal-dual (eqs. 16-18)"

    def __init__(self, delta: float | None = None, C: float | None = None, w1: str = "auto",
                 solver: str = "primal_dual") -> None:
        super().__init__(delta=delta, w1=w1, solver=solver)
        self.C = None if C is None else check_positive("C", C)

    def _parts(self, n_agents: int, action_kind: str, delta: float) -> tuple[str, str, str]:
        divergence = self.divergence(action_kind)
        return divergence, _caatr(self.C, n_agents, divergence, delta), self.solver


@PRESETS.register("wmatrpo-tr")
class WMATRPOTR(WMATRPO):
    """W-MATRPO with the W1 trust region held at its radius: the exact W1, a fixed radius,
    solver ``exact_radius`` (every step's measured W1 within delta).

    Args:
        delta: the W1 radius (default: Table 2's 0.1; multi-step 0.05).
        w1: ``"auto"`` / ``"exact"`` (default: the exact W1) or ``"bound"`` (eq. 31).
        solver: the solver config string (``exact_radius:direction=natural`` for the
            Fisher direction).
    """

    summary = "exact W1 trust region, fixed radius, held at the radius (exact_radius)"
    default_w1 = "exact"

    def __init__(self, delta: float | None = None, w1: str = "auto",
                 solver: str = "exact_radius") -> None:
        super().__init__(delta=delta, w1=w1, solver=solver)


@PRESETS.register("wmatrpo-tr-caatr")
class WMATRPOTRCAATR(WMATRPOCAATR):
    """W-MATRPO + CAATR with the W1 trust region held at its radius: the exact W1, CAATR
    radii with drift in the exact W1, solver ``exact_radius``.

    Args: as ``wmatrpo-caatr``; ``w1`` defaults to the exact W1, ``solver`` to
    ``exact_radius``.
    """

    summary = "exact W1 trust region, CAATR radius, held at the radius (exact_radius)"
    default_w1 = "exact"

    def __init__(self, delta: float | None = None, C: float | None = None, w1: str = "auto",
                 solver: str = "exact_radius") -> None:
        super().__init__(delta=delta, C=C, w1=w1, solver=solver)


class _DualPreset:
    """The exact dual's presets: a critic with action values beside V (``q`` or the oracle
    ``oracle_q``)."""

    critic: str

    def settings(self, n_agents: int, action_kind: str = "continuous",
                 profile: str = "one_step") -> dict[str, Any]:
        return {**super().settings(n_agents, action_kind, profile),  # type: ignore[misc]
                "critic": self.critic}


def _check_critic(critic: str) -> str:
    if not isinstance(critic, str) or not critic.strip():
        raise ValueError(f"critic must be a critic config string (q, oracle_q, ...), got "
                         f"{critic!r}")
    return critic


@PRESETS.register("wmatrpo-dual")
class WMATRPODual(_DualPreset, WMATRPO):
    """W-MATRPO's exact update (Algorithm 1, lines 10-11): Theorem 1's dual and Corollary 1's
    transport maps (solver ``ot_dual``), the exact W1, a fixed radius, a learned Q (eq. 19).

    Args:
        delta: the W1 radius (default: Table 2's 0.1; multi-step 0.05).
        critic: ``"q"`` (learned, eq. 19; options as ``q:hidden=(64,64),updates=8``) or
            ``"oracle_q"`` (Q from the env's analytic reward: an oracle, for studies).
        solver: the solver config string (``ot_dual:grid=33,draws=8``).
    """

    summary = "exact W1 dual (Theorem 1, Corollary 1), fixed radius, learned Q (eq. 19)"
    default_w1 = "exact"

    def __init__(self, delta: float | None = None, critic: str = "q",
                 solver: str = "ot_dual") -> None:
        super().__init__(delta=delta, w1="exact", solver=solver)
        self.critic = _check_critic(critic)


@PRESETS.register("wmatrpo-dual-caatr")
class WMATRPODualCAATR(_DualPreset, WMATRPOCAATR):
    """W-MATRPO + CAATR with the exact dual update: solver ``ot_dual``, the exact W1 (also
    for CAATR's drift), CAATR radii, a learned Q (eq. 19).

    Args: as ``wmatrpo-dual``, plus CAATR's ``C`` (default: Table 2's for the team size).
    """

    summary = "exact W1 dual (Theorem 1, Corollary 1), CAATR radius, learned Q (eq. 19)"
    default_w1 = "exact"

    def __init__(self, delta: float | None = None, C: float | None = None, critic: str = "q",
                 solver: str = "ot_dual") -> None:
        super().__init__(delta=delta, C=C, w1="exact", solver=solver)
        self.critic = _check_critic(critic)


@PRESETS.register("hatrpo-tr")
class HATRPOTR(HATRPO):
    """HATRPO's KL trust region through the same solver as ``wmatrpo-tr``: KL, a fixed
    radius, ``exact_radius`` (gradient direction, length at the measured KL radius). Against
    ``wmatrpo-tr`` only the divergence differs.

    Args:
        delta: the KL radius (default: Table 2's 0.1; multi-step 0.01).
        solver: the solver config string (``exact_radius:direction=natural`` gives HATRPO's
            natural direction with the length at the exact KL radius).
    """

    summary = "KL trust region, fixed radius, held at the radius (exact_radius)"

    def __init__(self, delta: float | None = None, solver: str = "exact_radius") -> None:
        super().__init__(delta)
        if not isinstance(solver, str) or not solver.strip():
            raise ValueError(f"solver must be a solver config string, got {solver!r}")
        self.solver = solver

    def _parts(self, n_agents: int, action_kind: str, delta: float) -> tuple[str, str, str]:
        return "kl", f"fixed:delta={delta!r}", self.solver


@PRESETS.register("happo")
class HAPPO(_TrustRegionPreset):
    """HAPPO (Kuba et al. 2022): PPO's clipped surrogate with the sequential update and the
    eq. 15 teammate correction; the KL to the old policy is logged against ``delta``.

    Args:
        clip: the ratio clip (HARL: 0.2).
        epochs: gradient steps per update (HARL: 5).
        lr: Adam step size (HARL's actor default: 5e-4).
        delta: the KL radius reported against (and enforced if ``early_stop``).
        early_stop: undo an epoch that takes the KL past ``delta`` (PPO's target KL).
    """

    summary = "PPO clipped surrogate, sequential updates with the eq. 15 correction"

    def __init__(self, clip: float = 0.2, epochs: int = 5, lr: float = 5e-4,
                 delta: float | None = None, early_stop: bool = False) -> None:
        self.clip, self.epochs, self.lr = clip, epochs, lr
        self.delta = _delta_arg(delta)
        self.early_stop = early_stop
        SOLVER_CHECK.build(self._solver())  # refuse bad values now

    def _solver(self) -> str:
        return (f"ppo_clip:clip={self.clip!r},epochs={self.epochs!r},lr={self.lr!r},"
                f"early_stop={self.early_stop!r}")

    def _parts(self, n_agents: int, action_kind: str, delta: float) -> tuple[str, str, str]:
        return "kl", f"fixed:delta={delta!r}", self._solver()


@PRESETS.register("mappo")
class MAPPO(HAPPO):
    """MAPPO (Yu et al. 2022) without parameter sharing: PPO's clipped surrogate, every agent
    updated from the same batch with the plain advantage (no sequential correction).

    Args: as ``happo``.
    """

    summary = "PPO clipped surrogate, simultaneous updates (no teammate correction)"

    def settings(self, n_agents: int, action_kind: str = "continuous",
                 profile: str = "one_step") -> dict[str, Any]:
        return {**super().settings(n_agents, action_kind, profile),
                "agent_order": "simultaneous"}


@PRESETS.register("ippo")
class IPPO(MAPPO):
    """IPPO (de Witt et al. 2020): PPO's clipped surrogate, simultaneous updates, and
    per-agent critics ``V_i(o_i)`` on local observations (critic ``v_local``), each agent
    updated with its own advantage (its own reward where the env gives one).

    Args: as ``happo``.
    """

    summary = "PPO clipped surrogate, simultaneous updates, per-agent critics on local obs"

    def settings(self, n_agents: int, action_kind: str = "continuous",
                 profile: str = "one_step") -> dict[str, Any]:
        return {**super().settings(n_agents, action_kind, profile), "critic": "v_local"}
