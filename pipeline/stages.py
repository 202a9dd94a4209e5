"""The ops of a run, wired to the pure functions of ``obelics`` and ``filters`` (no logic of their own).

Names here are what a profile lists in ``run.stages``. Each unit op returns the documents it keeps
and the stage statistics (``FilterStats.as_dict()`` shape: stage, in, out, dropped) for the funnel.
"""

from __future__ import annotations

import functools
import logging
import re

from obelics.document import WebDocument, documents_to_table, table_to_documents
from obelics.records import ReadStats
from pipeline.ops import GlobalOp, UnitOp, register

log = logging.getLogger("obelics.run")


def _stats(name: str):
    from filters.base import FilterStats

    return FilterStats(name)


# -- extraction --------------------------------------------------------------------------------------
_META_HINT = re.compile(rb"<meta[^>]{0,200}name\s*=\s*[\"']?(robots|tdm-|obelics)", re.I)
# Page headers the document opt-out reads; kept in general_metadata until pipeline.finish strips them.
_OPTOUT_HEADERS = ("x-robots-tag", "tdm-reservation", "tdm-policy")


def _extract(source, ctx):
    """Read one WARC and extract its HTML records; keep the page's opt-out signals for the opt-out op."""
    from filters.optout.html_meta import meta_signals
    from obelics.extract import extract_config, extract_record
    from obelics.warc import WarcConfig, iter_html_records

    profile = ctx["profile"]
    cfg = extract_config(profile)
    token = profile.get("optout.user_agent_token", "") or ""
    rs = ReadStats()
    docs = []
    try:
        for record in iter_html_records(source, profile.section("warc", WarcConfig), rs):
            try:
                doc = extract_record(record, cfg)
            except Exception as e:  # noqa: BLE001 - one bad page never stops a run
                rs.skip(getattr(e, "skip_reason", None) or f"extract_error:{type(e).__name__}")
                continue
            headers = {k: v for k, v in record.http_headers.items() if k in _OPTOUT_HEADERS}
            if headers:
                doc.general_metadata["http_headers"] = headers
            if _META_HINT.search(record.payload[:300_000]):
                meta = meta_signals(record.html, token)
                if meta:
                    doc.general_metadata["optout_meta"] = meta
            docs.append(doc)
    except Exception as e:  # noqa: BLE001 - an unreadable input (404, retries exhausted) never stops the run
        # the reader already retried and resumed by Range; what was read is kept, the rest counted
        log.warning("input %s: %s: %s", source, type(e).__name__, e)
        rs.skip(f"input_error:{type(e).__name__}")
    st = _stats("extract")
    st.seen("document", rs.html_records)
    st.kept("document", len(docs))
    st.kept("image", sum(d.num_images for d in docs))
    st.kept("text", sum(d.num_texts for d in docs))
    return docs, [{"read": rs.as_dict()}, st.as_dict()]


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


METRIC_SAMPLE_DOCS = 500  # documents per unit whose metrics go to the report's histograms


