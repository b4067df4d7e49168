"""The divergence interface: what a trust region measures between an old and a new policy.

A divergence compares an agent's old and new action distributions state by state:
``D(old, new) -> [B]``, differentiable in the parameters of ``new``. Beyond the value it
offers the two derivatives solvers need, both in *distribution-parameter* space (see
``marl_tr.distributions``):

- ``grad_new(old, new)``: ``dD/d(new params)`` per state (primal-dual steps);
- ``hvp(old, tangent)``: the Hessian of ``D(old, .)`` at ``new = old`` applied to a
  tangent, per state (natural-gradient steps; only where ``smooth_at_identity``).

Both default to autograd; closed forms override them for speed. Capability flags are class
attributes so that solvers and schedulers can refuse a pairing at config time.

Transport divergences also expose their ground cost between actions, ``ground_cost(actions,
candidates)`` (``has_ground_metric``), for solvers that price moves between actions (the exact
dual of Theorem 1). ``divergences_supporting(Categorical)`` lists the registered divergences
that fit a kind of action space or a distribution type, for refusal messages.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from marl_tr.distributions import ActionDistribution, Params
from marl_tr.registry import Plugin, Registry

__all__ = ["DIVERGENCES", "Divergence", "divergences_supporting"]


class Divergence(Plugin, ABC):
    """``D(old, new)`` between batched action distributions.

    Capability flags (class attributes):
        supports_continuous / supports_discrete: which action spaces it handles.
        symmetric: ``D(p, q) == D(q, p)``.
        is_metric: a true metric (symmetric, triangle inequality, zero only at identity).
        smooth_at_identity: twice differentiable at ``new == old`` with a zero gradient
            there, so that a Fisher-style Hessian exists (natural-gradient solvers).
        closed_form: exact without sampling or quadrature.
        supported_distributions: the distribution classes the formulas handle; empty means
            any distribution of a supported kind. ``check_supported`` enforces it.
        has_ground_metric: ``ground_cost`` gives the cost between two actions that the
            divergence transports mass under (the ``c`` of the paper's eq. 2).
        supremum: the largest value it can take (``inf`` if unbounded): a radius at or
            above it never binds, and no step length reaches it.
    """

    supports_continuous: ClassVar[bool] = True
    supports_discrete: ClassVar[bool] = False
    symmetric: ClassVar[bool] = False
    is_metric: ClassVar[bool] = False
    smooth_at_identity: ClassVar[bool] = False
    closed_form: ClassVar[bool] = False
    supported_distributions: ClassVar[tuple[type[ActionDistribution], ...]] = ()
    has_ground_metric: ClassVar[bool] = False
    supremum: ClassVar[float] = math.inf

    # -- value --------------------------------------------------------------------------
    def __call__(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        """``D(old, new)`` per state, ``[B]``. Checks kinds and shapes first."""
        self.check(old, new)
        return self.compute(old, new)

    @abstractmethod
    def compute(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        """``D(old, new)`` per state, ``[B]``, without argument checks."""

    def mean(self, old: ActionDistribution, new: ActionDistribution) -> Tensor:
        """``E_s[D(old, new)]`` over the batch: the trust-region constraint's left side."""
        return self(old, new).mean()

    def supports(self, dist: ActionDistribution) -> bool:
        """Whether this divergence handles ``dist``'s kind of action space."""
        if dist.kind == "continuous":
            return self.supports_continuous
        if dist.kind == "discrete":
            return self.supports_discrete
        return False

    def check(self, old: ActionDistribution, new: ActionDistribution) -> None:
        """Raise ``ValueError`` for an unsupported distribution or mismatched shapes."""
        self.check_supported(old)
        old.check_compatible(new, what=f"distributions for {type(self).__name__}")

    def check_options_fit(self, kind: str) -> None:
        """Raise ``ValueError`` if an option given to this divergence has no meaning for a
        run's ``kind`` of actions (``"continuous"`` or ``"discrete"``): checked once, when a
        run is built, so that no option is silently ignored."""

    def check_supported(self, dist: ActionDistribution) -> None:
        """Raise ``ValueError`` unless this divergence can evaluate ``dist``'s kind and type.

        Subclasses with further limits (an action dimension, an option that has no formula
        for some input) extend it and call ``super().check_supported(dist)`` first.
        """
        if not self.supports(dist):
            raise ValueError(
                f"{self!r} does not support {dist.kind} actions ({type(dist).__name__}); "
                f"it supports {self.supported_kinds()}; {_fitting(type(dist))}"
            )
        allowed = self.supported_distributions
        if allowed and not isinstance(dist, allowed):
            names = ", ".join(cls.__name__ for cls in allowed)
            raise ValueError(
                f"{self!r} has no formula for {type(dist).__name__}; it handles {names}; "
                f"{_fitting(type(dist))}"
            )

    @classmethod
    def supported_kinds(cls) -> str:
        kinds = [k for k, ok in (("continuous", cls.supports_continuous),
                                 ("discrete", cls.supports_discrete)) if ok]
        return " and ".join(kinds) or "nothing"

    # -- ground cost ----------------------------------------------------------------------
    def ground_cost(
        self, actions: Tensor, candidates: Tensor, *, dtype: torch.dtype | None = None
    ) -> Tensor:
        """The ground cost ``c(a, a')`` between each action and its candidate actions.

        Args:
            actions: continuous ``[N, d]`` (float) or discrete ``[N]`` (integer).
            candidates: continuous ``[N, K, d]`` or discrete ``[N, K]``.
            dtype: the result's dtype for discrete actions (default: torch's default dtype).

        Returns:
            ``[N, K]``: ``c(actions[n], candidates[n, k])``.

        Raises:
            NotImplementedError: the divergence transports no mass under a ground cost
                (``has_ground_metric`` is False).
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no ground cost between actions (has_ground_metric is "
            "False); use a transport divergence such as 'w1'"
        )

    # -- derivatives in distribution-parameter space ------------------------------------
    def grad_new(self, old: ActionDistribution, new: ActionDistribution) -> Params:
        """``dD(old, new)/d(new params)`` per state, shaped like ``new.params()``.

        Default: autograd on ``compute``. Override with a closed form where one exists.
        """
        self.check(old, new)
        with torch.enable_grad():
            leaves = tuple(p.detach().requires_grad_(True) for p in new.params())
            value = self.compute(old.detach(), type(new).from_params(leaves)).sum()
            return _gradient(value, leaves)

    @property
    def autograd_free(self) -> bool:
        """Whether ``grad_new`` and (where smooth) ``hvp`` are computed without autograd.

        A training run whose parts are all autograd-free steps under
        ``torch.inference_mode`` (no autograd bookkeeping). Derived from which methods the
        class overrides; a subclass whose override may still fall back to autograd says so.
        """
        cls = type(self)
        analytic_grad = cls.grad_new is not Divergence.grad_new
        analytic_hvp = cls.hvp is not Divergence.hvp or not self.smooth_at_identity
        return analytic_grad and analytic_hvp

    def homogeneous(self, dist: ActionDistribution) -> bool:
        """Whether ``D(old, old + t u) = t D(old, old + u)`` for ``t >= 0`` and displacements
        ``u`` of ``dist``'s parameters (while they stay valid): positively homogeneous of
        order 1, like a norm of the step. Solvers then get the step length that reaches a
        radius along a linear ray in closed form. Default: ``False`` (no claim)."""
        return False

    def diagonal_hessian(self, dist: ActionDistribution) -> bool:
        """Whether ``hvp`` at ``dist`` is diagonal in ``dist.params()`` coordinates (each
        parameter's curvature independent of the others). Solvers then solve exactly
        instead of iterating. Default: ``False`` (no claim)."""
        return False

    def hvp(self, old: ActionDistribution, tangent: Params) -> Params:
        """Hessian of ``D(old, .)`` at ``old`` applied to ``tangent``, per state.

        ``tangent`` is shaped like ``old.params()``. Only for ``smooth_at_identity``
        divergences; default: double-backward autograd.
        """
        if not self.smooth_at_identity:
            raise NotImplementedError(
                f"{type(self).__name__} is not smooth at identity: it has no Hessian there "
                "(use a solver that does not need one, e.g. 'primal_dual')"
            )
        self.check_supported(old)
        with torch.enable_grad():
            base = old.detach()
            leaves = tuple(p.detach().clone().requires_grad_(True) for p in base.params())
            value = self.compute(base, type(old).from_params(leaves)).sum()
            grads = _gradient(value, leaves, create_graph=True)
            dot = sum((g * t.detach()).sum() for g, t in zip(grads, tangent))
            return _gradient(dot, leaves)


def divergences_supporting(
    dist_type_or_kind: str | type[ActionDistribution] | ActionDistribution,
) -> list[str]:
    """The registered divergences (canonical names, sorted) that can evaluate a kind of action
    space or a distribution type, judged by their class flags (``supports_continuous`` /
    ``supports_discrete`` and ``supported_distributions``).

    Args:
        dist_type_or_kind: ``"continuous"`` or ``"discrete"``, an ``ActionDistribution``
            subclass (``Categorical``) or an instance of one.

    Raises:
        ValueError: anything else.
    """
    if isinstance(dist_type_or_kind, ActionDistribution):
        dist_type_or_kind = type(dist_type_or_kind)
    if isinstance(dist_type_or_kind, type) and issubclass(dist_type_or_kind, ActionDistribution):
        kind, dist_type = dist_type_or_kind.kind, dist_type_or_kind
    elif dist_type_or_kind in ("continuous", "discrete"):
        kind, dist_type = dist_type_or_kind, None
    else:
        raise ValueError(
            "dist_type_or_kind must be 'continuous', 'discrete' or an ActionDistribution type, "
            f"got {dist_type_or_kind!r}"
        )
    names = []
    for name in DIVERGENCES.names():
        cls = DIVERGENCES.get(name)
        if not getattr(cls, f"supports_{kind}", False):
            continue
        allowed = cls.supported_distributions
        if dist_type is not None and allowed and not issubclass(dist_type, allowed):
            continue
        names.append(name)
    return names


def _fitting(dist_type: type[ActionDistribution]) -> str:
    """``"divergences that fit Categorical: hellinger, js, ..."`` for refusal messages."""
    names = divergences_supporting(dist_type)
    return f"divergences that fit {dist_type.__name__}: {', '.join(names) or '(none)'}"


def _gradient(output: Tensor, leaves: Params, create_graph: bool = False) -> Params:
    """``d output / d leaves``, with zeros for leaves ``output`` does not depend on (a
    divergence may ignore a parameter, e.g. one that only compares means)."""
    if not output.requires_grad:
        return tuple(torch.zeros_like(leaf) for leaf in leaves)
    return torch.autograd.grad(
        output, leaves, create_graph=create_graph, allow_unused=True, materialize_grads=True
    )


DIVERGENCES: Registry[Divergence] = Registry("divergence", Divergence)
