"""Per stage and reason, a sample of what a run dropped, each item with its metric value and threshold.

A run keeps every unit stage's output in ``work/NN-<ops>/<unit>.parquet`` but not what its steps dropped,
so the sample is recomputed on demand, exactly: the input of the work folder holding the stage (the
previous folder's documents, or, for the first folder, the units' WARCs extracted again) is read in small
batches, the ops before the stage run as the run ran them (same profile from ``run.json``, same global
decisions from ``decision.json``), then the stage itself, and what it removed is diffed per document
(documents, paragraphs, text nodes, images). Reading stops once ``limit`` items are found or ``max_docs``
documents were scanned, so memory and time stay bounded on any run size.

Each item carries the metric that decided it where the check has one: the text checks of
:data:`filters.text_checks.TEXT_CHECKS` (value and ``min``/``max`` cutoffs), image count, language id
score, perplexity, image sizes; otherwise the settings of the step's profile section that the reason
names (``settings``), so a user sees which threshold a change would move.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass

from obelics import storage
from obelics.config import Profile
from obelics.document import WebDocument, documents_to_table, table_to_documents
from pipeline.view.runfolder import _STAGE_DIR, document, unit_stage_dirs

LEVELS = ("document", "node", "paragraph", "image")
# dedup apply ops (pipeline/stages.py) -> their funnel stage
DEDUP_STAGES = {"dedup_url": "dedup.url", "dedup_minhash": "dedup.minhash", "dedup_image_urls": "dedup.image_url",
                "dedup_paragraphs": "dedup.paragraphs", "dedup_image_sets": "dedup.image_set"}


def run_profile(out: str) -> Profile:
    """The profile the run used, exactly as recorded in ``run.json`` (defaults and overrides included)."""
    plan = storage.read_json(storage.join(out, "run.json"))
    return Profile(plan["profile"], dict(plan["profile_data"]))


def _stage_names(op: str) -> list[str]:
    """The funnel stages one op of ``run.stages`` reports."""
    from filters.steps import OPS

    if op in OPS:
        return [s.name for s in OPS[op]]
    if op.endswith(".apply"):
        return [DEDUP_STAGES.get(op[:-6], op[:-6])]
    return [op]


def locate(out: str, stage: str) -> tuple[str, int] | None:
    """(unit stage folder, position of its op) where funnel stage ``stage`` ran, or None."""
    for name in unit_stage_dirs(out):
        ops = _STAGE_DIR.match(name).group(2).split("+")
        for k, op in enumerate(ops):
            if stage in _stage_names(op):
                return name, k
    return None


def _decisions(out: str) -> dict:
    work = storage.join(out, "work")
    found = {}
    for name in storage.listdir(work) if storage.isdir(work) else []:
        m = _STAGE_DIR.match(name)
        marker = storage.join(work, name, "decision.json")
        if m and storage.exists(marker):
            found[m.group(2)] = storage.read_json(marker)["decision"]
    return found


def _input_batches(out: str, folder: str, profile: Profile, batch: int) -> Iterator[tuple[str, list[WebDocument]]]:
    """(unit, documents) in batches: what the work folder ``folder`` read, unit by unit."""
    from pipeline.sources import input_name

    dirs = unit_stage_dirs(out)
    i = dirs.index(folder)
    sources = {input_name(s): s for s in storage.read_json(storage.join(out, "run.json"))["inputs"]}
    if i == 0:  # the first folder extracted its unit's WARC: extract it again (deterministic)
        from filters.optout.stage import page_signals
        from obelics.extract import iter_extracted
        from obelics.warc import WarcConfig

        token = profile.get("optout.user_agent_token", "") or ""
        for unit, source in sorted(sources.items()):
            docs: list[WebDocument] = []
            for record, doc in iter_extracted(source, profile, None, profile.section("warc", WarcConfig)):
                doc.general_metadata.update(page_signals(record, token))
                docs.append(doc)
                if len(docs) == batch:
                    yield unit, docs
                    docs = []
            if docs:
                yield unit, docs
        return
    prev = storage.join(out, "work", dirs[i - 1])
    for unit in sorted(sources):
        path = storage.join(prev, f"{unit}.parquet")
        if not storage.exists(path):
            continue
        pf = storage.parquet_file(path)
        for g in range(pf.metadata.num_row_groups):
            table = pf.read_row_group(g)
            for s in range(0, table.num_rows, batch):
                yield unit, list(table_to_documents(table.slice(s, batch)))


def _unit_op(op_name: str):
    from pipeline import stages  # noqa: F401  (registers the ops)
    from pipeline.ops import get_op

    if op_name.endswith(".apply"):  # a global pass applied unit by unit, as pipeline.run's plan does
        op = get_op(op_name[: -len(".apply")])
        fn, arrow = (lambda docs, ctx: op.apply(docs, ctx["decisions"][op.name], ctx)), op.apply_arrow
    else:
        unit_op = get_op(op_name)
        fn, arrow = unit_op.fn, unit_op.arrow
    if not arrow:
        return fn

    def on_documents(docs, ctx):  # an op on tables (UnitOp.arrow), given and giving documents here
        out, stats = fn(documents_to_table(docs), ctx)
        return list(table_to_documents(out)), stats

    return on_documents


def _run_ops(ops: list[str], docs: list[WebDocument], ctx: dict) -> list[WebDocument]:
    for op in ops:
        if op == "extract":
            continue  # already done by _input_batches
        docs, _ = _unit_op(op)(docs, ctx)
    return docs


def _step_inputs(ctx: dict) -> dict:
    # what the run gives a step: image bytes and headers from the image table
    from pipeline.stages import _inputs

    return _inputs(ctx)


def _apply(stage: str, op: str, docs: list[WebDocument], ctx: dict,
           rejects: list | None) -> tuple[list[WebDocument], dict, object]:
    """Run only ``stage`` of ``op`` over ``docs``: (kept, its stats dict, the step or None); the steps of
    ``op`` before it run first (``optout``: images, then documents)."""
    from filters.step import run_step
    from filters.steps import OPS

    if op in OPS:
        given = _step_inputs(ctx)
        for step in OPS[op]:
            inputs = {k: given[k] for k in step.needs if k in given}
            if step.name == stage:
                kept, st, _ = run_step(step, docs, ctx["profile"], inputs=inputs, rejects=rejects, metrics=False)
                return kept, st.as_dict(), step
            docs = run_step(step, docs, ctx["profile"], inputs=inputs, metrics=False)[0]
        raise ValueError(f"op {op} has no stage {stage}")
    kept, stats = _unit_op(op)(docs, ctx)
    st = next((s for s in stats if s.get("stage") == stage), {"dropped": {}})
    if rejects is not None:
        ids = {d.doc_id for d in kept}
        reasons = list((st.get("dropped") or {}).get("document", {}))
        for d in docs:
            if d.doc_id not in ids:
                rejects.append((d, "document:" + (reasons[0] if len(reasons) == 1 else "/".join(reasons))))
    return kept, st, None


def _paragraphs(doc: WebDocument) -> list[str]:
    return [p for t in doc.texts if t for p in t.split("\n\n")]


def _removed(before: WebDocument, after: WebDocument | None, level: str) -> list:
    """What ``level`` items of ``before`` are gone in ``after`` (texts, or image URLs)."""
    if level == "image":
        old, new = [i for i in before.images if i], Counter(i for i in (after.images if after else []) if i)
    elif level == "node":
        old, new = [t for t in before.texts if t], Counter(t for t in (after.texts if after else []) if t)
    else:
        old, new = _paragraphs(before), Counter(_paragraphs(after) if after else [])
    gone = []
    for x in old:
        if new[x] > 0:
            new[x] -= 1
        else:
            gone.append(x)
    return gone


def sample(out: str, stage: str, level: str, reason: str, limit: int = 5, max_docs: int = 2000,
           batch: int = 64) -> dict:
    """Up to ``limit`` items ``stage`` dropped at ``level`` for ``reason`` (see the module docstring)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    if stage == "image_table":
        return _image_table_sample(out, reason, limit)
    where = locate(out, stage)
    if where is None:
        raise ValueError(f"stage {stage!r} ran in no unit stage of this run (or has not run yet)")
    folder, k = where
    ops = _STAGE_DIR.match(folder).group(2).split("+")
    profile = run_profile(out)
    ctx = {"profile": profile, "out": out, "work": storage.join(out, "work"), "decisions": _decisions(out),
           "use_ray": False}
    items: list[dict] = []
    scanned = 0
    for unit, docs in _input_batches(out, folder, profile, batch):
        uctx = dict(ctx, unit=unit)
        docs = _run_ops(ops[:k], docs, uctx)
        rejects: list = []
        kept, st, step = _apply(stage, ops[k], docs, uctx, rejects)
        scanned += len(docs)
        if level == "document":
            entered = {d.doc_id: d for d in docs}
            for doc, why in rejects:
                if why == f"document:{reason}" and len(items) < limit:
                    items.append(_document_item(entered.get(doc.doc_id, doc), doc, reason, step, profile))
        elif reason in ((st.get("dropped") or {}).get(level) or {}):
            by_id = {d.doc_id: d for d in kept}
            exact = _chain(step, profile) is not None and level == "paragraph"
            gone_docs = [(d, by_id.get(d.doc_id)) for d in docs if exact or d.doc_id in by_id]
            for before, after in gone_docs:
                if len(items) >= limit:
                    break
                items.extend(_node_items(before, after, level, reason, step, profile, uctx, stage, ops[k],
                                         limit - len(items)))
        if len(items) >= limit or scanned >= max_docs:
            break
    if stage.startswith("dedup."):  # a global pass: its thresholds are its part of the dedup section
        settings = _dedup_settings(profile, stage[len("dedup."):])
        for it in items:
            it["settings"] = settings
    return {"stage": stage, "level": level, "reason": reason, "folder": f"work/{folder}", "scanned": scanned,
            "items": items}


