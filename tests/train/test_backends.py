"""The backends' common part: which weight values a rank judges."""

from __future__ import annotations

import math

import torch

from train.backends.base import local_weights


def _zero3_partition(full: torch.Tensor, world: int, rank: int, pad: float) -> torch.nn.Parameter:
    """A parameter as DeepSpeed's ZeRO-3 leaves it on ``rank``: ``ds_tensor`` its slice, the padding ``pad``."""
    size = math.ceil(full.numel() / world)
    part = torch.full((size,), pad)
    flat = full.reshape(-1)[rank * size:(rank + 1) * size]
    part[:flat.numel()] = flat
    p = torch.nn.Parameter(torch.empty(0))
    p.ds_tensor, p.ds_numel = part, full.numel()
    return p


def test_a_plain_weight_is_judged_whole():
    w = torch.nn.Parameter(torch.arange(6.0).reshape(2, 3))
    assert local_weights(w) is w


def test_zero3_padding_is_never_judged():
    """7 values over 4 ranks (partitions of 2): rank 3 holds one value and one uninitialised (here NaN) slot."""
    full = torch.arange(7.0)
    got = [local_weights(_zero3_partition(full, 4, r, math.nan), part_rank=r) for r in range(4)]
    assert torch.equal(torch.cat(got), full)
    assert all(bool(torch.isfinite(t).all()) for t in got)
    # 6 values over 4 ranks (partitions of 2): rank 3 holds only padding
    six = torch.arange(6.0)
    assert local_weights(_zero3_partition(six, 4, 3, math.nan), part_rank=3).numel() == 0


def test_a_real_nan_in_a_partition_is_still_seen():
    full = torch.tensor([0.0, 1.0, 2.0, math.nan, 4.0])  # partitions of 3: rank 1 holds [nan, 4] and padding
    got = local_weights(_zero3_partition(full, 2, 1, 0.0), part_rank=1)
    assert got.numel() == 2 and math.isnan(got[0]) and got[1] == 4.0
