"""Replicated networks: the written-out least-squares gradients against autograd, and the
forward pass in kept buffers against the module's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from marl_tr.nets import Workspace, forward_in_workspace, replicated_mlp, squared_error_gradients


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sizes", [(5, 1), (5, 7, 1), (4, 7, 6, 1)])
def test_squared_error_gradients_equal_autograd(activation, dtype, sizes):
    """Loss and every parameter's gradient as autograd gives them (to rounding), per replica:
    replica r's gradient is its own loss's."""
    generators = [torch.Generator().manual_seed(r) for r in range(3)]
    net = replicated_mlp(3, sizes, activation, generators).to(dtype)
    data = torch.Generator().manual_seed(7)
    x = torch.randn(3, 11, sizes[0], generator=data, dtype=dtype)
    target = torch.randn(3, 11, generator=data, dtype=dtype)
    loss, grads = squared_error_gradients(net, x, target)
    reference = 0.5 * (net(x).squeeze(-1) - target).square().mean(1)
    reference.sum().backward()
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(loss, reference.detach(), rtol=tol, atol=tol)
    params = list(net.parameters())
    assert len(grads) == len(params)
    for param, grad in zip(params, grads):
        assert grad.shape == param.shape
        torch.testing.assert_close(grad, param.grad, rtol=10 * tol, atol=10 * tol)


def test_squared_error_gradients_of_a_hand_worked_linear_fit():
    """One replica, ``y = w x + b`` at w = 2, b = 0 against targets 1 at x = 1, 3: errors 1 and
    5, loss 0.5 * (1 + 25) / 2 = 6.5, dL/dw = (1*1 + 5*3) / 2 = 8, dL/db = (1 + 5) / 2 = 3."""
    net = replicated_mlp(1, (1, 1), "relu")
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[0].bias.zero_()
    loss, (dw, db) = squared_error_gradients(net, torch.tensor([[[1.0], [3.0]]]),
                                             torch.tensor([[1.0, 1.0]]))
    assert loss.item() == pytest.approx(6.5)
    assert dw.item() == pytest.approx(8.0) and db.item() == pytest.approx(3.0)


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("sizes", [(5, 1), (5, 8, 1), (5, 8, 6, 1), (5, 8, 4)])
def test_forward_in_workspace_equals_the_module_and_reuses_its_buffers(activation, replicas,
                                                                       sizes):
    """Bitwise ``net(x)`` over several calls with new inputs; the hidden layers' buffers keep
    their storage from call to call; outputs are never a buffer (a later call leaves an
    earlier output as it was); the input is not modified."""
    net = replicated_mlp(replicas, sizes, activation,
                         [torch.Generator().manual_seed(r) for r in range(replicas)])
    workspace = Workspace()
    data = torch.Generator().manual_seed(1)
    outputs, storages = [], []
    with torch.inference_mode():
        for _ in range(3):
            x = torch.randn(replicas, 13, sizes[0], generator=data)
            kept = x.clone()
            out = forward_in_workspace(net, x, workspace)
            assert torch.equal(x, kept)
            assert torch.equal(out, net(x))
            outputs.append((out, net(x)))
            storages.append(sorted(b.untyped_storage().data_ptr()
                                   for b in workspace._buffers.values()))
        for out, reference in outputs:
            assert torch.equal(out, reference)
    assert storages[0] == storages[1] == storages[2]
    assert len(storages[0]) == len(sizes) - 1  # hidden layers, or the product of a 1-output


def test_a_workspace_buffer_is_remade_for_a_new_shape_or_dtype():
    workspace = Workspace()
    first = workspace.get("h", (2, 3), torch.float32)
    assert workspace.get("h", (2, 3), torch.float32) is first
    assert workspace.get("h", (2, 4), torch.float32).shape == (2, 4)
    assert workspace.get("h", (2, 4), torch.float64).dtype == torch.float64


def test_forward_in_workspace_leaves_an_input_an_activation_reads_first():
    """A net that opens with an activation applies it to a new tensor, not to ``x``."""
    net = nn.Sequential(nn.ReLU(), *replicated_mlp(1, (5, 4, 2), "tanh"), nn.Tanh())
    x = torch.randn(1, 7, 5, generator=torch.Generator().manual_seed(0))
    kept = x.clone()
    with torch.inference_mode():
        out = forward_in_workspace(net, x, Workspace())
    assert torch.equal(x, kept)
    assert torch.equal(out, net(x))
