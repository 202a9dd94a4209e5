"""The <meta> opt-out hint of filters.optout.stage: the regex tried only at the compiled candidates
(``_walk.meta_name_candidate``) answers as ``_META_HINT.search`` over the whole page does."""

from __future__ import annotations

import random

import pytest

from filters.optout import stage
from filters.optout.html_meta import MAX_CHARS
from tests.conftest import shared_path

_walk = pytest.importorskip("obelics.html._walk")

PIECES = [b"<meta", b"<META", b"<MeTa", b"<met", b"<", b">", b" ", b"\t", b"\n", b"name", b"NAME", b"nAmE", b"nam",
          b"=", b"\"", b"'", b"robots", b"ROBOTS", b"tdm-", b"obelics", b"content=x", b"x" * 60, b"<meta ",
          b"\xc3\xa9", b"\x00", b"<metaname=robots", b"name=robots>", b"property=og:title"]


def _search(data: bytes, end: int = 4 * MAX_CHARS) -> bool:
    return stage._META_HINT.search(data, 0, end) is not None


def _candidates(data: bytes, end: int) -> list[int]:
    """Every position the compiled finder gives, in order."""
    out, i = [], _walk.meta_name_candidate(data, 0, end, stage._META_HINT_WITHIN)
    while i >= 0:
        out.append(i)
        i = _walk.meta_name_candidate(data, i + 1, end, stage._META_HINT_WITHIN)
    return out


def test_the_regex_begins_as_the_finder_assumes():
    assert stage._META_HINT.pattern.startswith(rb"<meta[^>]{0,%d}name" % stage._META_HINT_WITHIN)
    assert stage._META_HINT.flags & 2  # re.I


def _check(data: bytes, end: int) -> None:
    assert stage._meta_hint(data) == _search(data), data[:300]
    found = set(_candidates(data, end))
    # a necessary condition: every position where the regex's start matches is a candidate
    starts = stage.re.compile(rb"<meta[^>]{0,200}name", stage.re.I)
    for p in range(len(data)):
        if starts.match(data, p, end):
            assert p in found, (p, data[:300])


def test_generated_pages_answer_as_the_regex():
    rng = random.Random(17)
    hits = 0
    for _ in range(6000):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 40)))
        _check(data, 4 * MAX_CHARS)
        hits += _search(data)
        end = rng.randrange(0, len(data) + 2)  # a cut end: the finder stops where the regex does
        assert (_walk.meta_name_candidate(data, 0, end, 200) >= 0) >= (stage._META_HINT.search(data, 0, end) is not None)
    assert 300 < hits < 5700  # both answers met often


def test_name_within_200_bytes_and_no_closing_bracket():
    assert stage._meta_hint(b"<meta" + b"x" * 200 + b"name=robots>")
    assert not stage._meta_hint(b"<meta" + b"x" * 201 + b"name=robots>")  # "name" past {0,200}
    assert stage._meta_hint(b"<p><meta" + b"x" * 200 + b"name=robots")  # "name" ending at the page's end
    assert not stage._meta_hint(b"<p><meta" + b"x" * 200 + b"nam")
    assert not stage._meta_hint(b"<meta x>name=robots>")
    assert stage._meta_hint(b"<META NAME = 'ROBOTS' content=noai>")
    assert not stage._meta_hint(b"")


def test_shared_pages_answer_as_the_regex():
    pages = [p.read_bytes() for p in sorted(shared_path("data", "html").glob("*.html"))]
    assert len(pages) > 50
    hits = 0
    for page in pages:
        assert stage._meta_hint(page) == _search(page)
        hits += _search(page)
        lowered = page.lower()  # the same page with every <meta name=...> turned into a robots one
        variant = lowered.replace(b'name="', b'name="robots').replace(b"name='", b"name='robots")
        assert stage._meta_hint(variant) == _search(variant)
        hits += _search(variant)
    assert hits > 10
