"""Run directories are safe to load: checkpoints are read with ``weights_only=True`` and
decoded exactly; a checkpoint whose pickle would run code is refused without running it;
a checkpoint from before format 1 is refused with the conversion command, which works on a
trusted one; a resumed config may not import modules that are not imported yet."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import struct
import sys
import textwrap
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr.api import convert_checkpoint, unimported_modules
from marl_tr.cli import main
from marl_tr.config import TrainConfig
from marl_tr.radius.base import PreviousSteps
from marl_tr.training.loop import SequentialTrustRegion
from marl_tr.training.run_dir import (
    CHECKPOINT_FORMAT_VERSION,
    HEADER_KEY,
    CheckpointError,
    RunDirectory,
    decode_state,
    encode_state,
    read_metrics,
    register_checkpoint_record,
)
from marl_tr.training.setup import build_parts


# ---------------------------------------------------------------------------------------
# the encoding: exact round trips through a weights_only file
# ---------------------------------------------------------------------------------------
def assert_identical(a, b, where="state"):
    """Same types, dtypes, shapes, memory order and bits, recursively."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.flags.f_contiguous == b.flags.f_contiguous, where
        assert a.flags.c_contiguous == b.flags.c_contiguous, where
        assert a.tobytes(order="A") == b.tobytes(order="A"), where
        assert b.flags.writeable, where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert a.detach().reshape(-1).view(torch.uint8).tolist() == \
            b.detach().reshape(-1).view(torch.uint8).tolist(), where
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert type(key) is type(next(k for k in b if k == key)), f"{where} key {key!r}"
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), where
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{k}]")
    elif dataclasses.is_dataclass(a):
        for item in dataclasses.fields(a):
            assert_identical(getattr(a, item.name), getattr(b, item.name), f"{where}.{item.name}")
    else:
        assert a == b, where


def through_file(value, tmp_path):
    path = tmp_path / "state.pt"
    torch.save(encode_state(value), path)
    return decode_state(torch.load(path, weights_only=True))


