"""``obelics extract``: WARC and HTML inputs to Parquet, counts by reason, atomic output."""

from __future__ import annotations

import json

import pytest

from obelics.cli import main
from obelics.parquet import read_documents
from obelics.sample import sample_warc_path
from obelics.sample.build_sample import PAGES_DIR, read_manifest


@pytest.fixture(scope="module")
def sample():
    return str(sample_warc_path())


def _run(*argv) -> int:
    return main(["extract", *map(str, argv), "--no-progress"])


def test_warc_and_html_inputs(sample, tmp_path, capsys):
    out, js = tmp_path / "docs.parquet", tmp_path / "stats.json"
    html = PAGES_DIR / "blog-older-cat.html"
    rc = _run(sample, html, "--url", "https://example.org/cat.html", "-o", out, "--stats-json", js)
    assert rc == 0
    docs = list(read_documents(out))
    pages = read_manifest()
    assert [d.url for d in docs] == [p.url for p in pages] + ["https://example.org/cat.html"]
    assert all(d.doc_id for d in docs) and len({d.doc_id for d in docs}) == len(docs)
    warc_doc = docs[0]
    assert warc_doc.general_metadata["warc_filename"] == "sample.warc.gz"
    assert warc_doc.general_metadata["warc_record_length"] > 0 and warc_doc.capture_date
    stats = json.loads(js.read_text())
    assert stats["documents"] == len(pages) + 1 and stats["html_records"] == len(pages) + 1
    assert stats["skipped"]["http_status"] == 2 and stats["skipped"]["warcinfo"] == 1
    assert stats["images"] == sum(d.num_images for d in docs) > 0
    assert stats["text_nodes"] == sum(d.num_texts for d in docs)
    err = capsys.readouterr().err
    assert "skipped: " in err and "http_status 2" in err and "documents: 8" in err
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_urls_tsv_and_profile(tmp_path):
    tsv = tmp_path / "urls.tsv"
    files = sorted(PAGES_DIR.glob("*.html"))[:3]
    tsv.write_text("path\turl\n" + "".join(f"{f}\thttps://example.org/{f.stem}/\n" for f in files))
    out = tmp_path / "o.parquet"
    assert _run(*files, "--urls", tsv, "-o", out, "--profile", "obelics-2023") == 0
    assert [d.url for d in read_documents(out)] == [f"https://example.org/{f.stem}/" for f in files]


def test_profile_override_reaches_the_reader(sample, tmp_path):
    out, js = tmp_path / "o.parquet", tmp_path / "s.json"
    assert _run(sample, "-o", out, "--set", "warc.max_record_bytes=1000", "--stats-json", js) == 0
    stats = json.loads(js.read_text())
    assert stats.get("documents", 0) == 0 and stats["skipped"]["oversized"] >= 7
    assert list(read_documents(out)) == []


def test_errors_are_clear_and_leave_no_output(sample, tmp_path, capsys):
    out = tmp_path / "o.parquet"
    assert _run(PAGES_DIR / "blog-older-cat.html", "-o", out) == 2  # no page URL
    assert "no page URL" in capsys.readouterr().err
    assert _run(tmp_path / "missing.warc.gz", "-o", out) == 2
    assert _run(sample, PAGES_DIR / "blog-older-cat.html", PAGES_DIR / "de-mond-beobachten.html",
                "--url", "https://x.example/", "-o", out) == 2  # --url with two HTML inputs
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_failing_url_input_is_counted_not_fatal(sample, tmp_path):
    from tests.obelics.test_warc_http import _Server

    out, js = tmp_path / "o.parquet", tmp_path / "s.json"
    with _Server(b"") as srv:
        rc = _run(srv.url.replace("test.warc.gz", "missing.warc.gz"), sample, "-o", out, "--stats-json", js)
    assert rc == 1
    stats = json.loads(js.read_text())
    assert stats["inputs_failed"] == 1 and stats["documents"] == len(read_manifest())
    assert len(list(read_documents(out))) == len(read_manifest())


def test_one_extract_and_skip_loop_for_the_cli_and_the_pipeline(sample, tmp_path, monkeypatch):
    """A page whose extraction raises is skipped and counted the same way by ``obelics extract`` and by
    the pipeline's extract op: both go through ``obelics.extract.iter_extracted``."""
    import obelics.extract as extract_mod
    from obelics.config import load_profile
    from pipeline.stages import _extract

    pages = read_manifest()
    real = extract_mod.extract_record

    def flaky(record, profile="default", on_tree=None):
        if record.url == pages[1].url:
            raise RecursionError("deep page")
        return real(record, profile, on_tree)

    monkeypatch.setattr(extract_mod, "extract_record", flaky)
    monkeypatch.setattr(extract_mod, "extract_html", lambda *a, **k: 1 / 0)
    out, js = tmp_path / "o.parquet", tmp_path / "s.json"
    assert _run(sample, PAGES_DIR / "blog-older-cat.html", "--url", "https://x.example/", "-o", out,
                "--stats-json", js) == 0
    stats = json.loads(js.read_text())
    assert stats["skipped"]["extract_error:RecursionError"] == 1
    assert stats["skipped"]["extract_error:ZeroDivisionError"] == 1  # the HTML input
    assert [d.url for d in read_documents(out)] == [p.url for p in pages if p.url != pages[1].url]
    docs, op_stats = _extract(sample, {"profile": load_profile("default")})
    assert op_stats[0]["read"]["skipped"]["extract_error:RecursionError"] == 1
    assert [d.url for d in docs] == [p.url for p in pages if p.url != pages[1].url]
