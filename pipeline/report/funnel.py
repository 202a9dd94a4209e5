"""The funnel: documents, images and words in and out of every stage, drops by reason, across shards.

A shard's ``stats.json`` (written by the run for each shard) is a JSON object; every key is optional:

``read``
    ``ReadStats.as_dict()`` of the WARC reading (records, html_records, skipped by reason).
``stages``
    a list, in run order, of ``FilterStats.as_dict()`` (``{"stage", "in", "out", "dropped"}``; levels
    are free strings: ``document``, ``image``, ``word``, ``node``, ``paragraph``...).
``metrics``
    ``{stage: {metric: [values...]}}``: filter metric values, for histograms.
``thresholds``
    ``{metric: {"min": x, "max": y}}``: the profile's cut-offs drawn on those histograms.
``distributions``
    ``{"images_per_document": [...], "words_per_document": [...]}`` of the output documents.
``outputs``
    the writers' per-file stats (``pipeline.writers``).
``flow``
    a list, in run order, of ``{"stage", "document", "image", "word"}``: what was left after the unit op
    whose last funnel stage is ``stage`` (:func:`document_flow`, summed by :func:`merge_flow`); it fills
    the funnel's levels a stage does not count itself (words above all).

:func:`merge_stats` sums shards into one object of the same shape (the run's ``stats.json``);
:func:`funnel_rows` turns it into one row per stage for the report and the dataset card.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from filters.base import FilterStats
from filters.text_metrics import count_words
from obelics.records import ReadStats

LEVEL_ORDER = ["document", "image", "word", "words", "node", "paragraph", "text"]
MAX_VALUES = 200_000  # metric values kept per metric after merging (a uniform sample beyond that)


def load_stats(paths: Iterable[str | Path]) -> list[dict]:
    """Read shard ``stats.json`` files (local paths or object-store locations)."""
    from obelics import storage

    return [storage.read_json(p) for p in paths]


def _read_stats(d: dict) -> ReadStats:
    r = ReadStats(d.get("records", 0), d.get("html_records", 0), d.get("bytes_read", 0))
    r.skipped.update(d.get("skipped", {}))
    return r


class Reservoir:
    """A uniform sample of at most ``k`` values of a stream (Vitter's algorithm R, seeded): every value
    while there are at most ``k``, in order; memory stays ``k`` values however long the stream."""

    def __init__(self, k: int | None = None, seed: int = 0):
        self.k, self.seen, self.values = MAX_VALUES if k is None else k, 0, []
        self._rng = random.Random(seed)

    def extend(self, values: Iterable) -> None:
        values = list(values)
        room = self.k - len(self.values)
        if len(values) <= room:  # the common case: nothing to replace
            self.values.extend(values)
            self.seen += len(values)
            return
        for v in values:
            self.seen += 1
            if len(self.values) < self.k:
                self.values.append(v)
            else:
                j = self._rng.randrange(self.seen)
                if j < self.k:
                    self.values[j] = v


class StatsMerger:
    """Shard stats summed one shard at a time (:func:`merge_stats`, streaming): memory is that of the sums
    and of at most :data:`MAX_VALUES` values per metric and distribution, whatever the number of shards."""

    def __init__(self):
        self.shards = 0
        self.read: ReadStats | None = None
        self.stages: dict[str, FilterStats] = {}
        self.metrics: dict[str, dict[str, Reservoir]] = {}
        self.thresholds: dict = {}
        self.dists: dict[str, Reservoir] = {}
        self.outputs: list = []

    def add(self, s: dict) -> None:
        """Add one shard's stats (the shape described in the module docstring)."""
        self.shards += 1
        if s.get("read"):
            self.read = (self.read or ReadStats()).merge(_read_stats(s["read"]))
        st = s.get("stages") or []
        if isinstance(st, dict):
            st = [{"stage": k, **v} for k, v in st.items()]
        for d in st:
            fs = FilterStats.from_dict(d)
            if fs.stage in self.stages:
                self.stages[fs.stage].merge(fs)
            else:
                self.stages[fs.stage] = fs
        for stage, ms in (s.get("metrics") or {}).items():
            for name, values in ms.items():
                self.metrics.setdefault(stage, {}).setdefault(name, Reservoir()).extend(
                    v for v in values if v is not None)
        self.thresholds.update(s.get("thresholds") or {})
        for name, values in (s.get("distributions") or {}).items():
            self.dists.setdefault(name, Reservoir()).extend(values)
        self.outputs.extend(s.get("outputs") or [])

    def result(self) -> dict:
        """The merged stats (stage order: the order first seen)."""
        merged = {"shards": self.shards, "stages": [fs.as_dict() for fs in self.stages.values()]}
        if self.read is not None:
            merged["read"] = self.read.as_dict()
        if self.metrics:
            merged["metrics"] = {st: {m: r.values for m, r in ms.items()} for st, ms in self.metrics.items()}
        if self.thresholds:
            merged["thresholds"] = self.thresholds
        if self.dists:
            merged["distributions"] = {k: r.values for k, r in self.dists.items()}
        if self.outputs:
            merged["outputs"] = self.outputs
        return merged


def merge_stats(shards: Iterable[dict]) -> dict:
    """Sum shard stats (same shape in, same shape out); stage order is the order first seen. Metric values
    and distributions beyond :data:`MAX_VALUES` are a uniform sample (:class:`Reservoir`)."""
    merger = StatsMerger()
    for s in shards:
        merger.add(s)
    return merger.result()


def _levels(stages: list[dict]) -> list[str]:
    seen = Counter()
    for s in stages:
        for part in ("in", "out", "dropped"):
            seen.update((s.get(part) or {}).keys())
    return sorted(seen, key=lambda x: (LEVEL_ORDER.index(x) if x in LEVEL_ORDER else len(LEVEL_ORDER), x))


class WordCounter:
    """Whitespace-separated words of a text, each string object split once: the steps of a unit keep the
    strings of the paragraphs they keep, so counting after every step costs a lookup per paragraph. Holds
    the strings it counted (so an id is never reused while cached); make one per unit."""

    def __init__(self):
        self._seen: dict[int, tuple[str, int]] = {}

    def __call__(self, text: str) -> int:
        hit = self._seen.get(id(text))
        if hit is None or hit[0] is not text:
            hit = self._seen[id(text)] = (text, count_words(text))
        return hit[1]


def table_images(table) -> int:
    """Image nodes (non-null ``images`` entries) of a DOCUMENT_SCHEMA table."""
    import pyarrow.compute as pc

    flat = pc.list_flatten(table["images"])
    return len(flat) - flat.null_count


def document_flow(docs, stage: str, words=None) -> dict:
    """``{"stage", "document", "image", "word"}`` of documents (``WebDocument`` objects, rows with
    ``texts``/``images``, or a DOCUMENT_SCHEMA table) left after ``stage``; ``words`` counts a text's words
    (a :class:`WordCounter`)."""
    if hasattr(docs, "num_rows"):  # a table: its strings are new objects, counted once each
        import pyarrow.compute as pc

        n_words = sum(count_words(t) for t in pc.list_flatten(docs["texts"]).to_pylist() if t)
        return {"stage": stage, "document": docs.num_rows, "image": table_images(docs), "word": n_words}
    seen = words._seen if words is not None else {}  # inlined WordCounter: this runs after every step
    n_docs = n_images = n_words = 0
    for d in docs:
        texts, images = (d["texts"], d["images"]) if isinstance(d, dict) else (d.texts, d.images)
        n_docs += 1
        n_images += len(images or ()) - (images or []).count(None)
        for t in texts or ():
            if t:
                hit = seen.get(id(t))
                if hit is None or hit[0] is not t:
                    hit = seen[id(t)] = (t, count_words(t))
                n_words += hit[1]
    return {"stage": stage, "document": n_docs, "image": n_images, "word": n_words}


def merge_flow(entries: Iterable[dict]) -> list[dict]:
    """:func:`document_flow` entries (of every unit, or of several runs' ``flow`` lists) summed by stage, in
    the order first seen."""
    out: dict[str, Counter] = {}
    for e in entries:
        c = out.setdefault(e["stage"], Counter())
        c.update({k: v for k, v in e.items() if k != "stage"})
    return [{"stage": st, **{k: c[k] for k in ("document", "image", "word")}} for st, c in out.items()]


def _fill_from_flow(rows: list[dict], flow: list[dict]) -> None:
    """Levels (document, image, word) a stage did not count itself, from the flow: ``out`` after the stage,
    ``in`` the flow before it (the previous flow entry in run order)."""
    by_stage = {f["stage"]: f for f in flow}
    prev = None
    for row in rows:
        f = by_stage.get(row["stage"])
        if f is None:
            continue
        for level in ("document", "image", "word"):
            if level in row["levels"] or (level == "word" and "words" in row["levels"]):
                continue
            n_in = prev[level] if prev is not None else None
            row["levels"][level] = {"in": n_in, "out": f[level],
                                    "dropped": None if n_in is None else max(0, n_in - f[level]), "reasons": {}}
        prev = f


def funnel_rows(merged: dict) -> list[dict]:
    """One row per stage: ``{"stage", "levels": {level: {"in", "out", "dropped", "reasons"}}}``.

    WARC reading comes first (records in, HTML documents out, skips by reason). Where a stage counts
    a level's input but not its output, ``out`` is ``in`` minus the drops. Documents, images and words a
    stage does not count come from the run's ``flow`` (words in and out of every unit op).
    """
    rows = []
    if merged.get("read"):
        r = merged["read"]
        skipped = r.get("skipped", {})
        rows.append({"stage": "read", "levels": {"document": {
            "in": r.get("records", 0), "out": r.get("html_records", 0),
            "dropped": sum(skipped.values()), "reasons": dict(Counter(skipped).most_common())}}})
    stages = merged.get("stages") or []
    for s in stages:
        levels = {}
        for lvl in _levels([s]):
            reasons = dict(Counter((s.get("dropped") or {}).get(lvl, {})).most_common())
            n_in = (s.get("in") or {}).get(lvl)
            n_out = (s.get("out") or {}).get(lvl)
            dropped = sum(reasons.values())
            if n_out is None and n_in is not None:
                n_out = n_in - dropped
            levels[lvl] = {"in": n_in, "out": n_out, "dropped": dropped, "reasons": reasons}
        rows.append({"stage": s["stage"], "levels": levels, "events": dict(s.get("events") or {})})
    _fill_from_flow(rows, merged.get("flow") or [])
    return rows


def funnel_markdown(merged: dict) -> str:
    """The funnel as a Markdown table (documents, images, words in/out per stage, top drop reasons)."""
    lines = ["| stage | documents in → out | images in → out | words in → out | main drop reasons |",
             "|---|---|---|---|---|"]

    def cell(lv):
        if not lv or (lv.get("in") is None and lv.get("out") is None):
            return "—"
        return (f"{lv['in']:,}" if lv.get("in") is not None else "—") + " → " + (
            f"{lv['out']:,}" if lv.get("out") is not None else "?")

    for row in funnel_rows(merged):
        lv = row["levels"]
        reasons = Counter()
        for level, x in lv.items():
            reasons.update({(k if level == "document" else f"{k} [{level}]"): v for k, v in x["reasons"].items()})
        top = ", ".join(f"{k} ({v:,})" for k, v in reasons.most_common(4)) or "—"
        words = lv.get("word") or lv.get("words")
        lines.append(f"| {row['stage']} | {cell(lv.get('document'))} | {cell(lv.get('image'))} | {cell(words)} | {top} |")
    return "\n".join(lines)


def document_distributions(rows: Iterable[dict]) -> dict:
    """``images_per_document`` and ``words_per_document`` of document rows (texts/images lists)."""
    images, words = [], []
    for r in rows:
        images.append(sum(1 for i in r["images"] or () if i is not None))
        words.append(sum(len(t.split()) for t in r["texts"] or () if t))
    return {"images_per_document": images, "words_per_document": words}


def flow_counts(rows: Iterable[dict]) -> Counter:
    """``document``, ``image`` and ``word`` counts of document rows (texts/images lists) or an Arrow table."""
    if hasattr(rows, "select"):
        rows = rows.select(["texts", "images"]).to_pylist()
    c = Counter()
    for r in rows:
        c["document"] += 1
        c["image"] += sum(1 for i in r["images"] or () if i is not None)
        c["word"] += sum(len(t.split()) for t in r["texts"] or () if t)
    return c


def add_flow(stats: FilterStats, before: Iterable[dict], after: Iterable[dict]) -> FilterStats:
    """Record documents, images and words in (``before``) and out (``after``) of a stage, for the
    levels the stage did not count itself, so that every funnel row has all three."""
    c_in, c_out = flow_counts(before), flow_counts(after)
    for level in ("document", "image", "word"):
        if level not in stats.inputs:
            stats.seen(level, c_in[level])
        if level not in stats.outputs:
            stats.kept(level, c_out[level])
    return stats
