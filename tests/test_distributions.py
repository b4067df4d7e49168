"""Distribution helpers on the solvers' hot path, against scipy and row-by-row evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from marl_tr.distributions import Categorical, DiagGaussian

F64 = torch.float64


def gaussian(rows: int, dim: int, seed: int) -> DiagGaussian:
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(rows, dim, generator=generator, dtype=F64)
    std = 0.1 + torch.rand(rows, dim, generator=generator, dtype=F64)
    return DiagGaussian(mean, std)


def test_gaussian_log_prob_matches_scipy():
    dist = gaussian(7, 3, seed=0)
    actions = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    expected = stats.norm.logpdf(actions.numpy(), dist.mean.numpy(), dist.std.numpy()).sum(1)
    np.testing.assert_allclose(dist.log_prob(actions).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(("groups", "per_group", "batch"), [(1, 4, 5), (3, 2, 6), (2, 1, 1)])
def test_grouped_log_prob_pairs_each_distribution_with_its_groups_actions(
        groups, per_group, batch):
    generator = torch.Generator().manual_seed(2)
    dist = gaussian(groups * per_group, 2, seed=3)
    actions = torch.randn(groups * batch, 2, generator=generator, dtype=F64)
    logits = torch.randn(groups * per_group, 4, generator=generator, dtype=F64)
    choices = torch.randint(0, 4, (groups * batch,), generator=generator)
    for distribution, acts in ((dist, actions), (Categorical(logits), choices)):
        grouped = distribution.grouped_log_prob(acts, groups)
        assert grouped.shape == (groups, per_group, batch)
        for g in range(groups):
            for k in range(per_group):
                row = g * per_group + k
                single = type(distribution).from_params(
                    tuple(p[row:row + 1].expand(batch, *p.shape[1:])
                          for p in distribution.params()))
                expected = single.log_prob(acts[g * batch:(g + 1) * batch])
                torch.testing.assert_close(grouped[g, k], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows", [1, 3])
def test_repeat_rows_repeats_each_row_in_place(rows):
    dist = gaussian(rows, 2, seed=4)
    repeated = dist.repeat_rows(3)
    assert repeated.batch_size == 3 * rows
    for r in range(rows):
        for j in range(3):
            assert torch.equal(repeated.mean[3 * r + j], dist.mean[r])
            assert torch.equal(repeated.std[3 * r + j], dist.std[r])


def test_sample_uses_one_generator_per_block_of_rows():
    dist = gaussian(6, 1, seed=5)
    generators = [torch.Generator().manual_seed(s) for s in (10, 11)]
    both = dist.sample(generators)
    first = DiagGaussian(dist.mean[:3], dist.std[:3]).sample(torch.Generator().manual_seed(10))
    second = DiagGaussian(dist.mean[3:], dist.std[3:]).sample(torch.Generator().manual_seed(11))
    torch.testing.assert_close(both, torch.cat((first, second)), rtol=0, atol=0)
    alone = dist.sample([torch.Generator().manual_seed(10)])
    torch.testing.assert_close(alone, dist.sample(torch.Generator().manual_seed(10)),
                               rtol=0, atol=0)


def test_cached_constants_have_the_dtype_and_work_with_autograd_after_inference_mode():
    from marl_tr.tensor_constants import constant_like

    like = torch.zeros(3, dtype=torch.float64)
    with torch.inference_mode():  # first made here, the constant is still a normal tensor
        c = constant_like(0.3183, like)
    assert c is constant_like(0.3183, like) and c.dtype == torch.float64 and c.dim() == 0
    assert float(c) == 0.3183 and constant_like(0.3183, like.float()).dtype == torch.float32
    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    (x * c).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.3183, dtype=torch.float64))
