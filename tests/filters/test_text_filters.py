"""Paragraph and document text filters: comparisons, order of checks, EOD, docs/reference.md §9 fixes, URL bans, stages."""

from __future__ import annotations

import dataclasses

import pytest

from filters.base import FilterStats
from filters.text_filters import (
    DocChecks,
    NodeChecks,
    TextFilter,
    TextFiltersConfig,
    filter_documents,
    recheck_documents,
    url_is_banned,
)
from obelics.config import load_profile
from obelics.document import EOD_TOKEN, WebDocument
from tests.conftest import shared_path

GOOD = ("The committee met on Tuesday to discuss the new park. Residents said that they would like more trees, "
        "and the mayor agreed that the plan should be changed before the vote.")
GOOD2 = ("After the meeting, the city council published a report about the project and its costs. It said that "
         "the work would start in the spring and end before the winter.")


def registry_chain(**node_kw) -> TextFilter:
    cfg = TextFiltersConfig(node=NodeChecks(**node_kw))
    return TextFilter(cfg)


def doc(*nodes) -> WebDocument:
    texts, images, meta = [], [], []
    for n in nodes:
        if n.startswith("img:"):
            texts.append(None)
            images.append(n[4:])
            meta.append({"src": n[4:]})
        else:
            texts.append(n)
            images.append(None)
            meta.append(None)
    return WebDocument(texts, images, meta, {"url": "https://example.com/a"})


def test_min_max_comparisons_are_strict():
    chain = registry_chain()
    four = "apple banana cherry date"
    # 4 words: inclusive range [4, 1000]; the paragraph then fails a later check, not number_words
    assert chain.paragraph_verdict(four) != "number_words"
    assert chain.paragraph_verdict("apple banana cherry") == "number_words"
    chain5 = registry_chain(number_words_min=5)
    assert chain5.paragraph_verdict(four) == "number_words"
    # a max cutoff equal to the value keeps it
    text = "x y z w"  # special ratio 3/7 > 0.3
    assert registry_chain(number_words_min=1, special_character_ratio_max=3 / 7).paragraph_verdict(text) != \
        "special_character_ratio"
    assert registry_chain(number_words_min=1).paragraph_verdict(text) == "special_character_ratio"


def test_order_of_checks_first_failure_wins():
    chain = registry_chain()
    rep = " ".join(["buy now"] * 10)  # fails char repetition (2nd) before word repetition and stop words
    assert chain.paragraph_verdict(rep) == "character_repetition_ratio"
    off = registry_chain(character_repetition_max=None)
    assert off.paragraph_verdict(rep) == "word_repetition_ratio"
    assert chain.paragraph_verdict(GOOD) is None


def test_eod_paragraph_skips_checks_and_empty_node_dropped():
    chain = registry_chain()
    stats = FilterStats("t")
    out = chain.filter_nodes(doc(f"{GOOD}\n\n{EOD_TOKEN}\n\nshort one", "img:https://x/a.jpg", "tiny"), stats)
    assert out.texts[0] == f"{GOOD}\n\n{EOD_TOKEN}"
    assert out.texts == [out.texts[0], None]
    assert stats.dropped["paragraph"]["number_words"] == 2
    assert stats.dropped["node"]["no_paragraph_left"] == 1


def test_document_checks_and_long_documents():
    long_text = "\n\n".join([GOOD, GOOD2] * 60)  # ~3,900 words
    d = doc("img:https://x/a.jpg", long_text)
    default = TextFilter(TextFiltersConfig())
    capped = TextFilter(TextFiltersConfig(doc=DocChecks(number_words_max=2000, word_repetition_max=None,
                                                        character_repetition_max=None)))
    free = TextFilter(TextFiltersConfig(doc=DocChecks(word_repetition_max=None, character_repetition_max=None)))
    assert capped.document_verdict(d) == "number_words"
    assert free.document_verdict(d) is None           # default: not dropped for length alone
    assert default.document_verdict(doc(GOOD + "\n\n" + GOOD2)) == "number_images"
    assert default.document_verdict(doc("img:https://x/a.jpg", GOOD, GOOD2)) is None
    assert default.document_verdict(doc("img:https://x/a.jpg", "one two three")) == "number_words"


def test_filter_documents_counts_and_rejects():
    prof = load_profile("default", ["langid.doc_level=false", "perplexity.doc_level=false"])
    stats = FilterStats("text")
    rejects: list = []
    docs = [doc("img:https://x/a.jpg", GOOD, GOOD2), doc(GOOD, GOOD2), doc("img:https://x/b.jpg", "too short")]
    kept = filter_documents(docs, prof, stats, rejects)
    assert len(kept) == 1
    assert stats.inputs["document"] == 3 and stats.outputs["document"] == 1
    assert stats.dropped["document"] == {"number_images": 1, "number_words": 1}
    assert sorted(r for _, r in rejects) == ["document:number_images", "document:number_words"]


