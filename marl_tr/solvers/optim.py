"""First-order steps on flat parameters ``[R, P]``, with state per agent and replica.

Solvers that take several gradient steps per update (primal-dual, PPO-clip) share this: the
update position of replica ``r`` may be a different agent in every replica, so optimiser
state (Adam's moments and step count) is kept per agent and gathered per replica.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.validation import check_choice, check_in_range, check_positive

__all__ = ["FlatOptimizer"]


class FlatOptimizer:
    """Plain SGD or Adam on ``[R, P]`` parameters, Adam state per (agent, replica).

    Args:
        method: ``"sgd"`` (``-lr g``) or ``"adam"`` (Kingma and Ba, bias-corrected).
        lr: step size.
        betas: Adam's ``(beta1, beta2)``.
        eps: Adam's epsilon.
    """

    def __init__(self, method: str, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.method = check_choice("optimizer", method, ("sgd", "adam"))
        self.lr = check_positive("learning rate", lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"adam_betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(check_in_range("adam_betas", b, 0.0, 1.0, high_open=True)
                           for b in betas)
        self.eps = check_positive("adam_eps", eps)
        self._state: dict[int, dict[str, Any]] = {}

    def reset(self) -> None:
        self._state = {}

    def descend(self, agents: np.ndarray, params: Tensor, gradient: Tensor,
                active: np.ndarray) -> Tensor:
        """``params`` ``[R, P]`` after one descent step along ``gradient`` ``[R, P]``;
        inactive replicas (``active``: ``[R]`` bool) keep theirs, and their optimiser state
        does not advance."""
        if self.method == "sgd":
            moved = torch.add(params, gradient, alpha=-self.lr)
            if active.all():
                return moved
            return torch.where(torch.from_numpy(active).unsqueeze(1), moved, params)
        return params + self._adam_update(agents, gradient, active)

    def _adam_update(self, agents: np.ndarray, gradient: Tensor, active: np.ndarray) -> Tensor:
        """Adam's parameter change ``[R, P]`` (zero for inactive replicas)."""
        beta1, beta2 = self.betas
        update = torch.zeros_like(gradient)
        for r, agent in enumerate(agents):  # moments per (agent, replica)
            if not active[r]:
                continue
            state = self._state.setdefault(int(agent), {
                "m": torch.zeros_like(gradient), "v": torch.zeros_like(gradient),
                "t": np.zeros(gradient.shape[0], dtype=np.int64),
            })
            g = gradient[r]
            state["t"][r] += 1
            t = int(state["t"][r])
            state["m"][r] = beta1 * state["m"][r] + (1 - beta1) * g
            state["v"][r] = beta2 * state["v"][r] + (1 - beta2) * g * g
            m_hat = state["m"][r] / (1 - beta1 ** t)
            v_hat = state["v"][r] / (1 - beta2 ** t)
            update[r] = -self.lr * m_hat / (v_hat.sqrt() + self.eps)
        return update

    def state_dict(self) -> dict[int, dict[str, Any]]:
        return {k: {n: (v.clone() if isinstance(v, Tensor) else np.array(v))
                    for n, v in s.items()} for k, s in self._state.items()}

    def load_state_dict(self, state: dict[int, dict[str, Any]]) -> None:
        self._state = {int(k): dict(v) for k, v in state.items()}
