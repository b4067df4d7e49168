"""Action geometry declarations: MPE's moves and reading an env's action_embedding."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marl_tr_envs import MPE_MOVES, ActionGeometry, action_embeddings, make_parallel
from marl_tr_envs.action_geometry import find_action_geometry


class FakeMPE(ParallelEnv):
    """A PettingZoo-like stand-in for an MPE scenario with discrete moves; the speaker's
    actions are words, without geometry."""

    def __init__(self, declared=MPE_MOVES, actions: int = 5) -> None:
        self.metadata = {"name": "fake_mpe"}
        self.possible_agents = ["agent_0", "agent_1", "speaker"]
        self.agents = list(self.possible_agents)
        self.declared = declared
        self.actions = actions

    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(3 if agent == "speaker" else self.actions)

    def action_embedding(self, agent: str) -> np.ndarray | None:
        return None if agent == "speaker" else self.declared


class Holder:
    """A wrapper or adapter exposing the env under one attribute name."""

    def __init__(self, **attributes) -> None:
        self.__dict__.update(attributes)


def test_mpe_moves_follow_mpe2_action_order():
    # [no_action, move_left, move_right, move_down, move_up]: -x, +x, -y, +y displacements
    np.testing.assert_array_equal(MPE_MOVES, [[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])
    assert MPE_MOVES.dtype == np.float64 and not MPE_MOVES.flags.writeable
    left, right, up = MPE_MOVES[1], MPE_MOVES[2], MPE_MOVES[4]
    assert np.abs(left - right).sum() == 2.0 and np.linalg.norm(left - right) == 2.0
    assert np.abs(left - up).sum() == 2.0 and np.linalg.norm(left - up) == np.sqrt(2.0)


def test_reads_each_agents_declaration_from_a_pettingzoo_like_env():
    env = FakeMPE()
    assert isinstance(env, ActionGeometry)
    moves_0, moves_1, speaker = action_embeddings(env, ["agent_0", "agent_1", "speaker"])
    np.testing.assert_array_equal(moves_0, MPE_MOVES)
    np.testing.assert_array_equal(moves_1, MPE_MOVES)
    assert speaker is None
    moves_0[0, 0] = 7.0  # a copy: the declaration is untouched
    assert MPE_MOVES[0, 0] == 0.0 and moves_1[0, 0] == 0.0


@pytest.mark.parametrize("attribute", ["env", "unwrapped", "game"])
def test_finds_the_declaration_under_wrappers_and_game_attributes(attribute):
    env = FakeMPE()
    wrapped = Holder(**{attribute: env})
    assert find_action_geometry(wrapped) is env
    assert find_action_geometry(Holder(env=Holder(game=env))) is env
    np.testing.assert_array_equal(action_embeddings(wrapped, ["agent_1"])[0], MPE_MOVES)


def test_envs_without_a_declaration_give_none_per_agent():
    env = make_parallel("ClimbingGame-v0")
    assert find_action_geometry(env) is None
    assert action_embeddings(env, env.possible_agents) == [None, None]
    assert action_embeddings(Holder(env=None), ["a"]) == [None]
    cyclic = Holder()
    cyclic.unwrapped = cyclic  # Gymnasium's base env is its own unwrapped
    assert action_embeddings(cyclic, ["a"]) == [None]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (FakeMPE(actions=4), r"action_embedding\('agent_0'\) places 5 actions, but the agent's "
                             r"action space has 4"),
        (FakeMPE(declared=np.zeros(5)), r"action_embedding\('agent_0'\) must be a \[K, d\] "
                                        r"table, got shape \(5,\)"),
        (FakeMPE(declared=[[0.0, np.inf]] * 5), r"action_embedding\('agent_0'\) must be finite"),
        (FakeMPE(declared=[[0.0], [1.0, 2.0]]), r"action_embedding\('agent_0'\) must be a "
                                                r"\[K, d\] table of numbers"),
    ],
)
def test_bad_declarations_are_refused(env, message):
    with pytest.raises(ValueError, match=message):
        action_embeddings(env, ["agent_0"])
