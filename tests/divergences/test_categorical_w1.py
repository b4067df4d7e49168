"""W1 between categoricals under a ground metric: cost matrices, embeddings, the env's geometry.

References: POT's network simplex (``ot.emd2``), scipy's LP solver on the transport problem,
the ordinal CDF formula, hand-worked MPE moves and central finite differences.
"""

from __future__ import annotations

import math
import re

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linprog

from marl_tr.distributions import Categorical, DiagGaussian
from marl_tr.divergences import (
    DIVERGENCES,
    KL,
    Divergence,
    Wasserstein1,
    Wasserstein1Bound,
    divergences_supporting,
)
from marl_tr.divergences.transport import (
    MAX_VERTEX_ACTIONS,
    kantorovich_vertices,
    triangle_inequality_holds,
)
from marl_tr_envs import MPE_MOVES

MPE = tuple(map(tuple, MPE_MOVES.tolist()))
LEFT, RIGHT, DOWN, UP, NOOP = 1, 2, 3, 4, 0


def _transport_lp(p: np.ndarray, q: np.ndarray, cost: np.ndarray) -> float:
    """``min sum_ij cost_ij x_ij`` over couplings ``x >= 0`` of ``p`` (rows) and ``q``
    (columns), by scipy's HiGHS."""
    k = len(p)
    rows = np.kron(np.eye(k), np.ones((1, k)))  # sum_j x_ij = p_i
    columns = np.kron(np.ones((1, k)), np.eye(k))  # sum_i x_ij = q_j
    result = linprog(
        cost.reshape(-1), A_eq=np.vstack([rows, columns]), b_eq=np.concatenate([p, q]),
        bounds=(0, None), method="highs",
    )
    assert result.status == 0
    return float(result.fun)


def _random_metric(k: int, rng: np.random.Generator, symmetric: bool = True) -> np.ndarray:
    """Shortest-path closure of random positive weights: a metric (quasi-metric if not
    symmetric)."""
    weights = rng.uniform(0.2, 3.0, size=(k, k))
    if symmetric:
        weights = (weights + weights.T) / 2
    np.fill_diagonal(weights, 0.0)
    for via in range(k):  # Floyd-Warshall
        weights = np.minimum(weights, weights[:, via : via + 1] + weights[via : via + 1, :])
    return weights


def _random_non_metric(k: int, rng: np.random.Generator) -> np.ndarray:
    """Positive costs with one entry far above a two-step path: no triangle inequality."""
    cost = rng.uniform(0.5, 1.5, size=(k, k))
    cost[0, 1] = 10.0
    np.fill_diagonal(cost, 0.0)
    assert not triangle_inequality_holds(cost)
    return cost


def _pair(batch: int, k: int, seed: int) -> tuple[Categorical, Categorical]:
    generator = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(2, batch, k, generator=generator, dtype=torch.float64)
    return Categorical(logits[0]), Categorical(logits[1])


def _point_mass(action: int, k: int = 5) -> Categorical:
    return Categorical.from_probs(torch.nn.functional.one_hot(torch.tensor([action]), k).double())


def _mix(weights: dict[int, float], k: int = 5) -> Categorical:
    probs = torch.zeros(1, k, dtype=torch.float64)
    for action, weight in weights.items():
        probs[0, action] = weight
    return Categorical.from_probs(probs)


def _table(cost: np.ndarray) -> tuple:
    return tuple(map(tuple, cost.tolist()))


# -- values against POT and scipy's LP ---------------------------------------------------------
@pytest.mark.parametrize(
    ("k", "kind"),
    [(k, kind) for k in (2, 3, 4, 5, 6) for kind in ("metric", "quasi_metric", "non_metric")
     if (k, kind) != (2, "non_metric")],  # two actions always satisfy the triangle inequality
)
def test_cost_matrix_value_matches_pot_and_the_transport_lp(k, kind):
    rng = np.random.default_rng(100 * k + len(kind))
    if kind == "non_metric":
        cost = _random_non_metric(k, rng)
    else:
        cost = _random_metric(k, rng, symmetric=kind == "metric")
    divergence = Wasserstein1(cost=_table(cost))
    metric = divergence.categorical_metric()
    assert metric.uses_vertices == (kind != "non_metric")
    assert divergence.symmetric == (kind == "metric") == divergence.is_metric
    old, new = _pair(6, k, seed=k)
    value = divergence(old, new)
    for i in range(6):
        p, q = old.probs[i].numpy(), new.probs[i].numpy()
        assert value[i].item() == pytest.approx(ot.emd2(p, q, cost), abs=1e-10)
        assert value[i].item() == pytest.approx(_transport_lp(p, q, cost), abs=1e-10)


