"""A run directory: ``config.yaml`` (resolved, loadable), ``metrics.csv``, ``checkpoint.pt``.

Contract:

- **Safe to load.** ``checkpoint.pt`` is read with ``torch.load(..., weights_only=True)``; it
  never unpickles arbitrary objects. ``encode_state`` turns a loop state (tensors, numpy
  arrays and scalars, plain containers, numbers, strings, ``torch.optim`` state dicts and the
  dataclasses registered with ``register_checkpoint_record``, e.g. ``PreviousSteps``) into
  tensors, plain containers and small tagged dicts; ``decode_state`` rebuilds it exactly
  (dtypes, shapes, memory order, tuple vs list). A checkpoint written before format
  ``CHECKPOINT_FORMAT_VERSION`` (a plain pickle) is refused with a one-line ``CheckpointError``
  that says how to convert one the user trusts (``marl-tr convert-checkpoint --trust DIR``);
  ``load_legacy_checkpoint`` reads such a file for that conversion, allowing only the numpy
  and ``PreviousSteps`` globals old checkpoints hold.
- **Validated on resume.** Every entry of ``checkpoint.pt`` (a zip archive) must pass its
  CRC-32 (``torch.load`` alone would load a flipped bit as a wrong number). A checkpoint
  carries its iteration, a fingerprint of the resolved
  config and of the env's spaces (``run_fingerprint``), and the position of ``metrics.csv`` at
  that iteration (rows, bytes, SHA-256, header). ``check_config_fingerprint`` and
  ``check_spaces_fingerprint`` name every field that differs; ``RunDirectory.check_metrics``
  refuses a ``metrics.csv`` that is missing, cut short, re-headed or edited before the
  checkpoint, and ``RunDirectory.repair_metrics`` drops what lies past it (rows of later
  iterations, a torn last row), with a ``RunDirectoryWarning``.
- **Atomic.** Checkpoints and ``config.yaml`` are written to ``<name>.tmp``, ``fsync``-ed and
  renamed over the old file (then the directory is ``fsync``-ed), so a kill during a write
  leaves the previous file intact. ``metrics.csv`` is ``fsync``-ed before each checkpoint
  that refers to it.
- **Paths checked before any work.** ``check_output_path`` refuses an output path that is a
  file where a directory is needed (or the other way round), or that cannot be created or
  written; ``read_config`` turns a missing, unreadable or invalid YAML file into a one-line
  error.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import math
import os
import pickle
import tempfile
import warnings
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch
import yaml

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, run directories unguarded
    fcntl = None  # type: ignore[assignment]

from marl_tr.config import TrainConfig
from marl_tr.radius.base import PreviousSteps

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "HEADER_KEY",
    "LEGACY_BACKUP_FILE",
    "RESUMABLE_CHANGES",
    "Checkpoint",
    "CheckpointError",
    "MetricsPosition",
    "MetricsRepair",
    "MetricsWriter",
    "RunDirectory",
    "RunDirectoryInUse",
    "RunDirectoryWarning",
    "TensorBoardWriter",
    "as_path",
    "check_config_fingerprint",
    "check_output_path",
    "check_spaces_fingerprint",
    "decode_state",
    "encode_state",
    "load_legacy_checkpoint",
    "metrics_position_at",
    "read_config",
    "read_metrics",
    "register_checkpoint_record",
    "run_fingerprint",
]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"
LEGACY_BACKUP_FILE = "checkpoint.legacy.pt"
LOG_FILE = "run.log"

#: Version of the checkpoint format (1: ``weights_only``-loadable, with fingerprint).
CHECKPOINT_FORMAT_VERSION = 1
#: Key of the checkpoint header inside the saved dict (the rest is the encoded loop state).
HEADER_KEY = "marl_tr_checkpoint"
#: Fields a resumed run may change (everything else must match the saved config);
#: ``vectorization`` too: sync and async copies give the same batches.
RESUMABLE_CHANGES = ("iterations", "log_interval", "checkpoint_interval", "checkpoint_seconds",
                     "progress", "tensorboard", "vectorization")
#: Config fields the fingerprint leaves out: the resumable ones and where the run lives.
_UNFINGERPRINTED = (*RESUMABLE_CHANGES, "run_dir")


class RunDirectoryInUse(ValueError):
    """Another process is training or resuming in the run directory."""


class CheckpointError(ValueError):
    """A checkpoint or run directory that cannot be resumed (unsafe, damaged, from another
    run, or not matching ``metrics.csv``); the message names what and why.

    Attributes:
        legacy: the checkpoint was written before format 1 (it can be converted).
    """

    def __init__(self, message: str, *, legacy: bool = False) -> None:
        super().__init__(message)
        self.legacy = legacy


class RunDirectoryWarning(UserWarning):
    """A run directory was repaired on resume (rows past the checkpoint dropped)."""


# ---------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------
def as_path(name: str, value: Any) -> Path:
    """``value`` as a ``Path``; ``TypeError`` unless it is a ``str`` or ``os.PathLike``."""
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a path (str or os.PathLike), got {value!r} ({type(value).__name__})"
        )
    path = Path(value)
    if not str(value).strip():
        raise ValueError(f"{name} must be a non-empty path, got {value!r}")
    return path


def check_output_path(name: str, path: Any, *, kind: Literal["dir", "file"]) -> Path:
    """Check, before any work, that ``path`` can be written as a directory or a file.

    Nothing is left behind (writability is probed with an empty file, made and removed). An
    existing path must be of the right kind and writable; a missing one needs its nearest
    existing ancestor to be a writable directory.

    Raises:
        TypeError: ``path`` is not a path.
        ValueError: a file where a directory is needed (or the reverse), or not writable.
    """
    path = as_path(name, path)
    shown = str(path)
    if path.exists():
        if kind == "dir" and not path.is_dir():
            raise ValueError(f"{name} must be a directory, but {shown!r} is a file")
        if kind == "file" and path.is_dir():
            raise ValueError(f"{name} must be a file, but {shown!r} is a directory")
        writable = path if kind == "dir" else path.parent
        refusal = None if os.access(path, os.W_OK) else "permission denied"
        refusal = refusal or _cannot_write_in(writable)
        if refusal:
            raise ValueError(f"{name} {shown!r} is not writable ({refusal})")
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(
            f"{name} {shown!r} cannot be created: {str(ancestor)!r} is a file, not a directory"
        )
    refusal = _cannot_write_in(ancestor)
    if refusal:
        raise ValueError(f"{name} {shown!r} cannot be created: {str(ancestor)!r} is not "
                         f"writable ({refusal})")
    return path


def _cannot_write_in(directory: Path) -> str | None:
    """Why no file can be made in ``directory`` (``None``: one can), found by making and
    removing an empty one: permission bits alone miss read-only mounts and pseudo file
    systems, and a superuser passes every ``os.access`` test."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".marl_tr-probe-", dir=directory)
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    os.close(handle)
    os.unlink(probe)
    return None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        problem += f" (line {mark.line + 1}, column {mark.column + 1})"
    return problem


