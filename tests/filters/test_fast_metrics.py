"""The compiled metrics (filters/fast_metrics.py) equal the straightforward ones of filters/text_metrics.py,
and the chain decides the same with and without them, on every paragraph and document of the shared pages."""

from __future__ import annotations

import json
import string

import pytest

from filters import fast_metrics
from filters.text_filters import TextFilter, TextFiltersConfig
from filters.text_metrics import (
    character_repetition_ratio,
    punctuation_ratio,
    special_character_ratio,
    standardize_whitespace,
)
from obelics.config import load_profile
from obelics.document import EOD_TOKEN, WebDocument
from tests.conftest import shared_path

pytestmark = pytest.mark.skipif(not fast_metrics.available(), reason="numba is not installed")


def _docs() -> list[WebDocument]:
    docs = []
    for name in ("shared_html.jsonl", "shared_warc.jsonl"):
        for line in open(shared_path("data", "reference", name), encoding="utf-8"):
            d = json.loads(line)
            meta = d["metadata"]
            meta = json.loads(meta) if isinstance(meta, str) else meta
            docs.append(WebDocument(list(d["texts"]), [i or None for i in d["images"]], list(meta), {"url": d["url"]}))
    return docs


def _assert_same(texts: list[str], n: int) -> None:
    st = fast_metrics.char_stats(texts, n)
    for i, t in enumerate(texts):
        assert st.char_rep(i) == character_repetition_ratio(t, n), t[:80]
        assert st.special_ratio(i) == special_character_ratio(t), t[:80]
        assert st.punct_ratio(i, 12) == punctuation_ratio(t, 12), t[:80]
        assert st.punct_ratio(i) == punctuation_ratio(t), t[:80]


EDGE = ["", "a", "abcdefghi", "abcdefghij", "a" * 20, "abab" * 40, string.printable * 3, "l'été, c'est ça! 12:30?",
        "😀😀😀😀😀😀😀😀😀😀😀😀 ok", "\ud800 lone surrogate \udfff", "İstanbul İİİİİİİİİİİİ", "__init__ x_y ''' ...",
        "٣٤٥ ١٢ — “quoted” … ¡hola! ¿qué?", "\x00\x01\t\n\r end", "ab" * 3000 + "c" * 500]


@pytest.mark.parametrize("n", [2, 5, 10])
def test_edge_cases(n):
    _assert_same(EDGE, n)
    for t in EDGE:
        _assert_same([t], n)


def test_every_shared_paragraph_and_document():
    docs = _docs()
    paragraphs, fulls = [], []
    for doc in docs:
        texts = [standardize_whitespace(t) for t in doc.texts if t]
        paragraphs.extend(p for t in texts for p in t.split("\n\n"))
        fulls.append("\n\n".join(texts))
    assert len(paragraphs) > 6000
    for k in range(0, len(paragraphs), 50):  # a document's worth at a time, as the chain calls it
        _assert_same(paragraphs[k:k + 50], 10)
    for k in range(0, len(fulls), 10):
        _assert_same(fulls[k:k + 10], 10)


@pytest.mark.parametrize("name", ["obelics-2023", "default"])
def test_chain_decides_the_same(name):
    cfg = load_profile(name).section("text_filters", TextFiltersConfig)
    fast, slow = TextFilter(cfg, fast=True), TextFilter(cfg, fast=False)
    for doc in _docs():
        for t in doc.texts:
            if t:
                paras = standardize_whitespace(t).split("\n\n")
                assert fast.paragraph_verdicts(paras) == [None if p == EOD_TOKEN
                                                          else slow.paragraph_verdict(p) for p in paras]
        a, b = fast.filter_nodes(doc), slow.filter_nodes(doc)
        assert a.texts == b.texts
        assert fast.document_verdict(a) == slow.document_verdict(b)


def test_word_repetition_many():
    from filters.fast_metrics import word_repetition_many
    from filters.text_metrics import get_words, word_repetition_ratio

    lists = [get_words(t) for t in EDGE] + [["a"] * 7, ["a", "b"] * 9, [], ["x"], "a b c d e a b c d e f".split()]
    for doc in _docs():
        texts = [standardize_whitespace(t) for t in doc.texts if t]
        lists.extend(get_words(p) for t in texts for p in t.split("\n\n"))
        lists.append(get_words("\n\n".join(texts)))
    for n in (1, 2, 5):
        for k in range(0, len(lists), 40):
            chunk = lists[k:k + 40]
            assert word_repetition_many(chunk, n) == [word_repetition_ratio(w, n) for w in chunk]


