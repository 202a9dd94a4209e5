"""Re-encoding as the original build did, through img2dataset's own ``Resizer`` (no resize, JPEG 95).

Used by the offline source when a profile re-encodes (``obelics-2023``), so that WARC images go
through exactly the code a download would.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache

from pipeline.images.config import ImagesConfig

# albumentations (imported by img2dataset) asks PyPI for updates on import unless told not to
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@lru_cache(maxsize=4)
def _resizer(encode_format: str, encode_quality: int):
    from img2dataset.resizer import Resizer

    return Resizer(image_size=256, resize_mode="no", resize_only_if_bigger=False,
                   encode_format=encode_format, encode_quality=encode_quality)


def reencode(data: bytes, cfg: ImagesConfig) -> tuple[bytes | None, str | None]:
    """``(bytes, None)`` re-encoded per the profile, or ``(None, error message)``.

    An image whose header declares more than ``cfg.decode_cap()`` pixels is refused before decoding.
    """
    from pipeline.images.i2d_worker import declared_pixels

    pixels = declared_pixels(data)
    if pixels is not None and pixels > cfg.decode_cap():
        return None, f"image area too large ({pixels} pixels declared > {cfg.decode_cap()})"
    img, _w, _h, _ow, _oh, err = _resizer(cfg.encode_format, cfg.encode_quality)(io.BytesIO(data))
    return (None, err) if err else (img, None)
