"""A table of bad inputs across the CLI, the Python API and the env constructors. Each case
is refused before any file is written, with one line that names the bad value and lists what
is allowed (the CLI: exit status 2; the API and the constructors: a ``ValueError``)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest

import marl_tr
import marl_tr_envs
from marl_tr.cli import main

#: (flags after ``marl-tr train --iterations 1``, the bad value as named, what is allowed)
TRAIN_FLAGS = [
    (["--batch-size", "0"], "got 0", "integer >= 1"),
    (["--batch-size", "30", "--num-envs", "7"], "num_envs (7)", "multiple of num_envs"),
    (["--seed", "-1"], "got -1", "integer >= 0"),
    (["--value-norm", "maybe"], "got 'maybe'", "true, false, yes, no, on, off, 1, 0 or none"),
    (["--normalize-advantages", "nope"], "got 'nope'", "true, false"),
    (["--seed", "99999999999999999999"], "got 99999999999999999999",
     "integer <= 9223372036854775807"),
    (["--replicas", "0"], "got 0", "integer >= 1"),
    (["--agent-order", "sideways"], "'sideways'", "'random', 'fixed', 'simultaneous'"),
    (["--dtype", "float16"], "'float16'", "'float32', 'float64'"),
    (["--gamma", "1.5"], "got 1.5", "in [0.0, 1.0]"),
    (["--gae-lambda", "-0.1"], "got -0.1", "in [0.0, 1.0]"),
    (["--min-std", "0"], "got 0", "in [1.1754943508222875e-38, 1000000.0]"),
    (["--init-std", "0"], "got 0", "in [1.1754943508222875e-38, 1000000.0]"),
    (["--critic-optimizer", "rmsprop"], "'rmsprop'", "'sgd', 'adam'"),
    (["--std-param", "exp"], "'exp'", "Available: bounded, log_std"),
    (["--policy", "transformer"], "'transformer'", "Available: categorical, gaussian"),
    (["--signal-level", "2.0"], "got 2.0", "in (0.0, 1.0]"),
    (["--max-log-factor", "0"], "got 0", "in (0.0, 3.4028234663852886e+38]"),
    (["--profile", "huge"], "'huge'", "Available: auto, one_step, multi_step"),
    (["--vectorization", "gpu"], "'gpu'", "'sync', 'async'"),
    (["--log-interval", "-1"], "got -1", "integer >= 0"),
    (["--eval-interval", "-1"], "got -1", "integer >= 0"),
    (["--eval-episodes", "0"], "got 0", "integer >= 1"),
    (["--checkpoint-interval", "-5"], "got -5", "integer >= 0"),
    (["--divergence", "kll"], "'kll'", "Available: hellinger, js, kl"),
    (["--divergence", "w1:ground=l3"], "'l3'", "'l1', 'l2'"),
    (["--divergence", "w1:method=sinkhorn"], "'sinkhorn'", "'closed_form', 'pot'"),
    (["--divergence", "w1:spacing=-1"], "got -1", "> 0"),
    (["--divergence", "w1:n_samples=1"], "got 1", "integer >= 2"),
    (["--divergence", "kl:colour=3"], "'colour'", "Accepted: direction"),
    (["--radius", "fixd"], "'fixd'", "Available: caatr, fixed, greedy, kkt"),
    (["--radius", "caatr:C=-1"], "got -1", "> 0"),
    (["--radius", "fixed:delta=0"], "got 0", "> 0"),
    (["--radius", "caatr:divergence=nope"], "'nope'", "Available: hellinger, js, kl"),
    (["--solver", "newton"], "'newton'", "Available: exact_radius, natural_gradient, ot_dual"),
    (["--solver", "exact_radius:direction=fisher"], "'fisher'", "'gradient', 'natural'"),
    (["--solver", "exact_radius:rtol=0"], "got 0", "in (0.0, 1.0)"),
    (["--solver", "natural_gradient:backtrack_coef=1.5"], "got 1.5", "in (0.0, 1.0)"),
    (["--solver", "ppo_clip:clip=1.5"], "got 1.5", "in (0.0, 1.0)"),
    (["--solver", "primal_dual:optimizer=lbfgs"], "'lbfgs'", "'sgd', 'adam'"),
    (["--solver", "ot_dual:grid=-1"], "got -1", "integer >= 0"),
    (["--solver", "ot_dual:refine=ascent"], "'ascent'", "'none', 'cem'"),
    (["--critic", "quantile"], "'quantile'", "Available: oracle_q, q, v"),
    (["--critic", "q:hidden=(0,)"], "got 0", "integer >= 1"),
    (["--critic", "q:tau=0"], "got 0", "in (0.0, 1.0]"),
    (["--preset", "hatrpoo"], "'hatrpoo'", "Available: happo, hatrpo"),
    (["--preset", "hatrpo:delta=0"], "got 0", "> 0"),
    (["--preset", "wmatrpo:w1=approx"], "'approx'", "'auto', 'exact', 'bound'"),
    (["--preset", "wmatrpo-dual:critic="], "critic must be a critic config string",
     "q, oracle_q"),
    # pairings refused before any work, with the parts that fit listed
    (["--solver", "natural_gradient", "--divergence", "w1"], "'w1:",
     "use solver 'exact_radius'"),
    (["--solver", "ot_dual", "--divergence", "kl", "--critic", "q"], "'kl:",
     "divergences it accepts: w1"),
    (["--solver", "ot_dual", "--divergence", "w1"], "critic 'v' has none",
     "use critic='q'"),
    (["--env", "ClimbingGame-v0", "--divergence", "w1_bound", "--solver", "exact_radius"],
     "'w1_bound'", "divergences that fit discrete actions: hellinger, js, kl, tv, w1, w2"),
    (["--env", "ClimbingGame-v0", "--divergence", "w1:cost=((0,1),(1,0))", "--solver",
      "exact_radius"], "defined for 2 actions", "got a Categorical over 3 actions"),
    (["--env", "ClimbingGame-v0", "--divergence", "w1:cost=((0,1,1),(1,1,1),(1,1,0))"],
     "cost[1][1] = 1.0", "zero diagonal"),
    (["--env", "ClimbingGame-v0", "--divergence", "w1:embedding=env", "--solver",
      "exact_radius"], "agent 0 declares no action embedding", "action_embedding(agent)"),
    # envs and their keywords
    (["--env", "DiffGme-v0"], "'DiffGme-v0'", "Did you mean 'DiffGame-v0'?"),
    (["--env-kwargs", "n=0"], "got 0", "integer >= 1"),
    (["--env-kwargs", "n=2,sigma=(1,-3)"], "got -3", "number > 0"),
    (["--env-kwargs", "n=2,colour=3"], "'colour'", "accepted keywords: basin_gap"),
    (["--env", "PenaltyGame-v0", "--env-kwargs", "k=5"], "got 5.0", "<= 0"),
    (["--env", "ClimbingGame-v0", "--env-kwargs", "payoff=1"], "'payoff'",
     "accepted keywords"),
]


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("flags", "bad", "allowed"), TRAIN_FLAGS,
                         ids=[" ".join(flags) for flags, _, _ in TRAIN_FLAGS])
def test_bad_cli_input_names_the_value_and_the_choices(tmp_path, monkeypatch, capsys, flags,
                                                      bad, allowed):
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    try:
        code = main(["train", "--iterations", "1", *flags])
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code)
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1, err
    assert bad in err[0] and allowed in err[0], err[0]
    assert _tree(tmp_path) == before  # nothing written: refused before any work


#: The same mistakes from Python: (TrainConfig fields, bad value as named, what is allowed).
API_CASES = [
    ({"gamma": 2.0}, "got 2.0", "in [0.0, 1.0]"),
    ({"divergence": "kll"}, "'kll'", "Did you mean 'kl'?"),
    ({"solver": "ot_dual", "divergence": "w1"}, "critic 'v' has none", "critic='q'"),
    ({"env_kwargs": {"n": -2}}, "got -2", "integer >= 1"),
    ({"share_parameters": "yes"}, "got 'yes'", "true or false"),
    ({"preset": "wmatrpo-dual", "share_parameters": True}, "critic 'q'", "critic='v'"),
]


@pytest.mark.parametrize(("fields", "bad", "allowed"), API_CASES,
                         ids=[repr(f) for f, _, _ in API_CASES])
def test_bad_api_input_names_the_value_and_the_choices(tmp_path, fields, bad, allowed):
    before = _tree(tmp_path)
    with pytest.raises(ValueError) as info:
        marl_tr.train(iterations=1, run_dir=str(tmp_path / "run"), **fields)
    text = str(info.value)
    assert "\n" not in text and bad in text and allowed in text, text
    assert _tree(tmp_path) == before


#: The env constructors: (id or factory, keywords, bad value as named, what is allowed).
ENV_CASES = [
    ("DiffGame-v0", {"n": 0}, "got 0", "integer >= 1"),
    ("DiffGame-v0", {"n": 2, "sigma": (1.0,)}, "sigma", "2"),
    ("DiffGame-v0", {"n": 2, "low": 3.0, "high": 1.0}, "3.0", "high"),
    ("PenaltyGame-v0", {"k": 1.0}, "got 1.0", "<= 0"),
    ("ClimbingGame-v0", {"payoff": 1}, "'payoff'", "accepted keywords"),
]


@pytest.mark.parametrize(("env_id", "kwargs", "bad", "allowed"), ENV_CASES,
                         ids=[f"{e}-{k}" for e, k, _, _ in ENV_CASES])
@pytest.mark.parametrize("shell", ["gymnasium", "pettingzoo"])
def test_bad_env_arguments_name_the_value_and_the_choices(env_id, kwargs, bad, allowed, shell):
    make = gym.make if shell == "gymnasium" else marl_tr_envs.make_parallel
    with pytest.raises((ValueError, TypeError)) as info:
        make(env_id, **kwargs)
    text = str(info.value)
    assert bad in text and allowed in text, text


def test_the_table_has_at_least_sixty_cases():
    assert len(TRAIN_FLAGS) + len(API_CASES) + 2 * len(ENV_CASES) >= 60
