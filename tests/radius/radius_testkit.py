"""Helpers for the radius-scheduler tests: stand-in divergences, improvement models, SLSQP."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from marl_tr.divergences.base import Divergence


class SmoothStub(Divergence):
    """A divergence flagged smooth at identity (only the flag is used by the schedulers)."""

    smooth_at_identity = True

    def compute(self, old, new):  # pragma: no cover - never evaluated
        raise NotImplementedError


class RoughStub(Divergence):
    """A divergence flagged *not* smooth at identity, like W1."""

    smooth_at_identity = False

    def compute(self, old, new):  # pragma: no cover - never evaluated
        raise NotImplementedError


# -- concave improvement models with closed-form price responses ------------------------
# c(lambda) = argmax_{delta >= 0} I(delta) - lambda * delta


def log_model(k: float, b: float) -> tuple[Callable, Callable, Callable]:
    """``I(delta) = k log(1 + delta / b)``: ``I' = k / (b + delta)``, ``c = max(0, k/lam - b)``."""

    def improvement(delta):
        return k * np.log1p(delta / b)

    def gradient(delta):
        return k / (b + delta)

    def response(price):
        return np.inf if price == 0 else max(0.0, k / price - b)

    return improvement, gradient, response


def sqrt_model(a: float) -> tuple[Callable, Callable, Callable]:
    """``I(delta) = a sqrt(delta)``: ``c = a^2 / (4 lam^2)``."""

    def improvement(delta):
        return a * np.sqrt(delta)

    def gradient(delta):
        return a / (2 * np.sqrt(delta))

    def response(price):
        return np.inf if price == 0 else a * a / (4 * price * price)

    return improvement, gradient, response


def quadratic_model(k: float, m: float) -> tuple[Callable, Callable, Callable]:
    """``I(delta) = k delta - delta^2 / (2 m)``: ``c = m max(k - lam, 0)``; ``c(0) = m k``."""

    def improvement(delta):
        return k * delta - delta * delta / (2 * m)

    def gradient(delta):
        return k - delta / m

    def response(price):
        return m * max(k - price, 0.0)

    return improvement, gradient, response


def slsqp_split(
    improvements: list[Callable], gradients: list[Callable], total: float, floor: float
) -> np.ndarray:
    """The SLSQP maximiser of ``sum_i I_i(delta_i)`` s.t. ``sum delta = total``, ``delta >= floor``.

    Solved in the scaled variable ``x = delta / total`` for conditioning.
    """
    n = len(improvements)

    def objective(x):
        return -sum(f(xi * total) for f, xi in zip(improvements, x))

    def jacobian(x):
        return -np.array([g(xi * total) * total for g, xi in zip(gradients, x)])

    result = minimize(
        objective,
        np.full(n, 1.0 / n),
        jac=jacobian,
        method="SLSQP",
        bounds=[(floor / total, 1.0)] * n,
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0,
                      "jac": lambda x: np.ones_like(x)}],
        options={"ftol": 1e-15, "maxiter": 2000},
    )
    # status 8 ("positive directional derivative for linesearch") is SLSQP reaching float
    # precision at ftol=1e-15; the point is then as good as it can resolve.
    assert result.success or result.status == 8, result.message
    assert abs(result.x.sum() - 1.0) < 1e-10
    return result.x * total
