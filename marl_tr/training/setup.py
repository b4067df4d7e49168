"""Resolve a ``TrainConfig`` and build every part of a run, before any training work.

``build_parts`` probes the env (one copy: its agents, action kind, and for
``profile="auto"`` whether it is one of the suite's one-shot games or its episodes end after
one step), resolves the config (user > preset > profile > library default, ``resolve_config``)
and builds the environment, the plug-ins, the policies and the critics; every error (unknown
names, bad values, a solver that cannot enforce the divergence, a policy that does not fit the
action space, agents that cannot share a policy) surfaces here, before the first iteration.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from marl_tr.config import LAYERED_FIELDS, LIBRARY_DEFAULTS, ConfigWarning, TrainConfig
from marl_tr.critics import CRITICS, ActionCritic
from marl_tr.divergences import DIVERGENCES, Divergence, divergences_supporting
from marl_tr.policies import POLICIES, Policy
from marl_tr.presets import PRESETS
from marl_tr.profiles import AUTO, auto_profile, profile_values
from marl_tr.radius import RADIUS_SCHEDULERS, RadiusScheduler
from marl_tr.solvers import SOLVERS, Solver
from marl_tr.training.critic import Critic
from marl_tr.training.env_adapters import MultiAgentVecEnv, make_env
from marl_tr_envs.action_geometry import action_embeddings
from marl_tr_envs.game import CooperativeGame

__all__ = ["EnvProbe", "RunParts", "build_parts", "probe_env", "resolve_config",
           "resolve_with_sources"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class RunParts:
    """Everything a run is made of (built from a resolved config).

    Attributes:
        policies: per agent; agents that share parameters share one ``Policy`` object.
        critic: the (first) state-value critic; ``critics`` holds every head (one per agent
            for a per-agent critic).
        groups: the update positions: agents updated together as one policy (singletons
            without parameter sharing).
        eval_env: the env copies of evaluation episodes (``None`` without evaluation).
        env_factory: the factory callable behind a ``"<callable ...>"`` env label.
        sources: where each layered field's value came from (user, preset, profile,
            default).
    """

    config: TrainConfig
    env: MultiAgentVecEnv
    policies: list[Policy]
    critic: Critic
    divergence: Divergence
    scheduler: RadiusScheduler
    solver: Solver
    dtype: torch.dtype
    action_critic: ActionCritic
    critics: list[Critic] = field(default_factory=list)
    groups: list[tuple[int, ...]] = field(default_factory=list)
    eval_env: MultiAgentVecEnv | None = None
    env_factory: Callable[..., Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        """Close the env copies (training and evaluation)."""
        try:
            self.env.close()
        finally:
            if self.eval_env is not None:
                self.eval_env.close()


@dataclass(frozen=True)
class EnvProbe:
    """What one copy of an env tells before the run is resolved.

    Attributes:
        n_agents: the team size.
        action_kind: ``"discrete"`` if every agent's actions are Discrete, else
            ``"continuous"``.
        one_shot_core: the env has one of the suite's one-shot game cores.
        first_step_ends: its episodes ended after their first step (from ``reset(seed=0)``
            and a neutral joint action; ``False`` when not stepped).
        profile: what ``profile="auto"`` means for it.
    """

    n_agents: int
    action_kind: str
    one_shot_core: bool
    first_step_ends: bool

    @property
    def profile(self) -> str:
        return auto_profile(self.one_shot_core, self.first_step_ends)


def _neutral_action(space: spaces.Space, copies: int) -> np.ndarray:
    if isinstance(space, spaces.Discrete):
        return np.zeros(copies, dtype=np.int64)
    zero = np.clip(np.zeros(space.shape), space.low, space.high)
    return np.broadcast_to(zero, (copies, *space.shape)).copy()


def probe_env(env: MultiAgentVecEnv) -> EnvProbe:
    """Probe ``env`` (resets and, unless it has a one-shot core, steps it once)."""
    discrete = all(isinstance(space, spaces.Discrete) for space in env.action_spaces)
    one_shot = isinstance(env.game, CooperativeGame)
    ends = False
    if not one_shot:
        env.reset(seed=0)
        env.validate_rewards = False  # a bad reward is the run's to report, not the probe's
        try:
            step = env.step([_neutral_action(s, env.num_envs) for s in env.action_spaces])
        finally:
            env.validate_rewards = True
        ends = bool((step.terminated | step.truncated).all())
    return EnvProbe(env.n_agents, "discrete" if discrete else "continuous", one_shot, ends)


def resolve_with_sources(config: TrainConfig, n_agents: int, action_kind: str = "continuous",
                         auto: str = "one_step") -> tuple[TrainConfig, dict[str, str]]:
    """``resolve_config`` and, per layered field, where its value came from: ``"user"``,
    ``"preset"``, ``"profile"`` or ``"default"`` (``num_envs`` left unset everywhere is
    ``batch_size``: ``"default"``)."""
    profile = auto if config.profile == AUTO else config.profile
    profiled = profile_values(profile)
    preset_settings = (PRESETS.build(config.preset).settings_for(n_agents, action_kind,
                                                                   profile)
                       if config.preset else {})
    values: dict[str, Any] = {"profile": profile}
    sources: dict[str, str] = {}
    for name in LAYERED_FIELDS:
        current, source = getattr(config, name), "user"
        if current is None:
            if name in preset_settings:
                current, source = preset_settings[name], "preset"
            elif name in profiled:
                current, source = profiled[name], "profile"
            else:
                current, source = LIBRARY_DEFAULTS.get(name), "default"
        values[name] = current
        sources[name] = source
    if values["num_envs"] is None:
        values["num_envs"] = values["batch_size"]
    return config.replace(**values), sources


def resolve_config(config: TrainConfig, n_agents: int, action_kind: str = "continuous",
                   auto: str = "one_step") -> TrainConfig:
    """Fill unset fields: user value > preset value > profile value > library default.

    ``action_kind`` (``"continuous"`` or ``"discrete"``) lets a preset fit its parts to the
    team's actions (e.g. W-MATRPO's eq. 31 bound is for Gaussians only); ``auto`` is the
    profile ``profile="auto"`` stands for (``probe_env(env).profile``). The resolved config
    names its profile.
    """
    return resolve_with_sources(config, n_agents, action_kind, auto)[0]


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
    generators: list[torch.Generator] | None = None, extra_inputs: int = 0,
) -> Policy:
    """The policy of agent ``agent`` (``config.replicas`` replicas), chosen by
    ``config.policy`` and its action space; ``extra_inputs`` more inputs after the
    observation (a shared policy's agent id)."""
    space = env.action_spaces[agent]
    obs_dim = int(np.prod(env.observation_spaces[agent].shape)) + extra_inputs
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


def _check_shareable(env: MultiAgentVecEnv) -> None:
    """Agents that share one policy need identical observation and action spaces."""
    first = (env.observation_spaces[0], env.action_spaces[0])
    for agent, obs_space, act_space in zip(env.agents, env.observation_spaces,
                                           env.action_spaces):
        if (obs_space, act_space) != first:
            raise ValueError(
                f"share_parameters=True needs agents with identical spaces (one policy for "
                f"all), but {agent!r} has {act_space!r} / {obs_space!r} and {env.agents[0]!r} "
                f"has {first[1]!r} / {first[0]!r}; use share_parameters=False"
            )


def _check_batch_layout(resolved: TrainConfig, sources: dict[str, str]) -> None:
    if resolved.batch_size % resolved.num_envs:
        where = ", ".join(f"{name} from the {sources[name]}" for name in ("batch_size", "num_envs")
                          if sources[name] in ("preset", "profile"))
        raise ValueError(
            f"batch_size ({resolved.batch_size}) must be a multiple of num_envs "
            f"({resolved.num_envs})" + (f" ({where} {resolved.profile!r})" if where else "")
        )


def _warn_state_independent(resolved: TrainConfig, probe: EnvProbe) -> None:
    if probe.profile == "multi_step" and resolved.policy_hidden == ():
        warnings.warn(
            f"policy_hidden=() gives a state-independent policy, but env {resolved.env!r} has "
            "multi-step episodes whose observations vary: the policy cannot react to them; "
            "set policy_hidden (the multi_step profile's default is (64, 64))",
            ConfigWarning, stacklevel=3)


def build_parts(config: TrainConfig, env: MultiAgentVecEnv | None = None,
                env_factory: Callable[..., Any] | None = None) -> RunParts:
    """Validate ``config``, build the env (unless given) and every plug-in; resolve presets
    and profiles.

    Args:
        config: the (user) config.
        env: an env to use instead of building one (its copies must fit the config).
        env_factory: the factory callable behind ``config.env`` when that is its
            ``"<callable ...>"`` label (``marl_tr.train(env=callable)``).

    Raises:
        ValueError / UnknownNameError: any bad setting, before any training work.
    """
    config.validate()
    kwargs = dict(config.env_kwargs)
    if env is None:
        probe_copy = make_env(config.env, kwargs, 1, factory=env_factory)
        try:
            probe = probe_env(probe_copy)
        finally:
            probe_copy.close()
    else:
        probe = probe_env(env)
    resolved, sources = resolve_with_sources(config, probe.n_agents, probe.action_kind,
                                             probe.profile)
    _check_batch_layout(resolved, sources)
    resolved.validate()
    num_envs = resolved.num_envs
    if env is None:  # replica r owns copies r*E .. r*E+E-1
        env = make_env(resolved.env, kwargs, num_envs * resolved.replicas,
                       resolved.vectorization, env_factory)
    elif env.num_envs != num_envs * resolved.replicas:
        raise ValueError(
            f"the given env has {env.num_envs} copies but the config asks for "
            f"{num_envs * resolved.replicas} ({resolved.replicas} replicas of {num_envs})"
        )
    eval_env = None
    try:
        _check_replicable(resolved, env)
        if resolved.share_parameters:
            _check_shareable(env)
        _warn_state_independent(resolved, probe)
        divergence = DIVERGENCES.build(resolved.divergence)
        if getattr(divergence, "uses_env_action_geometry", False):
            source = env.envs[0] if hasattr(env, "envs") else env  # a PettingZoo copy
            divergence.bind_action_geometry(action_embeddings(source, env.agents))
        scheduler = RADIUS_SCHEDULERS.build(resolved.radius)
        solver = SOLVERS.build(resolved.solver)
        solver.check_divergence(divergence)
        action_critic = CRITICS.build(resolved.critic)
        _check_critic(solver, action_critic, resolved)
        if resolved.share_parameters and action_critic.action_values:
            raise ValueError(
                f"share_parameters=True updates all agents as one policy, but critic "
                f"{resolved.critic!r} scores one agent's actions at a time; use critic='v' "
                "(or 'v_local') with shared parameters")
        action_critic.check_env(env)
        scheduler.check_divergence(divergence)
        dtype = DTYPES[resolved.dtype]
        # network initialisation from each replica's seed, not torch's global stream
        generators = init_generators(resolved)
        n = env.n_agents
        groups = [tuple(range(n))] if resolved.share_parameters else [(i,) for i in range(n)]
        with _default_dtype(dtype):
            if resolved.share_parameters:
                shared = build_policy(resolved, env, 0, generators, extra_inputs=n)
                policies = [shared] * n
            else:
                policies = [build_policy(resolved, env, i, generators) for i in range(n)]
            for policy in policies:
                kind = "continuous" if policy.action_kind == "continuous" else "discrete"
                if not getattr(divergence, f"supports_{kind}"):
                    raise ValueError(
                        f"divergence {divergence.spec()!r} does not support {kind} actions; "
                        f"it supports {divergence.supported_kinds()}; divergences that fit "
                        f"{kind} actions: {', '.join(divergences_supporting(kind))}"
                        + _hint(divergence)
                    )
                divergence.check_options_fit(kind)
                # the divergence's own limits on this distribution (e.g. a ground cost
                # matrix for another number of actions), checked at a zero observation
                obs_dim = getattr(policy, "obs_dim", None)
                if obs_dim is not None:
                    with torch.no_grad():
                        divergence.check_supported(policy.distribution(
                            torch.zeros(policy.replicas, obs_dim)))
            critics = _build_critics(resolved, env, action_critic, generators)
            action_critic.reset(env, resolved.replicas, resolved.seed, resolved.gamma,
                                critics[0])
        if resolved.eval_interval:
            eval_env = make_env(resolved.env, kwargs, resolved.eval_episodes * resolved.replicas,
                                resolved.vectorization, env_factory)
    except Exception:
        env.close()
        if eval_env is not None:
            eval_env.close()
        raise
    return RunParts(resolved, env, policies, critics[0], divergence, scheduler, solver, dtype,
                    action_critic, critics=critics, groups=groups, eval_env=eval_env,
                    env_factory=env_factory, sources=sources)


def _build_critics(config: TrainConfig, env: MultiAgentVecEnv, action_critic: ActionCritic,
                   generators: list[torch.Generator]) -> list[Critic]:
    """One centralised critic on the state, or (``action_critic.per_agent``) one per agent on
    its observation (plus the agent id with shared parameters)."""
    def critic(inputs: int) -> Critic:
        return Critic(inputs, hidden=config.critic_hidden, lr=config.critic_lr,
                      optimizer=config.critic_optimizer, epochs=config.critic_epochs,
                      replicas=config.replicas, generators=generators)

    if not getattr(action_critic, "per_agent", False):
        return [critic(env.state_dim)]
    ids = env.n_agents if config.share_parameters else 0
    return [critic(int(np.prod(space.shape)) + ids) for space in env.observation_spaces]


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
