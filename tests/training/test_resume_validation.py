"""Resume validates the run directory: a damaged or mismatched one is refused (naming what,
and touching nothing) or repaired as documented (rows past the checkpoint and a torn last row
dropped); checkpoints are written by default, atomically, and on a TrainingError or Ctrl-C
for the last good iteration; a run killed with SIGKILL resumes to the same bytes."""

from __future__ import annotations

import math
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import marl_tr
from marl_tr.config import TrainConfig
from marl_tr.training import run_dir as run_dir_module
from marl_tr.training.loop import SequentialTrustRegion, TrainingError
from marl_tr.training.run_dir import (
    HEADER_KEY,
    CheckpointError,
    RunDirectory,
    RunDirectoryInUse,
    RunDirectoryWarning,
    read_metrics,
)

KWARGS = {"preset": "hatrpo-caatr", "env_kwargs": {"n": 3}, "seed": 1}
CRASH_AT = 8  # the base run dies in this iteration; its last checkpoint is at 5
DONE = 5
RESUME_TO = 12


def files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def crash_in_step(iteration: int, make_error=KeyboardInterrupt):
    original = SequentialTrustRegion.step

    def dying_step(self):
        if self.iteration == iteration:
            raise make_error()
        return original(self)

    return dying_step


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run killed in iteration 8 (checkpoint at 5, rows 0-7), an uninterrupted 12-iteration
    run, and checkpoints of other runs (another preset, another n)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SequentialTrustRegion, "step", crash_in_step(CRASH_AT))
        with pytest.raises(KeyboardInterrupt):
            marl_tr.train(**KWARGS, iterations=20, checkpoint_interval=DONE,
                          run_dir=str(root / "crashed"))
    marl_tr.train(**KWARGS, iterations=RESUME_TO, checkpoint_interval=DONE,
                  run_dir=str(root / "whole"))
    marl_tr.train(**{**KWARGS, "preset": "hatrpo"}, iterations=DONE, run_dir=str(root / "preset"))
    marl_tr.train(**{**KWARGS, "env_kwargs": {"n": 4}}, iterations=DONE, run_dir=str(root / "n4"))
    return root


def test_the_base_run_is_as_described(runs):
    assert RunDirectory(runs / "crashed").load_checkpoint().iteration == DONE
    assert [r["iteration"] for r in read_metrics(runs / "crashed" / "metrics.csv")] == list(
        range(CRASH_AT))


# ---------------------------------------------------------------------------------------
# damaged and mismatched run directories
# ---------------------------------------------------------------------------------------
def metrics_at_checkpoint(run: Path) -> int:
    return RunDirectory(run).load_checkpoint().metrics.bytes


def cut_metrics(fraction: float):
    def damage(run, runs):
        data = (run / "metrics.csv").read_bytes()
        (run / "metrics.csv").write_bytes(data[:int(fraction * metrics_at_checkpoint(run))])
    return damage


def torn_row_only(run, runs):
    keep = metrics_at_checkpoint(run)
    data = (run / "metrics.csv").read_bytes()
    next_row = data[keep:].split(b"\n", 1)[0]
    (run / "metrics.csv").write_bytes(data[:keep] + next_row[: len(next_row) // 2])


def append_torn_row(run, runs):
    with (run / "metrics.csv").open("ab") as handle:
        handle.write(b"8,0,1,0.41")


def edit_text(name: str, old: str, new: str):
    def damage(run, runs):
        text = (run / name).read_text()
        assert old in text
        (run / name).write_text(text.replace(old, new, 1))
    return damage


def edit_row_before_checkpoint(run, runs):
    lines = (run / "metrics.csv").read_bytes().split(b"\n")
    fields = lines[2].split(b",")
    fields[3] = b"0.123"  # reward_mean of iteration 1
    lines[2] = b",".join(fields)
    (run / "metrics.csv").write_bytes(b"\n".join(lines))


def copy_checkpoint_from(other: str):
    def damage(run, runs):
        shutil.copy(runs / other / "checkpoint.pt", run / "checkpoint.pt")
    return damage


def write_file(name: str, data: bytes):
    def damage(run, runs):
        (run / name).write_bytes(data)
    return damage


def delete(name: str):
    def damage(run, runs):
        (run / name).unlink()
    return damage


def truncate_checkpoint(run, runs):
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])


