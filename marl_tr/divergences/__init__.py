"""Divergences between an agent's old and new policy (registry: ``DIVERGENCES``).

Importing this package registers the built-ins:

- ``kl`` (:class:`KL`): Kullback-Leibler, HATRPO's trust region; closed form.
- ``w1``, alias ``wasserstein`` (:class:`Wasserstein1`): exact W1, W-MATRPO's.
- ``w1_bound`` (:class:`Wasserstein1Bound`): the paper's eq. 31, an upper bound on W1.
- ``w2`` (:class:`Wasserstein2`): exact W2.
- ``js``, alias ``jensen_shannon`` (:class:`JensenShannon`): Jensen-Shannon.
- ``hellinger`` (:class:`Hellinger`): squared Hellinger distance.
- ``tv``, alias ``total_variation`` (:class:`TotalVariation`): total variation distance.

A user's divergence is one ``Divergence`` subclass with ``@DIVERGENCES.register("name")``
(see ``docs/extending.md``), or a ``"package.module:Class"`` config string.
"""

from __future__ import annotations

from marl_tr.divergences.base import DIVERGENCES, Divergence, divergences_supporting
from marl_tr.divergences.hellinger import Hellinger
from marl_tr.divergences.jensen_shannon import JensenShannon
from marl_tr.divergences.kl import KL
from marl_tr.divergences.total_variation import TotalVariation
from marl_tr.divergences.wasserstein import Wasserstein1, Wasserstein1Bound, Wasserstein2

__all__ = [
    "DIVERGENCES",
    "KL",
    "Divergence",
    "Hellinger",
    "JensenShannon",
    "TotalVariation",
    "Wasserstein1",
    "Wasserstein1Bound",
    "Wasserstein2",
    "divergences_supporting",
]
