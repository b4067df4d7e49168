"""The exact discrete OT dual (Theorem 1, Corollary 1) against scipy's LP solver and hand work."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sparse
import torch
from scipy.optimize import linprog

from marl_tr.solvers import ot_dual
from marl_tr.solvers.ot_dual import DualSolution, DualSolutions, solve_dual, solve_duals


def _lp_optimum(A: np.ndarray, C: np.ndarray, w: np.ndarray, delta: float) -> float:
    """The primal LP over transport plans, solved by HiGHS: max sum P A s.t. rows of P sum to w,
    P >= 0, sum P C <= delta."""
    B, K = A.shape
    result = linprog(
        -A.ravel(), A_ub=C.ravel()[None], b_ub=[delta],
        A_eq=sparse.kron(sparse.eye(B), np.ones((1, K))), b_eq=w, bounds=(0, None),
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    assert result.status == 0, result.message
    return -result.fun


def _g(A: np.ndarray, C: np.ndarray, w: np.ndarray, delta: float, lam: float) -> float:
    """The dual function of Theorem 1 on a finite candidate set, from its formula."""
    return lam * delta + float(np.sum(w * np.max(A - lam * C, axis=1)))


def _instance(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    B = int(rng.choice([1, 2, 3, 6, 12]))
    K = int(rng.choice([1, 2, 3, 5, 9]))
    kind = int(rng.integers(4))
    own = rng.integers(K, size=B)
    if kind == 0:  # a metric cost on random 1-D candidate positions
        A = rng.normal(size=(B, K))
        x = rng.uniform(0.0, 3.0, size=K)
        C = np.abs(x[None] - x[own][:, None])
    elif kind == 1:  # integers on a grid: exact ties between candidates and between rows
        A = rng.integers(-3, 4, size=(B, K)).astype(float)
        x = np.arange(K, dtype=float)
        C = np.abs(x[None] - x[own][:, None])
    elif kind == 2:  # integer costs with repeated values (several zero-cost candidates)
        A = rng.integers(-2, 3, size=(B, K)).astype(float)
        C = rng.integers(0, 4, size=(B, K)).astype(float)
        C[np.arange(B), own] = 0.0
    else:  # a non-metric cost
        A = rng.normal(size=(B, K))
        C = rng.exponential(size=(B, K))
        C[np.arange(B), own] = 0.0
    if rng.random() < 0.6:
        w = rng.dirichlet(np.ones(B))
        if B > 2 and rng.random() < 0.3:  # a sample without mass
            w[0] = 0.0
            w /= w.sum()
    else:
        w = np.full(B, 1.0 / B)
    typical = float(np.sum(w * C.max(axis=1))) + 1e-3
    delta = typical * 10 ** rng.uniform(-2.5, 0.3)
    return A, C, w, delta


def _check_against_lp(A, C, w, delta, solution: DualSolution) -> None:
    reference = _lp_optimum(A, C, w, delta)
    plan = solution.plan
    assert solution.value == pytest.approx(reference, abs=1e-8)
    # the plan: feasible, optimal, and what the fields say
    assert plan.shape == A.shape
    assert np.all(plan >= 0)
    np.testing.assert_allclose(plan.sum(axis=1), w, rtol=0, atol=1e-12)
    assert np.sum(plan * C) <= delta + 1e-12
    assert solution.cost == pytest.approx(np.sum(plan * C), abs=1e-14)
    assert solution.objective == pytest.approx(np.sum(plan * A), abs=1e-14)
    assert solution.objective == pytest.approx(solution.value, abs=1e-10)
    assert solution.value == pytest.approx(_g(A, C, w, delta, solution.lam), abs=1e-13)
    assert solution.bound == solution.lam * delta
    assert solution.binding == (solution.lam > 0)
    if solution.binding:
        assert solution.cost == pytest.approx(delta, rel=1e-12, abs=1e-15)
    else:
        assert solution.t == 0.0
    # the plan is the (1 - t, t) mix of the two maps
    rows = np.arange(A.shape[0])
    mixed = np.zeros_like(plan)
    np.add.at(mixed, (rows, solution.closest), w * (1 - solution.t))
    np.add.at(mixed, (rows, solution.furthest), w * solution.t)
    np.testing.assert_allclose(plan, mixed, rtol=0, atol=1e-15)
    # weak duality at other lambdas, and lam* minimises g (convexity)
    for lam in [0.0, 0.5 * solution.lam, 0.9 * solution.lam, 1.1 * solution.lam + 1e-3,
                2.0 * solution.lam + 0.1, 10.0]:
        assert _g(A, C, w, delta, lam) >= reference - 1e-9
        assert _g(A, C, w, delta, lam) >= solution.value - 1e-12
    # Proposition 1: the gain over staying put is at least lam* delta
    stay = float(np.sum(w * A[rows, np.argmin(C, axis=1)]))
    assert solution.value - stay >= solution.bound - 1e-12


def test_random_instances_equal_the_primal_lp():
    rng = np.random.default_rng(20261101)
    binding = 0
    count = 160
    for _ in range(count):
        A, C, w, delta = _instance(rng)
        solution = solve_dual(A, C, delta, w)
        _check_against_lp(A, C, w, delta, solution)
        binding += solution.binding
    assert 40 <= binding <= count - 40  # both regimes were exercised


def test_three_states_fifteen_actions_equal_the_primal_lp():
    # the notes' instance shape: 3 samples on a 15-action grid, W1 ground cost |a - a'|
    rng = np.random.default_rng(3)
    grid = np.linspace(0.0, 7.0, 15)
    own = np.array([2, 7, 11])
    A = rng.normal(size=(3, 15))
    C = np.abs(grid[None] - grid[own][:, None])
    w = np.full(3, 1 / 3)
    for delta in [0.05, 0.3, 1.0, 2.5, 10.0]:
        solution = solve_dual(A, C, delta)
        _check_against_lp(A, C, w, delta, solution)
    assert solve_dual(A, C, 0.05).binding and not solve_dual(A, C, 10.0).binding


def test_one_sample_two_candidates_by_hand():
    # g(lam) = 0.5 lam + max(0, 1 - 2 lam): minimised at the kink lam* = 1/2, g = 1/4.
    # Both maps tie there: closest stays (cost 0), furthest moves (cost 2); t = 0.5 / 2.
    solution = solve_dual([[0.0, 1.0]], [[0.0, 2.0]], 0.5)
    assert solution.lam == 0.5
    assert solution.value == 0.25
    assert solution.t == 0.25
    np.testing.assert_array_equal(solution.plan, [[0.75, 0.25]])
    np.testing.assert_array_equal(solution.closest, [0])
    np.testing.assert_array_equal(solution.furthest, [1])
    assert solution.cost == 0.5 and solution.bound == 0.25 and solution.binding


def test_lambda_zero_takes_the_closest_maximiser():
    # at lam = 0 candidates 1 and 2 both maximise A; the closest costs 1 <= delta = 2, the
    # furthest costs 3 > delta (the paper's "t* = 0 when lam* = 0" would pick it)
    A, C = np.array([[0.0, 1.0, 1.0]]), np.array([[0.0, 1.0, 3.0]])
    solution = solve_dual(A, C, 2.0)
    assert solution.lam == 0.0 and not solution.binding and solution.t == 0.0
    np.testing.assert_array_equal(solution.closest, [1])
    np.testing.assert_array_equal(solution.furthest, [2])
    np.testing.assert_array_equal(solution.plan, [[0.0, 1.0, 0.0]])
    assert solution.cost == 1.0 and solution.value == 1.0
    assert C[0, solution.furthest[0]] > 2.0  # the other map would break the constraint
    assert _lp_optimum(A, C, np.ones(1), 2.0) == pytest.approx(1.0, abs=1e-12)


def test_exact_ties_across_candidates_and_rows():
    # every move gains exactly 1 per unit cost: at lam* = 1 all of row 0 ties, and row 1's
    # candidates 0 and 1 tie. Closest: stay; furthest: the cost-2 moves; t = 0.5 / 2.
    A = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, -5.0]])
    C = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 1.0]])
    solution = solve_dual(A, C, 0.5)
    assert solution.lam == 1.0 and solution.t == 0.25 and solution.value == 0.5
    np.testing.assert_array_equal(solution.closest, [0, 0])
    np.testing.assert_array_equal(solution.furthest, [2, 1])
    np.testing.assert_array_equal(solution.plan, [[0.375, 0.0, 0.125], [0.375, 0.125, 0.0]])
    _check_against_lp(A, C, np.full(2, 0.5), 0.5, solution)


def test_breakpoints_a_rounding_step_apart_are_resolved():
    # 400 rows of mass 1/400 gaining 1 + k 1e-11 per unit cost (k < 400): with delta = 99.5/400
    # rows 301..399 move, row 300 moves half-way, and lam* = 1 + 300e-11 (g's only minimiser)
    B = 400
    A = np.stack([np.zeros(B), 1.0 + 1e-11 * np.arange(B)], axis=1)
    C = np.tile([0.0, 1.0], (B, 1))
    delta = 99.5 / B
    solution = solve_dual(A, C, delta)
    assert solution.lam == pytest.approx(1.0 + 300e-11, abs=1e-15)
    assert solution.cost == pytest.approx(delta, abs=1e-15)
    assert solution.plan[300, 1] == pytest.approx(0.5 / B, abs=1e-15)
    assert solution.plan[301:, 1].sum() == pytest.approx(99 / B, abs=1e-15)
    assert solution.plan[:300, 1].sum() == 0.0
    _check_against_lp(A, C, np.full(B, 1 / B), delta, solution)


@pytest.mark.parametrize("decades", [60, 150])
def test_breakpoints_spread_over_many_binades_are_resolved(decades):
    # row b moves (gain 1) at cost c_b, c spread geometrically over 10^-d .. 10^d: a fractional
    # knapsack. With delta = 1/4 of the mean cost every row but the costliest few moves, and
    # lam* = 1 / c_m of the row m that moves part-way, far below the search's ceiling 2 / c_0
    B = 300
    c = 10.0 ** np.linspace(-decades, decades, B)
    A = np.stack([np.zeros(B), np.ones(B)], axis=1)
    C = np.stack([np.zeros(B), c], axis=1)
    w = np.full(B, 1.0 / B)
    delta = 0.25 * float(np.sum(w * c))
    spent = np.cumsum(w * c)  # the cheapest moves first
    m = int(np.searchsorted(spent, delta))  # the row that moves part-way
    solution = solve_dual(A, C, delta, w)
    assert solution.iterations < ot_dual.MAX_ITERATIONS
    assert solution.lam == pytest.approx(1.0 / c[m], rel=1e-12)
    assert solution.cost == pytest.approx(delta, rel=1e-12)
    part = (delta - (spent[m - 1] if m else 0.0)) / (w[m] * c[m])
    assert solution.value == pytest.approx((m + part) / B, rel=1e-12)
    assert solution.objective == pytest.approx(solution.value, rel=1e-12)
    assert np.all(solution.plan[:m, 1] == w[:m]) and np.all(solution.plan[m + 1:, 1] == 0.0)


def test_constant_values_do_not_move():
    rng = np.random.default_rng(7)
    B, K = 10, 6
    C = rng.exponential(size=(B, K)) + 0.1
    own = rng.integers(K, size=B)
    C[np.arange(B), own] = 0.0
    solution = solve_dual(np.full((B, K), 3.7), C, 0.5)
    assert solution.lam == 0.0 and not solution.binding and solution.cost == 0.0
    assert solution.value == pytest.approx(3.7, abs=1e-15)
    np.testing.assert_array_equal(solution.closest, own)
    identity = np.zeros((B, K))
    identity[np.arange(B), own] = 1.0 / B
    np.testing.assert_array_equal(solution.plan, identity)


def test_massless_samples_get_empty_rows_and_default_weights_are_uniform():
    rng = np.random.default_rng(11)
    A, C = rng.normal(size=(5, 4)), rng.exponential(size=(5, 4))
    C[:, 0] = 0.0
    w = np.array([0.0, 0.25, 0.25, 0.0, 0.5])
    solution = solve_dual(A, C, 0.2, w)
    np.testing.assert_array_equal(solution.plan[[0, 3]], 0.0)
    _check_against_lp(A, C, w, 0.2, solution)
    uniform = solve_dual(A, C, 0.2)
    explicit = solve_dual(A, C, 0.2, np.full(5, 0.2))
    assert uniform.lam == explicit.lam and uniform.value == explicit.value
    np.testing.assert_array_equal(uniform.plan, explicit.plan)


def _random_replicas(seed: int, R: int, B: int, K: int):
    """``R`` random problems ``A, C [R, B, K]`` (a zero-cost first candidate) and weights."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(R, B, K))
    C = rng.exponential(size=(R, B, K))
    C[..., 0] = 0.0
    return rng, A, C, rng.dirichlet(np.ones(B), size=R)