def flip_a_stored_bit(run, runs):
    """Bit rot inside a stored tensor: the zip entry's CRC-32 no longer matches its bytes
    (``torch.load`` alone would read the flipped number)."""
    path = run / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        entry = max(archive.infolist(), key=lambda info: info.file_size)
    name_length = int.from_bytes(data[entry.header_offset + 26:entry.header_offset + 28], "little")
    extra_length = int.from_bytes(data[entry.header_offset + 28:entry.header_offset + 30],
                                  "little")
    data[entry.header_offset + 30 + name_length + extra_length] ^= 0x01
    path.write_bytes(bytes(data))


def edit_checkpoint(change):
    def damage(run, runs):
        payload = torch.load(run / "checkpoint.pt", weights_only=True)
        change(payload)
        torch.save(payload, run / "checkpoint.pt")
    return damage


def widen_action_space(payload):
    payload[HEADER_KEY]["fingerprint"]["spaces"]["action"][0]["high"] = [9.0]


def newer_format(payload):
    payload[HEADER_KEY]["format_version"] = 99


def wrong_policy_shape(payload):
    payload["policies"][0]["theta"] = torch.zeros(1, 5)


REPAIRED = [
    ("rows past the checkpoint", lambda run, runs: None, r"dropped 3 row\(s\) past the checkpoint"
     r"; the run continues from iteration 5"),
    ("a torn last row after them", append_torn_row,
     r"dropped 3 row\(s\) past the checkpoint and a torn last row"),
    ("only a torn row", torn_row_only, r"dropped a torn last row"),
    ("a temp file of a killed checkpoint write", write_file("checkpoint.pt.tmp", b"\x50\x4b\x03"),
     r"dropped 3 row"),
]


@pytest.mark.parametrize(("damage", "warning"), [case[1:] for case in REPAIRED],
                         ids=[case[0] for case in REPAIRED])
def test_a_repairable_run_directory_resumes_to_the_uninterrupted_bytes(runs, tmp_path, damage,
                                                                        warning):
    run = tmp_path / "run"
    shutil.copytree(runs / "crashed", run)
    damage(run, runs)
    with pytest.warns(RunDirectoryWarning, match=warning):
        resumed = marl_tr.train(resume=run, iterations=RESUME_TO)
    assert (run / "metrics.csv").read_bytes() == (runs / "whole" / "metrics.csv").read_bytes()
    assert len(resumed.metrics) == RESUME_TO
    assert RunDirectory(run).load_checkpoint().iteration == RESUME_TO


