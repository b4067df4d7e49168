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


@pytest.mark.parametrize("agents", [[1, 1], [2, 2], [0, 2], [2, 0]])
def test_learned_q_candidate_values_equal_the_generic_substitution(agents):
    """The learned Q's one-pass candidate values (the batch's inputs made once, the updated
    agent's columns replaced) equal, exactly, the generic path that rebuilds every joint
    action and calls ``q_values``; also when replicas update different agents (of one action
    space, as the loop gathers them), with a Discrete agent between them and candidates
    outside the box (clipped)."""
    from gymnasium import spaces

    from marl_tr.critics import ActionCritic

    action_spaces = [spaces.Box(0.0, 7.0, (2,)), spaces.Discrete(3),
                     spaces.Box(-1.0, 1.0, (2,))]
    env = type("Env", (), {"action_spaces": action_spaces, "state_dim": 2})()
    critic = LearnedQ(hidden=(8, 4))
    critic.reset(env, replicas=2, seed=3, gamma=0.9, value_critic=Critic(2, replicas=2))
    g = torch.Generator().manual_seed(0)
    rows = 2 * 5
    states = torch.randn(rows, 2, generator=g)
    joint = [7 * torch.rand(rows, 2, generator=g), torch.randint(3, (rows,), generator=g),
             torch.rand(rows, 2, generator=g) * 2 - 1]
    agents = np.array(agents)
    if agents[0] == 1:
        candidates = torch.randint(3, (rows, 3), generator=g)
    else:
        candidates = 5 * torch.randn(rows, 4, 2, generator=g)
    fast = critic.candidate_q(critic.batch_features(states, joint), agents, candidates)
    slow = ActionCritic.candidate_q(critic, ActionCritic.batch_features(critic, states, joint),
                                    agents, candidates)
    assert fast.shape == candidates.shape[:2]
    torch.testing.assert_close(fast, slow, rtol=0, atol=0)
    # and the generic path is Q at the joint action with the candidate in place, by hand
    row, k = 7, 1
    joint_here = [a[row:row + 1].clone() for a in joint]
    joint_here[agents[1]] = candidates[row, k].unsqueeze(0).to(joint_here[agents[1]].dtype)
    direct = critic._forward(states[row:row + 1].unsqueeze(0).expand(2, -1, -1),
                             critic.encoder.encode(joint_here).unsqueeze(0).expand(2, -1, -1))
    torch.testing.assert_close(fast[row, k], direct[1, 0], rtol=1e-6, atol=1e-7)


def test_the_replay_buffer_keeps_the_newest_transitions_and_fits_a_large_batch():
    """A batch larger than an explicit buffer leaves its last rows, in the ring's order as if
    written one by one; the default buffer holds 3000 transitions, or one batch if larger
    (a multi-step env's 4,000: it used to fail on the first fit)."""
    env_parts = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 2}, critic="q:buffer=50"))
    critic = env_parts.action_critic
    rewards = torch.arange(30, dtype=torch.float32)
    actions = [torch.zeros(30, 1), torch.zeros(30, 1)]
    critic._store(one_step_batch(actions, rewards, 1))  # rows 0..29 at 0..29
    critic._store(one_step_batch(actions, rewards + 100, 1))  # 100..119 at 30..49, 120.. at 0..
    stored = critic.data["rewards"][0]
    assert critic.size == 50 and critic.position == 10
    assert stored[:10].tolist() == [120.0 + i for i in range(10)]
    assert stored[10:30].tolist() == [10.0 + i for i in range(20)]
    assert stored[30:].tolist() == [100.0 + i for i in range(20)]
    big = torch.arange(80, dtype=torch.float32)
    critic._store(one_step_batch([torch.zeros(80, 1)] * 2, big, 1))  # 80 rows into 50
    assert critic.size == 50 and critic.position == (10 + 80) % 50
    stored = critic.data["rewards"][0]
    assert sorted(stored.tolist()) == [30.0 + i for i in range(50)]  # the newest 50
    assert stored[(10 + 80 - 1) % 50].item() == 79.0  # the last written where the ring says

    default = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 2}, critic="q")).action_critic
    default._store(one_step_batch([torch.zeros(30, 1)] * 2, torch.zeros(30), 1))
    assert default.capacity == 3000
    large = build_parts(marl_tr.TrainConfig(env_kwargs={"n": 2}, critic="q")).action_critic
    large._store(one_step_batch([torch.zeros(4000, 1)] * 2, torch.zeros(4000), 1))
    assert large.capacity == 4000 and large.size == 4000
    assert large.fit(one_step_batch([torch.zeros(4000, 1)] * 2, torch.zeros(4000), 1),
                     env_parts.critic)


def test_the_exact_dual_trains_on_a_multi_step_env():
    """``wmatrpo-dual`` on MPE (4,000 transitions per iteration under the multi-step profile,
    more than the Q critic's 3000-transition default) runs, every step within its radius."""
    pytest.importorskip("mpe2")
    result = marl_tr.train(preset="wmatrpo-dual", env="simple_spread",
                           env_kwargs={"continuous_actions": True, "max_cycles": 10, "N": 2},
                           iterations=2, num_envs=4, batch_size=3200, eval_interval=0)
    rows = result.metrics
    assert len(rows) == 2 and all(np.isfinite(row["q_loss"]) for row in rows)
    ratios = [row[key] for row in rows for key in row if key.startswith("constraint_ratio_")]
    assert ratios and max(ratios) <= 1.0 + 1e-9


def test_joint_action_encoder_passes_an_unbounded_dimension_through():
    """A Box dimension without finite bounds is neither clipped nor scaled (and computing its
    constants raises no RuntimeWarning, which this suite turns into an error)."""
    from gymnasium import spaces

    box = spaces.Box(np.array([-np.inf, 0.0], dtype=np.float32),
                     np.array([np.inf, 2.0], dtype=np.float32))
    encoder = JointActionEncoder([box, spaces.Discrete(2)])
    encoded = encoder.encode([torch.tensor([[5.0, 2.0], [-40.0, 3.0]]), torch.tensor([1, 0])])
    torch.testing.assert_close(encoded, torch.tensor([[5.0, 1.0, 0.0, 1.0],
                                                      [-40.0, 1.0, 1.0, 0.0]]))