def _assert_replica_equals_its_solve(together: DualSolutions, r: int,
                                     alone: DualSolution) -> None:
    """Replica ``r`` of a batched solve is the separate solve, bit for bit."""
    for field in ("lam", "value", "objective", "cost", "bound", "t", "binding", "iterations"):
        assert getattr(together, field)[r] == getattr(alone, field), (r, field)
    for field in ("plan", "closest", "furthest"):
        np.testing.assert_array_equal(getattr(together, field)[r], getattr(alone, field))


def test_replicas_equal_separate_solves_exactly():
    _, A, C, w = _random_replicas(5, R=3, B=12, K=7)
    delta = np.array([0.02, 50.0, 0.4])  # binding, slack, binding
    together = solve_duals(A, C, delta, w)
    assert isinstance(together, DualSolutions) and len(together) == 3
    np.testing.assert_array_equal(together.binding, [True, False, True])
    assert together.plan.shape == A.shape and together.closest.shape == A.shape[:2]
    for r in range(3):
        _assert_replica_equals_its_solve(together, r, solve_dual(A[r], C[r], delta[r], w[r]))
    scalar = solve_duals(A, C, 0.4, w)  # one scalar radius for every replica
    np.testing.assert_array_equal(scalar.plan[2], together.plan[2])


def test_replicas_that_finish_at_different_iterations_equal_separate_solves():
    """Twelve replicas, slack and binding, finishing after different numbers of iterations
    (the search goes on with the unfinished ones alone once half have finished), some with
    massless samples: each replica's answer is its separate solve's, bit for bit."""
    R = 12
    rng, A, C, w = _random_replicas(11, R=R, B=20, K=9)
    w[3, :5] = 0.0
    w[3] /= w[3].sum()
    delta = np.geomspace(1e-4, 5.0, R)[rng.permutation(R)]
    together = solve_duals(A, C, delta, w)
    binding = together.binding
    assert (~binding).sum() >= 2 and binding.sum() >= 8
    assert len(set(together.iterations[binding])) >= 3  # they finish at different iterations
    for r in range(R):
        alone = solve_dual(A[r], C[r], delta[r], w[r])
        _assert_replica_equals_its_solve(together, r, alone)
        _check_against_lp(A[r], C[r], w[r], delta[r], alone)


