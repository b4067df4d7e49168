"""Policies: analytic Jacobian products vs autograd and finite differences, candidate
distributions, the std floor, parameter round trips, and the AgentProblem calculus (surrogate
gradient, Fisher product) against plain autograd."""

from __future__ import annotations

import math

import pytest
import torch

from marl_tr.divergences import DIVERGENCES
from marl_tr.policies import (
    STD_PARAMETERISATIONS,
    AutogradLinearization,
    CategoricalPolicy,
    GaussianPolicy,
)
from marl_tr.solvers import AgentProblem

F64 = torch.float64


def gaussian(hidden=(), std_param="log_std", act_dim=2, obs_dim=3, seed=0):
    torch.manual_seed(seed)
    policy = GaussianPolicy(obs_dim, act_dim, hidden=hidden, init_mean=[0.4, -1.1][:act_dim],
                            init_std=0.6, std_param=std_param, min_std=1e-3)
    return policy.to(F64)


def categorical(hidden=(), seed=0):
    torch.manual_seed(seed)
    return CategoricalPolicy(3, 4, hidden=hidden, init_logits=[0.2, -0.5, 1.0, 0.0]).to(F64)


POLICIES = {
    "gaussian-log_std": lambda: gaussian(),
    "gaussian-bounded": lambda: gaussian(std_param="bounded"),
    "categorical-free": lambda: categorical(),
    "gaussian-mlp": lambda: gaussian(hidden=(5,)),
    "gaussian-mlp-bounded": lambda: gaussian(hidden=(5,), std_param="bounded"),
    "categorical-mlp": lambda: categorical(hidden=(5,)),
}
ANALYTIC = ["gaussian-log_std", "gaussian-bounded", "categorical-free"]


def observations(batch=7, dim=3, seed=1):
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def random_like(tensors, seed):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(t.shape, generator=generator, dtype=F64) for t in tensors)


def perturb(policy, seed=3, scale=0.3):
    """Move every parameter a little (so no test runs only at the initial values)."""
    flat = policy.flat_parameters()
    noise = torch.randn(flat.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    policy.set_flat_parameters(flat + scale * noise)
    return policy


# ---------------------------------------------------------------------------------------
# Jacobian products
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ANALYTIC)
def test_analytic_linearization_equals_autograd(name):
    policy = perturb(POLICIES[name]())
    obs = observations()
    analytic = policy.linearize(obs)
    generic = AutogradLinearization(policy, obs)
    assert type(analytic) is not AutogradLinearization
    for got, want in zip(analytic.dist.params(), generic.dist.params()):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for seed in range(3):
        vector = torch.randn(policy.num_parameters, generator=torch.Generator().manual_seed(seed),
                             dtype=F64)
        for got, want in zip(analytic.jvp(vector), generic.jvp(vector)):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        cotangent = random_like(generic.dist.params(), seed + 10)
        torch.testing.assert_close(analytic.vjp(cotangent), generic.vjp(cotangent),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(POLICIES))
