"""Opt-out end to end against loopback websites (127.0.0.1 only) and a loopback Spawning stand-in.

Each site is one origin with its own robots.txt / tdmrep.json / ai.txt; images and pages carry
X-Robots-Tag, tdm-reservation headers and <meta> tags. Image headers are collected by actually
downloading the images, as the download stage does.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from filters.base import FilterStats
from filters.optout import (
    OptOutChecker,
    OptOutConfig,
    OptOutError,
    optout_filter_documents,
    optout_filter_images,
)
from filters.optout.config import HttpConfig, SpawningConfig
from obelics.document import WebDocument
from tests.filters.optout_server import Site, spawning_route

TOKEN = "test-token"
JPEG = (200, [("Content-Type", "image/jpeg")], b"\xff\xd8\xff\xe0fakejpeg")


def page(meta: str = "", headers=()) -> tuple:
    html = f"<html><head><title>t</title>{meta}</head><body><p>Some text.</p></body></html>".encode()
    return 200, [("Content-Type", "text/html"), *headers], html


@pytest.fixture(autouse=True)
def _allow_test_server(monkeypatch):
    """The address guard (obelics.netguard) refuses loopback: this module's own server is let through."""
    monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")


@pytest.fixture(scope="module")
def sites():
    s = {
        "open": Site({
            "/robots.txt": (200, [], b"User-agent: *\nAllow: /\n"),
            "/img/ok.jpg": JPEG,
            "/img/noai.jpg": (200, [("X-Robots-Tag", "noai"), *JPEG[1]], JPEG[2]),
            "/img/scoped.jpg": (200, [("X-Robots-Tag", "obelics-toolkit: noimageai")], JPEG[2]),
            "/img/otherbot.jpg": (200, [("X-Robots-Tag", "otherbot: noai")], JPEG[2]),
            "/img/multi.jpg": (200, [("X-Robots-Tag", "nofollow"), ("X-Robots-Tag", "noimageindex")], JPEG[2]),
            "/img/tdm.jpg": (200, [("tdm-reservation", "1"), ("tdm-policy", "https://x/p")], JPEG[2]),
            "/img/optout-me.jpg": JPEG,
            "/page.html": page(),
            "/page-noai.html": page(headers=[("X-Robots-Tag", "noai")]),
            "/page-meta.html": page('<meta name="robots" content="noindex">'),
            "/page-agent-meta.html": page('<meta name="obelics-toolkit" content="noai">'),
            "/page-tdm-meta.html": page('<meta name="tdm-reservation" content="1">'),
            "/page-tdm-header.html": page(headers=[("tdm-reservation", "1")]),
            "/page-noimageai.html": page('<meta name="robots" content="noimageai">'),
            "/optout-me.html": page(),
        }),
        "tdmrep": Site({
            "/.well-known/tdmrep.json": (200, [("Content-Type", "application/json")], json.dumps([
                {"location": "/public/*", "tdm-reservation": 0},
                {"location": "/*", "tdm-reservation": 1, "tdm-policy": "https://example.com/policy"},
            ]).encode()),
            "/public/a.jpg": JPEG, "/img/a.jpg": JPEG, "/public/p.html": page(), "/p.html": page(),
        }),
        "robots": Site({
            "/robots.txt": (200, [], b"User-agent: *\nAllow: /\n\nUser-agent: obelics-toolkit\n"
                                    b"Disallow: /private/\nDisallow: /*.png$\n"),
            "/a.jpg": JPEG, "/a.png": JPEG, "/private/a.jpg": JPEG, "/p.html": page(), "/private/p.html": page(),
        }),
        "aitxt": Site({
            "/ai.txt": (200, [], b"# Spawning AI\nUser-Agent: *\nDisallow: *.jpg\n"),
            "/a.jpg": JPEG, "/a.webp": JPEG, "/p.html": page(),
        }),
        "broken": Site({"/robots.txt": (503, [], b"down"), "/a.jpg": JPEG, "/p.html": page()}),
        "nofiles": Site({"/robots.txt": (404, [], b""), "/a.jpg": JPEG, "/p.html": page()}),
        "badjson": Site({"/.well-known/tdmrep.json": (200, [], b"{not json"), "/a.jpg": JPEG}),
        "slow": Site({"/a.jpg": JPEG}, delay_s=1.0),
        "spawning": Site({
            "/ok": spawning_route(TOKEN, lambda u: "optout-me" in u),
            "/flaky": spawning_route(TOKEN, lambda u: "optout-me" in u, fail_first=2, status=503),
            "/limited": spawning_route(TOKEN, lambda u: "optout-me" in u, fail_first=1, status=429,
                                       retry_after="0"),
            "/down": spawning_route(TOKEN, lambda u: False, fail_first=10**6, status=500),
        }),
    }
    yield s
    for site in s.values():
        site.close()


