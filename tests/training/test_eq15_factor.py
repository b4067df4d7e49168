"""The eq. 15 factor: agent i is updated with M_i = A * prod_{k before i} pi_k_new / pi_k_old,
the log of the product clamped to [-max_log_factor, max_log_factor]. Checked against numpy
on the weights the loop actually hands to the solver."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr.training.loop import SequentialTrustRegion


@pytest.fixture
def recorded_batches(monkeypatch):
    """Every batch the loop collects, in order."""
    batches = []
    original = SequentialTrustRegion.collect

    def collect(self):
        batch = original(self)
        batches.append(batch)
        return batch

    monkeypatch.setattr(SequentialTrustRegion, "collect", collect)
    return batches


def hand_advantages(rewards: np.ndarray) -> np.ndarray:
    """First iteration of a one-step game: the critic is 0, so A = normalise(r)."""
    r = rewards.reshape(-1)
    return (r - r.mean()) / r.std()


@pytest.mark.parametrize(
    ("max_log_factor", "frozen_agent"),
    [(None, -1), (1.0, -1), (0.3, -1), (1.0, 1)],
    ids=["no-clamp", "clamp-1", "clamp-0.3", "clamp-1-agent-1-does-not-move"],
)
def test_eq15_weights_hand_computed(plugins, recorded_batches, max_log_factor, frozen_agent):
    """Fixed order 0, 1, 2; agent k reports log-ratios s_k = 0.8 (k+1) linspace(-1, 1, B)
    (a solver loaded from 'loop_plugins:ShiftSolver'), so by hand:
    M_0 = A, M_1 = A exp(clip(s_0)), M_2 = A exp(clip(s_0 + s_1)); a step that did not move
    contributes nothing."""
    result = marl_tr.train(
        env_kwargs={"n": 3}, iterations=2, seed=5, agent_order="fixed", dtype="float64",
        solver=f"loop_plugins:ShiftSolver:scale=0.8,frozen_agent={frozen_agent}",
        max_log_factor=max_log_factor,
    )
    calls = plugins.ShiftSolver.calls
    assert [c["agent"] for c in calls] == [0, 1, 2, 0, 1, 2]
    assert [row["order"] for row in result.metrics] == ["0,1,2", "0,1,2"]
    batch = len(recorded_batches[0].rewards.reshape(-1))
    shifts = [0.8 * (k + 1) * np.linspace(-1, 1, batch) for k in range(3)]
    limit = np.inf if max_log_factor is None else max_log_factor

    np.testing.assert_allclose(calls[0]["weights"].numpy(),
                               hand_advantages(recorded_batches[0].rewards.numpy()),
                               rtol=1e-12, atol=1e-12)
    for iteration in range(2):
        a = calls[3 * iteration]["weights"].numpy()  # the first agent gets A itself
        log_factor = np.zeros(batch)
        for k in range(3):
            expected = a * np.exp(np.clip(log_factor, -limit, limit))
            got = calls[3 * iteration + k]["weights"].numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15,
                                       err_msg=f"iteration {iteration}, agent {k}")
            if k != frozen_agent:
                log_factor += shifts[k]
    if max_log_factor == 0.3:  # the clamp is active on part of the batch
        assert np.abs(shifts[0]).max() > 0.3


@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("preset", ["hatrpo", "wmatrpo"])
def test_eq15_weights_with_a_real_solver_and_random_order(monkeypatch, preset, replicas):
    """Random agent order, real updates: the weights agent i receives are A times the product
    of the ratios pi_new / pi_old of the agents updated before it, with pi_new recomputed
    here from each updated policy, the log clamped to +-0.1. With replicas, each replica
    follows its own order and its own agents' ratios."""
    records = []
    original = SequentialTrustRegion.update_position

    def update_position(self, agents, batch, weights, radii, team_params=None, **kwargs):
        result = original(self, agents, batch, weights, radii, team_params, **kwargs)
        rows = batch.size
        log_ratio = np.empty(len(agents) * rows)
        with torch.no_grad():
            for r, agent in enumerate(agents):
                block = slice(r * rows, (r + 1) * rows)
                policy = copy.deepcopy(self.policies[int(agent)])  # its parameters now
                if team_params is not None:  # replicas gathered: the stack holds them
                    policy.set_flat_parameters(team_params[int(agent)])
                new = policy.distribution(batch.obs[int(agent)])
                log_ratio[block] = (new.log_prob(batch.actions[int(agent)])
                                    - batch.log_probs[int(agent)])[block].numpy()
        records.append({"agents": agents.copy(), "weights": weights.clone(),
                        "log_ratio": log_ratio, "iteration": self.iteration, "rows": rows})
        return result

    monkeypatch.setattr(SequentialTrustRegion, "update_position", update_position)
    result = marl_tr.train(preset=preset, env_kwargs={"n": 3}, iterations=4, seed=2,
                           dtype="float64", max_log_factor=0.1, replicas=replicas)
    orders = np.array([[int(a) for a in row["order"].split(",")] for row in result.metrics])
    orders = orders.reshape(4, replicas, 3)  # [iteration, replica, position]
    assert len({tuple(o) for o in orders.reshape(-1, 3)}) > 1  # the order really is random
    clamped = 0
    for iteration in range(4):
        mine = [r for r in records if r["iteration"] == iteration]
        np.testing.assert_array_equal(np.stack([r["agents"] for r in mine], 1),
                                      orders[iteration])
        a = mine[0]["weights"].numpy()
        log_factor = np.zeros_like(a)
        for record in mine:
            expected = a * np.exp(np.clip(log_factor, -0.1, 0.1))
            np.testing.assert_allclose(record["weights"].numpy(), expected, rtol=1e-9,
                                       atol=1e-12)
            clamped += int((np.abs(log_factor) > 0.1).any())
            log_factor += record["log_ratio"]
    assert clamped > 0  # the clamp mattered somewhere
