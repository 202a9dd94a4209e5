"""Final processing (docs/reference.md §7.3): repeated images, spam paragraphs, EOD runs and trailing EOD, cleaning."""

from __future__ import annotations

from filters.base import FilterStats
from filters.final import FinalConfig, FinalProcessor, clean_nodes, final_processing, spam_word_ratio
from filters.wordlists import SPAM_WORDS_FIXED
from obelics.config import load_profile
from obelics.document import EOD_TOKEN, WebDocument
from tests.conftest import shared_path


def mk(*nodes) -> WebDocument:
    texts, images, meta = [], [], []
    for n in nodes:
        if isinstance(n, tuple):
            texts.append(None)
            images.append(n[1])
            meta.append({"src": n[1]})
        else:
            texts.append(n)
            images.append(None)
            meta.append(None)
    return WebDocument(texts, images, meta, {"url": "https://example.com/"})


PROSE = "The river rose quickly after three days of heavy rain in the hills."


def test_repeated_images_spam_and_merge():
    proc = FinalProcessor(FinalConfig())
    stats = FilterStats("final")
    d = mk(("img", "https://x/a.jpg"), PROSE, ("img", "https://x/a.jpg"),
           "Follow us on Facebook Twitter Instagram", ("img", "https://x/b.jpg"))
    out = proc.process_nodes(d, stats)
    # the repeated image goes, the spam text empties, and the two texts become adjacent then merged
    assert out.images == ["https://x/a.jpg", None, "https://x/b.jpg"]
    assert out.texts == [None, PROSE, None]
    assert stats.dropped["node"]["repeated_image"] == 1
    assert stats.dropped["paragraph"]["spam_word_ratio"] == 1


def test_spam_cutoff_is_strict():
    # 1 spam word in 8 = 0.125 >= 0.12: dropped; 1 in 9 = 0.111: kept
    assert spam_word_ratio("facebook a b c d e f g", SPAM_WORDS_FIXED) == 0.125
    proc = FinalProcessor(FinalConfig())
    out = proc.process_nodes(mk("facebook a b c d e f g\n\nfacebook a b c d e f g h", ("img", "u")))
    assert out.texts[0] == "facebook a b c d e f g h"


def test_eod_runs_and_trailing():
    proc = FinalProcessor(FinalConfig(spam_word_ratio_cutoff=None))
    d = mk(("img", "u"), f"{PROSE}\n\n{EOD_TOKEN}\n\n {EOD_TOKEN} \n\n{EOD_TOKEN}\n\n{PROSE}\n\n{EOD_TOKEN}")
    out = proc.process_nodes(d)
    assert out.texts[1] == f"{PROSE}\n\n{EOD_TOKEN}\n\n{PROSE}"


def test_document_level():
    proc = FinalProcessor(FinalConfig())
    assert proc.document_verdict(mk(("img", "u"), EOD_TOKEN)) == "only_eod"
    assert proc.document_verdict(mk(("img", "u"))) == "no_text"
    assert proc.document_verdict(mk(PROSE)) == "no_image"
    assert proc.document_verdict(mk(("img", "u"), PROSE)) is None


def test_clean_nodes():
    t, i, m = clean_nodes(["a", "", "b", None, "c"], [None, None, None, "u", None], [None, None, None, {}, None])
    assert t == ["a\n\nb", None, "c"] and i == [None, "u", None]


def test_stage_profiles():
    shared_path("data", "wordlists", "spam_words_en.txt")
    # "I would like to share this post" is ordinary prose; the original list drops it, default keeps it
    text = "I would like to share this post with you and your family today."
    docs = [mk(("img", "u"), text)]
    s1, s2 = FilterStats("f"), FilterStats("f")
    assert final_processing(docs, load_profile("obelics-2023"), s1) == []
    assert s1.dropped["document"] == {"no_text": 1}
    kept = final_processing(docs, load_profile("default"), s2)
    assert len(kept) == 1 and kept[0].texts[1] == text
