"""The value function's parts against independent computations: running moments against
numpy over the concatenated batches, minibatch passes against hand-written SGD steps on the
same permutations, value normalisation learning targets of any scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marl_tr.training.critic import Critic
from marl_tr.training.values import RunningMoments, fit_minibatches


def test_running_moments_equal_those_of_the_concatenated_batches():
    """As SB3's test_runningmeanstd: three batches of different sizes and scales."""
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (2, 7)), rng.normal(-1.0, 0.5, (2, 40)),
               rng.normal(100.0, 10.0, (2, 3))]
    moments = RunningMoments(2)
    for batch in batches:
        moments.update(torch.from_numpy(batch))
    joined = np.concatenate(batches, axis=1)
    np.testing.assert_allclose(moments.mean.numpy(), joined.mean(1), rtol=1e-12)
    np.testing.assert_allclose(moments.var.numpy(), joined.var(1), rtol=1e-12)
    np.testing.assert_array_equal(moments.count.numpy(), [50, 50])
    values = torch.from_numpy(rng.normal(size=(2, 5)))
    np.testing.assert_allclose(moments.denormalize(moments.normalize(values)).numpy(),
                               values.numpy(), rtol=1e-12)
    expected = (values.numpy() - joined.mean(1, keepdims=True)) / joined.std(1, keepdims=True)
    np.testing.assert_allclose(moments.normalize(values).numpy(), expected, rtol=1e-12)


def test_constant_targets_are_scaled_by_the_floor():
    moments = RunningMoments(1, floor=1e-4)
    moments.update(torch.full((1, 10), 5.0, dtype=torch.float64))
    assert moments.std.item() == 1e-4
    assert moments.normalize(torch.tensor([[5.0]], dtype=torch.float64)).item() == 0.0


def test_minibatch_passes_are_sgd_steps_on_the_drawn_permutations():
    """A linear critic under SGD: each minibatch step is ``w -= lr * mean(err * x)``,
    ``b -= lr * mean(err)`` on the rows of that part of the epoch's permutation (drawn again
    here from a generator in the same state)."""
    torch.manual_seed(0)
    x = torch.randn(1, 10, 3, dtype=torch.float64)
    y = torch.randn(1, 10, dtype=torch.float64)
    critic = Critic(3, hidden=(), lr=0.1, optimizer="sgd", replicas=1).double()
    with torch.no_grad():
        critic.net[0].weight.copy_(torch.tensor([[[0.5], [-1.0], [0.25]]]))
        critic.net[0].bias.fill_(0.3)
    w = critic.net[0].weight.detach().clone()[0, :, 0]
    b = critic.net[0].bias.detach().clone()[0, 0]
    generator = torch.Generator().manual_seed(7)
    replay = torch.Generator().manual_seed(7)
    losses = fit_minibatches(critic, x, y, epochs=2, minibatches=3, generators=[generator])
    expected_losses = []
    for _ in range(2):
        order = torch.randperm(10, generator=replay)
        pass_losses = []
        for rows in torch.tensor_split(order, 3):
            xs, ys = x[0, rows], y[0, rows]
            err = xs @ w + b - ys
            pass_losses.append(0.5 * float(err.square().mean()))
            w = w - 0.1 * (err.unsqueeze(1) * xs).mean(0)
            b = b - 0.1 * err.mean()
        expected_losses.append(np.mean(pass_losses))
    torch.testing.assert_close(critic.net[0].weight.detach()[0, :, 0], w, rtol=1e-12, atol=0)
    torch.testing.assert_close(critic.net[0].bias.detach()[0, 0], b, rtol=1e-12, atol=0)
    assert losses == pytest.approx([expected_losses[-1]], rel=1e-12)


def test_value_normalisation_learns_targets_of_any_scale():
    """Targets ~ 1000 * (s . v): with normalised targets, Adam at 1e-2 fits them within a few
    percent of their spread in 300 steps, where the raw targets are far out of reach."""
    torch.manual_seed(1)
    states = torch.randn(1, 256, 4)
    direction = torch.tensor([0.5, -1.0, 2.0, 0.0])
    targets = 1000.0 * (states @ direction) + 5000.0

    def fitted(normalise: bool) -> float:
        critic = Critic(4, hidden=(16,), lr=1e-2, optimizer="adam", replicas=1,
                        generators=[torch.Generator().manual_seed(3)])
        moments = RunningMoments(1)
        moments.update(targets)
        goal = moments.normalize(targets) if normalise else targets
        fit_minibatches(critic, states, goal.float(), epochs=300, minibatches=1,
                        generators=[torch.Generator().manual_seed(4)])
        with torch.no_grad():
            out = critic(states)
            predicted = moments.denormalize(out) if normalise else out
        return float((predicted - targets).abs().mean() / targets.std())

    assert fitted(normalise=True) < 0.05
    assert fitted(normalise=False) > 0.9