ARRAYS = {
    "float64": np.array([1.5, -0.0, math.inf, math.nan, 1e-310]),
    "float32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "float16": np.array([0.1, 65504.0], dtype=np.float16),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint64": np.array([2**64 - 1, 0], dtype=np.uint64),
    "int64_0d": np.array(7, dtype=np.int64),
    "bool": np.array([[True, False]]),
    "complex128": np.array([1 + 2j, -3.5j]),
    "big_endian": np.array([1.25, 2.5], dtype=">f8"),
    "datetime": np.array(["2024-01-01T00:00"], dtype="datetime64[s]"),
    "unicode": np.array(["ab", "xyz"]),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided_view": np.arange(20.0).reshape(4, 5)[::2, 1::2],
    "nan_payload": np.frombuffer(struct.pack("<Q", 0x7FF8000000000ABC), dtype=np.float64),
}
SCALARS = {
    "float64": np.float64(0.1), "float32": np.float32(1 / 3), "int64": np.int64(-5),
    "uint32": np.uint32(7), "bool": np.bool_(True), "complex64": np.complex64(1 - 1j),
    "str": np.str_("agent"),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_numpy_arrays_round_trip_exactly(tmp_path, name):
    value = ARRAYS[name]
    expected = np.ascontiguousarray(value) if name == "strided_view" else value
    assert_identical(expected, through_file(value, tmp_path))


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_numpy_scalars_keep_their_dtype(tmp_path, name):
    value = SCALARS[name]
    back = through_file({"x": value}, tmp_path)["x"]
    assert_identical(value, back)
    assert type(back) is type(value)


def test_a_nested_loop_like_state_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(3)
    rng.random(5)
    mt = np.random.Generator(np.random.MT19937(4))
    module = torch.nn.Linear(2, 3)
    generator = torch.Generator().manual_seed(11)
    state = {
        "iteration": 12,
        "policies": [{"theta": torch.nn.Parameter(torch.randn(1, 2))}, {"w": torch.randn(3)}],
        "critic": module.state_dict(),  # an OrderedDict with _metadata
        "previous_steps": PreviousSteps(radius=np.array([[0.1, 0.2]]),
                                        divergence=np.array([[0.05, math.nan]]),
                                        improvement=np.array([[1.0, -2.0]])),
        "torch_generators": [generator.get_state()],
        "order_rngs": [rng.bit_generator.state, mt.bit_generator.state],
        "lambdas": {0: np.array([0.5]), np.int64(2): np.array([1.5])},  # a numpy key
        "bytes_keys": {b"": b"", b"\x00": (b"a",)},
        "tagged": {"__marl_tr__": "not a tag", "k": (1, [2, (3,)])},
        "plain": (None, True, 2**100, -0.0, math.inf, "s", b"\x00\xff", 1 + 2j),
        "sets": [{1, 2}, frozenset({"a"})],
        "torch_things": (torch.float64, torch.Size([2, 3]), torch.device("cpu")),
        "empty": ({}, [], ()),
    }
    back = through_file(state, tmp_path)
    assert_identical(state, back)
    assert type(back["critic"]) is OrderedDict
    restored = np.random.Generator(np.random.PCG64())
    restored.bit_generator.state = back["order_rngs"][0]
    assert restored.random() == rng.random()
    restored_mt = np.random.Generator(np.random.MT19937())
    restored_mt.bit_generator.state = back["order_rngs"][1]
    assert restored_mt.integers(1 << 30) == mt.integers(1 << 30)


@pytest.mark.parametrize("make", [
    lambda: torch.optim.Adam([torch.nn.Parameter(torch.randn(4))], lr=0.1, betas=(0.8, 0.9)),
    lambda: torch.optim.SGD([torch.nn.Parameter(torch.randn(4))], lr=0.1, momentum=0.9),
])
def test_torch_optimizer_state_round_trips_and_continues_exactly(tmp_path, make):
    torch.manual_seed(0)
    first = make()
    param = first.param_groups[0]["params"][0]
    for _ in range(3):
        first.zero_grad()
        (param ** 3).sum().backward()
        first.step()
    saved = first.state_dict()
    back = through_file(saved, tmp_path)
    assert_identical(saved, back)
    second = make()
    twin = second.param_groups[0]["params"][0]
    with torch.no_grad():
        twin.copy_(param)
    second.load_state_dict(back)
    for opt, p in ((first, param), (second, twin)):
        for _ in range(2):
            opt.zero_grad()
            (p ** 3).sum().backward()
            opt.step()
    assert torch.equal(param, twin)


@dataclasses.dataclass
class _Unregistered:
    x: int


@pytest.mark.parametrize(("state", "where", "what"), [
    ({"solver": {"x": [1, lambda: 0]}}, "['solver']['x'][1]", "function"),
    ({"a": np.array([object()], dtype=object)}, "['a']", "ndarray"),
    ({"a": np.zeros(2, dtype=[("f", "<f8")])}, "['a']", "ndarray"),
    ({"a": _Unregistered(1)}, "['a']", "_Unregistered"),
    ({"a": defaultdict(list)}, "['a']", "defaultdict"),
    ({"p": PreviousSteps(np.zeros(1), np.zeros(1), {"bad": len})}, "['p'].improvement['bad']",
     "builtin_function_or_method"),
])
def test_what_a_checkpoint_cannot_hold_is_refused_when_saving(state, where, what):
    with pytest.raises(TypeError, match=rf"checkpoint state at {re_escape(where)} holds a "
                                        rf"{what} .*register_checkpoint_record"):
        encode_state(state)


def re_escape(text):
    import re

    return re.escape(text)


def test_registered_records_are_rebuilt_by_name_and_unknown_ones_refused(tmp_path):
    @dataclasses.dataclass
    class Record:
        a: np.ndarray
        b: tuple

    with pytest.raises(TypeError, match="Record"):
        encode_state({"r": Record(np.ones(2), (1,))})
    register_checkpoint_record(Record)
    value = {"r": Record(np.ones(2, dtype=np.float32), (1, 2.5))}
    assert_identical(value, through_file(value, tmp_path))
    forged = encode_state(value)
    forged["r"]["name"] = "os.system"
    with pytest.raises(CheckpointError, match=r"'os\.system' record, which is not registered"):
        decode_state(forged)
    with pytest.raises(TypeError, match="needs a dataclass type"):
        register_checkpoint_record(dict)


# ---------------------------------------------------------------------------------------
# the loop's whole state through a checkpoint file
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["hatrpo", "wmatrpo-caatr", "happo"])
def test_the_loop_state_through_a_safe_checkpoint_continues_exactly(tmp_path, preset,
                                                                    params_equal, rows_equal):
    config = TrainConfig(preset=preset, env_kwargs={"n": 3}, seed=2)
    first = SequentialTrustRegion(build_parts(config))
    for _ in range(3):
        first.step()
    directory = RunDirectory(tmp_path / "run")
    directory.save_checkpoint(first.state_dict(), iteration=3)
    raw = torch.load(directory.checkpoint_path, weights_only=True)  # no allowlist needed
    assert raw[HEADER_KEY]["format_version"] == CHECKPOINT_FORMAT_VERSION
    assert raw["iteration"] == 3 and len(raw["policies"]) == 3
    checkpoint = RunDirectory(tmp_path / "run").load_checkpoint()
    assert checkpoint.iteration == 3
    assert_identical(encode_state(first.state_dict()), encode_state(checkpoint.state))
    second = SequentialTrustRegion(build_parts(config))
    second.load_state_dict(checkpoint.state)
    # NaN-aware: an agent that took no step logs NaN details
    rows_equal([row for _ in range(3) for row in first.step()],
               [row for _ in range(3) for row in second.step()])
    assert params_equal(first.policies, second.policies)


