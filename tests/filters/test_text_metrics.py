"""Text metrics: the test vectors of docs/reference.md §11 and the definitions of §5.1-§5.2."""

from __future__ import annotations

import string

import pytest

from filters.text_metrics import (
    character_repetition_ratio,
    get_words,
    punctuation_ratio,
    special_character_ratio,
    standardize_whitespace,
    text_metrics,
    word_repetition_ratio,
)
from filters.wordlists import SPECIAL_CHARACTERS, load_wordlist
from tests.conftest import shared_path


@pytest.fixture(scope="module")
def stopwords():
    shared_path("data", "wordlists", "stopwords_en.txt")  # the original list (skips without ../shared)
    return load_wordlist("stopwords", "obelics-2023")


VECTORS = [
    # text, words, char-rep(10), word-rep(5), special, stop, punct (node, min 12 tokens)
    ("The quick brown fox jumps over the lazy dog. It was a sunny day, and the dog did not care at all!",
     22, 0.000, 0.000, 0.247, 0.545, 0.120),
    ("Share on Facebook Tweet Pin Email", 6, 0, 0, 0.152, 0.167, 1.0),
    (" ".join(["Buy now"] + ["buy now"] * 7), 16, 0.389, 1.000, 0.238, 0.000, 0.000),
    ("Photo: (c) 2020 -- 12/03/2020 -- 10:45 AM #### $$$", 3, 0, 0, 0.840, 0.333, 1.0),
]


@pytest.mark.parametrize("text,words,char_rep,word_rep,special,stop,punct", VECTORS)
def test_reference_vectors(stopwords, text, words, char_rep, word_rep, special, stop, punct):
    m = text_metrics(text, stopwords, (), char_rep_n=10, word_rep_n=5, punct_min_tokens=12)
    assert m["words"] == words
    assert round(m["char_rep"], 3) == char_rep
    assert round(m["word_rep"], 3) == word_rep
    assert round(m["special"], 3) == special
    assert round(m["stop"], 3) == stop
    assert round(m["punct"], 3) == punct


def test_special_characters_set():
    assert len(SPECIAL_CHARACTERS) == 4934
    for c in string.punctuation + string.digits + string.whitespace:
        assert c in SPECIAL_CHARACTERS
    for c in "’“”–…•€«»\u200b\ufeff\u00a0\u3000\u0091\u009d😀":
        assert c in SPECIAL_CHARACTERS, hex(ord(c[0]))
    for c in "a\u00e9\u200d\ufe0f":  # letters, ZWJ and VS16 are not special in the original
        assert c not in SPECIAL_CHARACTERS


def test_word_splitting():
    assert get_words("Hello,  World!\n\t“Quoted” -- 42 e-mail") == ["hello", "world", "quoted", "e-mail"]
    assert get_words("") == []
    assert get_words("a\u00a0b") == ["a\u00a0b"]  # only " ", \n and \t split


def test_character_repetition_k_rule():
    # 'aaaa...' (20 chars), n=10: one distinct 10-gram seen 11 times: D=1, S=0, k=min(1,1)=1 -> 1.0
    assert character_repetition_ratio("a" * 20, 10) == 1.0
    assert character_repetition_ratio("short", 10) == 0.0
    # all distinct: D - S = 0 -> k = 0
    assert character_repetition_ratio(string.ascii_letters, 10) == 0.0
    # "abab" n=2: grams ab, ba, ab -> D=2, S=1, k=min(1, 1)=1 -> 2/3
    assert character_repetition_ratio("abab", 2) == pytest.approx(2 / 3)


def test_word_repetition():
    assert word_repetition_ratio(["a", "b", "a", "b"], 2) == pytest.approx(2 / 3)
    assert word_repetition_ratio(["a"], 2) == 0.0


