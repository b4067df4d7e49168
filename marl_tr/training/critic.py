"""The centralised critic ``V(s)`` and generalised advantage estimation, per replica.

Team tensors are shaped ``[R, T, E]`` (replicas, steps, env copies per replica).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from marl_tr.nets import ACTIVATIONS, replicated_mlp
from marl_tr.validation import check_choice, check_int, check_positive

__all__ = ["Critic", "LazyOptimizer", "gae", "normalize"]


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


def normalize(advantages: Tensor) -> Tensor:
    """``(A - mean) / std`` along the last axis (per replica for ``[R, B]``), scale-invariant.

    ``normalize(c * A) == normalize(A)`` for every ``c > 0`` (exactly for powers of two, to
    rounding otherwise): no absolute epsilon is added to ``std``, and ``std`` is computed
    from ``(A - mean) / max|A - mean|``, so advantages of size ``1e-12`` or ``1e12`` neither
    shrink nor under- or overflow. (HARL's ``/ (std + 1e-8)`` scaled advantages of size
    ``1e-12`` down by ``1e4``: the surrogate gains fell below rounding and some solvers
    stopped moving.)

    All-equal advantages become exactly zero (no step). "All equal" includes a spread at the
    level of floating-point rounding (the mean of 30 copies of 0.1 is not exactly 0.1 in
    float32): a std below ``16 * machine epsilon`` times the largest magnitude carries no
    signal and gives zeros rather than amplified noise. That test is relative too.

    In a one-step game with a constant state this cancels any state-independent baseline,
    so the critic then has no effect on the update.

    Args:
        advantages: ``[..., B]``.

    Returns:
        ``[..., B]``: mean 0 and (population) std 1 along the last axis, or all zeros.
    """
    centred = advantages - advantages.mean(-1, keepdim=True)
    spread = centred.abs().amax(-1, keepdim=True)
    unit = centred / torch.where(spread > 0, spread, torch.ones_like(spread))  # in [-1, 1]
    unit_std = unit.square().mean(-1, keepdim=True).sqrt()  # in [1 / sqrt(B), 1], or 0
    rounding = 16.0 * torch.finfo(advantages.dtype).eps * advantages.abs().amax(-1, keepdim=True)
    signal = spread * unit_std > rounding
    return torch.where(signal, unit / torch.where(signal, unit_std, torch.ones_like(unit_std)),
                       torch.zeros_like(advantages))


class LazyOptimizer:
    """A ``torch.optim`` optimiser built on first use.

    Building any ``torch.optim`` optimiser imports ``torch._dynamo`` (about 1.2 s), and a
    linear critic under plain SGD never uses its optimiser (``Critic`` steps it in closed
    form). Until the first ``step``/``zero_grad`` (or any other attribute), ``state_dict``
    gives what the built optimiser's would (``{"state": {}, "param_groups": [...]}``; SGD
    only, others are built for it) and ``load_state_dict`` keeps the state, checked as torch
    checks it, to load when built. Once built, every call goes to the optimiser, so the
    steps are those of an optimiser built eagerly.

    Args:
        cls: the optimiser class (``torch.optim.SGD`` or ``torch.optim.Adam``).
        params: the parameters to optimise (one group).
        lr: the learning rate.
    """

    def __init__(self, cls: type[torch.optim.Optimizer], params: Iterable[Tensor],
                 lr: float) -> None:
        self._cls = cls
        self._params = list(params)
        self._lr = lr
        self._optimizer: torch.optim.Optimizer | None = None
        self._pending: dict[str, Any] | None = None

    @property
    def built(self) -> bool:
        """Whether the torch optimiser exists yet."""
        return self._optimizer is not None

    def get(self) -> torch.optim.Optimizer:
        """The torch optimiser (built now if needed, with any state loaded before)."""
        if self._optimizer is None:
            optimizer = self._cls(self._params, lr=self._lr)
            if self._pending is not None:
                optimizer.load_state_dict(self._pending)
            self._optimizer, self._pending = optimizer, None
        return self._optimizer

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.get().zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.get().step()

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's ``state_dict``, without building a plain SGD optimiser."""
        if self._optimizer is None and self._cls is torch.optim.SGD:
            if self._pending is not None:
                return self._pending
            arguments = inspect.signature(self._cls).bind(self._params, lr=self._lr)
            arguments.apply_defaults()
            group = {k: v for k, v in arguments.arguments.items() if k != "params"}
            return {"state": {}, "param_groups": [{**group,
                                                   "params": list(range(len(self._params)))}]}
        return self.get().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load ``state`` now (built) or when built; checked now either way.

        Raises:
            ValueError: not one parameter group of this optimiser's size (torch's check).
        """
        if self._optimizer is not None:
            self._optimizer.load_state_dict(state)
            return
        groups = state["param_groups"]
        if len(groups) != 1:
            raise ValueError("loaded state dict has a different number of parameter groups")
        if len(groups[0]["params"]) != len(self._params):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        self._pending = state

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)


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
        self.optimizer = LazyOptimizer(cls, self.parameters(), lr=self.lr)
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
