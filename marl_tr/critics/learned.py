"""A learned centralised ``Q_phi(s, a)`` (eq. 19), registered as critic ``q``.

Trained on the TD error of eq. 19 over a replay buffer ``D`` of the run's transitions
(Q evaluates any joint action, so past batches are valid data):

    ``L(phi) = E_{(s, a, r, s') ~ D} [(r + gamma (1 - terminated) V_target(s') - Q_phi(s, a))^2]``

``V_target`` is a Polyak average (rate ``tau``) of the loop's state-value critic, kept beside
``Q``. In a one-step game every transition terminates and the target is the reward itself.
Inputs are the global state and the joint action (``JointActionEncoder``). Every replica has
its own network, optimiser moments, buffer rows and minibatch stream (seeded from
``seed + r``), so replicas never mix.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.critics.base import CRITICS, ActionCritic, JointActionEncoder
from marl_tr.nets import ACTIVATIONS, replicated_mlp
from marl_tr.validation import check_choice, check_in_range, check_int, check_positive

__all__ = ["LearnedQ"]


def _stream(seed: int, purpose: int) -> torch.Generator:
    """A torch generator for one replica and purpose (1: networks, 3: Q init, 4: minibatches)."""
    state = np.random.SeedSequence([seed, purpose]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


@CRITICS.register("q")
class LearnedQ(ActionCritic):
    """Centralised ``Q_phi(s, a)`` trained on eq. 19's TD error from a replay buffer.

    Defaults (our choices; the paper gives none): a (32, 32) ReLU MLP, Adam 3e-3, 4 minibatch
    steps of 128 per iteration over the last 3000 transitions, tau 0.05. On the 2-agent
    differential game they learn r(a) to a mean absolute error of about 0.008 (2% of the
    higher peak) from uniform actions in 150 iterations (tests/training/test_action_critics);
    (64, 64) gets 0.005 at about 1.6 times the cost of a dual step.

    Args:
        hidden: MLP hidden sizes.
        activation: hidden activation.
        lr: Adam step size.
        updates: minibatch gradient steps per iteration.
        minibatch: transitions per step (per replica).
        buffer: replay capacity in transitions per replica (oldest overwritten first).
        tau: Polyak rate of ``V_target`` towards the loop's ``V`` (1: a copy each iteration).
    """

    action_values = True
    autograd_free = False

    def __init__(self, hidden: Sequence[int] = (32, 32), activation: str = "relu",
                 lr: float = 3e-3, updates: int = 4, minibatch: int = 128, buffer: int = 3000,
                 tau: float = 0.05) -> None:
        self.hidden = tuple(check_int("hidden layer size", h, minimum=1)
                            for h in ((hidden,) if isinstance(hidden, int) else hidden))
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.lr = check_positive("lr", lr)
        self.updates = check_int("updates", updates, minimum=0)
        self.minibatch = check_int("minibatch", minibatch, minimum=1)
        self.buffer = check_int("buffer", buffer, minimum=1)
        self.tau = check_in_range("tau", tau, 0.0, 1.0, low_open=True)

    def reset(self, env: Any, replicas: int, seed: int, gamma: float,
              value_critic: torch.nn.Module) -> None:
        self.replicas, self.gamma = replicas, gamma
        self.encoder = JointActionEncoder(env.action_spaces)
        self.state_dim = env.state_dim
        sizes = (self.state_dim + self.encoder.size, *self.hidden, 1)
        self.net = replicated_mlp(replicas, sizes, self.activation,
                                  [_stream(seed + r, 3) for r in range(replicas)])
        with torch.no_grad():
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.zero_()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.generators = [_stream(seed + r, 4) for r in range(replicas)]
        self.value_target = copy.deepcopy(value_critic)
        for p in self.value_target.parameters():
            p.requires_grad_(False)
        self.size = self.position = 0
        self.data: dict[str, Tensor] = {}

    # -- values ----------------------------------------------------------------------------
    def _forward(self, states: Tensor, encoded: Tensor) -> Tensor:
        """``[R, N, S]`` and ``[R, N, A]`` -> ``[R, N]``."""
        return self.net(torch.cat((states, encoded), dim=-1)).squeeze(-1)

    def q_values(self, states: Tensor, joint: Sequence[Tensor]) -> Tensor:
        encoded = self.encoder.encode(joint).to(states.dtype)
        r = self.replicas
        out = self._forward(states.reshape(r, -1, states.shape[-1]),
                            encoded.reshape(r, -1, encoded.shape[-1]))
        return out.reshape(-1)

    # -- learning ----------------------------------------------------------------------------
    def _store(self, batch: Any) -> None:
        """Append the batch's transitions to every replica's ring buffer."""
        r = self.replicas
        new = {
            "states": batch.states.reshape(r, -1, self.state_dim),
            "actions": self.encoder.encode(batch.actions).to(batch.states.dtype).reshape(
                r, -1, self.encoder.size),
            "rewards": batch.rewards.reshape(r, -1),
            "continues": (~batch.terminated).to(batch.states.dtype).reshape(r, -1),
            "next_states": batch.final_states.reshape(r, -1, self.state_dim),
        }
        count = new["rewards"].shape[1]
        if not self.data:
            self.data = {k: torch.zeros(r, self.buffer, *v.shape[2:], dtype=v.dtype)
                         for k, v in new.items()}
        index = (self.position + torch.arange(count)) % self.buffer
        for key, values in new.items():
            self.data[key][:, index] = values[:, -self.buffer:] if count > self.buffer else values
        self.position = int((self.position + count) % self.buffer)
        self.size = min(self.buffer, self.size + count)

    def _update_target(self, value_critic: torch.nn.Module) -> None:
        with torch.no_grad():
            for target, source in zip(self.value_target.parameters(), value_critic.parameters()):
                target.lerp_(source, self.tau)

    def fit(self, batch: Any, value_critic: Any) -> list[float]:
        self._store(batch)
        self._update_target(value_critic)
        losses = torch.full((self.replicas,), float("nan"))
        d = self.data
        for _ in range(self.updates):
            index = torch.stack([torch.randint(self.size, (self.minibatch,), generator=g)
                                 for g in self.generators])  # [R, M]
            rows = index.unsqueeze(-1)

            def take(key: str, rows: Tensor = rows, index: Tensor = index) -> Tensor:
                values = d[key]
                if values.dim() == 2:
                    return values.gather(1, index)
                return values.gather(1, rows.expand(-1, -1, values.shape[-1]))

            with torch.no_grad():
                bootstrap = self.value_target(take("next_states"))
                targets = take("rewards") + self.gamma * take("continues") * bootstrap
            with torch.enable_grad():
                prediction = self._forward(take("states"), take("actions"))
                losses = 0.5 * (prediction - targets).square().mean(1)
                self.optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()  # replicas have separate parameters
            self.optimizer.step()
        return losses.detach().tolist()

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
            "value_target": self.value_target.state_dict(),
            "generators": [g.get_state() for g in self.generators],
            "data": dict(self.data), "size": self.size, "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        for generator, saved in zip(self.generators, state["generators"]):
            generator.set_state(saved)
        self.data = {k: v.clone() for k, v in state["data"].items()}
        self.size, self.position = int(state["size"]), int(state["position"])
        self.value_target.load_state_dict(state["value_target"])