REFUSED = [
    # metrics.csv
    ("metrics cut before the checkpoint", cut_metrics(0.6), {}, CheckpointError,
     r"metrics\.csv' was cut short: it holds \d complete rows, but the checkpoint \(iteration 5\) "
     r"needs 5; cannot resume"),
    ("metrics cut inside the header", cut_metrics(0.01), {}, CheckpointError,
     r"was cut short inside its header"),
    ("empty metrics", write_file("metrics.csv", b""), {}, CheckpointError,
     r"metrics\.csv' is empty, but the checkpoint \(iteration 5\) needs its first 5 rows"),
    ("missing metrics", delete("metrics.csv"), {}, CheckpointError,
     r"metrics\.csv' is missing, but the checkpoint \(iteration 5\) needs its first 5 rows"),
    ("another header", edit_text("metrics.csv", "reward_mean", "reward"), {}, CheckpointError,
     r"metrics\.csv' has another header than the one this run wrote"),
    ("a row before the checkpoint edited", edit_row_before_checkpoint, {}, CheckpointError,
     r"metrics\.csv' was changed: its rows before the checkpoint \(iteration 5\) differ"),
    # config.yaml
    ("seed edited", edit_text("config.yaml", "seed: 1", "seed: 2"), {}, CheckpointError,
     r"written by another run: seed: 1 in the checkpoint, 2 in config\.yaml"),
    ("divergence edited", edit_text("config.yaml", "divergence: kl", "divergence: js"), {},
     CheckpointError, r"divergence: 'kl' in the checkpoint, 'js' in config\.yaml"),
    ("invalid YAML", write_file("config.yaml", b"seed: [1\n"), {}, ValueError,
     r"config\.yaml' is not valid YAML: .*\(line 2, column 1\)"),
    ("config.yaml missing", delete("config.yaml"), {}, FileNotFoundError,
     r"is not a run directory: it has no config\.yaml"),
    # checkpoint.pt
    ("a checkpoint of another preset", copy_checkpoint_from("preset"), {}, CheckpointError,
     r"preset: 'hatrpo' in the checkpoint, 'hatrpo-caatr' in config\.yaml"),
    ("a checkpoint of another n", copy_checkpoint_from("n4"), {}, CheckpointError,
     r"env_kwargs: \{'n': 4\} in the checkpoint, \{'n': 3\} in config\.yaml"),
    ("a garbage checkpoint", write_file("checkpoint.pt", b"not a checkpoint at all"), {},
     CheckpointError, r"checkpoint\.pt' is not a readable checkpoint \(.*\): it is damaged or "
     r"truncated"),
    ("a truncated checkpoint", truncate_checkpoint, {}, CheckpointError,
     r"is not a readable checkpoint"),
    ("a flipped bit in the checkpoint", flip_a_stored_bit, {}, CheckpointError,
     r"checkpoint\.pt' is not a readable checkpoint \(its entry '.*' fails its CRC-32 "
     r"check\): it is damaged"),
    ("no checkpoint", delete("checkpoint.pt"), {}, FileNotFoundError,
     r"no checkpoint to resume from in"),
    ("a checkpoint of a newer format", edit_checkpoint(newer_format), {}, CheckpointError,
     r"has checkpoint format 99; this marl_tr reads format 1"),
    ("env spaces changed", edit_checkpoint(widen_action_space), {}, CheckpointError,
     r"action space of agent 'agent_0' differs from the checkpoint's"),
    ("a state that does not fit", edit_checkpoint(wrong_policy_shape), {}, CheckpointError,
     r"does not fit this run \(RuntimeError: .*\); refusing to resume"),
    # the request itself
    ("fewer iterations than done", lambda run, runs: None, {"iterations": 3}, ValueError,
     r"iterations=3 is fewer than the 5 already done in .*: give iterations >= 5"),
    ("a changed seed", lambda run, runs: None, {"seed": 2}, ValueError,
     r"cannot change \['seed'\] when resuming"),
]


