"""Runs whose parts are all closed form step under torch.inference_mode: the numbers must be
exactly those of the plain path, and any part that needs autograd switches it off."""

from __future__ import annotations

import pytest
import torch

import marl_tr
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.setup import build_parts


def run(settings, autograd_free=None, iterations=12):
    loop = SequentialTrustRegion(build_parts(marl_tr.TrainConfig(seed=3, **settings)))
    if autograd_free is not None:
        loop.autograd_free = autograd_free
    rows = [row for _ in range(iterations) for row in loop.step()]
    params = torch.cat([p.flat_parameters().reshape(-1) for p in loop.policies])
    return loop, rows, params


@pytest.mark.parametrize("settings", [
    {"preset": "hatrpo", "env_kwargs": {"n": 3}},
    {"preset": "wmatrpo-caatr", "env_kwargs": {"n": 3}, "replicas": 2},
    {"divergence": "kl", "radius": "kkt", "env_kwargs": {"n": 3}},
    {"env": "ClimbingGame-v0"},
], ids=["hatrpo", "wmatrpo-caatr-replicas", "kkt", "categorical"])
def test_inference_mode_path_gives_the_same_numbers(settings, rows_equal):
    fast_loop, fast_rows, fast = run(settings)
    assert fast_loop.autograd_free
    _, slow_rows, slow = run(settings, autograd_free=False)
    assert torch.equal(fast, slow)
    rows_equal(fast_rows, slow_rows)
    # parameters stay ordinary tensors, usable with autograd after training
    assert all(not p.is_inference() for p in fast_loop.policies[0].parameters())


@pytest.mark.parametrize(("settings", "needs"), [
    ({"policy_hidden": (4,)}, "policy"),
    ({"critic_hidden": (4,)}, "critic"),
    ({"critic_optimizer": "adam"}, "critic"),
    ({"divergence": "js"}, "divergence (autograd grad_new)"),
    ({"divergence": "w1:method=pot", "solver": "primal_dual"}, "divergence (POT)"),
])
def test_a_part_that_needs_autograd_keeps_autograd_on(settings, needs):
    loop, _, params = run(settings, iterations=2)
    assert not loop.autograd_free, needs
    assert torch.isfinite(params).all()


def test_user_plugins_are_assumed_to_need_autograd():
    import numpy as np

    from marl_tr.radius.base import RadiusScheduler
    from marl_tr.solvers.base import Solver

    class MyRadius(RadiusScheduler):
        def radii(self, ctx):
            return np.full(ctx.n_agents, 0.1)

    class MySolver(Solver):
        def step(self, problem, agents):
            return problem.no_step("never moves")

    assert not MyRadius().autograd_free and not MySolver().autograd_free
    loop = SequentialTrustRegion(build_parts(marl_tr.TrainConfig(radius=MyRadius())))
    assert not loop.autograd_free
    loop.step()
