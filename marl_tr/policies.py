"""Per-agent policies and the Jacobian products that solvers use.

A policy maps observations ``[B, obs_dim]`` to an ``ActionDistribution``. Solvers never
differentiate through a policy directly: they ask for a ``Linearization`` of the map
``theta -> distribution parameters`` on a batch and use its Jacobian-vector products
``J v`` and ``J^T u``. The state-independent heads (the paper's game) compute both in closed
form; any other ``torch.nn.Module`` policy gets them from autograd.

Built-ins (registry ``POLICIES``):
    ``gaussian``: diagonal Gaussian; ``hidden=()`` gives the paper's state-independent
        policy (mean and std are free parameters), otherwise an MLP mean.
    ``categorical``: softmax over ``K`` actions; ``hidden=()`` gives free logits.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from marl_tr.distributions import ActionDistribution, Categorical, DiagGaussian, Params
from marl_tr.registry import Plugin, Registry
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
]

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


# ---------------------------------------------------------------------------------------
# Jacobian products of theta -> distribution parameters
# ---------------------------------------------------------------------------------------
class Linearization(ABC):
    """The map ``theta -> dist.params()`` linearised at the current ``theta`` on a batch.

    Attributes:
        dist: the distribution at the current parameters: detached, and a snapshot (it does
            not change when the parameters are written afterwards).
        separable: each parameter moves exactly one distribution-parameter column of its
            own, identically for every state (so a diagonal distribution-space Hessian stays
            diagonal in parameter space).
    """

    dist: ActionDistribution
    separable: ClassVar[bool] = False

    @abstractmethod
    def jvp(self, vector: Tensor) -> Params:
        """``J v``: a flat parameter direction ``[P]`` -> a tangent shaped like params."""

    @abstractmethod
    def vjp(self, cotangent: Params) -> Tensor:
        """``J^T u``: a cotangent shaped like params -> a flat ``[P]`` vector (summed over B)."""


class AutogradLinearization(Linearization):
    """Generic Jacobian products by autograd, one forward pass shared by all products.

    ``J^T u`` is a vector-Jacobian product; ``J v`` uses the double-backward trick on the
    (linear in ``u``) graph of ``J^T u``.
    """

    def __init__(self, policy: Policy, obs: Tensor) -> None:
        self._params = policy.trainable_parameters()
        with torch.enable_grad():
            dist = policy.distribution(obs)
            self._outputs = dist.params()
        self.dist = dist.detach()
        self._jvp_graph: tuple[list[Tensor], Tensor] | None = None

    def _flatten(self, grads: Sequence[Tensor | None]) -> Tensor:
        return torch.cat([
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, self._params)
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


STD_PARAMETERISATIONS: Registry[StdParameterisation] = Registry(
    "std parameterisation", StdParameterisation
)


@STD_PARAMETERISATIONS.register("log_std", aliases=("log",))
class LogStd(StdParameterisation):
    """``std = min_std + exp(rho)``: log-std with a smooth floor.

    The floor keeps a collapsed policy finite (log-probabilities, ratios and Fisher terms
    stay bounded), and ``d std/d rho -> 0`` as the std approaches it, so no step can cross it.

    Args:
        min_std: the floor (> 0).
    """

    def __init__(self, min_std: float = 1e-3) -> None:
        self.min_std = check_positive("min_std", min_std)

    def std(self, rho: Tensor) -> Tensor:
        return self.min_std + torch.exp(rho)

    def derivative(self, rho: Tensor) -> Tensor:
        return torch.exp(rho)

    def inverse(self, std: float) -> float:
        if std <= self.min_std:
            raise ValueError(f"init_std must be > min_std = {self.min_std}, got {std!r}")
        return math.log(std - self.min_std)


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


# ---------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------
class Policy(nn.Module, ABC):
    """One agent's policy ``pi_theta(a | o)``.

    Class attributes:
        action_kind: ``"continuous"`` or ``"discrete"``.
    """

    action_kind: ClassVar[str]

    @abstractmethod
    def distribution(self, obs: Tensor) -> ActionDistribution:
        """The action distribution for each observation row, batch ``B = obs.shape[0]``.

        Its tensors must not be views of the parameters: solvers write parameters in place
        and keep earlier distributions as snapshots.
        """

    @property
    def batched_candidates(self) -> bool:
        """Whether ``candidate_distributions`` costs about one forward pass for any ``K``."""
        return False

    def candidate_distributions(self, candidates: Tensor, obs: Tensor) -> ActionDistribution:
        """Distributions under ``K`` parameter vectors ``[K, P]`` on ``obs`` ``[B, obs_dim]``.

        Returns one distribution of batch ``K * B``, candidate-major (rows ``k*B .. k*B+B-1``
        belong to candidate ``k``). Default: one forward pass per candidate; the current
        parameters are restored afterwards.
        """
        current = self.flat_parameters()
        dists = []
        with torch.no_grad():
            for flat in candidates:
                self.set_flat_parameters(flat)
                dists.append(self.distribution(obs))
        self.set_flat_parameters(current)
        stacked = zip(*(d.params() for d in dists))
        return type(dists[0]).from_params(tuple(torch.cat(p) for p in stacked))

    def linearize(self, obs: Tensor) -> Linearization:
        """Jacobian products of ``theta -> distribution(obs).params()`` (autograd default)."""
        return AutogradLinearization(self, obs)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters in a fixed order (cached: the hot path walks them often)."""
        cached = self.__dict__.get("_trainable_cache")
        if cached is None:
            cached = [p for p in self.parameters() if p.requires_grad]
            self.__dict__["_trainable_cache"] = cached
        return cached

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def flat_parameters(self) -> Tensor:
        """A detached copy of all trainable parameters as one vector ``[P]``."""
        params = self.trainable_parameters()
        if len(params) == 1:
            return params[0].detach().reshape(-1).clone()
        return torch.cat([p.detach().reshape(-1) for p in params])

    def set_flat_parameters(self, flat: Tensor) -> None:
        """Write a ``[P]`` vector back into the parameters."""
        offset = 0
        with torch.no_grad():
            for p in self.trainable_parameters():
                count = p.numel()
                p.copy_(flat[offset:offset + count].view_as(p))
                offset += count

    def summary(self) -> dict[str, float]:
        """Scalars worth logging (e.g. the mean and std of a state-independent policy)."""
        return {}


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, int):
        hidden = (hidden,)
    return tuple(check_int("hidden layer size", h, minimum=1) for h in hidden)


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
    ) -> None:
        super().__init__()
        self.obs_dim = check_int("obs_dim", obs_dim, minimum=0)
        self.act_dim = check_int("act_dim", act_dim, minimum=1)
        self.hidden = _check_hidden(hidden)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.std_parameterisation = STD_PARAMETERISATIONS.build(std_param, min_std=min_std)
        init_std = check_positive("init_std", init_std)
        mean0 = torch.as_tensor(init_mean, dtype=torch.get_default_dtype()).expand(act_dim)
        for value in mean0.tolist():
            check_finite("init_mean", value)
        rho0 = self.std_parameterisation.inverse(init_std)
        if self.hidden:
            self.mean_net: nn.Module | None = _mlp((obs_dim, *self.hidden, act_dim), activation)
            last = self.mean_net[-1]
            with torch.no_grad():
                last.weight.mul_(0.01)
                last.bias.copy_(mean0)
            self.mean = None
        else:
            self.mean_net = None
            self.mean = nn.Parameter(mean0.clone())
        self.rho = nn.Parameter(torch.full((act_dim,), rho0))

    @property
    def state_independent(self) -> bool:
        return self.mean_net is None

    def std(self) -> Tensor:
        """Current std ``[d]``."""
        return self.std_parameterisation.std(self.rho)

    def distribution(self, obs: Tensor) -> DiagGaussian:
        batch = obs.shape[0]
        std = self.std_parameterisation.std(self.rho).expand(batch, self.act_dim)
        if self.mean_net is None:
            # clone: a distribution never aliases the parameters (they move in place later)
            mean = self.mean.clone().expand(batch, self.act_dim)
        else:
            mean = self.mean_net(obs)
        return DiagGaussian(mean, std)

    def linearize(self, obs: Tensor) -> Linearization:
        if self.mean_net is None:
            return _StateIndependentGaussianLinearization(self, obs.shape[0])
        return AutogradLinearization(self, obs)

    @property
    def batched_candidates(self) -> bool:
        return self.mean_net is None

    def candidate_distributions(self, candidates: Tensor, obs: Tensor) -> ActionDistribution:
        if self.mean_net is not None:
            return super().candidate_distributions(candidates, obs)
        k, d, b = candidates.shape[0], self.act_dim, obs.shape[0]
        with torch.no_grad():
            std = self.std_parameterisation.std(candidates[:, d:])
            mean = candidates[:, :d]
        return DiagGaussian(
            mean.unsqueeze(1).expand(k, b, d).reshape(k * b, d),
            std.unsqueeze(1).expand(k, b, d).reshape(k * b, d),
        )

    def summary(self) -> dict[str, float]:
        with torch.no_grad():
            stds = self.std().tolist()
            means = self.mean.tolist() if self.mean_net is None else []
        out = {f"mean_{k}": m for k, m in enumerate(means)}
        out.update({f"std_{k}": s for k, s in enumerate(stds)})
        return out


