"""GAE against a hand-worked case, advantage normalisation, and the critic's fitting step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marl_tr.training.critic import Critic, gae, normalize

F64 = torch.float64


def test_gae_hand_worked_termination_and_truncation():
    """T = 4 steps of E = 2 copies, gamma 0.9, lambda 0.8.

    Copy 0 terminates at t=1 (no bootstrap: its successor value 9.0 must not appear) and is
    truncated at t=3 (bootstrap from 0.6). Copy 1 is truncated at t=1 (bootstrap from 7.0,
    but the recursion is cut) and terminates at t=3 (successor 8.0 unused).
    """
    rewards = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0], [-1.0, 3.0]], dtype=F64)
    values = torch.tensor([[0.2, 0.1], [0.4, -0.3], [0.1, 0.5], [0.3, 0.2]], dtype=F64)
    next_values = torch.tensor([[0.4, -0.3], [9.0, 7.0], [0.3, 0.2], [0.6, 8.0]], dtype=F64)
    terminated = torch.tensor([[False, False], [True, False], [False, False], [False, True]])
    truncated = torch.tensor([[False, False], [False, True], [False, False], [True, False]])

    advantages, returns = gae(rewards, values, next_values, terminated, truncated, 0.9, 0.8)

    # deltas, copy 0: 1+.9*.4-.2=1.16 | .5-.4=0.1 | 2+.9*.3-.1=2.17 | -1+.9*.6-.3=-0.76
    # copy 1:         2-.9*.3-.1=1.63 | -1+.9*7+.3=5.6 | .9*.2-.5=-0.32 | 3-.2=2.8
    # A_t = delta_t + 0.72 * A_{t+1} unless step t ended its episode
    expected = torch.tensor([
        [1.16 + 0.72 * 0.1, 1.63 + 0.72 * 5.6],
        [0.1, 5.6],
        [2.17 + 0.72 * -0.76, -0.32 + 0.72 * 2.8],
        [-0.76, 2.8],
    ], dtype=F64)
    torch.testing.assert_close(advantages, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(returns, expected + values, rtol=1e-12, atol=1e-12)


def test_gae_one_step_is_the_td_error():
    rewards = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    values = torch.tensor([[0.5, 0.5, 0.5]], dtype=F64)
    next_values = torch.tensor([[4.0, 4.0, 4.0]], dtype=F64)
    terminated = torch.tensor([[True, False, False]])
    truncated = torch.tensor([[False, True, False]])
    advantages, returns = gae(rewards, values, next_values, terminated, truncated, 0.5, 0.9)
    torch.testing.assert_close(advantages, torch.tensor([[0.5, 3.5, 4.5]], dtype=F64))
    torch.testing.assert_close(returns, torch.tensor([[1.0, 4.0, 5.0]], dtype=F64))


def test_gae_lambda_one_gamma_one_is_monte_carlo_return_minus_value():
    rewards = torch.tensor([[1.0], [2.0], [3.0]], dtype=F64)
    values = torch.tensor([[0.5], [0.25], [0.125]], dtype=F64)
    next_values = torch.tensor([[0.25], [0.125], [100.0]], dtype=F64)
    terminated = torch.tensor([[False], [False], [True]])
    truncated = torch.zeros(3, 1, dtype=torch.bool)
    advantages, _ = gae(rewards, values, next_values, terminated, truncated, 1.0, 1.0)
    torch.testing.assert_close(advantages[:, 0], torch.tensor([6 - 0.5, 5 - 0.25, 3 - 0.125],
                                                              dtype=F64))


def test_normalize_matches_numpy():
    x = torch.randn(50, generator=torch.Generator().manual_seed(0), dtype=F64)
    expected = (x.numpy() - x.numpy().mean()) / x.numpy().std()
    np.testing.assert_allclose(normalize(x).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("value", [0.0, 1.0, -2.5, 0.5])
def test_normalize_all_equal_exact_values_gives_exact_zeros(value, dtype):
    out = normalize(torch.full((30,), value, dtype=dtype))
    assert torch.equal(out, torch.zeros(30, dtype=dtype))


@pytest.mark.parametrize(("value", "dtype"), [(0.1, torch.float32), (0.7, torch.float32),
                                              (1 / 3, torch.float64)])
def test_normalize_all_equal_inexact_values_gives_exact_zeros(value, dtype):
    out = normalize(torch.full((30,), value, dtype=dtype))
    assert torch.equal(out, torch.zeros(30, dtype=dtype))


# ---------------------------------------------------------------------------------------
# critic
# ---------------------------------------------------------------------------------------
def test_linear_critic_sgd_step_is_the_hand_gradient_step():
    critic = Critic(2, lr=0.3, epochs=1).to(F64)
    with torch.no_grad():  # ReplicatedLinear: weight [R, in, out], bias [R, out]
        critic.net[0].weight.copy_(torch.tensor([[[0.5], [-1.0]]], dtype=F64))
        critic.net[0].bias.fill_(0.25)
    states = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]], dtype=F64)
    returns = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    error = states @ torch.tensor([0.5, -1.0], dtype=F64) + 0.25 - returns
    (loss,) = critic.fit(states, returns)
    assert loss == pytest.approx(0.5 * float((error**2).mean()), rel=1e-12)
    expected_w = torch.tensor([0.5, -1.0], dtype=F64) - 0.3 * (error @ states) / 3
    torch.testing.assert_close(critic.net[0].weight[0, :, 0].detach(), expected_w, rtol=1e-12,
                               atol=0)
    assert float(critic.net[0].bias.detach()) == pytest.approx(0.25 - 0.3 * float(error.mean()),
                                                      rel=1e-12)


@pytest.mark.parametrize("hidden", [(), (4,)])
def test_replicated_critic_fits_each_replica_as_its_own_critic(hidden):
    """R critics in one module: each replica's fit equals a one-replica critic's fit."""
    generator = torch.Generator().manual_seed(4)
    states = torch.randn(3, 8, 2, generator=generator, dtype=F64)  # [R, N, S]
    returns = torch.randn(3, 8, generator=generator, dtype=F64)
    gens = [torch.Generator().manual_seed(10 + r) for r in range(3)]
    batched = Critic(2, hidden=hidden, lr=0.1, epochs=3, replicas=3, generators=gens).to(F64)
    losses = batched.fit(states, returns)
    for r in range(3):
        single = Critic(2, hidden=hidden, lr=0.1, epochs=3,
                        generators=[torch.Generator().manual_seed(10 + r)]).to(F64)
        (loss,) = single.fit(states[r], returns[r])
        assert losses[r] == pytest.approx(loss, rel=1e-12)
        for a, b in zip(batched.parameters(), single.parameters()):
            torch.testing.assert_close(a[r:r + 1], b, rtol=1e-12, atol=1e-14)


def test_linear_critic_closed_form_equals_autograd_sgd():
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(4, 6, 3, generator=generator, dtype=F64)
    returns = torch.randn(4, 6, generator=generator, dtype=F64)
    fast = Critic(3, lr=0.2, epochs=5).to(F64)
    slow = Critic(3, lr=0.2, epochs=5).to(F64)
    slow.load_state_dict(fast.state_dict())
    slow._closed_form_sgd = False  # force the autograd path
    for _ in range(3):
        assert fast.fit(states, returns) == pytest.approx(slow.fit(states, returns), rel=1e-10)
    for a, b in zip(fast.parameters(), slow.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_critic_starts_at_zero():
    critic = Critic(3, hidden=(4,))
    assert torch.equal(critic(torch.randn(5, 3)), torch.zeros(5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_keeps_a_small_real_spread(dtype):
    """A spread far below 1 but far above rounding is signal: it normalises to +-1."""
    x = torch.tensor([1000.0, 1000.25] * 15, dtype=dtype)
    out = normalize(x)
    torch.testing.assert_close(out, torch.tensor([-1.0, 1.0] * 15, dtype=dtype),
                               rtol=1e-6, atol=1e-6)
