from filters.dedup.config import dedup_config
from filters.dedup.image_set import image_set_dedup, image_set_key
from tests.filters.dedup_helpers import make_doc

OBELICS = dedup_config("obelics-2023")
DEFAULT = dedup_config("default")


def test_key_is_sorted_unique_urls():
    assert image_set_key([None, "b", "a", "b"]) == "a\nb"
    assert image_set_key(["b", "a", "b"], "concat") == "ab"
    assert image_set_key([None]) is None


def test_same_set_keeps_most_recent():
    docs = [
        make_doc("https://a.com/1", ["x", "y"], warc="CC-MAIN-2021-04/w", doc_id="old"),
        make_doc("https://b.com/2", ["y", "x", "x"], warc="CC-MAIN-2023-06/w", doc_id="new"),
        make_doc("https://c.com/3", ["x"], warc="CC-MAIN-2020-05/w", doc_id="other"),
    ]
    for cfg in (OBELICS, DEFAULT):
        r = image_set_dedup(docs, cfg)
        assert sorted(r.doc_ids) == ["new", "other"], cfg.recency


def test_concatenation_without_delimiter_collides_in_obelics_only():
    docs = [make_doc("https://a.com/1", ["a", "bc"], warc="W1", doc_id="p"),
            make_doc("https://b.com/2", ["ab", "c"], warc="W2", doc_id="q")]
    assert image_set_dedup(docs, OBELICS).doc_ids == ["q"]  # "abc" == "abc" (docs/reference.md §9.3 #15)
    assert sorted(image_set_dedup(docs, DEFAULT).doc_ids) == ["p", "q"]


def test_obelics_removes_by_url_and_warc_pair():
    # "keep" wins its own set but shares (url, warc) with "lose", an older copy of another set.
    docs = [
        make_doc("https://a.com/1", ["s1"], warc="W1", doc_id="keep"),
        make_doc("https://a.com/1", ["s2"], warc="W1", doc_id="lose", offset=9),
        make_doc("https://b.com/2", ["s2"], warc="W9", doc_id="winner"),
    ]
    assert image_set_dedup(docs, OBELICS).doc_ids == ["winner"]
    assert sorted(image_set_dedup(docs, DEFAULT).doc_ids) == ["keep", "winner"]


def test_documents_without_images_are_not_grouped():
    docs = [make_doc("https://a.com/1", [], doc_id="a"), make_doc("https://a.com/2", [], doc_id="b")]
    assert sorted(image_set_dedup(docs, DEFAULT).doc_ids) == ["a", "b"]
