import json

from filters.dedup.config import dedup_config
from filters.dedup.image_url import image_url_dedup
from tests.filters.dedup_helpers import make_doc

OBELICS = dedup_config("obelics-2023")
DEFAULT = dedup_config("default")


def _corpus():
    # "ad" appears 11 times: 6 documents, one of which repeats it 6 times (occurrences 11, documents 6)
    docs = [make_doc(f"https://s.com/{k}", ["ad", f"own{k}"], doc_id=f"d{k}") for k in range(5)]
    docs.append(make_doc("https://s.com/rep", ["ad"] * 6 + ["x"], doc_id="rep"))
    return docs


def test_occurrences_over_threshold_remove_nodes_not_documents():
    r = image_url_dedup(_corpus(), OBELICS)  # 11 occurrences > 10
    assert len(r.doc_ids) == 6  # documents are never dropped here (docs/reference.md §6.1 step 3)
    for d in r.docs:
        assert "ad" not in d.images
        d.check()  # nodes still aligned
        assert all(m["src"] != "ad" for m in d.metadata if m)
    assert r.stats.dropped["image"]["image_url_dedup:seen>10"] == 11
    rep = next(d for d in r.docs if d.doc_id == "rep")
    assert rep.images == [None, "x"] and rep.texts == ["some text", None]


def test_exactly_threshold_is_kept():
    docs = [make_doc(f"https://s.com/{k}", ["ad"], doc_id=f"d{k}") for k in range(10)]
    r = image_url_dedup(docs, OBELICS)
    assert all(d.images == [None, "ad"] for d in r.docs)


def test_documents_mode_counts_each_document_once():
    r = image_url_dedup(_corpus(), DEFAULT)  # 6 documents <= 10: kept
    assert sum(d.images.count("ad") for d in r.docs) == 11
    docs = _corpus() + [make_doc(f"https://t.com/{k}", ["ad"]) for k in range(5)]  # 11 documents
    r = image_url_dedup(docs, DEFAULT)
    assert all("ad" not in d.images for d in r.docs)


def test_canonical_keys_merge_urls_of_one_image():
    docs = [make_doc(f"https://s.com/{k}", [f"cdn{k}/cat.jpg"], doc_id=f"d{k}") for k in range(11)]
    assert all(len([i for i in d.images if i]) == 1 for d in image_url_dedup(docs, DEFAULT).docs)
    canonical = {f"cdn{k}/cat.jpg": "cdn0/cat.jpg" for k in range(11)}
    r = image_url_dedup(docs, DEFAULT, canonical=canonical)
    assert all(not any(d.images) for d in r.docs)
    assert json.loads(r.table["metadata"][0].as_py()) == [None]
