"""The image filters' probe done once per distinct bytes, and its decode handed to NSFW
(:class:`filters.image.DecodedImages`): the same verdicts, metadata and NSFW pixels as probing and decoding
every image node afresh (the code before), on real photos, the bench corpus's images, every format and mode the
decoders take, animated images and hostile bytes."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image, ImageFile

from filters import image as image_mod
from filters.base import FilterStats
from filters.image import (
    DECODED,
    R_MISSING_BYTES,
    DecodedImages,
    ImageFilterConfig,
    check_image_node,
    decode_signature,
    image_config,
    image_filter,
)
from filters.nsfw import NsfwConfig, OpenNsfwClassifier, decode_rgb
from obelics.document import WebDocument
from tests.conftest import shared_path

DEFAULT = ImageFilterConfig()
ORIGINAL = image_config("obelics-2023")
CAP = 89_478_485


@pytest.fixture(autouse=True)
def fresh_store():
    """Each test starts (and leaves) the process's store empty and keeping images."""
    DECODED.clear()
    DECODED.armed = True
    yield
    DECODED.clear()
    DECODED.armed = True


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@lru_cache(maxsize=1)
def samples() -> dict[str, bytes]:
    """name -> bytes: the shared photos, every format x mode the safe decoders read, animated images, a JPEG
    big enough for both drafts to choose 1/8, and hostile bytes (truncated, corrupt, bombs, junk)."""
    d = shared_path("data", "images")
    out = {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix in (".jpg", ".png")}
    photo = Image.open(io.BytesIO(out["skimage__astronaut.png"])).convert("RGB").resize((400, 300))
    for mode in ("RGB", "RGBA", "L", "LA", "P", "CMYK"):
        img = photo.convert(mode)
        for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "ICO"):
            try:
                out[f"{mode}.{fmt}"] = encode(img, fmt)
            except (OSError, ValueError, KeyError):  # a mode the format does not write
                pass
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT), photo.rotate(180)]
    out["animated.webp"] = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50)
    out["animated.gif"] = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    out["huge.jpeg"] = encode(photo.resize((4160, 4100)), "JPEG", quality=60)
    out["mpo-like.jpeg"] = encode(photo, "JPEG", progressive=True)
    for name in ("RGB.WEBP", "RGB.GIF", "RGB.JPEG", "animated.webp", "huge.jpeg", "RGB.TIFF"):
        data = out[name]
        out[f"truncated-{name}"] = data[: len(data) * 2 // 3]
        broken = bytearray(data)
        broken[len(data) // 2: len(data) // 2 + 48] = b"\xa5" * 48
        out[f"corrupt-{name}"] = bytes(broken)
    out["bomb.png"] = b"\x89PNG\r\n\x1a\n" + bytes.fromhex("0000000d49484452000186a0000186a00800000000") + b"\0" * 8
    out["junk"] = b"<html>not an image</html>"
    out["empty"] = b""
    return out


def corpus_samples() -> dict[str, bytes]:
    """The image records of the bench corpus's WARCs (the shared WARCs)."""
    shared_path("data", "warc")
    from bench.bench_nsfw import corpus_images

    return {f"corpus-{i}": b for i, b in enumerate(corpus_images(1))}


def documents(blobs: dict[str, bytes]) -> tuple[list[WebDocument], dict[str, bytes]]:
    """Documents over ``blobs``: each image in two documents, under a second URL too, and one missing URL."""
    by_url = {f"u/{k}": v for k, v in blobs.items()} | {f"copy/{k}": v for k, v in blobs.items()}
    urls = list(by_url) + ["u/missing"]
    docs = []
    for i in range(0, len(urls), 3):
        batch = urls[i:i + 3] + urls[max(0, i - 3):i][:1]  # the previous document's first image again
        docs.append(WebDocument(texts=["t"] + [None] * len(batch), images=[None] + batch,
                                metadata=[None] + [{"src": u} for u in batch], general_metadata={"url": f"d{i}"}))
    return docs, by_url


def expected(docs: list[WebDocument], by_url: dict[str, bytes], cfg: ImageFilterConfig):
    """The image filter's output and reasons with a fresh probe per image node (no memo, no handoff)."""
    out, reasons = [], {}
    for doc in docs:
        images, metadata = [], []
        for url, meta in zip(doc.images, doc.metadata):
            if url is None:
                images.append(None)
                metadata.append(meta)
                continue
            data = by_url.get(url)
            verdict, new = (R_MISSING_BYTES, meta) if data is None else check_image_node(meta, cfg, data)
            if verdict:
                reasons[verdict] = reasons.get(verdict, 0) + 1
            else:
                images.append(url)
                metadata.append(new)
        out.append((images, metadata))
    return out, reasons


def check_all(blobs: dict[str, bytes]) -> None:
    docs, by_url = documents(blobs)
    clf = OpenNsfwClassifier(NsfwConfig(model="fp32", threads=1))
    for cfg in (DEFAULT, ORIGINAL):
        want, reasons = expected(docs, by_url, cfg)
        stats = FilterStats("image_filters")
        got = image_filter(docs, cfg, stats, image_bytes=by_url)
        assert [(d.images, d.metadata) for d in got] == want
        assert {k: v for k, v in stats.dropped.get("image", {}).items()} == reasons
        # NSFW's decode and pixels of every kept image: equal to a decode with nothing handed on.
        kept = list(dict.fromkeys(by_url[u] for d in got for u in d.images if u is not None))
        shared = [(decode_rgb(b, CAP), clf.pixels(b)) for b in kept]
        DECODED.clear()
        for b, (img, px) in zip(kept, shared):
            ref_img, ref_px = decode_rgb(b, CAP), clf.pixels(b)
            assert (img is None) == (ref_img is None) and (px is None) == (ref_px is None)
            if ref_img is not None:
                assert img.mode == ref_img.mode == "RGB" and img.size == ref_img.size
                assert np.array_equal(np.asarray(img), np.asarray(ref_img))
                assert np.array_equal(px, ref_px)
        DECODED.clear()


def test_formats_modes_animated_and_hostile_images_give_the_same_results():
    check_all(samples())


def test_the_bench_corpus_images_give_the_same_results():
    check_all(corpus_samples())


@pytest.fixture
def decodes(monkeypatch):
    """Counts real decodes: ``ImageFile.load`` entered with tiles still to decode."""
    count = {"n": 0}
    load = ImageFile.ImageFile.load

    def counting(self):
        if self.tile:
            count["n"] += 1
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting)
    return count


@pytest.mark.parametrize("name,total", [
    ("RGB.WEBP", 1), ("RGBA.WEBP", 1), ("animated.webp", 1), ("P.GIF", 1), ("animated.gif", 1), ("RGB.BMP", 1),
    ("RGB.TIFF", 1), ("huge.jpeg", 1),
    ("RGB.JPEG", 2), ("RGB.PNG", 1),  # the probe's 1/8 JPEG is not NSFW's; a PNG's probe only checks chunks
])
def test_the_probes_decode_is_nsfws_when_it_is_the_same_decode(decodes, name, total):
    data = samples()[name]
    decodes["n"] = 0
    doc = WebDocument(texts=[None], images=["u"], metadata=[{}], general_metadata={"url": "d"})
    cfg = ImageFilterConfig(valid_formats=DEFAULT.valid_formats + ["bmp", "tiff"])
    (out,) = image_filter([doc], cfg, image_bytes={"u": data})
    assert out.images == ["u"]
    img = decode_rgb(data, CAP)
    assert img is not None and decodes["n"] == total
    DECODED.clear()
    ref = decode_rgb(data, CAP)
    assert np.array_equal(np.asarray(img), np.asarray(ref))


def test_each_distinct_bytes_is_probed_once_per_chunk(monkeypatch):
    blobs = samples()
    data, other = blobs["RGB.JPEG"], blobs["RGB.WEBP"]
    opened = []
    real_open = Image.open

    def counting(fp, *a, **kw):
        opened.append(1)
        return real_open(fp, *a, **kw)

    monkeypatch.setattr(Image, "open", counting)
    docs = [WebDocument(texts=[None, None], images=["a", f"b{i}"], metadata=[{}, {}], general_metadata={"url": f"{i}"})
            for i in range(4)]  # "a" in every document; b0..b3 the same bytes under four URLs
    out = image_filter(docs, "default", image_bytes={"a": other} | {f"b{i}": data for i in range(4)})
    assert [d.images for d in out] == [d.images for d in docs]
    assert len(opened) == 2
    DECODED.clear()


def test_decoded_images_keep_within_budget_and_hand_on_only_the_same_decode():
    photo = Image.new("RGB", (300, 200), (10, 20, 30))
    blobs = {k: encode(photo, k) for k in ("WEBP", "GIF", "JPEG")}
    store = DecodedImages(budget=300 * 200 * 4 + 300 * 200 + len(blobs["WEBP"]) + len(blobs["GIF"]))  # RGB, P

    def loaded(data):
        img = Image.open(io.BytesIO(data))
        sig = decode_signature(img)
        img.load()
        return sig, img

    sig_w, webp = loaded(blobs["WEBP"])
    sig_g, gif = loaded(blobs["GIF"])
    sig_j, jpeg = loaded(blobs["JPEG"])
    assert store.put(blobs["WEBP"], sig_w, webp) and store.put(blobs["GIF"], sig_g, gif)
    assert not store.put(blobs["JPEG"], sig_j, jpeg)  # a JPEG smaller than 8 x 512: NSFW's draft differs
    assert not DecodedImages().put(blobs["JPEG"], sig_j, jpeg)
    assert not store.put(b"x" * 10, sig_w, webp)  # over the budget
    assert store.take(blobs["WEBP"], sig_g) is None and len(store) == 2  # another decode: kept, not handed on
    kept = store.take(blobs["WEBP"], sig_w)  # its pixels, not the opened file (whose decoder is let go)
    assert kept is not webp and kept.mode == webp.mode and np.array_equal(np.asarray(kept), np.asarray(webp))
    assert store.take(blobs["WEBP"], sig_w) is None
    assert store.used == 300 * 200 + len(blobs["GIF"]) and store.hits == 1
    store.clear()
    assert len(store) == 0 and store.used == 0


def test_the_image_filters_step_clears_what_nsfw_did_not_take():
    data = samples()["RGB.WEBP"]
    doc = WebDocument(texts=[None], images=["u"], metadata=[{}], general_metadata={"url": "d"})
    image_filter([doc], "default", image_bytes={"u": data})
    assert len(DECODED) == 1
    image_filter([doc], "default", image_bytes={})  # the next unit: its bytes are missing, the store emptied
    assert len(DECODED) == 0
    # The step's own module global, not a copy: NSFW imports the same object.
    from filters import nsfw

    assert nsfw.DECODED is image_mod.DECODED


def test_images_are_kept_only_while_a_decoder_asks_for_them():
    data = samples()["RGB.WEBP"]
    doc = WebDocument(texts=[None], images=["u"], metadata=[{}], general_metadata={"url": "d"})
    image_filter([doc], "default", image_bytes={"u": data})
    assert len(DECODED) == 1  # kept; no decoder asks (NSFW off, or in a later stage)
    image_filter([doc], "default", image_bytes={"u": data})
    assert len(DECODED) == 0 and not DECODED.armed  # the next unit: nothing kept
    assert decode_rgb(data, CAP) is not None  # NSFW asks (and decodes itself)
    image_filter([doc], "default", image_bytes={"u": data})
    assert DECODED.armed and len(DECODED) == 1
    assert decode_rgb(data, CAP) is not None and len(DECODED) == 0
    image_filter([doc], "default", image_bytes={"u": data})
    assert DECODED.armed and len(DECODED) == 1
