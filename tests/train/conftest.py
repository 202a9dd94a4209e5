"""Tiny models on a shared 2-core box: intra-op threading only adds contention (13 s vs 0.5 s measured)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