def _dedup_settings(profile: Profile, name: str) -> dict:
    from pipeline.dedup import config_of

    part = getattr(config_of(profile), name, None)
    if not is_dataclass(part):
        return {}
    return json.loads(json.dumps({f"dedup.{name}.{k}": v for k, v in asdict(part).items()}, default=str))


def _document_item(entered: WebDocument, judged: WebDocument, reason: str, step, profile: Profile) -> dict:
    """A dropped document as it entered the stage, with the metric of the version the check judged (a step
    that filters paragraphs first judges what is left)."""
    d = document(-1, documents_to_table([entered]).to_pylist()[0])
    item = {"kind": "document", "url": d["url"], "document": d,
            **metric(step, profile, "document", reason, doc=judged)}
    before, after = len(_paragraphs(entered)), len(_paragraphs(judged))
    if after != before:
        item["note"] = f"judged after the step's own paragraph filtering: {after} of {before} paragraphs left"
    return item


def _node_items(before, after, level, reason, step, profile, ctx, stage, op, room) -> list[dict]:
    gone = _removed(before, after, level)
    if not gone:
        return []
    url = before.general_metadata.get("url")
    chain = _chain(step, profile)
    if level == "paragraph" and chain is not None:
        exact = []  # the text filters' own per-paragraph verdicts (several reasons may share a document)
        for t in before.texts:
            if t:
                chain.filter_text(t, decisions=exact)
        gone = [p for p, why in exact if why == reason]
    else:
        one = _apply(stage, op, [before], ctx, None)[1]  # this document alone: did it drop for ``reason``?
        reasons = ((one.get("dropped") or {}).get(level) or {})
        if reason not in reasons:
            return []
        if len(reasons) > 1:
            gone = gone[: reasons[reason]] if level != "image" else gone
    out = []
    for x in gone[:room]:
        item = {"kind": level, "url": url}
        if level == "image":
            meta = next((m for i, m in zip(before.images, before.metadata) if i == x), None) or {}
            item.update(image=x, image_meta=meta, **metric(step, profile, level, reason, image_meta=meta))
        else:
            item.update(text=x, **metric(step, profile, level, reason, text=x))
        out.append(item)
    return out


