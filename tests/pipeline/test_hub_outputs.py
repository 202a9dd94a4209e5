"""A real (offline) sample run's outputs where users look for them: ``datasets`` loads the WebDataset shards, the
Parquet with embedded images, the run folder and the publish folder (through its card's configs), each with the
run's documents exactly once; the card says what the run did; ``report.html`` has its summary, every stage and
no empty plot."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from tests.pipeline.test_run import OFFLINE, sample_warc

SETS = OFFLINE + ["run.use_ray=false", "output.embed_images=true", "output.license=odc-by"]


@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    from pipeline.run import run

    out = tmp_path_factory.mktemp("hub") / "out"
    stats = run("default", out, [str(sample_warc())], overrides=SETS)
    assert stats["summary"]["documents"] >= 4
    return out, stats


def _load(*args, tmp, **kw):
    import datasets

    return datasets.load_dataset(*args, split="train", cache_dir=str(tmp / "hf-cache"), **kw)


def _docs(rows) -> Counter:
    """Each document as (texts, images), counted: the same documents exactly once compare equal."""
    return Counter((tuple(r["texts"]), tuple(r["images"])) for r in rows)


def _parquet_rows(out):
    import pyarrow.parquet as pq

    return [r for p in sorted((out / "parquet").glob("*.parquet"))
            for r in pq.read_table(p, columns=["texts", "images"]).to_pylist()]


def test_webdataset_shards_load_with_datasets(run_out, tmp_path):
    out, stats = run_out
    ds = _load("webdataset", data_files=str(out / "webdataset" / "*.tar"), tmp=tmp_path)
    assert ds.num_rows == stats["summary"]["documents"]
    assert _docs(r["json"] for r in ds) == _docs(_parquet_rows(out))
    assert len({r["json"]["doc_id"] for r in ds}) == ds.num_rows
    n_images = sum(1 for r in ds for b in r["images.mp"] if b is not None)
    assert n_images == stats["summary"]["images"]


def test_parquet_with_embedded_images_loads_as_images(run_out, tmp_path):
    import datasets
    from PIL import Image

    out, stats = run_out
    ds = _load("parquet", data_files=str(out / "parquet" / "*.parquet"), tmp=tmp_path)
    assert ds.features["embedded_images"] == datasets.Sequence(datasets.Image())
    assert ds.num_rows == stats["summary"]["documents"]
    images = [im for r in ds for im in r["embedded_images"] if im is not None]
    assert len(images) == stats["summary"]["images"] and all(isinstance(im, Image.Image) for im in images)
    for r in ds:
        assert [im is None for im in r["embedded_images"]] == [u is None for u in r["images"]]


def test_publish_folder_loads_through_its_card_once_and_the_run_folder_still_once(run_out, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    from pipeline.publish import publish

    out, stats = run_out
    folder = publish(out, "org/sample", dry_run=True)
    assert folder == out / ".hub"
    want = _docs(_parquet_rows(out))
    assert sum(want.values()) == stats["summary"]["documents"]
    assert _docs(_load(str(out), tmp=tmp_path / "a")) == want  # not twice: the publish folder is hidden
    card = DatasetCard.load(folder / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["default"]
    for config in card.data.configs:  # each config of the card loads the documents exactly once
        ds = _load(str(folder), config["config_name"], tmp=tmp_path / config["config_name"])
        assert _docs(ds) == want
        assert ds.features["embedded_images"] == datasets.Sequence(datasets.Image())  # from the card's features
    assert card.data.license == "odc-by"  # the run-time --set, not the profile's default
    text = card.text
    assert "1 local WARC file(s)" in text and "Common Crawl snapshot" not in text
    assert "read from the image records of the input WARC files" in text and "identifying User-Agent" not in text
    assert "embedded_images" in text and "license: odc-by" in text
    words_column = [line.split("|")[4].strip() for line in text.splitlines() if line.startswith("| extract ")]
    assert words_column and words_column[0].endswith(f"→ {stats['flow'][0]['word']:,}")  # the card's words column


def _html(out):
    return HTMLParser((out / "report.html").read_text(encoding="utf-8"))


def test_report_has_the_summary_every_stage_and_no_empty_plot(run_out):
    out, stats = run_out
    tree = _html(out)
    summary = tree.css_first("section#summary")
    assert summary is not None
    values = dict(zip([dt.text() for dt in summary.css("dt")], [dd.text() for dd in summary.css("dd")]))
    s = stats["summary"]
    assert values["documents out"] == f"{s['documents']:,}" and values["images out"] == f"{s['images']:,}"
    assert values["words out"] == f"{s['words']:,}" and int(s["words"]) > 0
    kept = s["documents"] / stats["read"]["html_records"]
    assert values["documents kept"].startswith(f"{kept:.1%}")
    assert "parquet/: 1 parquet file(s)" in values["outputs"] and "webdataset/: 1 webdataset file(s)" in values["outputs"]
    header = tree.css_first("p small").text()
    assert "1 parquet file(s)" in header and "shard" not in header  # real files, not stats fragments
    assert tree.css_first("section#warnings") is not None
    rows = tree.css("section#funnel tr[data-stage]")
    assert {r.attributes["data-stage"] for r in rows} >= {st["stage"] for st in stats["stages"]}
    words = {r.attributes["data-stage"]: r.css("td")[3].text() for r in rows if r.css("td")[1].text() == "word"}
    assert words["final"] == f"{s['words']:,}"  # the words funnel, filled stage by stage
    unit_stages = {f["stage"] for f in stats["flow"]}  # every per-unit stage (decisions over the run have none)
    assert unit_stages >= {"extract", "text_filters", "dedup.url", "optout_images", "optout_documents", "final"}
    assert unit_stages <= set(words)
    assert "—" not in words.values()
    figs = tree.css("div.fig")
    assert len(figs) >= 1 + 2  # the funnel and the two document distributions
    assert not tree.css("section#funnel .nodata")
    for fig in figs:
        assert int(fig.attributes["data-values"]) > 0
        svg = fig.css_first("svg").html
        assert "#4c72b0" in svg  # the bars themselves, not only axes
    funnel_svg = tree.css_first("section#funnel div.fig svg").html
    assert "words out" in funnel_svg and "#55a868" in funnel_svg  # the words panel is drawn


def test_report_warns_and_never_lists_an_error_as_nothing_dropped(tmp_path):
    from filters.base import FilterStats
    from obelics.records import ReadStats
    from pipeline.report.html import write_report

    read = ReadStats(records=40, html_records=28)
    opt = FilterStats("optout_documents")
    opt.seen("document", 28)
    opt.drop("document", "optout:error:tdmrep", 28)
    opt.event("optout:error:tdmrep", 28)
    opt.event("optout:document_without_url", 1)
    imgs = FilterStats("images.merge")
    imgs.seen("image", 147)
    imgs.drop("image", "dns", 147)
    loss = {"stage": "optout_documents", "level": "document", "dropped": 28, "in": 28, "share": 1.0,
            "reasons": {"optout:error:tdmrep": 28}}
    merged = {"read": read.as_dict(), "stages": [imgs.as_dict(), opt.as_dict()],
              "errors": [loss, {"stage": "images.merge", "level": "image", "dropped": 147, "in": 147, "share": 1.0,
                                "reasons": {"dns": 147}}],
              "systemic_loss": {"policy": "warn", "stages": [loss]},
              "summary": {"documents": 0, "images": 0, "words": 0, "units": 1},
              "distributions": {"images_per_document": [], "words_per_document": []}}
    write_report(merged, tmp_path / "report.html")
    tree = _html(tmp_path)
    items = tree.css("section#warnings li")
    kinds = [li.attributes["class"] for li in items]
    assert kinds[0] == "systemic" and "optout_documents lost 28 of 28 document(s)" in items[0].text()
    assert "error" in kinds and "empty" in kinds
    page = tree.html
    assert page.index("id=\"summary\"") < page.index("id=\"warnings\"") < page.index("id=\"funnel\"")
    funnel = tree.css_first("section#funnel")
    headings = [h.text() for h in funnel.css("h3")]
    assert headings[0] == "Errors" and "nothing dropped" not in funnel.text()
    error_rows = [tr.text() for tr in funnel.css("table")[1].css("tr")[1:]]
    assert any("optout:error:tdmrep" in r and "28 document(s)" in r for r in error_rows)
    events = funnel.css("table")[2].text()
    assert "optout:document_without_url" in events and "optout:error" not in events
    assert not tree.css("div.fig") or all(int(f.attributes["data-values"]) > 0 for f in tree.css("div.fig"))
    assert len(tree.css("section#documents .nodata")) == 2  # empty distributions: "no data", no blank axes


def test_almost_everything_dropped_is_a_warning_without_errors():
    from filters.base import FilterStats
    from pipeline.report.summary import run_warnings

    st = FilterStats("text_filters")
    st.seen("document", 200)
    st.drop("document", "number_words", 199)
    ws = run_warnings({"stages": [st.as_dict()], "summary": {"documents": 1, "images": 1, "words": 9}})
    assert [(w["kind"], w["stage"], w["level"]) for w in ws] == [("almost_all", "text_filters", "document")]
    assert "100%" in ws[0]["message"] and "number_words 199" in ws[0]["message"]
    st2 = FilterStats("text_filters")
    st2.seen("document", 200)
    st2.drop("document", "number_words", 100)
    assert run_warnings({"stages": [st2.as_dict()], "summary": {"documents": 100, "images": 1, "words": 9}}) == []


def test_stats_json_has_the_flow_of_every_stage(run_out):
    out, stats = run_out
    saved = json.loads((out / "stats.json").read_text())
    flow = {f["stage"]: f for f in saved["flow"]}
    assert flow["final"]["word"] == stats["summary"]["words"] and flow["final"]["document"] == stats["summary"]["documents"]
    assert flow["extract"]["word"] >= flow["text_filters"]["word"] >= flow["final"]["word"] > 0