@pytest.mark.parametrize(("damage", "overrides", "error", "message"),
                         [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_a_damaged_or_mismatched_run_directory_is_refused_untouched(runs, tmp_path, damage,
                                                                    overrides, error, message):
    run = tmp_path / "run"
    shutil.copytree(runs / "crashed", run)
    damage(run, runs)
    before = files(run)
    with pytest.raises(error, match=message) as info:
        marl_tr.train(resume=run, **{"iterations": RESUME_TO, **overrides})
    assert "\n" not in str(info.value)
    assert files(run) == before  # nothing written: not the config, not the metrics


# ---------------------------------------------------------------------------------------
# checkpoints by default, atomically, and for the last good iteration
# ---------------------------------------------------------------------------------------
@pytest.mark.skipif(run_dir_module.fcntl is None, reason="no advisory locks on this OS")
def test_a_run_directory_in_use_by_another_run_is_refused_untouched(runs, tmp_path):
    """While one run holds its directory (a new run or a resume under way), a second run or
    resume there is refused before any work; once it ends, the resume goes on."""
    run = tmp_path / "run"
    shutil.copytree(runs / "crashed", run)
    before = files(run)
    holder = RunDirectory(run)
    holder.lock()
    try:
        with pytest.raises(RunDirectoryInUse, match=r"run directory '.*run' is in use by "
                           r"another run \(a training or resume in progress\)"):
            marl_tr.train(resume=run, iterations=RESUME_TO)
        assert files(run) == before
        fresh = tmp_path / "fresh"
        other = RunDirectory(fresh)
        other.lock()
        with pytest.raises(RunDirectoryInUse, match="is in use by another run"):
            marl_tr.train(**KWARGS, iterations=2, run_dir=str(fresh))
        other.unlock()
        assert not any(fresh.iterdir())
    finally:
        holder.unlock()
    with pytest.warns(RunDirectoryWarning):
        marl_tr.train(resume=run, iterations=RESUME_TO)  # the lock is released after a run
    assert (run / "metrics.csv").read_bytes() == (runs / "whole" / "metrics.csv").read_bytes()
    marl_tr.train(resume=run, iterations=RESUME_TO + 1)


def test_checkpoints_are_written_by_default(tmp_path, monkeypatch):
    assert (TrainConfig().checkpoint_interval, TrainConfig().checkpoint_seconds) == (1000, 60.0)
    saved = []
    original = RunDirectory.save_checkpoint

    def record(self, state, **kwargs):
        saved.append(kwargs["iteration"])
        return original(self, state, **kwargs)

    monkeypatch.setattr(RunDirectory, "save_checkpoint", record)
    marl_tr.train(env_kwargs={"n": 2}, iterations=7, checkpoint_interval=3,
                  checkpoint_seconds=0, run_dir=str(tmp_path / "a"))
    assert saved == [3, 6, 7]
    saved.clear()
    marl_tr.train(env_kwargs={"n": 2}, iterations=3, checkpoint_interval=0,
                  checkpoint_seconds=1e-9, run_dir=str(tmp_path / "b"))  # every iteration
    assert saved == [1, 2, 3]


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch,
                                                                   rows_equal):
    """The write of the checkpoint at iteration 6 dies halfway: checkpoint.pt still holds
    iteration 3, and resuming from it ends equal to an uninterrupted run."""
    real_save = torch.save
    calls = []

    def dying_save(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            handle.write(b"PK\x03\x04 half a checkpoint")
            raise OSError("disk full")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(run_dir_module.torch, "save", dying_save)
    run = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        marl_tr.train(**KWARGS, iterations=10, checkpoint_interval=3, run_dir=str(run))
    monkeypatch.setattr(run_dir_module.torch, "save", real_save)
    assert (run / "checkpoint.pt.tmp").exists()
    assert RunDirectory(run).load_checkpoint().iteration == 3
    with pytest.warns(RunDirectoryWarning, match=r"dropped 3 row\(s\)"):
        marl_tr.train(resume=run)
    marl_tr.train(**KWARGS, iterations=10, run_dir=str(tmp_path / "whole"))
    assert (run / "metrics.csv").read_bytes() == (tmp_path / "whole" / "metrics.csv").read_bytes()


def test_a_training_error_checkpoints_the_last_good_iteration(tmp_path, monkeypatch):
    """An inf reward in iteration 7, last periodic checkpoint at 5: the checkpoint ends at 7
    (iterations 5 and 6 replayed and checked against the rows written), and a resume after
    the cause is gone ends equal to an uninterrupted run."""
    from marl_tr_envs import DiffGameVectorEnv

    original = DiffGameVectorEnv.step
    calls = []

    def step(self, actions):
        calls.append(1)
        obs, rewards, terminated, truncated, infos = original(self, actions)
        if len(calls) == 8:  # one step per iteration: iteration 7
            rewards = rewards.copy()
            rewards[0] = math.inf
        return obs, rewards, terminated, truncated, infos

    monkeypatch.setattr(DiffGameVectorEnv, "step", step)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"^iteration 7: ") as info:
        marl_tr.train(**KWARGS, iterations=12, checkpoint_interval=5, run_dir=str(run))
    assert info.value.__notes__ == [
        f"the checkpoint in {str(run)!r} holds iteration 7 (the last good one): once the cause "
        f"is fixed, resume with marl-tr train --resume {run}"]
    checkpoint = RunDirectory(run).load_checkpoint()
    assert checkpoint.iteration == 7 and checkpoint.metrics.rows == 7
    monkeypatch.setattr(DiffGameVectorEnv, "step", original)
    marl_tr.train(resume=run)
    marl_tr.train(**KWARGS, iterations=12, run_dir=str(tmp_path / "whole"))
    assert (run / "metrics.csv").read_bytes() == (tmp_path / "whole" / "metrics.csv").read_bytes()


def raise_sigint_in(iteration: int, times: int):
    original = SequentialTrustRegion.step

    def step(self):
        if self.iteration == iteration:
            for _ in range(times):
                signal.raise_signal(signal.SIGINT)
        return original(self)

    return step


@pytest.mark.parametrize(("presses", "checkpointed"), [(1, 8), (2, 5)])
def test_ctrl_c_stops_after_the_iteration_with_a_checkpoint(tmp_path, monkeypatch, capsys,
                                                            presses, checkpointed):
    """One Ctrl-C in iteration 7: the iteration finishes, is checkpointed (8) and the run
    stops; a second Ctrl-C stops at once (the checkpoint at 5 stays)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT has a non-default handler here")
    monkeypatch.setattr(SequentialTrustRegion, "step", raise_sigint_in(7, presses))
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        marl_tr.train(**KWARGS, iterations=12, checkpoint_interval=5, run_dir=str(run))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert "stopping after this iteration" in capsys.readouterr().err
    assert RunDirectory(run).load_checkpoint().iteration == checkpointed
    assert len(read_metrics(run / "metrics.csv")) == (8 if presses == 1 else 7)
    monkeypatch.undo()
    resume_quietly(run)
    marl_tr.train(**KWARGS, iterations=12, run_dir=str(tmp_path / "whole"))
    assert (run / "metrics.csv").read_bytes() == (tmp_path / "whole" / "metrics.csv").read_bytes()


# ---------------------------------------------------------------------------------------
# fault injection: SIGKILL of a real training process
# ---------------------------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    import marl_tr
    marl_tr.train(preset="wmatrpo-caatr", env_kwargs={"n": 3}, seed=5, iterations=int(sys.argv[2]),
                  checkpoint_interval=int(sys.argv[3]), log_interval=1, run_dir=sys.argv[1])
""")
SELF_KILL_DURING_WRITE = textwrap.dedent("""
    import os, signal, torch
    real_save, calls = torch.save, []
    def save(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) == {write}:
            handle.write(b"PK\\x03\\x04 half")
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, handle, *args, **kwargs)
    torch.save = save
""")


