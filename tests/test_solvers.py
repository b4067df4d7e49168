"""Solvers against hand-worked numerics: CG vs a dense solve, the natural-gradient step vs the
closed-form Fisher of a state-independent Gaussian, eqs. 16-18 vs an autograd reference.

Problems hold ``R`` replicas (parameters ``[R, P]``, results per replica). The hand-worked
tests use ``R = 1``; the replica tests check that an ``R``-replica call equals ``R``
separate one-replica calls, each on its own parameters, data and radius.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from marl_tr.divergences import DIVERGENCES
from marl_tr.policies import GaussianPolicy
from marl_tr.solvers import SOLVERS, AgentProblem, NaturalGradient, PrimalDual, conjugate_gradient

MIN_STD = 1e-3
AGENT0 = np.zeros(1, dtype=int)  # one replica, updating agent 0


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def gaussian_problem(
    radius: float,
    seed: int = 0,
    batch: int = 64,
    mean=(0.3, -0.2),
    std: float = 0.7,
    divergence: str = "kl",
    weights: torch.Tensor | None = None,
) -> AgentProblem:
    """A float64 state-independent Gaussian problem with random weights (a fixed batch)."""
    policy = GaussianPolicy(1, len(mean), init_mean=list(mean), init_std=std, min_std=MIN_STD)
    policy = policy.to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    obs = torch.zeros(batch, 1, dtype=torch.float64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        old_log_prob = dist.log_prob(actions)
    if weights is None:
        weights = torch.randn(batch, generator=generator, dtype=torch.float64)
    return AgentProblem(policy, obs, actions, weights, old_log_prob,
                        DIVERGENCES.build(divergence), radius)


def numpy_state(problem: AgentProblem):
    """(m, s, e = d std / d rho, actions, weights) as float64 numpy arrays (one replica)."""
    policy = problem.policy
    m = policy.mean.detach()[0].numpy().copy()
    rho = policy.rho.detach()[0].numpy().copy()
    e = np.exp(rho)  # log_std: std = min_std + exp(rho)
    s = MIN_STD + e
    return m, s, e, problem.actions.numpy(), problem.weights.numpy()


def hand_gradient(m, s, e, a, w) -> np.ndarray:
    """E[w grad log pi] in (mean, rho) coordinates, written out."""
    z = (a - m) / s
    g_mean = (w[:, None] * z / s).mean(0)
    g_rho = (w[:, None] * (z * z - 1.0) / s).mean(0) * e
    return np.concatenate([g_mean, g_rho])


def hand_fisher_diag(s, e) -> np.ndarray:
    """Fisher of a Gaussian in (mean, rho): diag(1/s^2, 2 e^2 / s^2) (chain rule on std)."""
    return np.concatenate([1.0 / s**2, 2.0 * e**2 / s**2])


def gaussian_kl(m1, s1, m2, s2) -> float:
    """KL(N(m1, s1^2) || N(m2, s2^2)) summed over dimensions."""
    return float(np.sum(np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5))


def params_of(m, rho) -> np.ndarray:
    return np.concatenate([m, rho])


def flat_numpy(problem: AgentProblem) -> np.ndarray:
    """The (single) replica's current parameters ``[P]``."""
    return problem.policy.flat_parameters()[0].numpy()


