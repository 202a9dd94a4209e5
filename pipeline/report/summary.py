"""What a reader of the report needs first: the run in a few numbers, and what went wrong.

:func:`run_summary` gives documents, images and words out, the share of documents kept, the units read
and the files each output format wrote (real shards, not stats fragments). :func:`run_warnings` lists
what deserves attention, most serious first:

- ``systemic``: a stage that lost more than ``run.max_error_share`` of its input to errors (network, DNS,
  services), from ``stats["systemic_loss"]`` (written by the run, :mod:`pipeline.loss`);
- ``error``: every other stage that dropped items to errors (``stats["errors"]``): an error that drops is
  never "nothing dropped";
- ``almost_all``: a stage that dropped almost all (:data:`ALMOST_ALL`) of its documents or images, for
  whatever reason;
- ``empty``: a run that produced no documents;
- anything else a run records in ``stats["warnings"]`` (``{stage, reason, share, message}``).
"""

from __future__ import annotations

from collections import Counter

from pipeline.report.funnel import funnel_rows

ALMOST_ALL = 0.95  # a stage dropping this share of a level's input (or more) gets a warning
MIN_ITEMS = 10     # ... when at least this many came in (a tiny run's 2 of 2 says little)
FORMAT_FOLDERS = {"parquet": "parquet", "webdataset": "webdataset"}


def _final(merged: dict, rows: list[dict]) -> dict:
    """Documents, images and words out of the run: the summary the run wrote, else the last counts seen."""
    s = merged.get("summary") or {}
    if all(k in s for k in ("documents", "images", "words")):
        return {"documents": s["documents"], "images": s["images"], "words": s["words"]}
    out = {"documents": None, "images": None, "words": None}
    for row in rows:
        for level, key in (("document", "documents"), ("image", "images"), ("word", "words")):
            lv = row["levels"].get(level)
            if lv and lv.get("out") is not None:
                out[key] = lv["out"]
    return out


def run_summary(merged: dict, out_dir: str | None = None) -> dict:
    """The report's summary of merged run stats (see the module docstring)."""
    rows = funnel_rows(merged)
    final = _final(merged, rows)
    read = merged.get("read") or {}
    docs_in = read.get("html_records")
    if docs_in is None:
        docs_in = next(((r["levels"].get("document") or {}).get("in") for r in rows
                        if (r["levels"].get("document") or {}).get("in") is not None), None)
    files: Counter = Counter()
    docs_by_format: Counter = Counter()
    for o in merged.get("outputs") or []:
        files[o.get("format", "?")] += 1
        docs_by_format[o.get("format", "?")] += o.get("documents") or 0
    outputs = [{"format": f, "files": n, "documents": docs_by_format[f],
                "folder": FORMAT_FOLDERS.get(f, f)} for f, n in files.items()]
    kept = final["documents"] / docs_in if docs_in and final["documents"] is not None else None
    return {**final, "documents_in": docs_in, "share_kept": kept,
            "units": (merged.get("summary") or {}).get("units"), "profile": (merged.get("summary") or {}).get("profile"),
            "outputs": outputs, "out_dir": out_dir}


def _reasons(reasons: dict, k: int = 4) -> str:
    return ", ".join(f"{r} {n:,}" for r, n in Counter(reasons).most_common(k))


def run_warnings(merged: dict) -> list[dict]:
    """``[{kind, stage, level, share, message}]``, most serious first (see the module docstring)."""
    out: list[dict] = []
    seen: set[tuple] = set()
    for loss in (merged.get("systemic_loss") or {}).get("stages") or []:
        seen.add((loss["stage"], loss.get("level")))
        out.append({"kind": "systemic", "stage": loss["stage"], "level": loss.get("level"), "share": loss["share"],
                    "message": f"stage {loss['stage']} lost {loss['dropped']:,} of {loss['in']:,} "
                               f"{loss.get('level', 'item')}(s) ({loss['share']:.0%}) to errors "
                               f"({_reasons(loss.get('reasons') or {})}): a systemic loss"})
    for e in merged.get("errors") or []:
        if (e["stage"], e.get("level")) in seen:
            continue
        seen.add((e["stage"], e.get("level")))
        out.append({"kind": "error", "stage": e["stage"], "level": e.get("level"), "share": e.get("share"),
                    "message": f"stage {e['stage']} dropped {e['dropped']:,} {e.get('level', 'item')}(s) "
                               f"({e.get('share', 0):.0%} of its input) to errors ({_reasons(e.get('reasons') or {})})"})
    for row in funnel_rows(merged):
        for level in ("document", "image"):
            lv = row["levels"].get(level)
            if not lv or not lv.get("in") or lv["in"] < MIN_ITEMS or (row["stage"], level) in seen:
                continue
            share = (lv.get("dropped") or 0) / lv["in"]
            if share >= ALMOST_ALL:
                out.append({"kind": "almost_all", "stage": row["stage"], "level": level, "share": round(share, 4),
                            "message": f"stage {row['stage']} dropped {share:.0%} of its {level}s "
                                       f"({lv['dropped']:,} of {lv['in']:,}"
                                       + (f": {_reasons(lv['reasons'])}" if lv.get("reasons") else "") + ")"})
    final = _final(merged, funnel_rows(merged))
    if final["documents"] == 0:
        out.append({"kind": "empty", "stage": None, "level": "document", "share": 1.0,
                    "message": "the run produced no documents"})
    for w in merged.get("warnings") or []:
        out.append({"kind": w.get("kind", "warning"), "stage": w.get("stage"), "level": w.get("level"),
                    "share": w.get("share"), "message": w.get("message") or f"{w.get('stage')}: {w.get('reason')}"})
    return out
