"""Shared test fixtures: the ../shared data beside the checkout, and the gpu marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path inside ../shared; skips the test (fails under OBELICS_REQUIRE_SHARED=1) if absent."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"shared data not found at {p} (CI places ../shared beside the checkout)"
        if os.environ.get("OBELICS_REQUIRE_SHARED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return p


def compiled_or_skip(found, what: str):
    """``found`` (a piece of the compiled walk); when it is None the test skips (fails under
    OBELICS_REQUIRE_COMPILED=1, as .ci/run sets it) with "compiled walk missing: ``what``"."""
    if found is None:
        msg = f"compiled walk missing: {what}"
        if os.environ.get("OBELICS_REQUIRE_COMPILED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return found


@pytest.fixture
def shared():
    """Function returning paths inside ../shared, skipping when it is missing."""
    return shared_path


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
