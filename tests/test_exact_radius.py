"""The exact-radius solver and its measured radius search, against closed forms, bisection
and whole training runs (every step's measured divergence within its radius)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from test_solvers import AGENT0, MIN_STD, assert_same_step, gaussian_problem, replica_problems

import marl_tr
from marl_tr.divergences import DIVERGENCES
from marl_tr.solvers import SOLVERS, ExactRadius
from marl_tr.solvers.line_search import radius_step

GAUSSIAN_DIVERGENCES = [n for n in DIVERGENCES.names() if DIVERGENCES.get(n).supports_continuous]
DISCRETE_DIVERGENCES = [n for n in DIVERGENCES.names() if DIVERGENCES.get(n).supports_discrete]


def mean_only(direction: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """The direction with its std (rho) part zeroed: a ray along which the policy's map
    ``theta -> (mean, std)`` is linear."""
    out = direction.clone()
    out[:, dim:] = 0.0
    return out


def measured(problem, direction, t: float) -> float:
    """``E_s D(old, theta_old + t d)``, one replica, measured by the problem."""
    candidate = problem.old_params + t * direction
    _, divergences, _ = problem.evaluate_candidates(candidate.unsqueeze(1))
    return float(divergences[0, 0])


def bisect_root(problem, direction, radius: float, iterations: int = 200) -> float:
    """The ``t`` with ``D(t) = radius`` by plain bisection on the measured value (an
    independent reference for the secant search)."""
    low, high = 0.0, 1.0
    while measured(problem, direction, high) <= radius:
        high *= 2.0
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if measured(problem, direction, mid) <= radius:
            low = mid
        else:
            high = mid
    return low


# ---------------------------------------------------------------------------------------
# closed forms of the step length
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["w1", "w1_bound", "w2"])
def test_homogeneous_closed_form_is_the_length_at_the_radius_on_a_linear_ray(name):
    """Mean-only steps of a Gaussian: W1 = eq. 31 = ||t d||_1 and W2 = ||t d||_2, so the
    closed form delta / D'(0) is the exact length; it agrees with bisection on the measured
    value, and the search accepts it in one round."""
    problem = gaussian_problem(0.05, divergence=name)
    assert problem.divergence.homogeneous(problem.old_dist)
    direction = mean_only(problem.surrogate_gradient())
    initial, order = ExactRadius.initial_length(problem, direction)
    norm = (direction[0, :2].abs().sum() if name != "w2" else direction[0, :2].norm()).item()
    assert order == 1.0
    np.testing.assert_allclose(initial[0], 0.05 / norm, rtol=1e-12)
    np.testing.assert_allclose(initial[0], bisect_root(problem, direction, 0.05), rtol=1e-10)
    point = radius_step(problem, direction, initial)
    assert point.rounds[0] == 1 and point.hit[0]
    assert 0.05 * (1 - 1e-3) <= point.divergence[0] <= 0.05


def test_mean_only_kl_step_is_the_quadratic_closed_form():
    """KL between Gaussians of equal std is exactly sum d_k^2 t^2 / (2 s_k^2): the quadratic
    model's length sqrt(2 delta / sum d_k^2 / s_k^2) is exact."""
    problem = gaussian_problem(0.02, divergence="kl", std=0.4)
    direction = mean_only(problem.surrogate_gradient())
    std = problem.policy.std().detach()[0]
    want = math.sqrt(2 * 0.02 / float((direction[0, :2] ** 2 / std**2).sum()))
    initial, order = ExactRadius.initial_length(problem, direction)
    assert order == 2.0
    np.testing.assert_allclose(initial[0], want, rtol=1e-12)
    np.testing.assert_allclose(initial[0], bisect_root(problem, direction, 0.02), rtol=1e-10)


@pytest.mark.parametrize("name", GAUSSIAN_DIVERGENCES)
@pytest.mark.parametrize("radius", [1e-3, 0.05, 0.3])
def test_search_agrees_with_bisection_along_a_curved_ray(name, radius):
    """With the std moving (std = min_std + exp(rho): the ray is curved in (mean, std)) the
    closed forms are only a first guess; the search lands in the band and its length agrees
    with bisection on the measured divergence to the band's precision."""
    if name in ("js", "tv") and radius == 0.3:
        radius = 0.2  # below their bound along this ray
    problem = gaussian_problem(radius, divergence=name, std=0.6)
    direction = problem.surrogate_gradient()
    initial, order = ExactRadius.initial_length(problem, direction)
    point = radius_step(problem, direction, initial, order=order, rtol=1e-6, max_rounds=60)
    assert point.hit[0]
    assert radius * (1 - 1e-6) <= point.divergence[0] <= radius
    reference = bisect_root(problem, direction, radius)
    np.testing.assert_allclose(point.t[0], reference, rtol=1e-5)
    assert measured(problem, direction, point.t[0]) == point.divergence[0]


