"""Plug-ins from outside the library: a user's modules, and installed packages' entry points.

A plug-in is registered when the module that defines it is imported (``@DIVERGENCES.register``
and the other registries' decorators). Three ways to get it imported:

* ``marl-tr ... --import my_plugins`` (any command, repeatable), or ``import_modules`` from
  Python. The modules are also recorded in the environment variable ``MARL_TR_IMPORTS``, so a
  sweep's worker processes import them too (``load_requested``).
* A ``"module:Class"`` config string (``--solver my_solvers:MyAscent``) imports ``module``. The
  command line puts the working directory first on ``sys.path``, as ``python -m`` does, so a
  module next to you is found without ``PYTHONPATH=.``.
* An installed package declares an entry point in the group ``marl_tr.plugins``; the command
  line (and every sweep worker) loads them all at start (``load_entry_points``)::

      # the package's pyproject.toml
      [project.entry-points."marl_tr.plugins"]
      my_package = "my_package.marl_plugins"

  Loading an entry point imports its module (an entry point naming an object also loads that
  object); what the module registers is then available by name.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from importlib import metadata

__all__ = [
    "ENTRY_POINT_GROUP",
    "IMPORTS_VARIABLE",
    "add_working_directory",
    "import_modules",
    "load_entry_points",
    "load_requested",
]

#: The entry-point group of installed plug-in packages.
ENTRY_POINT_GROUP = "marl_tr.plugins"
#: The environment variable listing the modules imported with ``--import`` (comma-separated),
#: inherited by worker processes.
IMPORTS_VARIABLE = "MARL_TR_IMPORTS"

_loaded_entry_points: set[str] = set()
_scanned = False


def add_working_directory() -> None:
    """Put the working directory first on ``sys.path`` (as ``python -m`` does), so that
    ``"module:Class"`` strings and ``--import`` find modules next to the user."""
    cwd = os.getcwd()
    if sys.path[:1] != [cwd] and sys.path[:1] != [""]:
        sys.path.insert(0, cwd)


def _recorded() -> list[str]:
    return [name for name in os.environ.get(IMPORTS_VARIABLE, "").split(",") if name]


def import_modules(names: Iterable[str], *, option: str = "--import") -> list[str]:
    """Import each module (it may register plug-ins) and record it in ``MARL_TR_IMPORTS`` for
    worker processes.

    Args:
        names: module names (``my_plugins``, ``pkg.plugins``).
        option: how the user named them, for messages.

    Returns:
        The names imported.

    Raises:
        ValueError: a module that cannot be imported (with the reason and a hint).
    """
    names = [str(name).strip() for name in names]
    for name in names:
        if not name:
            raise ValueError(f"{option} needs a module name, got {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing = getattr(exc, "name", None)
            if missing and missing != name and not name.startswith(missing + "."):
                raise ValueError(
                    f"{option} {name}: importing it failed: it imports {missing!r}, which "
                    f"cannot be imported ({exc}); install it or fix the module") from None
            raise ValueError(
                f"{option} {name}: cannot import it ({exc}); give a module on the path, "
                f"e.g. a file {name.split('.')[0]}.py in the working directory "
                f"({os.getcwd()}) or an installed package") from None
        except Exception as exc:  # the module's own code failed
            where = traceback.extract_tb(exc.__traceback__)[-1]
            message = str(exc).strip().splitlines()
            raise ValueError(
                f"{option} {name}: importing it raised {type(exc).__name__}"
                f"{': ' + message[0] if message else ''} ({where.filename}, line "
                f"{where.lineno}); fix the module (marl-tr --debug shows the traceback)"
            ) from exc
    recorded = _recorded()
    os.environ[IMPORTS_VARIABLE] = ",".join(
        [*recorded, *(name for name in names if name not in recorded)])
    return names


def load_entry_points() -> list[str]:
    """Load every entry point of the group ``marl_tr.plugins`` (once per process).

    Returns:
        The entry points' names, loaded now or before.

    Raises:
        ValueError: an entry point that fails to load (names its package and the error).
    """
    names = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        names.append(entry.name)
        if entry.value in _loaded_entry_points:
            continue
        try:
            entry.load()
        except Exception as exc:
            package = entry.dist.name if entry.dist is not None else "?"
            raise ValueError(
                f"the marl_tr plug-in {entry.name!r} of package {package!r} ({entry.value}) "
                f"failed to load: {type(exc).__name__}: {exc}") from None
        _loaded_entry_points.add(entry.value)
    return names


def load_requested() -> None:
    """In a worker process: import the modules the parent recorded in ``MARL_TR_IMPORTS``
    and load the entry points (cheap when done already)."""
    global _scanned
    for name in _recorded():
        if name not in sys.modules:
            import_modules([name], option=IMPORTS_VARIABLE)
    if not _scanned:
        load_entry_points()
        _scanned = True
