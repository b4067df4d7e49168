"""Replicas: R independent runs stepped together. Replica r must be exactly the run with seed
``seed + r`` (same parameters and metrics, bit for bit), whatever the policy, solver,
scheduler or environment path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr.training.run_dir import read_metrics

PARALLEL = "marl_tr_envs.diff_game.envs:parallel_env"
CASES = {
    "hatrpo": dict(preset="hatrpo", env_kwargs={"n": 3}),
    "hatrpo-caatr-noisy": dict(preset="hatrpo-caatr", env_kwargs={"n": 3, "reward_noise": 0.05}),
    "wmatrpo-caatr": dict(preset="wmatrpo-caatr", env_kwargs={"n": 3}),
    "mlp-cg": dict(preset="hatrpo", env_kwargs={"n": 2}, policy_hidden=(6,), critic_hidden=(5,)),
    "adam-shrink": dict(preset="wmatrpo", env_kwargs={"n": 2}, policy_hidden=(4,),
                        solver="primal_dual:optimizer=adam,safeguard=shrink"),
    "categorical": dict(env="ClimbingGame-v0"),
    "pettingzoo-multistep-noisy": dict(env=PARALLEL, num_envs=10,
                                       env_kwargs={"n": 2, "episode_length": 3,
                                                   "reward_noise": 0.1}),
    "kkt-w1": dict(divergence="w1", radius="kkt:divergence=w1", solver="primal_dual",
                   env_kwargs={"n": 3}),
    "greedy": dict(divergence="kl", radius="greedy", env_kwargs={"n": 3}),
    "happo": dict(preset="happo", env_kwargs={"n": 3}),
    "wmatrpo-tr-caatr": dict(preset="wmatrpo-tr-caatr", env_kwargs={"n": 3}),
    "wmatrpo-dual-caatr": dict(preset="wmatrpo-dual-caatr", env_kwargs={"n": 3}),
    "wmatrpo-dual-oracle-categorical": dict(preset="wmatrpo-dual:critic=oracle_q",
                                            env="ClimbingGame-v0"),
    "exact-radius-categorical-mlp": dict(env="ClimbingGame-v0", solver="exact_radius",
                                         divergence="w1", policy_hidden=(4,)),
    "mappo-early-stop": dict(preset="mappo:early_stop=true,delta=0.01", env_kwargs={"n": 3}),
}


def parameters(result) -> torch.Tensor:
    return torch.cat([p.flat_parameters().reshape(-1) for p in result.policies])


def without_replica(rows):
    return [{k: v for k, v in row.items() if k != "replica"} for row in rows]


@pytest.mark.parametrize("name", list(CASES))
def test_replica_r_is_the_run_with_seed_plus_r(name, rows_equal):
    settings = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        batched = marl_tr.train(iterations=15, seed=4, replicas=3, **settings)
        singles = [marl_tr.train(iterations=15, seed=4 + r, **settings) for r in (0, 2)]
    parts = batched.split()
    assert len(parts) == 3 and len(batched.metrics) == 45
    for r, single in zip((0, 2), singles):
        assert torch.equal(parameters(parts[r]), parameters(single))
        rows_equal(without_replica(parts[r].metrics), without_replica(single.metrics))
        assert parts[r].config == single.config


def test_replicas_really_differ():
    parts = marl_tr.train(preset="hatrpo", env_kwargs={"n": 3}, iterations=5, replicas=2,
                          seed=0).split()
    assert not torch.equal(parameters(parts[0]), parameters(parts[1]))
    assert [row["seed"] for row in parts[1].metrics] == [1] * 5


def test_per_run_accessors_need_split():
    result = marl_tr.train(preset="hatrpo", env_kwargs={"n": 2}, iterations=2, replicas=2)
    for accessor in (result.final_means, result.final_stds, result.expected_reward,
                     lambda: result.column("reward_mean")):
        with pytest.raises(ValueError, match=r"this result holds 2 replicas: use result\.split"):
            accessor()
    one = result.split()[1]
    assert one.final_means().shape == (2, 1) and one.config.replicas == 1
    assert one.config.seed == 1 and np.isfinite(one.expected_reward())


def test_heterogeneous_agents_need_a_fixed_order_with_replicas(plugins, rows_equal):
    env = "loop_plugins:toy_env"
    kwargs = {"n": 2, "target": 1.0, "action_dims": (1, 2)}
    with pytest.raises(ValueError, match="needs agents with identical spaces"):
        marl_tr.train(env=env, env_kwargs=kwargs, iterations=1, replicas=2)
    batched = marl_tr.train(env=env, env_kwargs=kwargs, iterations=4, replicas=2, seed=0,
                            agent_order="fixed")
    single = marl_tr.train(env=env, env_kwargs=kwargs, iterations=4, seed=1,
                           agent_order="fixed")
    assert torch.equal(parameters(batched.split()[1]), parameters(single))
    rows_equal(without_replica(batched.split()[1].metrics), without_replica(single.metrics))


def test_resumed_replicated_run_equals_an_uninterrupted_one(tmp_path, rows_equal):
    settings = dict(preset="wmatrpo-caatr", env_kwargs={"n": 3, "reward_noise": 0.05},
                    replicas=2, seed=7)
    marl_tr.train(iterations=5, run_dir=str(tmp_path / "run"), **settings)
    resumed = marl_tr.train(resume=tmp_path / "run", iterations=10)
    straight = marl_tr.train(iterations=10, **settings)
    assert torch.equal(parameters(resumed), parameters(straight))
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 20
    assert [(row["iteration"], row["replica"]) for row in rows[:4]] == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    rows_equal(resumed.metrics[-2:], [
        {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
         for k, v in row.items()} for row in straight.metrics[-2:]
    ])


def test_replicas_are_validated():
    with pytest.raises(ValueError, match="replicas must be an integer >= 1, got 0"):
        marl_tr.train(iterations=1, replicas=0)