def test_max_t_keeps_a_step_that_is_inside_and_shrinks_one_that_is_not():
    problem = gaussian_problem(0.05, divergence="w1")
    direction = problem.surrogate_gradient()
    inside = direction * (0.01 / measured(problem, direction, 1.0))  # D(1) ~ 0.01
    kept = radius_step(problem, inside, np.ones(1), max_t=1.0)
    assert kept.t[0] == 1.0 and kept.hit[0] and kept.rounds[0] == 1
    outside = direction * (1.0 / measured(problem, direction, 1.0))  # D(1) ~ 1
    shrunk = radius_step(problem, outside, np.ones(1), max_t=1.0)
    assert shrunk.hit[0] and shrunk.t[0] < 1.0
    assert 0.05 * (1 - 1e-3) <= shrunk.divergence[0] <= 0.05


@pytest.mark.parametrize("over", [1e-5, 3e-4])
def test_a_step_a_hair_above_the_radius_is_shrunk_by_one_secant(over):
    """A projected step a rounding error above the radius (the exact dual's usual case) is
    brought into the band by one secant step: the proposal just inside the bracket's end is
    kept, not traded for a bisection from far below (which took up to 7 rounds)."""
    radius = 0.05
    problem = gaussian_problem(radius, divergence="w1")
    ray = mean_only(problem.surrogate_gradient())  # W1 is linear in t along it
    direction = ray * (radius * (1 + over) / measured(problem, ray, 1.0))
    point = radius_step(problem, direction, np.ones(1), max_t=1.0)
    assert point.first_divergence[0] > radius
    assert point.hit[0] and point.rounds[0] == 2
    assert radius * (1 - 1e-3) <= point.divergence[0] <= radius


# ---------------------------------------------------------------------------------------
# the solver's step
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["gradient", "natural"])
@pytest.mark.parametrize("name", ["w1", "w1_bound", "kl", "tv"])
def test_exact_radius_step_reaches_the_radius_and_reports_it(name, direction):
    problem = gaussian_problem(0.01, divergence=name)
    solver = SOLVERS.build(f"exact_radius:direction={direction}")
    result = solver.step(problem, AGENT0)
    assert result.moved[0]
    after = problem.evaluate()
    assert after.divergence[0] == result.divergence[0] <= 0.01
    np.testing.assert_allclose(after.improvement[0], result.improvement[0], rtol=1e-12)
    assert result.improvement[0] > 0
    if result.info["backtracks"][0] == 0:
        assert result.divergence[0] >= 0.01 * (1 - 1e-3)
        np.testing.assert_allclose(result.info["step_length"][0] ** 1,
                                   result.expected_improvement[0]
                                   / float((problem.surrogate_gradient()
                                            * solver.search_direction(
                                                problem, problem.surrogate_gradient())[0]).sum()),
                                   rtol=1e-9)


def test_natural_direction_under_kl_is_hatrpos_direction_at_the_exact_radius():
    """exact_radius:direction=natural with KL takes the natural-gradient solver's direction;
    without line search both land on the KL radius, exact_radius within its band."""
    problem = gaussian_problem(0.01, divergence="kl")
    ng = SOLVERS.build("natural_gradient")
    want, _, _ = ng.natural_direction(problem, problem.surrogate_gradient())
    got, _ = SOLVERS.build("exact_radius:direction=natural").search_direction(
        problem, problem.surrogate_gradient())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize(("radius", "seed", "ratio", "backtracks"),
                         [(0.5, 0, 0.5, 0), (0.5, 2, 0.9, 5), (3.0, 1, 0.5, 9),
                          (0.5, 1, 0.9, None), (5.0, 0, 0.5, None)])
def test_the_step_is_the_first_acceptable_fraction_of_the_radius_length(radius, seed, ratio,
                                                                        backtracks):
    """HARL's rule checked by hand at t*, 0.8 t*, 0.64 t*, ...: the solver takes the first
    fraction that passes (or no step, 'line search failed', when none does). The cases
    cover acceptance at the radius, after backtracking, and no acceptable fraction."""
    problem = gaussian_problem(radius, divergence="w1", seed=seed)
    solver = SOLVERS.build(f"exact_radius:accept_ratio={ratio}")
    gradient = problem.surrogate_gradient()
    # the solver's first trial: aimed at the band's middle
    initial, order = ExactRadius.initial_length(problem, gradient, problem.radius * (1 - 0.5e-3))
    t_star = radius_step(problem, gradient, initial, order=order,
                         fractions=0.8 ** np.arange(10)).t[0]
    slope = float((gradient * gradient).sum())
    passes = []
    for j in range(10):
        t = t_star * 0.8**j
        candidate = problem.old_params + t * gradient
        gains, divergences, _ = problem.evaluate_candidates(candidate.unsqueeze(1))
        gain, divergence = gains[0, 0], divergences[0, 0]
        passes.append(divergence <= radius and gain > 0 and gain / (t * slope) > ratio)
    result = solver.step(problem, AGENT0)
    assert any(passes) == (backtracks is not None)
    if any(passes):
        first = passes.index(True)
        assert first == backtracks
        assert result.moved[0] and result.info["backtracks"][0] == first
        np.testing.assert_allclose(result.info["step_length"][0], t_star * 0.8**first,
                                   rtol=1e-12)
    else:
        assert not result.moved[0] and result.reasons[0] == "line search failed"
        assert result.info["backtracks"][0] == 10


