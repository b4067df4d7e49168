"""The run's state-value critics: one centralised ``V(s)`` or per-agent ``V_i(o_i)``, with
value normalisation and critic passes over minibatches.

- **Heads.** A centralised critic (``critic="v"``, ``"q"``, ...) has one head on the global
  state, trained on the team reward. A per-agent critic (``critic="v_local"``, IPPO) has one
  head per agent on that agent's own observation, trained on its own reward where the env
  gives per-agent rewards (PettingZoo envs), else on the team reward.
- **Value normalisation** (``value_norm``): each head predicts its targets scaled by a running
  mean and standard deviation of all targets seen so far (``RunningMoments``; HARL's
  ``ValueNorm`` keeps nearly the same moments with an exponential average of rate 1e-5). The
  loop sees denormalised values; the moments are updated with each iteration's targets just
  before the critic is fitted to them.
- **Minibatches** (``critic_minibatches``): each of ``critic_epochs`` passes shuffles the
  batch (per replica, from the replica's own stream) and takes one optimiser step per
  minibatch on ``0.5 * mean((V - target)^2)``.

With one centralised head, no value normalisation and one minibatch, fitting is exactly
``Critic.fit`` (the paper's runs are unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.training.critic import Critic
from marl_tr.validation import check_int

__all__ = ["RunningMoments", "ValueFunction", "fit_minibatches"]


class RunningMoments:
    """Running mean and (population) variance of every value seen, per group ``[G]``.

    Batches are merged exactly (Chan et al.'s parallel update), so the moments after several
    batches equal those of their concatenation. Kept in float64.

    Args:
        groups: ``G`` independent streams (e.g. heads x replicas).
        floor: the smallest std used to scale (keeps constant targets finite).
    """

    def __init__(self, groups: int, floor: float = 1e-4) -> None:
        self.groups = check_int("groups", groups, minimum=1)
        self.floor = floor
        self.mean = torch.zeros(groups, dtype=torch.float64)
        self.var = torch.ones(groups, dtype=torch.float64)
        self.count = torch.zeros(groups, dtype=torch.float64)

    def update(self, values: Tensor) -> None:
        """Merge a batch ``[G, N]``."""
        x = values.detach().to(torch.float64)
        n = x.shape[1]
        batch_mean = x.mean(1)
        batch_var = x.var(1, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        new_mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean, self.var, self.count = new_mean, m2 / total, total

    @property
    def std(self) -> Tensor:
        """``[G]``: ``sqrt(var)``, at least ``floor``."""
        return self.var.sqrt().clamp_min(self.floor)

    def normalize(self, values: Tensor) -> Tensor:
        """``(values - mean) / std`` for ``[G, ...]`` (in ``values``' dtype)."""
        shape = (-1,) + (1,) * (values.dim() - 1)
        return ((values - self.mean.view(shape).to(values.dtype))
                / self.std.view(shape).to(values.dtype))

    def denormalize(self, values: Tensor) -> Tensor:
        """``values * std + mean`` for ``[G, ...]``."""
        shape = (-1,) + (1,) * (values.dim() - 1)
        return (values * self.std.view(shape).to(values.dtype)
                + self.mean.view(shape).to(values.dtype))

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.mean = state["mean"].clone().to(torch.float64)
        self.var = state["var"].clone().to(torch.float64)
        self.count = state["count"].clone().to(torch.float64)


def fit_minibatches(critic: Critic, inputs: Tensor, targets: Tensor, epochs: int,
                    minibatches: int, generators: Sequence[torch.Generator]) -> list[float]:
    """``epochs`` passes of minibatch steps of ``critic`` towards ``targets``.

    Each pass draws a fresh permutation of every replica's samples (from its generator) and
    splits it into ``minibatches`` nearly equal parts, one optimiser step each, on
    ``0.5 * mean((V - target)^2)`` per replica (replicas have separate parameters).

    Args:
        critic: the critic (its ``net`` and ``optimizer`` are used).
        inputs: ``[R, N, D]``; targets: ``[R, N]``.
        generators: one per replica.

    Returns:
        Per replica, the mean minibatch loss of the last pass (0 with ``epochs = 0``).
    """
    replicas, n = targets.shape
    losses = torch.zeros(replicas)
    for _ in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in generators])  # [R, N]
        pass_losses = []
        for rows in torch.tensor_split(order, min(minibatches, n), dim=1):
            x = torch.gather(inputs, 1, rows.unsqueeze(-1).expand(-1, -1, inputs.shape[-1]))
            y = torch.gather(targets, 1, rows)
            with torch.enable_grad():
                loss = 0.5 * (critic.net(x).squeeze(-1) - y).square().mean(1)
                critic.optimizer.zero_grad(set_to_none=True)
                loss.sum().backward()
            critic.optimizer.step()
            pass_losses.append(loss.detach())
        losses = torch.stack(pass_losses).mean(0)
    return losses.tolist()


