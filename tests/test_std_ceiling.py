"""``LogStd(max_std=...)``: a std ceiling that leaves every std below its knee exactly as
``LogStd()`` has it; checked against autograd, finite differences and its own inverse."""

from __future__ import annotations

import math

import pytest
import torch

from marl_tr.policies import STD_PARAMETERISATIONS, GaussianPolicy, LogStd

F64 = torch.float64
RHO = torch.linspace(-12.0, 40.0, 4001, dtype=F64)


def test_below_the_knee_it_is_the_plain_log_std_bit_for_bit():
    capped, plain = LogStd(1e-3, max_std=7.0), LogStd(1e-3)
    below = plain.std(RHO) <= 1e-3 + 0.5 * (7.0 - 1e-3)  # the knee: half the span
    assert below.sum() > 1000 and (~below).sum() > 1000
    assert torch.equal(capped.std(RHO)[below], plain.std(RHO)[below])
    assert torch.equal(capped.derivative(RHO)[below], plain.derivative(RHO)[below])
    assert torch.equal(capped.std_and_derivative(RHO)[0], capped.std(RHO))


def test_the_std_rises_to_the_ceiling_and_never_passes_it():
    capped = LogStd(1e-3, max_std=7.0)
    std = capped.std(RHO)
    assert bool((std[1:] >= std[:-1]).all()) and bool((std <= 7.0).all())
    assert float(std[-1]) == pytest.approx(7.0, abs=1e-12)
    assert float(capped.std(torch.tensor(1e4, dtype=F64))) == 7.0  # no overflow, no NaN
    # float32 as well
    assert bool((capped.std(RHO.float()) <= 7.0).all())


def test_derivative_is_autograd_finite_differences_and_mpmath():
    capped = LogStd(1e-3, max_std=7.0)
    knee = 0.5 * (7.0 - 1e-3)
    # up to 1.3 knee lengths above the knee, where autograd's 1 - tanh^2 is still accurate
    rho = torch.linspace(-3.0, math.log(2.3 * knee), 501, dtype=F64, requires_grad=True)
    capped.std(rho).sum().backward()
    torch.testing.assert_close(capped.derivative(rho.detach()), rho.grad, rtol=1e-12, atol=0.0)
    h = 1e-6
    central = (capped.std(rho.detach() + h) - capped.std(rho.detach() - h)) / (2 * h)
    torch.testing.assert_close(capped.derivative(rho.detach()), central, rtol=1e-7, atol=1e-9)
    # deep in the saturation: e sech((e - k) / k)^2 in 40 digits
    import mpmath

    far = torch.linspace(math.log(2.3 * knee), 8.0, 101, dtype=F64)
    with mpmath.workdps(40):
        reference = [float(mpmath.exp(r) * mpmath.sech((mpmath.exp(r) - knee) / knee) ** 2)
                     for r in far.tolist()]
    torch.testing.assert_close(capped.derivative(far), torch.tensor(reference, dtype=F64),
                               rtol=1e-12, atol=0.0)
    # twice differentiable at the knee: the second derivative is continuous there
    at = math.log(knee)
    second = [(capped.derivative(torch.tensor(k + h, dtype=F64))
               - capped.derivative(torch.tensor(k - h, dtype=F64))) / (2 * h)
              for k in (at - 1e-4, at + 1e-4)]
    assert float(second[0]) == pytest.approx(float(second[1]), rel=1e-3)


@pytest.mark.parametrize("std", [0.002, 0.5, 3.4, 3.6, 6.0, 6.99])
def test_inverse_and_rho_of_invert_the_std(std):
    capped = LogStd(1e-3, max_std=7.0)
    assert float(capped.std(torch.tensor(capped.inverse(std), dtype=F64))) == pytest.approx(
        std, rel=1e-12)
    assert float(capped.std(capped.rho_of(torch.tensor(std, dtype=F64)))) == pytest.approx(
        std, rel=1e-12)


def test_bad_ceilings_and_starts_are_refused():
    with pytest.raises(ValueError, match=r"max_std must be > 2 \* min_std = 0\.2, got 0\.15"):
        LogStd(0.1, max_std=0.15)
    with pytest.raises(ValueError, match=r"init_std must be < max_std = 7\.0, got 7\.5"):
        GaussianPolicy(1, 1, init_std=7.5, std_param="log_std:max_std=7.0")


def test_config_string_and_spec_round_trip():
    capped = STD_PARAMETERISATIONS.build("log_std:max_std=7.0", min_std=1e-3)
    assert capped == LogStd(1e-3, max_std=7.0)
    assert STD_PARAMETERISATIONS.build(capped.spec()) == capped
    assert LogStd().max_std is None
