"""The n-agent differential game of the paper (eq. 30), in pure numpy.

``r(a) = alpha_g exp(-1/2 sum_i (a_i - g)^2 / sigma_i^2) + alpha_l exp(-1/2 sum_i (a_i - l)^2)``
with ``alpha_g = M_g / ((2 pi)^{n/2} prod_i sigma_i)`` and ``alpha_l = M_l / (2 pi)^{n/2}``: a
*global* bump of mass ``M_g`` centred at ``(g, ..., g)`` and a *local* bump of mass ``M_l`` centred
at ``(l, ..., l)``, both normalised Gaussian densities scaled by their masses.

The paper calls ``(5, ..., 5)`` the global optimum, but with its widths (sigma_2 = 3) the global
bump is wider and *lower*: for n = 3, ``r(1, 1, 1) = 0.4127`` and ``r(5, 5, 5) = 0.2116``.
:meth:`DiffGame.peak_rewards` and :meth:`DiffGame.higher_peak` report which peak is truly higher,
and the parameters let a user make the far basin the higher one (e.g. ``sigma=1.0``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from marl_tr_envs._validation import (
    check_choice,
    check_finite,
    check_int,
    check_positive,
)
from marl_tr_envs.diff_game.expectation import bump_expectation, bump_expectation_quadrature
from marl_tr_envs.game import CooperativeGame

__all__ = ["EXPECTATION_METHODS", "PAPER_SIGMA", "DiffGame"]

#: The paper's widths sigma_1..sigma_3 (eq. 30). Agents beyond the third get 1.0 (our choice).
PAPER_SIGMA: tuple[float, ...] = (1.0, 3.0, 1.0)
_SIGMA_BEYOND_PAPER = 1.0
_DEFAULT_BASIN_GAP = 4.0

#: Ways :meth:`DiffGame.expected_reward` can compute the expectation.
EXPECTATION_METHODS: tuple[str, ...] = ("closed_form", "quadrature", "monte_carlo")


def _default_sigma(n: int) -> tuple[float, ...]:
    return (PAPER_SIGMA + (_SIGMA_BEYOND_PAPER,) * max(0, n - len(PAPER_SIGMA)))[:n]


def _check_sigma(sigma: Any, n: int) -> tuple[float, ...]:
    if sigma is None:
        return _default_sigma(n)
    if isinstance(sigma, (str, bytes)):
        raise ValueError(f"sigma must be a number or a sequence of {n} numbers, got {sigma!r}")
    if np.ndim(sigma) == 0:
        return (check_positive("sigma", sigma),) * n
    values = list(np.asarray(sigma).ravel()) if isinstance(sigma, np.ndarray) else list(sigma)
    if np.ndim(sigma) != 1 or len(values) != n:
        raise ValueError(
            f"sigma must be a number or a sequence of n = {n} numbers (one per agent), "
            f"got {sigma!r}"
        )
    return tuple(check_positive(f"sigma[{i}]", value) for i, value in enumerate(values))


class DiffGame(CooperativeGame):
    """The differential game of eq. 30: two Gaussian bumps on ``[low, high]^n``.

    Args:
        n: Number of agents, >= 1.
        sigma: Widths of the global bump, one per agent, or one number for all. Default: the
            paper's ``(1, 3, 1)`` for the first three agents (``(1,)`` for n = 1, ``(1, 3)`` for
            n = 2) and 1.0 for every agent beyond the third. The paper gives no widths beyond
            the third agent; 1.0 is *our* choice.
        local_center: ``l``, the coordinate of the local bump's centre ``(l, ..., l)``. Default 1.0.
        global_center: ``g``, the coordinate of the global bump's centre ``(g, ..., g)``. Default
            ``local_center + basin_gap``.
        basin_gap: Distance ``g - l`` (> 0) between the two centres per coordinate, default 4.0
            (so ``g = 5`` by default). Set the far centre by ``basin_gap`` or by
            ``global_center``; giving both is accepted only when they agree. A far centre *below*
            the local one can only be set with ``global_center``.
        local_mass: ``M_l`` > 0, the local bump's mass; ``alpha_l = M_l / (2 pi)^{n/2}``.
            Default 6.5.
        global_mass: ``M_g`` > 0, the global bump's mass;
            ``alpha_g = M_g / ((2 pi)^{n/2} prod_i sigma_i)``. Default 10.0.
        low: Lower action bound (the environments clip actions to ``[low, high]``). Default 0.0.
        high: Upper action bound, > ``low``. Default 7.0.

    Raises:
        ValueError: For any invalid value (the message names it and what is allowed).

    Warns:
        UserWarning: A centre lies outside ``[low, high]`` (clipped actions cannot reach it).

    Example:
        >>> game = DiffGame(n=3)
        >>> round(game.peak_rewards()["local"], 4), game.higher_peak()
        (0.4127, 'local')
    """

    def __init__(
        self,
        *,
        n: int = 3,
        sigma: float | Sequence[float] | None = None,
        local_center: float = 1.0,
        global_center: float | None = None,
        basin_gap: float | None = None,
        local_mass: float = 6.5,
        global_mass: float = 10.0,
        low: float = 0.0,
        high: float = 7.0,
    ) -> None:
        self._n = check_int("n", n, minimum=1)
        self._sigma = _check_sigma(sigma, self._n)
        self._local_center = check_finite("local_center", local_center)
        self._global_center = self._resolve_global_center(global_center, basin_gap)
        self._local_mass = check_positive("local_mass", local_mass)
        self._global_mass = check_positive("global_mass", global_mass)
        self._low = check_finite("low", low)
        self._high = check_finite("high", high)
        if self._low >= self._high:
            raise ValueError(f"low must be < high, got low={low!r}, high={high!r}")
        for name, center in (
            ("local_center", self._local_center),
            ("global_center", self._global_center),
        ):
            if not self._low <= center <= self._high:
                warnings.warn(
                    f"{name}={center} lies outside the action bounds [{self._low}, {self._high}]; "
                    "clipped actions cannot reach that peak",
                    UserWarning,
                    stacklevel=3,
                )

        normaliser = (2.0 * math.pi) ** (self._n / 2.0)
        self._alpha_local = self._local_mass / normaliser
        volume = normaliser * math.prod(self._sigma)
        self._alpha_global = self._global_mass / volume if volume > 0 else math.inf
        if not math.isfinite(self._alpha_global):
            raise ValueError(
                f"sigma={self._sigma} is too narrow: the global peak's height "
                f"alpha_g = M_g / ((2 pi)^(n/2) prod_i sigma_i) overflows float64; give wider "
                "sigma")
        self._inverse_sigma = 1.0 / np.asarray(self._sigma, dtype=np.float64)
        self._peaks = {
            "local": float(self.team_reward(np.full(self._n, self._local_center))),
            "global": float(self.team_reward(np.full(self._n, self._global_center))),
        }

    def _resolve_global_center(self, global_center: Any, basin_gap: Any) -> float:
        if global_center is None:
            if basin_gap is None:
                return self._local_center + _DEFAULT_BASIN_GAP
            return self._local_center + check_positive("basin_gap", basin_gap)
        center = check_finite("global_center", global_center)
        if basin_gap is not None:
            gap = check_positive("basin_gap", basin_gap)
            if not math.isclose(center, self._local_center + gap, rel_tol=1e-12, abs_tol=1e-12):
                raise ValueError(
                    f"global_center={global_center!r} contradicts local_center + basin_gap = "
                    f"{self._local_center} + {basin_gap!r}; give global_center or basin_gap, "
                    "not both"
                )
        if center == self._local_center:
            raise ValueError(f"global_center must differ from local_center, both are {center!r}")
        return center

    # ----------------------------------------------------------------------------- parameters
    @property
    def n_agents(self) -> int:
        """The number of agents ``n``."""
        return self._n

    @property
    def sigma(self) -> tuple[float, ...]:
        """Widths ``sigma_i`` of the global bump, one per agent."""
        return self._sigma

    @property
    def local_center(self) -> float:
        """``l``: the local bump is centred at ``(l, ..., l)``."""
        return self._local_center

    @property
    def global_center(self) -> float:
        """``g``: the global bump is centred at ``(g, ..., g)``."""
        return self._global_center

    @property
    def basin_gap(self) -> float:
        """``g - l``."""
        return self._global_center - self._local_center

    @property
    def local_mass(self) -> float:
        """``M_l``."""
        return self._local_mass

    @property
    def global_mass(self) -> float:
        """``M_g``."""
        return self._global_mass

    @property
    def alpha_local(self) -> float:
        """``alpha_l = M_l / (2 pi)^{n/2}`` (eq. 30)."""
        return self._alpha_local

    @property
    def alpha_global(self) -> float:
        """``alpha_g = M_g / ((2 pi)^{n/2} prod_i sigma_i)`` (eq. 30)."""
        return self._alpha_global

    @property
    def low(self) -> float:
        """Lower action bound."""
        return self._low

    @property
    def high(self) -> float:
        """Upper action bound."""
        return self._high

    def __repr__(self) -> str:
        return (
            f"DiffGame(n={self._n}, sigma={self._sigma}, local_center={self._local_center}, "
            f"global_center={self._global_center}, local_mass={self._local_mass}, "
            f"global_mass={self._global_mass}, low={self._low}, high={self._high})"
        )

    # ----------------------------------------------------------------------------- spaces
    def agent_action_space(self, agent_index: int) -> spaces.Box:
        """``Box(low, high, (1,), float32)`` for every agent."""
        return spaces.Box(self._low, self._high, shape=(1,), dtype=np.float32)

    def joint_action_space(self) -> spaces.Box:
        """``Box(low, high, (n,), float32)``; component ``i`` is agent ``i``'s action."""
        return spaces.Box(self._low, self._high, shape=(self._n,), dtype=np.float32)

    # ----------------------------------------------------------------------------- rewards
    def prepare_actions(
        self, actions: Any, batch_shape: tuple[int, ...] | None = None, *, clip: bool = True
    ) -> np.ndarray:
        """Check joint actions ``[*batch_shape, n]``; return them as float64, clipped if asked.

        Out-of-bounds actions are clipped onto ``[low, high]`` when ``clip`` is true (as the
        environments do). See :meth:`CooperativeGame.prepare_actions`.
        """
        expected = "[..., n]" if batch_shape is None else str([*batch_shape, self._n])
        try:
            array = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"actions must be a real array of shape {expected} with n = {self._n}, "
                f"got {actions!r}"
            ) from None
        shape_ok = (
            array.ndim >= 1 and array.shape[-1] == self._n
            if batch_shape is None
            else array.shape == (*batch_shape, self._n)
        )
        if not shape_ok:
            raise ValueError(
                f"actions must have shape {expected} with n = {self._n}, got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"actions must be finite, got {actions!r}")
        if clip:
            return np.clip(array, self._low, self._high)
        return array

    def _bump_exponents(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        to_global = (actions - self._global_center) * self._inverse_sigma
        to_local = actions - self._local_center
        return (
            np.einsum("...i,...i->...", to_global, to_global),
            np.einsum("...i,...i->...", to_local, to_local),
        )

    def team_reward(self, actions: np.ndarray) -> np.ndarray:
        """Eq. 30 at prepared actions ``[..., n]``; float64 ``[...]``."""
        global_exponent, local_exponent = self._bump_exponents(actions)
        return self._alpha_global * np.exp(-0.5 * global_exponent) + self._alpha_local * np.exp(
            -0.5 * local_exponent
        )

    def reward_grad(self, actions: Any) -> np.ndarray:
        """Gradient of eq. 30 in the actions, float64 ``[..., n]``.

        ``dr/da_i = -alpha_g e_g (a_i - g) / sigma_i^2 - alpha_l e_l (a_i - l)``, with ``e_g`` and
        ``e_l`` the two exponentials. The formula's gradient at the actions as given (no clipping).

        Raises:
            ValueError: Actions of the wrong shape or not finite.
        """
        actions = self.prepare_actions(actions, clip=False)
        global_exponent, local_exponent = self._bump_exponents(actions)
        global_term = self._alpha_global * np.exp(-0.5 * global_exponent)[..., None]
        local_term = self._alpha_local * np.exp(-0.5 * local_exponent)[..., None]
        return -global_term * (actions - self._global_center) * self._inverse_sigma**2 - (
            local_term * (actions - self._local_center)
        )

    @property
    def initial_policy(self) -> dict[str, float]:
        """The paper's starting policy for every agent, ``N(1.5, 0.5^2)`` by default.

        The mean sits half a unit from the local centre towards the far one (1.5 with the
        default centres: "placing agents near the local optimum"); the std is 0.5. Trainers
        start from it when no initial mean or std is given.
        """
        direction = 1.0 if self._global_center >= self._local_center else -1.0
        return {"mean": self._local_center + 0.5 * direction, "std": 0.5}

    # ----------------------------------------------------------------------------- the truth
    def peak_rewards(self) -> dict[str, float]:
        """Rewards at the two centres, both bumps included.

        Returns:
            ``{"local": r(l, ..., l), "global": r(g, ..., g)}``. Each equals the height of its
            peak up to the other bump's tail at that point (the maxima of ``r`` are shifted from
            the centres by that tail).
        """
        return dict(self._peaks)

    def higher_peak(self) -> str:
        """``"local"`` or ``"global"``: which centre has the higher reward (``"tie"`` if equal)."""
        local, global_ = self._peaks["local"], self._peaks["global"]
        if local == global_:
            return "tie"
        return "local" if local > global_ else "global"

    def info(self) -> dict[str, Any]:
        """A new ``{"peak_rewards": {"local": ..., "global": ...}, "higher_peak": ...}``."""
        return {"peak_rewards": self.peak_rewards(), "higher_peak": self.higher_peak()}

    # ----------------------------------------------------------------------------- expectations
    def expected_reward(
        self,
        means: Any,
        stds: Any,
        clip: bool = True,
        *,
        method: str = "closed_form",
        num_samples: int = 100_000,
        seed: int | None = None,
    ) -> np.ndarray | float:
        """Expected reward of the product-Gaussian policy ``a_i ~ N(means_i, stds_i^2)``.

        Each bump is a product over agents, so its expectation is the product of 1-D factors
        (see :mod:`marl_tr_envs.diff_game.expectation`):
        ``E[r] = alpha_g prod_i E[f_g,i(a_i)] + alpha_l prod_i E[f_l,i(a_i)]``.

        Args:
            means: Policy means ``[..., n]``.
            stds: Policy standard deviations ``[..., n]`` (broadcast with ``means``), >= 0.
            clip: Clip actions to ``[low, high]`` before the reward, as the environments do
                (the mass beyond a bound sits at the bound). ``False``: the formula over all of R^n.
            method: ``"closed_form"`` (exact, default), ``"quadrature"`` (the interior 1-D
                integrals by Gauss-Legendre quadrature; agrees to ~1e-12) or ``"monte_carlo"``
                (``num_samples`` joint samples, seeded by ``seed``).
            num_samples: Samples for ``"monte_carlo"``, >= 1.
            seed: Seed for ``"monte_carlo"``.

        Returns:
            The expected reward ``[...]`` (a float for 1-D inputs).

        Raises:
            ValueError: Wrong shapes, non-finite values, negative stds, an unknown method.
        """
        check_choice("method", method, EXPECTATION_METHODS)
        means, stds = self._check_policy(means, stds)
        if method == "monte_carlo":
            count = check_int("num_samples", num_samples, minimum=1)
            rng = np.random.default_rng(seed)
            samples = means + stds * rng.standard_normal((count, *means.shape))
            if clip:
                samples = np.clip(samples, self._low, self._high)
            value = self.team_reward(samples).mean(axis=0)
        else:
            factor = bump_expectation if method == "closed_form" else bump_expectation_quadrature
            bounds = (self._low, self._high) if clip else (None, None)
            sigma = np.asarray(self._sigma)
            global_factor = factor(means, stds, self._global_center, sigma, *bounds).prod(axis=-1)
            local_factor = factor(means, stds, self._local_center, 1.0, *bounds).prod(axis=-1)
            value = self._alpha_global * global_factor + self._alpha_local * local_factor
        return float(value) if np.ndim(value) == 0 else value

    def _check_policy(self, means: Any, stds: Any) -> tuple[np.ndarray, np.ndarray]:
        arrays = []
        for name, value in (("means", means), ("stds", stds)):
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a real array [..., n], got {value!r}") from None
            if array.ndim < 1 or array.shape[-1] != self._n:
                raise ValueError(
                    f"{name} must have shape [..., n] with n = {self._n}, got shape {array.shape}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"{name} must be finite, got {value!r}")
            arrays.append(array)
        if (arrays[1] < 0).any():
            raise ValueError(f"stds must be >= 0, got {stds!r}")
        try:
            means_array, stds_array = np.broadcast_arrays(*arrays)
        except ValueError:
            raise ValueError(
                f"means and stds must broadcast, got shapes {arrays[0].shape} and {arrays[1].shape}"
            ) from None
        return means_array, stds_array
