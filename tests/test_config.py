"""TrainConfig: every bad input refused before any work with a message naming it; presets
resolve to the documented parts; Table 2's C; YAML round trips reproduce the run."""

from __future__ import annotations

import re

import pytest
import torch

import marl_tr
from marl_tr import DIVERGENCES, PRESETS, RADIUS_SCHEDULERS, SOLVERS, UnknownNameError
from marl_tr.config import LIBRARY_DEFAULTS, PRESET_FIELDS, TrainConfig
from marl_tr.presets import TABLE2_CAATR_C, table2_caatr_c
from marl_tr.radius import CAATR
from marl_tr.training.setup import build_parts, resolve_config


def available(registry) -> str:
    return re.escape("Available: " + ", ".join(registry.names()))


# ---------------------------------------------------------------------------------------
# bad input: refused before any work
# ---------------------------------------------------------------------------------------
BAD = [
    # unknown names: the registry lists what exists and suggests a close match
    ({"preset": "hatrpoo"}, UnknownNameError,
     r"Unknown preset 'hatrpoo'\. Did you mean 'hatrpo'\? " + available(PRESETS)),
    ({"divergence": "kll"}, UnknownNameError,
     r"Unknown divergence 'kll'\. Did you mean 'kl'\? " + available(DIVERGENCES)),
    ({"solver": "natural"}, UnknownNameError,
     r"Unknown solver 'natural'\. Did you mean 'natural_gradient'\? " + available(SOLVERS)),
    ({"radius": "caatrr"}, UnknownNameError,
     r"Unknown radius scheduler 'caatrr'\. Did you mean 'caatr'\? "
     + available(RADIUS_SCHEDULERS)),
    ({"policy": "gausian"}, UnknownNameError, r"Unknown policy 'gausian'"),
    ({"std_param": "exp"}, UnknownNameError, r"Unknown std parameterisation 'exp'"),
    ({"divergence": "kl:foo=1"}, ValueError, r"Unknown keyword\(s\) 'foo' for divergence 'kl'"),
    ({"preset": "hatrpo:delta=-1"}, ValueError, r"delta must be > 0"),
    # a solver that cannot enforce the divergence, with the reason
    ({"divergence": "w1", "solver": "natural_gradient"}, ValueError,
     r"solver 'natural_gradient' needs a divergence that is smooth at identity .*H\^-1 g.*"
     r"use solver 'exact_radius' .* or 'primal_dual'"),
    # a divergence option that has no meaning for the env's actions
    ({"divergence": "w1:spacing=7", "solver": "exact_radius"}, ValueError,
     r"W1's spacing sets the ground metric between discrete actions, but this run's actions "
     r"are continuous"),
    ({"divergence": "w1:cost=((0,1),(1,0))", "solver": "exact_radius"}, ValueError,
     r"W1's cost sets the ground metric between discrete actions.*leave cost out"),
    # plain fields
    ({"batch_size": 30, "num_envs": 7}, ValueError,
     r"batch_size \(30\) must be a multiple of num_envs \(7\)"),
    ({"iterations": -1}, ValueError, r"iterations must be an integer >= 0, got -1"),
    ({"iterations": 2.5}, ValueError, r"iterations must be an integer, got 2\.5"),
    ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1"),
    ({"seed": -3}, ValueError, r"seed must be an integer >= 0"),
    ({"dtype": "float16"}, ValueError, r"dtype must be one of 'float32', 'float64'; got 'float16'"),
    ({"gamma": 1.5}, ValueError, r"gamma must be in \[0\.0, 1\.0\], got 1\.5"),
    ({"max_log_factor": -1.0}, ValueError, r"max_log_factor must be in \(0\.0, 3\.40\d*e\+38\], "
     r"got -1\.0"),
    ({"max_log_factor": 1e300}, ValueError, r"max_log_factor must be in \(0\.0, 3\.40\d*e\+38\]"),
    ({"init_std": 1e300}, ValueError, r"init_std must be in \[1\.17\d*e-38, 1000000\.0\]"),
    ({"min_std": 1e-300, "init_std": 1e-299}, ValueError,
     r"init_std must be in \[1\.17\d*e-38, 1000000\.0\], got 1e-299"),
    ({"min_std": 1e-300, "init_std": 0.5}, ValueError,
     r"min_std must be in \[1\.17\d*e-38, 1000000\.0\], got 1e-300"),
    ({"normalize_advantages": "no"}, ValueError,
     r"normalize_advantages must be true, false or none, got 'no'"),
    ({"progress": "no"}, ValueError, r"progress must be true, false or none, got 'no'"),
    ({"tensorboard": "no"}, ValueError, r"tensorboard must be true or false, got 'no'"),
    ({"share_parameters": None}, ValueError, r"share_parameters must be true or false, got None"),
    ({"agent_order": "sorted"}, ValueError, r"agent_order must be one of 'random', 'fixed'"),
    ({"critic_optimizer": "rmsprop"}, ValueError, r"critic_optimizer must be one of"),
    ({"critic_lr": 0.0}, ValueError, r"critic_lr must be > 0"),
    ({"init_std": -1.0}, ValueError,
     r"init_std must be in \[1\.17\d*e-38, 1000000\.0\], got -1\.0"),
    ({"min_std": 0.6}, ValueError, r"init_std must be > min_std = 0\.6, got 0\.5"),
    ({"policy_hidden": (0,)}, ValueError, r"policy_hidden layer size must be an integer >= 1"),
    # policies that do not fit the action space
    ({"policy": "categorical"}, ValueError,
     r"policy 'categorical' needs Discrete actions, but agent 'agent_0' has Box"),
    ({"env": "ClimbingGame-v0", "policy": "gaussian"}, ValueError,
     r"policy 'gaussian' needs Box actions, but agent 'agent_0' has Discrete\(3\)"),
    # environments
    ({"env": "DiffGame-v1"}, ValueError,
     r"Unknown environment 'DiffGame-v1'\. Did you mean 'DiffGame-v0'\?"),
    ({"env": "nosuchpackage.mod:factory"}, ValueError,
     r"cannot import module 'nosuchpackage\.mod' for env"),
    ({"env_kwargs": {"n": 3, "sigmaa": (1, 3, 1)}}, ValueError,
     r"unknown keyword argument\(s\) 'sigmaa' \(did you mean 'sigma'\?\)"),
]