def _stream(seed: int) -> torch.Generator:
    """Replica ``seed``'s minibatch stream (purpose 5; see ``critics.learned._stream``)."""
    state = np.random.SeedSequence([seed, 5]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


class ValueFunction:
    """The loop's state-value critic(s).

    Args:
        critics: one ``Critic`` (centralised, on the global state) or one per agent (on the
            agents' observations), each holding ``R`` replicas.
        per_agent: the critics are per agent (``len(critics) == n``).
        epochs: critic passes per iteration.
        minibatches: minibatches per pass.
        value_norm: normalise targets by running moments.
        seed: the run's seed (replica ``r`` shuffles from a stream of ``seed + r``).
    """

    def __init__(self, critics: Sequence[Critic], *, per_agent: bool, epochs: int,
                 minibatches: int, value_norm: bool, seed: int) -> None:
        self.critics = list(critics)
        self.per_agent = per_agent
        self.heads = len(self.critics)
        self.replicas = self.critics[0].replicas
        self.epochs = check_int("critic_epochs", epochs, minimum=0)
        self.minibatches = check_int("critic_minibatches", minibatches, minimum=1)
        self.norm = RunningMoments(self.heads * self.replicas) if value_norm else None
        self.generators = [_stream(seed + r) for r in range(self.replicas)]
        #: ``Critic.fit`` as it is: one centralised head, plain targets, the full batch
        self.plain = self.heads == 1 and not per_agent and self.norm is None and minibatches == 1

    @property
    def critic(self) -> Critic:
        """The first (for a centralised critic: the only) head."""
        return self.critics[0]

    @property
    def autograd_free(self) -> bool:
        return self.plain and self.critic.autograd_free

    # -- inputs and values ---------------------------------------------------------------------
    def _inputs(self, batch: Any, final: bool) -> list[Tensor]:
        """Per head, the inputs ``[R, T, E, D]``."""
        if not self.per_agent:
            return [batch.final_states if final else batch.states]
        shape = batch.rewards.shape  # [R, T, E]
        source = batch.final_obs if final else batch.obs
        return [obs.reshape(*shape, obs.shape[-1]) for obs in source]

    def _predict(self, inputs: list[Tensor]) -> Tensor:
        """``[H, R, T, E]`` denormalised values."""
        values = torch.stack([critic(x) for critic, x in zip(self.critics, inputs)])
        if self.norm is None:
            return values
        flat = values.reshape(self.heads * self.replicas, -1)
        return self.norm.denormalize(flat).reshape(values.shape)

    @torch.no_grad()
    def values(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``(V(s_t), V(s'_t))``, each ``[H, R, T, E]`` (successor values are zero in
        one-step batches, where every transition terminates)."""
        values = self._predict(self._inputs(batch, final=False))
        if bool(batch.terminated.all()):
            return values, torch.zeros_like(values)
        return values, self._predict(self._inputs(batch, final=True))

    def rewards(self, batch: Any) -> Tensor:
        """Each head's rewards ``[H, R, T, E]``: the team's, or each agent's own."""
        if self.per_agent and batch.agent_rewards is not None:
            return batch.agent_rewards.movedim(-1, 0)
        return batch.rewards.unsqueeze(0).expand(self.heads, *batch.rewards.shape)

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, batch: Any, returns: Tensor) -> list[float]:
        """Fit every head to its targets ``[H, R, T, E]`` (``[R, T, E]`` for one head);
        returns each replica's loss (the mean over heads)."""
        if self.plain:
            return self.critic.fit(batch.states, returns)
        targets = returns.reshape(self.heads, self.replicas, -1)
        if self.norm is not None:
            self.norm.update(targets.reshape(self.heads * self.replicas, -1))
            targets = self.norm.normalize(
                targets.reshape(self.heads * self.replicas, -1)).reshape(targets.shape)
        losses = np.zeros(self.replicas)
        for critic, x, y in zip(self.critics, self._inputs(batch, final=False), targets):
            flat = x.reshape(self.replicas, -1, x.shape[-1])
            losses += fit_minibatches(critic, flat, y, self.epochs, self.minibatches,
                                      self.generators)
        return (losses / self.heads).tolist()

    # -- checkpoints -------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        """What the loop's ``critic``/``critic_optimizer`` entries do not hold: the other
        heads, the moments and the minibatch streams."""
        return {
            "heads": [{"critic": c.state_dict(), "optimizer": c.optimizer.state_dict()}
                      for c in self.critics[1:]],
            "norm": None if self.norm is None else self.norm.state_dict(),
            "generators": [g.get_state() for g in self.generators],
        }

    def load_extra_state(self, state: dict[str, Any] | None) -> None:
        if state is None:  # a checkpoint from before this state existed: the plain critic
            if not self.plain:
                raise ValueError("the checkpoint has no value-function state for this run's "
                                 "critics")
            return
        heads = state["heads"]
        if len(heads) != self.heads - 1:
            raise ValueError(f"the checkpoint has {len(heads) + 1} critic heads, this run "
                             f"{self.heads}")
        for critic, saved in zip(self.critics[1:], heads):
            critic.load_state_dict(saved["critic"])
            critic.optimizer.load_state_dict(saved["optimizer"])
        if self.norm is not None:
            self.norm.load_state_dict(state["norm"])
        for generator, saved in zip(self.generators, state["generators"]):
            generator.set_state(saved)
