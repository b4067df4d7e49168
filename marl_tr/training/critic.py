"""The centralised critic ``V(s)`` and generalised advantage estimation, per replica.

Team tensors are shaped ``[R, T, E]`` (replicas, steps, env copies per replica).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from marl_tr.nets import ACTIVATIONS, replicated_mlp
from marl_tr.validation import check_choice, check_int, check_positive

__all__ = ["Critic", "gae", "normalize"]


def gae(
    rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor,
    truncated: Tensor, gamma: float, lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the step axis (``-2``) of ``[..., T, E]``.

    ``delta_t = r_t + gamma (1 - term_t) V(s'_t) - V(s_t)`` with ``s'_t`` the true successor
    (so a truncated episode bootstraps and a terminated one does not), and
    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``.

    Args:
        rewards, values, next_values: ``[..., T, E]``.
        terminated, truncated: ``[..., T, E]`` bool.
        gamma: discount in [0, 1]; lam: GAE lambda in [0, 1].

    Returns:
        ``(advantages, returns)``, both ``[..., T, E]``; ``returns = advantages + values``.
    """
    not_terminal = (~terminated).to(values.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values
    steps = deltas.shape[-2]
    if steps == 1:
        return deltas, deltas + values
    continues = (~(terminated | truncated)).to(values.dtype)
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[..., 0, :])
    for t in range(steps - 1, -1, -1):
        running = deltas[..., t, :] + gamma * lam * continues[..., t, :] * running
        advantages[..., t, :] = running
    return advantages, advantages + values


def normalize(advantages: Tensor, eps: float = 1e-8) -> Tensor:
    """``(A - mean) / (std + eps)`` along the last axis (per replica for ``[R, B]``).

    All-equal advantages become exactly zero (no step). "All equal" includes a spread at the
    level of floating-point rounding (the mean of 30 copies of 0.1 is not exactly 0.1 in
    float32): a std below ``16 * machine epsilon`` times the largest magnitude carries no
    signal and gives zeros rather than amplified noise.

    In a one-step game with a constant state this cancels any state-independent baseline,
    so the critic then has no effect on the update.
    """
    centred = advantages - advantages.mean(-1, keepdim=True)
    std = centred.square().mean(-1, keepdim=True).sqrt()
    rounding = 16.0 * torch.finfo(advantages.dtype).eps * advantages.abs().amax(-1, keepdim=True)
    signal = std > rounding
    return torch.where(signal, centred / (std + eps), torch.zeros_like(advantages))


class Critic(nn.Module):
    """Centralised state-value function ``V(s)``, one per replica.

    ``hidden=()`` gives a linear ``V(s) = w.s + b`` (a learned baseline for stateless games).
    Fitted by ``epochs`` full-batch steps on ``0.5 * mean((V(s) - R)^2)`` per replica.

    Args:
        state_dim: global state size ``S``.
        hidden: MLP hidden sizes.
        activation: hidden activation.
        lr: learning rate (the paper's Table 2: 0.2).
        optimizer: ``"sgd"`` or ``"adam"``.
        epochs: gradient steps per iteration.
        replicas: ``R`` independent critics.
        generators: one torch generator per replica for the initialisation.
    """

    def __init__(
        self, state_dim: int, hidden: Sequence[int] = (), activation: str = "tanh",
        lr: float = 0.2, optimizer: str = "sgd", epochs: int = 1, replicas: int = 1,
        generators: Sequence[torch.Generator] | None = None,
    ) -> None:
        super().__init__()
        check_choice("activation", activation, ACTIVATIONS)
        self.replicas = check_int("replicas", replicas, minimum=1)
        sizes = (check_int("state_dim", state_dim, minimum=0), *hidden, 1)
        self.net = replicated_mlp(replicas, sizes, activation, generators)
        with torch.no_grad():
            self.net[-1].weight.zero_()
            self.net[-1].bias.zero_()
        self.lr = check_positive("critic lr", lr)
        self.epochs = check_int("critic epochs", epochs, minimum=0)
        self.optimizer_name = check_choice("critic optimizer", optimizer, ("sgd", "adam"))
        cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        self.optimizer = cls(self.parameters(), lr=self.lr)
        # a linear critic under plain SGD has a closed-form gradient: skip autograd
        self._closed_form_sgd = len(self.net) == 1 and optimizer == "sgd"

    @property
    def autograd_free(self) -> bool:
        """Whether ``fit`` needs no autograd (a linear critic under plain SGD)."""
        return self._closed_form_sgd

    def forward(self, states: Tensor) -> Tensor:
        """``V(s)`` for states ``[R, ..., S]`` -> ``[R, ...]``."""
        flat = states.reshape(self.replicas, -1, states.shape[-1])
        return self.net(flat).reshape(states.shape[:-1])

    def fit(self, states: Tensor, returns: Tensor) -> list[float]:
        """Gradient steps towards ``returns``; returns each replica's last loss.

        Args:
            states: ``[R, ..., S]``; returns: ``[R, ...]``.
        """
        states = states.reshape(self.replicas, -1, states.shape[-1])
        returns = returns.reshape(self.replicas, -1)
        if self._closed_form_sgd:
            return self._fit_linear_sgd(states, returns)
        losses = torch.zeros(self.replicas)
        for _ in range(self.epochs):
            with torch.enable_grad():
                losses = 0.5 * (self.net(states).squeeze(-1) - returns).square().mean(1)
                self.optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()  # replicas have separate parameters
            self.optimizer.step()
        return losses.detach().tolist()

    @torch.no_grad()
    def _fit_linear_sgd(self, states: Tensor, returns: Tensor) -> list[float]:
        """SGD on ``0.5 mean((w.s + b - R)^2)`` with its exact gradient
        (``mean(err s)``, ``mean(err)``): the same steps as the autograd path, faster."""
        layer = self.net[0]
        losses = [0.0] * self.replicas
        for _ in range(self.epochs):
            error = (layer(states).squeeze(-1) - returns)  # [R, N]
            losses = (0.5 * error.square().mean(1)).tolist()
            layer.weight.sub_(self.lr * (error.unsqueeze(-1) * states).mean(1).unsqueeze(-1))
            layer.bias.sub_(self.lr * error.mean(1, keepdim=True))
        return losses
