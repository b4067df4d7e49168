"""Primal-dual trust-region step: the paper's practical W-MATRPO update (eqs. 16-18).

Lagrangian (eq. 16, with the surrogate written as it must be to depend on ``theta``;
see docs/paper-notes: eq. 16 as printed has ``-E[M_i]``, constant in ``theta``)::

    L(theta, lambda) = -E[M_i pi_theta(a_i) / pi_old(a_i)]
                       + lambda (E_s D(pi_old, pi_theta) - delta)

Each inner step: a gradient step on ``theta`` (eq. 17; plain SGD as printed, or Adam), then
a projected ascent step on ``lambda >= 0`` (eq. 18) with the constraint measured at the new
``theta``. With ``persist_lambda`` the dual variable carries over between iterations. The
penalty acts on ``theta`` from the second inner step on: at the old policy the divergence's
(sub)gradient is zero (KL, and the W1 forms at identity), so ``inner_steps=1`` would never
feel the constraint.

Nothing in eqs. 16-18 keeps the step inside the ball: the paper's behaviour overshoots
``delta``. The loop logs the divergence each step reached; the optional
``safeguard="shrink"`` pulls the final step back onto the ball by bisection along the segment
from the old parameters (off by default, for faithfulness).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.solvers.base import SOLVERS, AgentProblem, Solver, StepResult, gradient_status
from marl_tr.solvers.optim import FlatOptimizer
from marl_tr.validation import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
)

__all__ = ["PrimalDual"]


@SOLVERS.register("primal_dual", aliases=("lagrangian",))
class PrimalDual(Solver):
    """Gradient descent-ascent on the trust-region Lagrangian (eqs. 16-18).

    The paper gives no learning rates, inner-step count or optimiser: the defaults are our
    documented choices.

    Args:
        lr_theta: policy step size ``alpha_theta`` (eq. 17).
        lr_lambda: dual step size ``alpha_lambda`` (eq. 18).
        inner_steps: descent-ascent steps per agent update (5; the penalty acts from the
            second step on, see above).
        optimizer: ``"sgd"`` (eq. 17 as printed) or ``"adam"`` for the ``theta`` steps.
        lambda_init: initial dual variable (>= 0).
        persist_lambda: carry each agent's ``lambda`` over to the next iteration (warm start).
        safeguard: ``"none"`` (paper) or ``"shrink"``: bisect the final step back into the
            ball ``E_s D <= delta``.
        safeguard_iterations: bisection iterations of the shrink safeguard.
        adam_betas: Adam's ``(beta1, beta2)``.
        adam_eps: Adam's epsilon.
    """

    info_keys = ("lambda", "inner_steps", "shrink")
    autograd_free = True

    def __init__(
        self,
        lr_theta: float = 0.01,
        lr_lambda: float = 1.0,
        inner_steps: int = 5,
        optimizer: str = "sgd",
        lambda_init: float = 0.0,
        persist_lambda: bool = True,
        safeguard: str = "none",
        safeguard_iterations: int = 30,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        adam_eps: float = 1e-8,
    ) -> None:
        self.lr_theta = check_positive("lr_theta", lr_theta)
        self.lr_lambda = check_non_negative("lr_lambda", lr_lambda)
        self.inner_steps = check_int("inner_steps", inner_steps, minimum=1)
        self.optimizer = check_choice("optimizer", optimizer, ("sgd", "adam"))
        self.lambda_init = check_non_negative("lambda_init", lambda_init)
        if not isinstance(persist_lambda, bool):
            raise ValueError(f"persist_lambda must be true or false, got {persist_lambda!r}")
        self.persist_lambda = persist_lambda
        self.safeguard = check_choice("safeguard", safeguard, ("none", "shrink"))
        self.safeguard_iterations = check_int(
            "safeguard_iterations", safeguard_iterations, minimum=1
        )
        self.adam_betas = tuple(adam_betas) if isinstance(adam_betas, list) else adam_betas
        self.adam_eps = adam_eps
        self._optimizer = FlatOptimizer(optimizer, self.lr_theta, adam_betas, adam_eps)
        self._lambdas: dict[int, np.ndarray] = {}  # agent -> [R]

    def reset(self, n_agents: int, replicas: int = 1) -> None:
        self._lambdas = {}
        self._optimizer.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"lambdas": {k: v.copy() for k, v in self._lambdas.items()},
                "adam": self._optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._lambdas = {int(k): np.asarray(v, dtype=np.float64).copy()
                         for k, v in state.get("lambdas", {}).items()}
        self._optimizer.load_state_dict(state.get("adam", {}))

    def dual_variables(self, agents: np.ndarray) -> np.ndarray:
        """``lambda`` of agent ``agents[r]`` in replica ``r``, ``[R]``."""
        out = np.full(len(agents), self.lambda_init)
        for r, agent in enumerate(agents):
            if int(agent) in self._lambdas:
                out[r] = self._lambdas[int(agent)][r]
        return out

    def _store_dual_variables(self, agents: np.ndarray, lam: np.ndarray) -> None:
        for r, agent in enumerate(agents):
            table = self._lambdas.setdefault(int(agent), np.full(len(agents), self.lambda_init))
            table[r] = lam[r]

    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        lam = (self.dual_variables(agents) if self.persist_lambda
               else np.full(problem.replicas, self.lambda_init))
        first_gradient = problem.surrogate_gradient()  # at the old parameters
        active, reasons = gradient_status(first_gradient, problem)
        if not active.any():
            return problem.no_step(reasons, {"lambda": lam})
        started = active.copy()  # replicas with a usable gradient (the others report NaN)
        steps_taken = np.zeros(problem.replicas)
        params, lin, log_prob = problem.old_params, problem.old_linearization, problem.old_log_prob
        point = None
        for inner in range(self.inner_steps):
            # eq. 17: descend L in theta at the current lambda (at the old parameters the
            # divergence, minimal there, has a zero (sub)gradient: only the surrogate acts)
            gradient = (problem.lagrangian_gradient(lin, log_prob, lam) if inner
                        else -first_gradient)
            point = problem.at(self._optimizer.descend(agents, params, gradient, active))
            broken = active & ~point.finite
            if broken.any():
                warnings.warn(
                    f"non-finite step for agent(s) {sorted({int(a) for a in agents[broken]})} "
                    f"at inner step {inner}: those replicas stop at their last finite "
                    "parameters", RuntimeWarning, stacklevel=2,
                )
                active &= ~broken
                point = problem.at(torch.where(torch.from_numpy(broken).unsqueeze(1), params,
                                               point.params))
                reasons = [r or ("non-finite step" if b else "") for r, b in zip(reasons, broken)]
            params, lin, log_prob = point.params, point.linearization, point.log_prob
            steps_taken += active
            # eq. 18: projected ascent on lambda with the constraint at the new theta
            lam = np.where(active, np.maximum(0.0, lam + self.lr_lambda *
                                              (point.divergence - problem.radius)), lam)
            if not active.any():
                break
        if self.persist_lambda:
            self._store_dual_variables(agents, lam)
        # the last inner step measured the final parameters already (finish writes them)
        result = problem.evaluation_of(lin.dist, log_prob, point.divergence)
        shrink = np.ones(problem.replicas)
        over = ~(result.divergence <= problem.radius) & (steps_taken > 0)
        if self.safeguard == "shrink" and over.any():
            shrink, params, result = self._shrink_into_ball(problem, params, over)
        finite = np.isfinite(result.improvement) & np.isfinite(result.divergence)
        moved = (steps_taken > 0) & finite
        return problem.finish(
            moved, params, result.divergence, result.improvement, result.log_prob, reasons,
            info={"lambda": lam, "inner_steps": np.where(started, steps_taken, np.nan),
                  "shrink": np.where(started, shrink, np.nan)},
        )

    def _shrink_into_ball(self, problem: AgentProblem, params: Tensor, over: np.ndarray):
        """Per replica in ``over``, the largest ``t`` in [0, 1] with
        ``D(old, old + t (params - old)) <= delta`` (bisection, replicas in lockstep)."""
        delta_params = params - problem.old_params
        low = np.where(over, 0.0, 1.0)
        high = np.ones(problem.replicas)
        for _ in range(self.safeguard_iterations):
            mid = np.where(over, 0.5 * (low + high), 1.0)
            t = torch.from_numpy(mid).to(params.dtype).unsqueeze(1)
            problem.set_params(problem.old_params + t * delta_params)
            inside = problem.evaluate().divergence <= problem.radius
            low = np.where(over & inside, mid, low)
            high = np.where(over & ~inside, mid, high)
        t = torch.from_numpy(low).to(params.dtype).unsqueeze(1)
        shrunk = problem.old_params + t * delta_params
        problem.set_params(shrunk)
        return low, shrunk, problem.evaluate()
