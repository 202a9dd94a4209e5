"""``resolve_url``'s plain-URL path (``obelics.html.urls._resolve_plain``) gives what urllib gives, or steps aside."""

from __future__ import annotations

import random

import pytest

from obelics.html import extract_default as ed
from obelics.html import urls
from obelics.html.urls import _resolve_plain, _resolve_urllib, resolve_url
from tests.conftest import shared_path


def _check(base: str, value: str) -> bool:
    """The plain path's URL equals urllib's; False when it steps aside."""
    value = value.strip(urls._WS)
    if not value or not base:
        return False
    plain = _resolve_plain(base, value)
    if plain is None:
        return False
    assert plain == _resolve_urllib(base, value), (base, value)
    return True


def _shared_pairs(monkeypatch) -> list[tuple[str, str]]:
    """Every (base, value) the ``default`` walk resolves on the HTML records of the shared WARCs."""
    from obelics.extract import iter_warc_documents

    seen = []

    def record(base, value):
        seen.append((base, value))
        return resolve_url(base, value)

    monkeypatch.setattr(ed, "resolve_url", record)
    for path in sorted(shared_path("data", "warc").glob("*.warc.gz")):
        for _ in iter_warc_documents(path):
            pass
    return seen


def test_every_image_url_of_the_shared_pages(monkeypatch):
    pairs = _shared_pairs(monkeypatch)
    taken = sum(_check(b, v) for b, v in pairs)
    assert len(pairs) > 400 and taken > 0.9 * len(pairs), (taken, len(pairs))
    # and the whole function is unchanged on them
    for b, v in pairs:
        assert resolve_url(b, v) == (_resolve_urllib(b, v.strip(urls._WS)) if v and v.strip(urls._WS)
                                     and not v.strip(urls._WS).startswith("#") else None)


BASES = ["http://a.example/dir/page.html", "https://a.example", "https://a.example/", "http://A.Example:8080/x/y?q=1",
         "https://a.example:65535/p", "https://a.example:65536/p", "https://a.example:0/p", "https://a.example:/p",
         "http://a.example/d;p?q", "http://a.example/p#frag", "HTTP://a.example/", "ftp://a.example/", "http://[::1]/x",
         "http://user@a.example/", "http://a.example/..", "http://a.example//x/", "http://a.example/x?", "http://-/"]
VALUES = ["/img/a.jpg", "/", "/a//b", "/a/./b.png", "/a/../b.png", "/.", "/..", "/a/.", "/.well-known/x.png",
          "/x?y=1", "/x?", "/x?#", "/x#f", "/x;p", "/x?a?b", "/x?a;b", "/a b.jpg", "/a\"b", "/a<b", "/a\\b", "/a{b",
          "/a^b", "/a|b", "/a`b", "/%20x", "/a:b@c", "/é.jpg", "/a\tb", "/a\nb", "/a\x01b",
          "//b.example/x.jpg", "//b.example", "//b.example:81/x", "//b.example:99999/x", "//", "///x", "//b.example?x",
          "//user@b.example/x", "//[::1]/x", "//B.EXAMPLE/x",
          "http://b.example/x.jpg", "https://b.example", "https://b.example?x=1", "https://b.example:443/x",
          "https://b.example:70000/", "http://b.example:/x", "HTTP://b.example/x", "http://b.example/a/../b",
          "http://b.example/x#y", "http://b.example/x?", "http://b.example/x;y", "http:/b.example/x", "http:b.example",
          "https://b..example/x", "https://b.example/x y", "ftp://b.example/x", "data:image/png;base64,xx",
          "javascript:x()", "img/a.jpg", "./a.jpg", "../a.jpg", "a:b", "?x=1", "#top", ".", "..", "a.jpg"]


@pytest.mark.parametrize("base", BASES)
def test_odd_bases_and_values(base):
    for value in VALUES:
        _check(base, value)


def test_generated_urls():
    """Random bases and values over the characters that matter to urllib's join and split."""
    rnd = random.Random(17)
    tails = ["/", "//", ".", "..", "/.", "/..", "?", "#", ";", ":", "@", "%", "a", "B", "0", "-", "_", "~", "[", "]",
             " ", "\t", "x.jpg", "=", "&", "'", "(", "é", "\\", "?q", "/p"]
    hosts = ["h.example", "H.example", "h.example:80", "h.example:99999", "h.example:", "", "u@h", "[::1]", "-", "."]

    plain = ["/", "a", "x.jpg", "/p", "?q", "-", "0", "=", "&", "%41", ":", "@", "~"]

    def tail():  # mostly plain characters, so that the plain path is taken often with an odd one among them
        return "".join(rnd.choice(plain if rnd.random() < 0.85 else tails) for _ in range(rnd.randint(0, 5)))

    taken = 0
    for _ in range(30000):
        base = rnd.choice(["http://", "https://", "HTTP://", "ftp://", ""]) + rnd.choice(hosts) + tail()
        value = rnd.choice(["/", "//", "http://", "https://", "", "./"]) + rnd.choice(hosts + [""] * 5) + tail()
        taken += _check(base, value)
    assert taken > 500  # the plain shapes are met often enough to be checked