def test_recheck_after_dedup():
    shortened = doc("img:https://x/a.jpg", "Only a few words remain.")
    stats = FilterStats("recheck")
    default = load_profile("default", ["langid.doc_level=false", "perplexity.doc_level=false"])
    assert recheck_documents([shortened], default, stats) == []
    assert stats.dropped["document"] == {"recheck:number_words": 1}
    shared_path("data", "wordlists", "stopwords_en.txt")
    orig = load_profile("obelics-2023")
    assert len(recheck_documents([shortened], orig, FilterStats("r"))) == 1  # the original never re-checked


def test_url_ban_default_word_boundaries():
    cfg = TextFiltersConfig()
    assert url_is_banned("https://example.com/img/site-logo.png", cfg) == "url_ban:logo"
    assert url_is_banned("https://example.com/static/SiteLogo.png", cfg) == "url_ban:logo"
    assert url_is_banned("https://example.com/ICONS/home.png", cfg) == "url_ban:icon"
    assert url_is_banned("https://example.com/silicon-valley.jpg", cfg) is None
    assert url_is_banned("https://example.com/essex/photo.jpg", cfg) is None
    assert url_is_banned("https://example.com/buttonwood.jpg", cfg) is None
    assert url_is_banned(None, cfg) is None
    assert url_is_banned("https://example.com/logo.png", dataclasses.replace(cfg, url_ban="off")) is None


def test_url_ban_word_table_is_the_word_then_its_singular(monkeypatch):
    """``word`` mode looks each URL word up in one table of the ban words and their plurals: the verdict is the
    first URL word that is a ban word, or whose singular (without its final "s") is one, the word itself
    winning where both are ("icons" is a ban word and the plural of "icon"; "s" is the plural of "")."""
    import filters.text_filters as tf

    words = frozenset({"Icon", "icons", "logo", "", "ss"})
    monkeypatch.setattr(tf, "_ban_words", lambda mode, source, path: words)
    cfg = TextFiltersConfig()

    def reference(url):
        lowered = {w.lower() for w in words}
        for w in tf.url_words(url):
            if w in lowered:
                return f"url_ban:{w}"
            if w.endswith("s") and w[:-1] in lowered:
                return f"url_ban:{w[:-1]}"
        return None

    urls = ["https://x.org/a/ICONS/b.png", "https://x.org/icon.png", "https://x.org/logos-icons.png",
            "https://x.org/s/p.png", "https://x.org/sss.png", "https://x.org/ss.png", "https://x.org/Logo2.png",
            "https://x.org/silicon.png", "https://x.org/photo.png", "https://x.org/iconss.png"]
    got = [url_is_banned(u, cfg) for u in urls]
    assert got == [reference(u) for u in urls]
    assert got[:6] == ["url_ban:icons", "url_ban:icon", "url_ban:logo", "url_ban:", "url_ban:ss", "url_ban:ss"]


def test_url_ban_obelics_2023_substring():
    shared_path("data", "wordlists", "image_url_ban_substrings.txt")
    cfg = load_profile("obelics-2023").section("text_filters", TextFiltersConfig)
    assert url_is_banned("https://example.com/silicon-valley.jpg", cfg) == "url_ban:icon"
    assert url_is_banned("https://example.com/essex.jpg", cfg) == "url_ban:sex"
    assert url_is_banned("https://example.com/LOGO.png", cfg) is None  # case-sensitive, as the original


def test_recheck_runs_the_models_in_one_batch_with_the_verdicts_of_one_document_at_a_time():
    """RecheckStep leaves language id and perplexity for the documents its other checks kept, all at once; what
    it keeps and drops (by reason) is document_verdict's, one document at a time (a low perplexity cutoff, so
    both models drop some)."""
    import json
    from collections import Counter

    from filters.text_filters import text_filter_for

    docs = []
    for name in ("shared_warc.jsonl", "shared_html.jsonl"):
        for line in open(shared_path("data", "reference", name), encoding="utf-8"):
            d = json.loads(line)
            meta = json.loads(d["metadata"]) if isinstance(d["metadata"], str) else d["metadata"]
            docs.append(WebDocument(list(d["texts"]), [i or None for i in d["images"]], list(meta), {"url": d["url"]}))
    prof = load_profile("default", ["perplexity.model=builtin-en", "perplexity.max_perplexity.builtin-en=400"])
    one_by_one = [text_filter_for(prof).document_verdict(d) for d in docs]
    reasons = Counter(f"recheck:{r}" for r in one_by_one if r)
    assert reasons["recheck:perplexity"] and reasons["recheck:lang_id"] and one_by_one.count(None)
    stats, rejects = FilterStats("recheck"), []
    kept = recheck_documents(docs, prof, stats, rejects)
    assert kept == [d for d, r in zip(docs, one_by_one) if r is None]
    assert stats.dropped["document"] == dict(reasons)
    assert [r for _, r in rejects] == [f"document:recheck:{r}" for r in one_by_one if r]