# ---------------------------------------------------------------------------------------
# a checkpoint whose pickle runs code
# ---------------------------------------------------------------------------------------
class Evil:
    """Unpickling this runs ``exec(code)``: the pickle names ``builtins.exec`` only."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def write_evil_checkpoint(path: Path, marker: Path) -> None:
    code = f"open({str(marker)!r}, 'w').write('code ran')"
    torch.save({"iteration": 3, "policies": [Evil(code)]}, path)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "run"
    marl_tr.train(preset="hatrpo", env_kwargs={"n": 2}, iterations=6, seed=0,
                  run_dir=str(path))
    return path


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(small_run, tmp_path,
                                                                        capsys):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    write_evil_checkpoint(evil, marker)
    torch.load(evil, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.read_text() == "code ran"
    marker.unlink()

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    shutil.copy(evil, run / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(CheckpointError, match=r"is refused: it names builtins\.exec, which no "
                                              r"marl_tr checkpoint holds") as info:
        marl_tr.train(resume=run)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("marl-tr: error: ")
    assert "builtins.exec" in err
    with pytest.raises(CheckpointError, match=r"is refused: it names builtins\.exec"):
        convert_checkpoint(run, trust=True)  # even a trusted conversion never unpickles it
    assert not marker.exists()
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


# ---------------------------------------------------------------------------------------
# checkpoints written before format 1
# ---------------------------------------------------------------------------------------
KWARGS = {"preset": "wmatrpo-caatr", "env_kwargs": {"n": 3}, "seed": 4}


def write_legacy_run(path: Path, iterations: int) -> None:
    """A run directory as marl_tr wrote it before format 1: checkpoint.pt is
    ``torch.save(loop.state_dict())``, a plain pickle with numpy arrays and PreviousSteps."""
    marl_tr.train(**KWARGS, iterations=iterations, run_dir=str(path))
    loop = SequentialTrustRegion(build_parts(TrainConfig(**KWARGS)))
    for _ in range(iterations):
        loop.step()
    torch.save(loop.state_dict(), path / "checkpoint.pt")


def test_a_legacy_checkpoint_is_refused_with_the_conversion_command(tmp_path, capsys):
    run = tmp_path / "old"
    write_legacy_run(run, 4)
    with pytest.raises(CheckpointError, match=r"was written by marl_tr before checkpoint format "
                       r"1 .*convert it once with: marl-tr convert-checkpoint --trust "
                       + re_escape(str(run)) + "$"):
        marl_tr.train(resume=run, iterations=8)
    assert len(read_metrics(run / "metrics.csv")) == 4  # untouched
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "convert-checkpoint --trust" in err
    assert main(["convert-checkpoint", str(run)]) == 2  # --trust is required
    assert "needs trust=True" in capsys.readouterr().err


def test_converting_a_trusted_legacy_checkpoint_resumes_exactly(tmp_path, capsys):
    run = tmp_path / "old"
    write_legacy_run(run, 4)
    legacy = (run / "checkpoint.pt").read_bytes()
    assert main(["convert-checkpoint", "--trust", str(run)]) == 0
    assert "converted" in capsys.readouterr().out
    assert (run / "checkpoint.legacy.pt").read_bytes() == legacy
    assert RunDirectory(run).load_checkpoint().iteration == 4
    with pytest.raises(ValueError, match="already in the current format: nothing to convert"):
        convert_checkpoint(run, trust=True)
    marl_tr.train(resume=run, iterations=8)
    marl_tr.train(**KWARGS, iterations=8, run_dir=str(tmp_path / "whole"))
    assert (run / "metrics.csv").read_bytes() == (tmp_path / "whole" / "metrics.csv").read_bytes()


def test_a_legacy_checkpoint_from_another_run_is_not_converted(tmp_path):
    run = tmp_path / "old"
    write_legacy_run(run, 4)
    other = SequentialTrustRegion(build_parts(TrainConfig(preset="hatrpo", env_kwargs={"n": 2})))
    torch.save(other.state_dict(), run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"does not fit its config\.yaml"):
        convert_checkpoint(run, trust=True)
    assert not (run / "checkpoint.legacy.pt").exists()


# ---------------------------------------------------------------------------------------
# plug-in strings of a resumed config import modules
# ---------------------------------------------------------------------------------------
PLUGIN = textwrap.dedent("""
    from pathlib import Path
    from marl_tr import DIVERGENCES

    Path({marker!r}).write_text("imported")
    KL = DIVERGENCES.get("kl")
