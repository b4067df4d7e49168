"""Critics with action values: the learned Q (eq. 19) against a known reward, the oracle
against the game's closed form, and ``ActionValues`` against direct evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr.critics import CRITICS, ActionValues, JointActionEncoder, LearnedQ
from marl_tr.training.critic import Critic
from marl_tr.training.rollout import Batch
from marl_tr.training.setup import build_parts
from marl_tr_envs.diff_game.core import DiffGame


def one_step_batch(actions: list[torch.Tensor], rewards: torch.Tensor, replicas: int) -> Batch:
    """A batch of a one-step game with a constant zero state: ``R`` replicas of ``B`` rows."""
    rows = rewards.numel()
    b = rows // replicas
    states = torch.zeros(replicas, 1, b, 1)
    return Batch(
        obs=[torch.zeros(rows, 1)] * len(actions), actions=actions,
        log_probs=[torch.zeros(rows)] * len(actions), states=states, final_states=states,
        rewards=rewards.view(replicas, 1, b), terminated=torch.ones(replicas, 1, b, dtype=bool),
        truncated=torch.zeros(replicas, 1, b, dtype=bool), episode_returns=[[]] * replicas,
    )


def test_learned_q_recovers_the_differential_game_reward():
    """Eq. 19 on a one-step game is regression onto the reward: trained on uniform joint
    actions of the 2-agent differential game (peaks 0.41 and 0.21), Q matches r(a) on fresh
    points with a mean absolute error below 0.02 (5% of the higher peak)."""
    torch.manual_seed(0)
    game = DiffGame(n=2)
    parts = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 2}, critic="q:updates=50,buffer=6000"))
    critic: LearnedQ = parts.action_critic
    generator = torch.Generator().manual_seed(1)
    for _ in range(150):
        joint = 7.0 * torch.rand(200, 2, generator=generator)
        reward = torch.as_tensor(game.reward(joint.numpy(), clip=True), dtype=torch.float32)
        critic.fit(one_step_batch([joint[:, :1], joint[:, 1:]], reward, 1), parts.critic)
    test = 7.0 * torch.rand(500, 2, generator=generator)
    q = critic.q_values(torch.zeros(500, 1), [test[:, :1], test[:, 1:]])
    truth = torch.as_tensor(game.reward(test.numpy(), clip=True), dtype=torch.float32)
    assert (q - truth).abs().mean() < 0.02
    # the peaks are where they are: Q ranks (1, 1) above (5, 5) above (3, 3)
    peaks = torch.tensor([[1.0, 1.0], [5.0, 5.0], [3.0, 3.0]])
    values = critic.q_values(torch.zeros(3, 1), [peaks[:, :1], peaks[:, 1:]])
    assert values[0] > values[1] > values[2]
    parts.env.close()


def test_replicas_of_the_learned_q_never_mix():
    """Two replicas fit on different rewards equal two one-replica critics fit alone."""
    env_parts = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 2}, replicas=2, critic="q"))
    stacked = env_parts.action_critic
    singles = []
    for r in range(2):
        one = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 2}, seed=r, critic="q"))
        singles.append(one)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        joint = 7.0 * torch.rand(2, 30, 2, generator=generator)
        reward = torch.stack([joint[0].sum(1), -joint[1, :, 0]])
        flat = joint.reshape(60, 2)
        stacked.fit(one_step_batch([flat[:, :1], flat[:, 1:]], reward.reshape(-1), 2),
                    env_parts.critic)
        for r, one in enumerate(singles):
            one.action_critic.fit(one_step_batch([joint[r, :, :1], joint[r, :, 1:]], reward[r],
                                                 1), one.critic)
    probe = 7.0 * torch.rand(2, 10, 2, generator=generator)
    both = stacked.q_values(torch.zeros(20, 1), [probe.reshape(20, 2)[:, :1],
                                                 probe.reshape(20, 2)[:, 1:]])
    for r, one in enumerate(singles):
        alone = one.action_critic.q_values(torch.zeros(10, 1), [probe[r, :, :1], probe[r, :, 1:]])
        torch.testing.assert_close(both[r * 10:(r + 1) * 10], alone, rtol=1e-5, atol=1e-6)
        one.env.close()
    env_parts.env.close()


def test_oracle_q_is_the_games_clipped_reward():
    parts = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 3}, critic="oracle_q"))
    joint = torch.tensor([[1.0, 1.0, 1.0], [5.0, 5.0, 5.0], [-2.0, 9.0, 1.0]])
    q = parts.action_critic.q_values(torch.zeros(3, 1), [joint[:, i:i + 1] for i in range(3)])
    game = DiffGame(n=3)
    np.testing.assert_allclose(q.numpy(), game.reward(joint.numpy(), clip=True), rtol=1e-6)
    np.testing.assert_allclose(q[0].item(), 0.4127, atol=1e-4)  # r(1, 1, 1): the higher peak
    parts.env.close()


def test_oracle_q_on_a_matrix_game_reads_the_payoff():
    parts = build_parts(marl_tr.TrainConfig(env="ClimbingGame-v0", critic="oracle_q"))
    joint = [torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])]
    q = parts.action_critic.q_values(torch.zeros(3, parts.env.state_dim), joint)
    payoff = parts.env.game.payoff
    np.testing.assert_allclose(q.numpy(), [payoff[0, 0], payoff[1, 1], payoff[2, 2]])
    parts.env.close()


def test_action_values_substitute_only_the_updated_agents_action():
    """values[row, k] = factor * (Q(s, a'_k, a_-i) - V(s)), checked against the game's reward
    with the candidate put in agent i's place by hand; replica 1 updates another agent."""
    parts = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 3}, critic="oracle_q"))
    game = DiffGame(n=3)
    rows = 4  # 2 replicas x 2 samples
    joint = [torch.tensor([[1.0], [2.0], [3.0], [4.0]]) * (i + 1) / 3 for i in range(3)]
    baseline = torch.tensor([0.1, 0.2, 0.3, 0.4])
    factor = torch.tensor([1.0, 2.0, 0.5, 1.5])
    agents = np.array([0, 2])
    values = ActionValues(parts.action_critic, torch.zeros(rows, 1), joint, agents, baseline,
                          factor, parts.env.action_spaces[0])
    candidates = torch.tensor([[[0.5], [1.0]], [[5.0], [6.5]], [[1.2], [0.0]], [[7.0], [3.3]]])
    got = values(candidates)
    for row in range(rows):
        agent = agents[row // 2]
        for k in range(2):
            point = np.array([float(joint[i][row, 0]) for i in range(3)])
            point[agent] = float(candidates[row, k, 0])
            want = float(factor[row]) * (game.reward(point, clip=True) - float(baseline[row]))
            np.testing.assert_allclose(got[row, k].item(), want, rtol=1e-5)
    parts.env.close()


def test_joint_action_encoder_scales_boxes_and_one_hots_discrete():
    from gymnasium import spaces

    encoder = JointActionEncoder([spaces.Box(0.0, 7.0, (1,)), spaces.Discrete(3)])
    assert encoder.size == 4
    out = encoder.encode([torch.tensor([[0.0], [3.5], [9.0]]), torch.tensor([0, 2, 1])])
    torch.testing.assert_close(out, torch.tensor([[-1.0, 1, 0, 0], [0.0, 0, 0, 1],
                                                  [1.0, 0, 1, 0]]))


def test_critic_registry_conformance():
    for name in CRITICS.names():
        critic = CRITICS.build(name)
        assert CRITICS.build(critic.spec()) == critic
    assert CRITICS.build("q:hidden=(8,),updates=2").hidden == (8,)


@pytest.mark.parametrize(("config", "pattern"), [
    ({"solver": "ot_dual", "divergence": "w1"},
     r"solver 'ot_dual' needs a critic with action values \(Q\); critic 'v' has none; use "
     r"critic='q'"),
    ({"solver": "ot_dual", "divergence": "kl", "critic": "q"},
     r"solver 'ot_dual' prices moves .*'kl.*has none; divergences it accepts: w1"),
    ({"critic": "q:updates=-1"}, r"updates must be"),
    ({"critic": "quantile"}, r"Unknown critic 'quantile'"),
])
def test_bad_critic_pairings_are_refused_before_any_work(config, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_parts(marl_tr.TrainConfig(**config))


def test_oracle_q_refuses_an_env_without_an_analytic_core():
    class PlainEnv:
        game = None

    with pytest.raises(ValueError, match=r"critic 'oracle_q' reads Q from the env's analytic "
                                         r"core .* has none; use critic 'q'"):
        CRITICS.build("oracle_q").check_env(PlainEnv())


def test_value_critic_is_unchanged_by_a_q_critic():
    """The Q critic sits beside V: the V critic's fit is the same function whichever critic
    runs (the V critic class is the loop's own, untouched)."""
    parts = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 2}, critic="q"))
    assert isinstance(parts.critic, Critic)
    parts.env.close()
