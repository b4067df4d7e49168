"""Private argument checks for the environment suite.

``marl_tr_envs`` must not import ``marl_tr`` (the dependency points the other way), so it keeps
these few helpers of its own. Every check raises a ``ValueError`` that names the offending value
and says what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np

__all__ = [
    "check_choice",
    "check_finite",
    "check_int",
    "check_non_negative",
    "check_positive",
    "reject_unknown_keywords",
]


def _real(name: str, value: Any, requirement: str) -> float:
    """``value`` as a float if it is a real number (not a bool), else a ``ValueError``."""
    is_real = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, (bool, np.bool_)) or not is_real:
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return float(value)


def check_finite(name: str, value: Any) -> float:
    """Return ``value`` as a float; raise unless it is a finite real number (not a bool)."""
    requirement = "a finite real number"
    number = _real(name, value, requirement)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return number


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    requirement = "a finite number > 0"
    number = _real(name, value, requirement)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return number


def check_non_negative(name: str, value: Any) -> float:
    """A finite number >= 0."""
    requirement = "a finite number >= 0"
    number = _real(name, value, requirement)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return number


def check_int(name: str, value: Any, minimum: int) -> int:
    """An integer (a Python or numpy integer, not a bool) that is >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices``; the message lists them all."""
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value


def reject_unknown_keywords(owner: str, given: Iterable[str], accepted: Collection[str]) -> None:
    """Raise a ``ValueError`` naming every keyword of ``given`` that ``accepted`` lacks.

    ``gymnasium.make`` passes its keyword arguments straight to the constructor; this turns a
    mistyped keyword into a ``ValueError`` that lists the accepted ones (with a close match when
    there is one) instead of a bare ``TypeError``.
    """
    unknown = sorted(set(given) - set(accepted))
    if not unknown:
        return
    hints = []
    for word in unknown:
        close = difflib.get_close_matches(word, list(accepted), n=1)
        if close:
            hints.append(f"{word!r} (did you mean {close[0]!r}?)")
        else:
            hints.append(repr(word))
    raise ValueError(
        f"{owner} got unknown keyword argument(s) {', '.join(hints)}; "
        f"accepted keywords: {', '.join(sorted(accepted))}"
    )
