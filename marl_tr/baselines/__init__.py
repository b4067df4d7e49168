"""Baselines beside the presets: reference learners on the joint view of a game.

    from marl_tr.baselines import train_baseline
    result = train_baseline("sb3:ppo", env_kwargs={"n": 3}, iterations=500, seed=0)
    result.expected_reward()        # E[r] of the final joint policy, as for a preset

``BASELINES`` holds ``sb3:ppo``, ``sb3:a2c`` (Stable-Baselines3) and ``sb3:trpo``
(sb3-contrib): one centralised controller trained on ``gymnasium.make(env)`` with a preset's
env-step budget (``iterations x batch_size``), reported in the same row format. They need the
optional extra ``pip install "marl_tr[baselines]"``, imported only when a baseline is built.
In sweeps they are named where a preset is (``marl-tr sweep --presets hatrpo,sb3:ppo``).
See ``marl_tr.baselines.base`` (the interface) and ``marl_tr.baselines.sb3`` (the choices).
"""

from __future__ import annotations

from marl_tr.baselines.base import (
    BASELINE_FIELDS,
    BASELINES,
    Baseline,
    BaselineConfig,
    BaselineResult,
    CategoricalMarginal,
    GaussianMarginal,
    build_baseline,
    is_baseline,
    train_baseline,
)
from marl_tr.baselines.sb3 import SB3A2C, SB3PPO, SB3TRPO, SB3Baseline

__all__ = [
    "BASELINES",
    "BASELINE_FIELDS",
    "SB3A2C",
    "SB3PPO",
    "SB3TRPO",
    "Baseline",
    "BaselineConfig",
    "BaselineResult",
    "CategoricalMarginal",
    "GaussianMarginal",
    "SB3Baseline",
    "build_baseline",
    "is_baseline",
    "train_baseline",
]
