"""The ops of a run, wired to the pure functions of ``obelics`` and ``filters`` (no logic of their own).

Names here are what a profile lists in ``run.stages``. Each unit op returns the documents it keeps
and the stage statistics (``FilterStats.as_dict()`` shape: stage, in, out, dropped) for the funnel.
"""

from __future__ import annotations

from obelics.document import WebDocument, documents_to_table, table_to_documents
from obelics.records import ReadStats
from pipeline.ops import GlobalOp, UnitOp, register


def _stats(name: str):
    from filters.base import FilterStats

    return FilterStats(name)


# -- extraction --------------------------------------------------------------------------------------
def _extract(source, ctx):
    from obelics.extract import iter_warc_documents

    rs = ReadStats()
    docs = list(iter_warc_documents(source, ctx["profile"], stats=rs))
    st = _stats("extract")
    st.seen("record", rs.records)
    st.seen("documents", rs.html_records)
    for reason, n in rs.skipped.items():
        st.drop("record", reason, n)
    st.kept("document", len(docs))
    st.kept("image", sum(d.num_images for d in docs))
    st.kept("text", sum(d.num_texts for d in docs))
    return docs, [st.as_dict()]


register(UnitOp("extract", _extract, source=True))


# -- text ---------------------------------------------------------------------------------------------
def _url_ban(docs, ctx):
    """Drop image nodes whose URL has a banned word (reference §4.4; default: word boundaries)."""
    from filters.image import without_nodes
    from filters.text_filters import TextFiltersConfig, url_is_banned

    cfg = ctx["profile"].section("text_filters", TextFiltersConfig)
    st = _stats("url_ban")
    out = []
    for d in docs:
        st.seen("image", d.num_images)
        drop = []
        for k, url in enumerate(d.images):
            reason = url_is_banned(url, cfg) if url is not None else None
            if reason:
                st.drop("image", reason)
                drop.append(k)
        d = without_nodes(d, drop) if drop else d
        st.kept("image", d.num_images)
        out.append(d)
    return out, [st.as_dict()]


def _text_filters(docs, ctx):
    from filters.text_filters import filter_documents

    st = _stats("text_filters")
    kept = filter_documents(docs, ctx["profile"], st)
    return kept, [st.as_dict()]


def _doc_filters(docs, ctx):
    """Document-level checks again once images are merged and filtered (image count, text after dedup)."""
    from filters.text_filters import recheck_documents, text_filter_for

    st = _stats("doc_filters")
    chain = text_filter_for(ctx["profile"])
    out = []
    for d in docs:
        st.seen("document")
        reason = chain.image_count_verdict(d) if chain.cfg.doc_level else None
        if reason:
            st.drop("document", reason)
            continue
        st.kept("document")
        out.append(d)
    st2 = _stats("recheck")
    out = recheck_documents(out, ctx["profile"], st2)
    return out, [st.as_dict(), st2.as_dict()]


def _final(docs, ctx):
    from filters.final import final_processing

    st = _stats("final")
    return final_processing(docs, ctx["profile"], st), [st.as_dict()]


register(UnitOp("url_ban", _url_ban))
register(UnitOp("text_filters", _text_filters))
register(UnitOp("doc_filters", _doc_filters))
register(UnitOp("final", _final))


# -- dedup passes (pipeline.dedup: decide on Ray, apply per unit) ---------------------------------------
def _dedup_op(op_name: str, pass_name: str) -> GlobalOp:
    def decide(prev_dir, units, ctx):
        from pipeline.dedup import decide as dd

        return dd(pass_name, prev_dir, units, ctx)

    def apply(docs, decision, ctx):
        from pipeline.dedup import apply as da

        table, st = da(pass_name, documents_to_table(docs), decision, ctx)
        return list(table_to_documents(table)), [st.as_dict()]

    return GlobalOp(op_name, decide, apply)


for _op, _pass in [("dedup_url", "url"), ("dedup_minhash", "minhash"), ("dedup_image_urls", "image_url"),
                   ("dedup_paragraphs", "paragraphs"), ("dedup_image_sets", "image_set")]:
    register(_dedup_op(_op, _pass))


def _clean(docs, ctx):
    """Final cleaning of the original (S13): drop empty texts, merge adjacent texts, drop docs without text or image."""
    from filters.final import clean_nodes

    st = _stats("clean")
    out = []
    for d in docs:
        st.seen("document")
        texts, images, metadata = clean_nodes(d.texts, d.images, d.metadata)
        nd = WebDocument(list(texts), list(images), list(metadata), d.general_metadata, d.doc_id, d.capture_date)
        if nd.num_images == 0 or not any(t for t in nd.texts if t):
            st.drop("document", "clean:no_text_or_no_image")
            continue
        st.kept("document")
        out.append(nd)
    return out, [st.as_dict()]


register(UnitOp("clean", _clean))
