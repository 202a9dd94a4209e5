"""A fused unit stage: ops on Arrow tables (``UnitOp.arrow``) beside ops on documents, and the stage's flows."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq

from obelics.document import WebDocument
from obelics.parquet import write_documents
from pipeline import executor
from pipeline.ops import UnitOp, get_op
from pipeline.profile import load_profile
from pipeline.run import _fused


def _docs(n: int = 600) -> list[WebDocument]:
    docs = []
    for i in range(n):
        texts = [f"page {i} says hello world", None, "shared words" if i % 3 else f"x {i}"]
        images = [None, f"https://img.example/{i % 7}.jpg", None]
        meta = [None, {"alt": f"é {i}", "src": images[1]}, None]
        gm = {"url": f"https://h{i % 5}.example/p/{i}", "warc_filename": "w.warc.gz", "warc_record_offset": i * 10,
              "warc_record_length": 9, "x": 1.5}
        docs.append(WebDocument(texts=texts, images=images, metadata=meta, general_metadata=gm,
                                capture_date=f"2023-01-0{1 + i % 9}"))
    return docs


def _keep_even_table(table, ctx):
    return table.filter(pc.equal(pc.bit_wise_and(table["warc_record_offset"], 16), 0)), [{"stage": "even"}]


def _keep_even_docs(docs, ctx):
    return [d for d in docs if not d.general_metadata["warc_record_offset"] & 16], [{"stage": "even"}]


def _drop_first_text(docs, ctx):
    return [WebDocument(texts=[None] + d.texts[1:2] + d.texts[2:], images=[d.texts[0]] + d.images[1:],
                        metadata=[{"t": 1}] + d.metadata[1:], general_metadata=d.general_metadata,
                        doc_id=d.doc_id, capture_date=d.capture_date) for d in docs], [{"stage": "swap"}]


def _run(tmp_path, name: str, ops: list[UnitOp]) -> tuple[object, list]:
    prev = tmp_path / "00-in"
    prev.mkdir(exist_ok=True)
    if not (prev / "u.parquet").exists():
        write_documents(str(prev / "u.parquet"), _docs())
    executor.run_unit_stage(name, str(tmp_path), "00-in", {"u": None}, _fused(ops), {}, use_ray=False)
    marker = json.loads((tmp_path / name / "u.stats.json").read_text())
    return pq.read_table(tmp_path / name / "u.parquet"), marker["stats"]


def test_a_stage_of_table_ops_makes_no_document_object_and_writes_what_the_document_ops_write(tmp_path,
                                                                                            monkeypatch):
    by_docs = _run(tmp_path, "01-docs", [UnitOp("even", _keep_even_docs)])
    made = []
    real = WebDocument.from_row.__func__
    monkeypatch.setattr(WebDocument, "from_row", classmethod(lambda cls, row: made.append(1) or real(cls, row)))
    by_table = _run(tmp_path, "01-table", [UnitOp("even", _keep_even_table, arrow=True)])
    assert made == []  # read, op and write on the unit's table
    assert by_table[0].equals(by_docs[0]) and 0 < by_table[0].num_rows < 600
    assert by_table[1] == by_docs[1]  # the same funnel stats and flows (documents, images, words)
    # the same row groups as the document writer's (batches of 256)
    assert (pq.ParquetFile(tmp_path / "01-table" / "u.parquet").metadata.num_row_groups
            == pq.ParquetFile(tmp_path / "01-docs" / "u.parquet").metadata.num_row_groups > 1)


def test_mixed_table_and_document_ops_convert_only_where_the_form_changes(tmp_path, monkeypatch):
    by_docs = _run(tmp_path, "01-docs", [UnitOp("even", _keep_even_docs), UnitOp("swap", _drop_first_text),
                                         UnitOp("even2", _keep_even_docs)])
    made = []
    real = WebDocument.from_row.__func__
    monkeypatch.setattr(WebDocument, "from_row", classmethod(lambda cls, row: made.append(1) or real(cls, row)))
    mixed = _run(tmp_path, "01-mixed", [UnitOp("even", _keep_even_table, arrow=True), UnitOp("swap", _drop_first_text),
                                        UnitOp("even2", _keep_even_table, arrow=True)])
    assert mixed[0].equals(by_docs[0])
    assert mixed[1] == by_docs[1]
    assert len(made) == by_docs[0].num_rows  # one table -> documents conversion, of the rows the first op kept


def test_a_stages_step_ops_split_each_text_once(monkeypatch):
    """A step op counts the words its documents have left after each step (the funnel's flow) with the
    fused stage's counter: a text that no op changed is split once in the stage, not once per op."""
    import pipeline.report.funnel as funnel

    split = []
    real = funnel.count_words
    monkeypatch.setattr(funnel, "count_words", lambda t: split.append(t) or real(t))
    docs = _docs(50)
    ctx = {"profile": load_profile("default"), "decisions": {}}
    out, stats = _fused([UnitOp("same", lambda d, c: (d, [{"stage": "same"}])), get_op("url_ban"),
                         get_op("url_ban")])(docs, ctx)
    assert len(out) == 50 and [s["flow"]["stage"] for s in stats if "flow" in s] == ["same", "url_ban", "url_ban"]
    texts = {id(t): t for d in docs for t in d.texts if t}  # ("shared words" is one object)
    assert len(split) == len(texts) and {id(t) for t in split} == set(texts)  # each text object split once