@pytest.mark.parametrize(("overrides", "error", "message"), BAD,
                         ids=[next(iter(case[0])) + f"-{k}" for k, case in enumerate(BAD)])
def test_bad_input_is_refused_before_any_work(tmp_path, overrides, error, message):
    run_dir = tmp_path / "run"
    with pytest.raises(error, match=message):
        marl_tr.train(iterations=overrides.pop("iterations", 3), run_dir=str(run_dir),
                      **overrides)
    assert not run_dir.exists()  # nothing was written: no work started


def test_unknown_config_key_lists_accepted_and_suggests():
    accepted = re.escape("Accepted: " + ", ".join(TrainConfig.field_names()))
    with pytest.raises(ValueError, match=r"Unknown config key\(s\) 'iteratons' \(did you mean "
                                         r"'iterations'\?\)\. " + accepted):
        marl_tr.train(iteratons=3)
    with pytest.raises(ValueError, match=r"'zzz'\. Accepted"):
        TrainConfig.from_dict({"zzz": 1})
    with pytest.raises(TypeError, match=r"a config must be a mapping of TrainConfig fields, got "
                                        r"list \[1\]"):
        TrainConfig.from_dict([1])


def test_unknown_name_errors_are_key_and_value_errors():
    with pytest.raises(KeyError):
        marl_tr.train(divergence="nope")
    with pytest.raises(ValueError):
        marl_tr.train(divergence="nope")


@pytest.mark.parametrize("name", DIVERGENCES.names())
def test_discrete_actions_need_a_divergence_that_supports_them(name):
    cls = DIVERGENCES.get(name)
    solver = "natural_gradient" if cls.smooth_at_identity else "primal_dual"
    config = TrainConfig(env="ClimbingGame-v0", divergence=name, solver=solver)
    if cls.supports_discrete:
        parts = build_parts(config)
        parts.env.close()
        assert [p.action_kind for p in parts.policies] == ["discrete", "discrete"]
    else:
        with pytest.raises(ValueError, match=rf"divergence '{name}' does not support discrete "
                                             r"actions; it supports continuous"):
            build_parts(config)


def test_which_divergences_support_discrete_actions():
    supports = {n for n in DIVERGENCES.names() if DIVERGENCES.get(n).supports_discrete}
    assert {"kl", "js", "hellinger", "w1"} <= supports
    assert "w1_bound" not in supports  # eq. 31 is a bound for Gaussians only


