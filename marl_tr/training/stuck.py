"""A warning for agents whose line search fails from the first iteration on.

A solver that backtracks from the step at the radius (``natural_gradient``,
``exact_radius``) never moves when the radius is far too large for its tries: every step it
tries overshoots what the surrogate can promise, and the run goes on with a frozen agent
and nothing but zeros in ``moved_i``. ``StuckAgents`` watches the first ``window``
iterations of a fresh run and warns once (``StuckAgentWarning``) for the agents whose line
search failed in every one of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["StuckAgentWarning", "StuckAgents"]

#: The solvers' reason for a step whose every backtracking try was refused.
LINE_SEARCH_FAILED = "line search failed"


class StuckAgentWarning(UserWarning):
    """Agents took no step in a run's first iterations: their line search always failed."""


class StuckAgents:
    """Counts, per replica and agent ``[R, n]``, the iterations since the start of the run in
    which the agent's line search failed, and warns once when some agent's count reaches
    ``window`` with no step in between.

    Args:
        replicas, n_agents: the run's shape.
        solver: the solver's name or spec, for the message.
        window: iterations of failures that make a warning.
    """

    def __init__(self, replicas: int, n_agents: int, solver: str, window: int = 50) -> None:
        self.failures = np.zeros((replicas, n_agents), dtype=np.int64)
        self.solver, self.window = solver.split(":")[0], window
        self.done = False

    def record(self, rows: np.ndarray, agents: Sequence[int], reasons: Sequence[str]) -> None:
        """One update position's outcome: replica ``rows[j]`` updated ``agents[j]`` for the
        ``reasons[j]`` it did not move (``""`` where it moved)."""
        if self.done:
            return
        failed = np.array([r == LINE_SEARCH_FAILED for r in reasons])
        self.failures[rows, agents] = np.where(failed, self.failures[rows, agents] + 1, -1)

    def end_iteration(self, iteration: int) -> None:
        """Warn if some agent failed in every iteration so far; stop watching after
        ``window`` iterations."""
        if self.done or iteration + 1 < self.window:
            return
        self.done = True
        stuck = self.failures >= self.window
        if not stuck.any():
            return
        agents = sorted({int(a) for a in np.nonzero(stuck)[1]})
        warnings.warn(
            f"agent(s) {agents} took no step in the first {self.window} iterations: the "
            f"line search of solver {self.solver!r} failed every time. The radius is likely "
            "too large for its backtracking (every try overshoots what the surrogate "
            "promises): use a smaller radius, or more tries (e.g. "
            f"'{self.solver}:max_backtracks=40')", StuckAgentWarning, stacklevel=4)
