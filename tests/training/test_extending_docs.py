"""The solver and preset examples of docs/extending.md run as written and train."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def section_code(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    section = text[start: end if end != -1 else None]
    return "\n".join(re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL))


def test_solver_and_preset_examples_train():
    script = section_code("Solvers") + "\n" + section_code("Presets") + """
import marl_tr
result = marl_tr.train(solver="my_ascent:lr=0.1", env_kwargs={"n": 3}, iterations=40)
assert result.config.solver.startswith("my_ascent")
ratios = result.column("constraint_ratio_0")
assert (ratios <= 1.0 + 1e-9).all()          # the halving keeps every step in the ball
assert abs(result.final_means()[0, 0] - 1.0) < 0.3
resolved = marl_tr.train(preset="js-trpo:delta=0.01", env_kwargs={"n": 2}, iterations=3)
assert (resolved.config.divergence, resolved.config.radius) == ("js", "fixed:delta=0.01")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_the_environment_example_gives_the_same_numbers_for_the_same_seed(tmp_path):
    """The trainer seeds an env's first reset only (seed=None later): the example keeps its
    generator across episodes, so two runs with one seed agree, sync and async alike."""
    (tmp_path / "my_envs.py").write_text(section_code("Environments"))
    script = """
import marl_tr
runs = [marl_tr.train(env="my_envs:parallel_env", env_kwargs={"n": 2, "steps": 3},
                      num_envs=2, batch_size=12, iterations=3, seed=5, vectorization=mode)
        for mode in ("sync", "sync", "async")]
assert runs[0].metrics == runs[1].metrics == runs[2].metrics
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
