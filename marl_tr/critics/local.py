"""Per-agent critics on local observations (IPPO), registered as critic ``v_local``."""

from __future__ import annotations

from typing import Any, ClassVar

from marl_tr.critics.base import CRITICS, ActionCritic

__all__ = ["LocalValues"]


@CRITICS.register("v_local", aliases=("v_per_agent",))
class LocalValues(ActionCritic):
    """One ``V_i(o_i)`` per agent on that agent's own observation, trained on its own reward
    where the env gives per-agent rewards (PettingZoo envs), else on the team reward; agent
    ``i``'s update uses its own advantage (IPPO, de Witt et al. 2020). No action values.

    The loop builds the networks (``critic_hidden``, ``critic_lr``, ... as for ``v``); with
    ``share_parameters`` each agent's observation carries the agent's one-hot id.
    """

    per_agent: ClassVar[bool] = True

    def check_env(self, env: Any) -> None:
        if env.n_agents < 1:  # pragma: no cover - every adapter has agents
            raise ValueError("critic 'v_local' needs at least one agent")
