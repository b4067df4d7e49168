"""CAATR: coordination-aware adaptive trust regions (the paper's eqs. 13-14, Algorithm 2).

Each agent's radius shrinks as its teammates move:

    delta_i = C / (D_-i + eps)                                    (eq. 13)
    eps     = max(eps_base, min(eps_max, D_-i / 10))              (eq. 14)
    D_-i    = sum_{j != i} Drift_j,   Drift_j = E_s[D(pi_j^(t), pi_j^(t-1))]

with ``D`` = W1 in the paper (Algorithm 2, line 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marl_tr.divergences.base import Divergence
from marl_tr.radius.base import (
    RADIUS_SCHEDULERS,
    DivergenceOption,
    RadiusContext,
    RadiusScheduler,
    agent_array,
    agent_count,
    check_below_supremum,
    check_divergence_option,
)
from marl_tr.validation import check_positive

__all__ = ["CAATR"]


@RADIUS_SCHEDULERS.register("caatr")
class CAATR(DivergenceOption, RadiusScheduler):
    """Coordination-aware adaptive trust region (eqs. 13-14, Algorithm 2).

    If every agent drifts ``d`` per step, then in the regime ``eps = D_-i / 10`` the radius
    is ``C / (1.1 (n - 1) d)``; if every step also uses its whole radius (drift measured in
    the constraint's divergence), the fixed point is ``d = sqrt(C / (1.1 (n - 1)))``, about
    0.07-0.13 for Table 2's ``C`` values.

    Args:
        C: the CAATR constant, > 0. Default 0.02, the paper's Table 2 value for 3 and 5
            agents; Table 2 uses 0.10 for 7 agents and 0.15 for 9.
        eps_base: lower clamp of eq. 14, > 0. The paper gives no value; 1e-3 is our choice.
            It sets the largest radius, ``C / eps_base`` (20 with the defaults), reached as
            soon as every teammate stands still: see ``max_delta``.
        eps_max: upper clamp of eq. 14, >= ``eps_base``. The paper gives no value; 1.0 is
            our choice (it only matters once teammates drift more than 10 per step).
        divergence: the drift measure ``D``, a ``marl_tr.divergences`` config string or a
            ``Divergence``. Default ``"w1"`` as in the paper. Looked up on first use; it
            need not be the divergence that constrains the steps.
        initial_delta: the radius before any drift exists (``ctx.drift`` returns ``None``:
            the first iteration), > 0. Default 0.1, the paper's fixed radius (Table 2); the
            paper does not say what CAATR uses before its first drift measurement. Also
            used with a single agent: it has no teammates, so eq. 13 carries no
            coordination signal (it would give ``C / eps_base`` every iteration).
        max_delta: optional cap on every radius, > 0 and >= ``initial_delta``. Default
            ``None`` (no cap, as in the paper). Useful because with a small ``eps_base``
            the radius jumps to ``C / eps_base`` whenever the teammates stand still.

    Context: reads ``ctx.drift(divergence)``. A negative drift is treated as 0 with a
    ``RadiusInputWarning``; a non-finite drift raises ``ValueError`` (it means the
    policies themselves are broken, and treating it as 0 would hand out the largest
    radius).
    """

    uses = frozenset({"drift"})

    def __init__(
        self,
        C: float = 0.02,
        eps_base: float = 1e-3,
        eps_max: float = 1.0,
        divergence: str | Divergence = "w1",
        initial_delta: float = 0.1,
        max_delta: float | None = None,
    ) -> None:
        self.C = check_positive("C", C)
        self.eps_base = check_positive("eps_base", eps_base)
        self.eps_max = check_positive("eps_max", eps_max)
        if self.eps_base > self.eps_max:
            raise ValueError(
                f"eps_base ({eps_base!r}) must be <= eps_max ({eps_max!r}): eq. 14 clamps "
                "D_-i / 10 to [eps_base, eps_max]"
            )
        self.divergence = check_divergence_option(divergence)
        self.initial_delta = check_positive("initial_delta", initial_delta)
        self.max_delta = None if max_delta is None else check_positive("max_delta", max_delta)
        if self.max_delta is not None and self.initial_delta > self.max_delta:
            raise ValueError(
                f"initial_delta ({initial_delta!r}) must be <= max_delta ({max_delta!r})"
            )

    @property
    def autograd_free(self) -> bool:
        return True  # drift is a divergence value, no derivative

    def check_divergence(self, divergence: Divergence) -> None:
        """Any trust-region divergence works, with radii below its supremum; this resolves
        the drift measure early."""
        check_below_supremum("initial_delta", self.initial_delta, divergence)
        if self.max_delta is not None:
            check_below_supremum("max_delta", self.max_delta, divergence)
        self.resolved_divergence()

    def radii(self, ctx: RadiusContext) -> np.ndarray:
        """Eqs. 13-14 from ``ctx.drift``; ``initial_delta`` without drift or teammates.

        Returns:
            ``delta``, float64 ``[n]``.
        """
        n = agent_count(ctx)
        if n == 1:
            return np.full(1, self.initial_delta, dtype=np.float64)
        drift = ctx.drift(self.resolved_divergence())
        if drift is None:
            return np.full(n, self.initial_delta, dtype=np.float64)
        return self.radii_from_drift(
            agent_array(drift, n, "drift", negative="warn", nonfinite="error")
        )

    def radii_batch(self, contexts: Sequence[RadiusContext]) -> np.ndarray:
        """Eqs. 13-14 for every replica at once (the same arithmetic per row)."""
        n = agent_count(contexts[0])
        divergence = self.resolved_divergence()
        drifts = [ctx.drift(divergence) for ctx in contexts]
        if n == 1 or any(d is None for d in drifts):
            return np.stack([self.radii(ctx) for ctx in contexts])
        checked = [agent_array(d, n, "drift", negative="warn", nonfinite="error")
                   for d in drifts]
        return self.radii_from_drift(np.stack(checked))

    def radii_from_drift(self, drift: np.ndarray) -> np.ndarray:
        """Eqs. 13-14 for given drifts (Algorithm 2, lines 4-8).

        Args:
            drift: ``Drift_j``, float ``[..., n]`` (rows: independent replicas), finite and
                >= 0, ``n >= 2``.

        Returns:
            ``delta``, float64 ``[..., n]``, capped at ``max_delta`` if set.
        """
        drift = np.asarray(drift, dtype=np.float64)
        n = drift.shape[-1]
        # D_-i, exact (no sum - d_i), and the same arithmetic for any number of rows
        teammates = (drift[..., None, :] * (1.0 - np.eye(n))).sum(-1)
        eps = np.maximum(self.eps_base, np.minimum(self.eps_max, teammates / 10.0))
        delta = self.C / (teammates + eps)
        if self.max_delta is not None:
            delta = np.minimum(delta, self.max_delta)
        return delta
