"""Clipped-surrogate steps: the PPO family (HAPPO when sequential, MAPPO when simultaneous).

Each update takes ``epochs`` full-batch gradient steps (Adam by default) on PPO's clipped
surrogate ``E[min(M r, M clip(r, 1 - clip, 1 + clip))]``, ``r = pi_theta(a_i) / pi_old(a_i)``
and ``M`` the loop's (importance-corrected, eq. 15) advantage. Its gradient is written in
closed form through the policy's linearisation: ``M r grad log pi`` on the samples where the
unclipped term is the smaller one, zero elsewhere (no autograd). The clip is the trust region;
the loop's divergence is still measured and logged against the radius, and with
``early_stop`` a replica's step that takes the divergence past its radius is undone and its
epochs stop there (PPO's target-KL rule, as a hard bound).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from marl_tr.solvers.base import SOLVERS, AgentProblem, Solver, StepResult, gradient_status
from marl_tr.solvers.optim import FlatOptimizer
from marl_tr.validation import check_in_range, check_int, check_positive

__all__ = ["PPOClip"]


@SOLVERS.register("ppo_clip", aliases=("ppo",))
class PPOClip(Solver):
    """PPO's clipped-surrogate update of one agent (Schulman et al. 2017; HAPPO, Kuba et al.
    2022, when the loop updates agents sequentially).

    Defaults follow the public HARL implementation's actor settings (clip 0.2, 5 epochs,
    Adam, learning rate 5e-4).

    Args:
        clip: the ratio clip ``epsilon`` (0 < clip < 1).
        epochs: full-batch gradient steps per update.
        lr: step size.
        optimizer: ``"adam"`` or ``"sgd"``.
        early_stop: undo a replica's epoch that takes ``E_s D`` past its radius and stop.
        adam_betas: Adam's ``(beta1, beta2)``.
        adam_eps: Adam's epsilon.
    """

    info_keys = ("epochs", "clip_fraction")
    autograd_free = True

    def __init__(
        self,
        clip: float = 0.2,
        epochs: int = 5,
        lr: float = 5e-4,
        optimizer: str = "adam",
        early_stop: bool = False,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        adam_eps: float = 1e-8,
    ) -> None:
        self.clip = check_in_range("clip", clip, 0.0, 1.0, low_open=True, high_open=True)
        self.epochs = check_int("epochs", epochs, minimum=1)
        self.lr = check_positive("lr", lr)
        self.optimizer = optimizer
        if not isinstance(early_stop, bool):
            raise ValueError(f"early_stop must be true or false, got {early_stop!r}")
        self.early_stop = early_stop
        self.adam_betas = tuple(adam_betas) if isinstance(adam_betas, list) else adam_betas
        self.adam_eps = adam_eps
        self._optimizer = FlatOptimizer(optimizer, lr, adam_betas, adam_eps)

    def reset(self, n_agents: int, replicas: int = 1) -> None:
        self._optimizer.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"adam": self._optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._optimizer.load_state_dict(state.get("adam", {}))

    def unclipped(self, problem: AgentProblem, log_prob: torch.Tensor) -> torch.Tensor:
        """``[R*B]`` bool: where ``min(M r, M clip(r))`` is the unclipped term (the gradient
        flows there)."""
        ratio = torch.exp(log_prob - problem.old_log_prob)
        clipped = ratio.clamp(1.0 - self.clip, 1.0 + self.clip)
        return problem.weights * ratio <= problem.weights * clipped

    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        first_gradient = problem.surrogate_gradient()  # r = 1: nothing is clipped yet
        active, reasons = gradient_status(first_gradient, problem)
        if not active.any():
            return problem.no_step(reasons)
        started = active.copy()
        params, lin, log_prob = problem.old_params, problem.old_linearization, problem.old_log_prob
        epochs = np.zeros(problem.replicas)
        divergence = None
        for epoch in range(self.epochs):
            gradient = first_gradient if epoch == 0 else problem.surrogate_gradient(
                lin, log_prob=log_prob, mask=self.unclipped(problem, log_prob))
            point = problem.at(self._optimizer.descend(agents, params, -gradient, active))
            if not point.finite[active].all():
                warnings.warn("non-finite PPO step: those replicas stop at their last finite "
                              "parameters", RuntimeWarning, stacklevel=2)
            keep = point.finite & (point.divergence <= problem.radius if self.early_stop
                                   else True)
            undone = active & ~keep
            if undone.any():  # back to the last parameters inside the bounds, and stop there
                point = problem.at(torch.where(torch.from_numpy(undone).unsqueeze(1), params,
                                               point.params))
                active &= keep
            params, lin, log_prob = point.params, point.linearization, point.log_prob
            divergence = point.divergence
            epochs += active
            if not active.any():
                break
        result = problem.evaluation_of(lin.dist, log_prob, divergence)
        ratio = torch.exp(log_prob - problem.old_log_prob)
        outside = ((ratio - 1.0).abs() > self.clip).to(torch.float64)  # PPO's clip fraction
        clip_fraction = outside.view(problem.replicas, -1).mean(1).numpy()
        moved = (epochs > 0) & np.isfinite(result.improvement) & np.isfinite(result.divergence)
        reasons = [r or ("" if m else "no epoch kept") for r, m in zip(reasons, moved)]
        return problem.finish(
            moved, params, result.divergence, result.improvement, result.log_prob, reasons,
            info={"epochs": np.where(started, epochs, np.nan),
                  "clip_fraction": np.where(started, clip_fraction, np.nan)},
        )
