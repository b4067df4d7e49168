"""Profiles: user > preset > profile > library default; ``auto`` picks ``one_step`` for the
suite's one-shot games and one-step episodes, ``multi_step`` otherwise; the resolved config
and config.yaml record what was filled; a state-independent policy on a multi-step env
warns; the differential game's resolution is unchanged."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

import marl_tr
from marl_tr.config import LIBRARY_DEFAULTS, PROFILE_FIELDS, ConfigWarning, TrainConfig
from marl_tr.profiles import PROFILES, profile_values, register_profile
from marl_tr.training.loop import SeededRestartWarning
from marl_tr.training.setup import build_parts, resolve_with_sources
from marl_tr_envs.diff_game.envs import DiffGameParallelEnv

MULTI = PROFILES["multi_step"]


class Episodic:
    """The diff game's PettingZoo shell without its analytic core: an env the library knows
    nothing about, whose episodes last ``episode_length`` steps."""

    def __init__(self, **kwargs: Any) -> None:
        self._env = DiffGameParallelEnv(**kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "game":
            raise AttributeError(name)
        return getattr(self._env, name)


def episodic(**kwargs: Any) -> Episodic:
    return Episodic(**kwargs)


def parts_of(**overrides):
    parts = build_parts(TrainConfig(**overrides))
    parts.close()
    return parts


def test_the_differential_game_resolves_to_the_library_defaults():
    """No profile value reaches the paper's game: its resolution is what it always was
    (num_envs = batch_size: one step per copy), and the config says one_step."""
    for env_kwargs in ({"n": 3}, {"n": 2, "episode_length": 3}):  # one-shot plays, any length
        config = parts_of(env_kwargs=env_kwargs).config
        assert config.profile == "one_step"
        for name in PROFILE_FIELDS:
            expected = config.batch_size if name == "num_envs" else LIBRARY_DEFAULTS[name]
            assert getattr(config, name) == expected, name
        assert (config.critic_lr, config.critic_optimizer, config.radius) == (
            0.2, "sgd", "fixed:delta=0.1")


@pytest.mark.parametrize(("episode_length", "profile"), [(1, "one_step"), (4, "multi_step")])
def test_auto_profile_of_an_unknown_env_follows_its_episode_length(episode_length, profile):
    config = parts_of(env="test_profiles:episodic",
                      env_kwargs={"n": 2, "episode_length": episode_length}).config
    assert config.profile == profile
    if profile == "multi_step":
        for name, value in MULTI.items():
            assert getattr(config, name) == value, name


def test_user_beats_preset_beats_profile_beats_default():
    config = TrainConfig(env="test_profiles:episodic", env_kwargs={"n": 2, "episode_length": 4},
                         preset="mappo", critic_epochs=2, num_envs=10, policy_hidden=(8,))
    resolved, sources = resolve_with_sources(config, 2, "continuous", auto="multi_step")
    assert (resolved.critic_epochs, resolved.num_envs, resolved.policy_hidden) == (2, 10, (8,))
    assert sources["critic_epochs"] == sources["num_envs"] == "user"
    assert resolved.agent_order == "simultaneous" and sources["agent_order"] == "preset"
    assert resolved.radius == "fixed:delta=0.01"  # the preset's multi-step radius
    assert sources["radius"] == "preset"
    assert (resolved.critic_lr, resolved.critic_optimizer, resolved.value_norm) == (
        5e-4, "adam", True)
    assert sources["critic_lr"] == sources["value_norm"] == "profile"
    assert resolved.max_log_factor == 20.0  # not a layered field: its dataclass default
    # a preset argument still wins over the profile's radius; one_step keeps Table 2's 0.1
    explicit = resolve_with_sources(config.replace(preset="mappo:delta=0.2"), 2,
                                    auto="multi_step")[0]
    assert explicit.radius == "fixed:delta=0.2"
    one_step = resolve_with_sources(config.replace(profile="one_step"), 2)[0]
    assert (one_step.radius, one_step.critic_lr, one_step.batch_size) == (
        "fixed:delta=0.1", 0.2, 30)


def test_config_yaml_names_what_the_preset_and_the_profile_filled(tmp_path):
    marl_tr.train(env="test_profiles:episodic", env_kwargs={"n": 2, "episode_length": 2},
                  preset="hatrpo", batch_size=8, num_envs=4, policy_hidden=(4,), iterations=1,
                  run_dir=str(tmp_path / "run"))
    text = (tmp_path / "run" / "config.yaml").read_text()
    lines = text.splitlines()
    assert lines[0] == ("# set by the preset hatrpo: divergence, radius, solver, "
                        "normalize_advantages, agent_order")
    assert lines[1] == ("# set by the profile multi_step: critic_lr, critic_optimizer, "
                        "critic_hidden, critic_epochs, critic_minibatches, value_norm, "
                        "eval_interval")
    loaded = TrainConfig.from_yaml(tmp_path / "run" / "config.yaml")
    assert loaded.profile == "multi_step" and loaded.critic_minibatches == 4


def test_a_state_independent_policy_on_a_multi_step_env_warns():
    with pytest.warns(ConfigWarning, match=r"policy_hidden=\(\) gives a state-independent "
                                           r"policy, but env 'test_profiles:episodic'"):
        parts_of(env="test_profiles:episodic", env_kwargs={"n": 2, "episode_length": 3},
                 policy_hidden=())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        parts_of(env_kwargs={"n": 2, "episode_length": 3})  # the suite's game: no warning


@pytest.mark.parametrize(("overrides", "message"), [
    ({"profile": "multi"}, r"Unknown profile 'multi'\. Did you mean 'multi_step'\?"),
    ({"batch_size": 30, "profile": "multi_step"},
     r"batch_size \(30\) must be a multiple of num_envs \(20\) \(num_envs from the profile "
     r"'multi_step'\)"),
    ({"vectorization": "threads"}, r"vectorization must be one of 'sync', 'async'"),
    ({"vectorization": "async"}, r"vectorization='async' applies to PettingZoo envs"),
    ({"critic_minibatches": 0}, r"critic_minibatches must be an integer >= 1"),
    ({"value_norm": "yes"}, r"value_norm must be true, false or none, got 'yes'"),
    ({"eval_episodes": 0}, r"eval_episodes must be an integer >= 1"),
])
def test_bad_profile_settings_are_refused_before_any_work(tmp_path, overrides, message):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        marl_tr.train(iterations=2, run_dir=str(run_dir), **overrides)
    assert not run_dir.exists()


def test_register_profile():
    with pytest.raises(ValueError, match=r"profile 'mine' sets \['lr'\], which no profile"):
        register_profile("mine", {"lr": 1.0})
    with pytest.raises(ValueError, match=r"other than 'auto'"):
        register_profile("auto", {})
    register_profile("tiny", {"batch_size": 12, "num_envs": 3})
    try:
        config = parts_of(env_kwargs={"n": 2}, profile="tiny").config
        assert (config.profile, config.batch_size, config.num_envs) == ("tiny", 12, 3)
        assert profile_values("tiny") == {"batch_size": 12, "num_envs": 3}
    finally:
        del PROFILES["tiny"]


def test_a_config_yaml_from_before_profiles_resumes_with_the_library_defaults(tmp_path):
    """A config.yaml without a profile line (written before profiles existed) resolves its
    unnamed fields as then, with the library defaults, whatever the env."""
    run = tmp_path / "run"
    marl_tr.train(env="test_profiles:episodic", env_kwargs={"n": 2, "episode_length": 4},
                  profile="one_step", policy_hidden=(4,), iterations=2, run_dir=str(run))
    path = run / "config.yaml"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if not line.startswith("profile:")))
    with pytest.warns(SeededRestartWarning):  # the env saves no state: a seeded restart
        resumed = marl_tr.train(resume=run, iterations=3)
    assert resumed.config.profile == "one_step"
    assert (resumed.config.batch_size, resumed.config.value_norm) == (30, False)
