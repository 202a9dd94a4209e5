"""obelics.extract: the public API over pages, records and WARC files."""

from __future__ import annotations

import obelics
from obelics import extract as extract_mod
from obelics.document import WebDocument
from obelics.records import HtmlRecord, ReadStats
from tests.conftest import shared_path

URL = "https://example.com/a/b.html"
PAGE = "<html><body><h1>Title</h1><p>Some text.</p><img src='/i.jpg' alt='x'></body></html>"


def _record(payload: bytes, **kw) -> HtmlRecord:
    base = dict(url=URL, payload=payload, charset="utf-8", warc_filename="x.warc.gz", warc_record_offset=10,
                warc_record_length=99, capture_date="2023-01-02T03:04:05Z")
    base.update(kw)
    return HtmlRecord(**base)


def test_extract_html_both_profiles_via_package():
    for profile in ("default", "obelics-2023", obelics.load_profile("default")):
        doc = obelics.extract_html(PAGE, URL, profile=profile)
        assert isinstance(doc, WebDocument)
        doc.check()
        assert doc.texts == ["Title\n\nSome text.", None]
        assert doc.images == [None, "https://example.com/i.jpg"]
        assert doc.general_metadata == {"url": URL}
        assert doc.doc_id


def test_extract_html_general_metadata_passed_through():
    gm = {"url": URL, "warc_filename": "f", "warc_record_offset": 1, "warc_record_length": 2}
    assert obelics.extract_html(PAGE, URL, general_metadata=gm).general_metadata == gm


def test_extract_record_sets_pointer_and_capture_date():
    for profile in ("default", "obelics-2023"):
        doc = extract_mod.extract_record(_record(PAGE.encode()), profile)
        assert doc.general_metadata == {"url": URL, "warc_filename": "x.warc.gz", "warc_record_offset": 10,
                                        "warc_record_length": 99}
        assert doc.capture_date == "2023-01-02T03:04:05Z"
        assert doc.num_images == 1
        row = doc.to_row()
        assert row["warc_record_offset"] == 10 and row["domain"] == "example.com"


def test_extract_record_charsets():
    html = "<p>Grüße aus Köln</p>".encode("latin-1")
    assert extract_mod.extract_record(_record(html, charset="latin-1"), "default").texts == ["Grüße aus Köln"]
    # obelics-2023 ignores the reader's choice: WARC-Identified-Content-Charset, else bs4 detection
    doc = extract_mod.extract_record(_record(html, charset="utf-8", identified_charset="iso-8859-1"),
                                     "obelics-2023")
    assert doc.texts == ["Grüße aus Köln"]


def test_empty_page_yields_empty_document():
    for profile in ("default", "obelics-2023"):
        doc = extract_mod.extract_record(_record(b""), profile)
        assert doc.texts == [] and doc.images == [] and doc.general_metadata["warc_record_offset"] == 10


def test_iter_warc_documents_reads_shared_warc():
    path = shared_path("data", "warc", "warcio__example-iana.org-chunked.warc")
    for profile in ("default", "obelics-2023"):
        stats = ReadStats()
        docs = list(obelics.iter_warc_documents(str(path), profile=profile, stats=stats))
        assert len(docs) == stats.html_records >= 1
        assert all(d.general_metadata["warc_filename"] for d in docs)
        assert any(d.texts for d in docs)


def test_iter_warc_documents_counts_extraction_errors(monkeypatch):
    path = shared_path("data", "warc", "dolma__sample-0000.warc.gz")
    baseline = list(obelics.iter_warc_documents(str(path)))
    assert len(baseline) > 3
    real = extract_mod.extract_record
    calls = {"n": 0}

    def flaky(record, profile="default"):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RecursionError("boom")
        return real(record, profile)

    monkeypatch.setattr(extract_mod, "extract_record", flaky)
    stats = ReadStats()
    docs = list(extract_mod.iter_warc_documents(str(path), stats=stats))
    assert len(docs) == len(baseline) - 1
    assert stats.skipped["extract_error:RecursionError"] == 1
    assert [d.url for d in docs] == [d.url for i, d in enumerate(baseline) if i != 1]


