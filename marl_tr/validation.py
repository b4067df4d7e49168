"""Argument checks shared by every plug-in: each names the bad value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "check_choice",
    "check_finite",
    "check_in_range",
    "check_int",
    "check_non_negative",
    "check_positive",
    "check_probability",
]


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            import numpy as np

            if isinstance(value, np.generic) and np.isrealobj(value):
                return float(value)
        except ImportError:  # pragma: no cover
            pass
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def check_finite(name: str, value: Any) -> float:
    """Return ``value`` as a float; raise unless it is a finite real number."""
    number = _as_float(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    number = check_finite(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0 (finite), got {value!r}")
    return number


def check_non_negative(name: str, value: Any) -> float:
    """A finite number >= 0."""
    number = check_finite(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0 (finite), got {value!r}")
    return number


def check_in_range(
    name: str, value: Any, low: float, high: float, *, low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite number in ``[low, high]`` (ends open as asked)."""
    number = check_finite(name, value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}")
    return number


def check_probability(name: str, value: Any) -> float:
    """A number in [0, 1]."""
    return check_in_range(name, value, 0.0, 1.0)


#: The largest integer an option may take (torch and numpy take 64-bit integers).
INT_LIMIT = 2**63 - 1


def check_int(name: str, value: Any, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """An integer (not a bool), optionally >= ``minimum`` and <= ``maximum`` (at most
    :data:`INT_LIMIT` always)."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np

            if isinstance(value, np.integer):
                value = int(value)
            else:
                raise TypeError
        except (ImportError, TypeError):
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    top = INT_LIMIT if maximum is None else maximum
    if value > top:
        raise ValueError(f"{name} must be an integer <= {top}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """One of ``choices`` (listed in the message)."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")
    return value
