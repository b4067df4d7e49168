"""Per-agent policies and the Jacobian products that solvers use.

A policy holds ``R`` independent replicas of one agent's policy (``R = 1`` for an ordinary
run): every parameter has a leading replica dimension. It maps observations ``[R*B, obs_dim]``
(rows replica-major: replica ``r`` owns rows ``r*B .. r*B+B-1``) to an ``ActionDistribution``
with the same rows. Solvers never differentiate through a policy directly: they ask for a
``Linearization`` of the map ``theta -> distribution parameters`` on a batch and use its
Jacobian-vector products ``J v`` and ``J^T u``, with flat parameters ``[R, P]``. The
state-independent heads (the paper's game) compute both in closed form; any other policy
gets them from autograd.

Built-ins (registry ``POLICIES``):
    ``gaussian``: diagonal Gaussian; ``hidden=()`` gives the paper's state-independent
        policy (mean and std are free parameters), otherwise an MLP mean.
    ``categorical``: softmax over ``K`` actions; ``hidden=()`` gives free logits.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.nets import ACTIVATIONS, replicated_mlp
from marl_tr.registry import Plugin, Registry
from marl_tr.tensor_constants import constant_like
from marl_tr.validation import check_choice, check_finite, check_int, check_positive

__all__ = [
    "POLICIES",
    "STD_PARAMETERISATIONS",
    "AutogradLinearization",
    "BoundedStd",
    "CategoricalPolicy",
    "GaussianPolicy",
    "Linearization",
    "LogStd",
    "Policy",
    "StdParameterisation",
    "per_state_rows",
]


def per_state_rows(values: Tensor, batch: int) -> Tensor:
    """Repeat each replica's row ``batch`` times: ``[R, ...] -> [R*batch, ...]``.

    One replica: a broadcast view of ``values`` (no copy; callers pass tensors they own).
    """
    if batch == 1:
        return values
    if values.shape[0] == 1:
        return values.expand(batch, *values.shape[1:])
    return values.repeat_interleave(batch, dim=0)


def _flatten_per_replica(tensors: Sequence[Tensor]) -> Tensor:
    """Per-replica tensors ``[R, ...]`` -> one ``[R, P]`` matrix."""
    replicas = tensors[0].shape[0]
    return torch.cat([t.reshape(replicas, -1) for t in tensors], dim=1)


# ---------------------------------------------------------------------------------------
# Jacobian products of theta -> distribution parameters
# ---------------------------------------------------------------------------------------
class Linearization(ABC):
    """The map ``theta -> dist.params()`` linearised at the current ``theta`` on a batch.

    Attributes:
        dist: the distribution at the current parameters (rows ``R*B``): detached, and a
            snapshot (it does not change when the parameters are written afterwards).
        separable: each parameter moves exactly one distribution-parameter column of its
            own, identically for every state (so a diagonal distribution-space Hessian stays
            diagonal in parameter space).
        state_dist: for a state-independent policy, its distribution with one row per
            replica (``dist`` repeats it over each replica's rows); otherwise ``None``.
    """

    dist: ActionDistribution
    separable: ClassVar[bool] = False
    state_dist: ActionDistribution | None = None

    @abstractmethod
    def jvp(self, vector: Tensor) -> Params:
        """``J v``: parameter directions ``[R, P]`` -> a tangent shaped like ``dist.params()``."""

    @abstractmethod
    def vjp(self, cotangent: Params) -> Tensor:
        """``J^T u``: a cotangent shaped like ``dist.params()`` -> ``[R, P]`` (summed over each
        replica's rows)."""


class AutogradLinearization(Linearization):
    """Generic Jacobian products by autograd, one forward pass shared by all products.

    ``J^T u`` is a vector-Jacobian product; ``J v`` uses the double-backward trick on the
    (linear in ``u``) graph of ``J^T u``. Replicas have separate parameters, so the products
    never mix them.
    """

    def __init__(self, policy: Policy, obs: Tensor) -> None:
        self._params = policy.trainable_parameters()
        with torch.enable_grad():
            dist = policy.distribution(obs)
            self._outputs = dist.params()
        self.dist = dist.detach()
        self._jvp_graph: tuple[list[Tensor], Tensor] | None = None

    def _flatten(self, grads: Sequence[Tensor | None]) -> Tensor:
        return _flatten_per_replica([
            g if g is not None else torch.zeros_like(p) for g, p in zip(grads, self._params)
        ])

    def vjp(self, cotangent: Params) -> Tensor:
        with torch.enable_grad():
            grads = torch.autograd.grad(
                self._outputs, self._params, grad_outputs=cotangent, retain_graph=True,
                allow_unused=True,
            )
        return self._flatten(grads)

    def jvp(self, vector: Tensor) -> Params:
        with torch.enable_grad():
            if self._jvp_graph is None:
                dummies = [torch.zeros_like(o, requires_grad=True) for o in self._outputs]
                grads = torch.autograd.grad(
                    self._outputs, self._params, grad_outputs=dummies, create_graph=True,
                    allow_unused=True,
                )
                self._jvp_graph = (dummies, self._flatten(grads))
            dummies, flat = self._jvp_graph
            result = torch.autograd.grad(
                flat, dummies, grad_outputs=vector, retain_graph=True, allow_unused=True
            )
        return tuple(
            r if r is not None else torch.zeros_like(d) for r, d in zip(result, dummies)
        )


# ---------------------------------------------------------------------------------------
# Standard-deviation parameterisations
# ---------------------------------------------------------------------------------------
class StdParameterisation(Plugin, ABC):
    """Maps a free parameter ``rho`` to a standard deviation ``std >= min_std``."""

    @abstractmethod
    def std(self, rho: Tensor) -> Tensor:
        """``std(rho)``, elementwise."""

    @abstractmethod
    def derivative(self, rho: Tensor) -> Tensor:
        """``d std / d rho``, elementwise."""

    @abstractmethod
    def inverse(self, std: float) -> float:
        """``rho`` such that ``std(rho) == std``."""

    def std_and_derivative(self, rho: Tensor) -> tuple[Tensor, Tensor]:
        """``(std(rho), d std / d rho)`` (override to share work between the two)."""
        return self.std(rho), self.derivative(rho)

    def rho_of(self, std: Tensor) -> Tensor:
        """``rho`` with ``std(rho) == std``, elementwise; values outside the parameterisation's
        range are first clamped into it (a relative margin of 1e-6 from its bounds)."""
        raise NotImplementedError(f"{type(self).__name__} has no tensor inverse")


STD_PARAMETERISATIONS: Registry[StdParameterisation] = Registry(
    "std parameterisation", StdParameterisation
)


@STD_PARAMETERISATIONS.register("log_std", aliases=("log",))
class LogStd(StdParameterisation):
    """``std = min_std + exp(rho)``: log-std with a smooth floor, and optionally a ceiling.

    The floor keeps a collapsed policy finite (log-probabilities, ratios and Fisher terms
    stay bounded), and ``d std/d rho -> 0`` as the std approaches it, so no step can cross it.

    The ceiling ``max_std`` bounds an agent that has no signal: a trust-region step has the
    size of the radius whatever the gradient's, and the KL cost of a std step is smaller
    upwards than downwards, so a std without signal random-walks upwards without bound
    (``docs/paper-notes.md``). With ``e = exp(rho)`` and ``S = max_std - min_std`` the std is
    ``min_std + e`` exactly up to the knee ``e = S / 2`` (runs that stay below it are
    unchanged, bit for bit), and ``min_std + S/2 + (S/2) tanh((e - S/2) / (S/2))`` above it,
    which is twice differentiable at the knee and tends to ``max_std`` as ``rho -> inf``. The
    trainer ties it to the action bounds (``training.setup``).

    Args:
        min_std: the floor (> 0).
        max_std: the ceiling (> 2 ``min_std``), or ``None`` for none.
    """

    def __init__(self, min_std: float = 1e-3, max_std: float | None = None) -> None:
        self.min_std = check_positive("min_std", min_std)
        self.max_std = None if max_std is None else check_positive("max_std", max_std)
        if self.max_std is not None and not self.max_std > 2.0 * self.min_std:
            raise ValueError(
                f"max_std must be > 2 * min_std = {2.0 * self.min_std!r}, got {max_std!r}"
            )
        # the knee S / 2 (also the width of the saturating part); None without a ceiling
        self._knee = None if self.max_std is None else 0.5 * (self.max_std - self.min_std)

    def _excess(self, rho: Tensor) -> tuple[Tensor, Tensor]:
        """``(std - min_std, d std / d rho)``."""
        scale = torch.exp(rho)
        knee = self._knee
        if knee is None:
            return scale, scale
        above = scale > knee
        x = (scale - knee).clamp_min(0.0) / knee
        excess = torch.where(above, knee + knee * torch.tanh(x), scale)
        # e * sech(x)^2 = exp(rho + 2 (log 2 - x - log1p(exp(-2x)))): accurate (and 0, not
        # inf * 0) far into the saturation
        log_sech2 = 2.0 * (math.log(2.0) - x - torch.log1p(torch.exp(-2.0 * x)))
        slope = torch.where(above, torch.exp(rho + log_sech2), scale)
        return excess, slope

    def std(self, rho: Tensor) -> Tensor:
        if self._knee is None:
            return torch.add(torch.exp(rho), constant_like(self.min_std, rho))
        return torch.add(self._excess(rho)[0], constant_like(self.min_std, rho))

    def derivative(self, rho: Tensor) -> Tensor:
        return self._excess(rho)[1]

    def std_and_derivative(self, rho: Tensor) -> tuple[Tensor, Tensor]:
        excess, slope = self._excess(rho)
        return torch.add(excess, constant_like(self.min_std, rho)), slope

    def inverse(self, std: float) -> float:
        if std <= self.min_std:
            raise ValueError(f"init_std must be > min_std = {self.min_std}, got {std!r}")
        if self.max_std is not None and std >= self.max_std:
            raise ValueError(f"init_std must be < max_std = {self.max_std}, got {std!r}")
        excess, knee = std - self.min_std, self._knee
        if knee is None or excess <= knee:
            return math.log(excess)
        return math.log(knee + knee * math.atanh((excess - knee) / knee))

    def rho_of(self, std: Tensor) -> Tensor:
        excess = (std - self.min_std).clamp_min(1e-6 * self.min_std)
        knee = self._knee
        if knee is None:
            return torch.log(excess)
        fraction = ((excess - knee) / knee).clamp(0.0, 1.0 - 1e-6)
        return torch.log(torch.where(excess > knee, knee + knee * torch.atanh(fraction), excess))


@STD_PARAMETERISATIONS.register("bounded", aliases=("sigmoid",))
class BoundedStd(StdParameterisation):
    """``std = min_std + (max_std - min_std) * sigmoid(rho)`` (HARL-style bounded std).

    Args:
        min_std: lower bound (> 0).
        max_std: upper bound (> min_std).
    """

    def __init__(self, min_std: float = 1e-3, max_std: float = 2.0) -> None:
        self.min_std = check_positive("min_std", min_std)
        self.max_std = check_positive("max_std", max_std)
        if self.max_std <= self.min_std:
            raise ValueError(f"max_std must be > min_std = {min_std}, got {max_std!r}")

    def std(self, rho: Tensor) -> Tensor:
        return self.min_std + (self.max_std - self.min_std) * torch.sigmoid(rho)

    def derivative(self, rho: Tensor) -> Tensor:
        sig = torch.sigmoid(rho)
        return (self.max_std - self.min_std) * sig * (1.0 - sig)

    def inverse(self, std: float) -> float:
        if not self.min_std < std < self.max_std:
            raise ValueError(
                f"init_std must be in ({self.min_std}, {self.max_std}) for the bounded std, "
                f"got {std!r}"
            )
        frac = (std - self.min_std) / (self.max_std - self.min_std)
        return math.log(frac / (1.0 - frac))

    def rho_of(self, std: Tensor) -> Tensor:
        frac = ((std - self.min_std) / (self.max_std - self.min_std)).clamp(1e-6, 1 - 1e-6)
        return torch.log(frac / (1.0 - frac))


# ---------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------
class Policy(nn.Module, ABC):
    """One agent's policy ``pi_theta(a | o)``, in ``replicas`` independent copies.

    Class attributes:
        action_kind: ``"continuous"`` or ``"discrete"``.

    Attributes:
        replicas: ``R``; every trainable parameter has a leading dimension ``R``.
    """

    action_kind: ClassVar[str]
    replicas: int

    @abstractmethod
    def distribution(self, obs: Tensor) -> ActionDistribution:
        """The action distribution for each observation row (``obs [R*B, obs_dim]``).

        Its tensors must not be views of the parameters: solvers write parameters in place
        and keep earlier distributions as snapshots.
        """

    @property
    def batched_candidates(self) -> bool:
        """Whether ``candidate_distributions`` costs about one forward pass for any ``K``."""
        return False

    @property
    def state_independent(self) -> bool:
        """Whether the distribution ignores the observation (then one state per replica
        tells everything about it, e.g. for a divergence averaged over states)."""
        return False

    @property
    def autograd_free(self) -> bool:
        """Whether its ``Linearization`` is closed form (no autograd)."""
        return False

    def candidate_distributions(self, candidates: Tensor, obs: Tensor) -> ActionDistribution:
        """Distributions under ``K`` parameter vectors per replica ``[R, K, P]``.

        Returns one distribution of ``R*K*B`` rows ordered (replica, candidate, state).
        Default: one forward pass per candidate; the current parameters are restored.
        """
        current = self.flat_parameters()
        replicas, count = candidates.shape[:2]
        dists = []
        with torch.no_grad():
            for k in range(count):
                self.set_flat_parameters(candidates[:, k])
                dists.append(self.distribution(obs))
        self.set_flat_parameters(current)
        stacked = []
        for tensors in zip(*(d.params() for d in dists)):  # each [R*B, ...] -> [R, K, B, ...]
            grouped = torch.stack([t.reshape(replicas, -1, *t.shape[1:]) for t in tensors], 1)
            stacked.append(grouped.reshape(-1, *grouped.shape[3:]))
        return type(dists[0]).from_params(tuple(stacked))

    def linearize(self, obs: Tensor) -> Linearization:
        """Jacobian products of ``theta -> distribution(obs).params()`` (autograd default)."""
        return AutogradLinearization(self, obs)

    def linearize_at(self, params: Tensor, obs: Tensor) -> Linearization:
        """``linearize`` at parameters ``[R, P]``, which the policy then holds (subclasses
        with closed forms may skip writing them; callers write final parameters back)."""
        self.set_flat_parameters(params)
        return self.linearize(obs)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters in a fixed order (cached: the hot path walks them often)."""
        cached = self.__dict__.get("_trainable_cache")
        if cached is None:
            cached = [p for p in self.parameters() if p.requires_grad]
            self.__dict__["_trainable_cache"] = cached
        return cached

    @property
    def num_parameters(self) -> int:
        """``P``: trainable parameters per replica."""
        return sum(p[0].numel() for p in self.trainable_parameters())

    def flat_parameters(self) -> Tensor:
        """A detached copy of all trainable parameters, ``[R, P]``."""
        params = self.trainable_parameters()
        if len(params) == 1:
            return params[0].detach().reshape(self.replicas, -1).clone()
        return _flatten_per_replica([p.detach() for p in params])

    def set_flat_parameters(self, flat: Tensor) -> None:
        """Write ``[R, P]`` back into the parameters."""
        params = self.trainable_parameters()
        if len(params) == 1:
            with torch.no_grad():
                params[0].copy_(flat.view(params[0].shape))
            return
        sizes = self.__dict__.get("_flat_sizes")
        if sizes is None:
            sizes = self.__dict__["_flat_sizes"] = [p[0].numel() for p in params]
        with torch.no_grad():
            for p, part in zip(params, torch.split(flat, sizes, dim=1)):
                p.copy_(part.view(p.shape) if part.is_contiguous() else part.reshape(p.shape))

    def summary(self) -> dict[str, list[float]]:
        """Scalars worth logging, one value per replica (e.g. the mean and std of a
        state-independent policy)."""
        return {}

    def replica(self, index: int) -> Policy:
        """A one-replica copy of this policy holding replica ``index``'s parameters."""
        if not 0 <= index < self.replicas:
            raise ValueError(f"replica must be in [0, {self.replicas}), got {index!r}")
        single = copy.deepcopy(self)
        with torch.no_grad():
            for param in single.parameters():
                param.data = param.data[index:index + 1].clone()
        single.replicas = 1
        single.__dict__.pop("_trainable_cache", None)
        single.__dict__.pop("_flat_sizes", None)
        return single

    def _batch(self, obs: Tensor) -> int:
        rows = obs.shape[0]
        if rows % self.replicas:
            raise ValueError(
                f"{rows} observation rows do not split into {self.replicas} replicas"
            )
        return rows // self.replicas

    def _net_rows(self, net: nn.Module, obs: Tensor) -> Tensor:
        """Apply a replicated network to replica-major rows: ``[R*B, o] -> [R*B, out]``."""
        out = net(obs.reshape(self.replicas, -1, obs.shape[-1]))
        return out.reshape(-1, out.shape[-1])


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, int):
        hidden = (hidden,)
    return tuple(check_int("hidden layer size", h, minimum=1) for h in hidden)


def _output_layer_init(net: nn.Sequential, bias: Tensor) -> None:
    """Small output weights and a given output bias (the policy starts at ``bias``)."""
    last = net[-1]
    with torch.no_grad():
        last.weight.mul_(0.01)
        last.bias.copy_(bias.expand_as(last.bias))


POLICIES: Registry[Policy] = Registry("policy", Policy)


@POLICIES.register("gaussian")
class GaussianPolicy(Policy):
    """Diagonal Gaussian policy with a state-independent std.

    With ``hidden=()`` the mean is a free parameter vector too: the paper's policy
    ``N(mu_i, sigma_i^2)`` (mean 1.5, std 0.5 at start), whose Jacobian products are exact
    and cheap. Otherwise the mean is an MLP of the observation.

    Args:
        obs_dim: observation size.
        act_dim: action size ``d``.
        hidden: MLP hidden sizes; ``()`` for a state-independent mean.
        activation: ``"tanh"``, ``"relu"`` or ``"elu"``.
        init_mean: initial mean (the MLP's output bias), scalar or one value per dimension.
        init_std: initial std.
        std_param: std parameterisation config string (``"log_std"``, ``"bounded"``, ...).
        min_std: std floor passed to the parameterisation.
        replicas: ``R`` independent copies.
        generators: one torch generator per replica for the MLP initialisation.
    """

    action_kind = "continuous"

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (),
        activation: str = "tanh",
        init_mean: float | Sequence[float] = 0.0,
        init_std: float = 1.0,
        std_param: str = "log_std",
        min_std: float = 1e-3,
        replicas: int = 1,
        generators: Sequence[torch.Generator] | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = check_int("obs_dim", obs_dim, minimum=0)
        self.act_dim = check_int("act_dim", act_dim, minimum=1)
        self.replicas = check_int("replicas", replicas, minimum=1)
        self.hidden = _check_hidden(hidden)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.std_parameterisation = STD_PARAMETERISATIONS.build(std_param, min_std=min_std)
        init_std = check_positive("init_std", init_std)
        mean0 = torch.as_tensor(init_mean, dtype=torch.get_default_dtype()).expand(act_dim)
        for value in mean0.tolist():
            check_finite("init_mean", value)
        rho0 = torch.full((act_dim,), self.std_parameterisation.inverse(init_std))
        if self.hidden:
            self.mean_net: nn.Module | None = replicated_mlp(
                replicas, (obs_dim, *self.hidden, act_dim), activation, generators
            )
            _output_layer_init(self.mean_net, mean0)
            head = rho0
        else:
            self.mean_net = None
            head = torch.cat((mean0, rho0))
        # one tensor for the free parameters: (mean, rho) or rho; ``mean`` and ``rho`` are
        # views of it, and the flat parameters of the paper's policy are this tensor itself
        self.theta = nn.Parameter(head.expand(replicas, -1).clone())

    @property
    def mean(self) -> Tensor | None:
        """The free mean ``[R, d]`` (a view of ``theta``), or ``None`` with an MLP mean."""
        return self.theta.narrow(1, 0, self.act_dim) if self.mean_net is None else None

    @property
    def rho(self) -> Tensor:
        """The std's free parameter ``[R, d]`` (a view of ``theta``)."""
        theta = self.theta
        return theta.narrow(1, theta.shape[1] - self.act_dim, self.act_dim)

    @property
    def state_independent(self) -> bool:
        return self.mean_net is None

    @property
    def autograd_free(self) -> bool:
        return self.mean_net is None

    def std(self) -> Tensor:
        """Current std ``[R, d]``."""
        return self.std_parameterisation.std(self.rho)

    def distribution(self, obs: Tensor) -> DiagGaussian:
        batch = self._batch(obs)
        std = per_state_rows(self.std_parameterisation.std(self.rho), batch)
        if self.mean_net is None:
            # clone: a distribution never aliases the parameters (they move in place later)
            mean = per_state_rows(self.mean.clone(), batch)
        else:
            mean = self._net_rows(self.mean_net, obs)
        return DiagGaussian(mean, std)

    def linearize(self, obs: Tensor) -> Linearization:
        if self.mean_net is None:
            # a snapshot (a copy), not a view of the parameters that move
            return self.linearize_at(self.flat_parameters(), obs)
        return AutogradLinearization(self, obs)

    def linearize_at(self, params: Tensor, obs: Tensor) -> Linearization:
        if self.mean_net is None:  # closed form straight from the parameters
            d = self.act_dim
            return _StateIndependentGaussianLinearization(
                self, params[:, :d], params[:, d:], self._batch(obs)
            )
        return super().linearize_at(params, obs)

    @property
    def batched_candidates(self) -> bool:
        return self.mean_net is None

    def candidate_distributions(self, candidates: Tensor, obs: Tensor) -> ActionDistribution:
        if self.mean_net is not None:
            return super().candidate_distributions(candidates, obs)
        d, batch = self.act_dim, self._batch(obs)
        with torch.no_grad():
            std = self.std_parameterisation.std(candidates[..., d:])  # [R, K, d]
            mean = candidates[..., :d]
        rows = candidates.shape[0] * candidates.shape[1]
        return DiagGaussian(per_state_rows(mean.reshape(rows, d), batch),
                            per_state_rows(std.reshape(rows, d), batch))

    def summary(self) -> dict[str, list[float]]:
        """``mean_k`` (state-independent mean only) and ``std_k`` per replica."""
        names = self.__dict__.get("_summary_names")
        if names is None:
            means = [f"mean_{k}" for k in range(self.act_dim)] if self.mean_net is None else []
            names = self.__dict__["_summary_names"] = [
                *means, *(f"std_{k}" for k in range(self.act_dim))]
        with torch.no_grad():
            std = self.std()
            values = std if self.mean_net is not None else torch.cat((self.mean, std), 1)
            return dict(zip(names, values.t().tolist()))


class _StateIndependentGaussianLinearization(Linearization):
    """Exact ``J v`` / ``J^T u`` for ``theta = (mean [R, d], rho [R, d])`` broadcast over
    each replica's ``B`` rows."""

    separable = True

    def __init__(self, policy: GaussianPolicy, mean: Tensor, rho: Tensor, batch: int) -> None:
        std, self._dstd = policy.std_parameterisation.std_and_derivative(rho)
        self.state_dist = DiagGaussian(mean, std)
        self.dist = DiagGaussian(per_state_rows(mean, batch), per_state_rows(std, batch))
        self._batch = batch
        self._dim = policy.act_dim

    def jvp(self, vector: Tensor) -> Params:
        d, b = self._dim, self._batch
        return (per_state_rows(vector[:, :d], b), per_state_rows(self._dstd * vector[:, d:], b))

    def vjp(self, cotangent: Params) -> Tensor:
        u_mean, u_std = cotangent
        replicas = self._dstd.shape[0]
        if replicas == 1:  # the rows are the one replica's
            sum_mean, sum_std = u_mean.sum(0, keepdim=True), u_std.sum(0, keepdim=True)
        else:
            sum_mean = u_mean.reshape(replicas, self._batch, -1).sum(1)
            sum_std = u_std.reshape(replicas, self._batch, -1).sum(1)
        return torch.cat((sum_mean, self._dstd * sum_std), dim=1)


@POLICIES.register("categorical")
class CategoricalPolicy(Policy):
    """Softmax policy over ``K`` discrete actions.

    Args:
        obs_dim: observation size.
        num_actions: ``K``.
        hidden: MLP hidden sizes; ``()`` for free (state-independent) logits.
        activation: ``"tanh"``, ``"relu"`` or ``"elu"``.
        init_logits: initial logits (scalar or ``[K]``); zeros give the uniform policy.
        replicas: ``R`` independent copies.
        generators: one torch generator per replica for the MLP initialisation.
    """

    action_kind = "discrete"

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (),
        activation: str = "tanh",
        init_logits: float | Sequence[float] = 0.0,
        replicas: int = 1,
        generators: Sequence[torch.Generator] | None = None,
    ) -> None:
        super().__init__()
        self.obs_dim = check_int("obs_dim", obs_dim, minimum=0)
        self.num_actions = check_int("num_actions", num_actions, minimum=2)
        self.replicas = check_int("replicas", replicas, minimum=1)
        self.hidden = _check_hidden(hidden)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        logits0 = torch.as_tensor(init_logits, dtype=torch.get_default_dtype()).expand(
            num_actions
        )
        for value in logits0.tolist():
            check_finite("init_logits", value)
        if self.hidden:
            self.logits_net: nn.Module | None = replicated_mlp(
                replicas, (obs_dim, *self.hidden, num_actions), activation, generators
            )
            _output_layer_init(self.logits_net, logits0)
            self.logits = None
        else:
            self.logits_net = None
            self.logits = nn.Parameter(logits0.expand(replicas, num_actions).clone())

    def distribution(self, obs: Tensor) -> Categorical:
        if self.logits_net is None:
            # clone: a distribution never aliases the parameters (they move in place later)
            return Categorical(per_state_rows(self.logits.clone(), self._batch(obs)))
        return Categorical(self._net_rows(self.logits_net, obs))

    def linearize(self, obs: Tensor) -> Linearization:
        if self.logits_net is None:
            # clone: a snapshot, not a view of the parameters the solver moves
            return _FreeLogitsLinearization(self.logits.detach().clone(), self._batch(obs))
        return AutogradLinearization(self, obs)

    def linearize_at(self, params: Tensor, obs: Tensor) -> Linearization:
        if self.logits_net is None:  # closed form straight from the parameters
            return _FreeLogitsLinearization(params, self._batch(obs))
        return super().linearize_at(params, obs)

    @property
    def batched_candidates(self) -> bool:
        return self.logits_net is None

    @property
    def state_independent(self) -> bool:
        return self.logits_net is None

    @property
    def autograd_free(self) -> bool:
        return self.logits_net is None

    def candidate_distributions(self, candidates: Tensor, obs: Tensor) -> ActionDistribution:
        if self.logits_net is not None:
            return super().candidate_distributions(candidates, obs)
        rows = candidates.shape[0] * candidates.shape[1]
        logits = candidates.detach().reshape(rows, self.num_actions)
        return Categorical(per_state_rows(logits, self._batch(obs)))

    def summary(self) -> dict[str, list[float]]:
        if self.logits_net is not None:
            return {}
        with torch.no_grad():
            probs = torch.softmax(self.logits, -1).t().tolist()
        return {f"prob_{k}": p for k, p in enumerate(probs)}


class _FreeLogitsLinearization(Linearization):
    """Exact products for free logits ``theta = logits [R, K]`` broadcast over ``B`` rows."""

    separable = True

    def __init__(self, logits: Tensor, batch: int) -> None:
        self.dist = Categorical(per_state_rows(logits.detach(), batch))
        self._batch = batch
        self._replicas = logits.shape[0]

    def jvp(self, vector: Tensor) -> Params:
        return (per_state_rows(vector, self._batch),)

    def vjp(self, cotangent: Params) -> Tensor:
        return cotangent[0].reshape(self._replicas, self._batch, -1).sum(1)
