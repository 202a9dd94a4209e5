"""`obelics filter` end to end on Parquet, and `obelics resources fetch` against a loopback server."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from filters import resources
from obelics.cli import main
from obelics.document import WebDocument
from obelics.parquet import read_documents, write_documents

PROSE = ("The committee met on Tuesday to discuss the new park. Residents said that they would like more trees, "
         "and the mayor agreed that the plan should be changed before the vote.\n\nAfter the meeting, the city "
         "council published a report about the project and its costs. It said that the work would start in the "
         "spring and end before the winter.")


def _doc(texts_images, url):
    texts = [None if x.startswith("http") else x for x in texts_images]
    images = [x if x.startswith("http") else None for x in texts_images]
    meta = [{"src": x} if x.startswith("http") else None for x in texts_images]
    return WebDocument(texts, images, meta, {"url": url})


def test_cli_filter_counts_and_rejects(tmp_path, capsys):
    docs = [
        _doc(["https://x.org/a.jpg", PROSE], "https://x.org/1"),
        _doc([PROSE], "https://x.org/2"),                                      # no image
        _doc(["https://x.org/b.jpg", "Tiny text here."], "https://x.org/3"),   # too few words
    ]
    inp, out, rej = tmp_path / "in.parquet", tmp_path / "out.parquet", tmp_path / "rej.parquet"
    write_documents(inp, docs)
    rc = main(["filter", str(inp), "-o", str(out), "--profile", "default", "--rejects", str(rej),
               "--set", "langid.doc_level=false", "--set", "perplexity.doc_level=false",
               "--stage", "text+final", "--stats-json", str(tmp_path / "stats.json")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "dropped document:number_images  1" in printed
    assert "dropped document:number_words  1" in printed
    kept = list(read_documents(out))
    assert [d.url for d in kept] == ["https://x.org/1"]
    table = pq.read_table(rej)
    assert sorted(table.column("reason").to_pylist()) == ["document:number_images", "document:number_words"]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["text"]["in"]["document"] == 3 and stats["final"]["out"]["document"] == 1


def test_cli_filter_with_langid_and_perplexity(tmp_path, capsys):
    german = ("Der Ausschuss traf sich am Dienstag, um den neuen Park zu besprechen. Die Bewohner sagten, dass sie "
              "mehr Bäume möchten, und der Bürgermeister stimmte zu, dass der Plan geändert werden sollte.")
    docs = [_doc(["https://x.org/a.jpg", PROSE], "https://x.org/en"),
            _doc(["https://x.org/a.jpg", german], "https://x.org/de")]
    inp, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write_documents(inp, docs)
    # the stop-word checks would drop German first; switch them off to reach language id
    assert main(["filter", str(inp), "-o", str(out), "--set", "text_filters.node.stopword_ratio_min=null",
                 "--set", "text_filters.doc.stopword_ratio_min=null"]) == 0
    assert "dropped document:lang_id  1" in capsys.readouterr().out
    assert [d.url for d in read_documents(out)] == ["https://x.org/en"]


def test_cli_filter_bad_override(tmp_path, capsys):
    inp = tmp_path / "in.parquet"
    write_documents(inp, [_doc(["https://x.org/a.jpg", PROSE], "https://x.org/1")])
    assert main(["filter", str(inp), "-o", str(tmp_path / "o.parquet"), "--set", "text_filters.nope=1"]) == 2
    assert not (tmp_path / "o.parquet").exists()


# ---------------------------------------------------------------------------------------------------------
# resources fetch against a loopback server (never the network)
# ---------------------------------------------------------------------------------------------------------

FILES = {
    "/bigscience-workshop/data_tooling/master/ac_dc/stopwords.py":
        'stopwords = {\n  "de": ["der"],\n  "en": ["a", "the", "of"],\n}\n',
    "/bigscience-workshop/data_tooling/master/ac_dc/flagged_words.py":
        'flagged_words = {"en": ["porn", "cougar", "xxx"], "fr": ["x"]}\n',
    "/huggingface/OBELICS/main/build_obelics/13_final_processing.py":
        'import os\nSPAM_WORDS = [\n    "facebook",\n    "newletter",\n]\nSPAM_WORD_RATIO_CUTOFF = 0.12\n',
    "/huggingface/OBELICS/main/build_obelics/04_merge_web_docs_with_images.py":
        'URL_BAN_WORDS = ["logo", "icon"]\nraise SystemExit("never executed")\n',
    "/lid.176.bin": "FAKE-LID-MODEL",
}


@pytest.fixture
def loopback():
    requested = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            requested.append(self.path)
            body = FILES.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()


def test_fetch_from_loopback(tmp_path, loopback, monkeypatch):
    base, requested = loopback
    hf_calls = []

    def fake_hf(repo_id, filename, dest: Path):
        hf_calls.append((repo_id, filename))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"model")
        return dest

    done = resources.fetch(["wordlists", "langid", "kenlm"], tmp_path, github_raw=base, lid_url=f"{base}/lid.176.bin",
                           hf_download=fake_hf)
    wl = tmp_path / "wordlists"
    assert (wl / "stopwords_en.txt").read_text().split() == ["a", "the", "of"]
    assert (wl / "flagged_words_en.txt").read_text().split() == ["porn", "xxx"]  # minus "cougar"
    assert (wl / "spam_words_en.txt").read_text().split() == ["facebook", "newletter"]
    assert (wl / "image_url_ban_substrings.txt").read_text().split() == ["logo", "icon"]
    assert (tmp_path / "lid.176.bin").read_text() == "FAKE-LID-MODEL"
    assert hf_calls == [("edugp/kenlm", "wikipedia/en.arpa.bin"), ("edugp/kenlm", "wikipedia/en.sp.model")]
    assert len(done["kenlm"]) == 2
    # a second fetch keeps what is there
    n = len(requested)
    resources.fetch(["wordlists", "langid"], tmp_path, github_raw=base, lid_url=f"{base}/lid.176.bin")
    assert len(requested) == n
    # the filters find the fetched lists through the cache
    monkeypatch.setenv("OBELICS_RESOURCES", str(tmp_path))
    monkeypatch.setenv("OBELICS_SHARED", str(tmp_path / "no-shared"))
    from filters import wordlists

    wordlists._original_list.cache_clear()
    try:
        assert wordlists.load_wordlist("stopwords", "obelics-2023") == {"a", "the", "of"}
        assert main(["resources", "status", "--dir", str(tmp_path)]) == 0
    finally:
        wordlists._original_list.cache_clear()


def test_fetch_failure_raises(tmp_path, loopback):
    base, _ = loopback
    import requests

    with pytest.raises(requests.HTTPError):
        resources.fetch(["langid"], tmp_path, lid_url=f"{base}/missing.bin")
    assert not (tmp_path / "lid.176.bin").exists()


def test_extract_list_never_executes():
    src = 'import os\nos.system("rm -rf /")\nWORDS = ["a", "b"]\n'
    assert resources.extract_list(src, "WORDS") == ["a", "b"]
    with pytest.raises(ValueError):
        resources.extract_list(src, "MISSING")
    with pytest.raises(ValueError):
        resources.extract_list("WORDS = [1, 2]\n", "WORDS")


