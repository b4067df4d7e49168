"""No orphans: sweep pool workers end when the sweep process ends, even by SIGKILL
(``sweeps.die_with_parent``: Linux's parent-death signal, elsewhere a thread watching the
parent id). Real processes: a sweep is started, its workers are caught in the middle of a
job, the sweep is killed with SIGKILL, and no worker may remain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads process states from /proc")

START_DEADLINE = 120.0  # seconds: generous bounds on start-ups that take a few seconds
EXIT_DEADLINE = 30.0  # seconds: ending an orphan takes well under one


def _state(pid: int) -> str | None:
    """The process state letter from /proc (``None``: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie (dead, waiting for a reaper that may never come in
    a container)."""
    return _state(pid) in (None, "Z", "X")


def _children(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == parent:
                children.append(int(entry.name))
    return children


def _wait_for(condition, what: str, deadline: float = START_DEADLINE) -> None:
    stop = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > stop:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _kill_all(pids) -> None:
    """Clean up after a failure: SIGKILL the processes this test started, by pid."""
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


ENV_MODULE = '''
import os
from pathlib import Path

import marl_tr_envs


def make(**kwargs):
    """DiffGame as a PettingZoo env; records the pid of every process that builds it."""
    Path(os.environ["ORPHAN_TEST_PIDS"], str(os.getpid())).touch()
    return marl_tr_envs.make_parallel("DiffGame-v0", **kwargs)
'''

SWEEP_SCRIPT = '''
import sys

from marl_tr.experiments import sweep

if __name__ == "__main__":
    sweep(["hatrpo"], seeds=2, env="orphan_env:make", fixed={"iterations": 10**7},
          grid={"n": [2]}, workers=2, max_replicas=1, results=sys.argv[1])
'''


def test_sigkill_of_a_sweep_leaves_no_worker(tmp_path):
    (tmp_path / "orphan_env.py").write_text(ENV_MODULE)
    (tmp_path / "parent.py").write_text(SWEEP_SCRIPT)
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "ORPHAN_TEST_PIDS": str(pids),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"),
                               str(tmp_path / "results.csv")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started: list[int] = []
    try:
        # both workers inside a job (their env built: pid files other than the sweep's own)
        def workers_in_a_job() -> bool:
            assert parent.poll() is None, parent.stderr.read().decode()
            started[:] = [int(p.name) for p in pids.iterdir() if int(p.name) != parent.pid]
            return len(started) == 2

        _wait_for(workers_in_a_job, "two workers in a job")
        children = _children(parent.pid)  # the workers and multiprocessing's helpers
        assert set(started) <= set(children)
        assert not (tmp_path / "results.csv").exists()  # no job finished: they are working
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: all(_gone(pid) for pid in children), "the sweep's processes to end",
                  EXIT_DEADLINE)
    finally:
        parent.kill()
        parent.wait()
        _kill_all(started)


WATCH_SCRIPT = '''
import multiprocessing
import os
import sys
import time

from marl_tr.experiments import sweeps


def child(parent, path):
    sweeps._exit_with_parent_signal = lambda: False  # as on a system without prctl
    sweeps.PARENT_POLL_SECONDS = 0.05
    sweeps.die_with_parent(parent)
    with open(path, "w") as handle:
        handle.write(str(os.getpid()))
    while True:  # a busy worker
        time.sleep(0.01)


if __name__ == "__main__":
    process = multiprocessing.get_context("spawn").Process(
        target=child, args=(os.getpid(), sys.argv[1]))
    process.start()
    process.join()
'''


@pytest.mark.slow
def test_the_parent_watch_thread_ends_an_orphaned_worker(tmp_path):
    """The fallback where the kernel cannot be asked (not Linux): a thread notices that the
    parent id changed and exits the process. (Slow: about 3 s, for a path Linux does not
    take.)"""
    (tmp_path / "parent.py").write_text(textwrap.dedent(WATCH_SCRIPT))
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(pid_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    child = None
    try:
        def child_started() -> bool:
            assert parent.poll() is None, parent.stderr.read().decode()
            return pid_file.exists() and pid_file.read_text() != ""

        _wait_for(child_started, "the child")
        child = int(pid_file.read_text())
        assert not _gone(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: _gone(child), "the orphaned child to exit", EXIT_DEADLINE)
    finally:
        parent.kill()
        parent.wait()
        if child is not None:
            _kill_all([child])


@pytest.mark.slow
def test_sigkill_of_reproduce_then_rerun_loses_and_duplicates_no_row(tmp_path):
    """`marl-tr reproduce variants` killed with SIGKILL after its first job's rows landed,
    then rerun: every cell appears exactly once and the rows equal an uninterrupted run's
    (apart from the timing columns); no worker outlives the kill."""
    from marl_tr.experiments import RUN_COLUMNS, ResultsFile

    argv = [sys.executable, "-m", "marl_tr", "reproduce", "variants", "--presets",
            "hatrpo;wmatrpo-tr;hatrpo-tr", "--iterations", "200", "--seeds", "4",
            "--max-replicas", "2", "--workers", "2", "--quiet"]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    parent = subprocess.Popen([*argv, "--out", str(killed)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    cells = killed / "cells.csv"
    try:
        _wait_for(lambda: cells.exists() and cells.read_text().count("\n") >= 2,
                  "the first job's rows")
        workers = _children(parent.pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: all(_gone(pid) for pid in workers), "the workers to end",
                  EXIT_DEADLINE)
    finally:
        _kill_all([parent.pid])
    assert 0 < len(list(ResultsFile(cells).rows())) < 12  # interrupted midway
    for out in (killed, whole):
        subprocess.run([*argv, "--out", str(out)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def rows(path):
        return {row["key"]: {k: v for k, v in row.items() if k not in RUN_COLUMNS}
                for row in ResultsFile(path / "cells.csv").rows()}

    lines = (killed / "cells.csv").read_text().splitlines()
    assert len(lines) == 1 + 12  # header and one row per cell: none lost, none twice
    assert rows(killed) == rows(whole)
