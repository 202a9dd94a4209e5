"""The same one-torch-thread fixture as tests/model (defined there once)."""

from tests.model.conftest import _one_torch_thread  # noqa: F401  (autouse fixture, re-exported for tests/train)
