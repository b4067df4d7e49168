"""The loop's ``RadiusContext``: what schedulers may ask about the current iteration.

Every quantity is computed only when a scheduler asks for it, and cached per divergence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from marl_tr.divergences.base import Divergence
from marl_tr.policies import Policy
from marl_tr.radius.base import PreviousSteps, RadiusContext
from marl_tr.solvers.base import AgentProblem, to_numpy
from marl_tr.solvers.natural_gradient import NaturalGradient

__all__ = ["LoopRadiusContext", "PriceResponse"]


class PriceResponse:
    """``c(price)``: the divergence at which an agent's gain along its gradient ray, minus
    ``price`` times the divergence, is largest.

    The ray ``theta_0 + t g`` (``g`` the surrogate gradient) is sampled on a geometric grid of
    step lengths; the (divergence, gain) points are replaced by their upper concave envelope,
    whose vertices are the only possible maximisers. The response is non-increasing and
    piecewise constant: it jumps from one vertex to the next at each segment's slope.

    Args:
        divergences: ``[K]`` increasing divergences along the ray (first is 0).
        gains: ``[K]`` surrogate gains at those points (first is 0).
    """

    def __init__(self, divergences: np.ndarray, gains: np.ndarray) -> None:
        points = sorted(zip(divergences.tolist(), gains.tolist()))
        hull: list[tuple[float, float]] = []
        for point in points:  # upper concave envelope (monotone chain)
            while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0:
                hull.pop()
            hull.append(point)
        # keep the increasing part: beyond the best gain, more divergence never pays
        best = max(range(len(hull)), key=lambda k: hull[k][1])
        self.vertices = hull[: best + 1]
        self.slopes = [
            (g1 - g0) / (d1 - d0) for (d0, g0), (d1, g1) in zip(self.vertices, self.vertices[1:])
        ]

    def __call__(self, price: float) -> float:
        """Divergence of the best envelope vertex at ``price`` (non-increasing in price)."""
        vertices, slopes = self.vertices, self.slopes
        if not slopes:
            return float(vertices[0][0])
        # slopes decrease along the envelope; segment k is worth taking while price < slope_k
        for k, slope in enumerate(slopes):
            if price >= slope:
                return float(vertices[k][0])
        return float(vertices[-1][0])


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


class LoopRadiusContext:
    """What the loop observes at the start of an iteration, for every replica.

    Quantities are computed for all replicas and agents together (``[R, n]``), only when a
    scheduler first asks, and cached per divergence. Schedulers see one replica at a time
    through ``for_replica(r)``, a ``RadiusContext`` of ``[n]`` arrays.

    Args:
        iteration: the iteration index.
        policies: the agents' policies (``R`` replicas, at the current parameters).
        previous_params: each agent's flat parameters one iteration ago, ``[R, P]``
            (``None`` at first).
        obs / actions / log_probs: the batch, per agent (``R*B`` rows).
        weights: the batch advantages (no teammate correction) ``[R*B]``.
        previous: the last iteration's step records, arrays ``[R, n]`` (``None`` at first).
        step_divergence: the divergence ``previous.divergence`` measured (the trust
            region's). A drift in that divergence between state-independent policies is
            that record itself: ``previous_params`` are where those steps started, and the
            policies are where they ended.
        ray_points: grid size for price responses.
    """

    def __init__(
        self,
        iteration: int,
        policies: Sequence[Policy],
        previous_params: Sequence[Tensor] | None,
        obs: Sequence[Tensor],
        actions: Sequence[Tensor],
        log_probs: Sequence[Tensor],
        weights: Tensor,
        previous: PreviousSteps | None,
        step_divergence: Divergence | None = None,
        ray_points: int = 48,
    ) -> None:
        self.iteration = iteration
        self.n_agents = len(policies)
        self.replicas = policies[0].replicas
        self.previous = previous
        self._step_divergence = step_divergence
        self._policies = policies
        self._previous_params = previous_params
        self._obs, self._actions, self._log_probs = obs, actions, log_probs
        self._weights = weights
        self._ray_points = ray_points
        self._cache: dict[tuple[str, int], object] = {}

    def for_replica(self, replica: int) -> RadiusContext:
        """The ``RadiusContext`` of one replica."""
        return _ReplicaView(self, replica)

    def _cached(self, kind: str, divergence: Divergence, compute: Callable[[], object]):
        key = (kind, id(divergence))
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _problem(self, agent: int, divergence: Divergence) -> AgentProblem:
        return AgentProblem(
            self._policies[agent], self._obs[agent], self._actions[agent], self._weights,
            self._log_probs[agent], divergence, radius=1.0,
        )

    # -- drift -----------------------------------------------------------------------------
    def drift(self, divergence: Divergence) -> np.ndarray | None:
        """``E_s[D(pi_j^(t-1), pi_j^(t))]``, ``[R, n]`` (``None`` at the first iteration)."""
        if self._previous_params is None:
            return None
        return self._cached("drift", divergence, lambda: self._drift(divergence))

    @torch.no_grad()
    def _drift(self, divergence: Divergence) -> np.ndarray:
        if (self.previous is not None and divergence == self._step_divergence
                and all(policy.state_independent for policy in self._policies)):
            return self.previous.divergence.copy()  # measured by the last steps already
        values = []
        for i, policy in enumerate(self._policies):
            obs = self._obs[i]
            if policy.state_independent:  # every state gives the same value: take one
                obs = obs[::obs.shape[0] // self.replicas]
            # the previous and the current policy as two candidates: no parameter writes
            pair = torch.stack((self._previous_params[i], policy.flat_parameters()), 1)
            both = policy.candidate_distributions(pair, obs)  # rows (replica, then/now, state)
            before, now = (type(both).from_params(tuple(
                p.view(self.replicas, 2, -1, *p.shape[1:]).select(1, k).reshape(-1, *p.shape[1:])
                for p in both.params())) for k in (0, 1))
            value = divergence(before, now)
            values.append(value if policy.state_independent
                          else value.view(self.replicas, -1).mean(1))
        return to_numpy(torch.stack(values, 1))

    # -- natural-gradient norms ------------------------------------------------------------
    def natural_gradient_norms(self, divergence: Divergence) -> np.ndarray:
        """``q = g^T H^-1 g`` per replica and agent, ``[R, n]``."""
        if not divergence.smooth_at_identity:
            raise ValueError(
                f"natural-gradient norms need a divergence smooth at identity; "
                f"{divergence.spec()!r} is not"
            )
        return self._cached("q", divergence, lambda: self._natural_gradient_norms(divergence))

    def _natural_gradient_norms(self, divergence: Divergence) -> np.ndarray:
        solver = NaturalGradient()
        out = np.zeros((self.replicas, self.n_agents))
        for i in range(self.n_agents):
            problem = self._problem(i, divergence)
            gradient = problem.surrogate_gradient()
            finite = torch.isfinite(gradient).all(1)
            gradient = torch.where(finite.unsqueeze(1), gradient, torch.zeros_like(gradient))
            direction = solver.natural_direction(problem, gradient)[0]
            q = to_numpy((gradient * direction).sum(1).clamp_min(0.0))
            out[:, i] = np.where(finite.numpy(), q, np.nan)
        return out

    # -- price responses -------------------------------------------------------------------
    def price_responses(self, divergence: Divergence) -> list[list[PriceResponse]]:
        """``c(price)`` per replica and agent (``[R][n]``)."""
        return self._cached("price", divergence, lambda: self._price_responses(divergence))

    def _price_responses(self, divergence: Divergence) -> list[list[PriceResponse]]:
        out: list[list[PriceResponse]] = [[] for _ in range(self.replicas)]
        lengths = np.concatenate(([0.0], np.geomspace(1e-4, 1e2, self._ray_points)))
        for i in range(self.n_agents):
            problem = self._problem(i, divergence)
            gradient = problem.surrogate_gradient()
            norm = gradient.norm(dim=1, keepdim=True)
            usable = torch.isfinite(norm) & (norm > 0)
            direction = torch.where(usable, gradient / norm, torch.zeros_like(gradient))
            divs = np.zeros((len(lengths), self.replicas))
            gains = np.zeros((len(lengths), self.replicas))
            for k, length in enumerate(lengths[1:], start=1):
                problem.set_params(problem.old_params + length * direction)
                result = problem.evaluate()
                divs[k], gains[k] = result.divergence, result.improvement
            problem.restore()
            for r in range(self.replicas):
                finite = np.isfinite(divs[:, r]) & np.isfinite(gains[:, r])
                count = len(lengths) if finite.all() else int(np.argmin(finite))
                if not bool(usable[r]):
                    count = 1
                out[r].append(PriceResponse(divs[:count, r], gains[:count, r]))
        return out


class _ReplicaView(RadiusContext):
    """One replica's slice of a ``LoopRadiusContext``."""

    def __init__(self, parent: LoopRadiusContext, replica: int) -> None:
        self._parent, self._replica = parent, replica
        self.iteration = parent.iteration
        self.n_agents = parent.n_agents
        previous = parent.previous
        self.previous = None if previous is None else PreviousSteps(
            radius=previous.radius[replica], divergence=previous.divergence[replica],
            improvement=previous.improvement[replica],
        )

    def drift(self, divergence: Divergence) -> np.ndarray | None:
        drift = self._parent.drift(divergence)
        return None if drift is None else drift[self._replica]

    def natural_gradient_norms(self, divergence: Divergence) -> np.ndarray:
        return self._parent.natural_gradient_norms(divergence)[self._replica]

    def price_responses(self, divergence: Divergence) -> Sequence[Callable[[float], float]]:
        return self._parent.price_responses(divergence)[self._replica]
