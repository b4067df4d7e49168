"""The signal test of ``gradient_status`` (``solvers.base.gradient_signal``): Rao's score test
of "the surrogate gradient is sampling noise", checked against a parameter-space reference
(dense Fisher matrix, scipy's chi-squared), for its size under the null, its power, its
invariances, and its effect on every solver (a no-signal gradient means no step)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from marl_tr.divergences import DIVERGENCES
from marl_tr.policies import CategoricalPolicy, GaussianPolicy
from marl_tr.solvers import SOLVERS, AgentProblem
from marl_tr.solvers.base import gradient_signal, gradient_status

F64 = torch.float64


def gaussian_problem(weights_of, batch: int = 30, replicas: int = 1, dims: int = 2,
                     seed: int = 0, std_param: str = "log_std", hidden=()) -> AgentProblem:
    """A float64 Gaussian problem (``dims`` action dimensions) whose weights are
    ``weights_of(z)``, ``z`` the standardised actions ``[R*B, d]``."""
    policy = GaussianPolicy(1, dims, hidden=hidden, init_mean=[0.3, -0.2][:dims] * (dims // 2)
                            or 0.3, init_std=0.7, std_param=std_param, replicas=replicas,
                            generators=[torch.Generator().manual_seed(r) for r in range(replicas)]
                            ).to(F64)
    generator = torch.Generator().manual_seed(seed)
    obs = torch.randn(replicas * batch, 1, generator=generator, dtype=F64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        z = (actions - dist.mean) / dist.std
    return AgentProblem(policy, obs, actions, weights_of(z, generator).to(F64),
                        dist.log_prob(actions), DIVERGENCES.build("kl"), 0.1)


def noise(z, generator):
    """Weights independent of the actions: no signal."""
    return torch.randn(z.shape[0], generator=generator, dtype=F64) + 0.5


def parameter_space_p_value(problem: AgentProblem, dof: int) -> float:
    """``B g^T H^+ g / v`` with ``g`` the surrogate gradient of the centred weights, ``H`` the
    Fisher matrix in the policy's own parameters (dense, from ``fisher_product`` on the unit
    vectors; a pseudo-inverse for free logits), ``v`` the centred weights' mean square."""
    centred = problem.weights - problem.weights.mean()
    twin = AgentProblem(problem.policy, problem.obs, problem.actions, centred,
                        problem.old_log_prob, DIVERGENCES.build("kl"), 0.1)
    gradient = twin.surrogate_gradient()[0].numpy()
    size = gradient.shape[0]
    fisher = np.stack([twin.fisher_product(torch.eye(size, dtype=F64)[k:k + 1])[0].numpy()
                       for k in range(size)])
    statistic = problem.batch_size * gradient @ np.linalg.pinv(fisher) @ gradient
    return float(scipy.stats.chi2.sf(statistic / float(centred.square().mean()), dof))


@pytest.mark.parametrize("std_param", ["log_std", "bounded"])
def test_gaussian_p_value_equals_the_parameter_space_score_test(std_param):
    """The distribution-space statistic equals the score test in the policy's parameters,
    whatever the std parameterisation (the natural metric is parameterisation-free)."""
    def signal(z, generator):
        return -(z[:, 0] - 0.4).square() + 0.3 * z[:, 1] + noise(z, generator)

    for weights_of in (noise, signal):
        problem = gaussian_problem(weights_of, std_param=std_param)
        (p_value,) = gradient_signal(problem)
        assert p_value == pytest.approx(parameter_space_p_value(problem, dof=4), rel=1e-9)


