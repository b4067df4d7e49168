"""Batched action distributions: light parameter containers with the calculus solvers need.

A distribution holds one policy output per state (batch dimension ``B``). Besides sampling
and log-probabilities it exposes its parameters as a tuple of tensors (``params()``) and the
gradient of ``log p(a)`` in those parameters (``log_prob_grad``). Solvers work in this
*distribution-parameter* space and map to network parameters through the policy's
Jacobian products, which keeps the paper's game free of autograd on the hot path.

Shapes:
    DiagGaussian: mean, std ``[B, d]``; actions ``[B, d]`` (float).
    Categorical:  logits ``[B, K]``;    actions ``[B]`` (int64).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from marl_tr.tensor_constants import constant_like

__all__ = ["ActionDistribution", "Categorical", "DiagGaussian", "Params"]

Params = tuple[Tensor, ...]
Generators = torch.Generator | Sequence[torch.Generator] | None
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def draw_in_blocks(rows: int, generators: Generators, draw: Callable) -> Tensor:
    """``draw(start, count, generator)`` for all ``rows``, or, with a sequence of ``R``
    generators, for ``R`` equal row blocks, each from its own generator (replica ``r``'s
    rows), concatenated."""
    if generators is None or isinstance(generators, torch.Generator):
        return draw(0, rows, generators)
    if len(generators) == 1:
        return draw(0, rows, generators[0])
    blocks = len(generators)
    if rows % blocks:
        raise ValueError(f"{rows} rows do not split into {blocks} generator blocks")
    size = rows // blocks
    return torch.cat([draw(r * size, size, g) for r, g in enumerate(generators)])


def _gaussian_log_density(actions: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``sum_k log N(a_k; m_k, s_k^2)`` over the last axis (shapes broadcast)."""
    return _standard_log_density((actions - mean) / std, std)


def _standard_log_density(z: Tensor, std: Tensor) -> Tensor:
    """The Gaussian log-density summed over the last axis, from ``z = (a - m) / s``."""
    # -(log s + z^2 / 2) - log(2 pi) / 2 per dimension, in as few tensor operations as possible
    per_dim = torch.addcmul(torch.log(std), z, z, value=0.5)
    dims = z.shape[-1]
    total = per_dim.squeeze(-1) if dims == 1 else per_dim.sum(-1)
    return torch.sub(constant_like(-_HALF_LOG_2PI * dims, z), total)


