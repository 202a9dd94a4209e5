"""The embedded sample: pages written for the project and real photos, built into a WARC offline.

:func:`sample_warc_path` returns the built WARC (``build/sample/sample.warc.gz`` in a checkout, else in
the user's cache folder),
building it on demand; ``python -m obelics.sample.build_sample -o PATH`` (``make sample``) builds it.
The pages and their URLs are listed in ``MANIFEST.tsv``; ``build_sample.IMAGES`` lists the images.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["sample_warc_path"]


def _fresh(path: Path) -> bool:
    from obelics.sample.build_sample import MANIFEST, PAGES_DIR

    if not path.exists():
        return False
    built = path.stat().st_mtime
    inputs = [Path(__file__).parent / "build_sample.py", MANIFEST, *PAGES_DIR.glob("*.html")]
    return all(p.stat().st_mtime <= built for p in inputs)


def sample_warc_path(rebuild: bool = False) -> Path:
    """The sample WARC, built if missing or older than its pages (``OBELICS_SAMPLE_WARC`` overrides)."""
    from obelics.sample.build_sample import DEFAULT_OUT, build_sample

    env = os.environ.get("OBELICS_SAMPLE_WARC")
    if env:
        return Path(env)
    path = DEFAULT_OUT
    parent = path.parent
    while not parent.exists() and parent != parent.parent:  # the nearest folder that exists decides
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        from obelics.paths import user_cache_dir

        path = user_cache_dir() / "sample.warc.gz"  # a read-only checkout
    if rebuild or not _fresh(path):
        build_sample(path)
    return path
