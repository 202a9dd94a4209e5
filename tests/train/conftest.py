"""Fixtures of the trainer's tests: the one-torch-thread fixture of tests/model, and a small WebDataset."""

import pytest

from tests.model.conftest import _one_torch_thread  # noqa: F401  (autouse fixture, re-exported for tests/train)
from tests.train.shards import make_docs, write_webdataset


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two WebDataset shards of 30 generated documents (every 6th without its image); the folder's path."""
    root = tmp_path_factory.mktemp("train-shards")
    write_webdataset(root / "wds", make_docs(30, seed=1, missing_every=6), n_shards=2)
    return str(root / "wds")
