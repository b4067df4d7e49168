"""``Q`` from the env's analytic core: an ORACLE critic (registered as ``oracle_q``).

In a one-step cooperative game (``marl_tr_envs.game.CooperativeGame``: the differential game,
the matrix games) every episode is one joint action, so ``Q(s, a) = E[r | a]``, which the
game's core computes exactly (``game.reward(a, clip=True)``, the clipped action the env
applies). No learning, no error: runs with it isolate what the update rule does from what a
learned critic gets wrong. Results obtained with it are labelled as oracle runs.

The suite's shells may repeat the one-shot game ``episode_length`` times per episode; a play's
reward still depends on that play's joint action alone, so ``Q(s, a) = r(a) + c(s)`` with a
per-state constant ``c(s)`` (the discounted future, the same for every action), which the
exact dual ignores (a constant per sample moves no mass).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.critics.base import CRITICS, ActionCritic

__all__ = ["OracleQ"]


@CRITICS.register("oracle_q", aliases=("oracle",))
class OracleQ(ActionCritic):
    """``Q(s, a) = r(a)`` from a one-step game's analytic reward (an oracle, not learned)."""

    action_values = True
    oracle = True

    def check_env(self, env: Any) -> None:
        game = getattr(env, "game", None)
        if game is None or not callable(getattr(game, "reward", None)):
            raise ValueError(
                "critic 'oracle_q' reads Q from the env's analytic core (a one-step game such "
                f"as DiffGame-v0), but this env ({type(env).__name__}) has none; use critic 'q' "
                "(learned, eq. 19)"
            )

    def reset(self, env: Any, replicas: int, seed: int, gamma: float, value_critic: Any) -> None:
        self.game = env.game

    def q_values(self, states: Tensor, joint: Sequence[Tensor]) -> Tensor:
        rows = states.shape[0]
        actions = np.concatenate([a.detach().reshape(rows, -1).double().numpy() for a in joint],
                                 axis=1)
        if all(not a.is_floating_point() for a in joint):
            actions = actions.astype(np.int64)
        reward = self.game.reward(actions, clip=True)
        return torch.as_tensor(np.asarray(reward), dtype=states.dtype)
