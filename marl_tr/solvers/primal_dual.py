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

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from marl_tr.solvers.base import SOLVERS, AgentProblem, Solver, StepResult, is_usable_gradient
from marl_tr.validation import (
    check_choice,
    check_in_range,
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
        inner_steps: descent-ascent steps per agent update.
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

    def __init__(
        self,
        lr_theta: float = 0.01,
        lr_lambda: float = 1.0,
        inner_steps: int = 10,
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
        if not (isinstance(adam_betas, (tuple, list)) and len(adam_betas) == 2):
            raise ValueError(f"adam_betas must be a pair (beta1, beta2), got {adam_betas!r}")
        self.adam_betas = tuple(
            check_in_range("adam_betas", b, 0.0, 1.0, high_open=True) for b in adam_betas
        )
        self.adam_eps = check_positive("adam_eps", adam_eps)
        self._lambdas: dict[int, float] = {}
        self._adam: dict[int, dict[str, Any]] = {}

    def reset(self, n_agents: int) -> None:
        self._lambdas = {}
        self._adam = {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "lambdas": dict(self._lambdas),
            "adam": {k: {n: (v.clone() if isinstance(v, Tensor) else v) for n, v in s.items()}
                     for k, s in self._adam.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._lambdas = {int(k): float(v) for k, v in state.get("lambdas", {}).items()}
        self._adam = {int(k): dict(v) for k, v in state.get("adam", {}).items()}

    def dual_variable(self, agent: int) -> float:
        """The agent's current ``lambda``."""
        return self._lambdas.get(agent, self.lambda_init)

    # -- the descent direction ----------------------------------------------------------
    def _update(self, agent: int, gradient: Tensor) -> Tensor:
        """The parameter change for one descent step on ``L`` (SGD or Adam)."""
        if self.optimizer == "sgd":
            return -self.lr_theta * gradient
        state = self._adam.setdefault(
            agent, {"m": torch.zeros_like(gradient), "v": torch.zeros_like(gradient), "t": 0}
        )
        beta1, beta2 = self.adam_betas
        state["t"] += 1
        state["m"] = beta1 * state["m"] + (1 - beta1) * gradient
        state["v"] = beta2 * state["v"] + (1 - beta2) * gradient * gradient
        m_hat = state["m"] / (1 - beta1 ** state["t"])
        v_hat = state["v"] / (1 - beta2 ** state["t"])
        return -self.lr_theta * m_hat / (v_hat.sqrt() + self.adam_eps)

    def step(self, problem: AgentProblem, agent: int) -> StepResult:
        lam = self.dual_variable(agent) if self.persist_lambda else self.lambda_init
        reason = is_usable_gradient(problem.surrogate_gradient())
        if reason:
            out = problem.no_step(reason)
            out.info["lambda"] = lam
            return out
        params = problem.old_params
        lin, log_prob = problem.old_linearization, problem.old_log_prob
        divergence, steps_taken = 0.0, 0
        for inner in range(self.inner_steps):
            # eq. 17: descend L in theta at the current lambda
            gradient = -problem.surrogate_gradient(lin, log_prob=log_prob)
            if lam > 0.0:
                gradient = gradient + lam * problem.divergence_gradient(lin)
            candidate = params + self._update(agent, gradient)
            problem.set_params(candidate)
            lin = problem.policy.linearize(problem.obs)
            log_prob = lin.dist.log_prob(problem.actions)
            divergence = float(problem.divergence.compute(problem.old_dist, lin.dist).mean())
            if not (math.isfinite(divergence) and bool(torch.isfinite(candidate).all())):
                warnings.warn(
                    f"non-finite step for agent {agent} at inner step {inner}: stopping this "
                    "update at the last finite parameters", RuntimeWarning, stacklevel=2,
                )
                problem.set_params(params)
                break
            params, steps_taken = candidate, steps_taken + 1
            # eq. 18: projected ascent on lambda with the constraint at the new theta
            lam = max(0.0, lam + self.lr_lambda * (divergence - problem.radius))
        if self.persist_lambda:
            self._lambdas[agent] = lam
        if steps_taken == 0:
            out = problem.no_step("non-finite step")
            out.info["lambda"] = lam
            return out
        result = problem.evaluate()
        shrink = 1.0
        if self.safeguard == "shrink" and not result.divergence <= problem.radius:
            shrink, result = self._shrink_into_ball(problem, params)
        return StepResult(
            moved=True, divergence=result.divergence, improvement=result.improvement,
            new_log_prob=result.log_prob,
            info={"lambda": lam, "inner_steps": float(steps_taken), "shrink": shrink},
        )

    def _shrink_into_ball(self, problem: AgentProblem, params: Tensor):
        """Largest ``t`` in [0, 1] with ``D(old, old + t (params - old)) <= delta`` (bisection)."""
        delta_params = params - problem.old_params
        low, high = 0.0, 1.0
        for _ in range(self.safeguard_iterations):
            mid = 0.5 * (low + high)
            problem.set_params(problem.old_params + mid * delta_params)
            if problem.evaluate().divergence <= problem.radius:
                low = mid
            else:
                high = mid
        problem.set_params(problem.old_params + low * delta_params)
        return low, problem.evaluate()
