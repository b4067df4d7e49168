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
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "ReplicatedLinear", "Workspace", "forward_in_workspace",
           "replicated_mlp", "squared_error_gradients"]

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


class Workspace:
    """Tensors kept between calls of a hot loop, one per key, remade when the shape or dtype
    asked for changes.

    Why: glibc serves a large request (above its mmap threshold, 128 KiB at first) with fresh
    pages from the OS and hands them back on free, so a loop that allocates the same large
    temporaries every call pays a page fault per 4 KiB each time (the exact dual's candidate
    values at 10 replicas: about 10,000 faults and a third of the iteration). Writing into
    kept buffers touches no new pages.
    """

    def __init__(self) -> None:
        self._buffers: dict[Any, Tensor] = {}

    def get(self, key: Any, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        """An uninitialised ``shape`` tensor of ``dtype``, the same storage as the last call
        with ``key`` where shape and dtype agree."""
        buffer = self._buffers.get(key)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[key] = torch.empty(shape, dtype=dtype)
        return buffer


_IN_PLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_}


@torch.no_grad()
def forward_in_workspace(net: nn.Sequential, x: Tensor, workspace: Workspace) -> Tensor:
    """``net(x)`` for a ``replicated_mlp`` without autograd, the same numbers, with the
    hidden layers written into ``workspace``'s buffers (activations applied in place).

    Args:
        net: ``ReplicatedLinear`` layers with ``ACTIVATIONS`` between them.
        x: inputs ``[R, N, in]``.
        workspace: buffers kept by the caller between calls.

    Returns:
        ``[R, N, out]``, a tensor of its own (never one of the workspace's buffers).
    """
    h, borrowed = x, False  # borrowed: h is one of the workspace's buffers
    for index, layer in enumerate(net):
        if isinstance(layer, ReplicatedLinear):
            if layer.out_features == 1:  # ReplicatedLinear.forward's product and sum
                product = workspace.get((index, "product"), tuple(h.shape), h.dtype)
                torch.mul(h, layer.weight.transpose(1, 2), out=product)
                h, borrowed = product.sum(-1, keepdim=True) + layer.bias.unsqueeze(1), False
            else:
                out = workspace.get(index, (*h.shape[:-1], layer.out_features), h.dtype)
                h = torch.baddbmm(layer.bias.unsqueeze(1), h, layer.weight, out=out)
                borrowed = True
        elif borrowed and type(layer) in _IN_PLACE:
            _IN_PLACE[type(layer)](h)
        elif borrowed and isinstance(layer, nn.ELU):
            nn.functional.elu(h, layer.alpha, inplace=True)
        else:
            h, borrowed = layer(h), False
    return h.clone() if borrowed else h


def _activation_slope(layer: nn.Module, pre: Tensor, post: Tensor) -> Tensor:
    """The derivative of an ``ACTIVATIONS`` layer at its input ``pre`` (output ``post``)."""
    if isinstance(layer, nn.ReLU):
        return (pre > 0).to(pre.dtype)
    if isinstance(layer, nn.Tanh):
        return 1.0 - post.square()
    if isinstance(layer, nn.ELU):
        return torch.where(pre > 0, torch.ones_like(pre), post + layer.alpha)
    raise TypeError(f"no derivative for layer {type(layer).__name__}; the replicated MLP "
                    f"takes {', '.join(ACTIVATIONS)}")


@torch.no_grad()
def squared_error_gradients(net: nn.Sequential, x: Tensor,
                            target: Tensor) -> tuple[Tensor, list[Tensor]]:
    """A ``replicated_mlp`` with one output, fitted by least squares: the per-replica loss
    ``0.5 mean_n (net(x) - target)^2`` ``[R]`` and its gradients, one per parameter in
    ``net.parameters()`` order, by backpropagation written out (the same numbers as autograd,
    to rounding, at about a third of its overhead on the small critics that use it).

    Args:
        net: ``ReplicatedLinear`` layers with ``ACTIVATIONS`` between them, ``[R, N, in] ->
            [R, N, 1]``.
        x: inputs ``[R, N, in]``.
        target: ``[R, N]``.
    """
    inputs: list[Tensor] = []  # each linear layer's input
    slopes: list[Tensor] = []  # each activation's derivative
    h = x
    for layer in net:
        if isinstance(layer, ReplicatedLinear):
            inputs.append(h)
            h = layer(h)
        else:
            out = layer(h)
            slopes.append(_activation_slope(layer, h, out))
            h = out
    error = h.squeeze(-1) - target  # [R, N]
    loss = 0.5 * error.square().mean(1)
    grad = (error / error.shape[1]).unsqueeze(-1)  # d loss / d output  [R, N, 1]
    linears = [layer for layer in net if isinstance(layer, ReplicatedLinear)]
    grads: list[list[Tensor]] = [[] for _ in linears]
    for index in range(len(linears) - 1, -1, -1):
        layer_input = inputs[index]
        grads[index] = [torch.bmm(layer_input.transpose(1, 2), grad), grad.sum(1)]  # W, b
        if index:
            grad = torch.bmm(grad, linears[index].weight.transpose(1, 2)) * slopes[index - 1]
    return loss, [g for pair in grads for g in pair]