def test_special_and_punctuation():
    assert special_character_ratio("") == 0.0
    assert special_character_ratio("a b") == pytest.approx(1 / 3)
    assert punctuation_ratio("a, b.") == pytest.approx(0.5)
    assert punctuation_ratio("a, b.", min_tokens=12) == 1.0
    assert punctuation_ratio("", min_tokens=12) == 0.0
    assert punctuation_ratio("-- ** --") == 0.0


def test_standardize_whitespace():
    assert standardize_whitespace("a\u00a0b\u2009c\u3000d\ufffce") == "a b c d e"


def test_hashed_char_repetition_matches_counter():
    """Long texts take the NumPy hash path; it must give the Counter's value."""
    import math
    from collections import Counter

    def naive(text, n):
        counts = sorted(Counter(text[i:i + n] for i in range(len(text) - n + 1)).values(), reverse=True)
        k = min(math.isqrt(len(counts)), sum(1 for c in counts if c > 1))
        return sum(counts[:k]) / (len(text) - n + 1) if k > 0 else 0.0

    texts = [
        "The committee met on Tuesday. " * 40,
        "".join(chr(0x4E00 + (i * 7919) % 5000) for i in range(3000)),
        "ab" * 500 + "".join(chr(97 + (i * i) % 26) for i in range(800)),
        "😀 emoji and text " * 30 + "\u200b\ufeff" * 50,
    ]
    for t in texts:
        for n in (3, 10):
            assert character_repetition_ratio(t, n) == pytest.approx(naive(t, n), abs=1e-12)


def test_get_words_equals_the_plain_definition():
    """get_words (lower once, str.split when it agrees, ASCII specials stripped first) = the original's
    per-word definition, on every paragraph of the shared pages and on awkward strings."""
    import json

    from filters.text_metrics import _STRIP_CHARS

    def plain(text):
        pieces = [w for w in text.replace("\n", " ").replace("\t", " ").split(" ") if w]
        return [w for w in (p.lower().strip(_STRIP_CHARS) for p in pieces) if w]

    texts = ["", "a\rb c\x0bd\u2028e\x85f g\xa0h", "-- ... “x” 😀a😀 ,.,", "ΣΑΣ ΟΔΟΣ. σ", "İstanbul", "'quoted'!?"]
    for name in ("shared_html.jsonl", "shared_warc.jsonl"):
        for line in open(shared_path("data", "reference", name), encoding="utf-8"):
            texts.extend(p for t in json.loads(line)["texts"] if t for p in standardize_whitespace(t).split("\n\n"))
    assert len(texts) > 6000
    for t in texts:
        assert get_words(t) == plain(t), t[:80]


def test_count_words_equals_split():
    """``count_words`` (compiled where built: the report's word counts) is ``len(text.split())`` on every kind of
    string (ASCII, Latin-1, BMP, astral) and every character ``str.split`` treats as whitespace."""
    import os
    import sys

    from filters import text_metrics

    if os.environ.get("OBELICS_REQUIRE_COMPILED") == "1" and not os.environ.get("OBELICS_PURE_PYTHON"):
        assert text_metrics.count_words is not text_metrics._word_count_python
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert len(spaces) > 20
    texts = ["", " ", "a", " a b  c ", "x" * 7, "é à\xa0ç", "\u3000中文\u2028字\U0001F600 z", "a\x1cb\x1dc\x85d"]
    texts += ["w" + s + "v" + s for s in spaces] + ["".join(spaces), "a" + "".join(spaces) + "b"]
    texts += ["\u200b\ufeff\u180e"]  # not whitespace for str.split: one word
    for t in texts:
        assert text_metrics.count_words(t) == len(t.split()), repr(t)
    from obelics.html.reference_data import iter_reference_pages

    pages = list(iter_reference_pages(shared_path("data", "reference").parent.parent, which="both"))
    assert len(pages) == 225
    for p in pages:  # real pages in many scripts, decoded as the reader would
        t = p.payload.decode("utf-8", "replace")
        assert text_metrics.count_words(t) == len(t.split())
