"""Derivatives: gradcheck of every formula, analytic grad_new and hvp against autograd."""

from __future__ import annotations

import pytest
import torch

from marl_tr.distributions import ActionDistribution
from marl_tr.divergences import DIVERGENCES, Divergence

MPE = "((0,0),(-1,0),(1,0),(0,-1),(0,1))"  # MPE's moves as 2-D points
W1_METRIC = "w1:cost=((0,1,2,1,1),(1,0,1,2,2),(2,1,0,1,1),(1,2,1,0,2),(1,2,1,2,0))"
W1_NON_METRIC = "w1:cost=((0,9,1,1,1),(1,0,1,1,1),(1,1,0,2,1),(1,1,1,0,1),(1,1,1,1,0))"
W1_MPE_L2 = f"w1:embedding={MPE},ground=l2"

# (config string, distribution kind, action dimension or number of actions)
FORMULAS = [
    ("kl", "gaussian", 3),
    ("kl", "categorical", 5),
    ("kl:direction=reverse", "gaussian", 3),
    ("kl:direction=reverse", "categorical", 5),
    ("w1", "gaussian", 3),
    ("w1", "categorical", 5),
    ("w1:method=pot,n_samples=64", "gaussian", 2),
    ("w1:method=pot", "categorical", 5),
    ("w1:method=pot,ground=l2,n_samples=16", "gaussian", 2),
    (W1_METRIC, "categorical", 5),
    (W1_NON_METRIC, "categorical", 5),
    (W1_MPE_L2, "categorical", 5),
    (f"w1:method=pot,embedding={MPE}", "categorical", 5),
    ("w1_bound", "gaussian", 3),
    ("w2", "gaussian", 3),
    ("w2", "categorical", 5),
    ("js", "gaussian", 1),
    ("js:n_samples=64", "gaussian", 2),
    ("js", "categorical", 5),
    ("js:method=jeffreys_bound", "gaussian", 3),
    ("js:method=jeffreys_bound", "categorical", 5),
    ("hellinger", "gaussian", 3),
    ("hellinger", "categorical", 5),
    ("tv", "gaussian", 1),
    ("tv:n_samples=64", "gaussian", 2),
    ("tv", "categorical", 5),
]
ANALYTIC_GRADIENTS = [case for case in FORMULAS if case[0].split(":")[0] in ("kl", "w1_bound")]
ANALYTIC_GRADIENTS += [("w1", "gaussian", 3), ("w1", "categorical", 5)]
ANALYTIC_GRADIENTS += [(spec, "categorical", 5) for spec in (W1_METRIC, W1_NON_METRIC, W1_MPE_L2)]
SMOOTH = [case for case in FORMULAS if case[0].split(":")[0] in ("kl", "js", "hellinger")]


@pytest.fixture
def make_pair(gaussians, categoricals):
    def make(kind: str, size: int, batch: int = 4) -> tuple[ActionDistribution, ...]:
        factory = gaussians if kind == "gaussian" else categoricals
        return factory(batch, size, seed=60), factory(batch, size, seed=61)

    return make


def _ids(case: tuple) -> str:
    return f"{case[0]}-{case[1]}"


@pytest.mark.parametrize("case", FORMULAS, ids=_ids)
def test_gradcheck_in_new_parameters(case, make_pair):
    spec, kind, size = case
    divergence = DIVERGENCES.build(spec)
    old, new = make_pair(kind, size, batch=3)
    leaves = tuple(p.detach().clone().requires_grad_(True) for p in new.params())

    def value(*params: torch.Tensor) -> torch.Tensor:
        return divergence(old, type(new).from_params(params))

    assert torch.autograd.gradcheck(value, leaves, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", ANALYTIC_GRADIENTS, ids=_ids)
def test_analytic_grad_new_matches_autograd(case, make_pair):
    spec, kind, size = case
    divergence = DIVERGENCES.build(spec)
    assert type(divergence).grad_new is not Divergence.grad_new  # an analytic override
    old, new = make_pair(kind, size, batch=16)
    analytic = divergence.grad_new(old, new)
    reference = Divergence.grad_new(divergence, old, new)
    assert len(analytic) == len(reference)
    for mine, autograd in zip(analytic, reference):
        torch.testing.assert_close(mine, autograd)


@pytest.mark.parametrize("case", SMOOTH, ids=_ids)
def test_analytic_hvp_matches_autograd(case, make_pair):
    spec, kind, size = case
    divergence = DIVERGENCES.build(spec)
    old, _ = make_pair(kind, size, batch=6)
    generator = torch.Generator().manual_seed(1)
    tangent = tuple(torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in old.params())
    analytic = divergence.hvp(old, tangent)
    reference = Divergence.hvp(divergence, old, tangent)
    if spec == "js:n_samples=64":  # a 64-point sample rule: its Hessian is approximate
        reference = Divergence.hvp(DIVERGENCES.build("js:n_samples=20000"), old, tangent)
        for mine, autograd in zip(analytic, reference):
            torch.testing.assert_close(mine, autograd, rtol=0.1, atol=0.05)
        return
    for mine, autograd in zip(analytic, reference):
        torch.testing.assert_close(mine, autograd)


@pytest.mark.parametrize("name", ["w1", "w1_bound", "w2"])
def test_hvp_is_refused_where_there_is_no_hessian(name, gaussians):
    dist = gaussians(2, 1, seed=0)
    with pytest.raises(NotImplementedError, match="is not smooth at identity"):
        DIVERGENCES.build(name).hvp(dist, dist.params())


def test_fisher_product_rejects_a_wrong_tangent(gaussians):
    dist = gaussians(2, 1, seed=0)
    with pytest.raises(ValueError, match=r"needs 2 tensor\(s\) \(mean, std\), got 1"):
        DIVERGENCES.build("kl").hvp(dist, (dist.mean,))


def test_grad_new_checks_its_arguments(gaussians):
    old, wider = gaussians(2, 1, seed=0), gaussians(2, 2, seed=0)
    with pytest.raises(ValueError, match=r"Mismatched distributions for KL: mean has shape"):
        DIVERGENCES.build("kl").grad_new(old, wider)


@pytest.mark.parametrize("dim", [1, 3])
@pytest.mark.parametrize("name", DIVERGENCES.names())
def test_diagonal_hessian_claim_holds(name, dim, gaussians, categoricals):
    """Where a divergence claims a diagonal Hessian, ``hvp(t) == hvp(ones) * t``."""
    divergence = DIVERGENCES.build(name)
    categorical = categoricals(3, 4, seed=62)
    assert not divergence.diagonal_hessian(categorical)  # diag(p) - p p^T is not diagonal
    gaussian = gaussians(3, dim, seed=63)
    claims = divergence.diagonal_hessian(gaussian)
    assert claims == divergence.smooth_at_identity
    if claims:
        if "n_samples" in divergence.config():  # a sample rule: make its Hessian accurate
            divergence = DIVERGENCES.build(name, n_samples=50_000)
        generator = torch.Generator().manual_seed(2)
        tangent = tuple(
            torch.randn(3, dim, generator=generator, dtype=torch.float64) for _ in range(2)
        )
        diagonal = divergence.hvp(gaussian, tuple(torch.ones_like(t) for t in tangent))
        reference = Divergence.hvp(divergence, gaussian, tangent)
        for diag_part, tangent_part, exact in zip(diagonal, tangent, reference):
            torch.testing.assert_close(diag_part * tangent_part, exact, rtol=0.05, atol=0.02)
