"""Divergences between an agent's old and new policy (registry: ``DIVERGENCES``).

Importing this package registers the built-ins.
"""

from marl_tr.divergences.base import DIVERGENCES, Divergence

__all__ = ["DIVERGENCES", "Divergence"]
