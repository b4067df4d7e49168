"""The fingerprint of the code that makes a result: the package version and a hash of the
library's own source.

Every result row carries ``code_fingerprint()``; a sweep reuses a finished cell only when its
fingerprint is the running code's (or when told to reuse cells made by other code, which the
results page then marks). The hash covers every ``.py`` file of ``marl_tr`` and
``marl_tr_envs`` (paths and contents, in sorted order), so any change of the library's code
changes it, and a checkout with the same source has the same fingerprint wherever it runs.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["PACKAGES", "code_fingerprint", "source_hash"]

#: The packages whose source makes the numbers.
PACKAGES = ("marl_tr", "marl_tr_envs")


def source_hash(roots: tuple[Path, ...] | None = None) -> str:
    """SHA-256 (first 12 hex digits) of the packages' ``.py`` files: relative paths and bytes.

    Args:
        roots: package directories (default: the installed ``PACKAGES``).
    """
    if roots is None:
        import marl_tr
        import marl_tr_envs

        roots = (Path(marl_tr.__file__).parent, Path(marl_tr_envs.__file__).parent)
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def code_fingerprint() -> str:
    """``"<version>+<source hash>"`` of the running library (computed once per process)."""
    from marl_tr import __version__

    return f"{__version__}+{source_hash()}"
