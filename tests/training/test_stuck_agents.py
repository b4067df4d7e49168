"""The warning for agents whose line search fails from the first iteration on."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import marl_tr
from marl_tr.training.stuck import StuckAgents, StuckAgentWarning


def test_a_radius_far_too_large_for_the_line_search_is_reported_once():
    """HATRPO at KL radius 1e6: every try of the backtracking overshoots, the agents never
    move; the run says so once, after its first 50 iterations, and names the fix."""
    with pytest.warns(StuckAgentWarning) as caught:
        result = marl_tr.train(preset="hatrpo", env_kwargs={"n": 2}, radius="fixed:delta=1e6",
                               iterations=80, progress=False)
    stuck = [w for w in caught if w.category is StuckAgentWarning]
    assert len(stuck) == 1
    assert str(stuck[0].message).startswith(
        "agent(s) [0, 1] took no step in the first 50 iterations: the line search of solver "
        "'natural_gradient' failed every time")
    assert "'natural_gradient:max_backtracks=40'" in str(stuck[0].message)
    assert not result.column("moved_0").any() and not result.column("moved_1").any()
    # the suggested fix moves them
    moving = marl_tr.train(preset="hatrpo", env_kwargs={"n": 2}, radius="fixed:delta=1e6",
                           solver="natural_gradient:max_backtracks=40", iterations=60,
                           progress=False)
    assert moving.column("moved_0").any() and moving.column("moved_1").any()


@pytest.mark.parametrize("preset", ["hatrpo", "hatrpo-tr", "wmatrpo-tr", "wmatrpo-tr-caatr",
                                    "wmatrpo-caatr", "happo"])
def test_the_presets_do_not_warn_on_their_defaults(preset):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StuckAgentWarning)
        marl_tr.train(preset=preset, env_kwargs={"n": 3}, iterations=60, progress=False)


def test_only_failures_in_every_iteration_of_the_window_count():
    watch = StuckAgents(replicas=2, n_agents=3, solver="exact_radius:rtol=0.001", window=4)
    rows = np.arange(2)
    outcomes = {0: ["line search failed"] * 2,        # agent 0: fails always, both replicas
                1: ["line search failed", ""],        # agent 1: stuck in replica 0 only
                2: ["no signal", "line search failed"]}  # agent 2: another reason in replica 0
    with pytest.warns(StuckAgentWarning, match=r"agent\(s\) \[0, 1\] .* solver 'exact_radius' "
                      r".*'exact_radius:max_backtracks=40'"):
        for iteration in range(4):
            for agent, reasons in outcomes.items():
                if agent == 2 and iteration == 1:  # replica 1 of agent 2 moves once
                    reasons = ["no signal", ""]
                watch.record(rows, agent, reasons)
            watch.end_iteration(iteration)
    np.testing.assert_array_equal(watch.failures, [[4, 4, -1], [4, -1, 1]])
    with warnings.catch_warnings():  # once only
        warnings.simplefilter("error", StuckAgentWarning)
        watch.end_iteration(10)


def test_a_resumed_run_is_not_watched(tmp_path):
    with pytest.warns(StuckAgentWarning):
        marl_tr.train(preset="hatrpo", env_kwargs={"n": 2}, radius="fixed:delta=1e6",
                      iterations=60, run_dir=tmp_path / "run", checkpoint_interval=20,
                      progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StuckAgentWarning)
        marl_tr.train(resume=tmp_path / "run", iterations=120, progress=False)