# ---------------------------------------------------------------------------------------
# conjugate gradient
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 6, 15])
@pytest.mark.parametrize("seed", [0, 1])
def test_conjugate_gradient_matches_dense_solve(size, seed):
    generator = torch.Generator().manual_seed(seed)
    root = torch.randn(size, size, generator=generator, dtype=torch.float64)
    matrix = root @ root.T + 0.5 * torch.eye(size, dtype=torch.float64)
    rhs = torch.randn(1, size, generator=generator, dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: v @ matrix.T, rhs, iterations=3 * size,
                                     tolerance=1e-28)
    assert x.shape == residual.shape == (1, size)
    expected = torch.linalg.solve(matrix, rhs[0])
    torch.testing.assert_close(x[0], expected, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(residual[0], rhs[0] - matrix @ x[0], rtol=0, atol=1e-9)


def test_conjugate_gradient_exact_in_as_many_iterations_as_distinct_eigenvalues():
    # diag(1, 1, 4, 4, 9): three distinct eigenvalues -> exact after three iterations
    matrix = torch.diag(torch.tensor([1.0, 1.0, 4.0, 4.0, 9.0], dtype=torch.float64))
    rhs = torch.tensor([[1.0, -2.0, 3.0, 0.5, -1.0]], dtype=torch.float64)
    x, _ = conjugate_gradient(lambda v: v @ matrix.T, rhs, iterations=3, tolerance=1e-30)
    torch.testing.assert_close(x, rhs / torch.diagonal(matrix), rtol=1e-12, atol=1e-12)


def test_conjugate_gradient_zero_rhs_gives_zero():
    x, residual = conjugate_gradient(lambda v: 2.0 * v, torch.zeros(1, 4, dtype=torch.float64))
    assert torch.equal(x, torch.zeros(1, 4, dtype=torch.float64))
    assert torch.equal(residual, torch.zeros(1, 4, dtype=torch.float64))
    # a zero row next to a non-zero one stays zero; the other row is solved
    rhs = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, -2.0, 3.0, 4.0]], dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: 2.0 * v, rhs)
    assert torch.equal(x[0], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(residual[0], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(x[1], rhs[1] / 2.0, rtol=1e-12, atol=1e-12)


def test_conjugate_gradient_solves_each_row_with_its_own_matrix():
    """R = 3 different SPD systems in one call (one of them, with two distinct eigenvalues,
    converges long before the others) equal three separate dense solves and three separate
    one-row CG calls."""
    size = 8
    generator = torch.Generator().manual_seed(3)
    matrices = []
    for scale in (1.0, 3.0):
        root = torch.randn(size, size, generator=generator, dtype=torch.float64)
        matrices.append(scale * root @ root.T + 0.5 * torch.eye(size, dtype=torch.float64))
    matrices.append(torch.diag(torch.tensor([2.0] * 4 + [5.0] * 4, dtype=torch.float64)))
    matrices = torch.stack(matrices)  # [3, P, P]
    rhs = torch.randn(3, size, generator=generator, dtype=torch.float64)

    def matvec(v):
        assert v.shape == (3, size)
        return torch.einsum("rij,rj->ri", matrices, v)

    x, residual = conjugate_gradient(matvec, rhs, iterations=3 * size, tolerance=1e-28)
    assert x.shape == residual.shape == (3, size)
    for r in range(3):
        torch.testing.assert_close(x[r], torch.linalg.solve(matrices[r], rhs[r]),
                                   rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(residual[r], rhs[r] - matrices[r] @ x[r], rtol=0, atol=1e-9)
        alone, alone_residual = conjugate_gradient(
            lambda v, m=matrices[r]: v @ m.T, rhs[r:r + 1], iterations=3 * size,
            tolerance=1e-28)
        torch.testing.assert_close(x[r:r + 1], alone, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(residual[r:r + 1], alone_residual, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------
# natural gradient
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_natural_gradient_step_is_hand_computed_fisher_step(damping):
    radius = 1e-3
    problem = gaussian_problem(radius)
    m, s, e, a, w = numpy_state(problem)
    rho = problem.policy.rho.detach()[0].numpy().copy()
    g = hand_gradient(m, s, e, a, w)
    curvature = hand_fisher_diag(s, e) + damping
    x = g / curvature  # F^-1 g: the Fisher is diagonal in (mean, rho)
    step = math.sqrt(2 * radius / float(x @ (curvature * x))) * x
    expected = params_of(m, rho) + step

    solver = NaturalGradient(cg_damping=damping, line_search=False)
    result = solver.step(problem, AGENT0)

    assert result.moved[0]
    np.testing.assert_allclose(flat_numpy(problem), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.expected_improvement[0], float(g @ step), rtol=1e-9)


@pytest.mark.parametrize(("radius", "rtol"), [(1e-2, 0.1), (1e-3, 0.03), (1e-5, 0.003)])
def test_natural_gradient_step_lands_on_kl_radius(radius, rtol):
    """Undamped, the quadratic model hits delta exactly: the true KL is delta to first order."""
    problem = gaussian_problem(radius, seed=3)
    m, s, *_ = numpy_state(problem)
    NaturalGradient(cg_damping=0.0, line_search=False).step(problem, AGENT0)
    new = flat_numpy(problem)
    kl = gaussian_kl(m, s, new[:2], MIN_STD + np.exp(new[2:]))
    assert kl == pytest.approx(radius, rel=rtol)


def test_natural_gradient_without_line_search_reports_the_kl_it_reached():
    problem = gaussian_problem(1e-3, seed=3)
    m, s, *_ = numpy_state(problem)
    result = NaturalGradient(cg_damping=0.0, line_search=False).step(problem, AGENT0)
    new = flat_numpy(problem)
    assert result.divergence[0] == pytest.approx(
        gaussian_kl(m, s, new[:2], MIN_STD + np.exp(new[2:])), rel=1e-9)


def test_natural_gradient_line_search_accepts_the_full_damped_step():
    radius = 1e-3
    problem = gaussian_problem(radius, seed=1)
    m, s, e, a, w = numpy_state(problem)
    rho = problem.policy.rho.detach()[0].numpy().copy()
    g = hand_gradient(m, s, e, a, w)
    curvature = hand_fisher_diag(s, e) + 0.1
    x = g / curvature
    expected = params_of(m, rho) + math.sqrt(2 * radius / float(x @ (curvature * x))) * x

    result = NaturalGradient().step(problem, AGENT0)  # HARL defaults, line search on

    assert result.moved[0] and result.info["backtracks"][0] == 0.0
    assert result.info["step_fraction"][0] == 1.0
    assert result.reasons == [""]
    np.testing.assert_allclose(flat_numpy(problem), expected, rtol=1e-9)
    assert 0 < result.divergence[0] <= radius
    new_m, new_s = expected[:2], MIN_STD + np.exp(expected[2:])
    assert result.divergence[0] == pytest.approx(gaussian_kl(m, s, new_m, new_s), rel=1e-9)
    # the reported new log-probabilities are those of the new policy
    with torch.no_grad():
        fresh = problem.policy.distribution(problem.obs).log_prob(problem.actions)
    torch.testing.assert_close(result.new_log_prob, fresh)


def test_natural_gradient_line_search_backtracks_by_the_coefficient():
    """With a huge radius the full step overshoots; accepted steps are 0.8^k of it, with
    the acceptance rule checked by hand at the accepted and the previous fraction."""
    radius = 5.0
    problem = gaussian_problem(radius, seed=2)
    m, s, e, a, w = numpy_state(problem)
    rho = problem.policy.rho.detach()[0].numpy().copy()
    old_logp = problem.old_log_prob.numpy()
    g = hand_gradient(m, s, e, a, w)
    curvature = hand_fisher_diag(s, e) + 0.1
    x = g / curvature
    full = math.sqrt(2 * radius / float(x @ (curvature * x))) * x
    expected_gain = float(g @ full)

    def check(fraction):
        p = params_of(m, rho) + fraction * full
        new_s = MIN_STD + np.exp(p[2:])
        logp = (-0.5 * ((a - p[:2]) / new_s) ** 2 - np.log(new_s)
                - 0.5 * math.log(2 * math.pi)).sum(1)
        gain = float(np.mean(w * (np.exp(logp - old_logp) - 1.0)))
        kl = gaussian_kl(m, s, p[:2], new_s)
        return kl <= radius and gain > 0 and gain / (expected_gain * fraction) > 0.5

    first_ok = next((k for k in range(10) if check(0.8**k)), None)
    result = NaturalGradient().step(problem, AGENT0)
    if first_ok is None:
        assert not result.moved[0] and result.reasons[0] == "line search failed"
        return
    assert first_ok > 0, "pick a seed/radius where the full step is rejected"
    assert result.info["backtracks"][0] == first_ok
    np.testing.assert_allclose(flat_numpy(problem),
                               params_of(m, rho) + 0.8**first_ok * full, rtol=1e-9)


# ---------------------------------------------------------------------------------------
# primal-dual (eqs. 16-18) against an autograd reference
# ---------------------------------------------------------------------------------------
POLICY_KINDS = [
    pytest.param((), id="state-independent"),
    pytest.param((4,), id="mlp"),
]


def hand_gaussian(policy: GaussianPolicy, flat: torch.Tensor, obs: torch.Tensor):
    """(mean, std) ``[B, d]`` of a one-replica ``policy`` at parameters ``flat [P]``, written
    out by hand (differentiable in ``flat``): std = min_std + exp(rho); mean free or a tanh
    MLP of replicated layers ``x @ weight[0] + bias[0]``."""
    parts, offset = {}, 0
    for name, p in policy.named_parameters():
        shape = p.shape[1:]  # drop the replica dimension
        count = p[0].numel()
        parts[name] = flat[offset:offset + count].view(shape)
        offset += count
    d = policy.act_dim
    if policy.mean_net is None:  # theta = (mean, rho)
        mean = parts["theta"][:d].expand(obs.shape[0], -1)
    else:
        hidden = torch.tanh(obs @ parts["mean_net.0.weight"] + parts["mean_net.0.bias"])
        mean = hidden @ parts["mean_net.2.weight"] + parts["mean_net.2.bias"]
    std = (MIN_STD + torch.exp(parts["theta"][-d:])).expand_as(mean)
    return mean, std


def hand_log_prob(mean, std, actions):
    return (-0.5 * ((actions - mean) / std) ** 2 - torch.log(std)
            - 0.5 * math.log(2 * math.pi)).sum(1)


def hand_mean_kl(old, new) -> torch.Tensor:
    """E_s KL(N(old) || N(new)), summed over action dimensions."""
    (m1, s1), (m2, s2) = old, new
    return (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(1).mean()


def current(policy: GaussianPolicy) -> torch.Tensor:
    """The one-replica policy's parameters ``[P]``."""
    return policy.flat_parameters()[0]


def make_problem(radius, seed=0, hidden=(), batch=64, mean=(0.3, -0.2), std=0.7):
    if hidden == ():
        return gaussian_problem(radius, seed=seed, batch=batch, mean=mean, std=std)
    torch.manual_seed(seed)  # MLP initialisation
    policy = GaussianPolicy(1, 2, hidden=hidden, init_mean=list(mean), init_std=std,
                            min_std=MIN_STD).to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    obs = torch.rand(batch, 1, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        old_log_prob = dist.log_prob(actions)
    weights = torch.randn(batch, generator=generator, dtype=torch.float64)
    return AgentProblem(policy, obs, actions, weights, old_log_prob,
                        DIVERGENCES.build("kl"), radius)


def reference_primal_dual(problem: AgentProblem, lr_theta, lr_lambda, lam, steps):
    """Eqs. 17-18 written directly: theta <- theta - lr grad L(theta, lambda), then
    lambda <- max(0, lambda + lr_lambda (E KL(old, theta_new) - delta)), by autograd."""
    policy, obs = problem.policy, problem.obs
    radius = float(problem.radius[0])
    theta0 = current(policy)
    old = tuple(t.detach() for t in hand_gaussian(policy, theta0, obs))

    def lagrangian(theta, lam):
        new = hand_gaussian(policy, theta, obs)
        ratio = torch.exp(hand_log_prob(*new, problem.actions) - problem.old_log_prob)
        kl = hand_mean_kl(old, new)
        return -(problem.weights * ratio).mean() + lam * (kl - radius), kl

    theta = theta0
    thetas, lambdas, kls = [], [], []
    for _ in range(steps):
        leaf = theta.clone().requires_grad_(True)
        value, _ = lagrangian(leaf, lam)
        (grad,) = torch.autograd.grad(value, leaf)
        theta = theta - lr_theta * grad
        kl = float(lagrangian(theta, 0.0)[1])
        lam = max(0.0, lam + lr_lambda * (kl - radius))
        thetas.append(theta.clone())
        lambdas.append(lam)
        kls.append(kl)
    return thetas, lambdas, kls


def record_inner_parameters(problem: AgentProblem) -> list[torch.Tensor]:
    """The parameters ``[P]`` at every inner step (the solver re-linearises after each theta
    step, with ``linearize_at(params, obs)`` or by writing them and calling ``linearize``)."""
    seen: list[torch.Tensor] = []
    policy = problem.policy
    original, original_at = policy.linearize, getattr(policy, "linearize_at", None)
    inside = []

    def spy(obs):
        if not inside:  # not already recorded by linearize_at
            seen.append(current(policy))
        return original(obs)

    def spy_at(params, obs):
        seen.append(params[0].clone())
        inside.append(True)
        try:
            return original_at(params, obs)
        finally:
            inside.pop()

    policy.linearize = spy
    if original_at is not None:
        policy.linearize_at = spy_at
    return seen


@pytest.mark.parametrize("hidden", POLICY_KINDS)
def test_primal_dual_lambda_rises_while_the_constraint_is_violated(hidden):
    problem = make_problem(radius=1e-6, seed=4, hidden=hidden)
    solver = PrimalDual(lr_theta=0.05, lr_lambda=20.0, inner_steps=8)
    seen = record_inner_parameters(problem)
    thetas, lambdas, kls = reference_primal_dual(problem, 0.05, 20.0, 0.0, 8)

    result = solver.step(problem, AGENT0)

    assert all(kl > problem.radius[0] for kl in kls)  # every inner step violates the ball
    assert all(b > a for a, b in zip([0.0, *lambdas], lambdas))  # strictly rising
    assert len(seen) == 8
    for got, want in zip(seen, thetas):
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)
    assert result.info["lambda"][0] == pytest.approx(lambdas[-1], rel=1e-7)
    assert solver.dual_variables(AGENT0)[0] == pytest.approx(lambdas[-1], rel=1e-7)
    assert result.divergence[0] == pytest.approx(kls[-1], rel=1e-7)


@pytest.mark.parametrize("hidden", POLICY_KINDS)
def test_primal_dual_lambda_falls_to_zero_when_the_constraint_is_slack(hidden):
    problem = make_problem(radius=10.0, seed=5, hidden=hidden)
    solver = PrimalDual(lr_theta=0.01, lr_lambda=0.1, inner_steps=6, lambda_init=3.0)
    seen = record_inner_parameters(problem)
    thetas, lambdas, kls = reference_primal_dual(problem, 0.01, 0.1, 3.0, 6)

    result = solver.step(problem, AGENT0)

    assert all(kl < problem.radius[0] for kl in kls)
    positive = [lam for lam in lambdas if lam > 0]
    assert all(b < a for a, b in zip([3.0, *positive], positive))  # strictly falling
    assert lambdas[-2:] == [0.0, 0.0]  # projected onto lambda >= 0, and stays there
    for got, want in zip(seen, thetas):
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)
    assert result.info["lambda"][0] == 0.0
    assert result.divergence[0] == pytest.approx(kls[-1], rel=1e-7)


@pytest.mark.parametrize(
    ("hidden", "radius"),
    [pytest.param(p.values[0], r, id=p.id, marks=p.marks) for p, r in zip(POLICY_KINDS,
                                                                          [5e-4, 9e-4])],
)
def test_primal_dual_lambda_update_is_exact_per_call(hidden, radius):
    """One inner step per call: lambda_new = max(0, lambda + lr (D - delta)) with D the KL
    between the call's old and new policy, recomputed here by hand. The steps grow, so
    lambda first falls (slack) and then rises (violated)."""
    solver = PrimalDual(lr_theta=0.05, lr_lambda=3.0, inner_steps=1, lambda_init=0.01)
    problem = make_problem(radius=radius, seed=6, hidden=hidden)
    policy, obs = problem.policy, problem.obs
    agent1 = np.ones(1, dtype=int)
    lam, moves = 0.01, []
    for call in range(8):
        before = hand_gaussian(policy, current(policy), obs)
        result = solver.step(problem, agent1)
        after = hand_gaussian(policy, current(policy), obs)
        kl = float(hand_mean_kl(before, after))
        previous, lam = lam, max(0.0, lam + 3.0 * (kl - radius))
        moves.append(np.sign(lam - previous))
        assert result.info["lambda"][0] == pytest.approx(lam, rel=1e-9, abs=1e-15), call
        # the next call: a fresh problem at the new parameters, same batch
        with torch.no_grad():
            log_prob = policy.distribution(obs).log_prob(problem.actions)
        problem = AgentProblem(policy, obs, problem.actions, problem.weights, log_prob,
                               problem.divergence, radius)
    assert -1 in moves and 1 in moves
    assert solver.dual_variables(agent1)[0] == pytest.approx(lam, rel=1e-9)
    assert solver.dual_variables(AGENT0)[0] == 0.01  # other agents untouched: lambda_init


@pytest.mark.parametrize("hidden", POLICY_KINDS)
def test_primal_dual_shrink_safeguard_lands_on_the_ball(hidden):
    problem = make_problem(radius=1e-4, seed=7, hidden=hidden)
    policy, obs = problem.policy, problem.obs
    radius = float(problem.radius[0])
    before = hand_gaussian(policy, current(policy), obs)
    result = PrimalDual(lr_theta=0.2, inner_steps=3, safeguard="shrink").step(problem, AGENT0)
    kl = float(hand_mean_kl(before, hand_gaussian(policy, current(policy), obs)))
    assert result.info["shrink"][0] < 1.0
    assert kl <= radius
    assert kl == pytest.approx(radius, rel=1e-3)  # bisection: on the boundary


# ---------------------------------------------------------------------------------------
# degenerate gradients: no step, never NaN
# ---------------------------------------------------------------------------------------
SOLVER_SPECS = ["natural_gradient", "natural_gradient:line_search=false", "primal_dual",
                "primal_dual:optimizer=adam", "exact_radius", "exact_radius:direction=natural"]


@pytest.mark.parametrize("spec", SOLVER_SPECS)
def test_zero_weights_mean_no_step_and_no_warning(spec):
    problem = gaussian_problem(0.1, weights=torch.zeros(64, dtype=torch.float64))
    before = problem.policy.flat_parameters()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = SOLVERS.build(spec).step(problem, AGENT0)
    assert not result.moved[0] and result.reasons[0] == "zero gradient"
    assert torch.equal(problem.policy.flat_parameters(), before)
    assert torch.equal(result.new_log_prob, problem.old_log_prob)
    assert result.divergence[0] == 0.0


@pytest.mark.parametrize("spec", SOLVER_SPECS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_gradient_means_no_step_with_a_warning(spec, bad):
    weights = torch.randn(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights[5] = bad
    problem = gaussian_problem(0.1, weights=weights)
    before = problem.policy.flat_parameters()
    with pytest.warns(RuntimeWarning, match="non-finite surrogate gradient"):
        result = SOLVERS.build(spec).step(problem, AGENT0)
    assert not result.moved[0] and result.reasons[0] == "non-finite gradient"
    assert torch.equal(problem.policy.flat_parameters(), before)


# ---------------------------------------------------------------------------------------
# replicas: an R-replica step equals R one-replica steps
# ---------------------------------------------------------------------------------------
# Per replica: (seed, initial mean, initial std, radius); different parameters, data and
# radius, so that a replica could only match its one-replica step if replicas never mix.
REPLICA_SETUPS = [(11, (0.3, -0.2), 0.7, 1e-3), (12, (-0.5, 0.8), 0.4, 10.0)]


def stack_problems(problems: list[AgentProblem]) -> AgentProblem:
    """One ``R``-replica problem holding one-replica ``problems`` as its replicas: replica
    ``r`` has ``problems[r]``'s parameters, rows and radius."""
    first = problems[0].policy
    policy = GaussianPolicy(1, 2, hidden=first.hidden, min_std=MIN_STD,
                            replicas=len(problems)).to(torch.float64)
    policy.set_flat_parameters(torch.cat([q.policy.flat_parameters() for q in problems]))

    def cat(name):
        return torch.cat([getattr(q, name) for q in problems])

    return AgentProblem(policy, cat("obs"), cat("actions"), cat("weights"), cat("old_log_prob"),
                        problems[0].divergence, np.array([float(q.radius[0]) for q in problems]))


def replica_problems(hidden, degenerate=None):
    """(R one-replica problems, the 2-replica problem stacking them); with ``degenerate``,
    replica 1's weights are all that value (0: zero gradient; NaN: non-finite)."""
    singles = [make_problem(radius, seed=seed, hidden=hidden, mean=mean, std=std)
               for seed, mean, std, radius in REPLICA_SETUPS]
    if degenerate is not None:
        q = singles[1]
        weights = torch.full_like(q.weights, degenerate)
        singles[1] = AgentProblem(q.policy, q.obs, q.actions, weights, q.old_log_prob,
                                  q.divergence, q.radius)
    stacked = stack_problems(singles)
    flat = stacked.policy.flat_parameters()
    assert not torch.equal(flat[0], flat[1])  # the replicas really differ
    return singles, stacked


@pytest.mark.parametrize("hidden", POLICY_KINDS)
def test_lagrangian_gradient_is_the_autograd_gradient_of_eq_16(hidden):
    """Away from the old policy, per replica: d/dtheta of -E[M ratio] + lambda E_s KL(old,
    theta), written out by hand and differentiated by autograd; lambda = 0.7 in replica 0
    and 0 in replica 1 (and 0 in both)."""
    singles, stacked = replica_problems(hidden)
    generator = torch.Generator().manual_seed(5)
    moved = stacked.old_params + 0.05 * torch.randn(stacked.old_params.shape,
                                                    generator=generator, dtype=torch.float64)
    lin = stacked.policy.linearize_at(moved, stacked.obs)
    log_prob = lin.dist.log_prob(stacked.actions)
    for lam in (np.array([0.7, 0.0]), np.zeros(2)):
        got = stacked.lagrangian_gradient(lin, log_prob, lam)
        composed = (torch.from_numpy(lam).unsqueeze(1) * stacked.divergence_gradient(lin)
                    - stacked.surrogate_gradient(lin, log_prob=log_prob))
        torch.testing.assert_close(got, composed, rtol=1e-10, atol=1e-12)
        for r, single in enumerate(singles):
            old = tuple(t.detach() for t in hand_gaussian(single.policy, single.old_params[0],
                                                          single.obs))
            theta = moved[r].clone().requires_grad_(True)
            new = hand_gaussian(single.policy, theta, single.obs)
            ratio = torch.exp(hand_log_prob(*new, single.actions) - single.old_log_prob)
            value = -(single.weights * ratio).mean() + lam[r] * hand_mean_kl(old, new)
            (want,) = torch.autograd.grad(value, theta)
            torch.testing.assert_close(got[r], want, rtol=1e-10, atol=1e-12)


def next_problem(problem: AgentProblem) -> AgentProblem:
    """A fresh problem at the policy's new parameters, on the same batch and radius."""
    with torch.no_grad():
        log_prob = problem.policy.distribution(problem.obs).log_prob(problem.actions)
    return AgentProblem(problem.policy, problem.obs, problem.actions, problem.weights,
                        log_prob, problem.divergence, problem.radius)


def assert_same_step(solver, stacked: AgentProblem, result, singles, results):
    """Replica r of the stacked step equals the one-replica step r: parameters, what it
    reports (each of the solver's info keys as the training loop logs it: NaN where a result
    lacks the key), the new log-probabilities. The solver's model of the gain is compared
    where the replica moved (test_a_degenerate_replica_reports_no_expected_improvement
    checks the others)."""
    batch = stacked.batch_size
    for r, (single, alone) in enumerate(zip(singles, results)):
        torch.testing.assert_close(stacked.policy.flat_parameters()[r:r + 1],
                                   single.policy.flat_parameters(), rtol=1e-12, atol=1e-14)
        assert result.moved[r] == alone.moved[0]
        assert result.reasons[r] == alone.reasons[0]
        names = ["divergence", "improvement"] + ["expected_improvement"] * bool(alone.moved[0])
        for name in names:
            np.testing.assert_allclose(getattr(result, name)[r], getattr(alone, name)[0],
                                       rtol=1e-10, atol=1e-15, err_msg=name)
        np.testing.assert_allclose(logged_info(solver, result, r), logged_info(solver, alone, 0),
                                   rtol=1e-10, atol=1e-15, equal_nan=True)
        torch.testing.assert_close(result.new_log_prob[r * batch:(r + 1) * batch],
                                   alone.new_log_prob, rtol=1e-12, atol=1e-12)


def logged_info(solver, result, replica) -> list[float]:
    """One replica's ``info`` as the training loop logs it: each of the solver's
    ``info_keys``, NaN for a key the result does not report."""
    return [float(result.info[key][replica]) if key in result.info else math.nan
            for key in solver.info_keys]


@pytest.mark.parametrize("hidden", POLICY_KINDS)
@pytest.mark.parametrize("spec", ["natural_gradient", "natural_gradient:line_search=false"])
def test_natural_gradient_step_on_two_replicas_equals_two_single_steps(spec, hidden):
    """The MLP runs CG over both replicas in one call and the line search replica by replica
    in lockstep; the state-independent policy divides by the diagonal Fisher and searches
    all candidates in one batched pass. Replica 1's large radius makes its line search
    backtrack further than replica 0's."""
    singles, stacked = replica_problems(hidden)
    results = [SOLVERS.build(spec).step(q, AGENT0) for q in singles]
    assert all(alone.moved[0] for alone in results)
    result = SOLVERS.build(spec).step(stacked, np.zeros(2, dtype=int))
    assert result.moved.shape == result.divergence.shape == (2,)
    assert result.new_log_prob.shape == (2 * stacked.batch_size,)
    assert_same_step(SOLVERS.build(spec), stacked, result, singles, results)
    if spec == "natural_gradient":  # replica 1's big radius: its full step is rejected
        assert results[0].info["backtracks"][0] == 0 < results[1].info["backtracks"][0]


@pytest.mark.parametrize("hidden", POLICY_KINDS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_primal_dual_on_two_replicas_equals_two_single_runs(optimizer, hidden):
    """Three calls with persistent lambda (and Adam moments): replica 0 updates agent 1 and
    replica 1 agent 0, against one one-replica solver per replica. Lambda (and the optimiser
    state) is kept per (agent, replica)."""
    settings = {"lr_theta": 0.05, "lr_lambda": 5.0, "inner_steps": 4, "lambda_init": 0.2,
                "optimizer": optimizer}
    singles, stacked = replica_problems(hidden)
    solver = PrimalDual(**settings)
    solver.reset(2, replicas=2)
    references = [PrimalDual(**settings) for _ in singles]
    agents = np.array([1, 0])
    for _ in range(3):
        results = [ref.step(q, np.array([agent])) for ref, q, agent in
                   zip(references, singles, agents)]
        result = solver.step(stacked, agents)
        assert_same_step(solver, stacked, result, singles, results)
        singles = [next_problem(q) for q in singles]
        stacked = next_problem(stacked)
    lambdas = [ref.dual_variables(np.array([agent]))[0] for ref, agent in zip(references, agents)]
    assert lambdas[0] != lambdas[1]
    np.testing.assert_allclose(solver.dual_variables(agents), lambdas, rtol=1e-10)
    # the agent each replica did not update keeps lambda_init in that replica
    np.testing.assert_array_equal(solver.dual_variables(agents[::-1]), [0.2, 0.2])
    state = solver.state_dict()["lambdas"]
    assert set(state) == {0, 1} and all(v.shape == (2,) for v in state.values())


@pytest.mark.parametrize("spec", SOLVER_SPECS)
@pytest.mark.parametrize("degenerate", [0.0, math.nan])
def test_a_degenerate_replica_does_not_stop_the_others(spec, degenerate):
    """Replica 1's weights are all zero (or NaN): it takes no step, with its reason, while
    replica 0 takes exactly its one-replica step."""
    singles, stacked = replica_problems((), degenerate=degenerate)
    before = stacked.policy.flat_parameters()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the NaN replica warns
        results = [SOLVERS.build(spec).step(q, AGENT0) for q in singles]
        result = SOLVERS.build(spec).step(stacked, np.zeros(2, dtype=int))
    reason = "zero gradient" if degenerate == 0.0 else "non-finite gradient"
    assert result.moved.tolist() == [True, False]
    assert result.reasons == ["", reason]
    assert torch.equal(stacked.policy.flat_parameters()[1], before[1])
    batch = stacked.batch_size
    assert torch.equal(result.new_log_prob[batch:], stacked.old_log_prob[batch:])
    assert result.divergence[1] == 0.0
    assert_same_step(SOLVERS.build(spec), stacked, result, singles, results)


@pytest.mark.parametrize("spec", ["natural_gradient", "natural_gradient:line_search=false"])
@pytest.mark.parametrize("degenerate", [0.0, math.nan])
def test_a_degenerate_replica_reports_no_expected_improvement(spec, degenerate):
    singles, stacked = replica_problems((), degenerate=degenerate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the NaN replica warns
        alone = SOLVERS.build(spec).step(singles[1], AGENT0)
        result = SOLVERS.build(spec).step(stacked, np.zeros(2, dtype=int))
    assert result.moved.tolist() == [True, False] and not alone.moved[0]
    assert math.isnan(alone.expected_improvement[0])
    assert math.isnan(result.expected_improvement[1])


def test_natural_gradient_refuses_a_divergence_not_smooth_at_identity():
    with pytest.raises(ValueError,
                       match=r"smooth at identity.*use solver 'exact_radius'.*'primal_dual'"):
        NaturalGradient().check_divergence(DIVERGENCES.build("w1"))
    NaturalGradient().check_divergence(DIVERGENCES.build("kl"))  # accepted


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("primal_dual:optimizer=rmsprop", "optimizer"),
        ("primal_dual:lr_theta=0", "lr_theta"),
        ("primal_dual:safeguard=clip", "safeguard"),
        ("natural_gradient:backtrack_coef=1.5", "backtrack_coef"),
        ("natural_gradient:line_search=maybe", "line_search"),
    ],
)
def test_bad_solver_settings_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        SOLVERS.build(spec)


def test_a_solver_that_returns_no_step_result_is_a_training_error():
    """A plug-in solver's step() must return a StepResult: anything else stops the run with
    a TrainingError naming the solver (not an AttributeError from deep in the loop)."""
    import marl_tr
    from marl_tr.solvers.base import Solver
    from marl_tr.training.loop import TrainingError

    if "returns_none_q" not in SOLVERS:
        @SOLVERS.register("returns_none_q")
        class ReturnsNone(Solver):
            autograd_free = True

            def step(self, problem, agents):
                return None

    with pytest.raises(TrainingError, match=r"iteration 0: solver 'returns_none_q' returned "
                                            r"NoneType from step\(\); a solver returns a "
                                            r"StepResult"):
        marl_tr.train(solver="returns_none_q", iterations=1)
