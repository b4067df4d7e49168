"""What the loop tells radius schedulers: teammates' drift (closed-form W1/KL between an
agent's policies at consecutive iterations) and natural-gradient norms (closed-form Fisher),
and CAATR's radii in a real run recomputed from the logged policies (eqs. 13-14)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

import marl_tr
from marl_tr.divergences import DIVERGENCES
from marl_tr.policies import GaussianPolicy
from marl_tr.training.radius_context import LoopRadiusContext

F64 = torch.float64
def w1_gaussian(m1, s1, m2, s2) -> float:
    """Exact W1 between 1-D Gaussians (docs/paper-notes.md, point 4)."""
    dm, ds = m1 - m2, s1 - s2
    if ds == 0:
        return abs(dm)
    return (abs(ds) * math.sqrt(2 / math.pi) * math.exp(-dm**2 / (2 * ds**2))
            + dm * (1 - 2 * norm.cdf(-dm / abs(ds))))


def kl_gaussian(m1, s1, m2, s2) -> float:
    return math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


def policies_and_previous():
    """Two 1-D state-independent policies now, and their parameters one iteration ago."""
    now = [(1.5, 0.5), (0.8, 0.3)]
    before = [(1.2, 0.6), (0.8, 0.25)]
    policies, previous = [], []
    for (m, s), (m0, s0) in zip(now, before):
        policy = GaussianPolicy(1, 1, min_std=1e-3).to(F64)
        policy.set_flat_parameters(torch.tensor([[m, math.log(s - 1e-3)]], dtype=F64))
        policies.append(policy)
        previous.append(torch.tensor([[m0, math.log(s0 - 1e-3)]], dtype=F64))  # [R=1, P]
    return policies, previous, now, before


def context(policies, previous, weights=None, batch=5):
    obs = [torch.zeros(batch, 1, dtype=F64) for _ in policies]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        actions = [p.distribution(o).sample(generator) for p, o in zip(policies, obs)]
        log_probs = [p.distribution(o).log_prob(a)
                     for p, o, a in zip(policies, obs, actions)]
    if weights is None:
        weights = torch.randn(batch, generator=generator, dtype=F64)
    return LoopRadiusContext(3, policies, previous, obs, actions, log_probs, weights, None)


@pytest.mark.parametrize(("name", "formula"), [("w1", w1_gaussian), ("kl", kl_gaussian)])
def test_drift_is_the_divergence_between_consecutive_policies(name, formula):
    policies, previous, now, before = policies_and_previous()
    ctx = context(policies, previous)
    drift = ctx.drift(DIVERGENCES.build(name))[0]  # replica 0 of [R, n]
    np.testing.assert_array_equal(ctx.for_replica(0).drift(DIVERGENCES.build(name)), drift)
    expected = [formula(m0, s0, m, s) for (m, s), (m0, s0) in zip(now, before)]
    np.testing.assert_allclose(drift, expected, rtol=1e-9)
    # and the policies are left at their current parameters
    for policy, (m, s) in zip(policies, now):
        assert float(policy.mean.detach()) == m
        assert float(policy.std().detach()) == pytest.approx(s, rel=1e-12)


def test_drift_of_a_std_only_change():
    """Agent 1 kept its mean: its W1 drift is |ds| E|Z| = |ds| sqrt(2 / pi)."""
    policies, previous, now, before = policies_and_previous()
    drift = context(policies, previous).drift(DIVERGENCES.build("w1"))[0]
    expected = abs(now[1][1] - before[1][1]) * math.sqrt(2 / math.pi)
    assert drift[1] == pytest.approx(expected, rel=1e-9)


def test_no_drift_before_the_second_iteration():
    policies, _, _, _ = policies_and_previous()
    ctx = context(policies, None)
    assert ctx.drift(DIVERGENCES.build("w1")) is None
    assert ctx.for_replica(0).drift(DIVERGENCES.build("w1")) is None


def test_natural_gradient_norms_are_hand_computed():
    """g^T (F + 0.1 I)^-1 g with the Gaussian's Fisher diag(1/s^2, 2 e^2/s^2) in (mean, rho)."""
    policies, previous, now, _ = policies_and_previous()
    ctx = context(policies, previous, batch=8)
    norms = ctx.natural_gradient_norms(DIVERGENCES.build("kl"))[0]
    weights = ctx._weights.numpy()
    for i, (m, s) in enumerate(now):
        a = ctx._actions[i].numpy()[:, 0]
        e = s - 1e-3
        z = (a - m) / s
        g = np.array([np.mean(weights * z / s), np.mean(weights * (z * z - 1) / s) * e])
        fisher = np.array([1 / s**2, 2 * e**2 / s**2])
        assert norms[i] == pytest.approx(float(np.sum(g**2 / (fisher + 0.1))), rel=1e-8)