def test_more_actions_than_the_vertex_formula_takes_use_the_network_simplex():
    k = MAX_VERTEX_ACTIONS + 1
    cost = _random_metric(k, np.random.default_rng(8))
    divergence = Wasserstein1(cost=_table(cost))
    assert not divergence.categorical_metric().uses_vertices
    old, new = _pair(3, k, seed=9)
    value = divergence(old, new)
    for i in range(3):
        reference = _transport_lp(old.probs[i].numpy(), new.probs[i].numpy(), cost)
        assert value[i].item() == pytest.approx(reference, abs=1e-10)


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_dual_vertices_are_feasible_at_most_binomial_many_and_reach_the_lp_maximum(k):
    cost = _random_metric(k, np.random.default_rng(k), symmetric=False)
    vertices = kantorovich_vertices(cost)
    assert vertices.shape[1] == k and (vertices[:, 0] == 0).all()
    assert len(vertices) <= math.comb(2 * k - 2, k - 1)
    gaps = vertices[:, :, None] - vertices[:, None, :] - cost
    assert gaps.max() <= 1e-12
    direction = np.random.default_rng(k).normal(size=k)
    direction -= direction.mean()
    constraints = [np.eye(k)[i] - np.eye(k)[j] for i in range(k) for j in range(k) if i != j]
    bounds = [(0, 0)] + [(None, None)] * (k - 1)
    result = linprog(-direction, A_ub=np.array(constraints),
                     b_ub=[cost[i, j] for i in range(k) for j in range(k) if i != j],
                     bounds=bounds, method="highs")
    assert (vertices @ direction).max() == pytest.approx(-result.fun, abs=1e-10)


def test_degenerate_integer_costs_still_match_the_lp():
    cost = np.array([[0, 1, 1, 2], [1, 0, 2, 1], [1, 2, 0, 1], [2, 1, 1, 0]], dtype=float)
    old, new = _pair(8, 4, seed=3)
    value = Wasserstein1(cost=_table(cost))(old, new)
    reference = [_transport_lp(p.numpy(), q.numpy(), cost) for p, q in zip(old.probs, new.probs)]
    np.testing.assert_allclose(value.numpy(), reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("spacing", [1.0, 0.5, 2.0])
def test_ordinal_cdf_formula_equals_the_explicit_distance_matrix(spacing):
    k = 5
    support = spacing * np.arange(k)
    explicit = Wasserstein1(cost=_table(np.abs(support[:, None] - support[None, :])))
    line = Wasserstein1(embedding=tuple(support))  # the same points as a 1-D embedding
    ordinal = Wasserstein1(spacing=spacing)
    old, new = _pair(10, k, seed=11)
    reference = ordinal(old, new)
    torch.testing.assert_close(explicit(old, new), reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(line(old, new), reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(explicit.grad_new(old, new)[0], ordinal.grad_new(old, new)[0],
                               rtol=0, atol=1e-12)


def test_pot_method_agrees_with_the_vertex_formula():
    cost = _random_metric(5, np.random.default_rng(5))
    old, new = _pair(12, 5, seed=12)
    exact = Wasserstein1(cost=_table(cost))(old, new)
    through_pot = Wasserstein1(method="pot", cost=_table(cost))(old, new)
    torch.testing.assert_close(through_pot, exact, rtol=0, atol=1e-12)


def test_float32_values_follow_float64():
    divergence = Wasserstein1(embedding=MPE, ground="l2")
    old, new = _pair(16, 5, seed=13)
    old32, new32 = Categorical(old.logits.float()), Categorical(new.logits.float())
    value = divergence(old32, new32)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), divergence(old, new), rtol=1e-5, atol=1e-6)


# -- embeddings: hand-worked MPE moves ------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "target", "l1", "l2"),
    [
        (_point_mass(LEFT), _point_mass(RIGHT), 2.0, 2.0),
        (_point_mass(LEFT), _point_mass(UP), 2.0, math.sqrt(2.0)),
        (_point_mass(NOOP), _point_mass(DOWN), 1.0, 1.0),
        (_mix({LEFT: 0.5, RIGHT: 0.5}), _point_mass(NOOP), 1.0, 1.0),
        (_point_mass(LEFT), _mix({UP: 0.5, DOWN: 0.5}), 2.0, math.sqrt(2.0)),
        # half the mass at left moves right (2), the rest stays
        (_mix({LEFT: 0.5, UP: 0.5}), _mix({RIGHT: 0.5, UP: 0.5}), 1.0, 1.0),
    ],
)
def test_mpe_moves_cost_what_their_displacements_say(source, target, l1, l2):
    manhattan = DIVERGENCES.build("w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1))")
    euclidean = DIVERGENCES.build("w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1)),ground=l2")
    assert manhattan(source, target).item() == pytest.approx(l1, abs=1e-12)
    assert euclidean(source, target).item() == pytest.approx(l2, abs=1e-12)