def test_torch_inputs_give_the_numpy_answer():
    rng = np.random.default_rng(9)
    B, K = 8, 6
    A = rng.normal(size=(B, K))
    C = np.abs(np.linspace(0, 3, K)[None] - rng.uniform(0, 3, size=(B, 1)))
    C[np.arange(B), np.argmin(C, axis=1)] = 0.0
    w = rng.dirichlet(np.ones(B))
    reference = solve_dual(A, C, 0.3, w)
    assert reference.binding
    single = solve_dual(torch.tensor(A, dtype=torch.float32, requires_grad=True),
                        torch.tensor(C, dtype=torch.float32),
                        torch.tensor(0.3), torch.tensor(w, dtype=torch.float32))
    assert single.lam == pytest.approx(reference.lam, abs=1e-6)
    assert single.value == pytest.approx(reference.value, abs=1e-6)
    assert single.t == pytest.approx(reference.t, abs=1e-6)
    np.testing.assert_allclose(single.plan, reference.plan, rtol=0, atol=1e-6)
    assert isinstance(single.plan, np.ndarray) and single.plan.dtype == np.float64
    double = solve_dual(torch.tensor(A), torch.tensor(C), 0.3, torch.tensor(w))
    assert double.lam == reference.lam and double.value == reference.value
    np.testing.assert_array_equal(double.plan, reference.plan)


