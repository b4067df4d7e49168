"""Start-up: ``import marl_tr`` and a default run import neither ``torch._dynamo`` nor SB3
(checked in ``sys.modules`` of a fresh process, not by timing); the critic's lazily built
optimiser gives the eager optimiser's state and steps bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from marl_tr.training.critic import Critic, LazyOptimizer

HEAVY = ("torch._dynamo", "stable_baselines3", "sb3_contrib", "matplotlib")

SCRIPT = """
import json, sys
import marl_tr
after_import = [m for m in {heavy!r} if m in sys.modules]
from marl_tr.cli import main
status = main(["train", "--iterations", "1", "--run-dir", "run", "--progress", "false"])
after_train = [m for m in {heavy!r} if m in sys.modules]
print("MODULES " + json.dumps([status, after_import, after_train]))
"""


def test_import_and_a_one_iteration_train_skip_dynamo_and_the_optional_packages(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("MODULES "))
    status, after_import, after_train = json.loads(line[len("MODULES "):])
    assert status == 0
    assert after_import == []
    assert after_train == []  # the run wrote its checkpoint without building the optimiser
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def params() -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(3, 2, generator=generator)),
            torch.nn.Parameter(torch.randn(2, generator=generator))]


def test_an_unbuilt_sgd_state_dict_is_the_built_ones():
    lazy = LazyOptimizer(torch.optim.SGD, params(), lr=0.2)
    unbuilt = lazy.state_dict()
    assert not lazy.built
    eager = torch.optim.SGD(params(), lr=0.2).state_dict()
    assert unbuilt == eager
    assert list(unbuilt["param_groups"][0]) == list(eager["param_groups"][0])  # key order too
    assert lazy.get().state_dict() == eager and lazy.built


def test_a_state_loaded_before_the_build_is_applied_at_the_build():
    source = torch.optim.Adam(params(), lr=0.01)
    loss = sum(p.square().sum() for p in source.param_groups[0]["params"])
    loss.backward()
    source.step()
    lazy = LazyOptimizer(torch.optim.Adam, params(), lr=0.01)
    lazy.load_state_dict(source.state_dict())
    assert not lazy.built
    built = lazy.state_dict()  # not SGD: built, with the loaded state
    assert lazy.built
    assert built["state"][0]["step"] == source.state_dict()["state"][0]["step"]
    torch.testing.assert_close(built["state"][0]["exp_avg"], source.state_dict()["state"][0][
        "exp_avg"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        LazyOptimizer(torch.optim.SGD, params(), lr=0.1).load_state_dict(
            {"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        LazyOptimizer(torch.optim.SGD, params()[:1], lr=0.1).load_state_dict(
            torch.optim.SGD(params(), lr=0.1).state_dict())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_critic_steps_equal_an_eager_torch_optimiser(optimizer):
    generator = torch.Generator().manual_seed(3)
    states = torch.randn(2, 16, 4, generator=generator)
    returns = torch.randn(2, 16, generator=generator)
    critic = Critic(4, hidden=(8,), lr=0.05, optimizer=optimizer, epochs=3, replicas=2,
                    generators=[torch.Generator().manual_seed(s) for s in (1, 2)])
    reference = Critic(4, hidden=(8,), lr=0.05, optimizer=optimizer, epochs=3, replicas=2,
                       generators=[torch.Generator().manual_seed(s) for s in (1, 2)])
    assert not critic.optimizer.built
    eager_cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    eager = eager_cls(reference.parameters(), lr=0.05)
    for _ in range(2):
        losses = critic.fit(states, returns)
        expected = []
        for _ in range(3):  # the same loop as Critic.fit, with the eager optimiser
            loss = 0.5 * (reference.net(states).squeeze(-1) - returns).square().mean(1)
            eager.zero_grad(set_to_none=True)
            loss.sum().backward()
            eager.step()
            expected = loss.detach().tolist()
        assert losses == expected
    for mine, theirs in zip(critic.parameters(), reference.parameters()):
        assert torch.equal(mine, theirs)
    assert critic.optimizer.state_dict()["param_groups"] == eager.state_dict()["param_groups"]
