"""The sample run's published output, pinned: refactors must leave it byte for byte the same.

``golden_sample.json`` holds, for both profiles, the SHA-256 of the sample run's Parquet rows, its
WebDataset members and its funnel counts, recorded before the code was reorganised (issue 12). A change
that is meant to alter the output regenerates it on purpose::

    OBELICS_UPDATE_GOLDEN=1 python -m pytest tests/pipeline/test_golden_sample.py

and says so in its commit message.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.pipeline.test_run import OFFLINE, digest, sample_warc

GOLDEN = Path(__file__).with_name("golden_sample.json")


def sample_digest(profile: str, out: Path) -> dict[str, str]:
    """SHA-256 of each published part of a sample run with ``profile`` (no Ray, offline)."""
    from pipeline.run import run

    run(profile, out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false"])
    d = digest(out)
    parts = {"rows": d["rows"], "members": d["members"], "stages": d["stages"], "read": d["read"],
             "summary": d["summary"]}
    return {k: hashlib.sha256(json.dumps(v, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
            for k, v in parts.items()} | {"documents": d["summary"].get("documents")}


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_sample_output_is_unchanged(profile, tmp_path):
    got = sample_digest(profile, tmp_path / profile)
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if os.environ.get("OBELICS_UPDATE_GOLDEN") == "1":
        golden[profile] = got
        GOLDEN.write_text(json.dumps(golden, indent=2, sort_keys=True) + "\n")
    assert profile in golden, f"no golden digest for {profile}: run with OBELICS_UPDATE_GOLDEN=1"
    assert got == golden[profile], "the sample run's published output changed"
