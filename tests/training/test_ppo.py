"""The PPO-family solver and presets: the closed-form clipped-surrogate gradient against
autograd, the Adam epochs, the early stop, the simultaneous order (no eq. 15 correction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr.divergences import DIVERGENCES
from marl_tr.policies import GaussianPolicy
from marl_tr.solvers import SOLVERS, AgentProblem

F64 = torch.float64
AGENT0 = np.zeros(1, dtype=int)


def problem(radius=1.0, seed=0, batch=12):
    policy = GaussianPolicy(1, 2, init_mean=[0.3, -0.2], init_std=0.7).to(F64)
    obs = torch.zeros(batch, 1, dtype=F64)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        log_prob = dist.log_prob(actions)
    weights = torch.randn(batch, generator=generator, dtype=F64)
    return AgentProblem(policy, obs, actions, weights, log_prob, DIVERGENCES.build("kl"), radius)


def clipped_objective(theta, prob, clip):
    """PPO's objective written directly with autograd-able ops (mean, log-std param)."""
    mean, rho = theta[:, :2], theta[:, 2:]
    std = 1e-3 + torch.exp(rho)
    z = (prob.actions - mean) / std
    log_prob = (-0.5 * z * z - torch.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
    ratio = torch.exp(log_prob - prob.old_log_prob)
    m = prob.weights
    return torch.minimum(m * ratio, m * ratio.clamp(1 - clip, 1 + clip)).mean()


@pytest.mark.parametrize("clip", [0.05, 0.2])
def test_clipped_surrogate_gradient_matches_autograd(clip):
    prob = problem()
    solver = SOLVERS.build(f"ppo_clip:clip={clip}")
    theta = prob.old_params + 0.3 * torch.randn(prob.old_params.shape,
                                                generator=torch.Generator().manual_seed(1),
                                                dtype=F64)
    lin = prob.policy.linearize_at(theta, prob.obs)
    log_prob = lin.dist.log_prob(prob.actions)
    mask = solver.unclipped(prob, log_prob)
    assert 0 < int(mask.sum()) < len(mask)  # some samples are clipped, some are not
    ours = prob.surrogate_gradient(lin, log_prob=log_prob, mask=mask)
    leaf = theta.clone().requires_grad_(True)
    (reference,) = torch.autograd.grad(clipped_objective(leaf, prob, clip), leaf)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_one_sgd_epoch_is_a_plain_surrogate_gradient_step():
    prob = problem()
    gradient = prob.surrogate_gradient()
    SOLVERS.build("ppo_clip:epochs=1,optimizer=sgd,lr=0.05").step(prob, AGENT0)
    torch.testing.assert_close(prob.policy.flat_parameters(), prob.old_params + 0.05 * gradient)


def test_adam_epochs_match_a_hand_written_adam():
    prob = problem(seed=3)
    solver = SOLVERS.build("ppo_clip:epochs=4,lr=0.1,clip=0.1")
    theta, m, v = prob.old_params.clone(), 0.0, 0.0
    for t in range(1, 5):
        leaf = theta.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(-clipped_objective(leaf, prob, 0.1), leaf)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta = theta - 0.1 * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
    result = solver.step(prob, AGENT0)
    assert result.moved[0] and result.info["epochs"][0] == 4
    torch.testing.assert_close(prob.policy.flat_parameters(), theta, rtol=1e-9, atol=1e-12)


def test_early_stop_keeps_the_divergence_inside_the_radius():
    free = problem(radius=1e-3)
    SOLVERS.build("ppo_clip:epochs=10,lr=0.2").step(free, AGENT0)
    bounded = problem(radius=1e-3)
    result = SOLVERS.build("ppo_clip:epochs=10,lr=0.2,early_stop=true").step(bounded, AGENT0)
    assert free.evaluate().divergence[0] > 1e-3  # without it the steps leave the ball
    assert result.divergence[0] <= 1e-3 and result.info["epochs"][0] < 10


def test_zero_advantages_take_no_step():
    prob = problem()
    prob.weights.zero_()
    prob._weight_column.zero_()
    result = SOLVERS.build("ppo_clip").step(prob, AGENT0)
    assert not result.moved[0] and result.reasons == ["zero gradient"]
    assert torch.equal(prob.policy.flat_parameters(), prob.old_params)


def test_simultaneous_order_gives_every_agent_the_plain_advantage(plugins):
    marl_tr.train(env_kwargs={"n": 3}, iterations=2, seed=1, agent_order="simultaneous",
                  solver="loop_plugins:ShiftSolver:scale=0.8", dtype="float64")
    calls = plugins.ShiftSolver.calls
    for first in (0, 3):
        for k in (1, 2):
            torch.testing.assert_close(calls[first + k]["weights"], calls[first]["weights"])


@pytest.mark.parametrize(("preset", "order"), [("happo", "random"), ("mappo", "simultaneous")])
def test_ppo_presets_resolve(preset, order):
    config = marl_tr.train(preset=preset, env_kwargs={"n": 2}, iterations=0).config
    assert config.agent_order == order and config.divergence == "kl"
    assert config.solver.startswith("ppo_clip:clip=0.2,epochs=5,lr=0.0005")