def kill_after_line(run: Path, iterations: int, interval: int, line: int,
                    prelude: str = "") -> int:
    """Start a training process; SIGKILL it once it printed ``line`` progress lines (or let
    it die by itself); return its exit status."""
    process = subprocess.Popen(
        [sys.executable, "-c", prelude + CHILD, str(run), str(iterations), str(interval)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for count, _ in enumerate(process.stdout, start=1):
            if count >= line:
                process.send_signal(signal.SIGKILL)
                break
        return process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()


def uninterrupted(tmp_path: Path, iterations: int) -> bytes:
    marl_tr.train(preset="wmatrpo-caatr", env_kwargs={"n": 3}, seed=5, iterations=iterations,
                  run_dir=str(tmp_path / "whole"))
    return (tmp_path / "whole" / "metrics.csv").read_bytes()


def resume_quietly(run: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunDirectoryWarning)  # rows past the checkpoint
        marl_tr.train(resume=run)


def test_a_run_killed_at_a_random_point_resumes_to_the_same_bytes(tmp_path):
    """SIGKILL once the process printed a random number of progress lines (past the first
    checkpoint, well before the end): no row lost or duplicated after the resume."""
    iterations, interval = 400, 25
    line = random.Random().randint(interval, 150)
    run = tmp_path / "run"
    status = kill_after_line(run, iterations, interval, line)
    assert status == -signal.SIGKILL, f"killed after line {line}"
    done = RunDirectory(run).load_checkpoint().iteration
    assert interval <= done < iterations
    resume_quietly(run)
    metrics = (run / "metrics.csv").read_bytes()
    assert metrics == uninterrupted(tmp_path, iterations), f"killed after line {line}"
    assert [r["iteration"] for r in read_metrics(run / "metrics.csv")] == list(range(iterations))


@pytest.mark.slow
@pytest.mark.parametrize("write", [2, 5])
def test_a_run_killed_during_a_checkpoint_write_resumes_to_the_same_bytes(tmp_path, write):
    iterations, interval = 300, 20
    run = tmp_path / "run"
    status = kill_after_line(run, iterations, interval, line=10**9,
                             prelude=SELF_KILL_DURING_WRITE.format(write=write))
    assert status == -signal.SIGKILL
    assert (run / "checkpoint.pt.tmp").exists()
    assert RunDirectory(run).load_checkpoint().iteration == (write - 1) * interval
    resume_quietly(run)
    assert (run / "metrics.csv").read_bytes() == uninterrupted(tmp_path, iterations)


@pytest.mark.slow
def test_a_run_killed_again_and_again_resumes_to_the_same_bytes(tmp_path):
    iterations, interval = 1500, 40
    rng = random.Random(2024)
    run = tmp_path / "run"
    assert kill_after_line(run, iterations, interval, rng.randint(interval, 300)) == \
        -signal.SIGKILL
    for _ in range(4):  # kill the resumed process too, at random points
        resume = textwrap.dedent(f"""
            import sys, warnings, torch
            torch.set_num_threads(1)
            warnings.simplefilter("ignore")
            import marl_tr
            marl_tr.train(resume={str(run)!r}, log_interval=1)
        """)
        process = subprocess.Popen([sys.executable, "-c", resume], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        target = rng.randint(interval, 300)
        for count, _ in enumerate(process.stdout, start=1):
            if count >= target:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=300)
        process.stdout.close()
    resume_quietly(run)
    assert (run / "metrics.csv").read_bytes() == uninterrupted(tmp_path, iterations)


@pytest.mark.slow
def test_ctrl_c_of_a_real_training_process_checkpoints_the_iteration_under_way(tmp_path):
    iterations, interval = 2000, 1000
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run), str(iterations), str(interval)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for count, _ in enumerate(process.stdout, start=1):
        if count >= 300:
            process.send_signal(signal.SIGINT)
            break
    process.stdout.read()
    assert process.wait(timeout=120) != 0
    assert "stopping after this iteration" in process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    checkpoint = RunDirectory(run).load_checkpoint()
    assert 300 <= checkpoint.iteration < iterations
    assert checkpoint.metrics.bytes == (run / "metrics.csv").stat().st_size  # no row lost
    marl_tr.train(resume=run)
    assert (run / "metrics.csv").read_bytes() == uninterrupted(tmp_path, iterations)


def test_the_spaces_fingerprint_tells_large_boxes_apart_by_digest():
    from types import SimpleNamespace

    from gymnasium import spaces

    from marl_tr.training.run_dir import check_spaces_fingerprint, run_fingerprint

    def env(high_at_7: float):
        high = torch.ones(100).numpy()
        high[7] = high_at_7
        return SimpleNamespace(agents=["a"], observation_spaces=[spaces.Box(0.0, high)],
                               action_spaces=[spaces.Discrete(3)], state_dim=100)

    fingerprint = run_fingerprint(TrainConfig(), env(1.0))
    assert set(fingerprint["spaces"]["observation"][0]["high"]) == {"size", "sha256"}
    check_spaces_fingerprint(fingerprint, env(1.0), "here")
    with pytest.raises(CheckpointError, match="observation space of agent 'a' differs"):
        check_spaces_fingerprint(fingerprint, env(2.0), "here")
