"""The exact dual step (solver ``ot_dual``): projections by hand, an exact push-forward of a
categorical worked by hand, and whole runs in which every step stays within its radius."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces

import marl_tr
from marl_tr.divergences import DIVERGENCES
from marl_tr.policies import CategoricalPolicy, GaussianPolicy
from marl_tr.solvers import SOLVERS, AgentProblem
from marl_tr.solvers.projection import (
    gaussian_std,
    gaussian_targets,
    project_free_logits,
    project_state_independent_gaussian,
)

AGENT0 = np.zeros(1, dtype=int)


class FixedValues:
    """Stands in for ``ActionValues``: the values of candidates from a function of them."""

    def __init__(self, function, action_space):
        self.function = function
        self.action_space = action_space

    def __call__(self, candidates):
        return self.function(candidates)


# ---------------------------------------------------------------------------------------
# projections
# ---------------------------------------------------------------------------------------
def gaussian_setup(batch=50, dim=2, seed=0):
    policy = GaussianPolicy(1, dim, init_mean=[0.3, -0.2][:dim], init_std=0.7,
                            min_std=1e-3).to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    actions = policy.distribution(torch.zeros(batch, 1)).sample(generator).view(1, batch, dim)
    return policy, policy.flat_parameters(), actions


def test_identity_plan_projects_onto_the_old_gaussian_exactly():
    policy, old, actions = gaussian_setup()
    candidates = torch.cat((actions.unsqueeze(2), actions.unsqueeze(2) + 1.0), dim=2)
    plan = torch.zeros(1, 50, 2, dtype=torch.float64)
    plan[..., 0] = 1 / 50
    got = project_state_independent_gaussian(policy, old, actions, candidates, plan)
    torch.testing.assert_close(got, old, rtol=1e-12, atol=1e-12)
    # the plain weighted moments refit the batch instead: its sample mean, not the old mean
    plain = project_state_independent_gaussian(policy, old, actions, candidates, plan,
                                               shift=False)
    torch.testing.assert_close(plain[:, :2], actions.mean(1), rtol=1e-12, atol=1e-12)


def test_a_uniform_displacement_moves_the_mean_and_keeps_the_std():
    policy, old, actions = gaussian_setup()
    shift = torch.tensor([0.25, -0.5], dtype=torch.float64)
    candidates = torch.stack((actions, actions + shift), dim=2)
    plan = torch.zeros(1, 50, 2, dtype=torch.float64)
    plan[..., 1] = 1 / 50
    got = project_state_independent_gaussian(policy, old, actions, candidates, plan)
    torch.testing.assert_close(got[:, :2], old[:, :2] + shift, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[:, 2:], old[:, 2:], rtol=1e-10, atol=1e-12)


def test_a_plan_to_one_point_collapses_the_std_and_moves_the_mean_by_its_displacement():
    _, old, actions = gaussian_setup()
    point = torch.tensor([1.0, 2.0], dtype=torch.float64)
    candidates = torch.stack((actions, point.expand_as(actions)), dim=2)
    plan = torch.zeros(1, 50, 2, dtype=torch.float64)
    plan[..., 1] = 1 / 50
    targets = gaussian_targets(actions, candidates, plan, old[:, None, :2].expand_as(actions))
    mean = targets.mean(1)
    torch.testing.assert_close(mean, old[:, :2] + point - actions.mean(1))
    std = gaussian_std(actions, candidates, plan, mean.unsqueeze(1).expand_as(actions),
                       old[:, None, :2].expand_as(actions), torch.full((1, 2), 0.7,
                                                                          dtype=torch.float64))
    # the pushed points sit at ``point``, whose spread around the new mean is |point - mean|
    want = 0.7 * (point - mean).abs() / ((actions - old[:, None, :2]).square().mean(1)).sqrt()
    torch.testing.assert_close(std, want, rtol=1e-10, atol=1e-12)


def test_free_logits_are_the_pushed_frequencies():
    pushed = torch.tensor([[[0.2, 0.3, 0.5], [0.4, 0.1, 0.5]]], dtype=torch.float64)
    logits = project_free_logits(pushed)
    torch.testing.assert_close(torch.softmax(logits, -1), torch.tensor([[0.3, 0.2, 0.5]],
                                                                       dtype=torch.float64))


# ---------------------------------------------------------------------------------------
# the solver on hand-made problems
# ---------------------------------------------------------------------------------------
def categorical_problem(radius, values, batch=8, seed=0):
    policy = CategoricalPolicy(1, 3).to(torch.float64)  # uniform
    generator = torch.Generator().manual_seed(seed)
    obs = torch.zeros(batch, 1, dtype=torch.float64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
    weights = torch.randn(batch, generator=generator, dtype=torch.float64)
    return AgentProblem(policy, obs, actions, weights, dist.log_prob(actions),
                        DIVERGENCES.build("w1"), radius,
                        action_values=FixedValues(values, spaces.Discrete(3)),
                        generators=[generator])


def test_categorical_push_forward_worked_by_hand():
    """Uniform old policy over 0, 1, 2 on the ordinal line, A = (0, 0, 1) everywhere, delta =
    0.2. Moving mass j -> 2 gains 1 at cost |j - 2|: at lambda* = 1 the rows j = 1 tie between
    staying and moving (cost 1/3 in all > delta), j = 0 stays; t* = 0.2 / (1/3) = 0.6 of
    action 1's mass moves to 2: new probabilities (1/3, 1/3 - 0.2, 1/3 + 0.2), W1 = delta."""
    problem = categorical_problem(0.2, lambda c: (c == 2).to(torch.float64))
    result = SOLVERS.build("ot_dual").step(problem, AGENT0)
    assert result.moved[0]
    np.testing.assert_allclose(result.info["lambda"][0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(result.info["plan_cost"][0], 0.2, rtol=1e-12)
    np.testing.assert_allclose(result.info["dual_bound"][0], 0.2, rtol=1e-12)
    # g(lambda*) = lambda* delta + E max(A - lambda* c) = 0.2 + (1/3) * 1 (row j = 2 keeps 1)
    np.testing.assert_allclose(result.info["dual_value"][0], 0.2 + 1 / 3, rtol=1e-12)
    probs = torch.softmax(problem.policy.logits.detach(), -1)[0].numpy()
    np.testing.assert_allclose(probs, [1 / 3, 1 / 3 - 0.2, 1 / 3 + 0.2], rtol=1e-9)
    assert result.divergence[0] <= 0.2
    np.testing.assert_allclose(result.divergence[0], 0.2, rtol=1e-9)


def test_constant_values_mean_an_identity_plan_and_no_step():
    problem = categorical_problem(0.2, lambda c: torch.zeros(c.shape, dtype=torch.float64))
    before = problem.policy.flat_parameters()
    result = SOLVERS.build("ot_dual").step(problem, AGENT0)
    assert not result.moved[0] and result.reasons[0] == "identity plan"
    assert result.info["lambda"][0] == 0.0
    assert torch.equal(problem.policy.flat_parameters(), before)


def test_non_finite_values_mean_no_step():
    problem = categorical_problem(0.2, lambda c: torch.full(c.shape, math.nan,
                                                            dtype=torch.float64))
    result = SOLVERS.build("ot_dual").step(problem, AGENT0)
    assert not result.moved[0] and result.reasons[0] == "non-finite action values"


def test_a_projection_outside_the_ball_is_shrunk_back_onto_it():
    """Values rise to the right, towards a peak at 5: on a grid coarser than the radius
    (spacing 7/32 > delta) the plan keeps some samples and moves others a whole grid step, so
    the projected Gaussian also widens (the moment fit) and its exact W1 exceeds delta; the
    step keeps the fraction that lands on delta."""
    policy = GaussianPolicy(1, 1, init_mean=3.0, init_std=0.5).to(torch.float64)
    generator = torch.Generator().manual_seed(2)
    obs = torch.zeros(40, 1, dtype=torch.float64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        old_log_prob = dist.log_prob(actions)
    problem = AgentProblem(policy, obs, actions, torch.randn(40, generator=generator,
                                                              dtype=torch.float64),
                           old_log_prob, DIVERGENCES.build("w1"), 0.05,
                           action_values=FixedValues(lambda c: -(c[..., 0] - 5.0).abs(),
                                                     spaces.Box(0.0, 7.0, (1,))),
                           generators=[generator])
    result = SOLVERS.build("ot_dual:draws=0").step(problem, AGENT0)
    assert result.moved[0]
    assert result.info["projected_divergence"][0] > 0.05
    assert 0 < result.info["shrink"][0] < 1
    assert 0.05 * (1 - 1e-3) <= result.divergence[0] <= 0.05


# ---------------------------------------------------------------------------------------
# whole runs: the radius holds
# ---------------------------------------------------------------------------------------
RUNS = {
    "gaussian-oracle": dict(env_kwargs={"n": 2}, critic="oracle_q"),
    "gaussian-q": dict(env_kwargs={"n": 2}, critic="q:updates=2"),
    "gaussian-mlp": dict(env_kwargs={"n": 2}, critic="oracle_q", policy_hidden=(6,),
                         solver="ot_dual:fit_steps=10"),
    "categorical": dict(env="ClimbingGame-v0", critic="oracle_q"),
    "categorical-mpe-metric": dict(env="PenaltyGame-v0", critic="q:updates=2",
                                   divergence="w1:cost=((0,1,2),(1,0,1),(2,1,0))"),
    "categorical-mlp": dict(env="ClimbingGame-v0", critic="oracle_q", policy_hidden=(6,),
                            solver="ot_dual:fit_steps=10"),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_every_dual_step_stays_within_its_radius(name):
    settings = {"divergence": "w1", "solver": "ot_dual", **RUNS[name]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = marl_tr.train(radius="fixed:delta=0.05", iterations=10, seed=2, **settings)
    n = len(result.policies)
    ratio = np.array([[row[f"constraint_ratio_{i}"] for i in range(n)] for row in result.metrics])
    moved = np.array([[row[f"moved_{i}"] for i in range(n)] for row in result.metrics])
    assert (ratio <= 1 + 1e-9).all(), ratio.max()
    assert moved.sum() >= n
    lam = np.array([[row[f"lambda_{i}"] for i in range(n)] for row in result.metrics])
    bound = np.array([[row[f"dual_bound_{i}"] for i in range(n)] for row in result.metrics])
    np.testing.assert_allclose(bound, lam * 0.05, rtol=1e-12)  # Proposition 1's lambda* delta


def test_the_oracle_dual_is_a_best_response_to_the_near_peak():
    """From the paper's start (mean 1.5) the exact dual with the oracle Q climbs to the
    nearer, higher peak (1, 1, 1): E[r] 0.4127 (see docs/results.md)."""
    result = marl_tr.train(preset="wmatrpo-dual:critic=oracle_q", env_kwargs={"n": 3},
                           iterations=200, seed=0)
    np.testing.assert_allclose(result.final_means().ravel(), 1.0, atol=0.02)
    assert result.expected_reward() > 0.41


def test_a_step_below_the_parameters_precision_is_no_move():
    """A radius far below float32's resolution at the parameters: the shrunk step rounds away,
    and the agent reports no move (as the other solvers do), with its parameters unchanged."""
    result = marl_tr.train(preset="wmatrpo-dual:critic=oracle_q", env_kwargs={"n": 2},
                           radius="fixed:delta=1e-12", iterations=3, seed=0)
    assert all(row[f"moved_{i}"] == 0 for row in result.metrics for i in range(2))
    assert all(row[f"divergence_{i}"] == 0 for row in result.metrics for i in range(2))
    np.testing.assert_array_equal(result.final_means(), 1.5)


def test_moves_that_the_ground_metric_prices_at_zero_are_taken():
    """A categorical ground cost of zeros makes every move free: the plan costs 0 but moves
    mass to better actions, and the agents take it (a zero-cost plan is not the identity)."""
    result = marl_tr.train(preset="wmatrpo-dual:critic=oracle_q", env="ClimbingGame-v0",
                           divergence="w1:cost=((0,0,0),(0,0,0),(0,0,0))", iterations=3, seed=0)
    first = result.metrics[0]
    assert first["plan_cost_0"] == 0.0 and first["dual_value_0"] > 1.0
    assert first["moved_0"] == 1 and first["moved_1"] == 1


def gaussian_problem_3d(solver_generator_seed=4, radius=0.1):
    """A 3-dimensional state-independent Gaussian (no grid: d > grid_dims) whose values peak
    at (1, -1, 0.5), far from its draws' reach."""
    policy = GaussianPolicy(1, 3, init_mean=0.0, init_std=0.3).to(torch.float64)
    generator = torch.Generator().manual_seed(solver_generator_seed)
    obs = torch.zeros(30, 1, dtype=torch.float64)
    with torch.no_grad():
        dist = policy.distribution(obs)
        actions = dist.sample(generator)
        old_log_prob = dist.log_prob(actions)
    peak = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    values = FixedValues(lambda c: -(c - peak).norm(dim=-1), spaces.Box(-3.0, 3.0, (3,)))
    return AgentProblem(policy, obs, actions, torch.randn(30, generator=generator,
                                                          dtype=torch.float64),
                        old_log_prob, DIVERGENCES.build("w1"), radius, action_values=values,
                        generators=[generator])


def test_cem_refinement_finds_better_candidates_than_draws_alone():
    """More candidates can only raise the LP optimum g(lambda*); the CEM's candidates, aimed
    at A - lambda c, raise it strictly here, and the step still holds its radius."""
    plain = SOLVERS.build("ot_dual:draws=8").step(gaussian_problem_3d(), AGENT0)
    refined = SOLVERS.build("ot_dual:draws=8,refine=cem").step(gaussian_problem_3d(), AGENT0)
    assert refined.info["dual_value"][0] > plain.info["dual_value"][0] + 1e-6
    for result in (plain, refined):
        assert result.moved[0] and result.divergence[0] <= 0.1


def test_refine_options_are_checked():
    with pytest.raises(ValueError, match="refine must be one of"):
        SOLVERS.build("ot_dual:refine=ascent")
    with pytest.raises(ValueError, match="draws must be >= 2"):
        SOLVERS.build("ot_dual:refine=cem,draws=1")


@pytest.mark.parametrize("spec, message", [
    ("ot_dual:grid=1099511627776", r"grid must be an integer <= 65536, got 1099511627776"),
    ("ot_dual:draws=1099511627776", r"draws must be an integer <= 4096, got 1099511627776"),
    ("ot_dual:grid=99999999999999999999", r"grid must be an integer <= 65536"),
    ("ot_dual:grid_dims=4", r"grid_dims must be an integer <= 3, got 4"),
    ("ot_dual:grid=0,draws=0", r"grid=0, grid_dims=2 and draws=0 leave a continuous action no "
                               r"candidate but itself, so no step could move"),
    ("ot_dual:grid_dims=0,draws=0", r"grid=33, grid_dims=0 and draws=0 leave"),
    ("ot_dual:grid=300", r"grid \*\* grid_dims \(the grid's candidates per sample\) must be "
                         r"<= 65536, got 300 \*\* 2 = 90000"),
])
def test_candidate_set_sizes_are_bounded_when_built(spec, message):
    """Sizes that would exhaust memory mid-run are refused when the solver is built."""
    with pytest.raises(ValueError, match=message):
        SOLVERS.build(spec)
    assert SOLVERS.build("ot_dual:grid=256,draws=4096").grid == 256  # the limits themselves
