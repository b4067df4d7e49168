"""Resolve a ``TrainConfig`` and build every part of a run, before any training work.

``resolve`` turns a user config (preset fields possibly unset) into a complete one and builds
the environment, the plug-ins and the policies; every error (unknown names, bad values, a
solver that cannot enforce the divergence, a policy that does not fit the action space)
surfaces here, before the first iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from marl_tr.config import LIBRARY_DEFAULTS, PRESET_FIELDS, TrainConfig
from marl_tr.critics import CRITICS, ActionCritic
from marl_tr.divergences import DIVERGENCES, Divergence, divergences_supporting
from marl_tr.policies import POLICIES, Policy
from marl_tr.presets import PRESETS
from marl_tr.radius import RADIUS_SCHEDULERS, RadiusScheduler
from marl_tr.solvers import SOLVERS, Solver
from marl_tr.training.critic import Critic
from marl_tr.training.env_adapters import MultiAgentVecEnv, make_env
from marl_tr_envs.action_geometry import action_embeddings

__all__ = ["RunParts", "build_parts", "resolve_config"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class RunParts:
    """Everything a run is made of (built from a resolved config)."""

    config: TrainConfig
    env: MultiAgentVecEnv
    policies: list[Policy]
    critic: Critic
    divergence: Divergence
    scheduler: RadiusScheduler
    solver: Solver
    dtype: torch.dtype
    action_critic: ActionCritic


def resolve_config(config: TrainConfig, n_agents: int,
                   action_kind: str = "continuous") -> TrainConfig:
    """Fill unset preset fields: user value > preset value > library default.

    ``action_kind`` (``"continuous"`` or ``"discrete"``) lets a preset fit its parts to the
    team's actions (e.g. W-MATRPO's eq. 31 bound is for Gaussians only).
    """
    values: dict[str, Any] = {}
    preset_settings = (PRESETS.build(config.preset).settings_for(n_agents, action_kind)
                       if config.preset else {})
    for name in PRESET_FIELDS:
        current = getattr(config, name)
        if current is None:
            current = preset_settings.get(name, LIBRARY_DEFAULTS[name])
        values[name] = current
    return config.replace(**values)


def _initial_policy(config: TrainConfig, env: MultiAgentVecEnv, space: spaces.Space) -> dict:
    """Initial mean/std: the config, else the env's suggestion, else the box centre / 0.5."""
    suggested = getattr(env.game, "initial_policy", None) or {}
    mean = config.init_mean
    if mean is None:
        mean = suggested.get("mean")
    if mean is None:
        low, high = np.asarray(space.low, float), np.asarray(space.high, float)
        finite = np.isfinite(low) & np.isfinite(high)
        mean = np.where(finite, 0.5 * (low + high), 0.0).tolist()
    std = config.init_std if config.init_std is not None else suggested.get("std", 0.5)
    return {"init_mean": mean, "init_std": std}


def init_generators(config: TrainConfig) -> list[torch.Generator]:
    """Per replica, the generator that initialises networks (replica ``r``: seed ``seed + r``)."""
    return [
        torch.Generator().manual_seed(
            int(np.random.SeedSequence([config.seed + r, 1]).generate_state(1)[0]))
        for r in range(config.replicas)
    ]


def build_policy(
    config: TrainConfig, env: MultiAgentVecEnv, agent: int,
    generators: list[torch.Generator] | None = None,
) -> Policy:
    """The policy of agent ``agent`` (``config.replicas`` replicas), chosen by
    ``config.policy`` and its action space."""
    space = env.action_spaces[agent]
    obs_dim = int(np.prod(env.observation_spaces[agent].shape))
    name = config.policy
    if name == "auto":
        name = "gaussian" if isinstance(space, spaces.Box) else "categorical"
    cls = POLICIES.get(name)
    if cls.action_kind == "continuous" and not isinstance(space, spaces.Box):
        raise ValueError(
            f"policy {config.policy!r} needs Box actions, but agent {env.agents[agent]!r} has "
            f"{space!r}"
        )
    if cls.action_kind == "discrete" and not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"policy {config.policy!r} needs Discrete actions, but agent "
            f"{env.agents[agent]!r} has {space!r}"
        )
    if isinstance(space, spaces.Box):
        kwargs = {
            "obs_dim": obs_dim, "act_dim": int(space.shape[0]), "hidden": config.policy_hidden,
            "std_param": config.std_param, "min_std": config.min_std,
            **_initial_policy(config, env, space),
        }
    else:
        kwargs = {"obs_dim": obs_dim, "num_actions": int(space.n),
                  "hidden": config.policy_hidden}
    kwargs.update(replicas=config.replicas, generators=generators)
    return POLICIES.instantiate(cls, kwargs, name)