class ActionDistribution(ABC):
    """A batch of action distributions, one per state."""

    kind: ClassVar[str]  # "continuous" or "discrete"
    param_names: ClassVar[tuple[str, ...]]

    @abstractmethod
    def params(self) -> Params:
        """The parameter tensors, in ``param_names`` order, each with leading dim ``B``."""

    @classmethod
    def from_params(cls, params: Params) -> ActionDistribution:
        """Rebuild a distribution from ``params()`` output."""
        return cls(*params)

    @property
    def batch_size(self) -> int:
        return int(self.params()[0].shape[0])

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one parameter row (``(d,)`` for a Gaussian, ``(K,)`` for a categorical)."""
        return tuple(self.params()[0].shape[1:])

    @abstractmethod
    def log_prob(self, actions: Tensor) -> Tensor:
        """``log p(a)`` per state, ``[B]`` (summed over action dimensions)."""

    def grouped_log_prob(self, actions: Tensor, groups: int) -> Tensor:
        """Every distribution of a group at every action of that group.

        Rows (``G*K`` distributions, ``G*B`` actions) are group-major: group ``g`` owns
        distributions ``g*K .. g*K+K-1`` and actions ``g*B .. g*B+B-1``.

        Returns:
            ``[G, K, B]``: ``log p_{g,k}(a_{g,b})``.
        """
        k = self.batch_size // groups
        b = actions.shape[0] // groups
        rows = self.from_params(tuple(p.repeat_interleave(b, dim=0) for p in self.params()))
        tiled = actions.view(groups, 1, b, *actions.shape[1:]).expand(
            groups, k, b, *actions.shape[1:])
        return rows.log_prob(tiled.reshape(-1, *actions.shape[1:])).view(groups, k, b)

    @abstractmethod
    def log_prob_grad(self, actions: Tensor) -> Params:
        """``d log p(a) / d params`` per state, shaped like ``params()`` (analytic)."""

    @abstractmethod
    def sample(self, generator: Generators = None) -> Tensor:
        """One action per state. With a sequence of ``R`` generators the rows split into
        ``R`` equal blocks, each sampled from its own generator."""

    def sample_with_log_prob(self, generator: Generators = None) -> tuple[Tensor, Tensor]:
        """One action per state and its log-probability ``[B]`` (rollouts need both).

        The log-probability is ``log_prob(actions)`` itself, so that a later evaluation at
        the same parameters reproduces it exactly (ratios of exactly 1).
        """
        actions = self.sample(generator)
        return actions, self.log_prob(actions)

    def tile(self, times: int) -> ActionDistribution:
        """The batch repeated ``times`` times (batch ``times * B``, repeat-major)."""
        return self.from_params(tuple(p.repeat(times, *([1] * (p.dim() - 1)))
                                      for p in self.params()))

    def step_limit(self, tangent: Params) -> Tensor:
        """Per row ``[B]``, the largest ``e <= 1`` with ``params() + e * tangent`` safely
        valid (half-way to any boundary of the parameter domain); 1 where every displacement
        is valid."""
        first = self.params()[0]
        return torch.ones(first.shape[0], dtype=first.dtype)

    @abstractmethod
    def entropy(self) -> Tensor:
        """Differential or discrete entropy per state, ``[B]``."""

    @abstractmethod
    def mode(self) -> Tensor:
        """The most likely action per state (deterministic evaluation)."""

    def detach(self) -> ActionDistribution:
        return self.from_params(tuple(p.detach() for p in self.params()))

    def repeat_rows(self, times: int) -> ActionDistribution:
        """Each row repeated ``times`` times in place (batch ``B * times``, row-major)."""
        if self.batch_size == 1:
            return self.from_params(tuple(p.expand(times, *p.shape[1:]) for p in self.params()))
        return self.from_params(tuple(p.repeat_interleave(times, dim=0) for p in self.params()))

    def expand_to(self, batch_size: int) -> ActionDistribution:
        """Broadcast a batch-1 distribution to ``batch_size`` rows (no copy)."""
        params = self.params()
        if params[0].shape[0] == batch_size:
            return self
        return self.from_params(tuple(p.expand(batch_size, *p.shape[1:]) for p in params))

    def check_compatible(self, other: ActionDistribution, what: str = "distributions") -> None:
        """Raise ``ValueError`` unless ``other`` has the same type and parameter shapes."""
        if type(self) is not type(other):
            raise ValueError(
                f"Cannot compare {what} of different kinds: {type(self).__name__} and "
                f"{type(other).__name__}"
            )
        for name, a, b in zip(self.param_names, self.params(), other.params()):
            if a.shape != b.shape:
                raise ValueError(
                    f"Mismatched {what}: {name} has shape {tuple(a.shape)} and "
                    f"{tuple(b.shape)}"
                )

    def __repr__(self) -> str:
        shapes = ", ".join(
            f"{n}={tuple(p.shape)}" for n, p in zip(self.param_names, self.params())
        )
        return f"{type(self).__name__}({shapes})"


class DiagGaussian(ActionDistribution):
    """Product of independent normals ``N(mean_k, std_k^2)`` per state.

    Args:
        mean: ``[B, d]``.
        std: ``[B, d]``, positive.
    """

    kind = "continuous"
    param_names = ("mean", "std")

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        if mean.dim() != 2 or mean.shape != std.shape:
            raise ValueError(
                f"DiagGaussian needs mean and std of the same shape [B, d], got "
                f"{tuple(mean.shape)} and {tuple(std.shape)}"
            )
        self.mean = mean
        self.std = std
        # (actions, z) of the last log_prob: its gradient at the same actions reuses z
        self._standardized: tuple[Tensor, Tensor] | None = None

    def params(self) -> Params:
        return (self.mean, self.std)

    def _z(self, actions: Tensor) -> Tensor:
        """``(a - mean) / std`` ``[B, d]``."""
        last = self._standardized
        if last is not None and last[0] is actions:
            return last[1]
        z = (actions - self.mean) / self.std
        if not z.requires_grad:  # a graph is never cached: autograd callers recompute
            self._standardized = (actions, z)
        return z

    def log_prob(self, actions: Tensor) -> Tensor:
        return _standard_log_density(self._z(actions), self.std)

    def step_limit(self, tangent: Params) -> Tensor:
        """Per row, half the step at which its first std would reach 0 along ``tangent``'s
        std part (at most 1)."""
        shrink = -tangent[1]
        limit = torch.where(shrink > 0, 0.5 * self.std / shrink, torch.inf)
        return limit.amin(-1).clamp_max(1.0)

    def grouped_log_prob(self, actions: Tensor, groups: int) -> Tensor:
        d = self.mean.shape[1]
        return _gaussian_log_density(actions.view(groups, 1, -1, d),
                                     self.mean.view(groups, -1, 1, d),
                                     self.std.view(groups, -1, 1, d))

    def log_prob_grad(self, actions: Tensor) -> Params:
        z = self._z(actions)
        return (z / self.std, torch.addcmul(constant_like(-1.0, z), z, z) / self.std)

    def sample(self, generator: Generators = None) -> Tensor:
        mean = self.mean
        noise = draw_in_blocks(mean.shape[0], generator, lambda _, rows, g: torch.randn(
            (rows, *mean.shape[1:]), generator=g, dtype=mean.dtype, device=mean.device))
        return torch.addcmul(mean, self.std, noise)

    def entropy(self) -> Tensor:
        return (0.5 + _HALF_LOG_2PI + torch.log(self.std)).sum(-1)

    def mode(self) -> Tensor:
        return self.mean


class Categorical(ActionDistribution):
    """Categorical over ``K`` actions ``0..K-1`` per state.

    Args:
        logits: ``[B, K]`` unnormalised log-probabilities.
    """

    kind = "discrete"
    param_names = ("logits",)

    def __init__(self, logits: Tensor) -> None:
        if logits.dim() != 2:
            raise ValueError(f"Categorical needs logits of shape [B, K], got {tuple(logits.shape)}")
        self.logits = logits
        self._log_probs: Tensor | None = None

    @classmethod
    def from_probs(cls, probs: Tensor) -> Categorical:
        return cls(torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny)))

    def params(self) -> Params:
        return (self.logits,)

    @property
    def log_probs(self) -> Tensor:
        """Normalised log-probabilities ``[B, K]``."""
        if self._log_probs is None:
            self._log_probs = torch.log_softmax(self.logits, dim=-1)
        return self._log_probs

    @property
    def probs(self) -> Tensor:
        return self.log_probs.exp()

    @property
    def num_actions(self) -> int:
        return int(self.logits.shape[-1])

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.log_probs.gather(-1, actions.long().reshape(-1, 1)).squeeze(-1)

    def grouped_log_prob(self, actions: Tensor, groups: int) -> Tensor:
        log_probs = self.log_probs.view(groups, -1, 1, self.num_actions)
        index = actions.long().view(groups, 1, -1, 1)
        shape = (groups, log_probs.shape[1], index.shape[2], 1)
        return log_probs.expand(*shape[:3], -1).gather(-1, index.expand(shape)).squeeze(-1)

    def log_prob_grad(self, actions: Tensor) -> Params:
        onehot = torch.nn.functional.one_hot(actions.long().reshape(-1), self.num_actions)
        return (onehot.to(self.logits.dtype) - self.probs,)

    def sample(self, generator: Generators = None) -> Tensor:
        probs = self.probs
        return draw_in_blocks(probs.shape[0], generator, lambda start, rows, g: torch.multinomial(
            probs[start:start + rows], 1, generator=g).squeeze(-1))

    def entropy(self) -> Tensor:
        return -(self.probs * self.log_probs).sum(-1)

    def mode(self) -> Tensor:
        return self.logits.argmax(-1)