# ---------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------
DOCUMENTED = {
    "hatrpo": ("kl", "fixed", "natural_gradient"),
    "hatrpo-caatr": ("kl", "caatr", "natural_gradient"),
    "wmatrpo": ("w1_bound", "fixed", "primal_dual"),
    "wmatrpo-caatr": ("w1_bound", "caatr", "primal_dual"),
    "happo": ("kl", "fixed", "ppo_clip"),
    "mappo": ("kl", "fixed", "ppo_clip"),
    "wmatrpo-tr": ("w1", "fixed", "exact_radius"),
    "wmatrpo-tr-caatr": ("w1", "caatr", "exact_radius"),
    "hatrpo-tr": ("kl", "fixed", "exact_radius"),
    "wmatrpo-dual": ("w1", "fixed", "ot_dual"),
    "wmatrpo-dual-caatr": ("w1", "caatr", "ot_dual"),
    "ippo": ("kl", "fixed", "ppo_clip"),
}
CRITIC = {"wmatrpo-dual": "q", "wmatrpo-dual-caatr": "q", "ippo": "v_local"}
ORDER = {"mappo": "simultaneous", "ippo": "simultaneous"}


def test_every_preset_is_documented_here():
    assert set(PRESETS.names()) == set(DOCUMENTED)


@pytest.mark.parametrize("preset", sorted(DOCUMENTED))
def test_preset_resolves_to_the_documented_parts(preset):
    divergence, radius, solver = DOCUMENTED[preset]
    parts = build_parts(TrainConfig(preset=preset, env_kwargs={"n": 3}))
    parts.env.close()
    config = parts.config
    assert config.divergence == divergence
    assert config.radius.partition(":")[0] == radius
    assert config.solver.partition(":")[0] == solver
    assert (config.normalize_advantages, config.critic_lr, config.critic_optimizer,
            config.agent_order) == (True, 0.2, "sgd", ORDER.get(preset, "random"))
    assert parts.divergence.registry_name == divergence
    assert parts.scheduler.registry_name == radius
    assert parts.solver.registry_name == solver
    if radius == "fixed":
        assert config.radius == "fixed:delta=0.1"  # Table 2
    else:  # CAATR measures drift in W1 (eq. 31's bound for wmatrpo, as the paper did)
        assert isinstance(parts.scheduler, CAATR)
        assert parts.scheduler.C == 0.02
        assert parts.scheduler.initial_delta == 0.1
        assert parts.scheduler.divergence == ("w1_bound" if preset == "wmatrpo-caatr" else "w1")
    assert all(getattr(config, name) is not None for name in PRESET_FIELDS)
    assert config.critic == CRITIC.get(preset, "v")
    assert parts.action_critic.registry_name == CRITIC.get(preset, "v")


@pytest.mark.parametrize("preset", sorted(DOCUMENTED))
def test_user_settings_win_over_the_preset(preset):
    user = {"divergence": "w1", "radius": "fixed:delta=0.05", "solver": "primal_dual",
            "normalize_advantages": False, "critic_lr": 0.5, "critic_optimizer": "adam",
            "agent_order": "fixed"}
    resolved = resolve_config(TrainConfig(preset=preset, **user), n_agents=3)
    for name, value in user.items():
        assert getattr(resolved, name) == value
    # one field set, the others from the preset
    partial = resolve_config(TrainConfig(preset=preset, critic_lr=0.5), n_agents=3)
    assert partial.critic_lr == 0.5
    assert partial.divergence == DOCUMENTED[preset][0]


def test_without_preset_the_library_defaults_apply():
    resolved = resolve_config(TrainConfig(), n_agents=3)
    for name, value in LIBRARY_DEFAULTS.items():
        assert getattr(resolved, name) == value


@pytest.mark.parametrize(("n", "C"), [(3, 0.02), (5, 0.02), (7, 0.10), (9, 0.15)])
def test_table2_caatr_constants(n, C):
    assert TABLE2_CAATR_C[n] == C
    assert table2_caatr_c(n) == C
    for preset in ("hatrpo-caatr", "wmatrpo-caatr"):
        parts = build_parts(TrainConfig(preset=preset, env_kwargs={"n": n}))
        parts.env.close()
        assert parts.scheduler.C == C
        assert f"C={C!r}" in parts.config.radius


