"""Policies: analytic Jacobian products vs autograd and finite differences, candidate
distributions, the std floor, parameter round trips, and the AgentProblem calculus (surrogate
gradient, Fisher product) against plain autograd.

Policies hold ``R`` replicas (flat parameters ``[R, P]``, replica-major rows ``[R*B, ...]``).
The calculus tests run with ``R = 1`` and ``R = 2``; with two replicas the parameters and data
differ per replica, and each replica's rows are also checked against the same computation
on a one-replica copy (``Policy.replica``) and its own rows, so replicas provably never mix.
"""

from __future__ import annotations

import math

import numpy as np
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
REPLICAS = [1, 2]


def gaussian(hidden=(), std_param="log_std", act_dim=2, obs_dim=3, seed=0, replicas=1):
    torch.manual_seed(seed)
    policy = GaussianPolicy(obs_dim, act_dim, hidden=hidden, init_mean=[0.4, -1.1][:act_dim],
                            init_std=0.6, std_param=std_param, min_std=1e-3, replicas=replicas)
    return policy.to(F64)


def categorical(hidden=(), seed=0, replicas=1):
    torch.manual_seed(seed)
    return CategoricalPolicy(3, 4, hidden=hidden, init_logits=[0.2, -0.5, 1.0, 0.0],
                             replicas=replicas).to(F64)


POLICIES = {
    "gaussian-log_std": lambda replicas=1: gaussian(replicas=replicas),
    "gaussian-bounded": lambda replicas=1: gaussian(std_param="bounded", replicas=replicas),
    "categorical-free": lambda replicas=1: categorical(replicas=replicas),
    "gaussian-mlp": lambda replicas=1: gaussian(hidden=(5,), replicas=replicas),
    "gaussian-mlp-bounded": lambda replicas=1: gaussian(hidden=(5,), std_param="bounded",
                                                        replicas=replicas),
    "categorical-mlp": lambda replicas=1: categorical(hidden=(5,), replicas=replicas),
}
ANALYTIC = ["gaussian-log_std", "gaussian-bounded", "categorical-free"]


def observations(batch=7, dim=3, seed=1, replicas=1):
    """``[R*B, dim]``: every replica gets its own (different) rows."""
    return torch.randn(replicas * batch, dim, generator=torch.Generator().manual_seed(seed),
                       dtype=F64)


def random_like(tensors, seed):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(t.shape, generator=generator, dtype=F64) for t in tensors)


