"""Divergences between an agent's old and new policy (registry: ``DIVERGENCES``).

Importing this package registers the built-ins:

==============  =======================  ===============================================
name            class                    what
==============  =======================  ===============================================
``kl``          :class:`KL`              Kullback-Leibler (HATRPO), closed form
``w1``          :class:`Wasserstein1`    exact W1 (W-MATRPO); alias ``wasserstein``
``w1_bound``    :class:`Wasserstein1Bound`  the paper's eq. 31, an upper bound on W1
``w2``          :class:`Wasserstein2`    exact W2
``js``          :class:`JensenShannon`   Jensen-Shannon; alias ``jensen_shannon``
``hellinger``   :class:`Hellinger`       squared Hellinger distance
==============  =======================  ===============================================

A user's divergence is one ``Divergence`` subclass with ``@DIVERGENCES.register("name")``
(see ``docs/extending.md``), or a ``"package.module:Class"`` config string.
"""

from marl_tr.divergences.base import DIVERGENCES, Divergence
from marl_tr.divergences.hellinger import Hellinger
from marl_tr.divergences.jensen_shannon import JensenShannon
from marl_tr.divergences.kl import KL
from marl_tr.divergences.wasserstein import Wasserstein1, Wasserstein1Bound, Wasserstein2

__all__ = [
    "DIVERGENCES",
    "KL",
    "Divergence",
    "Hellinger",
    "JensenShannon",
    "Wasserstein1",
    "Wasserstein1Bound",
    "Wasserstein2",
]