def _check_replicable(config: TrainConfig, env: MultiAgentVecEnv) -> None:
    """Replicas with their own random agent orders need identical agents."""
    if config.replicas == 1 or config.agent_order != "random":
        return
    first = (env.observation_spaces[0], env.action_spaces[0])
    for agent, obs_space, act_space in zip(env.agents, env.observation_spaces,
                                           env.action_spaces):
        if (obs_space, act_space) != first:
            raise ValueError(
                f"replicas={config.replicas} with random agent orders needs agents with "
                f"identical spaces, but {agent!r} has {act_space!r} / {obs_space!r} and "
                f"{env.agents[0]!r} has {first[1]!r} / {first[0]!r}; use agent_order='fixed' "
                "(or 'simultaneous') or replicas=1"
            )


def build_parts(config: TrainConfig, env: MultiAgentVecEnv | None = None) -> RunParts:
    """Validate ``config``, build the env (unless given) and every plug-in; resolve presets.

    Raises:
        ValueError / UnknownNameError: any bad setting, before any training work.
    """
    config.validate()
    num_envs = config.num_envs or config.batch_size
    if env is None:  # replica r owns copies r*E .. r*E+E-1
        env = make_env(config.env, dict(config.env_kwargs), num_envs * config.replicas)
    elif env.num_envs != num_envs * config.replicas:
        raise ValueError(
            f"the given env has {env.num_envs} copies but the config asks for "
            f"{num_envs * config.replicas} ({config.replicas} replicas of {num_envs})"
        )
    try:
        discrete = all(isinstance(space, spaces.Discrete) for space in env.action_spaces)
        resolved = resolve_config(config, env.n_agents, "discrete" if discrete else "continuous")
        resolved.validate()
        _check_replicable(resolved, env)
        divergence = DIVERGENCES.build(resolved.divergence)
        if getattr(divergence, "uses_env_action_geometry", False):
            source = env.envs[0] if hasattr(env, "envs") else env  # a PettingZoo copy
            divergence.bind_action_geometry(action_embeddings(source, env.agents))
        scheduler = RADIUS_SCHEDULERS.build(resolved.radius)
        solver = SOLVERS.build(resolved.solver)
        solver.check_divergence(divergence)
        action_critic = CRITICS.build(resolved.critic)
        _check_critic(solver, action_critic, resolved)
        action_critic.check_env(env)
        scheduler.check_divergence(divergence)
        dtype = DTYPES[resolved.dtype]
        # network initialisation from each replica's seed, not torch's global stream
        generators = init_generators(resolved)
        with _default_dtype(dtype):
            policies = [build_policy(resolved, env, i, generators) for i in range(env.n_agents)]
            for policy in policies:
                kind = "continuous" if policy.action_kind == "continuous" else "discrete"
                if not getattr(divergence, f"supports_{kind}"):
                    raise ValueError(
                        f"divergence {divergence.spec()!r} does not support {kind} actions; "
                        f"it supports {divergence.supported_kinds()}; divergences that fit "
                        f"{kind} actions: {', '.join(divergences_supporting(kind))}"
                        + _hint(divergence)
                    )
            critic = Critic(
                env.state_dim, hidden=resolved.critic_hidden, lr=resolved.critic_lr,
                optimizer=resolved.critic_optimizer, epochs=resolved.critic_epochs,
                replicas=resolved.replicas, generators=generators,
            )
            action_critic.reset(env, resolved.replicas, resolved.seed, resolved.gamma, critic)
    except Exception:
        env.close()
        raise
    return RunParts(resolved, env, policies, critic, divergence, scheduler, solver, dtype,
                    action_critic)


def _check_critic(solver: Solver, critic: ActionCritic, config: TrainConfig) -> None:
    """A solver that scores actions not taken needs a critic with action values."""
    if solver.needs_action_values and not critic.action_values:
        raise ValueError(
            f"solver {config.solver!r} needs a critic with action values (Q); critic "
            f"{config.critic!r} has none; use critic='q' (learned, eq. 19) or critic='oracle_q' "
            "(the env's analytic reward, an oracle)"
        )


def _hint(divergence: Divergence) -> str:
    """A pointer to the exact W1 where the paper's eq. 31 bound was asked for discrete actions."""
    if divergence.registry_name == "w1_bound":
        return " (eq. 31 bounds W1 between Gaussians only; 'w1' is the exact W1)"
    return ""


class _default_dtype:
    """Context manager setting torch's default dtype (modules are created in it)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __enter__(self) -> None:
        self.previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc: object) -> None:
        torch.set_default_dtype(self.previous)
