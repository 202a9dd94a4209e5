"""``_walk.utf8_valid`` (the ``default`` page input's UTF-8 test, in C) says what ``bytes.decode("utf-8")`` says."""

from __future__ import annotations

import itertools
import random

import pytest

from obelics import budget
from obelics.extract import _utf8_valid
from tests.conftest import compiled_or_skip


def _python(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.fixture(scope="module")
def valid():
    return compiled_or_skip(budget._compiled("utf8_valid"), "no C UTF-8 test")


# bytes around every boundary of Unicode's well-formed table (leads, second-byte limits, continuations)
EDGES = sorted({0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC,
                0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF})


def test_every_sequence_of_edge_bytes_at_every_alignment(valid):
    """All 1- to 4-byte sequences of the edge bytes, after 0-9 ASCII bytes and before 0-9 (the 8-byte ASCII
    steps meet them at every offset), and cut short at the end."""
    seqs = [bytes(p) for k in range(1, 5) for p in itertools.product(EDGES, repeat=k)]
    checked = 0
    for pre, post in ((0, 0), (7, 3), (8, 0), (9, 9)):
        for s in seqs:
            b = b"a" * pre + s + b"z" * post
            assert valid(b) == _python(b), b
            checked += 1
    assert checked == 4 * sum(len(EDGES) ** k for k in range(1, 5))


def test_every_two_byte_value_and_random_text(valid):
    for a in range(256):
        for b in range(256):
            x = bytes([a, b])
            assert valid(x) == _python(x) and valid(b"abcdefgh" + x) == _python(b"abcdefgh" + x)
    rnd = random.Random(17)
    alphabet = "aé€😀\n <>".encode() + bytes([0x80, 0xC0, 0xED, 0xF4, 0xFF])
    for _ in range(20000):
        b = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        assert valid(b) == _python(b), b
    text = "x" * 100 + "é€😀\U0010FFFF" * 50
    assert valid(text.encode()) and valid(b"") and not valid(text.encode()[:-1])


def test_shared_pages_and_the_fallback(valid, monkeypatch):
    """The shared HTML pages, and each with a byte of it flipped at a random place (invalid or not)."""
    from tests.conftest import shared_path

    pages = [p.read_bytes() for p in sorted(shared_path("data", "html").glob("*.html"))]
    assert len(pages) > 50
    rnd = random.Random(5)
    for b in list(pages):
        k = rnd.randrange(len(b))
        pages.append(b[:k] + bytes([b[k] ^ rnd.choice([0x80, 0xC0, 0x40, 0xFF])]) + b[k + 1:])
    assert {_python(b) for b in pages} == {True, False}
    for b in pages:
        assert valid(b) == _python(b) == _utf8_valid(b)
    monkeypatch.setattr(budget, "_compiled", lambda name: None)  # the walk not built: decoding decides
    assert [_utf8_valid(b) for b in pages] == [_python(b) for b in pages]
    assert _utf8_valid(b"\xff") is False and _utf8_valid("é".encode()) is True