def test_url_words_split_and_lowered():
    from filters.text_filters import url_words

    assert url_words("https://Example.com/img/siteLogo-ICONS_2.PNG") == [
        "https", "example", "com", "img", "site", "logo", "icons", "2", "png"]
    assert url_words("") == [] and url_words("/-_/") == []


@pytest.mark.parametrize("profile", ["default", "obelics-2023"])
def test_url_ban_step_judges_each_distinct_url_once_with_the_same_verdicts(profile, monkeypatch):
    """The step judges each distinct URL of a chunk once (UrlBanStep.prepare); the nodes kept and the counts by
    reason are those of judging every image node on its own."""
    import filters.text_filters as tf
    from filters.step import run_step

    if profile == "obelics-2023":
        shared_path("data", "wordlists", "image_url_ban_substrings.txt")
    prof = load_profile(profile)
    urls = ["https://example.com/img/site-logo.png", "https://example.com/photos/river.jpg",
            "https://example.com/ICONS/home.png", "https://example.com/silicon-valley.jpg",
            "https://example.com/essex/photo.jpg", "https://example.com/static/SiteLogo.png"]
    docs = [WebDocument([GOOD, None, None, GOOD2, None],
                        [None, urls[k % 6], urls[(3 * k + 1) % 6], None, urls[(k + 2) % 6]],
                        [None, {}, {}, None, {}], {"url": f"https://example.com/{k}"}) for k in range(12)]
    cfg = prof.section("text_filters", TextFiltersConfig)
    calls = []
    judged = tf.url_is_banned
    monkeypatch.setattr(tf, "url_is_banned", lambda url, c=None: calls.append(url) or judged(url, c))
    out, st, _ = run_step(tf.URL_BAN, docs, prof)
    assert sorted(calls) == sorted(set(urls))  # each distinct URL once
    expected_images = [[u if (u is None or judged(u, cfg) is None) else "x" for u in d.images] for d in docs]
    assert [d.images for d in out] == [[u for u in im if u != "x"] for im in expected_images]
    reasons = {}
    for d in docs:
        for u in d.images:
            if u and judged(u, cfg):
                reasons[judged(u, cfg)] = reasons.get(judged(u, cfg), 0) + 1
    assert reasons and st.as_dict()["dropped"]["image"] == reasons


def test_user_word_list_overrides(tmp_path):
    p = tmp_path / "common.json"
    p.write_text('{"the": 1, "committee": 1}')
    cfg = TextFiltersConfig(common_words_path=str(p))
    chain = TextFilter(cfg)
    assert chain.paragraph_verdict(GOOD) == "common_word_ratio"
    with pytest.raises(FileNotFoundError):
        TextFilter(TextFiltersConfig(stopwords_path=str(tmp_path / "missing.txt")))


def test_registry_word_lists():
    from filters.wordlists import load_wordlist

    stop = load_wordlist("stopwords", "registry")
    flagged = load_wordlist("flagged_words", "registry")
    assert {"the", "and", "of"} <= stop and len(stop) > 300
    assert {"porn", "fuck", "blowjob"} <= flagged
    # ordinary, medical and historical words of better-profanity's list are not flagged
    assert not ({"fat", "god", "hitler", "breasts", "gay", "kill"} & flagged)
    chain = TextFilter(TextFiltersConfig())
    health = ("Eating less saturated fat and more fibre can lower the risk of heart disease, and the study "
              "found that people who walked every day lost more fat than those who did not.")
    assert chain.paragraph_verdict(health) is None


def test_default_paragraph_character_repetition_cutoff_keeps_prose_with_one_repeated_phrase():
    """default's 0.2 (the original's 0.1, kept by obelics-2023) at paragraph level: a short quote that repeats
    "We get that you" once is prose, not repetition (bench/content_filters.py measured why)."""
    from filters.text_filters import NodeChecks, TextFilter, TextFiltersConfig
    from obelics.config import load_profile

    text = "“We get that you’re frustrated,” Bosma said. “We get that you are concerned about issues.”"
    assert TextFilter().paragraph_verdict(text) is None
    original = TextFiltersConfig(node=NodeChecks(character_repetition_max=0.1))
    assert TextFilter(original).paragraph_verdict(text) == "character_repetition_ratio"
    assert load_profile("obelics-2023").data["text_filters"]["node"]["character_repetition_max"] == 0.1
    assert TextFilter().paragraph_verdict("Buy now! " * 12) == "character_repetition_ratio"