def test_caatr_radii_in_a_run_follow_eqs_13_14():
    """hatrpo-caatr, n = 3: the radius of iteration t >= 2 is C / (D_-i + eps) with the
    drifts W1(policy at the end of t-2, at the end of t-1) taken from the logged means and
    stds, C = 0.02, eps = max(1e-3, min(1, D_-i / 10)); iteration 0 uses initial_delta."""
    result = marl_tr.train(preset="hatrpo-caatr", env_kwargs={"n": 3}, iterations=6, seed=0,
                           dtype="float64")
    rows = result.metrics
    start = [(1.5, 0.5)] * 3  # the env's suggested start
    assert [rows[0][f"radius_{i}"] for i in range(3)] == [0.1] * 3
    for t in range(1, 6):
        before = start if t == 1 else [(rows[t - 2][f"mean_0_{i}"], rows[t - 2][f"std_0_{i}"])
                                       for i in range(3)]
        now = [(rows[t - 1][f"mean_0_{i}"], rows[t - 1][f"std_0_{i}"]) for i in range(3)]
        drift = np.array([w1_gaussian(*b, *n) for b, n in zip(before, now)])
        teammates = drift.sum() - drift
        eps = np.maximum(1e-3, np.minimum(1.0, teammates / 10))
        expected = 0.02 / (teammates + eps)
        got = [rows[t][f"radius_{i}"] for i in range(3)]
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=f"iteration {t}")


@pytest.mark.parametrize("preset", ["hatrpo", "wmatrpo-caatr"])
def test_the_last_steps_divergences_are_the_drift_the_context_reuses(preset):
    """With state-independent policies, the divergence each agent's step reached (the loop's
    record) is the drift D(pi^(t-1), pi^t) recomputed from the parameters; the context
    hands that record out for the trust region's divergence only."""
    from marl_tr.config import TrainConfig
    from marl_tr.training.loop import SequentialTrustRegion
    from marl_tr.training.setup import build_parts

    loop = SequentialTrustRegion(build_parts(TrainConfig(  # every agent steps: no signal test
        preset=preset, env_kwargs={"n": 3}, batch_size=30, dtype="float64", seed=3,
        signal_level=None)))
    for _ in range(3):
        loop.step()
    batch = loop.collect()
    args = (loop.iteration, loop.policies, loop.previous_params, batch.obs, batch.actions,
            batch.log_probs, torch.ones(30, dtype=F64), loop.previous_steps)
    computed = LoopRadiusContext(*args)  # no step divergence: always from the parameters
    reusing = LoopRadiusContext(*args, loop.divergence)
    recorded = loop.previous_steps.divergence
    assert (recorded > 0).all()
    np.testing.assert_allclose(computed.drift(loop.divergence), recorded, rtol=1e-9)
    np.testing.assert_array_equal(reusing.drift(loop.divergence), recorded)
    other = DIVERGENCES.build("tv" if loop.divergence.spec().startswith("kl") else "kl")
    np.testing.assert_array_equal(reusing.drift(other), computed.drift(other))
    assert not np.allclose(reusing.drift(other), recorded)