def test_categorical_p_value_equals_the_parameter_space_score_test():
    policy = CategoricalPolicy(1, 4, init_logits=[0.0, 0.5, -0.3, 0.2]).to(F64)
    generator = torch.Generator().manual_seed(5)
    obs = torch.zeros(40, 1, dtype=F64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
    weights = (actions == 1).to(F64) + 0.8 * torch.randn(40, generator=generator, dtype=F64)
    problem = AgentProblem(policy, obs, actions, weights, dist.log_prob(actions),
                           DIVERGENCES.build("kl"), 0.1)
    (p_value,) = gradient_signal(problem)
    assert p_value == pytest.approx(parameter_space_p_value(problem, dof=3), rel=1e-9)
    assert p_value < 0.01  # action 1 is better: a real signal


def test_size_under_the_null_tends_to_the_level_and_power_is_high():
    """Weights independent of the actions: the test is asymptotic (chi-squared), so at the
    paper's batch of 30 it passes noise for signal somewhat more often than its level
    (measured on 20000 replicas: 0.020 at level 0.01, 0.060 at 0.05), and at the level
    for large batches (B = 300: 0.010 and 0.050). With weights that depend on the action
    alone, as near a peak of the differential game (``M = -(a - peak)^2``), it finds the
    signal in 96% of the replicas at level 0.01."""
    replicas = 4000
    small = gradient_signal(gaussian_problem(noise, replicas=replicas, dims=1, seed=1))
    large = gradient_signal(gaussian_problem(noise, batch=300, replicas=replicas, dims=1,
                                             seed=1))
    for level, at_30 in ((0.01, 0.020), (0.05, 0.060)):
        spread = 4 * np.sqrt(level * (1 - level) / replicas)  # 4 binomial standard errors
        assert abs(np.mean(small <= level) - at_30) < spread
        assert abs(np.mean(large <= level) - level) < spread
    # near a peak: M = -(a - peak)^2, the peak 0.3 std from the mean
    peaked = gradient_signal(gaussian_problem(
        lambda z, g: -(z[:, 0] - 0.3).square(), replicas=replicas, dims=1, seed=2))
    assert np.mean(peaked <= 0.01) > 0.94


def test_p_value_is_invariant_to_the_weights_scale_and_offset():
    base = gaussian_problem(lambda z, g: z[:, 0] * 0.2 + noise(z, g), replicas=5)
    reference = gradient_signal(base)
    for scale, offset in ((1e-12, 0.0), (1e12, 0.0), (1.0, 7.0), (2.5, -3.0)):
        weights = base.weights * scale + offset * scale
        problem = AgentProblem(base.policy, base.obs, base.actions, weights, base.old_log_prob,
                               base.divergence, 0.1)
        np.testing.assert_allclose(gradient_signal(problem), reference, rtol=1e-9, atol=1e-15)


def test_constant_weights_are_no_signal_and_zero_weights_a_zero_gradient():
    constant = gaussian_problem(lambda z, g: torch.full((z.shape[0],), 0.37, dtype=F64))
    np.testing.assert_array_equal(gradient_signal(constant), [1.0])  # T = 0
    gradient = constant.surrogate_gradient()
    assert gradient.abs().max() > 0  # its gradient 0.37 mean(score) is not zero ...
    assert gradient_status(gradient, constant, 0.01) == (np.array([False]), ["no signal"])
    assert gradient_status(gradient, constant) == (np.array([True]), [""])  # no level: no test
    zero = gaussian_problem(lambda z, g: torch.zeros(z.shape[0], dtype=F64))
    assert gradient_status(zero.surrogate_gradient(), zero, 0.01) == (
        np.array([False]), ["zero gradient"])


def test_each_replica_is_tested_on_its_own():
    problem = gaussian_problem(noise, replicas=3)
    weights = problem.weights.clone().view(3, -1)
    z = ((problem.actions - problem.old_dist.mean) / problem.old_dist.std).view(3, -1, 2)
    weights[1] = -5.0 * (z[1, :, 0] - 0.5).square()  # replica 1 has a signal
    mixed = AgentProblem(problem.policy, problem.obs, problem.actions, weights.view(-1),
                         problem.old_log_prob, problem.divergence, 0.1)
    p_values = gradient_signal(mixed)
    np.testing.assert_array_equal(p_values[[0, 2]], gradient_signal(problem)[[0, 2]])
    active, reasons = gradient_status(mixed.surrogate_gradient(), mixed, 0.01)
    assert active[1] and reasons[1] == ""


def test_state_dependent_policies_are_not_tested():
    problem = gaussian_problem(noise, hidden=(4,))
    assert gradient_signal(problem) is None
    gradient = problem.surrogate_gradient()
    assert gradient_status(gradient, problem, 0.01) == (np.array([True]), [""])


@pytest.mark.parametrize("spec", ["natural_gradient", "primal_dual", "ppo_clip",
                                  "exact_radius"])
def test_a_no_signal_gradient_means_no_step_in_every_solver(spec):
    problem = gaussian_problem(lambda z, g: torch.full((z.shape[0],), 0.37, dtype=F64))
    start = problem.policy.flat_parameters().clone()
    problem.signal_level = 0.01  # as the training loop sets it
    solver = SOLVERS.build(spec)
    solver.reset(1, 1)
    result = solver.step(problem, np.array([0]))
    assert not result.moved[0] and result.reasons == ["no signal"]
    assert torch.equal(problem.policy.flat_parameters(), start)