def perturb(policy, seed=3, scale=0.3):
    """Move every parameter a little (so no test runs only at the initial values); the noise
    ``[R, P]`` differs per replica, so replicas never share parameters."""
    flat = policy.flat_parameters()
    noise = torch.randn(flat.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    policy.set_flat_parameters(flat + scale * noise)
    if policy.replicas > 1:
        assert not torch.equal(policy.flat_parameters()[0], policy.flat_parameters()[1])
    return policy


def rows_of(tensor, replica, replicas):
    """Replica ``replica``'s rows of a replica-major tensor ``[R*B, ...]``."""
    return tensor.reshape(replicas, -1, *tensor.shape[1:])[replica]


def params_rows(params, replica, replicas):
    return tuple(rows_of(p, replica, replicas) for p in params)


# ---------------------------------------------------------------------------------------
# Jacobian products
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", ANALYTIC)
def test_analytic_linearization_equals_autograd(name, replicas):
    policy = perturb(POLICIES[name](replicas))
    obs = observations(replicas=replicas)
    analytic = policy.linearize(obs)
    generic = AutogradLinearization(policy, obs)
    assert type(analytic) is not AutogradLinearization
    for got, want in zip(analytic.dist.params(), generic.dist.params()):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    singles = [policy.replica(r).linearize(rows_of(obs, r, replicas)) for r in range(replicas)]
    for seed in range(3):
        vector = torch.randn(replicas, policy.num_parameters,
                             generator=torch.Generator().manual_seed(seed), dtype=F64)
        tangent = analytic.jvp(vector)
        for got, want in zip(tangent, generic.jvp(vector)):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        cotangent = random_like(generic.dist.params(), seed + 10)
        pulled = analytic.vjp(cotangent)
        assert pulled.shape == (replicas, policy.num_parameters)
        torch.testing.assert_close(pulled, generic.vjp(cotangent), rtol=1e-10, atol=1e-12)
        # each replica's products are those of that replica alone
        for r, single in enumerate(singles):
            for got, want in zip(params_rows(tangent, r, replicas),
                                 single.jvp(vector[r:r + 1])):
                torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(
                pulled[r:r + 1], single.vjp(params_rows(cotangent, r, replicas)),
                rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_jvp_matches_central_finite_differences(name, replicas):
    policy = perturb(POLICIES[name](replicas))
    obs = observations(replicas=replicas)
    theta = policy.flat_parameters()
    vector = torch.randn(theta.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    tangent = policy.linearize(obs).jvp(vector)
    singles = [policy.replica(r) for r in range(replicas)]
    eps = 1e-6
    with torch.no_grad():
        policy.set_flat_parameters(theta + eps * vector)
        plus = policy.distribution(obs).params()
        plus = tuple(p.clone() for p in plus)
        policy.set_flat_parameters(theta - eps * vector)
        minus = policy.distribution(obs).params()
    for got, p, m in zip(tangent, plus, minus):
        torch.testing.assert_close(got, (p - m) / (2 * eps), rtol=1e-6, atol=1e-8)
    # and replica r's tangent is the finite difference of replica r alone
    for r, single in enumerate(singles):
        obs_r = rows_of(obs, r, replicas)
        with torch.no_grad():
            single.set_flat_parameters(theta[r:r + 1] + eps * vector[r:r + 1])
            plus = tuple(p.clone() for p in single.distribution(obs_r).params())
            single.set_flat_parameters(theta[r:r + 1] - eps * vector[r:r + 1])
            minus = single.distribution(obs_r).params()
        for got, p, m in zip(params_rows(tangent, r, replicas), plus, minus):
            torch.testing.assert_close(got, (p - m) / (2 * eps), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_vjp_is_the_adjoint_of_jvp(name, replicas):
    """<u, J v> == <J^T u, v> for random u, v, in total and per replica."""
    policy = perturb(POLICIES[name](replicas))
    obs = observations(replicas=replicas)
    lin = policy.linearize(obs)
    vector = torch.randn(replicas, policy.num_parameters,
                         generator=torch.Generator().manual_seed(7), dtype=F64)
    cotangent = random_like(lin.dist.params(), 8)
    tangent = lin.jvp(vector)
    pulled = lin.vjp(cotangent)
    left = sum(float((u * t).sum()) for u, t in zip(cotangent, tangent))
    right = float((pulled * vector).sum())
    assert left == pytest.approx(right, rel=1e-10)
    for r in range(replicas):
        left_r = sum(float((rows_of(u, r, replicas) * rows_of(t, r, replicas)).sum())
                     for u, t in zip(cotangent, tangent))
        right_r = float((pulled[r] * vector[r]).sum())
        assert left_r == pytest.approx(right_r, rel=1e-10)
        single = policy.replica(r).linearize(rows_of(obs, r, replicas))
        torch.testing.assert_close(pulled[r:r + 1],
                                   single.vjp(params_rows(cotangent, r, replicas)),
                                   rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------
# candidates, parameters, the std floor
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_candidate_distributions_equal_per_candidate_distributions(name, replicas):
    policy = perturb(POLICIES[name](replicas))
    batch, count = 5, 4
    obs = observations(batch=batch, replicas=replicas)
    current = policy.flat_parameters()
    generator = torch.Generator().manual_seed(11)
    candidates = current.unsqueeze(1) + 0.5 * torch.randn(
        replicas, count, current.shape[1], generator=generator, dtype=F64)

    batched = policy.candidate_distributions(candidates, obs)

    assert torch.equal(policy.flat_parameters(), current)  # parameters restored
    assert batched.batch_size == replicas * count * batch
    # rows ordered (replica, candidate, state)
    for k in range(count):
        policy.set_flat_parameters(candidates[:, k])
        with torch.no_grad():
            single = policy.distribution(obs).params()
        for got, want in zip(batched.params(), single):
            for r in range(replicas):
                rows = slice((r * count + k) * batch, (r * count + k + 1) * batch)
                torch.testing.assert_close(got[rows], rows_of(want, r, replicas),
                                           rtol=1e-12, atol=1e-12)
    policy.set_flat_parameters(current)
    # each replica's block is that replica's own candidates on its own rows
    for r in range(replicas):
        alone = policy.replica(r).candidate_distributions(candidates[r:r + 1],
                                                          rows_of(obs, r, replicas))
        for got, want in zip(batched.params(), alone.params()):
            torch.testing.assert_close(got[r * count * batch:(r + 1) * count * batch], want,
                                       rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_flat_parameters_round_trip(name, replicas):
    policy = POLICIES[name](replicas)
    flat = policy.flat_parameters()
    assert flat.shape == (replicas, policy.num_parameters)
    assert replicas * policy.num_parameters == sum(p.numel() for p in policy.parameters())
    new = torch.arange(flat.numel(), dtype=F64).reshape(flat.shape) / 10.0
    policy.set_flat_parameters(new)
    assert torch.equal(policy.flat_parameters(), new)
    # the vector is a copy: changing it does not touch the policy
    copy = policy.flat_parameters()
    copy += 1.0
    assert torch.equal(policy.flat_parameters(), new)
    # and the order is that of parameters(), per replica
    assert torch.equal(
        torch.cat([p.detach().reshape(replicas, -1) for p in policy.parameters()], dim=1), new)
    for r in range(replicas):
        assert torch.equal(policy.replica(r).flat_parameters(), new[r:r + 1])


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
def make_problem(name, batch=9, divergence="kl", seed=0, replicas=1):
    policy = perturb(POLICIES[name](replicas), seed=seed + 20, scale=0.2)
    obs = observations(batch=batch, seed=seed, replicas=replicas)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        log_prob = dist.log_prob(actions)
    weights = torch.randn(replicas * batch, generator=generator, dtype=F64)
    return AgentProblem(policy, obs, actions, weights, log_prob, DIVERGENCES.build(divergence),
                        0.1)


def replica_problem(problem: AgentProblem, replica: int) -> AgentProblem:
    """The one-replica problem of replica ``replica``: its policy copy and its own rows
    (built at the policy's current parameters)."""
    replicas = problem.replicas

    def rows(tensor):
        return rows_of(tensor, replica, replicas)

    return AgentProblem(problem.policy.replica(replica), rows(problem.obs),
                        rows(problem.actions), rows(problem.weights),
                        rows(problem.old_log_prob), problem.divergence,
                        float(problem.radius[replica]))


def autograd_surrogate_gradient(problem: AgentProblem) -> torch.Tensor:
    """``[R, P]``: the gradient of the sum of the per-replica surrogates (each replica's
    parameters enter only its own surrogate)."""
    params = problem.policy.trainable_parameters()
    with torch.enable_grad():
        log_prob = problem.policy.distribution(problem.obs).log_prob(problem.actions)
        per_sample = problem.weights * torch.exp(log_prob - problem.old_log_prob)
        surrogate = per_sample.reshape(problem.replicas, -1).mean(1).sum()
        grads = torch.autograd.grad(surrogate, params)
    return torch.cat([g.reshape(problem.replicas, -1) for g in grads], dim=1)


@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_surrogate_gradient_equals_autograd_at_the_old_policy(name, replicas):
    problem = make_problem(name, replicas=replicas)
    gradient = problem.surrogate_gradient()
    assert gradient.shape == (replicas, problem.policy.num_parameters)
    torch.testing.assert_close(gradient, autograd_surrogate_gradient(problem),
                               rtol=1e-10, atol=1e-12)
    for r in range(replicas):
        torch.testing.assert_close(gradient[r:r + 1],
                                   replica_problem(problem, r).surrogate_gradient(),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_surrogate_gradient_equals_autograd_away_from_the_old_policy(name, replicas):
    """At moved parameters the ratio pi/pi_old != 1 enters the gradient."""
    problem = make_problem(name, seed=2, replicas=replicas)
    singles = [replica_problem(problem, r) for r in range(replicas)]  # at the old parameters
    moved = problem.old_params + 0.1 * torch.ones_like(problem.old_params)
    problem.set_params(moved)
    lin = problem.policy.linearize(problem.obs)
    log_prob = lin.dist.log_prob(problem.actions)
    gradient = problem.surrogate_gradient(lin, log_prob=log_prob)
    torch.testing.assert_close(gradient, autograd_surrogate_gradient(problem),
                               rtol=1e-10, atol=1e-12)
    for r, single in enumerate(singles):
        single.set_params(moved[r:r + 1])
        single_lin = single.policy.linearize(single.obs)
        want = single.surrogate_gradient(single_lin,
                                         log_prob=single_lin.dist.log_prob(single.actions))
        torch.testing.assert_close(gradient[r:r + 1], want, rtol=1e-12, atol=1e-14)


def autograd_divergence_hvp(problem: AgentProblem, vector: torch.Tensor) -> torch.Tensor:
    """Hessian of theta -> E_s D(old, pi_theta) at the old parameters times ``vector``,
    by double backward (the old distribution is built from fresh, detached tensors), per
    replica: ``[R, P]``."""
    policy, replicas = problem.policy, problem.replicas
    params = policy.trainable_parameters()
    with torch.no_grad():
        old = type(problem.old_dist).from_params(
            tuple(p.clone() for p in policy.distribution(problem.obs).params()))
    with torch.enable_grad():
        value = problem.divergence.compute(old, policy.distribution(problem.obs))
        value = value.reshape(replicas, -1).mean(1).sum()
        grads = torch.autograd.grad(value, params, create_graph=True)
        flat = torch.cat([g.reshape(replicas, -1) for g in grads], dim=1)
        hvp = torch.autograd.grad((flat * vector).sum(), params)
    return torch.cat([h.reshape(replicas, -1) for h in hvp], dim=1)


@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", ["gaussian-mlp", "gaussian-mlp-bounded", "categorical-mlp",
                                  "gaussian-log_std", "gaussian-bounded", "categorical-free"])
@pytest.mark.parametrize("divergence", ["kl", "kl:direction=reverse", "hellinger"])
def test_fisher_product_equals_autograd_hessian_at_identity(name, divergence, replicas):
    problem = make_problem(name, divergence=divergence, seed=4, replicas=replicas)
    singles = [replica_problem(problem, r) for r in range(replicas)]
    for seed in range(2):
        vector = torch.randn(problem.old_params.shape,
                             generator=torch.Generator().manual_seed(seed), dtype=F64)
        product = problem.fisher_product(vector)
        torch.testing.assert_close(product, autograd_divergence_hvp(problem, vector),
                                   rtol=1e-8, atol=1e-10)
        for r, single in enumerate(singles):
            torch.testing.assert_close(product[r:r + 1],
                                       single.fisher_product(vector[r:r + 1]),
                                       rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("replicas", REPLICAS)
def test_fisher_product_of_a_gaussian_is_the_closed_form_fisher(replicas):
    """State-independent Gaussian, KL: H = diag(1/s^2, 2 (ds/drho)^2 / s^2) per dimension
    (each replica with its own std)."""
    problem = make_problem("gaussian-log_std", seed=5, replicas=replicas)
    policy = problem.policy
    e = torch.exp(policy.rho.detach())
    s = 1e-3 + e
    diagonal = torch.cat([1 / s**2, 2 * e**2 / s**2], dim=1)
    vector = torch.tensor([[0.3, -1.0, 2.0, 0.7], [-0.4, 0.9, 1.5, -2.2]][:replicas],
                          dtype=F64)
    torch.testing.assert_close(problem.fisher_product(vector), diagonal * vector,
                               rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(problem.curvature_diagonal(), diagonal, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("replicas", REPLICAS)
@pytest.mark.parametrize("name", list(POLICIES))
def test_evaluate_candidates_equals_one_candidate_at_a_time(name, replicas):
    problem = make_problem(name, seed=6, replicas=replicas)
    batch, count = problem.batch_size, 3
    generator = torch.Generator().manual_seed(6)
    candidates = problem.old_params.unsqueeze(1) + 0.2 * torch.randn(
        replicas, count, problem.old_params.shape[1], generator=generator, dtype=F64)
    with torch.no_grad():
        old = type(problem.old_dist).from_params(
            tuple(p.clone() for p in problem.policy.distribution(problem.obs).params()))
    gains, divergences, log_probs = problem.evaluate_candidates(candidates)
    assert gains.shape == divergences.shape == (replicas, count)
    assert log_probs.shape == (replicas, count, batch)
    assert torch.equal(problem.policy.flat_parameters(), problem.old_params)
    for k in range(count):
        problem.set_params(candidates[:, k])
        with torch.no_grad():
            new = problem.policy.distribution(problem.obs)
            log_prob = new.log_prob(problem.actions)
            ratio = torch.exp(log_prob - problem.old_log_prob)
            gain = (problem.weights * (ratio - 1)).reshape(replicas, batch).mean(1).numpy()
            divergence = problem.divergence.compute(old, new).reshape(replicas, batch).mean(1)
        assert gains[:, k] == pytest.approx(gain, rel=1e-10, abs=1e-14)
        assert divergences[:, k] == pytest.approx(divergence.numpy(), rel=1e-10, abs=1e-14)
        torch.testing.assert_close(log_probs[:, k], log_prob.reshape(replicas, batch),
                                   rtol=1e-10, atol=1e-12)
    problem.restore()
    # each replica's row is what that replica alone reports for its own candidates
    for r in range(replicas):
        alone = replica_problem(problem, r).evaluate_candidates(candidates[r:r + 1])
        np.testing.assert_allclose(gains[r:r + 1], alone[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(divergences[r:r + 1], alone[1], rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(log_probs[r:r + 1], alone[2], rtol=1e-12, atol=1e-14)
