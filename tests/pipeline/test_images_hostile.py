"""Image downloads against hostile servers (all on loopback): the address guard, bounded transfers,
redirect loops, repeated X-Robots-Tag lines and decompression bombs under re-encoding.

One img2dataset run with the test server allowed, one with nothing allowed (the same server refused).
"""

from __future__ import annotations

import pytest

from pipeline.images.config import ImagesConfig
from pipeline.images.download import download_images
from pipeline.images.loopback import LoopbackImageServer, skimage_photos

pytestmark = pytest.mark.slow  # three img2dataset runs (about 2 minutes)

PHOTOS = skimage_photos(("astronaut.png", "rocket.jpg"))
ALLOW = ["127.0.0.1/32"]  # only the test server's own address
CFG = ImagesConfig(processes_count=1, thread_count=8, timeout=2.0, retries=0, max_seconds=1.5,
                   max_bytes=1_000_000)
# other loopback addresses than the allowed 127.0.0.1, in every notation, and the usual SSRF targets
LITERALS = ["http://2130706434/a.jpg", "http://0x7f.2/a.jpg", "http://[::ffff:127.0.0.2]/a.jpg",
            "http://[::1]/a.jpg", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.jpg",
            "http://0177.0.0.2/a.jpg", "http://127.1.2.3:8080/a.jpg"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    with LoopbackImageServer(PHOTOS, drip_seconds=0.05, max_sleep=8) as srv:
        port = srv.httpd.server_address[1]
        urls = {
            "ok": srv.url("img", "astronaut.png"),
            "drip": srv.url("drip", "astronaut.png"),  # ~5 minutes at one byte per 0.05 s
            "huge": srv.url("huge", "x"),
            "loop": srv.url("loop", "x"),
            "to_other_loopback": srv.url("to", f"127.0.0.2:{port}/img/rocket.jpg"),
            "noai2": srv.url("noai2", "rocket.jpg"),
        }
        allowed = download_images(list(urls.values()) + LITERALS, tmp_path_factory.mktemp("allowed"), CFG, ALLOW)
        seen_allowed = list(srv.requests)
        sent = dict(srv.sent)
        del srv.requests[:]
        refused = download_images([urls["ok"], urls["loop"], f"http://localhost:{port}/img/rocket.jpg"],
                                  tmp_path_factory.mktemp("refused"), CFG, [])
        seen_refused = list(srv.requests)
    return {"urls": urls, "allowed": allowed, "refused": refused, "seen_allowed": seen_allowed,
            "seen_refused": seen_refused, "sent": sent}


def _reasons(table, urls):
    rows = table.lookup(urls, with_bytes=False)
    return {u: (rows[u]["status"], rows[u]["reason"]) for u in urls}


def test_allowed_server_serves(hostile):
    assert _reasons(hostile["allowed"], [hostile["urls"]["ok"]])[hostile["urls"]["ok"]] == ("success", None)


def test_same_server_refused_without_the_allow_list(hostile):
    got = _reasons(hostile["refused"], [hostile["urls"]["ok"], hostile["urls"]["loop"]])
    assert set(got.values()) == {("failed", "address_refused:loopback")}
    assert dict(hostile["refused"].counts()) == {"address_refused:loopback": 3}  # localhost too
    assert hostile["seen_refused"] == []  # not one request reached it


def test_literal_notations_refused_before_any_request(hostile):
    got = _reasons(hostile["allowed"], LITERALS)
    expected = {"http://169.254.169.254/latest/meta-data/": "address_refused:link_local",
                "http://10.0.0.1/a.jpg": "address_refused:private"}
    assert got == {u: ("failed", expected.get(u, "address_refused:loopback")) for u in LITERALS}


def test_redirect_to_a_refused_address_is_refused(hostile):
    url = hostile["urls"]["to_other_loopback"]
    assert _reasons(hostile["allowed"], [url])[url] == ("failed", "address_refused:loopback")


def test_redirect_loop_is_labelled(hostile):
    url = hostile["urls"]["loop"]
    assert _reasons(hostile["allowed"], [url])[url] == ("failed", "redirect_loop")


def test_dripping_server_stopped_by_the_whole_download_deadline(hostile):
    url = hostile["urls"]["drip"]
    assert _reasons(hostile["allowed"], [url])[url] == ("failed", "timeout")
    row = hostile["allowed"].lookup([url], with_bytes=False)[url]
    assert "whole download" in row["error_message"]
    assert hostile["sent"]["/drip/astronaut.png"] < len(PHOTOS["astronaut.png"]) // 10


def test_endless_body_stopped_at_max_bytes(hostile):
    url = hostile["urls"]["huge"]
    assert _reasons(hostile["allowed"], [url])[url] == ("failed", "too_large_bytes")
    # the transfer stopped near the cap (socket buffers hold a few MB at most), not after 8 s of sending
    assert hostile["sent"]["/huge/x"] < 20 * CFG.max_bytes


def test_repeated_x_robots_tag_lines_each_read(hostile):
    url = hostile["urls"]["noai2"]
    assert _reasons(hostile["allowed"], [url])[url] == ("failed", "optout:x-robots-tag")


def test_bomb_refused_before_reencoding(tmp_path):
    from obelics.config import load_profile

    cfg = load_profile("obelics-2023").section("images", ImagesConfig)
    cfg.processes_count, cfg.thread_count, cfg.timeout = 1, 2, 2.0
    assert cfg.reencode
    with LoopbackImageServer(PHOTOS) as srv:
        urls = [srv.url("bomb", "x"), srv.url("img", "rocket.jpg")]
        table = download_images(urls, tmp_path, cfg, ALLOW)
    rows = table.lookup(urls, with_bytes=False)
    assert rows[urls[0]]["reason"] == "too_many_pixels"
    assert "declared" in rows[urls[0]]["error_message"]  # our header check, not img2dataset's decode
    assert rows[urls[1]]["status"] == "success"


def test_final_answers_are_not_requested_twice(tmp_path):
    cfg = ImagesConfig(processes_count=1, thread_count=2, timeout=2.0, retries=1)
    with LoopbackImageServer(PHOTOS) as srv:
        urls = [srv.url("status", "404"), srv.url("noai", "rocket.jpg"), srv.url("status", "500")]
        table = download_images(urls, tmp_path, cfg, ALLOW)
        paths = [p for p, _ in srv.requests]
    assert {u: r["reason"] for u, r in table.lookup(urls, with_bytes=False).items()} == {
        urls[0]: "http_404", urls[1]: "optout:x-robots-tag", urls[2]: "http_500"}
    assert paths.count("/status/404") == 1 and paths.count("/noai/rocket.jpg") == 1
    assert paths.count("/status/500") == 2  # a server error may pass: retried