def test_shared_pages_extract_with_default():
    """Every shared page and record goes through the default profile without error."""
    from obelics.html.reference_data import iter_reference_pages

    shared = shared_path("data", "reference").parent.parent
    n = with_text = 0
    for page in iter_reference_pages(shared):
        doc = obelics.extract_html(page.payload, page.url, profile="default")
        doc.check()
        n += 1
        with_text += bool(doc.texts)
        for meta in doc.metadata:
            if meta:
                assert meta["src"].startswith(("http://", "https://")) and " " not in meta["src"]
    assert n == 225 and with_text >= 200


def test_utf8_payload_parsed_as_its_bytes_gives_the_decoded_texts_document(monkeypatch):
    """``default`` hands lexbor a valid UTF-8 payload as is: the same document as the decoded text gives, on
    every HTML record of the shared WARCs and on pages that are not valid UTF-8 (decoded: U+FFFD)."""
    from obelics.warc import iter_html_records

    records = [r for path in sorted(shared_path("data", "warc").glob("*.warc*"))
               for r in iter_html_records(str(path))]
    records += [_record(p) for p in (
        "<p>Grüße, 東京 \U0001f600</p>".encode(), b"\xef\xbb\xbf<p>BOM</p>", b"<p>bad \xff\xfe byte \xc3</p>",
        b"<p>nul\x00 and \xed\xa0\x80 surrogate</p>", b"<p>plain ascii</p>")]
    given = []
    real = extract_mod._default_input

    def spy(record, cfg):
        out = real(record, cfg)
        given.append(isinstance(out, bytes))
        return out

    monkeypatch.setattr(extract_mod, "_default_input", spy)
    as_given = [extract_mod.extract_record(r, "default") for r in records]
    monkeypatch.setattr(extract_mod, "_default_input", lambda record, cfg: record.html)
    decoded = [extract_mod.extract_record(r, "default") for r in records]
    assert len(records) > 130
    for r, a, b in zip(records, as_given, decoded):
        assert (a.texts, a.images, a.metadata) == (b.texts, b.images, b.metadata), r.url
    # most records go as bytes; the invalid ones (and other charsets) as decoded text
    assert sum(given) > len(records) // 2 and given[-5:] == [True, True, False, False, True]


def test_records_read_ahead_give_the_same_documents_and_keep_those_before_a_reader_error(monkeypatch):
    """:func:`extract_records` reads records ahead in batches: the same (record, document) pairs and counts as one
    at a time, the byte cap closes a batch early, and when the reader raises the documents of the records it
    gave before are yielded first, then its error propagates (as the op, which keeps what was read)."""
    from obelics.warc import WarcConfig, iter_html_records

    path = str(shared_path("data", "warc", "dolma__sample-0000.warc.gz"))
    cfg = extract_mod.extract_config("default")
    records = list(iter_html_records(path, WarcConfig(), ReadStats()))
    assert len(records) > 5

    def run(ahead, source=None):
        stats = ReadStats()
        out = [(r.url, d.texts, d.images, d.metadata, d.general_metadata)
               for r, d in extract_mod.extract_records(source if source is not None else iter(records), cfg, stats,
                                                        ahead=ahead)]
        return out, stats.as_dict()

    one = run(1)
    assert len(one[0]) == len(records)
    for ahead in (2, 3, 64):
        assert run(ahead) == one
    monkeypatch.setattr(extract_mod, "READ_AHEAD_BYTES", 1)  # every record closes its batch
    assert run(64) == one

    def reader_failing_after(k):
        yield from records[:k]
        raise OSError("connection reset")

    monkeypatch.setattr(extract_mod, "READ_AHEAD_BYTES", 16 << 20)
    got = []
    stats = ReadStats()
    try:
        for record, _doc in extract_mod.extract_records(reader_failing_after(4), cfg, stats, ahead=64):
            got.append(record.url)
    except OSError as e:
        assert "connection reset" in str(e)
    else:
        raise AssertionError("the reader's error was swallowed")
    assert got == [r.url for r in records[:4]]