def config(sites, endpoint: str = "/ok", **kw) -> OptOutConfig:
    spawning = SpawningConfig(endpoint=sites["spawning"].url(endpoint), retry_delays_s=[[3, 0.01]],
                              requests_per_second=200.0, timeout_s=5.0)
    return OptOutConfig(http=HttpConfig(timeout_s=5.0, max_workers=4), spawning=spawning, **kw)


def checker(cfg: OptOutConfig) -> OptOutChecker:
    return OptOutChecker(cfg, env={"SPAWNING_API_KEY": TOKEN})


def download_headers(urls):
    """What the download stage records: every response header, repeats kept, as (name, value) pairs."""
    out = {}
    for u in urls:
        with requests.get(u, timeout=5) as r:
            out[u] = list(r.raw.headers.items())
    return out


def doc_with_images(url: str, images: list[str]) -> WebDocument:
    texts, imgs, meta = ["A paragraph of text."], [None], [None]
    for u in images:
        texts.append(None)
        imgs.append(u)
        meta.append({"src": u})
    return WebDocument(texts, imgs, meta, {"url": url})


def test_images_every_signal(sites):
    o, t, r, a, n = sites["open"], sites["tdmrep"], sites["robots"], sites["aitxt"], sites["nofiles"]
    expected = {
        o.url("/img/ok.jpg"): None,
        o.url("/img/noai.jpg"): "optout:x-robots-tag:noai",
        o.url("/img/scoped.jpg"): "optout:x-robots-tag:noimageai",
        o.url("/img/otherbot.jpg"): None,
        o.url("/img/multi.jpg"): "optout:x-robots-tag:noimageindex",
        o.url("/img/tdm.jpg"): "optout:tdmrep:header",
        o.url("/img/optout-me.jpg"): "optout:spawning",
        t.url("/public/a.jpg"): None,
        t.url("/img/a.jpg"): "optout:tdmrep:well-known",
        r.url("/a.jpg"): None,
        r.url("/a.png"): "optout:robots.txt",
        r.url("/private/a.jpg"): "optout:robots.txt",
        a.url("/a.jpg"): "optout:ai.txt",
        a.url("/a.webp"): None,
        n.url("/a.jpg"): None,
    }
    urls = list(expected)
    headers = download_headers(urls)
    docs = [doc_with_images(o.url("/page.html"), urls[:8]), doc_with_images(t.url("/p.html"), urls[8:]),
            doc_with_images(o.url("/page.html"), urls[:2])]  # repeated URLs are checked once
    for s in sites.values():
        s.hits.clear()
        s.headers_seen.clear()
    stats = FilterStats("optout_images")
    chk = checker(config(sites))
    out = optout_filter_images(docs, headers, config(sites), stats, checker=chk)
    assert chk.check_urls(urls, "image", headers) == expected
    kept = [u for d in out for u in d.images if u]
    assert kept == [u for u in urls if expected[u] is None] + [urls[0]]
    assert len(out) == 3 and all(d.texts[0] == "A paragraph of text." for d in out)
    assert stats.inputs["image"] == 17 and stats.outputs["image"] == 7
    assert stats.dropped["image"]["optout:robots.txt"] == 2
    assert stats.dropped["image"]["optout:x-robots-tag:noai"] == 2   # the repeat counts per node
    # Per-origin files: fetched once per origin however many URLs and calls.
    assert o.hits["/robots.txt"] == 1 and o.hits["/.well-known/tdmrep.json"] == 1 and o.hits["/ai.txt"] == 1
    assert r.hits["/robots.txt"] == 1 and t.hits["/.well-known/tdmrep.json"] == 1
    # Our honest User-Agent is what the sites saw.
    assert r.headers_seen and all(h["user-agent"].startswith("obelics-toolkit/0.1") for h in r.headers_seen)
    # One Spawning request for the URLs still allowed after local and per-origin signals.
    sp = sites["spawning"]
    assert sp.hits["/ok"] == 1
    asked = sp.bodies[-1].decode().split("\n")
    assert o.url("/img/optout-me.jpg") in asked and o.url("/img/noai.jpg") not in asked
    assert sp.headers_seen[-1]["authorization"] == f"API {TOKEN}"


