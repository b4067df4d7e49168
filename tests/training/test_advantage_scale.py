"""Advantage normalisation is invariant to the reward's scale (``training.critic.normalize``),
from 1e-12 to 1e12, in both dtypes, and so are whole runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marl_tr
from marl_tr.training.critic import normalize

SCALES = [10.0**k for k in range(-12, 13)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_is_invariant_to_the_scale_from_1e_minus_12_to_1e12(dtype):
    generator = torch.Generator().manual_seed(3)
    base = torch.randn(4, 30, generator=generator, dtype=torch.float64) + 0.7  # [R, B]
    reference = normalize(base).to(dtype)
    tolerance = 64 * torch.finfo(dtype).eps
    for scale in SCALES:
        out = normalize((scale * base).to(dtype))
        torch.testing.assert_close(out, reference, rtol=tolerance, atol=tolerance)
        # mean 0 and std 1 per replica, whatever the scale (HARL's "/ (std + 1e-8)" gave
        # a std of 1e-4 at scale 1e-12)
        per_replica = out.double()
        torch.testing.assert_close(per_replica.std(-1, unbiased=False),
                                   torch.ones(4, dtype=torch.float64), rtol=tolerance, atol=0.0)
        assert per_replica.mean(-1).abs().max() <= tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_is_exactly_invariant_to_powers_of_two(dtype):
    x = torch.randn(30, generator=torch.Generator().manual_seed(4), dtype=dtype)
    for power in (-40, -1, 1, 40):
        assert torch.equal(normalize(x * 2.0**power), normalize(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e12])
def test_normalize_still_zeroes_rounding_level_spread_at_every_scale(dtype, scale):
    """All-equal (up to rounding) advantages give zeros at any scale: the no-signal test is
    relative, not absolute."""
    value = torch.full((30,), 0.1 * scale, dtype=dtype)
    assert torch.equal(normalize(value), torch.zeros(30, dtype=dtype))
    spread = torch.tensor([0.1, 0.1 + 1e-3] * 15, dtype=dtype) * scale  # real signal
    torch.testing.assert_close(normalize(spread), torch.tensor([-1.0, 1.0] * 15, dtype=dtype),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("preset", ["hatrpo", "wmatrpo", "happo"])
def test_runs_are_invariant_to_the_reward_scale(preset):
    """The differential game with both peak masses scaled by 2^-40 (about 1e-12) or 2^40
    gives bit for bit the run at scale 1 (the linear critic's SGD and the normalisation both
    commute with a power of two); with the old absolute epsilon the primal-dual preset did
    not move at 2^-40. One solver per family: natural gradient, primal-dual, PPO."""

    def run(scale: float):
        return marl_tr.train(preset=preset, iterations=8, seed=2, env_kwargs={
            "n": 3, "local_mass": 6.5 * scale, "global_mass": 10.0 * scale})

    reference = run(1.0)
    assert reference.column("moved_0").sum() > 0
    for scale in (2.0**-40, 2.0**40):
        result = run(scale)
        np.testing.assert_array_equal(result.final_means(), reference.final_means())
        np.testing.assert_array_equal(result.final_stds(), reference.final_stds())
