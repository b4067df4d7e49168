"""The loop on other env paths: multi-step episodes (native vector env and PettingZoo
ParallelEnv), adapters agreeing on the same actions, MLP policies and critics, and
categorical policies on a matrix game."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr import DIVERGENCES
from marl_tr.config import TrainConfig
from marl_tr.training.env_adapters import (
    JointVectorEnvAdapter,
    ParallelEnvAdapter,
    make_env,
)
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.setup import build_parts

PARALLEL = "marl_tr_envs.diff_game.envs:parallel_env"
def first_batch(config: TrainConfig):
    parts = build_parts(config)
    loop = SequentialTrustRegion(parts)
    try:
        return parts, loop.collect()
    finally:
        parts.env.close()


# ---------------------------------------------------------------------------------------
# multi-step episodes
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", [PARALLEL, "DiffGame-v0"])
def test_multi_step_batch_layout(env):
    """episode_length 3, 5 copies, batch 30: T = 6 steps, every copy terminates at t = 2 and
    t = 5; the state is t / 3 within the episode and the terminal successor state is 1."""
    config = TrainConfig(env=env, env_kwargs={"n": 2, "episode_length": 3}, num_envs=5,
                         batch_size=30, dtype="float64")
    parts, batch = first_batch(config)
    assert isinstance(parts.env, ParallelEnvAdapter if ":" in env else JointVectorEnvAdapter)
    assert batch.rewards.shape == (1, 6, 5)  # [replica, step, copy]
    assert batch.size == 30
    batch.rewards, batch.terminated, batch.truncated = (
        batch.rewards[0], batch.terminated[0], batch.truncated[0])
    batch.states, batch.final_states = batch.states[0], batch.final_states[0]
    (episode_returns,) = batch.episode_returns
    ends = torch.tensor([t % 3 == 2 for t in range(6)]).unsqueeze(1).expand(6, 5)
    assert torch.equal(batch.terminated, ends)
    assert not batch.truncated.any()
    phase = torch.tensor([(t % 3) / 3 for t in range(6)], dtype=torch.float64)
    torch.testing.assert_close(batch.states[..., 0], phase.unsqueeze(1).expand(6, 5),
                               rtol=0, atol=1e-7)
    successor = torch.tensor([((t % 3) + 1) / 3 for t in range(6)], dtype=torch.float64)
    torch.testing.assert_close(batch.final_states[..., 0], successor.unsqueeze(1).expand(6, 5),
                               rtol=0, atol=1e-7)
    assert len(episode_returns) == 10  # two episodes per copy ended
    returns = batch.rewards.reshape(2, 3, 5).sum(1).T.reshape(-1)  # [copy, episode]
    np.testing.assert_allclose(sorted(episode_returns), sorted(returns.tolist()),
                               rtol=1e-12)
    for i in range(2):
        assert batch.obs[i].shape == (30, 1) and batch.actions[i].shape == (30, 1)
        assert batch.log_probs[i].shape == (30,)


def test_training_multi_step_episodes_through_the_vector_env():
    result = marl_tr.train(env_kwargs={"n": 2, "episode_length": 3}, num_envs=5,
                           batch_size=30, iterations=3, seed=0)
    assert len(result.metrics) == 3
    assert all(np.isfinite(result.column(f"mean_0_{i}")).all() for i in range(2))
    # each batch holds 10 whole episodes of 3 plays: the return is 3 x the mean reward
    np.testing.assert_allclose(result.column("episode_return_mean"),
                               3 * result.column("reward_mean"), rtol=1e-6)


def test_training_multi_step_episodes_through_a_pettingzoo_env():
    result = marl_tr.train(env=PARALLEL, env_kwargs={"n": 2, "episode_length": 3}, num_envs=5,
                           batch_size=30, iterations=3, seed=0)
    assert len(result.metrics) == 3
    np.testing.assert_allclose(result.column("episode_return_mean"),
                               3 * result.column("reward_mean"), rtol=1e-6)
    assert result.expected_reward() > 0  # the game core travels with the env


@pytest.mark.parametrize("kwargs", [{"n": 3}, {"n": 2, "sigma": (1.0, 2.0)}])
def test_parallel_and_vector_adapters_give_the_same_rewards(kwargs):
    vector = make_env("DiffGame-v0", dict(kwargs), 4)
    parallel = make_env(PARALLEL, dict(kwargs), 4)
    n = kwargs["n"]
    assert vector.agents == parallel.agents
    assert vector.n_agents == parallel.n_agents == n
    vector.reset(seed=0)
    parallel.reset(seed=0)
    generator = np.random.default_rng(0)
    for _ in range(3):
        # include out-of-bounds actions: both clip them onto [0, 7]
        actions = [generator.uniform(-2, 9, size=(4, 1)) for _ in range(n)]
        a, b = vector.step(actions), parallel.step(actions)
        np.testing.assert_allclose(a.reward, b.reward, rtol=1e-6)
        np.testing.assert_array_equal(a.terminated, b.terminated)
        np.testing.assert_array_equal(a.truncated, b.truncated)
        joint = np.clip(np.concatenate(actions, axis=1), 0, 7)
        np.testing.assert_allclose(a.reward, vector.game.team_reward(joint), rtol=1e-12)
    vector.close()
    parallel.close()


# ---------------------------------------------------------------------------------------
# MLP policies and critic
# ---------------------------------------------------------------------------------------
def test_mlp_policies_and_critic_train_and_change_parameters(tmp_path):
    config = TrainConfig(env_kwargs={"n": 2, "episode_length": 2}, num_envs=15, batch_size=30,
                         iterations=4, seed=0, policy_hidden=(8,), critic_hidden=(8,),
                         run_dir=str(tmp_path / "run"))
    torch.manual_seed(123)  # module initialisation draws from torch's global generator
    parts = build_parts(config)
    start_policies = [p.flat_parameters() for p in parts.policies]
    start_critic = {k: v.clone() for k, v in parts.critic.state_dict().items()}
    parts.env.close()
    torch.manual_seed(123)
    result = marl_tr.train(config)
    for policy, start in zip(result.policies, start_policies):
        assert policy.mean_net is not None
        now = policy.flat_parameters()
        assert torch.isfinite(now).all()
        assert not torch.equal(now, start)
    assert sum(result.column(f"moved_{i}").sum() for i in range(2)) > 0
    critic = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["critic"]
    assert set(critic) == set(start_critic)
    assert all(torch.isfinite(v).all() for v in critic.values())
    assert any(not torch.equal(critic[k], start_critic[k]) for k in critic)
    assert np.isfinite(result.column("critic_loss")).all()
    with pytest.raises(ValueError, match="state-independent Gaussian"):
        result.final_means()


# ---------------------------------------------------------------------------------------
# categorical policies on a matrix game
# ---------------------------------------------------------------------------------------
DISCRETE = [name for name in DIVERGENCES.names() if DIVERGENCES.get(name).supports_discrete]


@pytest.mark.parametrize("divergence", DISCRETE)
def test_climbing_game_with_categorical_policies(divergence):
    smooth = DIVERGENCES.get(divergence).smooth_at_identity
    solver = "natural_gradient" if smooth else "primal_dual"
    result = marl_tr.train(env="ClimbingGame-v0", divergence=divergence, solver=solver,
                           iterations=8, seed=0, dtype="float64")
    for i, policy in enumerate(result.policies):
        assert type(policy).__name__ == "CategoricalPolicy"
        probs = np.stack([result.column(f"prob_{k}_{i}") for k in range(3)], axis=1)
        assert np.isfinite(probs).all() and (probs >= 0).all()
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=0, atol=1e-12)
        logits = policy.logits.detach()
        assert torch.isfinite(logits).all()
        assert not torch.equal(logits, torch.zeros(3, dtype=logits.dtype))  # it learned
    if divergence == "kl":  # every accepted step stays inside the KL ball
        for i in range(2):
            moved = result.column(f"moved_{i}") == 1
            assert (result.column(f"divergence_{i}")[moved] <= 0.1 + 1e-12).all()
