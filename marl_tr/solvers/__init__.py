"""Constrained-step solvers (registry: ``SOLVERS``). Importing registers the built-ins."""

from marl_tr.solvers.base import SOLVERS, AgentProblem, Evaluation, Solver, StepResult
from marl_tr.solvers.dual_step import OTDual
from marl_tr.solvers.exact_radius import ExactRadius
from marl_tr.solvers.natural_gradient import NaturalGradient, conjugate_gradient
from marl_tr.solvers.ppo import PPOClip
from marl_tr.solvers.primal_dual import PrimalDual

__all__ = [
    "SOLVERS",
    "AgentProblem",
    "Evaluation",
    "ExactRadius",
    "NaturalGradient",
    "OTDual",
    "PPOClip",
    "PrimalDual",
    "Solver",
    "StepResult",
    "conjugate_gradient",
]