def read_config(path: Any, name: str = "config") -> TrainConfig:
    """Read a ``config.yaml`` (``yaml.safe_load``); every failure is a one-line error.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a directory, not text, invalid YAML, or bad config keys/values.
    """
    path = as_path(name, path)
    if not path.exists():
        raise FileNotFoundError(f"{name} file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{name} file {str(path)!r} is a directory, not a YAML file")
    try:
        return TrainConfig.from_yaml(path)
    except yaml.YAMLError as exc:
        raise ValueError(f"{str(path)!r} is not valid YAML: {_yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not a text (YAML) file") from None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``<name>.tmp``, ``fsync`` and rename (old file intact until
    the rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------
# state encoding: what torch.load(weights_only=True) accepts, and back
# ---------------------------------------------------------------------------------------
TAG = "__marl_tr__"
_RECORDS: dict[str, type] = {}
_PLAIN = (type(None), bool, int, float, complex, str)
_PLAIN_KEYS = (type(None), bool, int, float, str)
_TORCH_PLAIN = (torch.dtype, torch.Size, torch.device)


def register_checkpoint_record(cls: type) -> type:
    """Allow instances of the dataclass ``cls`` in checkpoints (rebuilt by its qualified
    name from its fields). Use as a decorator; returns ``cls``."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_checkpoint_record needs a dataclass type, got {cls!r}")
    _RECORDS[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


register_checkpoint_record(PreviousSteps)


class _Unsupported(TypeError):
    def __init__(self, where: str, value: Any) -> None:
        super().__init__(where, value)
        self.where, self.value = where, value


def encode_state(state: Any) -> Any:
    """``state`` as tensors, plain containers and numbers, and tagged dicts for numpy values
    and registered records: what ``torch.load(..., weights_only=True)`` reads back.

    Tensors are kept as they are (not copied): save the result right away.

    Raises:
        TypeError: a value no checkpoint can hold safely (named with its path in ``state``).
    """
    try:
        return _encode(state)
    except _Unsupported as exc:
        raise TypeError(
            f"checkpoint state at {exc.where or '<root>'} holds a {type(exc.value).__name__} "
            f"({_short(exc.value)}), which a checkpoint cannot store safely; use tensors, numpy "
            "arrays/scalars, dicts, lists, tuples, numbers and strings, or a dataclass "
            "registered with register_checkpoint_record"
        ) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _encode_at(key: Any, value: Any) -> Any:
    try:
        return _encode(value)
    except _Unsupported as exc:
        raise _Unsupported(f"[{key!r}]{exc.where}", exc.value) from None


def _encode(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN or kind in (torch.Tensor, torch.nn.Parameter) or isinstance(
            value, _TORCH_PLAIN):
        return value
    if kind is dict or kind is OrderedDict:
        if TAG not in value and all(type(k) in _PLAIN_KEYS for k in value):
            out = kind()
            for key, item in value.items():
                out[key] = _encode_at(key, item)
            metadata = getattr(value, "_metadata", None)  # nn.Module.state_dict()
            if metadata is not None:
                out._metadata = _encode_at("_metadata", metadata)  # type: ignore[attr-defined]
            return out
        return {TAG: "dict", "ordered": kind is OrderedDict,
                "items": [(_encode_at(key, key), _encode_at(key, item))
                          for key, item in value.items()]}
    if kind is list or kind is tuple:
        items = [_encode_at(index, item) for index, item in enumerate(value)]
        return items if kind is list else tuple(items)
    if kind is set or kind is frozenset:
        return {TAG: kind.__name__, "items": [_encode(v) for v in value]}
    if kind is bytes:  # as tensor storage (pickle protocol 2 would need a global for b"")
        return {TAG: "bytes", "data": _byte_tensor(value)}
    if isinstance(value, np.ndarray) and kind is np.ndarray:
        dtype = _plain_dtype(value)
        order = "F" if value.flags.f_contiguous and not value.flags.c_contiguous else "C"
        return {TAG: "ndarray", "dtype": dtype.str, "shape": tuple(value.shape),
                "order": order, "data": _byte_tensor(value.tobytes(order=order))}
    if isinstance(value, np.generic):
        dtype = _plain_dtype(value)
        return {TAG: "npscalar", "dtype": dtype.str,
                "data": _byte_tensor(np.asarray(value).tobytes())}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = f"{kind.__module__}.{kind.__qualname__}"
        if _RECORDS.get(name) is not kind:
            raise _Unsupported("", value)
        fields = {}
        for item in dataclasses.fields(value):
            try:
                fields[item.name] = _encode(getattr(value, item.name))
            except _Unsupported as exc:
                raise _Unsupported(f".{item.name}{exc.where}", exc.value) from None
        return {TAG: "record", "name": name, "fields": fields}
    raise _Unsupported("", value)


def _byte_tensor(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())


def _raw_bytes(data: Any) -> bytes:
    if not (isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.dim() == 1):
        raise CheckpointError("array data is not a 1-D uint8 tensor")
    return data.numpy().tobytes()


def _plain_dtype(value: np.ndarray | np.generic) -> np.dtype:
    dtype = value.dtype
    if dtype.hasobject or dtype.fields is not None:
        raise _Unsupported("", value)
    return dtype


def decode_state(data: Any) -> Any:
    """The inverse of ``encode_state``.

    Raises:
        CheckpointError: an unknown tag, an unregistered record or inconsistent array data.
    """
    kind = type(data)
    if kind is dict or kind is OrderedDict:
        tag = data.get(TAG) if kind is dict else None
        if tag is None:
            out = kind((k, decode_state(v)) for k, v in data.items())
            metadata = getattr(data, "_metadata", None)
            if metadata is not None:
                out._metadata = decode_state(metadata)  # type: ignore[attr-defined]
            return out
        return _decode_tagged(tag, data)
    if kind is list:
        return [decode_state(v) for v in data]
    if kind is tuple:
        return tuple(decode_state(v) for v in data)
    return data


def _decode_tagged(tag: Any, data: dict[str, Any]) -> Any:
    try:
        if tag == "ndarray":
            dtype = np.dtype(data["dtype"])
            shape = tuple(int(s) for s in data["shape"])
            raw = _raw_bytes(data["data"])
            if len(raw) != math.prod(shape) * dtype.itemsize:
                raise CheckpointError(
                    f"array data of {len(raw)} bytes does not fit shape {shape} of {dtype}")
            flat = np.frombuffer(raw, dtype=dtype)
            order = data.get("order", "C")
            return flat.reshape(shape, order=order).copy(order="K" if order == "F" else "C")
        if tag == "npscalar":
            dtype = np.dtype(data["dtype"])
            raw = _raw_bytes(data["data"])
            if len(raw) != dtype.itemsize:
                raise CheckpointError(f"scalar data of {len(raw)} bytes does not fit {dtype}")
            return np.frombuffer(raw, dtype=dtype)[0]
        if tag == "bytes":
            return _raw_bytes(data["data"])
        if tag == "dict":
            items = [(decode_state(k), decode_state(v)) for k, v in data["items"]]
            return OrderedDict(items) if data.get("ordered") else dict(items)
        if tag in ("set", "frozenset"):
            values = [decode_state(v) for v in data["items"]]
            return set(values) if tag == "set" else frozenset(values)
        if tag == "record":
            cls = _RECORDS.get(data["name"])
            if cls is None:
                raise CheckpointError(
                    f"the checkpoint holds a {data['name']!r} record, which is not registered "
                    "(register_checkpoint_record)")
            fields = {name: decode_state(v) for name, v in data["fields"].items()}
            expected = {f.name for f in dataclasses.fields(cls)}
            if set(fields) != expected:
                raise CheckpointError(
                    f"record {data['name']!r} has fields {sorted(fields)}, expected "
                    f"{sorted(expected)}")
            return cls(**fields)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"damaged {tag!r} entry in the checkpoint: {exc}") from None
    raise CheckpointError(f"unknown entry type {tag!r} in the checkpoint")


# ---------------------------------------------------------------------------------------
# legacy checkpoints (before format 1): refused; readable for a trusted conversion
# ---------------------------------------------------------------------------------------
def _legacy_allowlist() -> list[Any]:
    try:
        from numpy._core import multiarray
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray

    allowed: list[Any] = [np.ndarray, np.dtype, PreviousSteps, multiarray._reconstruct,
                          multiarray.scalar,
                          (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                          (multiarray.scalar, "numpy.core.multiarray.scalar")]
    allowed += [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    return allowed


def _legacy_global_names() -> set[str]:
    names = set()
    for item in _legacy_allowlist():
        if isinstance(item, tuple):
            names.add(item[1])
        else:
            names.add(f"{item.__module__}.{item.__qualname__}")
    return names


def load_legacy_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written before format 1 with ``weights_only=True``, allowing only
    the numpy and ``PreviousSteps`` globals such checkpoints hold (no other code can run).

    Raises:
        CheckpointError: the file holds anything else, or is damaged.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_legacy_allowlist()):
            state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        foreign = sorted(set(_unsafe_globals(path) or ["?"]) - _legacy_global_names())
        raise CheckpointError(
            f"{str(path)!r} holds objects no marl_tr checkpoint holds ({', '.join(foreign)}); "
            "not converted") from None
    except Exception as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint "
                              f"({_first_line(exc)})") from None
    if not isinstance(state, dict) or "iteration" not in state:
        raise CheckpointError(f"{str(path)!r} is not a marl_tr checkpoint (no loop state)")
    return state


def _unsafe_globals(path: Path) -> list[str] | None:
    """The pickle globals of a ``torch.save`` file beyond torch's safe set (a static scan,
    nothing is loaded); ``None`` if the file cannot be scanned."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        return None


