"""Replicated networks: the written-out least-squares gradients against autograd."""

from __future__ import annotations

import pytest
import torch

from marl_tr.nets import replicated_mlp, squared_error_gradients


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
