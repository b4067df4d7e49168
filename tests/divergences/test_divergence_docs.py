"""The divergence section of docs/extending.md runs and prints what it says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def _section_code_blocks() -> list[str]:
    text = DOC.read_text()
    start = text.index("## Divergences")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_divergence_examples_run_and_print_their_comments(tmp_path):
    blocks = _section_code_blocks()
    assert len(blocks) == 3
    # the example plug-in is the module my_divergences.py (its first line says so)
    module = [b for b in blocks if b.startswith("# my_divergences.py\n")]
    assert len(module) == 1
    (tmp_path / "my_divergences.py").write_text(module[0])
    code = "\n".join(b for b in blocks if b not in module)
    expected = [
        line.split("#", 1)[1].strip()
        for line in code.splitlines()
        if line.startswith("print(") and "#" in line
    ]
    assert len(expected) == 3
    result = subprocess.run(
        [sys.executable, "-c", "import torch\ntorch.set_num_threads(1)\n" + code],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected
