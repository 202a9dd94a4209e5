"""Perplexity: docs/reference.md §5.2 normalisation, glued vs per-paragraph scoring, the offline-built English model."""

from __future__ import annotations

import math

import pytest

from filters import lm_build
from filters.perplexity import KenlmScorer, PerplexityConfig, PerplexityFilter, normalize


@pytest.fixture(scope="module")
def scorer():
    d = lm_build.build()  # build/resources/builtin-en, built once (~5 s), then reused
    return KenlmScorer(d / "en.arpa", d / "en.sp.model", "builtin-en")


def test_normalisation_vector():
    assert normalize("Line one 2023.\n\nLine “two”…") == 'Line one 0000.Line "two"...'
    assert normalize("one 2023.\n\nLine") == "one 0000.Line"
    assert normalize("a\u00a0b — c，d") == "a b  -  c,d"
    # the table maps full-width 1 to '"', but \d (Unicode) turns it into 0 first, as in the original
    assert normalize("１") == "0"


def test_arpa_is_a_distribution():
    tokens = [["a", "b", "c"], ["a", "b", "d"], ["b", "c", "a"], ["c", "c"]]
    arpa = lm_build.estimate_arpa(tokens, 3)
    uni = {}
    for line in arpa.split("\\1-grams:")[1].split("\\2-grams:")[0].strip().splitlines():
        lp, w = line.split("\t")[:2]
        uni[w] = 10 ** float(lp)
    assert math.isclose(sum(p for w, p in uni.items() if w != "<s>"), 1.0, rel_tol=1e-4)


def test_model_loads_and_ranks_text(scorer):
    english = "The function returns a new list that contains the items of the sequence in sorted order."
    german = "Der Hund läuft schnell über die Straße und bellt laut, weil er die Katze gesehen hat."
    noise = "qzx vbnm kjh plok wert yuio zxcv asdf ghjk"
    p_en, p_de, p_noise = (scorer.perplexity(t) for t in (english, german, noise))
    assert p_en < p_de < p_noise
    assert p_en == round(p_en, 1)


def test_glued_vs_paragraph(scorer):
    text = "The first paragraph ends here.\n\nA second paragraph starts with a capital letter."
    glued = scorer.perplexity(text, "glued")
    per_par = scorer.perplexity(text, "paragraph")
    # glued: one line "…here.A second…"; paragraph mode: two lines, scored separately then aggregated
    lines = [normalize(p) for p in text.split("\n\n")]
    total, length = scorer.score_lines(lines)
    assert per_par == round(10 ** (-total / length), 1)
    total_g, length_g = scorer.score_lines(["The first paragraph ends here.A second paragraph starts with a capital letter."])
    assert glued == round(10 ** (-total_g / length_g), 1)
    assert glued != per_par


def test_filter_thresholds(scorer):
    f = PerplexityFilter(PerplexityConfig(max_perplexity={"builtin-en": 1000.0}), scorer)
    assert f.document_verdict(["The function returns a new list of the items in the sequence."]) is None
    assert f.document_verdict(["qzx vbnm kjh plok wert yuio zxcv asdf ghjk"]) == "perplexity"
    with pytest.raises(ValueError):
        _ = PerplexityFilter(PerplexityConfig(max_perplexity={}), scorer).cutoff


def test_english_shared_pages_pass(scorer, shared):
    import json

    f = PerplexityFilter(PerplexityConfig(), scorer)
    path = shared("data", "reference", "shared_filter.jsonl")
    ppl = []
    for line in open(path, encoding="utf-8"):
        d = json.loads(line)
        texts = [t for t in d["texts_after_node_filter"] if t]
        if d["file"].startswith("en__") and texts:
            ppl.append(f.document_perplexity(texts))
    assert len(ppl) > 30
    passed = sum(p <= f.cutoff for p in ppl)
    print(f"\nbuiltin-en: {passed}/{len(ppl)} English shared pages under {f.cutoff}; max {max(ppl)}")
    assert passed / len(ppl) >= 0.95


@pytest.mark.parametrize("mode", ["glued", "paragraph"])
def test_batch_perplexities_are_the_single_ones(scorer, shared, mode):
    """Scoring a batch (one normalisation pass, one SentencePiece call) gives each text's own perplexity,
    exactly, on every shared reference document and some edge cases."""
    import json

    texts = []
    for name in ("shared_html.jsonl", "shared_warc.jsonl"):
        for line in shared("data", "reference", name).open(encoding="utf-8"):
            texts.append("\n\n".join(t for t in json.loads(line)["texts"] if t))
    texts += ["", "\n\n", "one\n\n\n\ntwo", "２０２３ “quoted”…", "a\n\nb", "b\n\na\n\nb"]  # repeats: scored once
    texts += texts[:10]
    assert scorer.perplexities(texts, mode) == [scorer.perplexity(t, mode) for t in texts]
    f = PerplexityFilter(PerplexityConfig(mode=mode, max_perplexity={"builtin-en": 400.0}), scorer)
    docs = [t.split("\n\n") for t in texts]
    assert f.document_verdicts(docs) == [f.document_verdict(d) for d in docs]
    assert f.document_verdicts([]) == []
