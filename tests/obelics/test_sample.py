"""The embedded sample: the project's own pages and real photos, built into a reproducible WARC."""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest
from PIL import Image

from obelics.records import ReadStats
from obelics.sample import sample_warc_path
from obelics.sample.build_sample import IMAGES, PAGES_DIR, build_sample, read_manifest, referenced_images
from obelics.warc import iter_html_records, iter_image_records


@pytest.fixture(scope="module")
def warc(tmp_path_factory):
    return build_sample(tmp_path_factory.mktemp("sample") / "sample.warc.gz")


def _words(html: str) -> int:
    body = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", html)
    return len(re.sub(r"<[^>]+>", " ", body).split())


def test_manifest_pages_exist_with_real_prose():
    pages = read_manifest()
    assert 6 <= len(pages) <= 8
    assert len({p.url for p in pages}) == len(pages)
    for p in pages:
        assert p.url.startswith("https://sample.obelics.example/")
        html = (PAGES_DIR / p.file).read_text(encoding="utf-8")
        assert 150 <= _words(html) <= 700, p.file
    assert {p.file for p in pages} == {f.name for f in PAGES_DIR.glob("*.html")}


def test_build_is_byte_reproducible(warc, tmp_path):
    again = build_sample(tmp_path / "again.warc.gz")
    assert again.read_bytes() == warc.read_bytes()


def test_warc_holds_every_page_and_skips_the_rest(warc):
    pages = read_manifest()
    stats = ReadStats()
    recs = list(iter_html_records(warc, None, stats))
    assert [r.url for r in recs] == [p.url for p in pages]
    assert stats.skipped == Counter({"request": len(pages) + 2 + len(IMAGES), "image": len(IMAGES),
                                     "http_status": 2, "warcinfo": 1})
    for r, p in zip(recs, pages):
        assert r.html == (PAGES_DIR / p.file).read_text(encoding="utf-8")
        assert r.capture_date.startswith("2023-03-14T10:") and r.record_id.startswith("<urn:uuid:")
    coffee = next(r for r in recs if "pour-over" in r.url)
    assert coffee.http_charset is None and coffee.charset == "cp1252" and "café" in coffee.html


def test_every_referenced_image_is_in_the_warc_and_decodes(warc):
    images = {i.url: i for i in iter_image_records(warc)}
    assert set(images) == set(IMAGES)
    referenced = set()
    for p in read_manifest():
        referenced.update(referenced_images((PAGES_DIR / p.file).read_text(encoding="utf-8"), p.url))
    assert referenced == set(IMAGES)  # no image record without a page that uses it
    formats, sizes = Counter(), {}
    for url, rec in images.items():
        im = Image.open(io.BytesIO(rec.payload))
        im.load()
        formats[im.format] += 1
        sizes[url] = im.size
        assert rec.content_type == Image.MIME[im.format]
        spec = IMAGES[url]
        if spec.size:
            assert im.size == spec.size
    assert {"JPEG", "PNG", "WEBP"} <= set(formats)
    # something for the image filters to drop: a 1x1 pixel and a strongly non-square banner
    assert (1, 1) in sizes.values()
    assert any(w / h >= 5 for w, h in sizes.values())
    assert sizes["https://img.sample.obelics.example/space/hubble-deep-field-1000.jpg"] == (1000, 872)


def test_relative_base_and_srcset_urls_are_resolved():
    html = (PAGES_DIR / "history-camera-obscura.html").read_text(encoding="utf-8")
    assert referenced_images(html, "https://sample.obelics.example/history/camera-obscura.html") == [
        "https://sample.obelics.example/history/assets/camera-512.png"]
    html = (PAGES_DIR / "space-life-aboard.html").read_text(encoding="utf-8")
    urls = referenced_images(html, "https://sample.obelics.example/space/life-aboard.html")
    assert "https://img.sample.obelics.example/space/astronaut-256.webp" in urls
    assert "https://img.sample.obelics.example/space/rocket-launch-480.jpg" in urls
    assert not any(u.startswith("data:") for u in urls)


def test_sample_warc_path_builds_on_demand(monkeypatch, tmp_path):
    import obelics.sample.build_sample as bs

    monkeypatch.delenv("OBELICS_SAMPLE_WARC", raising=False)
    monkeypatch.setattr(bs, "DEFAULT_OUT", tmp_path / "b" / "sample.warc.gz")
    path = sample_warc_path()
    assert path == tmp_path / "b" / "sample.warc.gz" and path.stat().st_size > 500_000
    mtime = path.stat().st_mtime_ns
    assert sample_warc_path() == path and path.stat().st_mtime_ns == mtime  # fresh: not rebuilt
