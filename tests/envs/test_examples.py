"""The example script and the docstring examples of the suite run and say what they claim."""

from __future__ import annotations

import doctest
import runpy
from pathlib import Path

import pytest

import marl_tr_envs
import marl_tr_envs.diff_game.core
import marl_tr_envs.diff_game.envs
import marl_tr_envs.registration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diff_game_peaks.py"


def test_diff_game_peaks_example(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    output = capsys.readouterr().out
    assert "r(1,...,1) = 0.4127   r(5,...,5) = 0.2116   higher: local" in output
    assert "r(4,...,4) = 0.6349   higher: global" in output
    assert output.count("higher: local") == 3


@pytest.mark.parametrize(
    "module",
    [
        marl_tr_envs,
        marl_tr_envs.diff_game.core,
        marl_tr_envs.diff_game.envs,
        marl_tr_envs.registration,
    ],
    ids=lambda module: module.__name__,
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
