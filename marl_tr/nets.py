"""Replicated networks: ``R`` independent copies of a layer evaluated in one batched call.

A training run holds ``R`` independent replicas (seeds) of every policy and critic, stepped
together. Every parameter tensor has a leading replica dimension, and a replicated layer maps
``x [R, N, in] -> [R, N, out]`` with replica ``r``'s own weights, so replicas never mix.

Initialisation draws replica ``r``'s weights from its own generator, in the same order as a
single run with that generator, so that replica ``r`` starts exactly as that run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ReplicatedLinear", "replicated_mlp"]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


class ReplicatedLinear(nn.Module):
    """``R`` independent affine maps: ``y[r] = x[r] @ weight[r] + bias[r]``.

    Args:
        replicas: ``R``.
        in_features / out_features: layer sizes.
        generators: one per replica, for the initialisation (``None``: torch's global one).
            Weights and biases are uniform in ``+-1/sqrt(in_features)``, as ``nn.Linear``.
    """

    def __init__(
        self, replicas: int, in_features: int, out_features: int,
        generators: Sequence[torch.Generator] | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(replicas, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(replicas, out_features))
        self.reset_parameters(generators)

    @torch.no_grad()
    def reset_parameters(self, generators: Sequence[torch.Generator] | None = None) -> None:
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
        for r in range(self.weight.shape[0]):
            gen = generators[r] if generators is not None else None
            self.weight[r].uniform_(-bound, bound, generator=gen)
            self.bias[r].uniform_(-bound, bound, generator=gen)

    def forward(self, x: Tensor) -> Tensor:
        """``x [R, N, in] -> [R, N, out]``.

        A single output (a value head) is a product and a last-axis sum: a batched
        matrix-vector product takes another kernel for ``R = 1`` than for ``R > 1``, which
        would round replica ``r`` differently from the run with its seed alone.
        """
        if self.out_features == 1:
            return ((x * self.weight.transpose(1, 2)).sum(-1, keepdim=True)
                    + self.bias.unsqueeze(1))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


def replicated_mlp(
    replicas: int, sizes: Sequence[int], activation: str,
    generators: Sequence[torch.Generator] | None = None,
) -> nn.Sequential:
    """An MLP of ``ReplicatedLinear`` layers with ``activation`` between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(ReplicatedLinear(replicas, sizes[i], sizes[i + 1], generators))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
