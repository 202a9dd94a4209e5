from filters.dedup.config import dedup_config
from filters.dedup.paragraphs import paragraph_dedup
from obelics.document import EOD_TOKEN
from tests.filters.dedup_helpers import make_doc

CFG = dedup_config("obelics-2023")


def test_paragraphs_seen_three_times_in_a_domain_are_removed():
    docs = [
        make_doc("https://x.com/1", ["i"], texts=["Menu\n\nStory one", "Subscribe"], doc_id="1"),
        make_doc("https://x.com/2", ["i"], texts=["Menu\n\nStory two\n\nSubscribe"], doc_id="2"),
        make_doc("https://x.com/3", ["i"], texts=["Menu\n\nStory three"], doc_id="3"),
        make_doc("https://y.com/1", ["i"], texts=["Menu\n\nOther site"], doc_id="4"),
    ]
    r = paragraph_dedup(docs, CFG)
    texts = {d.doc_id: [t for t in d.texts if t is not None] for d in r.docs}
    assert texts["1"] == ["Story one", "Subscribe"]  # "Subscribe" seen twice: kept
    assert texts["2"] == ["Story two\n\nSubscribe"]
    assert texts["3"] == ["Story three"]
    assert texts["4"] == ["Menu\n\nOther site"]  # another domain: its own counts
    assert r.stats.dropped["paragraph"]["paragraph_dedup:seen>=3_in_domain"] == 3


def test_repeats_inside_one_document_count_and_texts_can_become_empty():
    docs = [make_doc("https://x.com/1", ["i"], texts=["Ad", "Ad\n\nAd", "Body"], doc_id="1")]
    r = paragraph_dedup(docs, CFG)
    assert [t for t in r.docs[0].texts if t is not None] == ["", "", "Body"]  # "" cleaned later (docs/reference.md §6.4 step 6)


def test_end_of_document_paragraphs_are_exempt():
    eod = f"Read more: {EOD_TOKEN}"
    docs = [make_doc(f"https://x.com/{k}", ["i"], texts=[f"Body {k}\n\n{eod}"]) for k in range(4)]
    r = paragraph_dedup(docs, CFG)
    assert all(d.texts[0].endswith(eod) for d in r.docs)


def test_domain_is_the_netloc_as_written():
    docs = [make_doc("https://www.x.com/1", ["i"], texts=["P"]), make_doc("https://x.com/2", ["i"], texts=["P"]),
            make_doc("https://x.com:8080/3", ["i"], texts=["P"])]
    assert all(d.texts[0] == "P" for d in paragraph_dedup(docs, CFG).docs)
    docs.append(make_doc("https://x.com/4", ["i"], texts=["P\n\nP"]))
    out = {d.url: d.texts[0] for d in paragraph_dedup(docs, CFG).docs}
    assert out["https://x.com/2"] == "" and out["https://x.com/4"] == "\n\n".join([]) and out["https://www.x.com/1"] == "P"