# -- gradients ----------------------------------------------------------------------------------
def _finite_differences(divergence, old: Categorical, new: Categorical, step=1e-6) -> torch.Tensor:
    logits = new.logits
    grad = torch.zeros_like(logits)
    for k in range(logits.shape[1]):
        shift = torch.zeros_like(logits)
        shift[:, k] = step
        up = divergence(old, Categorical(logits + shift))
        down = divergence(old, Categorical(logits - shift))
        grad[:, k] = (up - down) / (2 * step)
    return grad


@pytest.mark.parametrize(
    "spec",
    [
        "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1)),ground=l2",
        "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1))",
        "w1:cost=((0,1,3,2,1),(2,0,1,2,2),(1,1,0,1,2),(2,2,1,0,1),(1,2,2,1,0))",  # quasi-metric
        "w1:cost=((0,9,1,1,1),(1,0,1,1,1),(1,1,0,1,1),(1,1,1,0,1),(1,1,1,1,0))",  # non-metric
    ],
)
def test_grad_new_matches_central_finite_differences(spec):
    divergence = DIVERGENCES.build(spec)
    metric = divergence.categorical_metric()
    old, new = _pair(12, 5, seed=14)
    if metric.uses_vertices:  # away from ties: a clear gap between the best two vertices
        scores = (old.probs - new.probs) @ metric.vertices(old.probs).T
        best_two = scores.topk(2, dim=-1).values
        assert (best_two[:, 0] - best_two[:, 1]).min() > 1e-4
    analytic = divergence.grad_new(old, new)[0]
    torch.testing.assert_close(analytic, _finite_differences(divergence, old, new),
                               rtol=0, atol=1e-8)
    torch.testing.assert_close(analytic.sum(-1), torch.zeros(12, dtype=torch.float64))


@pytest.mark.parametrize("spec", [
    "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1)),ground=l2",
    "w1:cost=((0,9,1,1,1),(1,0,1,1,1),(1,1,0,1,1),(1,1,1,0,1),(1,1,1,1,0))",
])
def test_identity_gives_zero_value_and_the_zero_subgradient(spec):
    divergence = DIVERGENCES.build(spec)
    old, _ = _pair(5, 5, seed=15)
    assert torch.equal(divergence(old, old), torch.zeros(5, dtype=torch.float64))
    assert torch.equal(divergence.grad_new(old, old)[0], torch.zeros(5, 5, dtype=torch.float64))


def test_asymmetric_cost_transports_from_old_to_new():
    cost = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 1.0], [1.0, 2.0, 0.0]])
    divergence = Wasserstein1(cost=_table(cost))
    assert not divergence.symmetric and not divergence.is_metric
    old, new = _pair(4, 3, seed=16)
    forward, backward = divergence(old, new), divergence(new, old)
    for i in range(4):
        p, q = old.probs[i].numpy(), new.probs[i].numpy()
        assert forward[i].item() == pytest.approx(ot.emd2(p, q, cost), abs=1e-12)
        assert backward[i].item() == pytest.approx(ot.emd2(p, q, cost.T), abs=1e-12)
    assert not torch.allclose(forward, backward)