def test_documents_every_signal_and_page_image_optout(sites):
    o, t, r, a, n = sites["open"], sites["tdmrep"], sites["robots"], sites["aitxt"], sites["nofiles"]
    expected = {
        o.url("/page.html"): None,
        o.url("/page-noai.html"): "optout:x-robots-tag:noai",
        o.url("/page-meta.html"): "optout:meta-robots:noindex",
        o.url("/page-agent-meta.html"): "optout:meta-robots:noai",
        o.url("/page-tdm-meta.html"): "optout:tdmrep:meta",
        o.url("/page-tdm-header.html"): "optout:tdmrep:header",
        o.url("/page-noimageai.html"): None,
        o.url("/optout-me.html"): "optout:spawning",
        t.url("/public/p.html"): None,
        t.url("/p.html"): "optout:tdmrep:well-known",
        r.url("/p.html"): None,
        r.url("/private/p.html"): "optout:robots.txt",
        a.url("/p.html"): None,
        n.url("/p.html"): None,
    }
    html, headers = {}, {}
    for u in expected:
        with requests.get(u, timeout=5) as resp:
            html[u], headers[u] = resp.content, list(resp.raw.headers.items())
    docs = [doc_with_images(u, [o.url("/img/ok.jpg")]) for u in expected]
    # Headers may also travel inside the document (from the WARC record).
    docs[1].general_metadata["http_headers"] = headers.pop(o.url("/page-noai.html"))
    stats, rejects = FilterStats("optout_documents"), []
    out = optout_filter_documents(docs, config(sites), stats, checker=checker(config(sites)),
                                  headers_by_url=headers, html_by_url=html, rejects=rejects)
    assert {d.url for d in out} == {u for u, v in expected.items() if v is None}
    assert {(d.url, reason) for d, reason in rejects} == {(u, f"document:{v}") for u, v in expected.items() if v}
    noimage = next(d for d in out if d.url.endswith("/page-noimageai.html"))
    assert noimage.images == [None] and noimage.texts == ["A paragraph of text."]
    assert stats.dropped["image"]["optout:page:noimageai"] == 1
    assert stats.dropped["document"]["optout:spawning"] == 1
    assert sum(stats.dropped["document"].values()) == len(rejects) == 8


def test_unreadable_signals_follow_on_error(sites):
    b, bad, slow = sites["broken"], sites["badjson"], sites["slow"]
    urls = [b.url("/a.jpg"), bad.url("/a.jpg"), slow.url("/a.jpg")]
    cfg = config(sites, images=["tdmrep", "robots"])
    cfg.http.timeout_s = 0.3
    drop = checker(cfg).check_urls(urls, "image")
    assert drop == {urls[0]: "optout:error:robots", urls[1]: "optout:error:tdmrep",
                    urls[2]: "optout:error:tdmrep"}
    keep_cfg = config(sites, images=["tdmrep", "robots"], on_error="keep")
    keep_cfg.http.timeout_s = 0.3
    stats = FilterStats("optout_images")
    docs = [doc_with_images("http://127.0.0.1:9/p", urls)]
    (out,) = optout_filter_images(docs, {}, keep_cfg, stats, checker=checker(keep_cfg))
    assert out.images[1:] == urls  # kept by policy...
    assert stats.events["optout:error:robots"] == 2 and stats.events["optout:error:tdmrep"] == 2  # ...and counted
    with pytest.raises(OptOutError):
        checker(config(sites, images=["robots"], on_error="fail")).check_urls(urls[:1], "image")


def test_spawning_retries_rate_limits_and_failures(sites):
    o = sites["open"]
    urls = [o.url("/img/ok.jpg"), o.url("/img/optout-me.jpg")]
    only = {"images": ["spawning"], "documents": []}

    flaky = checker(config(sites, "/flaky", **only))
    assert flaky.check_urls(urls, "image") == {urls[0]: None, urls[1]: "optout:spawning"}
    assert flaky.spawning.counts["retries"] == 2 and flaky.spawning.counts["requests"] == 3

    limited = checker(config(sites, "/limited", **only))
    assert limited.check_urls(urls, "image")[urls[1]] == "optout:spawning"
    assert limited.spawning.counts["rate_limited"] == 1

    down = checker(config(sites, "/down", **only))
    assert down.check_urls(urls, "image") == dict.fromkeys(urls, "optout:error:spawning")
    assert down.errors["spawning"] == 2 and down.spawning.counts["failed_batches"] == 1
    assert down.spawning.counts["requests"] == 4  # 1 + 3 retries
    keep = checker(config(sites, "/down", on_error="keep", **only))
    assert keep.check_urls(urls, "image") == dict.fromkeys(urls)
    assert keep.errors["spawning"] == 2
    with pytest.raises(OptOutError):
        checker(config(sites, "/down", on_error="fail", **only)).check_urls(urls, "image")

    wrong_key = OptOutChecker(config(sites, "/ok", **only), env={"SPAWNING_API_KEY": "wrong"})
    assert wrong_key.check_urls(urls, "image") == dict.fromkeys(urls, "optout:error:spawning")
    assert wrong_key.spawning.counts["requests"] == 1  # 401 is not retried


