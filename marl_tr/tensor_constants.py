"""Cached 0-dim tensors for the constants of hot tensor expressions.

A Python number in a tensor operation is wrapped in a fresh tensor at every call, which on
the tiny tensors of the paper's game costs about as much as the operation itself. Hot paths
take their constants from here instead; the tensors are read-only operands, never written.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["constant_like"]


@functools.cache
def _constant(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    with torch.inference_mode(False):  # usable inside and outside inference mode
        return torch.tensor(value, dtype=dtype, device=device)


def constant_like(value: float, like: Tensor) -> Tensor:
    """``value`` as a 0-dim tensor with ``like``'s dtype and device (cached; do not modify)."""
    return _constant(value, like.dtype, like.device)
