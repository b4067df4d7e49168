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
from marl_tr.nets import (
    ACTIVATIONS,
    Workspace,
    forward_in_workspace,
    replicated_mlp,
    squared_error_gradients,
)
from marl_tr.validation import check_choice, check_in_range, check_int, check_positive

__all__ = ["DEFAULT_BUFFER", "LearnedQ"]

#: Replay capacity (transitions per replica) when one iteration's batch is smaller.
DEFAULT_BUFFER = 3000


def _stream(seed: int, purpose: int) -> torch.Generator:
    """A torch generator for one replica and purpose (1: networks, 3: Q init, 4: minibatches)."""
    state = np.random.SeedSequence([seed, purpose]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


@CRITICS.register("q")
class LearnedQ(ActionCritic):
    """Centralised ``Q_phi(s, a)`` trained on eq. 19's TD error from a replay buffer.

    Defaults (our choices; the paper gives none): a (32, 32) ReLU MLP, Adam 3e-3 (torch's fused
    CPU kernel), 4 minibatch steps of 128 per iteration over the last 3000 transitions (or the
    last batch, where one iteration collects more), tau 0.05. On the 2-agent
    differential game they learn r(a) to a mean absolute error of about 0.008 (2% of the
    higher peak) from uniform actions in 150 iterations (tests/training/test_action_critics);
    (64, 64) gets 0.005 at about 1.6 times the cost of a dual step.

    Args:
        hidden: MLP hidden sizes.
        activation: hidden activation.
        lr: Adam step size.
        updates: minibatch gradient steps per iteration.
        minibatch: transitions per step (per replica).
        buffer: replay capacity in transitions per replica (oldest overwritten first);
            ``None``: 3000, or one iteration's batch where that is larger (a multi-step env's
            4,000 transitions).
        tau: Polyak rate of ``V_target`` towards the loop's ``V`` (1: a copy each iteration).
    """

    action_values = True
    autograd_free = True  # its fit writes out its gradients (``squared_error_gradients``)

    def __init__(self, hidden: Sequence[int] = (32, 32), activation: str = "relu",
                 lr: float = 3e-3, updates: int = 4, minibatch: int = 128,
                 buffer: int | None = None, tau: float = 0.05) -> None:
        self.hidden = tuple(check_int("hidden layer size", h, minimum=1)
                            for h in ((hidden,) if isinstance(hidden, int) else hidden))
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.lr = check_positive("lr", lr)
        self.updates = check_int("updates", updates, minimum=0)
        self.minibatch = check_int("minibatch", minibatch, minimum=1)
        self.buffer = None if buffer is None else check_int("buffer", buffer, minimum=1)
        self.capacity = self.buffer  # None until the first batch shows its size
        self.tau = check_in_range("tau", tau, 0.0, 1.0, low_open=True)

    def reset(self, env: Any, replicas: int, seed: int, gamma: float,
              value_critic: torch.nn.Module) -> None:
        self.replicas, self.gamma = replicas, gamma
        self.encoder = JointActionEncoder(env.action_spaces)
        self._columns: dict[int, slice] = {}  # agent -> its input columns (_input_columns)
        self._workspace = Workspace()  # candidate_q's large tensors, kept between calls
        self.state_dim = env.state_dim
        sizes = (self.state_dim + self.encoder.size, *self.hidden, 1)
        self.net = replicated_mlp(replicas, sizes, self.activation,
                                  [_stream(seed + r, 3) for r in range(replicas)])
        with torch.no_grad():
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.zero_()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, fused=True)
        self.generators = [_stream(seed + r, 4) for r in range(replicas)]
        self.value_target = copy.deepcopy(value_critic)
        for p in self.value_target.parameters():
            p.requires_grad_(False)
        self.size = self.position = 0
        self.capacity = self.buffer
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

    def batch_features(self, states: Tensor, joint: Sequence[Tensor]) -> Tensor:
        """The network's inputs for the batch ``[R, B, S + A]`` (state, encoded joint action)."""
        encoded = self.encoder.encode(joint).to(states.dtype)
        features = torch.cat((states, encoded), dim=-1)
        return features.reshape(self.replicas, -1, features.shape[-1])

    def candidate_q(self, features: Tensor, agents: np.ndarray, candidates: Tensor) -> Tensor:
        """The batch's inputs repeated per candidate, the updated agent's columns replaced by
        its encoded candidates: one forward pass for all ``[R*B, K]``."""
        rows, k = candidates.shape[:2]
        replicas, batch, width = features.shape
        # [R, B*K, F]: each sample's inputs once per candidate, in a kept buffer (Workspace)
        inputs = self._workspace.get("inputs", (replicas, batch * k, width), features.dtype)
        inputs.view(replicas, batch, k, width).copy_(features.unsqueeze(2))
        flat = candidates.reshape(replicas, batch * k, *candidates.shape[2:])
        first = int(agents[0])
        updated = (first,) if (agents == first).all() else np.unique(agents).tolist()
        for agent in updated:
            cols = self._input_columns(agent)
            encoded = self.encoder.encode_agent(agent, flat).to(
                torch.get_default_dtype()).to(features.dtype)
            if len(updated) == 1:
                inputs[:, :, cols] = encoded
            else:
                chosen = torch.from_numpy(agents == agent)
                inputs[chosen, :, cols] = encoded[chosen]
        return forward_in_workspace(self.net, inputs, self._workspace).squeeze(-1).reshape(rows, k)

    def _input_columns(self, agent: int) -> slice:
        """Agent ``agent``'s columns in the network's input (after the state's)."""
        if agent not in self._columns:
            cols = self.encoder.columns(agent)
            self._columns[agent] = slice(self.state_dim + cols.start, self.state_dim + cols.stop)
        return self._columns[agent]

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
            self.capacity = self.buffer or max(DEFAULT_BUFFER, count)
            self.data = {k: torch.zeros(r, self.capacity, *v.shape[2:], dtype=v.dtype)
                         for k, v in new.items()}
        capacity = self.capacity
        # as if written one by one: a batch larger than the buffer leaves its last rows
        skip = max(0, count - capacity)
        index = (self.position + skip + torch.arange(count - skip)) % capacity
        for key, values in new.items():
            self.data[key][:, index] = values[:, skip:]
        self.position = int((self.position + count) % capacity)
        self.size = min(capacity, self.size + count)

    def _update_target(self, value_critic: torch.nn.Module) -> None:
        with torch.no_grad():
            for target, source in zip(self.value_target.parameters(), value_critic.parameters()):
                target.lerp_(source, self.tau)

    def fit(self, batch: Any, value_critic: Any) -> list[float]:
        self._store(batch)
        self._update_target(value_critic)
        if not self.updates:
            return [float("nan")] * self.replicas
        # every step's minibatch drawn at once: each replica's stream in the order of
        # one draw per step
        index = torch.stack([torch.randint(self.size, (self.updates, self.minibatch), generator=g)
                             for g in self.generators]).view(self.replicas, -1)  # [R, U*M]

        def take(key: str) -> Tensor:
            """Rows ``index`` of a buffer, step-major: ``[U, R, M, ...]``."""
            values = self.data[key]
            rows = index if values.dim() == 2 else index.unsqueeze(-1).expand(
                -1, -1, values.shape[-1])
            taken = values.gather(1, rows).view(self.replicas, self.updates, self.minibatch,
                                                *values.shape[2:])
            return taken.transpose(0, 1).contiguous()

        with torch.no_grad():
            targets, continues = take("rewards"), take("continues")
            if bool(continues.any()):  # one-step games end every transition: no bootstrap
                targets = targets + self.gamma * continues * self.value_target(
                    take("next_states"))
        inputs = torch.cat((take("states"), take("actions")), dim=-1)  # [U, R, M, S + A]
        parameters = list(self.net.parameters())
        for step in range(self.updates):
            # replicas have separate parameters: each replica's gradient is its own loss's
            losses, grads = squared_error_gradients(self.net, inputs[step], targets[step])
            for parameter, grad in zip(parameters, grads):
                parameter.grad = grad
            self.optimizer.step()
        return losses.tolist()

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
        self.capacity = (self.data["rewards"].shape[1] if self.data else self.buffer)
        self.size, self.position = int(state["size"]), int(state["position"])
        self.value_target.load_state_dict(state["value_target"])