def _with_robots_metas(payload: bytes) -> bytes:
    """The page with opt-out <meta> tags in its head, in its body and in an odd case, for the <meta> reads."""
    return (payload.replace(b"<head>", b"<head><meta name='robots' content='noai'>", 1)
            .replace(b"</p>", b"</p><META NAME=\"TDM-Reservation\" content=1>", 1)
            .replace(b"<body", b"<meta name=obelics-toolkit content=noimageai><body", 1))


def test_on_tree_is_the_parse_of_the_records_text_unchanged_by_the_walk():
    """``extract_record``'s ``on_tree`` gets lexbor's parse of ``record.html`` (bytes or decoded text) and the
    walk leaves it as parsed: after the extraction it serialises as a fresh parse of ``record.html`` does, and
    the opt-out reads the same <meta> tags from it (every HTML record of the shared WARCs, each also with
    robots <meta> tags added; non-UTF-8 charsets and invalid UTF-8 included)."""
    from selectolax.lexbor import LexborHTMLParser

    from filters.optout.html_meta import meta_signals, meta_signals_of_tree
    from obelics.warc import iter_html_records

    records = [r for path in sorted(shared_path("data", "warc").glob("*.warc*"))
               for r in iter_html_records(str(path))]
    records += [_record(_with_robots_metas(r.payload), charset=r.charset) for r in records]
    records += [_record(p) for p in (b"<p>bad \xff\xfe byte \xc3</p><meta name=robots content=none>",
                                     b"\xef\xbb\xbf<meta name=robots content=noai><p>BOM</p>")]
    seen = 0
    signals = 0
    for r in records:
        trees = []
        doc = extract_mod.extract_record(r, "default", trees.append)
        assert doc == extract_mod.extract_record(r, "default"), r.url  # the hook changes nothing
        assert len(trees) == 1, r.url
        assert trees[0].html == LexborHTMLParser(r.html).html, r.url
        meta = meta_signals_of_tree(trees[0], "obelics-toolkit")
        assert meta == meta_signals(r.html, "obelics-toolkit"), r.url
        seen += 1
        signals += bool(meta)
    assert seen > 260 and signals > 130
    # obelics-2023 (its own decoding and simplification) never hands a tree
    trees = []
    extract_mod.extract_record(records[0], "obelics-2023", trees.append)
    assert trees == []


def test_pipeline_extract_op_reads_the_meta_tags_from_the_extraction_tree(monkeypatch, tmp_path):
    """The pipeline's extract op gives every document the same opt-out <meta> entries whether the page is
    parsed again for them or read from the extraction's tree (a WARC of shared records with robots tags)."""
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from filters.optout import stage as optout_stage
    from obelics.warc import iter_html_records
    from pipeline import stages
    from pipeline.profile import load_profile

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    for path in sorted(shared_path("data", "warc").glob("*.warc*"))[:6]:
        for r in iter_html_records(str(path)):
            http = StatusAndHeaders("200 OK", [("Content-Type", f"text/html; charset={r.charset}")], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(r.url, "response", payload=io.BytesIO(_with_robots_metas(r.payload)),
                                                http_headers=http))
    src = tmp_path / "in.warc.gz"
    src.write_bytes(buf.getvalue())
    profile = load_profile("default")
    real = optout_stage.page_signals
    trees = []

    def spy(record, token="", tree=None):
        trees.append(tree is not None)
        return real(record, token, tree)

    monkeypatch.setattr(optout_stage, "page_signals", spy)
    with_tree = [d.general_metadata for d in stages._extract(str(src), {"profile": profile})[0]]
    monkeypatch.setattr(optout_stage, "page_signals", lambda record, token="", tree=None: real(record, token))
    parsed = [d.general_metadata for d in stages._extract(str(src), {"profile": profile})[0]]
    assert with_tree == parsed
    assert len(parsed) > 20 and sum("optout_meta" in m for m in parsed) > 20 and all(trees)
