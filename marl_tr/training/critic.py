"""The centralised critic ``V(s)`` and generalised advantage estimation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from marl_tr.policies import ACTIVATIONS
from marl_tr.validation import check_choice, check_int, check_positive

__all__ = ["Critic", "gae", "normalize"]


def gae(
    rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor,
    truncated: Tensor, gamma: float, lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over ``T`` steps of ``E`` copies.

    ``delta_t = r_t + gamma (1 - term_t) V(s'_t) - V(s_t)`` with ``s'_t`` the true successor
    (so a truncated episode bootstraps and a terminated one does not), and
    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``.

    Args:
        rewards, values, next_values: ``[T, E]``.
        terminated, truncated: ``[T, E]`` bool.
        gamma: discount in [0, 1]; lam: GAE lambda in [0, 1].

    Returns:
        ``(advantages, returns)``, both ``[T, E]``; ``returns = advantages + values``.
    """
    not_terminal = (~terminated).to(values.dtype)
    continues = (~(terminated | truncated)).to(values.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values
    if deltas.shape[0] == 1:
        return deltas, deltas + values
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * continues[t] * running
        advantages[t] = running
    return advantages, advantages + values


def normalize(advantages: Tensor, eps: float = 1e-8) -> Tensor:
    """``(A - mean) / (std + eps)``. All-equal advantages become exactly zero (no step).

    "All equal" includes a spread at the level of floating-point rounding (the mean of 30
    copies of 0.1 is not exactly 0.1 in float32): a std below ``16 * machine epsilon`` times
    the largest magnitude carries no signal and gives zeros rather than amplified noise.

    In a one-step game with a constant state this cancels any state-independent baseline,
    so the critic then has no effect on the update.
    """
    centred = advantages - advantages.mean()
    std = centred.square().mean().sqrt()
    rounding = 16.0 * torch.finfo(advantages.dtype).eps * advantages.abs().max()
    if not bool(std > rounding):
        return torch.zeros_like(advantages)
    return centred / (std + eps)


class Critic(nn.Module):
    """Centralised state-value function ``V(s)``.

    ``hidden=()`` gives a linear ``V(s) = w.s + b`` (a learned baseline for stateless games).
    Fitted by ``epochs`` full-batch steps on ``0.5 * mean((V(s) - R)^2)``.

    Args:
        state_dim: global state size ``S``.
        hidden: MLP hidden sizes.
        activation: hidden activation.
        lr: learning rate (the paper's Table 2: 0.2).
        optimizer: ``"sgd"`` or ``"adam"``.
        epochs: gradient steps per iteration.
    """

    def __init__(
        self, state_dim: int, hidden: Sequence[int] = (), activation: str = "tanh",
        lr: float = 0.2, optimizer: str = "sgd", epochs: int = 1,
    ) -> None:
        super().__init__()
        check_choice("activation", activation, ACTIVATIONS)
        sizes = (check_int("state_dim", state_dim, minimum=0), *hidden, 1)
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
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

    def forward(self, states: Tensor) -> Tensor:
        """``V(s)`` for states ``[..., S]`` -> ``[...]``."""
        if len(self.net) == 1:  # linear: skip the container's call overhead
            layer = self.net[0]
            return torch.nn.functional.linear(states, layer.weight, layer.bias).squeeze(-1)
        return self.net(states).squeeze(-1)

    def fit(self, states: Tensor, returns: Tensor) -> float:
        """Gradient steps towards ``returns``; returns the last loss."""
        states = states.reshape(-1, states.shape[-1])
        returns = returns.reshape(-1)
        if self._closed_form_sgd:
            return self._fit_linear_sgd(states, returns)
        loss = torch.zeros(())
        for _ in range(self.epochs):
            with torch.enable_grad():
                loss = 0.5 * (self(states) - returns).pow(2).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def _fit_linear_sgd(self, states: Tensor, returns: Tensor) -> float:
        """SGD on ``0.5 mean((w.s + b - R)^2)`` with its exact gradient
        (``mean(err s)``, ``mean(err)``): the same steps as the autograd path, faster."""
        layer = self.net[0]
        scale = self.lr / states.shape[0]
        loss = 0.0
        for _ in range(self.epochs):
            error = torch.nn.functional.linear(states, layer.weight, layer.bias).squeeze(-1)
            error = error - returns
            loss = 0.5 * float(error.square().mean())
            layer.weight.sub_(scale * (error @ states).unsqueeze(0))
            layer.bias.sub_(scale * error.sum())
        return loss