def test_zero_cost_between_distinct_actions_is_allowed_but_not_a_metric():
    divergence = DIVERGENCES.build("w1:cost=((0,0,1),(0,0,1),(1,1,0))")
    assert divergence.symmetric and not divergence.is_metric
    swap = _mix({0: 1.0}, 3), _mix({1: 1.0}, 3)
    assert divergence(*swap).item() == pytest.approx(0.0, abs=1e-12)


# -- config strings --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [
        "w1",
        "w1:spacing=2",
        "w1:cost=((0,1,2),(1,0,1),(2,1,0))",
        "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1)),ground=l2",
        "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1))",
        "w1:embedding=(0,1,3)",
        "w1:embedding=env",
        "w1:method=pot,cost=((0,1),(1,0))",
    ],
)
def test_every_syntax_round_trips_its_spec(spec):
    divergence = DIVERGENCES.build(spec)
    rebuilt = DIVERGENCES.build(divergence.spec())
    assert rebuilt == divergence and hash(rebuilt) == hash(divergence)
    assert DIVERGENCES.build({"name": "w1", **divergence.config()}) == divergence


def test_the_ordinal_default_keeps_its_spec_and_options_change_equality():
    assert DIVERGENCES.build("w1").spec() == (
        "w1:method=closed_form,ground=l1,spacing=1.0,n_samples=256,seed=0"
    )
    matrix = DIVERGENCES.build("w1:cost=((0,1,2),(1,0,1),(2,1,0))")
    assert matrix.cost == ((0.0, 1.0, 2.0), (1.0, 0.0, 1.0), (2.0, 1.0, 0.0))
    assert matrix != DIVERGENCES.build("w1")
    assert matrix == Wasserstein1(cost=np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))
    assert DIVERGENCES.build("w1:embedding=env") != DIVERGENCES.build("w1")


# -- refusals --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cost": ((0, 1, 2), (1, 0, 1))}, r"cost must be a square K x K table with K >= 2 "
                                           r"actions, got shape \(2, 3\)"),
        ({"cost": ((0,),)}, r"cost must be a square K x K table with K >= 2 actions"),
        ({"cost": ((0, 1), (1,))}, r"cost must be a square K x K table of numbers, got"),
        ({"cost": "l1"}, r"cost must be a square K x K table of numbers, got 'l1'"),
        ({"cost": ((0, -1), (1, 0))}, r"cost must be >= 0, got cost\[0\]\[1\] = -1\.0"),
        ({"cost": ((0, 1), (1, 0.5))}, r"cost must have a zero diagonal .*got cost\[1\]\[1\] "
                                       r"= 0\.5"),
        ({"cost": ((0, float("inf")), (1, 0))}, r"cost must be finite"),
        ({"embedding": "envs"}, r"embedding must be 'env' or a \[K, d\] table of action "
                                r"coordinates, got 'envs'"),
        ({"embedding": ((0, 0),)}, r"embedding must be a \[K, d\] table of action coordinates "
                                   r"with K >= 2 actions, got shape \(1, 2\)"),
        ({"embedding": ((0, 0), (1, float("nan")))}, r"embedding must be finite"),
        ({"embedding": ((0, 0), (1, 1), (0, 0))}, r"embedding must give distinct points, got "
                                                  r"actions 0 and 2 both at \(0\.0, 0\.0\)"),
        ({"cost": ((0, 1), (1, 0)), "embedding": (0, 1)}, r"either cost or embedding, not both"),
        ({"cost": ((0, 1), (1, 0)), "spacing": 2}, r"spacing applies to the ordinal ground "
                                                   r"metric only, got spacing=2"),
    ],
)
def test_bad_tables_are_refused_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Wasserstein1(**kwargs)


def test_a_bad_table_in_a_config_string_names_the_accepted_keywords():
    with pytest.raises(ValueError, match=r"cost must be >= 0.*Accepted keywords: cost, "
                                         r"embedding, ground, method"):
        DIVERGENCES.build("w1:cost=((0,-1),(1,0))")


