"""Shared helpers of the environment tests: a strict warnings filter with an allow-list."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest

#: Warnings the suite's envs raise by design, matched against the start of the message text.
#: - Gymnasium's checker recommends a [-1, 1] or [0, 1] Box; the paper's actions live in [0, 7].
#: - PettingZoo's api_test flags a one-number observation and an all-zero one: the observation
#:   is by design ``[t / episode_length]``, which is 0 at the start of every episode.
EXPECTED_WARNINGS = (
    r".*For Box action spaces, we recommend using a symmetric and normalized space",
    r"Observation is a single number",
    r"Observation numpy array is all zeros",
)


@contextlib.contextmanager
def only_expected_warnings(*allowed: str) -> Iterator[None]:
    """Turn every warning into an error except those matching ``allowed`` (regexes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for pattern in allowed:
            warnings.filterwarnings("ignore", message=pattern)
        yield


@pytest.fixture
def strict_warnings():
    """The :func:`only_expected_warnings` context manager, allow-listing EXPECTED_WARNINGS."""
    return lambda: only_expected_warnings(*EXPECTED_WARNINGS)
