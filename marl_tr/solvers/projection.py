"""Fitting the policy class to a pushed-forward policy (Corollary 1, eq. 25) by weighted
maximum likelihood: the projection step of the exact W1 dual.

The dual's optimal plan moves each sample's action to candidate actions; the new policy it
describes, ``T # pi_old`` (eq. 25), is a discrete measure that a parametric policy cannot
hold. It is projected back onto the class:

- **State-independent Gaussian** (the paper's policy): the weighted moments of the pushed
  samples. With ``shift=True`` (default) they are taken as a *shift* of the same estimator on
  the unpushed samples: ``mean_new = mean_old + E_plan[a' - a]`` and ``std_new = std_old *
  sd_plan(a') / sd(a)`` per dimension. The identity plan (no move is worth its cost) then
  returns the old policy exactly, instead of a refit carrying the batch's sampling noise.
- **Categorical with free logits**: the pushed probabilities (weighted frequencies), averaged
  over states; exact when the plan's rows are the old policy's whole distribution.
- **MLP policies**: weighted regression from the old parameters, by ``steps`` Adam steps
  through the policy's Jacobian products: Gaussian mean onto ``mean_old(s_b) + E_plan[a' - a_b]``
  and std onto the shifted std; categorical logits by cross-entropy onto the pushed
  probabilities per state.

Shapes: ``R`` replicas, ``B`` samples (rows) per replica, ``K`` candidates per row.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from marl_tr.policies import CategoricalPolicy, GaussianPolicy, Linearization, Policy
from marl_tr.solvers.optim import FlatOptimizer

__all__ = [
    "gaussian_std",
    "gaussian_targets",
    "project_free_logits",
    "project_state_independent_gaussian",
    "regress_policy",
]

_PROB_FLOOR = 1e-12  # pushed probabilities below this become this (finite logits)


def _total(values: Tensor, dims: int = 1) -> Tensor:
    """Sum over the ``dims`` axes after the replica axis, ``[R, *S, *rest] -> [R, *rest]``,
    as one contiguous last-axis reduction per output: the same rounding whatever ``R`` (a
    replica's result never depends on how many replicas run beside it)."""
    moved = values.movedim(tuple(range(1, 1 + dims)), tuple(range(-dims, 0)))
    return moved.contiguous().flatten(-dims).sum(-1)


def gaussian_targets(actions: Tensor, candidates: Tensor, plan: Tensor, old_mean: Tensor,
                     shift: bool = True) -> Tensor:
    """Per sample, the mean target of a pushed Gaussian ``[R, B, d]``.

    Args:
        actions: ``a [R, B, d]`` the samples (drawn from the old policy).
        candidates: ``a' [R, B, K, d]``.
        plan: ``[R, B, K]``, rows summing to the samples' masses (each replica's total 1).
        old_mean: ``mean_old(s_b) [R, B, d]``.
        shift: ``mean_old(s_b) + E_plan[a' - a_b | b]`` (True) or ``E_plan[a' | b]``.
    """
    mass = plan.sum(2, keepdim=True)  # [R, B, 1] (a last-axis sum)
    safe = torch.where(mass > 0, mass, torch.ones_like(mass))
    moved = _total((plan.unsqueeze(-1) * candidates).movedim(2, 1), 1) / safe  # E_plan[a'|b]
    return old_mean + (moved - actions) if shift else moved


def gaussian_std(actions: Tensor, candidates: Tensor, plan: Tensor, new_mean: Tensor,
                 old_mean: Tensor, old_std: Tensor, shift: bool = True) -> Tensor:
    """The std ``[R, d]`` of a pushed Gaussian whose mean (fitted already) is ``new_mean(s_b)
    [R, B, d]``: the plan's spread around it, ``sqrt(E_plan[(a' - mean_new)^2])``; with
    ``shift``, as the factor by which it exceeds the unpushed samples' spread around the old
    mean, ``sqrt(E[(a - mean_old)^2])``, applied to ``old_std [R, d]``."""
    spread = _total(plan.unsqueeze(-1) * (candidates - new_mean.unsqueeze(2)).square(), 2)
    if not shift:
        return spread.sqrt()
    mass = plan.sum(2, keepdim=True)
    before = _total(mass * (actions - old_mean).square())
    ratio = torch.where(before > 0, (spread / before.clamp_min(1e-300)).sqrt(),
                        torch.ones_like(before))
    return old_std * ratio


def project_state_independent_gaussian(policy: GaussianPolicy, old_params: Tensor,
                                       actions: Tensor, candidates: Tensor, plan: Tensor,
                                       shift: bool = True) -> Tensor:
    """The projected parameters ``[R, 2 d]`` (mean, rho) of a state-independent Gaussian."""
    d = policy.act_dim
    old_mean = old_params[:, :d].unsqueeze(1).expand_as(actions)
    targets = gaussian_targets(actions, candidates, plan, old_mean, shift)
    mass = plan.sum(2, keepdim=True)
    mean = _total(mass * targets) / _total(mass)  # the weighted least-squares mean [R, d]
    parameterisation = policy.std_parameterisation
    std = gaussian_std(actions, candidates, plan, mean.unsqueeze(1).expand_as(actions),
                       old_mean, parameterisation.std(old_params[:, d:]), shift)
    return torch.cat((mean, parameterisation.rho_of(std)), dim=1)


def project_free_logits(pushed: Tensor) -> Tensor:
    """Free logits ``[R, K]`` of the pushed probabilities ``[R, B, K]`` (rows summing to 1)
    averaged over states."""
    probs = (_total(pushed) / pushed.shape[1]).clamp_min(_PROB_FLOOR)
    return torch.log(probs / probs.sum(1, keepdim=True))


def regress_policy(policy: Policy, obs: Tensor, old_params: Tensor, targets: tuple[Tensor, ...],
                   steps: int, lr: float) -> Tensor:
    """Weighted regression of an MLP policy from ``old_params`` ``[R, P]``, by Adam through
    the policy's linearisation (one forward pass per step).

    Gaussian: ``targets = (mean [R*B, d], std [R*B, d])``, squared error. Categorical:
    ``targets = (probs [R*B, K],)``, cross-entropy ``-sum_k p_k log pi_k``. Each sample has
    mass ``1 / B``.

    Returns:
        The fitted parameters ``[R, P]`` (the policy holds them afterwards).
    """
    replicas = old_params.shape[0]
    batch = obs.shape[0] // replicas
    optimizer = FlatOptimizer("adam", lr)
    agents = np.zeros(replicas, dtype=np.int64)
    active = np.ones(replicas, dtype=bool)
    params = old_params
    for _ in range(steps):
        lin: Linearization = policy.linearize_at(params, obs)
        if isinstance(policy, CategoricalPolicy):
            (probs,) = targets
            cotangent: tuple[Tensor, ...] = ((lin.dist.probs - probs) / batch,)
        else:
            mean, std = targets
            cotangent = (2.0 * (lin.dist.mean - mean) / batch, 2.0 * (lin.dist.std - std) / batch)
        gradient = lin.vjp(cotangent)
        params = optimizer.descend(agents, params, gradient, active)
    policy.set_flat_parameters(params)
    return params
