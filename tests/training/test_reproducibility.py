"""Same seed, same run (bitwise); a resumed run equals an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

import marl_tr
from marl_tr import PRESETS
from marl_tr.config import TrainConfig
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.run_dir import RunDirectoryWarning, read_metrics

PRESET_NAMES = PRESETS.names()


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_same_seed_same_run_bitwise(preset, rows_equal, params_equal):
    kwargs = {"preset": preset, "env_kwargs": {"n": 3}, "iterations": 12, "seed": 7}
    a = marl_tr.train(**kwargs)
    b = marl_tr.train(**kwargs)
    rows_equal(a.metrics, b.metrics)
    assert params_equal(a.policies, b.policies)
    c = marl_tr.train(**{**kwargs, "seed": 8})
    assert not params_equal(a.policies, c.policies)
    assert [r["reward_mean"] for r in a.metrics] != [r["reward_mean"] for r in c.metrics]


def test_same_seed_same_run_with_mlp_policies(params_equal, rows_equal):
    kwargs = {"env_kwargs": {"n": 2}, "iterations": 2, "seed": 0, "policy_hidden": (8,),
              "critic_hidden": (8,)}
    a = marl_tr.train(**kwargs)
    b = marl_tr.train(**kwargs)
    assert params_equal(a.policies, b.policies)
    rows_equal(a.metrics, b.metrics)


# ---------------------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["hatrpo", "wmatrpo-caatr", "wmatrpo-tr-caatr",
                                    "wmatrpo-dual-caatr"])
def test_resume_equals_an_uninterrupted_run(tmp_path, preset, rows_equal, params_equal):
    kwargs = {"preset": preset, "env_kwargs": {"n": 3}, "seed": 3}
    marl_tr.train(**kwargs, iterations=10, run_dir=str(tmp_path / "split"))
    resumed = marl_tr.train(resume=tmp_path / "split", iterations=20)
    whole = marl_tr.train(**kwargs, iterations=20, run_dir=str(tmp_path / "whole"))

    split_rows = read_metrics(tmp_path / "split" / "metrics.csv")
    whole_rows = read_metrics(tmp_path / "whole" / "metrics.csv")
    assert len(split_rows) == 20
    assert [row["iteration"] for row in split_rows] == list(range(20))
    rows_equal(split_rows, whole_rows)
    assert params_equal(resumed.policies, whole.policies)
    assert len(resumed.metrics) == 20
    assert resumed.config == whole.config.replace(run_dir=str(tmp_path / "split"))


def test_resume_after_a_crash_drops_rows_past_the_checkpoint(tmp_path, monkeypatch,
                                                             rows_equal, params_equal):
    """A run checkpointing every 5 iterations dies in iteration 12: resuming starts from
    iteration 10, drops the two rows after it, and ends equal to an uninterrupted run."""
    kwargs = {"preset": "hatrpo-caatr", "env_kwargs": {"n": 3}, "seed": 1,
              "checkpoint_interval": 5}
    original = SequentialTrustRegion.step

    def dying_step(self):
        if self.iteration == 12:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(SequentialTrustRegion, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        marl_tr.train(**kwargs, iterations=20, run_dir=str(tmp_path / "crashed"))
    assert len(read_metrics(tmp_path / "crashed" / "metrics.csv")) == 12
    monkeypatch.setattr(SequentialTrustRegion, "step", original)

    with pytest.warns(RunDirectoryWarning, match=r"dropped 2 row\(s\) past the checkpoint"):
        resumed = marl_tr.train(resume=tmp_path / "crashed")
    whole = marl_tr.train(**kwargs, iterations=20, run_dir=str(tmp_path / "whole"))
    rows_equal(read_metrics(tmp_path / "crashed" / "metrics.csv"),
               read_metrics(tmp_path / "whole" / "metrics.csv"))
    assert params_equal(resumed.policies, whole.policies)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("finished") / "run"
    marl_tr.train(env_kwargs={"n": 2}, iterations=3, seed=0, run_dir=str(path))
    return path


@pytest.mark.parametrize(("change", "name"), [
    ({"seed": 1}, "seed"), ({"preset": "wmatrpo"}, "preset"), ({"batch_size": 60}, "batch_size"),
    ({"divergence": "js"}, "divergence"), ({"env_kwargs": {"n": 3}}, "env_kwargs"),
])
def test_resume_refuses_a_changed_non_resumable_field(finished_run, change, name):
    before = read_metrics(finished_run / "metrics.csv")
    with pytest.raises(ValueError, match=rf"cannot change \['{name}'\] when resuming"):
        marl_tr.train(resume=finished_run, iterations=6, **change)
    assert read_metrics(finished_run / "metrics.csv") == before  # nothing was touched


def test_resume_accepts_an_unchanged_field(finished_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    result = marl_tr.train(resume=copy, iterations=4, seed=0, log_interval=0)
    assert len(result.metrics) == 4


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    TrainConfig(iterations=3).to_yaml(tmp_path / "config.yaml")
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        marl_tr.train(resume=tmp_path, iterations=5)


def test_resume_refuses_an_unknown_key_with_a_suggestion(finished_run):
    with pytest.raises(ValueError, match="did you mean 'iterations'"):
        marl_tr.train(resume=finished_run, iteratons=6)


def test_config_yaml_describes_the_resumed_run(tmp_path):
    marl_tr.train(env_kwargs={"n": 2}, iterations=2, run_dir=str(tmp_path / "run"))
    resumed = marl_tr.train(resume=tmp_path / "run", iterations=4)
    assert TrainConfig.from_yaml(tmp_path / "run" / "config.yaml") == resumed.config


def test_checkpoint_restores_the_loop_state(tmp_path, params_equal, rows_equal):
    """state_dict / load_state_dict: a fresh loop loaded from a checkpoint continues exactly
    like the loop that wrote it."""
    from marl_tr.training.setup import build_parts

    config = TrainConfig(preset="wmatrpo", env_kwargs={"n": 2}, seed=4)
    first = SequentialTrustRegion(build_parts(config))
    for _ in range(3):
        first.step()
    state = first.state_dict()
    torch.save(state, tmp_path / "state.pt")
    second = SequentialTrustRegion(build_parts(config))
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=False))
    assert second.iteration == 3
    rows_a = [row for _ in range(2) for row in first.step()]
    rows_b = [row for _ in range(2) for row in second.step()]
    rows_equal(rows_a, rows_b)  # NaN-aware: an agent that took no step logs NaN details
    assert params_equal(first.policies, second.policies)
