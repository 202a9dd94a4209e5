"""Image checks (docs/reference.md §5.3): safe probing of image bytes, format, sizes, aspect ratio.

Two entry points:

- :func:`probe_image` reads ``(format, width, height)`` from raw bytes. It opens the image lazily
  (header only), refuses more than ``max_pixels`` *before* decoding (``image:decompression_bomb``),
  then optionally verifies it (JPEG decoded at 1/8 scale through ``draft``, PNG by chunk CRCs,
  others decoded) to catch truncated or corrupt files. It never raises on bad input: every failure is a reason string.
- :func:`check_image_metadata` applies the node-level rules to an image node's metadata dict
  (``original_width``, ``original_height``, ``format``, ``rendered_width``, ``rendered_height``),
  in the original order: format, original width, original height, rendered width, rendered
  height, aspect ratio. The first failure is the reason.

:func:`image_filter` is the stage: it drops failing image nodes from documents and counts reasons.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from filters.base import KEEP, FilterStats, Verdict, without_nodes  # noqa: F401 (without_nodes: re-exported)
from filters.step import Step, run_step
from obelics.config import Profile, load_profile
from obelics.document import WebDocument

# Reasons (stable strings: stats and side outputs count them).
R_EMPTY = "image:empty"
R_UNDECODABLE = "image:undecodable"
R_BOMB = "image:decompression_bomb"
R_TRUNCATED = "image:truncated"
R_CORRUPT = "image:corrupt"
R_MISSING_BYTES = "image:missing_bytes"
R_MISSING_SIZE = "image:missing_size"
R_FORMAT = "image:format_not_allowed"
R_FORMAT_MISSING = "image:format_missing"
R_ASPECT = "image:aspect_ratio"

# JPEG also opens MPO. Names PIL does not know (an older Pillow without AVIF) are ignored.
SAFE_DECODERS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "ICO", "AVIF")


def open_formats(decoders) -> list[str]:
    """The ``decoders`` this Pillow knows, upper-cased, for ``Image.open(formats=...)``."""
    Image.init()
    return [d.upper() for d in decoders if d.upper() in Image.OPEN]


@dataclass
class ImageFilterConfig:
    """The ``image_filters:`` section. Defaults equal the ``default`` profile."""

    check_format: bool = True
    # Lower-cased PIL format names. default keeps the original bytes (no re-encode), so GIF and MPO
    # (the multi-picture JPEG many phones write; PIL reports it as "mpo") are real formats here.
    valid_formats: list[str] = field(default_factory=lambda: ["jpeg", "jpg", "png", "webp", "gif", "mpo"])
    # What to do when the format is unknown: obelics-2023 only checks a format that is present.
    format_missing: Literal["drop", "keep"] = "drop"
    check_size: bool = True
    original_width_min: int = 150
    original_width_max: int = 20000
    original_height_min: int = 150
    original_height_max: int = 20000
    rendered_width_min: int = 150
    rendered_width_max: int = 20000
    rendered_height_min: int = 150
    rendered_height_max: int = 20000
    aspect_ratio_max: float = 2.0        # keep iff 1/max <= width/height <= max
    # Header-claimed pixel count above which an image is refused before any decoding. PIL itself
    # refuses more than 2 * Image.MAX_IMAGE_PIXELS at open time, so that is the effective ceiling.
    max_pixels: int | None = 89_478_485
    # PIL decoders allowed to identify web bytes. EPS would run Ghostscript on them, and the exotic
    # formats (PSD, FITS, ...) only widen the attack surface; anything else is "image:undecodable".
    decoders: list[str] = field(default_factory=lambda: list(SAFE_DECODERS))
    verify_decode: bool = True           # JPEG at 1/8 scale, PNG chunk CRCs, others decoded: truncated/corrupt
    allow_truncated: bool = False        # obelics-2023: PIL LOAD_TRUNCATED_IMAGES=True semantics
    # How "N%" rendered sizes are parsed: "int" as the original (int("50.5") fails and the key is
    # deleted), "float" also accepts decimals.
    rendered_percent: Literal["int", "float"] = "float"


def image_config(profile: Profile | str | ImageFilterConfig | None = "default") -> ImageFilterConfig:
    """The ``image_filters`` section of ``profile`` (a name, a loaded profile, or a config)."""
    if isinstance(profile, ImageFilterConfig):
        return profile
    return load_profile(profile or "default").section("image_filters", ImageFilterConfig)


# -- bytes -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageProbe:
    """What :func:`probe_image` found: ``reason`` is None when the image is readable."""

    format: str | None = None
    width: int | None = None
    height: int | None = None
    reason: Verdict = None
    truncated: bool = False  # decoding hit the end of the data (tolerated when allow_truncated)

    @property
    def ok(self) -> bool:
        return self.reason is None


def decode_signature(img: Image.Image) -> tuple:
    """What fixes the pixels ``load()`` gives of a lazily opened image (after any ``draft``): its plugin, format,
    mode, size, tiles and draft scale. Two opens of the same bytes with equal signatures decode the same pixels."""
    return (type(img), img.format, img.mode, img.size, tuple(img.tile or ()), getattr(img, "decoderconfig", ()))


class DecodedImages:
    """Images the image filters' probe decoded, handed to the next decoder of the same bytes (NSFW's
    :func:`filters.nsfw.decode_rgb`) instead of decoding them again.

    An entry is taken only by a decode with the same :func:`decode_signature`: the same pixels by
    construction (a WebP, GIF, ... is decoded whole by both; a JPEG only when both drafts chose the same
    DCT scale). The pixels are kept, bounded by ``budget`` bytes (pixels plus the encoded bytes held
    as key): an image beyond it is not kept. :meth:`take` removes its entry; the image filters step clears the
    rest per unit. Where no decoder asked between two clears although images were kept (NSFW off, or in a later
    stage: the obelics-2023 plan), nothing more is kept until one asks again. No library keeps decoded images
    across filters, hence this small class.
    """

    def __init__(self, budget: int = 64 << 20, jpeg_min_side: int = 512) -> None:
        self.budget = budget
        # The consumer's JPEG draft request (NSFW's decode_rgb: no side under 512): the probe's 1/8-scale decode
        # is the same decode only for a JPEG at least 8 times that on both sides; smaller ones are not kept.
        self.jpeg_min_side = jpeg_min_side
        self.used = 0
        self.hits = 0
        self.armed = True  # keep images (see the class docstring)
        self._puts = self._asks = 0  # since the last clear()
        self._held: dict[bytes, tuple[tuple, Image.Image, int]] = {}
        self._lock = threading.Lock()

    def put(self, data: bytes, signature: tuple, img: Image.Image) -> bool:
        """Keep the pixels of ``img`` (loaded from ``data`` with ``signature``) if they fit the budget (and, a JPEG,
        if it is big enough for the consumer's draft to choose the same 1/8 scale).

        A plain image on the same pixel buffer is kept (PIL's ``_new``: what ``copy()`` does minus the memcpy and
        the new buffer's page faults), not the opened file, which holds its decoder (a WebP's two full-canvas
        RGBA buffers)."""
        if not self.armed or (img.format in ("JPEG", "MPO") and min(signature[3]) <= self.jpeg_min_side):
            return False  # (a JPEG's signature holds its drafted size)
        cost = img.width * img.height * (1 if img.mode in ("1", "L", "P") else 4) + len(data)  # PIL: 4 bytes a pixel
        if data in self._held or self.used + cost > self.budget:  # checked again below; no copy made for nothing
            return False
        kept = img._new(img.im)
        with self._lock:
            if data in self._held or self.used + cost > self.budget:
                return False
            self._held[data] = (signature, kept, cost)
            self.used += cost
            self._puts += 1
        return True

    def take(self, data: bytes, signature: tuple) -> Image.Image | None:
        """The image kept for ``data`` if it was decoded with ``signature`` (removed from the store), else None."""
        with self._lock:
            self._asks += 1
            held = self._held.get(data) if self._held else None  # (no hashing of the bytes when empty)
            if held is None or held[0] != signature:
                return None
            del self._held[data]
            self.used -= held[2]
            self.hits += 1
            return held[1]

    def clear(self) -> None:
        """Drop what was not taken (a new unit); disarm if images were kept and none was asked for, re-arm if
        one was."""
        with self._lock:
            if self._asks:
                self.armed = True
            elif self._puts:
                self.armed = False
            self._puts = self._asks = 0
            self._held.clear()
            self.used = 0

    def __len__(self) -> int:
        return len(self._held)


DECODED = DecodedImages()  # this process's probe decodes waiting for NSFW (one fused stage runs both)


def probe_image(data: bytes | bytearray | memoryview | None, cfg: ImageFilterConfig | None = None) -> ImageProbe:
    """Read format and size from ``data`` without trusting it: bombs, truncation, junk give a reason."""
    return _probe(data, cfg or ImageFilterConfig())[0]


def _probe(data, cfg: ImageFilterConfig) -> tuple[ImageProbe, tuple | None, Image.Image | None]:
    """:func:`probe_image`, and the verification decode's :func:`decode_signature` and loaded image when it
    decoded the whole image without error (not for a PNG, whose chunks are only checked)."""
    if not data:
        return ImageProbe(reason=R_EMPTY), None, None
    try:
        img = Image.open(io.BytesIO(bytes(data)), formats=open_formats(cfg.decoders))  # lazy: header only
    except Image.DecompressionBombError:
        return ImageProbe(reason=R_BOMB), None, None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, TypeError):
        return ImageProbe(reason=R_UNDECODABLE), None, None
    except Exception:  # any other decoder failure on hostile input is still "undecodable"
        return ImageProbe(reason=R_UNDECODABLE), None, None
    with img:
        fmt = img.format.lower() if img.format else None
        width, height = img.size
        if width <= 0 or height <= 0:
            return ImageProbe(fmt, width, height, R_CORRUPT), None, None
        if cfg.max_pixels is not None and width * height > cfg.max_pixels:
            return ImageProbe(fmt, width, height, R_BOMB), None, None
        if not cfg.verify_decode:
            return ImageProbe(fmt, width, height), None, None
        signature = None
        try:
            if fmt == "png":
                img.verify()  # walks every chunk and checks its CRC, with no pixel buffer (big PNGs are cheap)
            else:
                if fmt in ("jpeg", "mpo"):
                    img.draft(None, (max(1, width // 8), max(1, height // 8)))  # DCT-scaled decode: fast
                signature = decode_signature(img)
                img.load()
        except Exception as e:  # noqa: BLE001 - hostile bytes raise anything; classify, never escape
            truncated = "truncated" in str(e).lower() or isinstance(e, EOFError)
            if cfg.allow_truncated:
                # PIL with LOAD_TRUNCATED_IMAGES=True keeps whatever decoded; the original build ran so.
                return ImageProbe(fmt, width, height, None, truncated=True), None, None
            return ImageProbe(fmt, width, height, R_TRUNCATED if truncated else R_CORRUPT, truncated), None, None
    return ImageProbe(fmt, width, height), signature, (img if signature is not None else None)


# -- metadata --------------------------------------------------------------------------------------

def _parse_percent(value: str, how: str) -> float | None:
    number = value.strip().replace("%", "")
    try:
        p = int(number) if how == "int" else float(number)
    except ValueError:
        return None
    return p if math.isfinite(p) else None


def normalize_rendered_sizes(meta: Mapping[str, Any], cfg: ImageFilterConfig | None = None) -> dict[str, Any]:
    """A copy of ``meta`` with percentage rendered sizes in pixels of the original (docs/reference.md §5.3 step 2).

    ``"50%"`` becomes ``round(original * 50 / 100)``; a value that cannot be converted (or any
    rendered size that is neither an int nor a percentage) is deleted, as the original did.
    """
    cfg = cfg or ImageFilterConfig()
    out = dict(meta)
    for side in ("width", "height"):
        key, orig = f"rendered_{side}", out.get(f"original_{side}")
        if key not in out:
            continue
        value = out[key]
        if isinstance(value, bool):
            del out[key]
        elif isinstance(value, int):
            continue
        elif isinstance(value, float) and math.isfinite(value):
            out[key] = int(value)
        elif isinstance(value, str) and "%" in value and isinstance(orig, int):
            p = _parse_percent(value, cfg.rendered_percent)
            if p is None:
                del out[key]
            else:
                out[key] = round(orig * p / 100)
        else:
            del out[key]
    return out


def _bounds(value: int, lo: int, hi: int, prefix: str, side: str) -> Verdict:
    if value < lo:
        return f"image:{prefix}too_small_{side}"
    if value > hi:
        return f"image:{prefix}too_large_{side}"
    return KEEP


def check_image_metadata(meta: Mapping[str, Any], cfg: ImageFilterConfig | None = None) -> Verdict:
    """Node-level image rules over a metadata dict already holding original sizes and format."""
    cfg = cfg or ImageFilterConfig()
    if cfg.check_format:
        fmt = meta.get("format")
        if fmt:
            if str(fmt).lower() not in cfg.valid_formats:
                return R_FORMAT
        elif cfg.format_missing == "drop":
            return R_FORMAT_MISSING
    if not cfg.check_size:
        return KEEP
    w, h = meta.get("original_width"), meta.get("original_height")
    if not isinstance(w, int) or not isinstance(h, int) or isinstance(w, bool) or isinstance(h, bool) or h <= 0:
        return R_MISSING_SIZE
    for verdict in (
        _bounds(w, cfg.original_width_min, cfg.original_width_max, "", "width"),
        _bounds(h, cfg.original_height_min, cfg.original_height_max, "", "height"),
    ):
        if verdict:
            return verdict
    rw, rh = meta.get("rendered_width"), meta.get("rendered_height")
    if isinstance(rw, int) and not isinstance(rw, bool):
        verdict = _bounds(rw, cfg.rendered_width_min, cfg.rendered_width_max, "rendered_", "width")
        if verdict:
            return verdict
    if isinstance(rh, int) and not isinstance(rh, bool):
        verdict = _bounds(rh, cfg.rendered_height_min, cfg.rendered_height_max, "rendered_", "height")
        if verdict:
            return verdict
    if not (1 / cfg.aspect_ratio_max <= w / h <= cfg.aspect_ratio_max):
        return R_ASPECT
    return KEEP


def check_image_node(meta: Mapping[str, Any] | None, cfg: ImageFilterConfig | None = None,
                     data: bytes | None = None, probe: ImageProbe | None = None) -> tuple[Verdict, dict[str, Any]]:
    """Check one image node: probe ``data`` when given (or take its ``probe``), normalise rendered sizes,
    apply the rules.

    Returns ``(verdict, new_meta)``; ``new_meta`` holds ``original_width``, ``original_height`` and
    ``format`` from the probe (as the original's S8 wrote them) and pixel rendered sizes.
    """
    cfg = cfg or ImageFilterConfig()
    new = dict(meta or {})
    if probe is None and data is not None:
        probe = probe_image(data, cfg)
    if probe is not None:
        if probe.width is not None:
            new["original_width"], new["original_height"] = probe.width, probe.height
        if probe.format:
            new["format"] = probe.format
        if not probe.ok:
            return probe.reason, new
    new = normalize_rendered_sizes(new, cfg)
    return check_image_metadata(new, cfg), new


# -- documents -------------------------------------------------------------------------------------

ImageBytes = Callable[[str], "bytes | None"] | Mapping[str, "bytes | None"]


def lookup_bytes(image_bytes: ImageBytes | None, url: str) -> bytes | None:
    """Bytes of ``url`` from a mapping or a callable (None when unknown)."""
    if image_bytes is None:
        return None
    if callable(image_bytes):
        return image_bytes(url)
    return image_bytes.get(url)


class ImageFiltersStep(Step):
    """Node-level image rules: failing image nodes are dropped, documents kept (doc-level rules live elsewhere).

    With the ``image_bytes`` input (urls -> url->bytes mapping or callable) each image is probed, and a
    URL with no bytes is dropped as ``image:missing_bytes``; without it, the node metadata must already
    carry ``original_width``/``original_height``/``format`` (the image stage writes them). Kept and
    dropped nodes get the probed format and sizes and pixel rendered sizes.
    """

    name = "image_filters"
    section = "image_filters"
    config = ImageFilterConfig
    level = "image"
    needs = ("image_bytes",)

    def active(self, cfg) -> bool:
        return True

    def prepare(self, docs, cfg, inputs) -> tuple[ImageBytes | None, dict]:
        """The chunk's image bytes, and an empty memo of probes by content: a probe is a function of the bytes
        and the config, so an image met again (the same URL or bytes in several documents) is probed once."""
        DECODED.clear()  # a previous unit's decodes NSFW did not take
        provide = inputs.get("image_bytes")
        return (provide([u for d in docs for u in d.images if u is not None]) if provide else None), {}

    def image_verdict(self, url, meta, cfg: ImageFilterConfig, prepared) -> tuple[Verdict, Any]:
        image_bytes, probes = prepared
        if image_bytes is None:
            return check_image_node(meta, cfg)
        data = lookup_bytes(image_bytes, url)
        if data is None:
            return R_MISSING_BYTES, meta
        key = data if isinstance(data, bytes) else bytes(data)
        probe, img = probes.get(key), None
        if probe is None:
            probe, signature, img = _probe(key, cfg)
            probes[key] = probe
        verdict, new = check_image_node(meta, cfg, probe=probe)
        if img is not None and verdict is None:  # the node goes on: NSFW's decode of it may be this one
            DECODED.put(key, signature, img)
        return verdict, new


IMAGE_FILTERS = ImageFiltersStep()


def image_filter(docs: Iterable[WebDocument], profile: Profile | str | ImageFilterConfig | None = "default",
                 stats: FilterStats | None = None, image_bytes: ImageBytes | None = None) -> list[WebDocument]:
    """:class:`ImageFiltersStep` over ``docs`` with ``profile``'s config and optional ``image_bytes``
    (url -> bytes, mapping or callable)."""
    inputs = {"image_bytes": lambda urls: image_bytes} if image_bytes is not None else None
    return run_step(IMAGE_FILTERS, docs, state=image_config(profile), inputs=inputs, stats=stats)[0]