def test_jvp_matches_central_finite_differences(name):
    policy = perturb(POLICIES[name]())
    obs = observations()
    theta = policy.flat_parameters()
    vector = torch.randn(theta.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    tangent = policy.linearize(obs).jvp(vector)
    eps = 1e-6
    with torch.no_grad():
        policy.set_flat_parameters(theta + eps * vector)
        plus = policy.distribution(obs).params()
        plus = tuple(p.clone() for p in plus)
        policy.set_flat_parameters(theta - eps * vector)
        minus = policy.distribution(obs).params()
    for got, p, m in zip(tangent, plus, minus):
        torch.testing.assert_close(got, (p - m) / (2 * eps), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", list(POLICIES))
def test_vjp_is_the_adjoint_of_jvp(name):
    """<u, J v> == <J^T u, v> for random u, v."""
    policy = perturb(POLICIES[name]())
    lin = policy.linearize(observations())
    vector = torch.randn(policy.num_parameters, generator=torch.Generator().manual_seed(7),
                         dtype=F64)
    cotangent = random_like(lin.dist.params(), 8)
    left = sum(float((u * t).sum()) for u, t in zip(cotangent, lin.jvp(vector)))
    right = float(lin.vjp(cotangent) @ vector)
    assert left == pytest.approx(right, rel=1e-10)


# ---------------------------------------------------------------------------------------
# candidates, parameters, the std floor
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(POLICIES))
def test_candidate_distributions_equal_per_candidate_distributions(name):
    policy = perturb(POLICIES[name]())
    obs = observations(batch=5)
    current = policy.flat_parameters()
    generator = torch.Generator().manual_seed(11)
    candidates = current + 0.5 * torch.randn(4, current.numel(), generator=generator, dtype=F64)

    batched = policy.candidate_distributions(candidates, obs)

    assert torch.equal(policy.flat_parameters(), current)  # parameters restored
    for k, flat in enumerate(candidates):
        policy.set_flat_parameters(flat)
        with torch.no_grad():
            single = policy.distribution(obs).params()
        for got, want in zip(batched.params(), single):
            torch.testing.assert_close(got[k * 5:(k + 1) * 5], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(POLICIES))
def test_flat_parameters_round_trip(name):
    policy = POLICIES[name]()
    flat = policy.flat_parameters()
    assert flat.shape == (policy.num_parameters,)
    assert policy.num_parameters == sum(p.numel() for p in policy.parameters())
    new = torch.arange(flat.numel(), dtype=F64) / 10.0
    policy.set_flat_parameters(new)
    assert torch.equal(policy.flat_parameters(), new)
    # the vector is a copy: changing it does not touch the policy
    copy = policy.flat_parameters()
    copy += 1.0
    assert torch.equal(policy.flat_parameters(), new)
    # and the order is that of parameters()
    assert torch.equal(torch.cat([p.detach().reshape(-1) for p in policy.parameters()]), new)


@pytest.mark.parametrize("std_param", ["log_std", "bounded"])
@pytest.mark.parametrize("rho", [-1e4, -1e30, -math.inf])
def test_collapsed_std_stays_on_the_floor_and_finite(std_param, rho):
    policy = gaussian(std_param=std_param, act_dim=1)
    with torch.no_grad():
        policy.rho.fill_(rho)
    obs = observations(batch=6)
    dist = policy.distribution(obs)
    assert torch.equal(dist.std, torch.full_like(dist.std, 1e-3))
    actions = dist.mean + 1e-3 * torch.linspace(-3, 3, 6, dtype=F64).unsqueeze(1)
    assert torch.isfinite(dist.log_prob(actions)).all()
    assert all(torch.isfinite(g).all() for g in dist.log_prob_grad(actions))
    lin = policy.linearize(obs)
    assert torch.isfinite(lin.vjp(dist.log_prob_grad(actions))).all()


@pytest.mark.parametrize(("name", "kwargs"), [("log_std", {"min_std": 0.05}),
                                              ("bounded", {"min_std": 0.05, "max_std": 1.5})])
def test_std_parameterisation_closed_forms(name, kwargs):
    param = STD_PARAMETERISATIONS.build(name, **kwargs)
    rho = torch.linspace(-6, 6, 25, dtype=F64)
    if name == "log_std":
        expected = 0.05 + torch.exp(rho)
    else:
        expected = 0.05 + 1.45 / (1 + torch.exp(-rho))
    torch.testing.assert_close(param.std(rho), expected, rtol=1e-12, atol=0)
    assert (param.std(rho) >= 0.05).all()
    # derivative against autograd; inverse against std
    leaf = rho.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(param.std(leaf).sum(), leaf)
    torch.testing.assert_close(param.derivative(rho), grad, rtol=1e-12, atol=1e-14)
    for std in (0.1, 0.5, 1.2):
        assert float(param.std(torch.tensor(param.inverse(std), dtype=F64))) == pytest.approx(
            std, rel=1e-12)


@pytest.mark.parametrize(("name", "kwargs", "std", "message"), [
    ("log_std", {"min_std": 0.1}, 0.1, "init_std must be > min_std"),
    ("bounded", {"min_std": 0.1, "max_std": 1.0}, 1.0, r"init_std must be in \(0.1, 1.0\)"),
])
def test_std_inverse_refuses_values_off_the_range(name, kwargs, std, message):
    with pytest.raises(ValueError, match=message):
        STD_PARAMETERISATIONS.build(name, **kwargs).inverse(std)


@pytest.mark.parametrize("name", ["gaussian-log_std", "categorical-free"])
def test_agent_problem_old_distribution_is_a_snapshot(name):
    policy = POLICIES[name]()
    obs = observations(batch=4)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(torch.Generator().manual_seed(0))
        log_prob = dist.log_prob(actions)
    problem = AgentProblem(policy, obs, actions, torch.ones(4, dtype=F64), log_prob,
                           DIVERGENCES.build("kl"), 0.1)
    before = tuple(p.clone() for p in problem.old_dist.params())
    problem.set_params(problem.old_params + 1.0)
    for got, want in zip(problem.old_dist.params(), before):
        assert torch.equal(got, want)


# ---------------------------------------------------------------------------------------
# AgentProblem calculus vs autograd
# ---------------------------------------------------------------------------------------
def make_problem(name, batch=9, divergence="kl", seed=0):
    policy = perturb(POLICIES[name](), seed=seed + 20, scale=0.2)
    obs = observations(batch=batch, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        log_prob = dist.log_prob(actions)
    weights = torch.randn(batch, generator=generator, dtype=F64)
    return AgentProblem(policy, obs, actions, weights, log_prob, DIVERGENCES.build(divergence),
                        0.1)


def autograd_surrogate_gradient(problem: AgentProblem) -> torch.Tensor:
    params = problem.policy.trainable_parameters()
    with torch.enable_grad():
        log_prob = problem.policy.distribution(problem.obs).log_prob(problem.actions)
        surrogate = (problem.weights * torch.exp(log_prob - problem.old_log_prob)).mean()
        grads = torch.autograd.grad(surrogate, params)
    return torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("name", list(POLICIES))
def test_surrogate_gradient_equals_autograd_at_the_old_policy(name):
    problem = make_problem(name)
    torch.testing.assert_close(problem.surrogate_gradient(), autograd_surrogate_gradient(problem),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(POLICIES))
def test_surrogate_gradient_equals_autograd_away_from_the_old_policy(name):
    """At moved parameters the ratio pi/pi_old != 1 enters the gradient."""
    problem = make_problem(name, seed=2)
    problem.set_params(problem.old_params + 0.1 * torch.ones_like(problem.old_params))
    lin = problem.policy.linearize(problem.obs)
    log_prob = lin.dist.log_prob(problem.actions)
    torch.testing.assert_close(problem.surrogate_gradient(lin, log_prob=log_prob),
                               autograd_surrogate_gradient(problem), rtol=1e-10, atol=1e-12)


def autograd_divergence_hvp(problem: AgentProblem, vector: torch.Tensor) -> torch.Tensor:
    """Hessian of theta -> E_s D(old, pi_theta) at the old parameters times ``vector``,
    by double backward (the old distribution is built from fresh, detached tensors)."""
    policy = problem.policy
    params = policy.trainable_parameters()
    with torch.no_grad():
        old = type(problem.old_dist).from_params(
            tuple(p.clone() for p in policy.distribution(problem.obs).params()))
    with torch.enable_grad():
        value = problem.divergence.compute(old, policy.distribution(problem.obs)).mean()
        grads = torch.autograd.grad(value, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        hvp = torch.autograd.grad(flat @ vector, params)
    return torch.cat([h.reshape(-1) for h in hvp])


@pytest.mark.parametrize("name", ["gaussian-mlp", "gaussian-mlp-bounded", "categorical-mlp",
                                  "gaussian-log_std", "gaussian-bounded", "categorical-free"])
@pytest.mark.parametrize("divergence", ["kl", "kl:direction=reverse", "hellinger"])
def test_fisher_product_equals_autograd_hessian_at_identity(name, divergence):
    problem = make_problem(name, divergence=divergence, seed=4)
    for seed in range(2):
        vector = torch.randn(problem.old_params.shape,
                             generator=torch.Generator().manual_seed(seed), dtype=F64)
        torch.testing.assert_close(problem.fisher_product(vector),
                                   autograd_divergence_hvp(problem, vector),
                                   rtol=1e-8, atol=1e-10)


def test_fisher_product_of_a_gaussian_is_the_closed_form_fisher():
    """State-independent Gaussian, KL: H = diag(1/s^2, 2 (ds/drho)^2 / s^2) per dimension."""
    problem = make_problem("gaussian-log_std", seed=5)
    policy = problem.policy
    e = torch.exp(policy.rho.detach())
    s = 1e-3 + e
    diagonal = torch.cat([1 / s**2, 2 * e**2 / s**2])
    vector = torch.tensor([0.3, -1.0, 2.0, 0.7], dtype=F64)
    torch.testing.assert_close(problem.fisher_product(vector), diagonal * vector,
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(POLICIES))
def test_evaluate_candidates_equals_one_candidate_at_a_time(name):
    problem = make_problem(name, seed=6)
    generator = torch.Generator().manual_seed(6)
    candidates = problem.old_params + 0.2 * torch.randn(3, problem.old_params.numel(),
                                                        generator=generator, dtype=F64)
    with torch.no_grad():
        old = type(problem.old_dist).from_params(
            tuple(p.clone() for p in problem.policy.distribution(problem.obs).params()))
    gains, divergences, log_probs = problem.evaluate_candidates(candidates)
    assert torch.equal(problem.policy.flat_parameters(), problem.old_params)
    for k, flat in enumerate(candidates):
        problem.set_params(flat)
        with torch.no_grad():
            new = problem.policy.distribution(problem.obs)
            log_prob = new.log_prob(problem.actions)
            ratio = torch.exp(log_prob - problem.old_log_prob)
            gain = float((problem.weights * (ratio - 1)).mean())
            divergence = float(problem.divergence.compute(old, new).mean())
        assert gains[k] == pytest.approx(gain, rel=1e-10, abs=1e-14)
        assert divergences[k] == pytest.approx(divergence, rel=1e-10, abs=1e-14)
        torch.testing.assert_close(log_probs[k], log_prob, rtol=1e-10, atol=1e-12)
    problem.restore()
