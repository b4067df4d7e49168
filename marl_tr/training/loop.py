"""The sequential multi-agent trust-region loop (Algorithm 1, generalised).

Each iteration, in each of ``R`` independent replicas (``R = 1`` for an ordinary run):

1. collect a batch with the current joint policy;
2. compute advantages with the critic (GAE), optionally normalised: one team advantage from
   the centralised ``V(s)``, or each agent's own from its ``V_i(o_i)`` (critic
   ``v_local``, IPPO);
3. ask the radius scheduler for ``delta_i`` (it sees a ``RadiusContext``);
4. draw the order of the update positions (a fresh random permutation, or fixed);
5. update the positions one at a time, agent ``i`` with ``M_i = A * prod_{k before i}
   pi_k_new(a_k) / pi_k_old(a_k)`` (eq. 15), through the solver (``agent_order=
   "simultaneous"`` drops the correction: every agent gets ``A``, as in MAPPO);
6. fit the critic; record each agent's radius, the divergence its step actually reached
   and its surrogate gain; every ``eval_interval`` iterations, play evaluation episodes.

An update position is an agent, or, with ``share_parameters``, a group of agents that share
one policy (BenchMARL's agent groups): the group's problem stacks its agents' samples (each
with the agent's one-hot id after its observation), its radius is the smallest of its
agents', and eq. 15's factor of a later position adds the log-ratios of all the group's
agents. Singleton groups are exactly the per-agent loop.

The loop knows nothing about which divergence, scheduler or solver it runs. Replicas are
stepped together for speed, with their own seeds, orders and random streams: replica ``r``
is the run with seed ``seed + r``. At update position ``k`` each replica updates its own
``k``-th agent; when those differ (identical agents, random orders) the loop gathers them
into one batched problem and writes the result back to each agent.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from marl_tr.critics import ActionValues
from marl_tr.evaluation import evaluate
from marl_tr.policies import Policy
from marl_tr.radius.base import PreviousSteps
from marl_tr.solvers.base import AgentProblem, StepResult
from marl_tr.training.critic import gae, normalize
from marl_tr.training.env_adapters import NonFiniteRewardError
from marl_tr.training.radius_context import LoopRadiusContext
from marl_tr.training.rollout import Batch, Collector
from marl_tr.training.setup import RunParts
from marl_tr.training.stuck import StuckAgents
from marl_tr.training.values import ValueFunction

__all__ = ["EVAL_COLUMNS", "SeededRestartWarning", "SequentialTrustRegion", "TrainingError",
           "eval_stream", "replica_streams", "restart_seeds"]

#: Metric columns of evaluation episodes (present in every row when ``eval_interval > 0``;
#: NaN in iterations without an evaluation).
EVAL_COLUMNS = ("eval_return_mean", "eval_return_team", "eval_length_mean")


class TrainingError(RuntimeError):
    """A run cannot continue (bad data from the env, a broken plug-in); names the iteration."""


class SeededRestartWarning(UserWarning):
    """A resumed run's env could not save its state: its episodes restart from seeded resets."""


def replica_streams(seed: int) -> tuple[torch.Generator, np.random.Generator, int]:
    """The random streams of the run with ``seed``: action sampling, agent order, env seed."""
    sampling, order, env = np.random.SeedSequence(seed).spawn(3)
    generator = torch.Generator().manual_seed(
        int(sampling.generate_state(1, np.uint64)[0] >> np.uint64(1))
    )
    return generator, np.random.default_rng(order), int(env.generate_state(1)[0])


