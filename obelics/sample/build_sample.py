"""Build the embedded sample WARC: the project's own pages plus real photos, fully offline.

``python -m obelics.sample.build_sample -o build/sample/sample.warc.gz`` (``make sample``) writes a
deterministic WARC (fixed dates and record ids: the same bytes on every run with the same library
versions) holding a ``warcinfo`` record, then for every page of ``MANIFEST.tsv`` a ``request`` and a
``response`` record, a redirect and a 404 response (pages the reader must skip), and an image
``response`` for every image the pages reference (``src``, ``data-src``, ``srcset``, ``<source>``),
so that later stages can "download" the images offline. The photos are scikit-image's bundled data
files (``skimage/data``), re-encoded as JPEG, PNG or WEBP at the sizes the pages ask for; a 1x1
tracking pixel, a 728x90 banner and a 48 px avatar are there for the image filters to drop.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from obelics.paths import build_dir
from obelics.storage import write_bytes_atomic

HERE = Path(__file__).resolve().parent
PAGES_DIR = HERE / "pages"
MANIFEST = HERE / "MANIFEST.tsv"
DEFAULT_OUT = build_dir() / "sample" / "sample.warc.gz"  # build/ in a checkout, else the user cache
SITE = "https://sample.obelics.example"
WARC_FILENAME = "sample.warc.gz"
CRAWL_DATE = "2023-03-14T10:{:02d}:{:02d}Z"
HTTP_DATE = "Tue, 14 Mar 2023 10:00:00 GMT"


@dataclass(frozen=True)
class ImageSpec:
    """How one image URL is made from a scikit-image data file."""

    source: str  # file name in skimage/data
    size: tuple[int, int] | None = None  # resize to (width, height); None keeps the size
    crop: tuple[int, int, int, int] | None = None  # box applied before resizing
    fmt: str = "JPEG"  # JPEG, PNG, WEBP, GIF or RAW (the data file's own bytes)


IMG = "https://img.sample.obelics.example"
UP = f"{SITE}/wp-content/uploads"
IMAGES: dict[str, ImageSpec] = {
    # news article (header logo: too small; pixel: 1x1; banner: 728x90 advert)
    f"{SITE}/static/logo-64.png": ImageSpec("logo.png", (64, 64), fmt="PNG"),
    f"{IMG}/space/hubble-deep-field-1000.jpg": ImageSpec("hubble_deep_field.jpg", fmt="RAW"),
    f"{IMG}/space/rocket-640.jpg": ImageSpec("rocket.jpg", fmt="RAW"),
    f"{SITE}/pixel.gif?article=hubble-deep-field": ImageSpec("logo.png", (1, 1), fmt="GIF"),
    "https://ads.sample.obelics.example/banner-728x90.jpg": ImageSpec("coffee.png", (728, 90), crop=(0, 160, 600, 234)),
    # blog with figures
    f"{UP}/avatar-48.png": ImageSpec("astronaut.png", (48, 48), crop=(170, 20, 350, 200), fmt="PNG"),
    f"{UP}/2023/05/chelsea-451x300.jpg": ImageSpec("chelsea.png"),
    f"{UP}/2023/05/chelsea-300x200.jpg": ImageSpec("chelsea.png", (300, 200)),
    f"{UP}/2023/05/chelsea-face.png": ImageSpec("chelsea.png", (220, 220), crop=(110, 20, 350, 260), fmt="PNG"),
    # coffee guide
    f"{SITE}/guides/images/coffee-hero.webp": ImageSpec("coffee.png", fmt="WEBP"),
    f"{SITE}/guides/images/coffee-cup-400.jpg": ImageSpec("coffee.png", (400, 267)),
    # gallery
    f"{SITE}/gallery/thumbs/coins-320.jpg": ImageSpec("coins.png", (320, 252)),
    f"{SITE}/gallery/thumbs/motorcycle-320.jpg": ImageSpec("motorcycle_left.png", (320, 216)),
    f"{SITE}/gallery/thumbs/moon-320.png": ImageSpec("moon.png", (320, 320), fmt="PNG"),
    f"{SITE}/gallery/thumbs/brick-320.jpg": ImageSpec("brick.png", (320, 320)),
    f"{SITE}/gallery/thumbs/retina-320.jpg": ImageSpec("retina.jpg", (320, 320)),
    f"{SITE}/gallery/thumbs/horse-320.png": ImageSpec("horse.png", (320, 262), fmt="PNG"),
    # lazy-loaded space page
    f"{IMG}/space/astronaut-512.webp": ImageSpec("astronaut.png", fmt="WEBP"),
    f"{IMG}/space/astronaut-256.webp": ImageSpec("astronaut.png", (256, 256), fmt="WEBP"),
    f"{IMG}/space/astronaut-512.jpg": ImageSpec("astronaut.png"),
    f"{IMG}/space/astronaut-256.jpg": ImageSpec("astronaut.png", (256, 256)),
    f"{IMG}/space/rocket-launch-480.jpg": ImageSpec("rocket.jpg", (480, 320)),
    # history page (<base href>)
    f"{SITE}/history/assets/camera-512.png": ImageSpec("camera.png", fmt="RAW"),
    # German page
    f"{SITE}/de/bilder/mond-512.jpg": ImageSpec("moon.png"),
}

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True)
class Page:
    file: str
    url: str
    served_charset: str  # the bytes' encoding
    content_type: str  # the HTTP Content-Type header sent


def read_manifest(path: Path = MANIFEST) -> list[Page]:
    """The pages of the sample, in WARC order."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")]
    return [Page(r["file"], r["url"], r["served_charset"], r["content_type"]) for r in rows]


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def render_image(spec: ImageSpec) -> tuple[bytes, str]:
    """The image bytes and MIME type of ``spec`` (deterministic for a given Pillow)."""
    path = skimage_data_dir() / spec.source
    if spec.fmt == "RAW":
        data = path.read_bytes()
        return data, "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    from PIL import Image

    im = Image.open(path)
    im.load()
    if spec.crop:
        im = im.crop(spec.crop)
    if spec.size and im.size != spec.size:
        im = im.resize(spec.size, Image.Resampling.LANCZOS)
    if spec.fmt in ("JPEG", "WEBP") and im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    if spec.fmt == "GIF":
        im = im.convert("P")
    buf = io.BytesIO()
    kwargs = {"JPEG": {"quality": 85}, "WEBP": {"quality": 80, "method": 4}, "PNG": {}, "GIF": {}}[spec.fmt]
    im.save(buf, format=spec.fmt, **kwargs)
    return buf.getvalue(), MIME[spec.fmt]