""")


def test_a_resumed_config_may_only_name_modules_already_imported(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "marker"
    package = tmp_path / "plugins"
    package.mkdir()
    name = "marl_tr_resume_plugin_probe"
    (package / f"{name}.py").write_text(PLUGIN.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(package))
    run = tmp_path / "run"
    marl_tr.train(divergence=f"{name}:KL", env_kwargs={"n": 2}, iterations=3, run_dir=str(run))
    assert marker.exists()
    marker.unlink()
    monkeypatch.delitem(sys.modules, name)

    with pytest.raises(ValueError, match=rf"names module '{name}' \(divergence='{name}:KL'\), "
                                         rf"which is not imported.*--import {name}"):
        marl_tr.train(resume=run, iterations=5)
    assert not marker.exists()  # refused before importing it
    assert main(["train", "--resume", str(run), "--iterations", "5"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not marker.exists()

    assert main(["train", "--import", name, "--resume", str(run), "--iterations", "5"]) == 0
    assert marker.exists()
    assert len(read_metrics(run / "metrics.csv")) == 5


@pytest.mark.parametrize(("field", "value", "modules"), [
    ("divergence", "pkg.mod:Class", ["pkg.mod"]),
    ("solver", "pkg.mod:Class:lr=0.1", ["pkg.mod"]),
    ("radius", "caatr:C=0.1,divergence=evil:W", ["evil"]),
    ("env", "mypkg.envs:parallel_env", ["mypkg.envs"]),
    ("env", "othermod:Game-v0", ["othermod"]),
    ("env", "marl_tr_envs:DiffGame-v0", []),
    ("divergence", "w1:ground=l1", []),
    ("radius", "caatr:C=0.02,divergence=w1,initial_delta=0.1", []),
    ("divergence", "os:system", []),  # os is imported already: importing it runs nothing new
])
def test_which_module_paths_a_config_string_imports(field, value, modules):
    config = TrainConfig().replace(**{field: value})
    assert [m for _, m in unimported_modules(config)] == modules


@pytest.mark.parametrize("preset", marl_tr.PRESETS.names())
def test_resolved_preset_configs_name_no_module(preset):
    parts = build_parts(TrainConfig(preset=preset, env_kwargs={"n": 3}))
    parts.env.close()
    assert unimported_modules(parts.config) == []
    for env in ("ClimbingGame-v0", "PenaltyGame-v0"):
        assert unimported_modules(parts.config.replace(env=env)) == []


def test_checkpoint_files_hold_no_pickled_globals_beyond_torchs_safe_set(small_run):
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(small_run / "checkpoint.pt")) == []
    assert os.path.getsize(small_run / "checkpoint.pt") > 0