# -- bad input: refused before any work, with the argument named ---------------------------
_A = [[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]]
_C = [[0.0, 1.0, 2.0], [1.0, 0.0, 3.0]]


def _case(**changes):
    arguments = {"values": _A, "costs": _C, "delta": 0.5, "weights": None}
    arguments.update(changes)
    return arguments


BAD = [
    (_case(delta=0.0), r"delta must be > 0 \(finite\), got 0\.0"),
    (_case(delta=-1), r"delta must be > 0 \(finite\), got -1\.0"),
    (_case(delta=float("nan")), r"delta must be > 0 \(finite\), got nan"),
    (_case(delta=float("inf")), r"delta must be > 0 \(finite\), got inf"),
    (_case(delta="0.5"), r"delta must hold real numbers, got an array of dtype <U3"),
    (_case(delta=[0.5]), r"delta must be a scalar, got shape \(1,\)"),
    (_case(costs=[[0.0, -0.5, 2.0], [1.0, 0.0, 3.0]]),
     r"costs must be finite and >= 0, got -0\.5 at index \(0, 1\)"),
    (_case(costs=[[0.0, 1.0, 2.0], [1.0, 0.0, np.inf]]),
     r"costs must be finite and >= 0, got inf at index \(1, 2\)"),
    (_case(costs=[[0.0, np.nan, 2.0], [1.0, 0.0, 3.0]]),
     r"costs must be finite and >= 0, got nan at index \(0, 1\)"),
    (_case(values=[[0.0, 1.0, 2.0], [1.0, 0.0, np.nan]]),
     r"values must be finite, got nan at index \(1, 2\)"),
    (_case(values=[[0.0, -np.inf, 2.0], [1.0, 0.0, 1.0]]),
     r"values must be finite, got -inf at index \(0, 1\)"),
    (_case(values=[[True, False, True], [False, True, False]]),
     r"values must hold real numbers, got an array of dtype bool$"),
    (_case(values=np.ones((40, 30), dtype=bool)),  # one line, without the array's repr
     r"^values must hold real numbers, got an array of dtype bool$"),
    (_case(values=[[0.0] * 20001, [0.0]]),
     r"^values must be a rectangular array of real numbers, got a ragged nested sequence$"),
    (_case(weights=[0.5, np.nan]), r"weights must be finite and >= 0, got nan at index \(1,\)"),
    (_case(weights=[1.5, -0.5]), r"weights must be finite and >= 0, got -0\.5 at index \(1,\)"),
    (_case(weights=[0.5, 0.4]), r"weights must sum to 1 \(within 1e-09\), got sum 0\.9"),
    (_case(weights=np.array([0.5, 0.4], dtype=np.float32)),  # tolerance: B float32 epsilons
     r"weights must sum to 1 \(within 2\.38419e-07\), got sum 0\.9000000\d*"),
    (_case(weights=[0.5, 0.5, 0.0]), r"weights must have shape \(2,\) .*, got \(3,\)"),
    (_case(costs=[[0.0, 1.0, 2.0], [1.0, 0.5, 3.0]]),
     r"costs must have a zero-cost candidate \(the sample's own action\) in every row, "
     r"got smallest cost 0\.5 in row \(1,\)"),
    (_case(costs=[[0.0, 1.0], [0.0, 3.0]]),
     r"costs must have the shape of values \(2, 3\), got \(2, 2\)"),
    (_case(values=[0.0, 1.0, 2.0], costs=[0.0, 1.0, 2.0]),
     r"values must be a 2-D array \[B, K\], got shape \(3,\)"),
    (_case(values=[_A], costs=[_C]), r"values must be a 2-D array \[B, K\], got shape \(1, 2, 3\)"),
    (_case(values=np.zeros((0, 3)), costs=np.zeros((0, 3))),
     r"values must be non-empty \[B, K\] .*, got shape \(0, 3\)"),
    (_case(values=np.zeros((2, 0)), costs=np.zeros((2, 0))),
     r"values must be non-empty \[B, K\] .*, got shape \(2, 0\)"),
    (_case(values=[[0.0, 1.0], [2.0]]), r"values must be a rectangular array"),
    (_case(values=np.full((2, 3), 1j)),
     r"^values must hold real numbers, got an array of dtype complex128$"),
    (_case(values=torch.zeros(2, 3, dtype=torch.complex64)),
     r"values must hold real numbers, got a tensor of dtype torch\.complex64"),
    # lambda* is bounded by span / smallest positive cost: out of float64's range, refused
    (_case(values=[[0.0, 1e160]], costs=[[0.0, 1e-150]], delta=5e-151),
     r"values and costs are too far apart in scale for float64: values span 1e\+160 while "
     r"the smallest positive cost is 1e-150 .*rescale values or costs"),
    (_case(values=[[0.0, 1.0]], costs=[[0.0, 1e-309]], delta=5e-310),
     r"values span 1\.0 while the smallest positive cost is 1e-309"),
    (_case(values=[[-1.7e308, 1.7e308]], costs=[[0.0, 1.0]]), r"values span inf while"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_is_refused_before_any_work(monkeypatch, arguments, message):
    def no_work(*args, **kwargs):  # pragma: no cover - reached only if validation let it by
        raise AssertionError("the solver started on bad input")

    monkeypatch.setattr(ot_dual, "_solve", no_work)
    with pytest.raises(ValueError, match=message):
        solve_dual(**arguments)


_RA = np.stack([np.array(_A)] * 3)
_RC = np.stack([np.array(_C)] * 3)

BAD_BATCHED = [
    ({"values": _A, "costs": _C, "delta": 0.5},
     r"values must be a 3-D array \[R, B, K\], got shape \(2, 3\)"),
    ({"values": _RA, "costs": _RC, "delta": [0.5, 0.5]},
     r"delta must be a scalar or shape \(3,\), got shape \(2,\)"),
    ({"values": _RA, "costs": _RC, "delta": [0.5, -0.5, 0.5]},
     r"delta must be > 0 \(finite\), got -0\.5 at index \(1,\)"),
    ({"values": _RA, "costs": _RC, "delta": 0.5, "weights": [0.5, 0.5]},
     r"weights must have shape \(3, 2\) .*, got \(2,\)"),
    ({"values": _RA, "costs": _RC, "delta": 0.5, "weights": [[0.5, 0.5], [0.5, 0.6], [1, 0]]},
     r"weights must sum to 1 \(within 1e-09\), got sum 1\.1 \(replica 1\)"),
    ({"values": _RA, "costs": _RC, "delta": 0.5, "tie_rtol": -1.0},
     r"tie_rtol must be in \(0\.0, 0\.001\], got -1\.0"),
    ({"values": _RA, "costs": _RC, "delta": 0.5, "tie_rtol": 0.0},
     r"tie_rtol must be in \(0\.0, 0\.001\], got 0\.0"),
    ({"values": np.zeros((0, 2, 3)), "costs": np.zeros((0, 2, 3)), "delta": 0.5},
     r"values must be non-empty \[R, B, K\] .*, got shape \(0, 2, 3\)"),
    ({"values": [[[0.0, 1.0]], [[0.0, 1.0]]], "costs": [[[0.0, 1.0]], [[0.0, 1e-320]]],
      "delta": 1e-321}, r"values span 1\.0 while the smallest positive cost is 1e-320 "
     r"\(replica 1\)"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_BATCHED,
                         ids=[m[:40] for _, m in BAD_BATCHED])
def test_bad_batched_input_is_refused_before_any_work(monkeypatch, arguments, message):
    def no_work(*args, **kwargs):  # pragma: no cover - reached only if validation let it by
        raise AssertionError("the solver started on bad input")

    monkeypatch.setattr(ot_dual, "_solve", no_work)
    with pytest.raises(ValueError, match=message):
        solve_duals(**arguments)


def test_trusted_entry_equals_the_checked_one_and_defers_bad_costs_to_it():
    """``solve_duals_trusted`` (the solver's entry: arrays it built itself) gives the checked
    solver's answer field for field, slack and binding replicas alike; costs a plug-in metric
    got wrong still get the checked solver's one-line refusal."""
    rng = np.random.default_rng(11)
    for _ in range(30):
        R, B, K = int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 8))
        A = rng.normal(size=(R, B, K))
        C = rng.exponential(size=(R, B, K))
        C[..., 0] = 0.0
        w = rng.dirichlet(np.ones(B), size=R)
        delta = 10 ** rng.uniform(-2, 0.5, size=R)
        checked = solve_duals(A, C, delta, w)
        trusted = ot_dual.solve_duals_trusted(A, C, delta, w)
        for field in ("lam", "value", "objective", "cost", "bound", "t", "binding",
                      "iterations", "plan", "closest", "furthest"):
            np.testing.assert_array_equal(getattr(trusted, field), getattr(checked, field),
                                          err_msg=field)
    A = np.zeros((1, 2, 3))
    for bad, message in [(np.ones((1, 2, 3)), "zero-cost candidate"),
                         (np.array([[[0.0, -1.0, 2.0], [0.0, 1.0, 1.0]]]), "finite and >= 0"),
                         (np.array([[[0.0, np.nan, 2.0], [0.0, 1.0, 1.0]]]), "finite and >= 0")]:
        with pytest.raises(ValueError, match=message):
            ot_dual.solve_duals_trusted(A, bad, np.array([0.1]), np.full((1, 2), 0.5))
