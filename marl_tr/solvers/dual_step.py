"""The paper's exact W1 update (Algorithm 1, lines 10-11): Theorem 1's dual, Corollary 1's
transport maps, registered as solver ``ot_dual``.

Per agent and replica, on the batch:

1. **Candidates** ``a'`` per sample. Discrete actions: every action, and each sample stands
   for its state's whole old distribution (rows ``(b, j)`` with mass ``pi_old(j|s_b) / B``),
   so the push-forward is exact in the agent's own action. Continuous actions: the sample's
   own action (cost 0), a grid of ``grid`` points per dimension over the action box when the
   box is bounded and ``d <= grid_dims``, and ``draws`` draws from ``pi_old(.|s_b)``.
2. **Values** ``A_bk = M_factor_b (Q(s_b, a'_k, a_-i,b) - V(s_b))``: the critic's action
   values (``critic="q"`` or the oracle ``"oracle_q"``) with the teammates' batch actions held
   fixed and eq. 15's teammate factor applied (``AgentProblem.action_values``).
3. **Costs** ``c(a_b, a'_k)`` from the trust-region divergence's ground metric (W1's: the
   L1/L2 distance, or the categorical metric).
4. **Solve** the dual exactly (``ot_dual.solve_duals``): ``lambda*``, and the plan mixing the
   closest and furthest maximiser maps so that its cost is ``delta`` when binding.
   A batch without signal (all-equal or non-finite advantages: a zero or non-finite
   surrogate gradient) means no step, as for every solver.
5. **Project** the pushed-forward policy onto the policy class (``projection``).
6. **Back into the radius**: the projection breaks exact feasibility, so the divergence
   between the old and the projected policy is measured and, above ``delta``, the step is
   shrunk along the segment from the old parameters until it is within (``radius_step`` with
   ``max_t = 1``). No step ever ends above its radius.

Logged per agent: ``lambda`` (``lambda*``), ``dual_value`` (``g(lambda*)``, the LP optimum),
``dual_bound`` (``lambda* delta``, Proposition 1), ``plan_cost``, ``projected_divergence``
(before shrinking) and ``shrink`` (the fraction of the projected step kept).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from marl_tr.distributions import Categorical, DiagGaussian
from marl_tr.divergences import DIVERGENCES, Divergence
from marl_tr.policies import CategoricalPolicy, GaussianPolicy
from marl_tr.solvers.base import SOLVERS, AgentProblem, Solver, StepResult, gradient_status
from marl_tr.solvers.line_search import radius_step
from marl_tr.solvers.ot_dual import solve_duals_trusted
from marl_tr.solvers.projection import (
    gaussian_std,
    gaussian_targets,
    project_free_logits,
    project_state_independent_gaussian,
    regress_policy,
)
from marl_tr.validation import check_choice, check_in_range, check_int, check_positive

__all__ = ["MAX_DRAWS", "MAX_GRID_POINTS", "REFINEMENTS", "OTDual"]

#: Refinements of the continuous candidate set (the inner maximisation of eq. 5).
REFINEMENTS = ("none", "cem")

#: The most grid points per sample, and the most draws per sample: every candidate is one
#: critic input per sample, so far larger sets exhaust memory rather than refine the step.
MAX_GRID_POINTS = 65536
MAX_DRAWS = 4096


@SOLVERS.register("ot_dual", aliases=("dual",))
class OTDual(Solver):
    """The exact dual W1 step (Theorem 1, Corollary 1) with a critic's action values.

    Args:
        grid: grid points per action dimension (continuous, bounded boxes, ``d <= grid_dims``;
            ``grid ** grid_dims <= MAX_GRID_POINTS``).
        grid_dims: the largest action dimension that gets a grid (at most 3).
        draws: candidate draws from the old policy per sample (continuous; default 8; at most
            ``MAX_DRAWS``).
        refine: ``"none"``, or ``"cem"``: after a first solve, ``refine_steps`` rounds of the
            cross-entropy method per sample on ``A(s, a') - lambda c(a, a')`` at that solve's
            ``lambda`` (``draws`` samples per round from a Gaussian started at the old
            policy, refitted to the best quarter), whose last elites join the candidates for
            a second, final solve: the inner maximisation of eq. 5 where a grid cannot reach
            (``d > grid_dims``).
        refine_steps: CEM rounds.
        shift: project Gaussians by the moment shift of the unpushed samples (True) or by the
            pushed samples' plain weighted moments (False); see ``projection``.
        fit_steps / fit_lr: Adam steps and step size of the weighted regression of MLP
            policies.
        rtol / max_rounds: the radius search that brings the projection back into the ball.
    """

    info_keys = ("lambda", "dual_value", "dual_bound", "plan_cost", "projected_divergence",
                 "shrink")
    autograd_free = True
    needs_action_values: ClassVar[bool] = True

    def __init__(self, grid: int = 33, grid_dims: int = 2, draws: int = 8,
                 refine: str = "none", refine_steps: int = 3, shift: bool = True,
                 fit_steps: int = 50, fit_lr: float = 1e-2, rtol: float = 1e-3,
                 max_rounds: int = 30) -> None:
        self.grid = check_int("grid", grid, minimum=0, maximum=MAX_GRID_POINTS)
        self.grid_dims = check_int("grid_dims", grid_dims, minimum=0, maximum=3)
        if self.grid_dims and self.grid ** self.grid_dims > MAX_GRID_POINTS:
            raise ValueError(f"grid ** grid_dims (the grid's candidates per sample) must be <= "
                             f"{MAX_GRID_POINTS}, got {grid} ** {grid_dims} = "
                             f"{self.grid ** self.grid_dims}")
        self.draws = check_int("draws", draws, minimum=0, maximum=MAX_DRAWS)
        if not (self.grid and self.grid_dims) and not self.draws:
            raise ValueError(
                f"grid={grid}, grid_dims={grid_dims} and draws={draws} leave a continuous "
                "action no candidate but itself, so no step could move: give grid (with "
                "grid_dims) or draws > 0 (discrete actions take every action either way)")
        self.refine = check_choice("refine", refine, REFINEMENTS)
        self.refine_steps = check_int("refine_steps", refine_steps, minimum=1)
        if refine != "none" and draws < 2:
            raise ValueError(f"refine={refine!r} samples candidates: draws must be >= 2, got "
                             f"{draws!r}")
        if not isinstance(shift, bool):
            raise ValueError(f"shift must be true or false, got {shift!r}")
        self.shift = shift
        self.fit_steps = check_int("fit_steps", fit_steps, minimum=1)
        self.fit_lr = check_positive("fit_lr", fit_lr)
        self.rtol = check_in_range("rtol", rtol, 0.0, 1.0, low_open=True, high_open=True)
        self.max_rounds = check_int("max_rounds", max_rounds, minimum=1)
        self._grids: dict[tuple[bytes, bytes, torch.dtype], Tensor] = {}

    def check_divergence(self, divergence: Divergence) -> None:
        if not divergence.has_ground_metric:
            fitting = [name for name in DIVERGENCES.names()
                       if DIVERGENCES.get(name).has_ground_metric]
            raise ValueError(
                f"solver 'ot_dual' prices moves between actions with the trust region's ground "
                f"metric, but {divergence.spec()!r} has none; divergences it accepts: "
                f"{', '.join(fitting)}"
            )

    # -- the dual's inputs -----------------------------------------------------------------
    def _continuous(self, problem: AgentProblem) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(candidates [R*B, K, d], values [R*B, K], costs [R*B, K], weights [R*B])``."""
        actions = problem.actions
        rows, dim = actions.shape
        parts = [actions.unsqueeze(1)]  # the sample's own action: cost 0
        space = problem.action_values.action_space
        low, high = np.asarray(space.low, float), np.asarray(space.high, float)
        if self.grid and dim <= self.grid_dims and np.isfinite(low).all() and np.isfinite(
                high).all():
            parts.append(self._grid(low, high, actions.dtype).unsqueeze(0).expand(rows, -1, -1))
        if self.draws:
            if problem.generators is None:
                raise ValueError("solver 'ot_dual' draws candidates: it needs the problem's "
                                 "per-replica generators")
            draws = problem.old_dist.repeat_rows(self.draws).sample(problem.generators)
            parts.append(draws.view(rows, self.draws, dim))
        candidates = torch.cat(parts, dim=1)
        values = problem.action_values(candidates)
        costs = problem.divergence.ground_cost(actions, candidates)
        weights = torch.full((rows,), 1.0 / problem.batch_size, dtype=torch.float64)
        return candidates, values, costs, weights

    def _grid(self, low: np.ndarray, high: np.ndarray, dtype: torch.dtype) -> Tensor:
        """The ``grid ** d`` points ``[G, d]`` of the box ``[low, high]`` (made once per box)."""
        key = (low.tobytes(), high.tobytes(), dtype)
        if key not in self._grids:
            axes = [torch.linspace(lo, hi, self.grid, dtype=dtype) for lo, hi in zip(low, high)]
            self._grids[key] = torch.cartesian_prod(*axes).reshape(-1, len(low))
        return self._grids[key]

    def _cem(self, problem: AgentProblem, lam: np.ndarray) -> Tensor:
        """The cross-entropy method's last elites ``[R*B, E, d]`` per sample, maximising
        ``A(s_b, a') - lambda c(a_b, a')`` at the replicas' ``lambda [R]``."""
        actions, old = problem.actions, problem.old_dist
        rows, dim = actions.shape
        elite = max(2, self.draws // 4)
        lam_rows = torch.from_numpy(np.repeat(lam, problem.batch_size)).to(actions.dtype)
        space = problem.action_values.action_space
        low = torch.as_tensor(np.asarray(space.low, float), dtype=actions.dtype)
        high = torch.as_tensor(np.asarray(space.high, float), dtype=actions.dtype)
        mean, std = old.mean, old.std
        for _ in range(self.refine_steps):
            sampler = DiagGaussian(mean, std).repeat_rows(self.draws)
            samples = sampler.sample(problem.generators).view(rows, self.draws, dim)
            samples = torch.maximum(torch.minimum(samples, high), low)  # the env clips too
            score = (problem.action_values(samples).to(actions.dtype)
                     - lam_rows.unsqueeze(1) * problem.divergence.ground_cost(actions, samples))
            score = torch.where(torch.isfinite(score), score, torch.full_like(score, -torch.inf))
            best = score.topk(elite, dim=1).indices  # [rows, E]
            elites = samples.gather(1, best.unsqueeze(-1).expand(-1, -1, dim))
            mean = elites.mean(1)
            std = elites.std(1).clamp_min(torch.finfo(actions.dtype).eps ** 0.5)
        return elites

    def _discrete(self, problem: AgentProblem) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Rows ``(b, j)``: ``(candidates [R*B*K, K], values, costs [R*B*K, K],
        weights [R*B*K])`` with every action a candidate and mass ``pi_old(j|s_b) / B``."""
        dist = problem.old_dist
        rows, k = dist.logits.shape
        actions = torch.arange(k)
        per_sample = problem.action_values(actions.expand(rows, k))  # [R*B, K]
        values = per_sample.unsqueeze(1).expand(rows, k, k).reshape(rows * k, k)
        table = problem.divergence.ground_cost(actions, actions.expand(k, k),
                                               dtype=torch.float64)  # [K, K]
        costs = table.expand(rows, k, k).reshape(rows * k, k)
        weights = dist.probs.double().reshape(-1) / problem.batch_size
        candidates = actions.expand(rows * k, k)
        return candidates, values, costs, weights

    # -- the step ---------------------------------------------------------------------------
    def step(self, problem: AgentProblem, agents: np.ndarray) -> StepResult:
        if problem.action_values is None:
            raise ValueError("solver 'ot_dual' needs action values: train with critic='q' "
                             "(learned, eq. 19) or critic='oracle_q' (the env's analytic core)")
        replicas = problem.replicas
        # the batch must carry signal, as for every solver: all-equal (or non-finite)
        # advantages mean no step, whatever a critic's values say about other actions
        signal, reasons = gradient_status(problem.surrogate_gradient())
        discrete = isinstance(problem.old_dist, Categorical)
        # every replica draws its candidates (and solves) whatever its outcome, so that its
        # random stream does not depend on the other replicas: replica r stays the run with
        # seed + r; replicas without a step are masked (zero values) and report why
        with torch.no_grad():
            candidates, values, costs, weights = (self._discrete(problem) if discrete
                                                  else self._continuous(problem))
        k = values.shape[1]
        values = values.double().view(replicas, -1, k)
        finite = torch.isfinite(values).view(replicas, -1).all(1).numpy()
        reasons = [r or ("" if ok else "non-finite action values")
                   for r, ok in zip(reasons, finite)]
        finite &= signal
        if not finite.all():
            values = torch.where(torch.from_numpy(finite).view(-1, 1, 1), values,
                                 torch.zeros_like(values))
        weights = weights.view(replicas, -1)
        weights = weights / weights.sum(1, keepdim=True)
        values, weights = values.numpy(), weights.numpy()
        solution = solve_duals_trusted(values, costs.double().view(replicas, -1, k).numpy(),
                                       problem.radius, weights)
        if self.refine == "cem" and not discrete:
            with torch.no_grad():
                extra = self._cem(problem, solution.lam)
                more = problem.action_values(extra).double().view(replicas, -1, extra.shape[1])
                candidates = torch.cat((candidates, extra), dim=1)
                more = torch.where(torch.isfinite(more) & torch.from_numpy(finite).view(-1, 1, 1),
                                   more, torch.zeros_like(more))
                values = np.concatenate((values, more.numpy()), axis=2)
                costs = torch.cat((costs, problem.divergence.ground_cost(problem.actions, extra)),
                                  dim=1)
            k = values.shape[2]
            solution = solve_duals_trusted(values, costs.double().view(replicas, -1, k).numpy(),
                                           problem.radius, weights)
        if not finite.any():
            return problem.no_step(reasons)
        plan = torch.from_numpy(solution.plan).to(problem.old_params.dtype)
        with torch.no_grad():
            projected = self._project(problem, candidates, plan, discrete)
        direction = projected - problem.old_params
        # a plan of cost 0 keeps every sample where it is (no move is worth its cost), unless
        # the ground metric prices moves between distinct actions at 0
        moves = solution.cost > 0
        if not (moves | ~finite).all():
            moves = moves | self._moves_for_free(problem, candidates, solution.plan, discrete)
        # the largest move per replica: NaN where any entry is NaN, inf where any is infinite
        size = direction.abs().amax(1).numpy()
        moving = finite & moves & (size > 0) & np.isfinite(size)
        reasons = [r or ("" if ok else "identity plan") for r, ok in zip(reasons, moving)]
        info = {"lambda": solution.lam, "dual_value": solution.value,
                "dual_bound": solution.bound, "plan_cost": solution.cost,
                "projected_divergence": np.full(replicas, np.nan), "shrink": np.full(replicas,
                                                                                  np.nan)}
        if not finite.all():
            info = {key: np.where(finite, value, np.nan) for key, value in info.items()}
        if not moving.any():
            return problem.no_step(reasons, info)
        if not moving.all():
            direction = torch.where(torch.from_numpy(moving).unsqueeze(1), direction,
                                    torch.zeros_like(direction))
        point = radius_step(problem, direction, np.ones(replicas), active=moving,
                            rtol=self.rtol, max_rounds=self.max_rounds, max_t=1.0)
        shrunk = moving & (point.t > 0) & np.isfinite(point.gain)
        reasons = [r or ("" if ok else "no feasible shrink") for r, ok in zip(reasons, shrunk)]
        info["projected_divergence"] = np.where(moving, point.first_divergence, np.nan)
        info["shrink"] = np.where(moving, np.where(shrunk, point.t, 0.0), np.nan)
        step = torch.from_numpy(np.where(shrunk, point.t, 0.0)).to(direction.dtype).unsqueeze(1)
        params = problem.old_params + step * direction
        # a step below the parameters' precision leaves them as they were: no move
        moved = shrunk & (params != problem.old_params).any(1).numpy()
        reasons = [r or ("" if ok else "step below the parameters' precision")
                   for r, ok in zip(reasons, moved)]
        return problem.finish(moved, params, point.divergence, point.gain, point.log_prob,
                              reasons, info=info)

    @staticmethod
    def _moves_for_free(problem: AgentProblem, candidates: Tensor, plan: np.ndarray,
                        discrete: bool) -> np.ndarray:
        """``[R]``: whether the plan ``[R, rows, K]`` puts mass on a candidate other than
        its row's own action (at cost 0 where the plan costs 0)."""
        replicas, _, k = plan.shape
        if discrete:  # row (b, j) is action j
            other = ~np.eye(k, dtype=bool)
            return ((plan.reshape(replicas, -1, k, k) > 0) & other).any(axis=(1, 2, 3))
        other = (candidates != problem.actions.unsqueeze(1)).any(-1).numpy()  # [R*B, K]
        return ((plan > 0) & other.reshape(plan.shape)).any(axis=(1, 2))

    def _project(self, problem: AgentProblem, candidates: Tensor, plan: Tensor,
                 discrete: bool) -> Tensor:
        """The policy-class parameters ``[R, P]`` of the pushed-forward policy."""
        policy, replicas, batch = problem.policy, problem.replicas, problem.batch_size
        if discrete:
            k = candidates.shape[1]
            # per state, the mass arriving at each action: a last-axis sum over the rows j
            pushed = plan.view(replicas, batch, k, k).transpose(2, 3).contiguous().sum(-1)
            pushed = pushed * batch  # [R, B, K]
            if not isinstance(policy, CategoricalPolicy):
                raise ValueError(f"solver 'ot_dual' projects onto categorical or Gaussian "
                                 f"policies, got {type(policy).__name__}")
            if policy.state_independent:
                return project_free_logits(pushed)
            with torch.inference_mode(False), torch.enable_grad():
                return regress_policy(policy, problem.obs, problem.old_params,
                                      (pushed.reshape(replicas * batch, k),), self.fit_steps,
                                      self.fit_lr)
        if not isinstance(policy, GaussianPolicy):
            raise ValueError(f"solver 'ot_dual' projects onto categorical or Gaussian policies, "
                             f"got {type(policy).__name__}")
        d = problem.actions.shape[1]
        k = candidates.shape[1]
        actions = problem.actions.view(replicas, batch, d)
        cands = candidates.view(replicas, batch, k, d)
        plan = plan.view(replicas, batch, k)
        if policy.state_independent:
            return project_state_independent_gaussian(policy, problem.old_params, actions,
                                                      cands, plan, self.shift)
        old: DiagGaussian = problem.old_dist
        old_mean = old.mean.view(replicas, batch, d)
        old_std = old.std.view(replicas, batch, d)[:, 0]  # the MLP policy's std is per replica
        targets = gaussian_targets(actions, cands, plan, old_mean, self.shift)
        with torch.inference_mode(False), torch.enable_grad():
            # the mean by weighted regression (std held), then the std around the fitted mean
            fitted = regress_policy(policy, problem.obs, problem.old_params,
                                    (targets.reshape(-1, d), old.std), self.fit_steps,
                                    self.fit_lr)
            new_mean = policy.distribution(problem.obs).mean.detach().view(replicas, batch, d)
            std = gaussian_std(actions, cands, plan, new_mean, old_mean, old_std, self.shift)
            rows = std.unsqueeze(1).expand(replicas, batch, d).reshape(-1, d)
            return regress_policy(policy, problem.obs, fitted,
                                  (new_mean.reshape(-1, d), rows), self.fit_steps, self.fit_lr)
