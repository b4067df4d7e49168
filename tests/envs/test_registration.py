"""Registration: ids after import, the "module:id" form without it, re-import is silent."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import gymnasium as gym

import marl_tr_envs


def test_register_suite_again_is_silent_and_keeps_the_specs():
    specs = {env_id: gym.spec(env_id) for env_id in marl_tr_envs.SUITE}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        marl_tr_envs.register_suite()
        marl_tr_envs.register_suite()
    assert {env_id: gym.spec(env_id) for env_id in marl_tr_envs.SUITE} == specs


def test_module_prefixed_id_imports_the_package_and_reimport_is_silent():
    script = textwrap.dedent(
        """
        import importlib, sys, warnings
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*symmetric and normalized space")
        import gymnasium as gym
        assert "marl_tr_envs" not in sys.modules
        env = gym.make("marl_tr_envs:DiffGame-v0", n=7, sigma=1.0, basin_gap=3.0)
        assert "marl_tr_envs" in sys.modules
        observation, info = env.reset(seed=0)
        assert env.action_space.shape == (7,)
        assert info["higher_peak"] == "global", info
        assert "torch" not in sys.modules, "the envs must not need torch"
        import marl_tr_envs
        importlib.reload(marl_tr_envs)
        vec_env = gym.make_vec("ClimbingGame-v0", num_envs=4)
        assert type(vec_env).__name__ == "ClimbingGameVectorEnv"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
