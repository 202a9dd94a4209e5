"""Paragraph dedup within a domain (docs/reference.md §6.4).

Paragraphs are the pieces of every text node split on ``\\n\\n``. Within one domain (the URL's
netloc, as written), a paragraph seen ``min_count`` times or more, repeats inside one document
included, is deleted from every text of that domain, unless it contains the end-of-document token.
Texts may become ``""`` (cleaned later, as in the original). State is per domain: a cluster
partitions by domain, so memory follows the largest domain, not the dataset.

Paragraphs are compared by 64-bit xxh3 hash (keys table: ``doc_id, domain, hashes``), which keeps
the shuffled state at 8 bytes per paragraph.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from filters.base import FilterStats
from filters.dedup.common import DedupResult, as_table, empty_removed
from filters.dedup.config import DedupConfig, ParagraphDedupConfig
from obelics.document import domain_of

KEYS_SCHEMA = pa.schema([("doc_id", pa.string()), ("domain", pa.string()), ("hashes", pa.list_(pa.uint64()))])
DROPS_SCHEMA = pa.schema([("doc_id", pa.string()), ("drop_hashes", pa.list_(pa.uint64()))])


def _domains(table: pa.Table) -> list[str]:
    if "domain" in table.column_names:
        doms = table["domain"].to_pylist()
        if all(d is not None for d in doms):
            return doms
        urls = table["url"].to_pylist()
        return [d if d is not None else domain_of(u) for d, u in zip(doms, urls)]
    return [domain_of(u) for u in table["url"].to_pylist()]


def paragraph_keys(table: pa.Table, cfg: ParagraphDedupConfig | None = None) -> pa.Table:
    """Per document: its domain and the hash of each countable paragraph (EOD paragraphs excluded)."""
    cfg = cfg or ParagraphDedupConfig()
    f = xxhash.xxh3_64_intdigest
    sep, exempt = cfg.separator, cfg.exempt_substring
    hashes = []
    for texts in table["texts"].to_pylist():
        hashes.append([f(p.encode("utf-8", "surrogatepass")) for t in texts or () if t is not None for p in t.split(sep)
                       if not (exempt and exempt in p)])
    return pa.table({"doc_id": table["doc_id"].combine_chunks(), "domain": pa.array(_domains(table), pa.string()),
                     "hashes": pa.array(hashes, pa.list_(pa.uint64()))}, schema=KEYS_SCHEMA)


def duplicated_paragraphs(keys: pa.Table, min_count: int = 3) -> pa.Table:
    """(doc_id, drop_hashes) for documents holding a paragraph seen ``min_count``+ times in its domain.

    ``keys`` must hold every document of each of its domains (a whole dataset or one domain partition).
    """
    if keys.num_rows == 0:
        return DROPS_SCHEMA.empty_table()
    hashes = keys["hashes"].combine_chunks()
    para = pc.list_flatten(hashes).to_numpy(zero_copy_only=False).astype(np.uint64)
    if len(para) == 0:
        return DROPS_SCHEMA.empty_table()
    row = pc.list_parent_indices(hashes).to_numpy()
    dom_ids = pc.dictionary_encode(pc.fill_null(keys["domain"].combine_chunks(), "")).indices.to_numpy()
    pairs = np.stack([dom_ids[row].astype(np.uint64), para], axis=1)
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    dup = counts[inverse.reshape(-1)] >= min_count
    if not dup.any():
        return DROPS_SCHEMA.empty_table()
    rows, hs = row[dup], para[dup]
    order = np.lexsort((hs, rows))
    rows, hs = rows[order], hs[order]
    keep = np.ones(len(rows), bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (hs[1:] != hs[:-1])
    rows, hs = rows[keep], hs[keep]
    uniq_rows, starts = np.unique(rows, return_index=True)
    offsets = np.append(starts, len(rows)).astype(np.int32)
    doc_ids = keys["doc_id"].combine_chunks().take(pa.array(uniq_rows))
    drops = pa.ListArray.from_arrays(pa.array(offsets), pa.array(hs, pa.uint64()))
    return pa.table({"doc_id": doc_ids, "drop_hashes": drops}, schema=DROPS_SCHEMA)


def remove_paragraphs(texts: list, drop_hashes, cfg: ParagraphDedupConfig | None = None) -> tuple[list, int]:
    """``texts`` (one document's nodes) without the paragraphs whose hash is in ``drop_hashes``."""
    cfg = cfg or ParagraphDedupConfig()
    drop = set(drop_hashes or ())
    if not drop:
        return texts, 0
    f = xxhash.xxh3_64_intdigest
    sep, exempt = cfg.separator, cfg.exempt_substring
    out, n = [], 0
    for t in texts:
        if t is None:
            out.append(None)
            continue
        kept = []
        for p in t.split(sep):
            if f(p.encode("utf-8", "surrogatepass")) in drop and not (exempt and exempt in p):
                n += 1
            else:
                kept.append(p)
        out.append(sep.join(kept))
    return out, n


def apply_paragraph_drops(table: pa.Table, drops: pa.Table, cfg: ParagraphDedupConfig | None = None,
                          ) -> tuple[pa.Table, int]:
    """Rewrite the texts of the documents listed in ``drops``; returns the table and paragraphs removed."""
    if drops.num_rows == 0 or table.num_rows == 0:
        return table, 0
    by_id = dict(zip(drops["doc_id"].to_pylist(), drops["drop_hashes"].to_pylist()))
    ids = table["doc_id"].to_pylist()
    rows = [i for i, d in enumerate(ids) if d in by_id]
    if not rows:
        return table, 0
    texts = table["texts"].to_pylist()
    total = 0
    for i in rows:
        texts[i], n = remove_paragraphs(texts[i], by_id[ids[i]], cfg)
        total += n
    col = pa.array(texts, table.schema.field("texts").type)
    return table.set_column(table.column_names.index("texts"), "texts", col), total


def paragraph_dedup(docs, cfg: DedupConfig | None = None) -> DedupResult:
    """The whole pass over documents held in memory."""
    cfg = cfg or DedupConfig()
    table = as_table(docs)
    stats = FilterStats("dedup.paragraphs")
    stats.seen("document", table.num_rows)
    keys = paragraph_keys(table, cfg.paragraphs)
    stats.seen("paragraph", int(pc.sum(pc.list_value_length(keys["hashes"])).as_py() or 0))
    drops = duplicated_paragraphs(keys, cfg.paragraphs.min_count)
    out, n = apply_paragraph_drops(table, drops, cfg.paragraphs)
    if n:
        stats.drop("paragraph", f"paragraph_dedup:seen>={cfg.paragraphs.min_count}_in_domain", n)
    stats.kept("document", out.num_rows)
    return DedupResult(out, empty_removed(), stats)