_IMG_TAG = re.compile(r"<(?:img|source)\b[^>]*>", re.I)
_ATTR = re.compile(r"""\b(src|data-src|srcset)\s*=\s*(["'])(.*?)\2""", re.I | re.S)
_BASE = re.compile(r"""<base\b[^>]*href\s*=\s*["']([^"']+)""", re.I)


def referenced_images(html: str, page_url: str) -> list[str]:
    """Absolute URLs of the images a page references (src, data-src, every srcset candidate)."""
    base = _BASE.search(html)
    base_url = urljoin(page_url, base.group(1)) if base else page_url
    out: list[str] = []
    for tag in _IMG_TAG.findall(html):
        for name, _, value in _ATTR.findall(tag):
            cands = [c.strip().split()[0] for c in value.split(",") if c.strip()] if name.lower() == "srcset" else [value.strip()]
            for c in cands:
                if c and not c.startswith("data:"):
                    url = urljoin(base_url, c)
                    if url not in out:
                        out.append(url)
    return out


def _record_id(kind: str, url: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'obelics-sample:{kind}:{url}')}>"


def build_sample(out: str | Path = DEFAULT_OUT) -> Path:
    """Write the sample WARC to ``out`` (atomically) and return its path."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    pages = read_manifest()
    # every referenced image must exist in the WARC: the sample is the offline image source
    missing = []
    for p in pages:
        html = (PAGES_DIR / p.file).read_text(encoding="utf-8")
        missing += [u for u in referenced_images(html, p.url) if u not in IMAGES]
    if missing:
        raise ValueError(f"pages reference images with no ImageSpec: {missing}")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    clock = iter(range(10_000))

    def warc_headers(kind: str, url: str) -> dict:
        t = next(clock)
        return {"WARC-Record-ID": _record_id(kind, url), "WARC-Date": CRAWL_DATE.format(t // 60, t % 60)}

    info = writer.create_warcinfo_record(WARC_FILENAME, {
        "software": "obelics-toolkit build_sample",
        "format": "WARC File Format 1.1",
        "description": "Embedded sample: pages written for the project, photos from scikit-image's data",
        "isPartOf": "obelics-sample",
    })
    for k, v in warc_headers("warcinfo", WARC_FILENAME).items():
        info.rec_headers.replace_header(k, v)
    writer.write_record(info)

    def response(url: str, status: str, headers: list[tuple[str, str]], body: bytes):
        req = writer.create_warc_record(
            url, "request", payload=io.BytesIO(b""), warc_headers_dict=warc_headers("request", url),
            http_headers=StatusAndHeaders(f"GET {url.split('/', 3)[-1] if url.count('/') > 2 else ''} HTTP/1.1",
                                          [("Host", url.split("/")[2]), ("User-Agent", "obelics-sample/1.0")],
                                          is_http_request=True))
        writer.write_record(req)
        http = StatusAndHeaders(status, [("Date", HTTP_DATE), *headers, ("Content-Length", str(len(body)))],
                                protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http,
                                                      warc_headers_dict=warc_headers("response", url)))

    for p in pages:
        html = (PAGES_DIR / p.file).read_text(encoding="utf-8")
        response(p.url, "200 OK", [("Content-Type", p.content_type), ("Server", "sample")],
                 html.encode(p.served_charset))
    # pages the reader must skip: a redirect and a missing page (both text/html)
    response(f"{SITE}/news/hubble", "301 Moved Permanently",
             [("Location", pages[0].url), ("Content-Type", "text/html; charset=utf-8")],
             b'<html><body><a href="/news/2023/hubble-deep-field.html">Moved</a></body></html>')
    response(f"{SITE}/gallery/full/coins.html", "404 Not Found", [("Content-Type", "text/html; charset=utf-8")],
             b"<html><head><title>Not found</title></head><body><h1>404</h1></body></html>")
    for url, spec in IMAGES.items():
        data, mime = render_image(spec)
        response(url, "200 OK", [("Content-Type", mime), ("Cache-Control", "max-age=86400")], data)

    write_bytes_atomic(out, buf.getvalue())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", default=str(DEFAULT_OUT), help="output WARC (default: %(default)s)")
    args = ap.parse_args(argv)
    path = build_sample(args.out)
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {len(read_manifest())} pages, {len(IMAGES)} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