def _chain(step, profile: Profile):
    """The step's :class:`filters.text_filters.TextFilter` when it is one of the text-filter steps."""
    from filters.step import step_state
    from filters.text_filters import TextFilter

    if step is None:
        return None
    state = step_state(step, profile)
    return state if isinstance(state, TextFilter) else None


def metric(step, profile: Profile, level: str, reason: str, text: str | None = None,
           doc: WebDocument | None = None, image_meta: dict | None = None) -> dict:
    """``{"metric": {name, value, min, max}}`` for ``reason`` where a check has a value, and ``settings``:
    the step's profile values that ``reason`` names (its thresholds)."""
    out: dict = {"metric": None, "settings": _settings(step, profile, reason)}
    chain = _chain(step, profile)
    if chain is not None:
        from filters import text_checks
        from filters.text_metrics import get_words

        cut = chain.cfg.node if level == "paragraph" else chain.cfg.doc
        if level == "document" and doc is not None:
            text = "\n\n".join(t for t in doc.texts if t)
        check = next((c for c in text_checks.TEXT_CHECKS if c.name == reason), None)
        if check is not None and text is not None:
            lo, hi = check.cutoffs(cut)
            value = text_checks.REFERENCE[reason](text, get_words(text), cut, chain._vocab_lists)
            out["metric"] = {"name": reason, "value": value, "min": lo, "max": hi}
        elif reason == "number_images" and doc is not None:
            out["metric"] = {"name": reason, "value": doc.num_images, "min": chain.cfg.doc.number_images_min,
                             "max": chain.cfg.doc.number_images_max}
        elif reason == "lang_id" and chain.langid is not None and text is not None:
            lang, score = chain.langid.predict(text)
            out["metric"] = {"name": f"lang_id ({lang})", "value": score, "min": chain.langid.cfg.min_score,
                             "max": None, "languages": list(chain.langid.cfg.languages)}
        elif reason == "perplexity" and chain.perplexity is not None and text is not None:
            value = chain.perplexity.scorer.perplexity(text, "glued")
            out["metric"] = {"name": "perplexity", "value": value, "min": None, "max": chain.perplexity.cutoff}
    if out["metric"] is None and image_meta:
        cfg = step.config_of(profile) if step is not None else None
        side = "width" if "width" in reason else "height" if "height" in reason else None
        if side:
            key = f"rendered_{side}" if "rendered" in reason else f"original_{side}"
            out["metric"] = {"name": key, "value": image_meta.get(key), "min": getattr(cfg, f"{key}_min", None),
                             "max": getattr(cfg, f"{key}_max", None)}
        elif "aspect" in reason and getattr(cfg, "aspect_ratio_max", None):
            w, h = image_meta.get("original_width"), image_meta.get("original_height")
            ratio = w / h if isinstance(w, int) and isinstance(h, int) and h else None
            out["metric"] = {"name": "aspect_ratio", "value": ratio, "min": 1 / cfg.aspect_ratio_max,
                             "max": cfg.aspect_ratio_max}
    return out