def _document_metrics(docs, ctx) -> dict:
    """Document-level metric values of (a deterministic sample of) ``docs`` and the profile's cut-offs,
    in the funnel's ``metrics``/``thresholds`` shape, for the report's histograms."""
    from filters.text_filters import text_filter_for
    from filters.text_metrics import (
        character_repetition_ratio,
        get_words,
        punctuation_ratio,
        special_character_ratio,
        word_ratio,
        word_repetition_ratio,
    )

    chain = text_filter_for(ctx["profile"])
    c = chain.cfg.doc
    step = max(1, -(-len(docs) // METRIC_SAMPLE_DOCS))
    values: dict[str, list] = {k: [] for k in ("number_words", "character_repetition_ratio", "word_repetition_ratio",
                                               "special_character_ratio", "stopword_ratio", "flagged_word_ratio",
                                               "punctuation_ratio")}
    for d in docs[::step]:
        full = "\n\n".join(t for t in d.texts if t)
        if not full:
            continue
        words = get_words(full)
        values["number_words"].append(len(words))
        values["character_repetition_ratio"].append(character_repetition_ratio(full, c.character_repetition_length))
        values["word_repetition_ratio"].append(word_repetition_ratio(words, c.word_repetition_length))
        values["special_character_ratio"].append(special_character_ratio(full))
        values["stopword_ratio"].append(word_ratio(words, chain.lists.stopwords))
        values["flagged_word_ratio"].append(word_ratio(words, chain.lists.flagged))
        values["punctuation_ratio"].append(punctuation_ratio(full))
    cut = {"number_words": (c.number_words_min, c.number_words_max),
           "character_repetition_ratio": (None, c.character_repetition_max),
           "word_repetition_ratio": (None, c.word_repetition_max),
           "special_character_ratio": (None, c.special_character_ratio_max),
           "stopword_ratio": (c.stopword_ratio_min, None), "flagged_word_ratio": (None, c.flagged_word_ratio_max),
           "punctuation_ratio": (c.punctuation_ratio_min, None)}
    stage = "text_filters (document level, before filtering)"
    thresholds = {f"{stage}.{k}": {kk: v for kk, v in (("min", lo), ("max", hi)) if v is not None}
                  for k, (lo, hi) in cut.items()}
    return {"metrics": {stage: values}, "thresholds": thresholds}


def _text_filters(docs, ctx):
    from filters.text_filters import filter_documents

    st = _stats("text_filters")
    metrics = _document_metrics(docs, ctx)
    kept = filter_documents(docs, ctx["profile"], st)
    return kept, [st.as_dict(), metrics]


def _doc_filters(docs, ctx):
    """The document image-count rule again once images are merged and filtered (failed downloads count)."""
    from filters.text_filters import text_filter_for

    st = _stats("doc_filters")
    chain = text_filter_for(ctx["profile"])
    out = []
    for d in docs:
        st.seen("document")
        reason = chain.image_count_verdict(d) if chain.cfg.enabled and chain.cfg.doc_level else None
        st.decide(d, reason, out)
    return out, [st.as_dict()]


def _recheck(docs, ctx):
    """All document-level checks again after dedup changed documents (no-op where the profile says so)."""
    from filters.text_filters import recheck_documents

    st = _stats("recheck")
    return recheck_documents(docs, ctx["profile"], st), [st.as_dict()]


def _final(docs, ctx):
    from filters.final import final_processing

    st = _stats("final")
    return final_processing(docs, ctx["profile"], st), [st.as_dict()]


register(UnitOp("url_ban", _url_ban))
register(UnitOp("text_filters", _text_filters))
register(UnitOp("doc_filters", _doc_filters))
register(UnitOp("recheck", _recheck))
register(UnitOp("final", _final))


# -- dedup passes (pipeline.dedup: decide over all units, apply per unit) ---------------------------------------
@functools.lru_cache(maxsize=2)
def _load_phash(path: str, mtime_ns: int) -> dict[str, str]:
    import json

    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _with_phash(ctx: dict) -> dict:
    """``ctx`` plus ``phash_canonical`` when the image-table decision computed pHash clusters."""
    import os

    path = (ctx["decisions"].get("image_table") or {}).get("phash_file")
    # keyed by mtime too: an extended run decides again into the same file
    return dict(ctx, phash_canonical=_load_phash(path, os.stat(path).st_mtime_ns)) if path else ctx


def _dedup_op(op_name: str, pass_name: str) -> GlobalOp:
    def decide(prev_dir, units, ctx):
        from pipeline.dedup import decide as dd

        return dd(pass_name, prev_dir, units, _with_phash(ctx))

    def apply(docs, decision, ctx):
        from pipeline.dedup import apply as da

        table, st = da(pass_name, documents_to_table(docs), decision, _with_phash(ctx))
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
        empty = nd.num_images == 0 or not any(t for t in nd.texts if t)
        st.decide(nd, "clean:no_text_or_no_image" if empty else None, out)
    return out, [st.as_dict()]


register(UnitOp("clean", _clean))


# -- images ---------------------------------------------------------------------------------------------
def _image_table_decide(prev_dir, units, ctx):
    """The unique image URLs of every unit, fetched once: img2dataset (web) or the input WARCs' image records."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from pipeline.images.config import ImagesConfig
    from pipeline.images.download import download_images
    from pipeline.images.offline import warc_image_table

    cfg = ctx["profile"].section("images", ImagesConfig)
    urls: set[str] = set()
    for u in units:
        path = Path(prev_dir) / f"{u}.parquet"
        if path.exists():
            for lst in pq.read_table(path, columns=["images"])["images"].to_pylist():
                urls.update(x for x in lst or () if x)
    ddir = Path(ctx["decision_dir"])
    rs = ReadStats()
    if cfg.source == "warc":
        table = warc_image_table([ctx["sources"][u] for u in units], ddir / "table", cfg, wanted=sorted(urls), stats=rs)
    else:
        table = download_images(sorted(urls), ddir / "download", cfg)
    counts = table.counts()
    st = _stats("image_table")
    st.seen("image", len(urls))  # unique image URLs of the whole run
    for reason, n in sorted(counts.items()):
        if reason != "success":
            st.drop("image", reason, n)
    st.kept("image", counts.get("success", 0))
    decision = {"table_dir": str(table.folder), "stats": [st.as_dict()]}
    phash_file = _phash_clusters(table, ctx["profile"], ddir)
    if phash_file:
        decision["phash_file"] = phash_file
    return decision


def _phash_clusters(table, profile, ddir) -> str | None:
    """{url: canonical url} of near-identical downloaded images, when the image-URL pass counts them as one.

    Hashes are computed part by part of the image table (bounded memory); written as JSON beside the
    decision. None when the profile does not use pHash.
    """
    from pathlib import Path

    import pyarrow.parquet as pq

    from filters.dedup.phash import phash, phash_clusters
    from pipeline.dedup import config_of
    from pipeline.markers import write_json_atomic

    cfg = config_of(profile)
    if not (cfg.image_url.enabled and cfg.image_url.use_phash and cfg.phash.enabled):
        return None
    urls, hashes = [], []
    for part in table.parts():
        t = pq.read_table(part, columns=["url", "status", "bytes"])
        for url, status, data in zip(t["url"].to_pylist(), t["status"].to_pylist(), t["bytes"].to_pylist()):
            if status == "success" and data:
                urls.append(url)
                hashes.append(phash(data, cfg.phash.hash_size))
    clusters = phash_clusters(urls, hashes, cfg.phash.max_distance)
    path = Path(ddir) / "phash_canonical.json"
    write_json_atomic(path, clusters)
    return str(path)


def image_table_of(ctx):
    from pipeline.images.table import ImageTable

    decision = ctx["decisions"].get("image_table")
    if not decision:
        raise ValueError("this op needs the image_table op earlier in run.stages")
    return ImageTable(decision["table_dir"])


def _merge_images(docs, ctx):
    from pipeline.images.merge import merge_table, strip_image_columns

    st = _stats("merge_images")
    merged = merge_table(documents_to_table(docs), image_table_of(ctx), st, with_bytes=False)
    return list(table_to_documents(strip_image_columns(merged))), [st.as_dict()]


def _image_filters(docs, ctx):
    from filters.image import image_filter

    st = _stats("image_filters")
    return image_filter(docs, ctx["profile"], st), [st.as_dict()]


def _unit_urls(docs) -> set[str]:
    return {u for d in docs for u in d.images if u}


def _optout(docs, ctx):
    from filters.optout.stage import optout_filter_documents, optout_filter_images

    st_i, st_d = _stats("optout_images"), _stats("optout_documents")
    headers = image_table_of(ctx).headers_by_url(_unit_urls(docs)) if "image_table" in ctx["decisions"] else {}
    docs = optout_filter_images(docs, headers, ctx["profile"], st_i)
    docs = optout_filter_documents(docs, ctx["profile"], st_d)
    return docs, [st_i.as_dict(), st_d.as_dict()]


NSFW_CHUNK_DOCS = 256  # documents scored together: bounds the image bytes held in memory


def _nsfw(docs, ctx):
    from filters.nsfw import NsfwConfig, load_classifier, nsfw_filter

    profile = ctx["profile"]
    st = _stats("nsfw")
    cfg = profile.section("nsfw", NsfwConfig)
    if not cfg.enabled:
        return st.pass_through(docs), [st.as_dict()]
    classifier = load_classifier(cfg)
    table = image_table_of(ctx)
    out = []
    for i in range(0, len(docs), NSFW_CHUNK_DOCS):
        chunk = docs[i : i + NSFW_CHUNK_DOCS]
        rows = table.lookup(_unit_urls(chunk), with_bytes=True)
        blobs = {u: r["bytes"] for u, r in rows.items() if r.get("status") == "success"}
        out.extend(nsfw_filter(chunk, blobs, profile, st, classifier=classifier))
    return out, [st.as_dict()]


register(GlobalOp("image_table", _image_table_decide))
register(UnitOp("merge_images", _merge_images))
register(UnitOp("image_filters", _image_filters))
register(UnitOp("optout", _optout))
register(UnitOp("nsfw", _nsfw))