def _entry_failing_crc(path: Path) -> str | None:
    """The first entry of a ``torch.save`` zip archive whose bytes fail their CRC-32 (which
    ``torch.load`` does not check: a flipped bit would load as a wrong number); ``None`` if
    all pass or the file is no zip archive (``torch.load`` then says what it is)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None


def _unreadable(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(
        f"{str(path)!r} is not a readable checkpoint ({reason}): it is damaged or truncated; "
        "resume from an intact copy or start a new run")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# ---------------------------------------------------------------------------------------
# fingerprint of a run: resolved config and env spaces
# ---------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _bounds(values: Any) -> Any:
    """A Box bound as a list, or as a digest when it is large (image observations)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size <= 64:
        return array.tolist()
    return {"size": int(array.size),
            "sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}


def _space(space: Any) -> dict[str, Any]:
    name = type(space).__name__
    if hasattr(space, "low") and hasattr(space, "high") and hasattr(space, "shape"):
        return {"type": name, "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bounds(space.low), "high": _bounds(space.high)}
    if hasattr(space, "n") and hasattr(space, "start"):
        return {"type": name, "n": int(space.n), "start": int(space.start)}
    return {"type": name, "repr": repr(space)}


def _spaces(env: Any) -> dict[str, Any]:
    return {
        "agents": [str(a) for a in env.agents],
        "observation": [_space(s) for s in env.observation_spaces],
        "action": [_space(s) for s in env.action_spaces],
        "state_dim": int(env.state_dim),
    }


def run_fingerprint(config: TrainConfig, env: Any) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the resolved config (less the resumable
    fields and ``run_dir``) and the env's agents, spaces and state size."""
    settings = {k: v for k, v in _plain(config.to_dict()).items() if k not in _UNFINGERPRINTED}
    return {"config": settings, "spaces": _spaces(env)}


def check_config_fingerprint(fingerprint: dict[str, Any], config: TrainConfig,
                             where: str) -> None:
    """Refuse a config that differs from the checkpoint's in any fingerprinted field.

    Fields the fingerprint does not record (added to ``TrainConfig`` later) are not compared.

    Raises:
        CheckpointError: naming every differing field with both values.
    """
    saved = fingerprint.get("config", {})
    current = _plain(config.to_dict())
    names = TrainConfig.field_names()
    diffs = []
    for key, value in saved.items():
        if key in _UNFINGERPRINTED:
            continue
        if key not in names:
            diffs.append(f"{key}={value!r} (not a field of this marl_tr's TrainConfig)")
        elif current[key] != value:
            diffs.append(f"{key}: {value!r} in the checkpoint, {current[key]!r} in config.yaml")
    if diffs:
        raise CheckpointError(
            f"the checkpoint in {where} was written by another run: {'; '.join(diffs)} "
            "(config.yaml was edited, or checkpoint.pt comes from another run); refusing to "
            "resume"
        )


def check_spaces_fingerprint(fingerprint: dict[str, Any], env: Any, where: str) -> None:
    """Refuse an env whose agents or spaces differ from the checkpoint's.

    Raises:
        CheckpointError: naming the agent and the space that differ.
    """
    saved = fingerprint.get("spaces")
    if saved is None:
        return
    current = _spaces(env)
    if saved["agents"] != current["agents"]:
        raise CheckpointError(
            f"the checkpoint in {where} has agents {saved['agents']}, this env has "
            f"{current['agents']}; refusing to resume")
    for kind in ("observation", "action"):
        for agent, old, new in zip(current["agents"], saved[kind], current[kind]):
            if old != new:
                raise CheckpointError(
                    f"the env's {kind} space of agent {agent!r} differs from the checkpoint's "
                    f"in {where}: {_short(new)} now, {_short(old)} in the checkpoint; "
                    "refusing to resume")
    if saved["state_dim"] != current["state_dim"]:
        raise CheckpointError(
            f"the env's state size is {current['state_dim']}, the checkpoint's in {where} is "
            f"{saved['state_dim']}; refusing to resume")


# ---------------------------------------------------------------------------------------
# metrics.csv
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricsPosition:
    """Where ``metrics.csv`` stood when a checkpoint was written.

    Attributes:
        rows: data rows (``iterations * replicas``).
        bytes: file size.
        sha256: hex digest of those bytes.
        columns: the header (``None`` while no row was written).
    """

    rows: int
    bytes: int
    sha256: str
    columns: list[str] | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> MetricsPosition:
        try:
            columns = data["columns"]
            return cls(int(data["rows"]), int(data["bytes"]), str(data["sha256"]),
                       None if columns is None else [str(c) for c in columns])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"damaged metrics position in the checkpoint: {exc}") from None


def _encode_rows(columns: list[str], rows: Sequence[dict[str, Any]], header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="nan", extrasaction="ignore")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


class MetricsWriter:
    """Appends metric rows to a CSV file (header from the first row), keeping the number of
    rows and bytes written and their SHA-256 (what a checkpoint records).

    Args:
        path: the CSV file; a fresh writer starts it anew at its first flush.
        flush_every: rows buffered before they are written.
    """

    def __init__(self, path: Path, flush_every: int = 200) -> None:
        self.path = Path(path)
        self.flush_every = flush_every
        self._pending: list[dict[str, Any]] = []
        self._columns: list[str] | None = None
        self._rows = 0
        self._bytes = 0
        self._hash = hashlib.sha256()

    @property
    def columns(self) -> list[str] | None:
        return self._columns

    def write(self, row: dict[str, Any]) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.flush_every:
            self.flush()

    def header(self) -> bytes:
        """The header line's bytes (empty while no row was written)."""
        return b"" if self._columns is None else _encode_rows(self._columns, [], header=True)

    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes:
        """The bytes ``rows`` take in the file (no header)."""
        return _encode_rows(self._columns or list(rows[0]), rows, header=False) if rows else b""

    def flush(self) -> None:
        if not self._pending:
            return
        new_file = self._columns is None
        if new_file:
            self._columns = list(self._pending[0])
        data = _encode_rows(self._columns, self._pending, header=new_file)
        with self.path.open("wb" if self._bytes == 0 else "ab") as handle:
            handle.write(data)
        self._hash.update(data)
        self._bytes += len(data)
        self._rows += len(self._pending)
        self._pending = []

    def sync(self) -> None:
        """``fsync`` the file (after ``flush``)."""
        if self.path.exists():
            with self.path.open("rb") as handle:
                os.fsync(handle.fileno())

    def position(self) -> MetricsPosition:
        """Rows, bytes and digest written so far (pending rows not included: flush first)."""
        return MetricsPosition(self._rows, self._bytes, self._hash.hexdigest(),
                               None if self._columns is None else list(self._columns))

    def restore(self, position: MetricsPosition, digest: Any) -> None:
        """Continue after ``position`` (the file already holds exactly those bytes)."""
        self._pending = []
        self._columns = None if position.columns is None else list(position.columns)
        self._rows, self._bytes, self._hash = position.rows, position.bytes, digest


def read_metrics(path: str | Path) -> list[dict[str, float | str]]:
    """Read a ``metrics.csv`` back (numbers as floats, the agent order as text)."""
    with Path(path).open(newline="") as handle:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def metrics_position_at(path: str | Path, rows: int, replicas: int) -> MetricsPosition:
    """The position after the header and the first ``rows`` rows of an existing
    ``metrics.csv`` (for converting a legacy checkpoint), checking that row ``j`` belongs to
    iteration ``j // replicas``.

    Raises:
        CheckpointError: fewer rows, a torn row or rows out of order.
    """
    path = Path(path)
    data = path.read_bytes() if path.exists() else b""
    if rows == 0:
        return MetricsPosition(0, 0, hashlib.sha256().hexdigest(), None)
    lines = data.splitlines(keepends=True)
    if not lines:
        raise CheckpointError(f"{str(path)!r} is empty, but the checkpoint needs {rows} rows")
    columns = next(csv.reader([lines[0].decode("utf-8")]))
    if "iteration" not in columns:
        raise CheckpointError(f"{str(path)!r} has no 'iteration' column")
    offset, index = len(lines[0]), columns.index("iteration")
    for j in range(rows):
        if j + 1 >= len(lines) or not lines[j + 1].endswith(b"\n"):
            raise CheckpointError(
                f"{str(path)!r} holds {j} complete rows, but the checkpoint needs {rows}")
        fields = next(csv.reader([lines[j + 1].decode("utf-8")]))
        if len(fields) != len(columns) or _number(fields[index]) != j // replicas:
            raise CheckpointError(f"{str(path)!r}: row {j + 1} is not iteration {j // replicas}")
        offset += len(lines[j + 1])
    prefix = data[:offset]
    return MetricsPosition(rows, offset, hashlib.sha256(prefix).hexdigest(), columns)


@dataclass(frozen=True)
class MetricsRepair:
    """What resuming does to ``metrics.csv``: keep ``position.bytes``, drop the rest.

    Attributes:
        position: the checkpoint's position (what is kept).
        dropped_rows: complete rows past it.
        torn: whether the file ended in a torn (partly written) row.
    """

    position: MetricsPosition
    dropped_rows: int
    torn: bool
    digest: Any = dataclasses.field(repr=False, compare=False, default=None)


# ---------------------------------------------------------------------------------------
# checkpoints and the directory
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        iteration: iterations done.
        state: the loop state (``SequentialTrustRegion.state_dict()``), decoded.
        fingerprint: ``run_fingerprint`` of the run that wrote it.
        metrics: where ``metrics.csv`` stood.
    """

    iteration: int
    state: dict[str, Any]
    fingerprint: dict[str, Any]
    metrics: MetricsPosition


class RunDirectory:
    """Files of one run.

    Args:
        path: the directory (created if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = as_path("run_dir", path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsWriter(self.path / METRICS_FILE)
        #: iteration of the last checkpoint written or loaded here (``None``: none yet)
        self.checkpoint_iteration: int | None = None
        self._release: weakref.finalize | None = None

    def lock(self) -> None:
        """Hold an exclusive advisory lock (``flock``) on the directory itself while this
        process runs in it, until ``unlock`` or the process ends; no file is written.

        Raises:
            RunDirectoryInUse: another process holds it.
        """
        if fcntl is None or self._release is not None:
            return
        handle = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            raise RunDirectoryInUse(
                f"run directory {str(self.path)!r} is in use by another run (a training or "
                "resume in progress); wait for it to end or choose another run_dir") from None
        self._release = weakref.finalize(self, os.close, handle)

    def unlock(self) -> None:
        """Release ``lock`` (no-op when not held)."""
        if self._release is not None:
            self._release()
            self._release = None

    @classmethod
    def existing(cls, path: Any, name: str = "resume") -> RunDirectory:
        """An existing run directory (``config.yaml`` present, writable).

        Raises:
            FileNotFoundError: no such directory, or no ``config.yaml`` in it.
            ValueError: a file, or not writable.
        """
        path = as_path(name, path)
        if not path.exists():
            raise FileNotFoundError(f"no run directory {str(path)!r} (given as {name})")
        if not path.is_dir():
            raise ValueError(f"{name} must be a run directory, but {str(path)!r} is a file")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"run directory {str(path)!r} is not writable")
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{str(path)!r} is not a run directory: it has no {CONFIG_FILE}")
        return cls(path)

    @staticmethod
    def check_new(path: Any) -> Path:
        """Check, before any work, that ``path`` can hold a new run: a writable directory (or
        creatable) without a run in it.

        Raises:
            TypeError / ValueError: see ``check_output_path``; or a run is already there.
        """
        path = check_output_path("run_dir", path, kind="dir")
        held = [name for name in (CHECKPOINT_FILE, METRICS_FILE)
                if (path / name).exists() and (
                    (path / name).is_dir() or (path / name).stat().st_size > 0)]
        if held:
            raise ValueError(
                f"run_dir {str(path)!r} already holds a run ({', '.join(held)}); continue it "
                f"with resume={str(path)!r} (marl-tr train --resume {path}) or choose another "
                "run_dir"
            )
        return path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    def write_config(self, config: TrainConfig,
                     sources: dict[str, str] | None = None) -> None:
        """Write ``config.yaml`` atomically.

        Args:
            config: the resolved config.
            sources: where layered fields' values came from (``"preset"``, ``"profile"``,
                ...): written as comments at the top (the YAML itself is the same). Without
                any (a resumed run's config is all resolved), the comments that the file
                already starts with are kept.
        """
        tmp = self.config_path.with_name(CONFIG_FILE + ".tmp")
        config.to_yaml(tmp)
        notes = []
        for origin in ("preset", "profile"):
            names = [name for name, source in (sources or {}).items() if source == origin]
            if names:
                label = (f"profile {config.profile}" if origin == "profile"
                         else f"preset {config.preset}")
                notes.append(f"# set by the {label}: {', '.join(names)}\n")
        if not notes and self.config_path.is_file():
            with self.config_path.open() as old:
                notes = list(itertools.takewhile(lambda line: line.startswith("#"), old))
        if notes:
            tmp.write_text("".join(notes) + tmp.read_text())
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.config_path)
        _fsync_dir(self.path)

    def log(self, message: str) -> None:
        """Append a line to the run's ``run.log`` (events such as how a resume went)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / LOG_FILE).open("a") as handle:
            handle.write(" ".join(message.split()) + "\n")

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], *, iteration: int | None = None,
                        fingerprint: dict[str, Any] | None = None) -> None:
        """Write ``state`` (a loop ``state_dict()``) at ``iteration`` atomically, with the run's
        fingerprint and the position of ``metrics.csv`` (flushed and ``fsync``-ed first)."""
        self.metrics.flush()
        self.metrics.sync()
        if iteration is None:
            iteration = int(state["iteration"])
        self.write_checkpoint_payload(state, iteration, fingerprint or {},
                                      self.metrics.position())

    def write_checkpoint_payload(self, state: dict[str, Any], iteration: int,
                                 fingerprint: dict[str, Any], metrics: MetricsPosition,
                                 path: Path | None = None) -> None:
        """Encode and write a format-``CHECKPOINT_FORMAT_VERSION`` checkpoint atomically."""
        payload = encode_state(state)
        if not isinstance(payload, dict) or HEADER_KEY in payload:
            raise TypeError(f"a checkpoint state must be a dict without the key {HEADER_KEY!r}")
        payload = dict(payload)
        payload[HEADER_KEY] = {
            "format_version": CHECKPOINT_FORMAT_VERSION, "iteration": int(iteration),
            "fingerprint": encode_state(fingerprint), "metrics": metrics.to_dict(),
        }
        _atomic_write(path or self.checkpoint_path, lambda handle: torch.save(payload, handle))
        self.checkpoint_iteration = int(iteration)

    def load_checkpoint(self) -> Checkpoint:
        """Read ``checkpoint.pt`` with ``weights_only=True`` and decode it.

        Raises:
            FileNotFoundError: no checkpoint.
            CheckpointError: unsafe (names code to import), written before format 1 (how to
                convert it is in the message), damaged or truncated, or from a newer format.
        """
        path = self.checkpoint_path
        shown = str(path)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint to resume from in {str(self.path)!r}")
        if path.is_dir():
            raise CheckpointError(f"{shown!r} is a directory, not a checkpoint")
        damaged = _entry_failing_crc(path)
        if damaged is not None:
            raise _unreadable(path, f"its entry {damaged!r} fails its CRC-32 check")
        try:
            payload = torch.load(path, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError:
            raise self._refusal(path) from None
        except Exception as exc:
            raise _unreadable(path, _first_line(exc)) from None
        if not isinstance(payload, dict):
            raise CheckpointError(f"{shown!r} is not a marl_tr checkpoint")
        header = payload.pop(HEADER_KEY, None)
        if header is None:
            if "iteration" in payload:
                raise CheckpointError(self._legacy_message(path), legacy=True)
            raise CheckpointError(f"{shown!r} is not a marl_tr checkpoint")
        try:
            version = int(header["format_version"])
            if version > CHECKPOINT_FORMAT_VERSION:
                raise CheckpointError(
                    f"{shown!r} has checkpoint format {version}; this marl_tr reads format "
                    f"{CHECKPOINT_FORMAT_VERSION}: upgrade marl_tr to resume it")
            checkpoint = Checkpoint(
                iteration=int(header["iteration"]), state=decode_state(payload),
                fingerprint=decode_state(header["fingerprint"]),
                metrics=MetricsPosition.from_dict(header["metrics"]),
            )
        except CheckpointError as exc:
            raise CheckpointError(f"{shown!r}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{shown!r} has a damaged header ({_first_line(exc)})") from None
        self.checkpoint_iteration = checkpoint.iteration
        return checkpoint

    def _legacy_message(self, path: Path) -> str:
        return (
            f"{str(path)!r} was written by marl_tr before checkpoint format "
            f"{CHECKPOINT_FORMAT_VERSION} (a plain pickle, which could run code when loaded) "
            "and is not loaded; if you trust this run directory, convert it once with: "
            f"marl-tr convert-checkpoint --trust {self.path}"
        )

    def _refusal(self, path: Path) -> CheckpointError:
        names = _unsafe_globals(path)
        if names is not None and set(names) <= _legacy_global_names():
            return CheckpointError(self._legacy_message(path), legacy=True)
        if names:
            foreign = sorted(set(names) - _legacy_global_names())
            return CheckpointError(
                f"{str(path)!r} is refused: it names {', '.join(foreign)}, which no marl_tr "
                "checkpoint holds (loading it could run code); do not use this run directory "
                "unless you know where it came from")
        return _unreadable(path, "not a torch.save file this marl_tr can scan")


    # -- metrics on resume -----------------------------------------------------------------
    def check_metrics(self, checkpoint: Checkpoint) -> MetricsRepair:
        """Check ``metrics.csv`` against the checkpoint without changing it.

        Raises:
            CheckpointError: missing, empty, cut short, another header, or rows before the
                checkpoint changed.
        """
        position, path = checkpoint.metrics, self.metrics_path
        shown, at = str(path), f"the checkpoint (iteration {checkpoint.iteration})"
        if not path.exists() or path.is_dir():
            if position.bytes == 0:
                return MetricsRepair(position, 0, False, hashlib.sha256())
            raise CheckpointError(
                f"{shown!r} is missing, but {at} needs its first {position.rows} rows; cannot "
                "resume")
        data = path.read_bytes()
        if position.bytes and not data:
            raise CheckpointError(
                f"{shown!r} is empty, but {at} needs its first {position.rows} rows: they were "
                "lost; cannot resume")
        if position.columns is not None:
            header = _encode_rows(position.columns, [], header=True)
            if not data.startswith(header) and position.bytes and header.startswith(data):
                raise CheckpointError(
                    f"{shown!r} was cut short inside its header, but {at} needs its first "
                    f"{position.rows} rows; cannot resume")
            if not data.startswith(header):
                found = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
                raise CheckpointError(
                    f"{shown!r} has another header than the one this run wrote ({_short(found)} "
                    f"instead of {_short(','.join(position.columns))}); cannot resume")
        if len(data) < position.bytes:
            complete = data.count(b"\n") - (1 if position.columns is not None else 0)
            raise CheckpointError(
                f"{shown!r} was cut short: it holds {max(complete, 0)} complete rows, but {at} "
                f"needs {position.rows}; cannot resume")
        digest = hashlib.sha256(data[:position.bytes])
        if digest.hexdigest() != position.sha256:
            raise CheckpointError(
                f"{shown!r} was changed: its rows before {at} differ from what the run wrote "
                "(checksum mismatch); cannot resume")
        rest = data[position.bytes:]
        return MetricsRepair(position, rest.count(b"\n"), bool(rest) and not rest.endswith(b"\n"),
                             digest)

    def repair_metrics(self, repair: MetricsRepair, iteration: int) -> None:
        """Cut ``metrics.csv`` back to the checkpoint's position (warning what was dropped)
        and continue the writer there."""
        path = self.metrics_path
        if path.exists() and path.stat().st_size != repair.position.bytes:
            with path.open("r+b") as handle:
                handle.truncate(repair.position.bytes)
                handle.flush()
                os.fsync(handle.fileno())
        if repair.dropped_rows or repair.torn:
            what = [f"{repair.dropped_rows} row(s) past the checkpoint"] if repair.dropped_rows \
                else []
            if repair.torn:
                what.append("a torn last row")
            warnings.warn(
                f"{str(path)!r}: dropped {' and '.join(what)}; the run continues from "
                f"iteration {iteration}", RunDirectoryWarning, stacklevel=4)
        self.metrics.restore(repair.position, repair.digest or hashlib.sha256())


class TensorBoardWriter:
    """Scalar metrics to TensorBoard (needs the ``tensorboard`` package)."""

    def __init__(self, path: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError(
                "tensorboard=True needs the tensorboard package: pip install tensorboard"
            ) from exc
        self.writer = SummaryWriter(str(path))

    def write(self, row: dict[str, Any], numeric_keys: Sequence[str] | None = None) -> None:
        step = int(row["iteration"])
        for key, value in row.items():
            if isinstance(value, (int, float)) and key != "iteration" and math.isfinite(value):
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()