@pytest.mark.parametrize(("n", "C"), [(2, 0.02), (4, 0.02), (6, 0.02), (8, 0.10), (10, 0.15),
                                      (20, 0.15)])
def test_other_team_sizes_take_the_nearest_listed_size(n, C):
    """Nearest listed size, ties to the smaller team (2 -> 3, 4 -> 3, 6 -> 5, 8 -> 7)."""
    assert table2_caatr_c(n) == C
    resolved = resolve_config(TrainConfig(preset="wmatrpo-caatr"), n_agents=n)
    assert resolved.radius.startswith(f"caatr:C={C!r},")


def test_preset_arguments_override_table2():
    resolved = resolve_config(TrainConfig(preset="hatrpo-caatr:C=0.5,delta=0.2"), n_agents=7)
    assert resolved.radius == "caatr:C=0.5,divergence=w1,initial_delta=0.2"
    exact = resolve_config(TrainConfig(preset="wmatrpo:w1=exact"), n_agents=3)
    assert exact.divergence == "w1"


@pytest.mark.parametrize("preset", ["wmatrpo", "wmatrpo-caatr", "wmatrpo-tr", "wmatrpo-tr-caatr"])
def test_wmatrpo_presets_use_the_exact_w1_on_categorical_actions(preset):
    """Eq. 31's bound is for Gaussians: on discrete actions the W-MATRPO presets resolve to the
    exact W1 (constraint and CAATR drift), and the resolved config says so."""
    parts = build_parts(TrainConfig(preset=preset, env="ClimbingGame-v0"))
    parts.env.close()
    assert parts.config.divergence == "w1"
    assert parts.divergence.registry_name == "w1"
    if "caatr" in preset:
        assert "divergence=w1," in parts.config.radius
    gaussian = resolve_config(TrainConfig(preset=preset), n_agents=3)
    assert gaussian.divergence == ("w1" if "-tr" in preset else "w1_bound")


def test_the_eq31_bound_asked_for_on_categorical_actions_is_refused():
    with pytest.raises(ValueError, match=r"w1_bound.*does not support discrete actions"):
        build_parts(TrainConfig(preset="wmatrpo:w1=bound", env="ClimbingGame-v0"))


# ---------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["hatrpo", "wmatrpo-caatr"])
def test_config_yaml_round_trip_reproduces_the_run(tmp_path, preset):
    result = marl_tr.train(preset=preset, env_kwargs={"n": 3}, iterations=5, seed=2,
                           policy_hidden=[], run_dir=str(tmp_path / "a"))
    loaded = TrainConfig.from_yaml(tmp_path / "a" / "config.yaml")
    assert loaded == result.config
    assert loaded.preset == preset and loaded.divergence == result.config.divergence
    again = marl_tr.train(loaded, run_dir=str(tmp_path / "b"))
    assert (tmp_path / "a" / "metrics.csv").read_text() == \
        (tmp_path / "b" / "metrics.csv").read_text()
    for a, b in zip(result.policies, again.policies):
        assert torch.equal(a.flat_parameters(), b.flat_parameters())


def test_yaml_round_trip_of_every_field_type(tmp_path):
    config = TrainConfig(env_kwargs={"n": 4, "episode_length": 2}, preset="hatrpo",
                         policy_hidden=(8, 4), critic_hidden=(3,), init_mean=2.0,
                         max_log_factor=None, num_envs=15, progress=False,
                         normalize_advantages=False)
    config.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == config


def test_yaml_round_trip_with_tuple_env_kwargs(tmp_path):
    config = TrainConfig(env_kwargs={"n": 3, "sigma": (1.0, 3.0, 1.0)})
    config.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == config


@pytest.mark.parametrize(("text", "message"), [
    ("- 1\n- 2\n", "expected a mapping of config keys, got list"),
    ("iteratons: 3\n", r"did you mean 'iterations'"),
])
def test_bad_yaml_is_refused(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_yaml(tmp_path / "c.yaml")


def test_env_kwargs_and_layer_sizes_accept_strings():
    config = TrainConfig.from_dict({"env_kwargs": "n=7,sigma=(1, 3, 1)", "policy_hidden": "64,64",
                                    "critic_hidden": "()"})
    assert config.env_kwargs == {"n": 7, "sigma": (1, 3, 1)}
    assert config.policy_hidden == (64, 64)
    assert config.critic_hidden == ()
