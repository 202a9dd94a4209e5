"""Funnel: shard stats merged by stage and reason; a static report.html that opens offline."""

from __future__ import annotations

import json
import re

from filters.base import FilterStats
from obelics.records import ReadStats
from pipeline.report import build_report
from pipeline.report.funnel import funnel_markdown, funnel_rows, merge_stats


def shard(k: int) -> dict:
    read = ReadStats(records=100 + k, html_records=80 + k)
    read.skip("not_html", 20)
    text = FilterStats("text_filters")
    text.seen("document", 80 + k)
    text.kept("document", 50)
    text.drop("document", "words<4", 20 + k)
    text.drop("document", "lang!=en", 10)
    text.seen("word", 10000)
    text.kept("word", 7000)
    merge = FilterStats("images.merge")
    merge.seen("document", 50)
    merge.kept("document", 50)
    merge.seen("image", 200)
    merge.kept("image", 150)
    merge.drop("image", "http_404", 30)
    merge.drop("image", "timeout", 20)
    merge.event("optout:error:spawning", 2)
    return {"read": read.as_dict(), "stages": [text.as_dict(), merge.as_dict()],
            "metrics": {"text_filters": {"stopword_ratio": [0.1 * i for i in range(10)]}},
            "thresholds": {"stopword_ratio": {"min": 0.3}},
            "distributions": {"images_per_document": [1, 2, 3], "words_per_document": [100, 200, 300]}}


def test_merge_sums_shards_by_stage_and_reason():
    m = merge_stats([shard(0), shard(1)])
    assert m["shards"] == 2
    assert m["read"]["records"] == 201 and m["read"]["skipped"] == {"not_html": 40}
    assert [s["stage"] for s in m["stages"]] == ["text_filters", "images.merge"]
    text, merge = m["stages"]
    assert text["dropped"]["document"] == {"words<4": 41, "lang!=en": 20}
    assert merge["dropped"]["image"] == {"http_404": 60, "timeout": 40}
    assert len(m["metrics"]["text_filters"]["stopword_ratio"]) == 20
    assert m["distributions"]["images_per_document"] == [1, 2, 3, 1, 2, 3]
    rows = funnel_rows(m)
    assert [r["stage"] for r in rows] == ["read", "text_filters", "images.merge"]
    assert rows[0]["levels"]["document"] == {"in": 201, "out": 161, "dropped": 40, "reasons": {"not_html": 40}}
    assert rows[2]["levels"]["image"]["out"] == 300 and rows[2]["levels"]["image"]["dropped"] == 100
    md = funnel_markdown(m)
    assert "| images.merge | 100 → 100 | 400 → 300 |" in md and "http_404 [image] (60)" in md


def test_report_files_open_offline(tmp_path):
    for k in range(3):
        (tmp_path / "shards" / f"{k:05d}").mkdir(parents=True)
        (tmp_path / "shards" / f"{k:05d}" / "stats.json").write_text(json.dumps(shard(k)))
    merged = build_report(tmp_path, profile="default")
    assert json.loads((tmp_path / "stats.json").read_text()) == merged
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") >= 1 + 2 + 1  # funnel, two distributions, one metric histogram
    assert "words&lt;4" in html and "http_404" in html and "optout:error:spawning" in html
    # nothing loaded from elsewhere: no scripts, no external images or stylesheets
    assert "<script" not in html
    assert not re.search(r'(src|href)="https?://', html)


def test_add_flow_fills_words_images_documents():
    from pipeline.report.funnel import add_flow

    before = [{"texts": ["one two three", None], "images": [None, "http://i/1.jpg"]},
              {"texts": ["four five"], "images": [None]}]
    after = before[:1]
    st = FilterStats("some_stage")
    st.seen("document", 2)
    st.kept("document", 1)
    st.drop("document", "too_short", 1)
    add_flow(st, before, after)
    d = st.as_dict()
    assert d["in"] == {"document": 2, "image": 1, "word": 5}
    assert d["out"] == {"document": 1, "image": 1, "word": 3}
    row = funnel_rows({"stages": [d]})[0]["levels"]
    assert row["word"]["in"] == 5 and row["word"]["out"] == 3


def test_document_flow_counts_words_images_documents_with_or_without_the_counter():
    from pipeline.report.funnel import WordCounter, document_flow, merge_flow

    docs = [{"texts": ["one two  three", None, "four\nfive"], "images": [None, "http://i/1.jpg", None]},
            {"texts": ["six"], "images": [None]}]
    words = WordCounter()
    first = document_flow(docs, "a", words)
    assert first == document_flow(docs, "a") == {"stage": "a", "document": 2, "image": 1, "word": 6}
    docs[0]["texts"][0] = "one"  # a step that rewrote a paragraph: a new string, counted afresh
    assert document_flow(docs, "b", words)["word"] == 4
    assert merge_flow([first, {"stage": "a", "document": 1, "image": 0, "word": 2},
                       {"stage": "b", "document": 1, "image": 1, "word": 1}]) == [
        {"stage": "a", "document": 3, "image": 1, "word": 8}, {"stage": "b", "document": 1, "image": 1, "word": 1}]


def test_histogram_is_one_path_with_its_text_as_text():
    """A histogram is drawn as one filled step path (not a patch per bin) and its labels stay SVG text (not
    glyph outlines): the report's figures cost half the CPU and bytes they did."""
    from pipeline.report.html import histogram_svg

    svg = histogram_svg([0.1, 0.2, 0.2, 0.3, 0.9], "ratio", {"max": 0.5}, bins=40)
    assert "ratio (n=5)" in svg and "max 0.5" in svg  # title and legend as text
    assert svg.count("<path") < 40  # bars: one step path (40 bins would be 40 patches)
    assert histogram_svg([], "empty") == ""