def test_spawning_batches_padding_and_client_rate_limit(sites):
    sp = sites["spawning"]
    cfg = config(sites, "/ok", images=["spawning"], documents=[])
    single = checker(cfg)
    sp.bodies.clear()
    assert single.check_urls(["http://a.example/optout-me.jpg"], "image") == {
        "http://a.example/optout-me.jpg": "optout:spawning"}
    assert sp.bodies[-1] == b"http://a.example/optout-me.jpg\n"  # padded with "" as the API needs

    cfg = config(sites, "/ok", images=["spawning"], documents=[])
    cfg.spawning.batch_size, cfg.spawning.requests_per_second, cfg.spawning.concurrency = 3, 10.0, 4
    batched = checker(cfg)
    urls = [f"http://b.example/{i}.jpg" for i in range(16)] + ["http://b.example/optout-me.jpg"]
    sp.bodies.clear()
    start = time.monotonic()
    verdicts = batched.check_urls(urls, "image")
    elapsed = time.monotonic() - start
    assert [u for u, v in verdicts.items() if v] == ["http://b.example/optout-me.jpg"]
    assert len(sp.bodies) == 6 and batched.spawning.counts["requests"] == 6
    assert sorted(len(b.decode().split("\n")) for b in sp.bodies) == [2, 3, 3, 3, 3, 3]
    assert elapsed >= 0.45  # 6 request starts at 10/s: at least 5 intervals of 0.1 s


def test_fetch_outcomes_counted_per_source_and_reason(sites, monkeypatch):
    """robots.txt / tdmrep.json / ai.txt fetches that fail or are refused are counted, each by its reason."""
    b, bad, slow = sites["broken"], sites["badjson"], sites["slow"]
    big = Site({"/robots.txt": (200, [], b"User-agent: *\nDisallow: /private/\n" + b"#" * 5000), "/a.jpg": JPEG})
    # a redirect to another loopback address: the allow-list opens 127.0.0.1 only
    hop = Site({"/robots.txt": (302, [("Location", "http://127.0.0.2:9/robots.txt")], b""), "/a.jpg": JPEG})
    try:
        cfg = config(sites, images=["tdmrep", "robots", "ai_txt"], on_error="keep")
        cfg.http.timeout_s, cfg.http.max_bytes = 0.3, 1000
        stats = FilterStats("optout_images")
        urls = [b.url("/a.jpg"), bad.url("/a.jpg"), slow.url("/a.jpg"), big.url("/a.jpg"), hop.url("/a.jpg")]
        optout_filter_images([doc_with_images("http://127.0.0.1:9/p", urls)], {}, cfg, stats,
                             checker=checker(cfg))
        ev = {k: v for k, v in stats.events.items() if k.startswith("optout:fetch:")}
        assert ev["optout:fetch:robots:http_503"] == 1  # broken
        assert ev["optout:fetch:tdmrep:ok"] == 1  # badjson: read, then refused by the parser (an error)
        assert ev["optout:fetch:tdmrep:timeout"] == 1  # slow
        assert ev["optout:fetch:robots:too_big"] == 1  # big: cut at max_bytes, rules still read
        assert ev["optout:fetch:robots:address_refused:loopback"] == 1  # hop's redirect
        assert ev["optout:fetch:ai_txt:http_404"] >= 3
        assert stats.events["optout:error:robots"] >= 2  # broken's 503 and the refused redirect
        # without the allow-list, the test server itself is refused, and counted so
        monkeypatch.delenv("OBELICS_NET_ALLOW")
        refused = FilterStats("optout_images")
        optout_filter_images([doc_with_images("http://127.0.0.1:9/p", [big.url("/a.jpg")])], {}, cfg, refused,
                             checker=checker(cfg))
        assert {k: v for k, v in refused.events.items() if k.startswith("optout:fetch:")} == {
            f"optout:fetch:{s}:address_refused:loopback": 1 for s in ("tdmrep", "robots", "ai_txt")}
    finally:
        big.close()
        hop.close()