class _StateIndependentGaussianLinearization(Linearization):
    """Exact ``J v`` / ``J^T u`` for ``theta = (mean [d], rho [d])`` broadcast over ``B``."""

    separable = True

    def __init__(self, policy: GaussianPolicy, batch: int) -> None:
        with torch.no_grad():  # clone: a snapshot, not a view of parameters the solver moves
            rho = policy.rho.detach().clone()
            self._dstd = policy.std_parameterisation.derivative(rho)
            mean = policy.mean.detach().clone().expand(batch, policy.act_dim)
            std = policy.std_parameterisation.std(rho).expand(batch, policy.act_dim)
        self.dist = DiagGaussian(mean, std)
        self._batch = batch
        self._dim = policy.act_dim

    def jvp(self, vector: Tensor) -> Params:
        d, b = self._dim, self._batch
        return (vector[:d].expand(b, d), (self._dstd * vector[d:]).expand(b, d))

    def vjp(self, cotangent: Params) -> Tensor:
        u_mean, u_std = cotangent
        return torch.cat((u_mean.sum(0), self._dstd * u_std.sum(0)))


@POLICIES.register("categorical")
class CategoricalPolicy(Policy):
    """Softmax policy over ``K`` discrete actions.

    Args:
        obs_dim: observation size.
        num_actions: ``K``.
        hidden: MLP hidden sizes; ``()`` for free (state-independent) logits.
        activation: ``"tanh"``, ``"relu"`` or ``"elu"``.
        init_logits: initial logits (scalar or ``[K]``); zeros give the uniform policy.
    """

    action_kind = "discrete"

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden: Sequence[int] = (),
        activation: str = "tanh",
        init_logits: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        self.obs_dim = check_int("obs_dim", obs_dim, minimum=0)
        self.num_actions = check_int("num_actions", num_actions, minimum=2)
        self.hidden = _check_hidden(hidden)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        logits0 = torch.as_tensor(init_logits, dtype=torch.get_default_dtype()).expand(
            num_actions
        )
        for value in logits0.tolist():
            check_finite("init_logits", value)
        if self.hidden:
            self.logits_net: nn.Module | None = _mlp(
                (obs_dim, *self.hidden, num_actions), activation
            )
            last = self.logits_net[-1]
            with torch.no_grad():
                last.weight.mul_(0.01)
                last.bias.copy_(logits0)
            self.logits = None
        else:
            self.logits_net = None
            self.logits = nn.Parameter(logits0.clone())

    def distribution(self, obs: Tensor) -> Categorical:
        batch = obs.shape[0]
        if self.logits_net is None:
            # clone: a distribution never aliases the parameters (they move in place later)
            return Categorical(self.logits.clone().expand(batch, self.num_actions))
        return Categorical(self.logits_net(obs))

    def linearize(self, obs: Tensor) -> Linearization:
        if self.logits_net is None:
            return _FreeLogitsLinearization(self, obs.shape[0])
        return AutogradLinearization(self, obs)

    @property
    def batched_candidates(self) -> bool:
        return self.logits_net is None

    def candidate_distributions(self, candidates: Tensor, obs: Tensor) -> ActionDistribution:
        if self.logits_net is not None:
            return super().candidate_distributions(candidates, obs)
        k, b = candidates.shape[0], obs.shape[0]
        logits = candidates.detach().unsqueeze(1).expand(k, b, self.num_actions)
        return Categorical(logits.reshape(k * b, self.num_actions))

    def summary(self) -> dict[str, float]:
        if self.logits_net is not None:
            return {}
        probs = torch.softmax(self.logits.detach(), -1).tolist()
        return {f"prob_{k}": p for k, p in enumerate(probs)}


class _FreeLogitsLinearization(Linearization):
    """Exact products for free logits ``theta = logits [K]`` broadcast over ``B``."""

    separable = True

    def __init__(self, policy: CategoricalPolicy, batch: int) -> None:
        # clone: a snapshot, not a view of the parameters the solver moves
        logits = policy.logits.detach().clone()
        self.dist = Categorical(logits.expand(batch, policy.num_actions))
        self._shape = (batch, policy.num_actions)

    def jvp(self, vector: Tensor) -> Params:
        return (vector.expand(*self._shape),)

    def vjp(self, cotangent: Params) -> Tensor:
        return cotangent[0].sum(0)