def test_words_many_equals_get_words():
    from filters.fast_metrics import Vocabularies, word_repetition_ids, words_many
    from filters.text_metrics import get_words, word_repetition_ratio
    from filters.wordlists import load_wordlist

    stop = load_wordlist("stopwords", "obelics-2023")
    edge = EDGE + ["ab AB ab. 😀a x y", "ΣΑΣ ΟΔΟΣ. σ", "a\rb c\x0bd\u2028e\x85f g\xa0h", "-- ... “x” 😀a😀", " \n\t ", "END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED"]
    groups = [edge, [e for e in edge if e]]
    for doc in _docs():
        texts = [standardize_whitespace(t) for t in doc.texts if t]
        groups.append([p for t in texts for p in t.split("\n\n")])
        groups.append(["\n\n".join(texts)])
    for texts in groups:
        w = words_many(texts, Vocabularies({"stop": stop, "none": set(), "odd": {"A", "x y", "", "ab", "😀a"}}))
        ref = [get_words(t) for t in texts]
        assert w.words == ref
        assert w.in_vocab["stop"] == [sum(x in stop for x in r) for r in ref]
        assert w.in_vocab["odd"] == [sum(x in {"A", "x y", "", "ab", "😀a"} for x in r) for r in ref]
        assert w.in_vocab["none"] == [0] * len(ref)
        assert word_repetition_ids(w.ids, list(map(len, ref)), 5) == [word_repetition_ratio(r, 5) for r in ref]


def test_document_words_from_the_batch():
    """Document-level word values taken from the paragraphs' batch equal those of get_words on the full text."""
    from filters.text_filters import _DocumentWords
    from filters.text_metrics import get_words, word_ratio, word_repetition_ratio

    cfg = load_profile("default").section("text_filters", TextFiltersConfig)
    chain = TextFilter(cfg, fast=True)
    used = 0
    for doc in _docs():
        after = chain.filter_nodes(doc)
        full = "\n\n".join(t for t in after.texts if t)
        dw = _DocumentWords(chain, full)
        used += dw.batch is not None
        words = get_words(full)
        assert dw.n == len(words)
        assert dw.repetition(5) == word_repetition_ratio(words, 5)
        assert dw.ratio("stop", chain.lists.stopwords) == word_ratio(words, chain.lists.stopwords)
        assert dw.ratio("flagged", chain.lists.flagged) == word_ratio(words, chain.lists.flagged)
    assert used > 100


def test_normalize_many_equals_normalize():
    from filters.fast_metrics import normalize_many
    from filters.perplexity import normalize

    edge = EDGE + [" ", "\n\n", "Line one 2023.\n\nLine “two”…", "a\u00a0b — c，d", "１", " \u00a0\u3000x\u0084 \t",
                   "\x00\x85abc\x9f", "٣٤ ５ 𝟘", "—", " — ", "．．…", "（ok）【x】％►"]
    assert normalize_many(edge) == [normalize(t) for t in edge]
    for doc in _docs():
        texts = [standardize_whitespace(t) for t in doc.texts if t]
        full = "\n\n".join(texts)
        assert normalize_many([full]) == [normalize(full)]
        paras = full.split("\n\n")
        assert normalize_many(paras) == [normalize(p) for p in paras]