def test_a_categorical_with_another_number_of_actions_is_refused():
    divergence = DIVERGENCES.build("w1:cost=((0,1,2),(1,0,1),(2,1,0))")
    old, new = _pair(2, 4, seed=17)
    message = r"ground metric \(cost\) is defined for 3 actions, got a Categorical over 4 actions"
    with pytest.raises(ValueError, match=message):
        divergence(old, new)
    with pytest.raises(ValueError, match=message):
        divergence.grad_new(old, new)
    embedded = Wasserstein1(embedding=MPE)
    with pytest.raises(ValueError, match=r"\(embedding\) is defined for 5 actions, got a "
                                         r"Categorical over 4"):
        embedded(old, new)
    gaussian = DiagGaussian(torch.zeros(2, 1), torch.ones(2, 1))  # Gaussians ignore the table
    assert divergence(gaussian, gaussian).tolist() == [0.0, 0.0]


def test_env_embedding_refuses_to_evaluate_until_bound_then_matches_the_explicit_one():
    divergence = DIVERGENCES.build("w1:embedding=env,ground=l2")
    assert divergence.uses_env_action_geometry
    old, new = _pair(3, 5, seed=18)
    unbound = r"has no action geometry yet: embedding='env' .*bind_action_geometry"
    with pytest.raises(ValueError, match=unbound):
        divergence(old, new)
    with pytest.raises(ValueError, match=unbound):
        divergence.grad_new(old, new)
    with pytest.raises(ValueError, match=unbound):
        divergence.ground_cost(torch.tensor([0]), torch.tensor([[1]]))
    divergence.bind_action_geometry([MPE_MOVES, MPE_MOVES.copy()])
    explicit = Wasserstein1(embedding=MPE, ground="l2")
    torch.testing.assert_close(divergence(old, new), explicit(old, new), rtol=0, atol=0)
    assert DIVERGENCES.build(divergence.spec()) == divergence  # the binding is not config
    divergence.bind_action_geometry({"a": MPE_MOVES[:3], "b": MPE_MOVES[:3]})  # a new env
    assert divergence.categorical_metric().num_actions == 3


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        ([], r"one action embedding per agent, got none"),
        ([MPE_MOVES, None], r"agent 1 declares no action embedding; W1 with embedding='env' "
                            r"needs one for every agent"),
        ({"agent_0": MPE_MOVES, "agent_1": MPE_MOVES[::-1]},
         r"agents 'agent_0' and 'agent_1' declare different action embeddings .*one W1 "
         r"divergence serves every agent"),
        ([MPE_MOVES, MPE_MOVES[:4]], r"agents 0 and 1 declare different action embeddings "
                                     r"\(5 and 4 actions"),
        ({"speaker": np.zeros((3, 2))}, r"agent 'speaker''s action embedding must give distinct "
                                        r"points"),
    ],
)
def test_binding_refuses_missing_bad_or_different_embeddings(embeddings, message):
    with pytest.raises(ValueError, match=message):
        Wasserstein1(embedding="env").bind_action_geometry(embeddings)


def test_only_env_embedding_binds_an_env_geometry():
    for divergence in (Wasserstein1(), Wasserstein1(embedding=MPE)):
        assert not divergence.uses_env_action_geometry
        with pytest.raises(ValueError, match=r"has its own categorical ground metric; only "
                                             r"embedding='env'"):
            divergence.bind_action_geometry([MPE_MOVES])


