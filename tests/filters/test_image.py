"""Image checks: safe probing (bombs, truncation, junk) and the node-level rules of docs/reference.md §5.3."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from filters.base import FilterStats
from filters.image import (
    ImageFilterConfig,
    check_image_metadata,
    check_image_node,
    image_config,
    image_filter,
    normalize_rendered_sizes,
    probe_image,
)
from obelics.document import WebDocument
from tests.conftest import shared_path

DEFAULT = ImageFilterConfig()
ORIGINAL = image_config("obelics-2023")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims ``width x height`` (8-bit grey), with ``idat`` as image data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def real_images():
    d = shared_path("data", "images")
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix in (".jpg", ".png")}


def test_real_photos_probe_with_their_true_size():
    from skimage import data as skdata

    imgs = real_images()
    assert len(imgs) >= 10
    for name, raw in imgs.items():
        probe = probe_image(raw, DEFAULT)
        assert probe.ok, (name, probe)
        with Image.open(io.BytesIO(raw)) as im:
            assert (probe.width, probe.height) == im.size
            assert probe.format == im.format.lower()
    astronaut = encode(Image.fromarray(skdata.astronaut()), "PNG")
    assert probe_image(astronaut).width == 512
    rocket = probe_image(imgs["skimage__rocket.jpg"])
    assert (rocket.format, rocket.width, rocket.height) == ("jpeg", 640, 427)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_refused_before_decoding():
    # 100000 x 100000: PIL itself refuses at open; 12000 x 12000 (144 Mpx) opens lazily and we refuse it.
    assert probe_image(png_claiming(100_000, 100_000)).reason == "image:decompression_bomb"
    probe = probe_image(png_claiming(12_000, 12_000))
    assert (probe.reason, probe.width, probe.height) == ("image:decompression_bomb", 12_000, 12_000)
    # A real bomb: 10000 x 10000 zeros compress to ~100 KB; with a 50 Mpx cap it is refused, not decoded.
    small = png_claiming(10_000, 10_000, zlib.compress(b"\0" * 10_001 * 100))
    assert probe_image(small, ImageFilterConfig(max_pixels=50_000_000)).reason == "image:decompression_bomb"
    # Under the cap the same header is fine to read (and decoding it is what would cost memory).
    assert probe_image(png_claiming(300, 200, zlib.compress(b"\0" * 301 * 200))).ok


def test_truncated_and_corrupt_files_give_reasons_never_exceptions():
    jpeg = real_images()["skimage__rocket.jpg"]
    half = jpeg[: len(jpeg) // 2]
    assert probe_image(half, DEFAULT).reason == "image:truncated"
    # obelics-2023: LOAD_TRUNCATED_IMAGES=True semantics, the partial image passes.
    tolerant = probe_image(half, ORIGINAL)
    assert tolerant.ok and tolerant.truncated and tolerant.width == 640
    png = real_images()["skimage__astronaut.png"]
    assert probe_image(png[: len(png) // 3]).reason == "image:truncated"
    for junk in (b"", None, b"\x00" * 50, jpeg[:200], png[:60], b"GIF89a", b"%PDF-1.4\n...",
                 b"<svg xmlns='http://www.w3.org/2000/svg' width='500' height='500'></svg>",
                 b"<html><body>not an image</body></html>", bytes(range(256)) * 40):
        probe = probe_image(junk, DEFAULT)
        assert not probe.ok and probe.reason.startswith("image:"), (junk[:20] if junk else junk, probe)
    # A corrupted middle (bytes flipped in the PNG data) is caught by decoding.
    broken = bytearray(png)
    broken[len(png) // 2: len(png) // 2 + 64] = b"\xff" * 64
    assert probe_image(bytes(broken), DEFAULT).reason in ("image:corrupt", "image:truncated")
    assert probe_image(bytes(broken), ImageFilterConfig(verify_decode=False)).ok


def test_formats_gif_webp_kept_by_default_and_by_format_set_in_2023():
    img = Image.new("RGB", (300, 200), (120, 30, 200))
    gif, webp, bmp = encode(img, "GIF"), encode(img, "WEBP"), encode(img, "BMP")
    assert check_image_node({}, DEFAULT, gif)[0] is None
    assert check_image_node({}, DEFAULT, webp)[0] is None
    assert check_image_node({}, DEFAULT, bmp)[0] == "image:format_not_allowed"
    assert check_image_node({}, ORIGINAL, gif)[0] == "image:format_not_allowed"
    assert check_image_node({}, ORIGINAL, webp)[0] is None
    verdict, meta = check_image_node({"src": "x"}, DEFAULT, webp)
    assert meta == {"src": "x", "original_width": 300, "original_height": 200, "format": "webp"}
    # Format absent: obelics-2023 checks only a present format; default drops.
    sized = {"original_width": 300, "original_height": 200}
    assert check_image_metadata(sized, ORIGINAL) is None
    assert check_image_metadata(sized, DEFAULT) == "image:format_missing"


@pytest.mark.parametrize("meta,reason", [
    ({"original_width": 149, "original_height": 200}, "image:too_small_width"),
    ({"original_width": 150, "original_height": 150}, None),               # bounds are inclusive
    ({"original_width": 20001, "original_height": 15000}, "image:too_large_width"),
    ({"original_width": 200, "original_height": 149}, "image:too_small_height"),
    ({"original_width": 15000, "original_height": 20001}, "image:too_large_height"),
    ({"original_width": 400, "original_height": 200}, None),               # ratio exactly 2
    ({"original_width": 200, "original_height": 400}, None),               # ratio exactly 1/2
    ({"original_width": 401, "original_height": 200}, "image:aspect_ratio"),
    ({"original_width": 200, "original_height": 401}, "image:aspect_ratio"),
    ({"original_width": 300, "original_height": 300, "rendered_width": 100}, "image:rendered_too_small_width"),
    ({"original_width": 300, "original_height": 300, "rendered_height": 20001}, "image:rendered_too_large_height"),
    ({"original_width": 1000, "original_height": 300}, "image:aspect_ratio"),
    # Order: width checked before aspect ratio, as the original.
    ({"original_width": 100, "original_height": 1000}, "image:too_small_width"),
    ({"original_width": None, "original_height": 300}, "image:missing_size"),
])
def test_size_and_aspect_rules(meta, reason):
    for cfg in (DEFAULT, ORIGINAL):
        assert check_image_metadata({"format": "jpeg", **meta}, cfg) == reason


def test_rendered_percentages_become_pixels():
    meta = {"original_width": 1024, "original_height": 768, "rendered_width": 600, "rendered_height": "50%"}
    assert normalize_rendered_sizes(meta, ORIGINAL) == {**meta, "rendered_height": 384}
    # round(300 * 33 / 100) = 99 < 150: the rendered height fails.
    small = {"format": "png", "original_width": 300, "original_height": 300, "rendered_height": "33%"}
    assert check_image_node(small, ORIGINAL)[0] == "image:rendered_too_small_height"
    # "100%" (the extractor's value for width="auto") is the original size.
    assert normalize_rendered_sizes({"original_width": 500, "rendered_width": "100%"})["rendered_width"] == 500
    # int("12.5") fails in the original: the key is deleted; default parses the decimal.
    dec = {"original_width": 2000, "original_height": 2000, "rendered_width": "12.5%"}
    assert "rendered_width" not in normalize_rendered_sizes(dec, ORIGINAL)
    assert normalize_rendered_sizes(dec, DEFAULT)["rendered_width"] == 250
    # Junk values are removed instead of crashing a comparison with a string.
    assert "rendered_width" not in normalize_rendered_sizes({"original_width": 10, "rendered_width": "wide%"})
    assert "rendered_height" not in normalize_rendered_sizes({"original_height": 10, "rendered_height": "300px"})


def test_image_filter_stage_counts_reasons_and_keeps_documents():
    imgs = real_images()
    tiny = encode(Image.new("RGB", (40, 40)), "PNG")
    wide = encode(Image.new("RGB", (900, 200)), "JPEG")
    bytes_by_url = {"u/rocket": imgs["skimage__rocket.jpg"], "u/tiny": tiny, "u/wide": wide,
                    "u/bomb": png_claiming(100_000, 100_000), "u/junk": b"<svg/>"}
    doc = WebDocument(
        texts=["Intro text.", None, None, None, None, None, None, "Outro."],
        images=[None, "u/rocket", "u/tiny", "u/wide", "u/bomb", "u/junk", "u/missing", None],
        metadata=[None, {"src": "u/rocket", "rendered_width": "50%"}, {"src": "u/tiny"}, {"src": "u/wide"},
                  {"src": "u/bomb"}, {"src": "u/junk"}, {"src": "u/missing"}, None],
        general_metadata={"url": "https://example.com/a"},
    )
    stats = FilterStats("image_filters")
    (out,) = image_filter([doc], "default", stats, image_bytes=bytes_by_url)
    assert out.images == [None, "u/rocket", None]
    assert out.texts == ["Intro text.", None, "Outro."]
    assert out.metadata[1] == {"src": "u/rocket", "rendered_width": 320, "original_width": 640,
                               "original_height": 427, "format": "jpeg"}
    assert out.doc_id == doc.doc_id
    assert stats.inputs["image"] == 6 and stats.outputs["image"] == 1
    assert dict(stats.dropped["image"]) == {
        "image:too_small_width": 1, "image:aspect_ratio": 1, "image:decompression_bomb": 1,
        "image:undecodable": 1, "image:missing_bytes": 1}
    # A callable works as the byte source, and metadata-only mode reads the sizes already there.
    (again,) = image_filter([doc], "default", None, image_bytes=bytes_by_url.get)
    assert again.images == out.images
    (meta_only,) = image_filter([out], "default")
    assert meta_only.images == out.images


def test_only_safe_decoders_identify_web_bytes():
    eps = encode(Image.new("RGB", (300, 300)), "EPS")  # decoding EPS would run Ghostscript
    assert probe_image(eps, DEFAULT).reason == "image:undecodable"
    opened = probe_image(eps, ImageFilterConfig(decoders=["EPS"], verify_decode=False))
    assert opened.ok and opened.format == "eps"
    assert check_image_node({}, DEFAULT, eps)[0] == "image:undecodable"


def test_profiles_match_code_defaults():
    assert image_config("default") == ImageFilterConfig()
    assert ORIGINAL.valid_formats == ["jpg", "jpeg", "png", "webp"] and ORIGINAL.allow_truncated