@pytest.mark.parametrize("name", ["obelics-2023", "default"])
def test_filter_documents_same_as_one_by_one(name):
    """filter_documents runs the model checks (language id, perplexity) for all documents after the other
    checks; verdicts and counts equal judging each document alone with every check, fast metrics off."""
    from filters.base import FilterStats
    from filters.langid import LangIdConfig, LanguageFilter
    from filters.perplexity import PerplexityConfig, PerplexityFilter
    from filters.text_filters import filter_documents

    prof = load_profile(name)
    docs = _docs()
    stats, rejects = FilterStats("t"), []
    kept = filter_documents(docs, prof, stats, rejects)
    slow = TextFilter(prof.section("text_filters", TextFiltersConfig),
                      LanguageFilter(prof.section("langid", LangIdConfig)),
                      PerplexityFilter(prof.section("perplexity", PerplexityConfig)), fast=False)
    expected_kept, expected_reasons, expected_stats = [], [], FilterStats("t")
    for doc in docs:
        reason = slow.image_count_verdict(doc)
        new = doc
        if reason is None:
            new = slow.filter_nodes(doc, expected_stats)
            reason = slow.document_verdict(new)
        if reason:
            expected_reasons.append(f"document:{reason}")
        else:
            expected_kept.append(new)
    assert [d.texts for d in kept] == [d.texts for d in expected_kept]
    assert [r for _, r in rejects] == expected_reasons
    assert {r for r in expected_reasons} & {"document:lang_id", "document:perplexity"}  # the models decided some
    assert stats.dropped.get("paragraph") == expected_stats.dropped.get("paragraph")


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_document_metrics_fast_equal_reference(profile):
    """The report's document metrics from the compiled kernels: the plain functions' values and types
    (JSON text equal), on every shared document, the edge texts and a document without text."""
    fast = TextFilter.from_profile(load_profile(profile))
    slow = TextFilter(fast.cfg, fast=False)
    docs = _docs() + [WebDocument([t, None], [None, "https://x/1.jpg"], [None, None], {})
                      for t in EDGE if t and "\ud800" not in t]  # a document holds no lone surrogate
    docs.append(WebDocument([None], ["https://x/2.jpg"], [None], {}))
    for sample in (500, 7):
        a, b = fast.document_metrics(docs, sample), slow.document_metrics(docs, sample)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        assert sum(map(len, a["metrics"]["text_filters (document level, before filtering)"].values())) > 0


@pytest.mark.parametrize("sep", [0, 1])
def test_spans_both_ways(sep):
    """The kernels' spans (accumulated below 64 texts, np.cumsum from 64 on) are the texts' places when laid
    end to end with ``sep`` symbols between them; char_stats reads them right on either side of 64."""
    for m in (0, 1, 2, 63, 64, 65, 300):
        lengths = [(7 * i) % 23 for i in range(m)]
        starts, ends = fast_metrics._spans(lengths, sep)
        at, want_starts = 0, []
        for k in lengths:
            want_starts.append(at)
            at += k + sep
        assert starts.tolist() == want_starts and starts.dtype == ends.dtype == "int64"
        assert ends.tolist() == [s + k for s, k in zip(want_starts, lengths)]
    for m in (63, 64, 65):
        _assert_same((EDGE * 5)[:m], 10)


def test_words_many_grows_its_word_table(monkeypatch):
    """The word table starts at a quarter of the code points and is doubled when half full, in the middle of
    a text and between texts: the words, ids, vocabulary counts and word repetition stay get_words' (texts of
    distinct one- and two-letter words, up to one word every two code points, need it grown several times)."""
    from filters.fast_metrics import Vocabularies, word_repetition_ids, words_many
    from filters.text_metrics import get_words, word_repetition_ratio

    grown = []
    real = fast_metrics._grown
    monkeypatch.setattr(fast_metrics, "_grown", lambda slots: grown.append(len(slots)) or real(slots))
    letters = string.ascii_lowercase + "éßΣ"
    pairs = [a + b for a in letters for b in letters]
    vocab = {"ab", "zz", "é", "q"}
    for texts in ([" ".join([*letters, *pairs])], [" ".join(pairs[:400]), "x", " ".join(pairs[300:])],
                  ["a b", " ".join(pairs)], [" ".join(pairs[k::7]) for k in range(7)]):
        grown.clear()
        w = words_many(texts, Vocabularies({"v": vocab}))
        ref = [get_words(t) for t in texts]
        assert grown, "the table was not grown"
        assert w.words == ref
        assert w.in_vocab["v"] == [sum(x in vocab for x in r) for r in ref]
        assert word_repetition_ids(w.ids, list(map(len, ref)), 2) == [word_repetition_ratio(r, 2) for r in ref]
        first = {}
        assert w.ids.tolist() == [first.setdefault(x, len(first)) for r in ref for x in r]