# -- ground_cost --------------------------------------------------------------------------------
def test_ground_cost_between_continuous_actions():
    actions = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    candidates = torch.tensor([[[3.0, 4.0], [0.0, -2.0]], [[1.0, 1.0], [0.0, 2.0]]],
                              dtype=torch.float64)
    l1 = Wasserstein1().ground_cost(actions, candidates)
    l2 = Wasserstein1(ground="l2").ground_cost(actions, candidates)
    torch.testing.assert_close(l1, torch.tensor([[7.0, 2.0], [0.0, 2.0]], dtype=torch.float64))
    torch.testing.assert_close(
        l2, torch.tensor([[5.0, 2.0], [0.0, math.sqrt(2.0)]], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match=r"continuous ground_cost needs actions \[N, d\] and "
                                         r"candidates \[N, K, d\], got \(2, 2\) and \(2, 2\)"):
        Wasserstein1().ground_cost(actions, actions)


def test_ground_cost_between_discrete_actions_for_each_metric():
    actions = torch.tensor([LEFT, NOOP])
    candidates = torch.tensor([[RIGHT, UP, LEFT], [DOWN, NOOP, RIGHT]])
    expected = {
        "w1:spacing=2": [[2.0, 6.0, 0.0], [6.0, 0.0, 4.0]],  # 2 |i - j|
        "w1:cost=((0,1,2,3,4),(5,0,6,7,8),(1,1,0,1,1),(2,2,2,0,2),(3,3,3,3,0))":
            [[6.0, 8.0, 0.0], [3.0, 0.0, 2.0]],
        "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1))": [[2.0, 2.0, 0.0], [1.0, 0.0, 1.0]],
        "w1:embedding=((0,0),(-1,0),(1,0),(0,-1),(0,1)),ground=l2":
            [[2.0, math.sqrt(2.0), 0.0], [1.0, 0.0, 1.0]],
    }
    for spec, values in expected.items():
        cost = DIVERGENCES.build(spec).ground_cost(actions, candidates, dtype=torch.float64)
        torch.testing.assert_close(cost, torch.tensor(values, dtype=torch.float64), msg=spec)
    assert Wasserstein1().ground_cost(actions, candidates).dtype == torch.get_default_dtype()


def test_ground_cost_refuses_bad_indices_and_shapes():
    embedded = Wasserstein1(embedding=MPE)
    with pytest.raises(ValueError, match=r"candidates must be action indices in \[0, 4\], got 5"):
        embedded.ground_cost(torch.tensor([0]), torch.tensor([[5]]))
    with pytest.raises(ValueError, match=r"actions must be action indices >= 0, got -1"):
        Wasserstein1().ground_cost(torch.tensor([-1]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match=r"discrete ground_cost needs integer actions \[N\] and "
                                         r"candidates \[N, K\]"):
        embedded.ground_cost(torch.tensor([0, 1]), torch.tensor([[0]]))


def test_only_transport_divergences_have_a_ground_cost():
    assert Wasserstein1.has_ground_metric and not KL.has_ground_metric
    with pytest.raises(NotImplementedError, match=r"KL has no ground cost between actions "
                                                  r"\(has_ground_metric is False\)"):
        KL().ground_cost(torch.zeros(1, 1), torch.zeros(1, 2, 1))


# -- which divergences fit which distributions ----------------------------------------------------
def test_divergences_supporting_reads_the_registry():
    discrete = [n for n in DIVERGENCES.names() if DIVERGENCES.get(n).supports_discrete]
    assert divergences_supporting("discrete") == discrete
    assert divergences_supporting(Categorical) == discrete
    assert "w1" in discrete and "w1_bound" not in discrete
    assert divergences_supporting(DiagGaussian(torch.zeros(1, 1), torch.ones(1, 1))) == (
        DIVERGENCES.names()
    )
    with pytest.raises(ValueError, match=r"dist_type_or_kind must be 'continuous', 'discrete' "
                                         r"or an ActionDistribution type, got 'mixed'"):
        divergences_supporting("mixed")


def test_eq31_bound_refuses_categoricals_and_points_to_exact_w1():
    dist = Categorical(torch.zeros(2, 3))
    fitting = ", ".join(divergences_supporting(Categorical))
    message = (r"does not support discrete actions \(Categorical\): eq\. 31 bounds W1 between "
               r"Gaussians only; use 'w1', the exact W1, which supports discrete actions "
               rf"\(divergences that fit Categorical: {re.escape(fitting)}\)")
    with pytest.raises(ValueError, match=message):
        Wasserstein1Bound()(dist, dist)


def test_generic_refusal_lists_the_divergences_that_fit():
    class Gaussians(Divergence):
        supports_continuous = True

        def compute(self, old, new):
            return torch.zeros(old.batch_size)

    dist = Categorical(torch.zeros(2, 3))
    assert {"kl", "w1", "w2", "js", "hellinger", "tv"} <= set(divergences_supporting(Categorical))
    fitting = re.escape(", ".join(divergences_supporting(Categorical)))
    with pytest.raises(ValueError, match=r"it supports continuous; divergences that fit "
                                         rf"Categorical: {fitting}$"):
        Gaussians()(dist, dist)