@pytest.mark.parametrize("hidden", [(), (5,)])
def test_exact_radius_on_two_replicas_equals_two_single_steps(hidden):
    singles, stacked = replica_problems(hidden)
    results = [SOLVERS.build("exact_radius").step(q, AGENT0) for q in singles]
    result = SOLVERS.build("exact_radius").step(stacked, np.zeros(2, dtype=int))
    assert_same_step(SOLVERS.build("exact_radius"), stacked, result, singles, results)


def test_bad_options_are_refused():
    for spec, pattern in [("exact_radius:direction=fisher", "direction must be one of"),
                          ("exact_radius:rtol=0", "rtol"), ("exact_radius:max_rounds=0",
                                                            "max_rounds")]:
        with pytest.raises(ValueError, match=pattern):
            SOLVERS.build(spec)


# ---------------------------------------------------------------------------------------
# whole runs: the radius holds for every divergence and policy kind
# ---------------------------------------------------------------------------------------
POLICY_CASES = {
    "gaussian": dict(env_kwargs={"n": 2}),
    "gaussian-mlp": dict(env_kwargs={"n": 2}, policy_hidden=(6,)),
    "categorical": dict(env="ClimbingGame-v0"),
    "categorical-mlp": dict(env="PenaltyGame-v0", policy_hidden=(6,)),
}
RUN_CASES = [(name, kind) for kind in POLICY_CASES for name in DIVERGENCES.names()
             if (DIVERGENCES.get(name).supports_discrete if "categorical" in kind
                 else DIVERGENCES.get(name).supports_continuous)]


@pytest.mark.parametrize(("name", "kind"), RUN_CASES)
def test_every_step_of_a_run_stays_within_its_radius(name, kind):
    settings = POLICY_CASES[kind]
    delta = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        # signal_level=None: every agent steps (at batch 30 the matrix games' first
        # gradients rarely pass the default signal test)
        result = marl_tr.train(divergence=name, solver="exact_radius",
                               radius=f"fixed:delta={delta}", iterations=12, seed=1,
                               min_std=MIN_STD, signal_level=None, **settings)
    n = len(result.policies)
    ratio = np.array([[row[f"constraint_ratio_{i}"] for i in range(n)] for row in result.metrics])
    moved = np.array([[row[f"moved_{i}"] for i in range(n)] for row in result.metrics])
    assert (ratio <= 1 + 1e-9).all(), ratio.max()
    assert moved.sum() >= n  # the run moves
    # where the search's first length was accepted the step reached the band below delta
    backtracks = np.array([[row[f"backtracks_{i}"] for i in range(n)] for row in result.metrics])
    at_radius = (moved == 1) & (backtracks == 0)
    assert at_radius.any()
    assert (ratio[at_radius] >= 1 - 1e-3).all()


def test_the_first_trial_aims_inside_the_band_and_lands_there_in_one_round():
    """On a mean-only ray W1's closed form is exact: aimed at the band's middle
    (1 - rtol / 2) delta, as the solver aims it, the first trial is inside the band (never a
    rounding error above the radius, which would cost a second round) and the search stops
    after one round."""
    problem = gaussian_problem(0.05, divergence="w1")
    direction = mean_only(problem.surrogate_gradient())
    at_radius, _ = ExactRadius.initial_length(problem, direction)
    aimed, _ = ExactRadius.initial_length(problem, direction, problem.radius * (1 - 0.5e-3))
    np.testing.assert_allclose(aimed, at_radius * (1 - 0.5e-3), rtol=1e-12)
    point = radius_step(problem, direction, aimed, rtol=1e-3)
    assert point.rounds[0] == 1 and point.hit[0] and point.t[0] == aimed[0]
    np.testing.assert_allclose(point.divergence[0], 0.05 * (1 - 0.5e-3), rtol=1e-6)
    assert 0.05 * (1 - 1e-3) <= point.divergence[0] <= 0.05
