"""MPE declares the geometry of its discrete moves: W1 under it, bound from the env."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mpe2")

import marl_tr
from marl_tr.training.setup import build_parts
from marl_tr_envs.action_geometry import MPE_MOVES
from marl_tr_envs.mpe import parallel_env


def test_moves_have_their_geometry_and_words_have_none():
    spread = parallel_env("simple_spread")
    assert all(np.array_equal(spread.action_embedding(a), MPE_MOVES)
               for a in spread.possible_agents)
    listener = parallel_env("simple_speaker_listener")
    assert listener.action_embedding("speaker_0") is None  # words, not moves
    assert np.array_equal(listener.action_embedding("listener_0"), MPE_MOVES)


def test_w1_under_the_moves_is_bound_from_the_env_and_held_at_the_radius():
    """`w1:embedding=env,ground=l2`: left -> right costs 2, left -> up sqrt(2); a short run
    with the exact-radius solver keeps every step within its radius."""
    settings = dict(env="simple_spread", env_kwargs={"N": 2, "max_cycles": 5}, num_envs=2,
                    batch_size=20, divergence="w1:embedding=env,ground=l2",
                    solver="exact_radius", radius="fixed:delta=0.05", signal_level=None)
    parts = build_parts(marl_tr.TrainConfig(**settings))
    import torch

    left, right, up = torch.tensor([1]), torch.tensor([[2]]), torch.tensor([[4]])
    assert parts.divergence.ground_cost(left, right).item() == pytest.approx(2.0)
    assert parts.divergence.ground_cost(left, up).item() == pytest.approx(2 ** 0.5)
    parts.env.close()
    result = marl_tr.train(iterations=4, seed=0, **settings)
    ratios = np.array([[row[f"constraint_ratio_{i}"] for i in range(2)]
                       for row in result.metrics])
    moved = np.array([[row[f"moved_{i}"] for i in range(2)] for row in result.metrics])
    assert moved.sum() >= 1 and (ratios <= 1 + 1e-9).all()