def _settings(step, profile: Profile, reason: str) -> dict:
    """The values of the step's profile section whose names share a word with ``reason``."""
    if step is None or step.section is None or step.config is None:
        return {}
    cfg = step.config_of(profile)
    data = asdict(cfg) if is_dataclass(cfg) else {}
    words = {w for w in re.split(r"[^a-z]+", reason.lower()) if len(w) > 3} - {"image", "small", "large", "ratio"}
    found = {}

    def walk(prefix: str, node) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(name + ".", value)
            elif words and all(w in key.lower() for w in words) and isinstance(value, int | float | bool | list):
                found[f"{step.section}.{name}"] = value

    walk("", data)
    return json.loads(json.dumps(found, default=str))


def _image_table_sample(out: str, reason: str, limit: int) -> dict:
    """Images the image table could not fetch or decode for ``reason`` (status, error, HTTP status)."""
    from pipeline.images.table import ImageTable
    from pipeline.view.runfolder import RunFolder

    folder = RunFolder(out).image_table_dir()
    items = []
    if folder:
        table = ImageTable(folder)
        for part in table.parts():
            pf = storage.parquet_file(part)
            for g in range(pf.metadata.num_row_groups):
                for row in pf.read_row_group(g, columns=["url", "status", "reason", "error_message",
                                                         "http_status"]).to_pylist():
                    if row["status"] != "success" and (row["reason"] or row["status"]) == reason:
                        items.append({"kind": "image", "image": row["url"], "url": None,
                                      "image_meta": row, "metric": None, "settings": {}})
                    if len(items) >= limit:
                        break
    return {"stage": "image_table", "level": "image", "reason": reason, "folder": folder, "scanned": None,
            "items": items[:limit]}
