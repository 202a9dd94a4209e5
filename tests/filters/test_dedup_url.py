from filters.dedup.config import DedupConfig, dedup_config
from filters.dedup.url import url_dedup
from tests.filters.dedup_helpers import make_doc

OBELICS = dedup_config("obelics-2023")
DEFAULT = dedup_config("default")


def test_obelics_keeps_lexicographically_last_warc_and_all_ties():
    docs = [
        make_doc("https://a.com/x", ["i1"], warc="crawl-data/CC-MAIN-2020-05/w1.warc.gz", doc_id="old"),
        make_doc("https://a.com/x", ["i1"], warc="crawl-data/CC-MAIN-2023-06/w9.warc.gz", doc_id="new1"),
        make_doc("https://a.com/x", ["i2"], warc="crawl-data/CC-MAIN-2023-06/w9.warc.gz", doc_id="new2", offset=5),
        make_doc("https://b.com/y", ["i3"], warc="crawl-data/CC-MAIN-2020-05/w1.warc.gz", doc_id="single"),
    ]
    r = url_dedup(docs, OBELICS)
    assert sorted(r.doc_ids) == ["new1", "new2", "single"]  # ties within one WARC all survive (docs/reference.md §6.3)
    assert r.removed_ids() == {"old": "url_dedup:older_copy"}
    assert r.stats.dropped["document"]["url_dedup:older_copy"] == 1


def test_default_keeps_latest_capture_date_one_copy():
    docs = [
        make_doc("https://a.com/x", ["i"], warc="w1", date="2023-01-02T00:00:00Z", doc_id="b"),
        make_doc("https://a.com/x", ["i"], warc="w1", date="2023-01-02T00:00:00Z", doc_id="a"),
        make_doc("https://a.com/x", ["i"], warc="w2", date="2021-05-01T00:00:00Z", doc_id="c"),
    ]
    r = url_dedup(docs, DEFAULT)
    assert r.doc_ids == ["b"]  # same date and WARC: the largest doc_id wins, whatever the row order
    assert url_dedup(list(reversed(docs)), DEFAULT).doc_ids == ["b"]


def test_capture_date_beats_warc_name_in_default_but_not_in_obelics():
    docs = [
        make_doc("https://a.com/x", ["i"], warc="CC-MAIN-2023-06/z", date="2020-01-01", doc_id="warc_later"),
        make_doc("https://a.com/x", ["i"], warc="CC-MAIN-2020-05/a", date="2023-02-01", doc_id="date_later"),
    ]
    assert url_dedup(docs, DEFAULT).doc_ids == ["date_later"]
    assert url_dedup(docs, OBELICS).doc_ids == ["warc_later"]


def test_documents_without_images_are_dropped_after_url_dedup():
    docs = [
        make_doc("https://a.com/1", [], doc_id="noimg"),
        make_doc("https://a.com/2", ["i"], doc_id="img"),
        make_doc("https://a.com/2", [], warc="A-older", doc_id="dup_noimg"),
    ]
    r = url_dedup(docs, DEFAULT)
    assert r.doc_ids == ["img"]
    assert r.removed_ids() == {"noimg": "url_dedup:no_image", "dup_noimg": "url_dedup:older_copy"}
    cfg = DedupConfig()
    cfg.url.drop_without_images = False
    assert sorted(url_dedup(docs, cfg).doc_ids) == ["img", "noimg"]


def test_missing_url_is_never_a_duplicate():
    docs = [make_doc(None, ["i"], doc_id="n1"), make_doc(None, ["i"], doc_id="n2"), make_doc("", ["i"], doc_id="e")]
    assert sorted(url_dedup(docs, OBELICS).doc_ids) == ["e", "n1", "n2"]