def eval_stream(seed: int) -> np.random.Generator:
    """The evaluation stream of the run with ``seed``: the fourth child of
    ``SeedSequence(seed)`` (the first three are ``replica_streams``'; adding it changes
    none of them)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])


def restart_seeds(seed: int, replicas: int, iteration: int) -> list[int]:
    """Per replica, the reset seed of episodes restarted at ``iteration`` (a resume whose env
    could not save its state): drawn from replica ``r``'s env stream and the iteration, so a
    resume from the same checkpoint always restarts the same way."""
    return [int(np.random.SeedSequence([replica_streams(seed + r)[2], iteration])
                .generate_state(1)[0] >> np.uint32(1)) for r in range(replicas)]


def _stack_rows(tensors: list[Tensor], replicas: int) -> Tensor:
    """Several agents' ``[R*B, ...]`` tensors as one ``[R*m*B, ...]``, replica-major (in each
    replica: agent, then sample)."""
    if len(tensors) == 1:
        return tensors[0]
    grouped = [t.reshape(replicas, -1, *t.shape[1:]) for t in tensors]
    return torch.stack(grouped, 1).reshape(-1, *tensors[0].shape[1:])


def _gather_rows(per_agent: list[Tensor], agents: np.ndarray, replicas: int) -> Tensor:
    """Replica ``r``'s rows of agent ``agents[r]``'s tensor, for every ``r``: ``[R*B, ...]``."""
    first = per_agent[int(agents[0])]
    if all(per_agent[int(a)] is first for a in agents):
        return first
    stacked = torch.stack(per_agent)  # [n, R*B, ...]
    grouped = stacked.view(stacked.shape[0], replicas, -1, *stacked.shape[2:])
    picked = grouped[torch.from_numpy(agents), torch.arange(replicas)]
    return picked.reshape(-1, *stacked.shape[2:])


class SequentialTrustRegion:
    """One run (``R`` replicas) of the generic loop over already built parts.

    Args:
        parts: the resolved config, env, policies, critic and plug-ins (see ``build_parts``).
    """

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.config = config = parts.config
        self.env = parts.env
        self.policies = parts.policies
        self.critic = parts.critic
        self.divergence = parts.divergence
        self.scheduler = parts.scheduler
        self.solver = parts.solver
        self.action_critic = parts.action_critic
        self.n_agents = len(self.policies)
        self.replicas = config.replicas
        self.groups = parts.groups or [(i,) for i in range(self.n_agents)]
        self.group_policies = [self.policies[group[0]] for group in self.groups]
        self.per_agent_critic = bool(getattr(self.action_critic, "per_agent", False))
        self.values = ValueFunction(
            parts.critics or [parts.critic], per_agent=self.per_agent_critic,
            epochs=config.critic_epochs, minibatches=config.critic_minibatches or 1,
            value_norm=bool(config.value_norm), seed=config.seed)
        streams = [replica_streams(config.seed + r) for r in range(self.replicas)]
        self.torch_generators = [s[0] for s in streams]
        self.order_rngs = [s[1] for s in streams]
        env_seeds = [s[2] for s in streams]
        steps = config.batch_size // (config.num_envs or config.batch_size)
        self.collector = Collector(self.env, steps, parts.dtype, self.torch_generators,
                                   agent_ids=bool(config.share_parameters),
                                   final_obs=self.per_agent_critic)
        self.eval_env = parts.eval_env
        self.eval_interval = int(config.eval_interval or 0)
        self.eval_rngs = [eval_stream(config.seed + r) for r in range(self.replicas)]
        self.resumed_exactly: bool | None = None  # set by load_state_dict
        self.iteration = 0
        self.previous_params: list[Tensor] | None = None
        self.previous_steps: PreviousSteps | None = None
        self.scheduler.reset(self.n_agents)
        self.solver.reset(self.n_agents, self.replicas)
        self.collector.reset(env_seeds if self.replicas > 1 else env_seeds[0])
        self._slot: Policy | None = None
        self._rows = np.arange(self.replicas)
        self.stuck = StuckAgents(self.replicas, self.n_agents, self.solver.spec())
        # no part of this run differentiates by autograd: skip its bookkeeping entirely
        self.autograd_free = (
            all(p.autograd_free for p in self.policies) and self.values.autograd_free
            and self.divergence.autograd_free and self.solver.autograd_free
            and self.scheduler.autograd_free and self.action_critic.autograd_free
        )

    # -- one iteration -----------------------------------------------------------------------
    def collect(self) -> Batch:
        try:
            return self.collector.collect(self.policies)
        except NonFiniteRewardError as exc:
            raise TrainingError(f"iteration {self.iteration}: {exc}") from exc

    def advantages(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample advantages, normalised per replica if configured: ``[R*B]`` from a
        centralised critic, ``[n, R*B]`` (each agent's own) from per-agent critics
        (``v_local``); the critic's targets (``[R, T, E]``, ``[n, R, T, E]``) and the (first)
        critic's ``V`` per sample ``[R*B]``."""
        if self.values.plain:  # the centralised V(s) alone, exactly as ever
            with torch.no_grad():
                values = self.critic(batch.states)
                if bool(batch.terminated.all()):  # one-step games: nothing to bootstrap from
                    next_values = torch.zeros_like(values)
                else:
                    next_values = self.critic(batch.final_states)
            advantages, returns = gae(
                batch.rewards, values, next_values, batch.terminated, batch.truncated,
                self.config.gamma, self.config.gae_lambda,
            )
            per_replica = advantages.reshape(self.replicas, -1)
            if self.config.normalize_advantages:
                per_replica = normalize(per_replica)
            return per_replica.reshape(-1), returns, values.reshape(-1)
        values, next_values = self.values.values(batch)  # [H, R, T, E]
        advantages, returns = gae(
            self.values.rewards(batch), values, next_values, batch.terminated,
            batch.truncated, self.config.gamma, self.config.gae_lambda,
        )
        per_replica = advantages.reshape(self.values.heads, self.replicas, -1)
        if self.config.normalize_advantages:
            per_replica = normalize(per_replica)
        if self.values.heads == 1:
            return per_replica.reshape(-1), returns[0], values[0].reshape(-1)
        return per_replica.reshape(self.values.heads, -1), returns, values[0].reshape(-1)

    def _weights(self, advantages: Tensor, agents: np.ndarray) -> Tensor:
        """The advantage of replica ``r``'s agent ``agents[r]`` ``[R*B]``."""
        if advantages.dim() == 1:
            return advantages
        return _gather_rows(list(advantages), agents, self.replicas)

    def radii(self, batch: Batch, weights: Tensor) -> np.ndarray:
        """``delta`` per replica and agent ``[R, n]`` from the scheduler."""
        context = LoopRadiusContext(
            self.iteration, self.policies, self.previous_params, batch.obs, batch.actions,
            batch.log_probs, weights, self.previous_steps, self.divergence,
        )
        radii = np.asarray(self.scheduler.radii_batch(
            [context.for_replica(r) for r in range(self.replicas)]), dtype=np.float64)
        if radii.shape != (self.replicas, self.n_agents) or not (
            np.isfinite(radii).all() and (radii > 0).all()
        ):
            raise TrainingError(
                f"iteration {self.iteration}: radius scheduler {self.scheduler.spec()!r} returned "
                f"{radii!r}; expected {self.n_agents} finite values > 0 per replica"
            )
        return radii

    def agent_orders(self) -> np.ndarray:
        """Order of the update positions (agents, or groups of agents sharing a policy) per
        replica ``[R, G]``."""
        count = len(self.groups)
        if self.config.agent_order != "random":  # fixed, or simultaneous (order is moot)
            return np.tile(np.arange(count), (self.replicas, 1))
        return np.stack([rng.permutation(count) for rng in self.order_rngs])

    def update_position(
        self, agents: np.ndarray, batch: Batch, weights: Tensor, radii: np.ndarray,
        team_params: Tensor | None = None, action_values: ActionValues | None = None,
    ) -> tuple[StepResult, Tensor]:
        """Replica ``r`` updates agent ``agents[r]``; returns the result and the old
        log-probabilities of the updated agents ``[R*B]``.

        ``action_values`` scores this position's candidate actions (critics with action
        values only).

        With ``team_params`` (``[n, R, P]``, the agents' parameters stacked) each replica's
        agent is gathered into one policy of ``R`` replicas and the result written back into
        the stack (the caller writes the stack into the policies at the end); otherwise every
        replica updates the same agent, in place.
        """
        if team_params is None:
            policy = self.group_policies[int(agents[0])]
        else:
            index = (torch.from_numpy(agents), torch.from_numpy(self._rows))
            if self._slot is None:
                self._slot = copy.deepcopy(self.group_policies[0])
            policy = self._slot
            policy.set_flat_parameters(team_params[index])
        members = self.groups[int(agents[0])]
        if len(members) == 1:
            obs = _gather_rows(batch.obs, agents, self.replicas)
            actions = _gather_rows(batch.actions, agents, self.replicas)
            old_log_prob = _gather_rows(batch.log_probs, agents, self.replicas)
        else:  # every replica updates this one group (groups of several agents: one group)
            obs = _stack_rows([batch.obs[i] for i in members], self.replicas)
            actions = _stack_rows([batch.actions[i] for i in members], self.replicas)
            old_log_prob = _stack_rows([batch.log_probs[i] for i in members], self.replicas)
        problem = AgentProblem(
            policy, obs, actions, weights, old_log_prob, self.divergence, radii,
            action_values, self.torch_generators,
        )
        problem.signal_level = self.config.signal_level  # read by solvers' gradient_status
        result = self._guard_non_finite(problem, self.solver.step(problem, agents), agents)
        if team_params is not None:
            team_params[index] = policy.flat_parameters()
        return result, old_log_prob

    def _guard_non_finite(self, problem: AgentProblem, result: StepResult,
                          agents: np.ndarray) -> StepResult:
        """Undo, per replica, a step that left non-finite parameters (warning, no NaN)."""
        if not isinstance(result, StepResult):
            raise TrainingError(
                f"iteration {self.iteration}: solver {self.solver.spec()!r} returned "
                f"{type(result).__name__} from step(); a solver returns a StepResult (see "
                "AgentProblem.finish and AgentProblem.no_step)")
        params = problem.policy.flat_parameters()
        if math.isfinite(float(params.sum())):  # finite only if every parameter is
            return result
        broken = result.moved & ~torch.isfinite(params).all(1).numpy()
        if not broken.any():
            return result
        warnings.warn(
            f"iteration {self.iteration}: a step of agent(s) "
            f"{sorted({int(a) for a in agents[broken]})} produced non-finite parameters; "
            "step undone", RuntimeWarning, stacklevel=3,
        )
        reasons = [r or ("non-finite parameters" if b else "")
                   for r, b in zip(result.reasons, broken)]
        return problem.finish(result.moved & ~broken, params, result.divergence,
                              result.improvement, result.new_log_prob, reasons,
                              result.expected_improvement, result.info)

    def step(self) -> list[dict[str, Any]]:
        """Run one iteration; returns its metrics, one row per replica.

        Runs under ``torch.inference_mode`` when every part is autograd-free (the built-in
        closed-form parts of the paper's presets): the same numbers, less overhead.
        """
        with torch.inference_mode(self.autograd_free):
            return self._step()

    def _step(self) -> list[dict[str, Any]]:
        batch = self.collect()
        advantages, returns, state_values = self.advantages(batch)
        # the scheduler sees the team's advantage (the first agent's with per-agent critics)
        radii = self.radii(batch, advantages if advantages.dim() == 1 else advantages[0])
        orders = self.agent_orders()
        start_params = [policy.flat_parameters() for policy in self.policies]
        shape = (self.replicas, self.n_agents)
        record = {"moved": np.zeros(shape, dtype=bool), "divergence": np.zeros(shape),
                  "improvement": np.zeros(shape)}
        info = {key: np.full(shape, math.nan) for key in self.solver.info_keys}
        log_factor: Tensor | None = None  # sum of log-ratios of the agents updated so far
        sequential = self.config.agent_order != "simultaneous"
        limit = self.config.max_log_factor
        rows = self._rows
        gather = bool((orders != orders[:1]).any())  # replicas update different agents
        team_params = (torch.stack([p.flat_parameters() for p in self.group_policies])
                       if gather else None)  # [G, R, P]
        states = batch.states.reshape(-1, batch.states.shape[-1])
        q_features = None
        for position in range(len(self.groups)):
            agents = orders[:, position]  # the group (agent) replica r updates here
            members = self.groups[int(agents[0])]
            factor = None  # eq. 15's product of the updated teammates' ratios
            if log_factor is not None:
                clamped = log_factor if limit is None else log_factor.clamp(-limit, limit)
                factor = torch.exp(clamped)
            if len(members) == 1:
                own = self._weights(advantages, agents)
                weights = own if factor is None else own * factor  # eq. 15
                position_radii = radii[rows, agents]
            else:
                own = [self._weights(advantages, np.full(self.replicas, i)) for i in members]
                if factor is not None:
                    own = [w * factor for w in own]
                weights = _stack_rows(own, self.replicas)
                position_radii = radii[:, list(members)].min(1)
            action_values = None
            if self.action_critic.action_values:
                if q_features is None:  # made once: the teammates' batch actions are fixed
                    q_features = self.action_critic.batch_features(states, batch.actions)
                action_values = ActionValues(
                    self.action_critic, states, batch.actions, agents, state_values, factor,
                    self.env.action_spaces[int(agents[0])], features=q_features)
            result, old_log_prob = self.update_position(agents, batch, weights,
                                                        position_radii, team_params,
                                                        action_values=action_values)
            for member in members:
                targets = (rows, agents) if len(members) == 1 else (rows, member)
                self.stuck.record(*targets, result.reasons)
                record["moved"][targets] = result.moved
                record["divergence"][targets] = result.divergence
                record["improvement"][targets] = result.improvement
                for key in info:
                    if key in result.info:
                        info[key][targets] = result.info[key]
            if result.moved.any() and sequential:
                delta = result.new_log_prob - old_log_prob  # zero where not moved
                if len(members) > 1:  # the group's agents' log-ratios, summed per sample
                    delta = delta.view(self.replicas, len(members), -1).sum(1).reshape(-1)
                log_factor = delta if log_factor is None else log_factor + delta
        if team_params is not None:
            for policy, params in zip(self.group_policies, team_params):
                policy.set_flat_parameters(params)
        critic_losses = self.values.fit(batch, returns)
        q_losses = self.action_critic.fit(batch, self.critic)
        self.previous_params = start_params
        self.previous_steps = PreviousSteps(
            radius=radii, divergence=record["divergence"], improvement=record["improvement"],
        )
        metrics = self._metrics(batch, radii, orders, record, info, critic_losses, q_losses)
        if self.eval_interval:
            evaluated = (self.iteration + 1) % self.eval_interval == 0
            values = self.evaluate().means() if evaluated else {}
            for r, row in enumerate(metrics):
                for key in EVAL_COLUMNS:
                    row[key] = values[key][r] if evaluated else math.nan
        self.stuck.end_iteration(self.iteration)
        self.iteration += 1
        return metrics

    def evaluate(self) -> Any:
        """Play ``eval_episodes`` evaluation episodes per replica with the deterministic
        policy (``marl_tr.evaluation.evaluate``), from resets seeded by each replica's
        evaluation stream; returns the ``EvalResult``."""
        if self.eval_env is None:
            raise ValueError("this run has no evaluation env (eval_interval=0)")
        seeds = [int(rng.integers(2**31 - 1)) for rng in self.eval_rngs]
        return evaluate(self.policies, self.eval_env, seeds, replicas=self.replicas,
                        dtype=self.parts.dtype, agent_ids=bool(self.config.share_parameters))

    # -- metrics -----------------------------------------------------------------------------
    def _agent_keys(self, agent: int) -> dict[str, str]:
        """Column names of one agent's metrics (built once: this runs every iteration)."""
        cache = self.__dict__.setdefault("_key_cache", {})
        if agent not in cache:
            names = ["radius", "divergence", "constraint_ratio", "improvement", "moved",
                     *self.solver.info_keys, *self.policies[agent].summary()]
            cache[agent] = {name: f"{name}_{agent}" for name in names}
        return cache[agent]

    def _metrics(
        self, batch: Batch, radii: np.ndarray, orders: np.ndarray, record: dict[str, np.ndarray],
        info: dict[str, np.ndarray], critic_losses: list[float], q_losses: list[float],
    ) -> list[dict[str, Any]]:
        reward_means = batch.rewards.reshape(self.replicas, -1).mean(1).tolist()
        summaries = [policy.summary() for policy in self.policies]
        ratios = record["divergence"] / radii
        columns = {"radius": radii.tolist(), "divergence": record["divergence"].tolist(),
                   "constraint_ratio": ratios.tolist(),
                   "improvement": record["improvement"].tolist(),
                   "moved": record["moved"].astype(int).tolist(),
                   **{key: values.tolist() for key, values in info.items()}}
        rows = []
        env_steps = (self.iteration + 1) * self.config.batch_size
        for r in range(self.replicas):
            returns = batch.episode_returns[r]
            team = batch.episode_team_returns[r] if batch.episode_team_returns else []
            lengths = batch.episode_lengths[r] if batch.episode_lengths else []
            row: dict[str, Any] = {
                "iteration": self.iteration,
                "replica": r,
                "seed": self.config.seed + r,
                "reward_mean": reward_means[r],
                "episode_return_mean": sum(returns) / len(returns) if returns else math.nan,
                "critic_loss": critic_losses[r],
                **({"q_loss": q_losses[r]} if self.action_critic.action_values else {}),
                "order": ",".join(map(str, orders[r].tolist())),
            }
            for i in range(self.n_agents):
                keys = self._agent_keys(i)
                for name, values in columns.items():
                    row[keys[name]] = values[r][i]
                for name, values in summaries[i].items():
                    row[keys[name]] = values[r]
            row["env_steps"] = env_steps
            row["episode_return_team"] = sum(team) / len(team) if team else math.nan
            row["episode_length_mean"] = sum(lengths) / len(lengths) if lengths else math.nan
            row["episodes"] = len(returns)
            rows.append(row)
        return rows

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (env state where the env supports it)."""
        return {
            "iteration": self.iteration,
            "policies": [p.state_dict() for p in self.policies],
            "critic": self.critic.state_dict(),
            "critic_optimizer": self.critic.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "solver": self.solver.state_dict(),
            "action_critic": self.action_critic.state_dict(),
            "previous_params": self.previous_params,
            "previous_steps": self.previous_steps,
            "torch_generators": [g.get_state() for g in self.torch_generators],
            "order_rngs": [rng.bit_generator.state for rng in self.order_rngs],
            "collector": self.collector.state_dict(),
            "value_function": self.values.extra_state(),
            "eval_rngs": [rng.bit_generator.state for rng in self.eval_rngs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``: exactly where the env copies could save their
        state; otherwise the episodes under way restart from seeded resets
        (``restart_seeds``), with a ``SeededRestartWarning`` (``resumed_exactly`` says which)."""
        self.iteration = int(state["iteration"])
        self.stuck.done = True  # watches fresh runs only
        for policy, policy_state in zip(self.policies, state["policies"]):
            policy.load_state_dict(policy_state)
        self.critic.load_state_dict(state["critic"])
        self.critic.optimizer.load_state_dict(state["critic_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.solver.load_state_dict(state["solver"])
        self.action_critic.load_state_dict(state.get("action_critic", {}))
        self.values.load_extra_state(state.get("value_function"))
        self.previous_params = state["previous_params"]
        self.previous_steps = state["previous_steps"]
        for generator, saved in zip(self.torch_generators, state["torch_generators"]):
            generator.set_state(saved)
        for rng, saved in zip(self.order_rngs, state["order_rngs"]):
            rng.bit_generator.state = saved
        for rng, saved in zip(self.eval_rngs, state.get("eval_rngs", [])):
            rng.bit_generator.state = saved
        collector = state["collector"]
        self.resumed_exactly = collector.get("env") is not None
        if self.resumed_exactly:
            self.collector.load_state_dict(collector)
            return
        seeds = restart_seeds(self.config.seed, self.replicas, self.iteration)
        self.collector.restart(seeds if self.replicas > 1 else seeds[0])
        warnings.warn(
            f"the env copies of {self.config.env!r} cannot save their state "
            f"({type(self.env).__name__}), so the run continues from iteration "
            f"{self.iteration} with its policies, critic and random streams but with fresh "
            f"episodes, from resets seeded {seeds} (drawn from the run's env stream and the "
            "iteration): not bit-identical to an uninterrupted run. Envs whose copies offer "
            "get_state()/set_state() (the MPE tasks of marl_tr_envs.mpe do) resume exactly",
            SeededRestartWarning, stacklevel=2)
