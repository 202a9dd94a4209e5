"""How much of NSFW's work is on images that a later stage drops anyway: would NSFW pay later in the stages?

    python -m bench.nsfw_fate [--copies 64] [--units 4] [--keep-inputs DIR]

Runs ``default`` without Ray (``run.use_ray=false``, one process: one NSFW score cache, as a single worker)
on :mod:`bench.corpus`'s realistic corpus with ``bench_pipeline``'s offline settings, and records what the
NSFW step is given (each document's image URLs) and which image contents its classifier scores (the cache
misses: its CPU). Then it follows each (document, image) pair through the stages' outputs in the run's work
folder (the stage after NSFW, the later passes, the dataset) and prints:

- the pairs NSFW is given, and where those that do not reach the dataset go (the fused stage holding NSFW
  and ``doc_filters``; ``dedup_image_urls``; ``dedup_paragraphs``; ``dedup_image_sets``+``recheck``+``final``);
- the contents the classifier scored, and how many of them have no pair in the dataset: the share of NSFW's
  CPU a later NSFW would not spend (an upper bound: NSFW's own drops change what the later stages see).

Measurement only: the stage order is ``default``'s (moving NSFW changes the output). The recording wraps
``filters.nsfw``'s step in this process; nothing in the pipeline changes.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.bench_pipeline import OFFLINE, bench_inputs


def _pairs(parquet_files: list[str]) -> set[tuple[str, str]]:
    """(document URL, image URL) of every image node in these documents' Parquet files."""
    import pyarrow.parquet as pq

    out = set()
    for f in parquet_files:
        t = pq.read_table(f, columns=["general_metadata", "images"]).to_pydict()
        for meta, images in zip(t["general_metadata"], t["images"]):
            url = json.loads(meta)["url"]
            out.update((url, u) for u in images if u is not None)
    return out


def record_nsfw() -> dict:
    """Wrap the NSFW step so that it records its input pairs and the contents it scores; returns the record."""
    import filters.nsfw as nsfw

    rec = {"pairs": [], "key_of": {}, "scored": []}
    prepare, score_urls = nsfw.NsfwStep.prepare, nsfw.score_urls

    def recording_prepare(self, docs, state, inputs):
        rec["pairs"].extend((d.url, u) for d in docs for u in d.images if u is not None)
        return prepare(self, docs, state, inputs)

    def recording_score_urls(urls, image_bytes, classifier, batch_size=32, cache=None):
        before = set(cache._scores)
        result = score_urls(urls, image_bytes, classifier, batch_size, cache)
        new = set(cache._scores) - before  # the contents scored in this call (the cache's misses)
        for u in dict.fromkeys(urls):
            data = nsfw.lookup_bytes(image_bytes, u)
            if data is None:
                continue
            key = nsfw.ScoreCache.key(bytes(data))
            rec["key_of"][u] = key
            if key in new:
                rec["scored"].append(key)
                new.discard(key)
        return result

    nsfw.NsfwStep.prepare = recording_prepare
    nsfw.score_urls = recording_score_urls
    return rec


def fate(rec: dict, out: Path) -> dict:
    """Where NSFW's pairs and scored contents end (see the module docstring)."""
    work = out / "work"
    levels = [("NSFW's input", set(map(tuple, rec["pairs"])))]
    for pattern, name in (("06-*nsfw*", "after NSFW + doc_filters (one fused stage)"),
                          ("??-dedup_image_urls.apply*", "after dedup_image_urls"),
                          ("??-dedup_paragraphs.apply*", "after dedup_paragraphs"),
                          ("??-dedup_image_sets.apply*", "after dedup_image_sets + recheck + final")):
        [folder] = glob.glob(str(work / pattern))
        levels.append((name, _pairs(sorted(glob.glob(f"{folder}/*.parquet")))))
    levels.append(("in the dataset", _pairs(sorted(glob.glob(str(out / "parquet" / "*.parquet"))))))
    given = levels[0][1]
    kept_pairs = given & levels[-1][1]
    kept_keys = {rec["key_of"][u] for _, u in kept_pairs if u in rec["key_of"]}
    scored = rec["scored"]
    stats = json.loads((out / "stats.json").read_text())
    nsfw_ms = next((op["cpu_seconds"] for st in stats["cpu"]["stages"] for op in st.get("ops") or []
                    if op.get("op") == "nsfw"), None)
    return {
        "levels": [(name, len(given & pairs)) for name, pairs in levels],
        "pairs_given": len(given), "pairs_kept": len(kept_pairs),
        "contents_scored": len(scored), "contents_kept": sum(k in kept_keys for k in scored),
        "nsfw_cpu_s": nsfw_ms, "pages": stats["read"]["html_records"],
        "nsfw_dropped": {lvl: sum(r.values()) for st in stats["stages"] if st.get("stage") == "nsfw"
                         for lvl, r in (st.get("dropped") or {}).items()},
        "nsfw_images_in": sum((st.get("in") or {}).get("image", 0) for st in stats["stages"] if st.get("stage") == "nsfw"),
        "later_drops": _later_drops(stats["stages"]),
    }


def _later_drops(stages: list[dict]) -> list[tuple[str, str, str, int]]:
    """(stage, level, reason, count) of every drop by the stages after NSFW (stats.json's funnel)."""
    names = [st.get("stage") for st in stages]
    after = names[names.index("nsfw") + 1:] if "nsfw" in names else []
    return [(st["stage"], level, reason, n) for st in stages if st.get("stage") in after and ".decide" not in st["stage"]
            for level, reasons in (st.get("dropped") or {}).items() for reason, n in reasons.items() if n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=64)
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--keep-inputs", type=Path, default=None, metavar="DIR",
                    help="make the corpus once in DIR and reuse it (as bench_pipeline's option)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-nsfw-fate-"))
    try:
        inputs = bench_inputs(args.keep_inputs, tmp, args.copies, args.units)
        rec = record_nsfw()
        from pipeline.run import run

        t = time.process_time()
        run("default", tmp / "out", inputs, overrides=OFFLINE + ["run.use_ray=false"])
        cpu = time.process_time() - t
        r = fate(rec, tmp / "out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    given = r["pairs_given"]
    print(f"{r['pages']:,} pages ({args.copies} copies, {args.units} units), run CPU {cpu:.1f} s")
    print(f"(document, image) pairs given to NSFW: {given:,} (stats.json: {r['nsfw_images_in']:,} images in); "
          f"NSFW's own drops: {r['nsfw_dropped'] or 'none'}")
    prev = given
    for name, n in r["levels"][1:]:
        print(f"  {name:<45} {n:>6,}  ({n / given:.1%} of NSFW's input; this step removed {prev - n:,})")
        prev = n
    print("the later stages' drops (stats.json): " + ("; ".join(f"{st} {n:,} {lvl} ({why})" for st, lvl, why, n
                                                              in r["later_drops"]) or "none"))
    s, k = r["contents_scored"], r["contents_kept"]
    print(f"image contents the classifier scored: {s:,}; with a pair in the dataset: {k:,}; "
          f"scored for nothing: {s - k:,} = {(s - k) / s:.1%}" if s else "no image scored")
    if r["nsfw_cpu_s"] is not None and s:
        ms = r["nsfw_cpu_s"] * 1e3 / r["pages"]
        print(f"NSFW op: {ms:.3f} CPU-ms a page; the share scored for nothing: {ms * (s - k) / s:.3f} CPU-ms a page "
              "(what a later NSFW would save at most)")


if __name__ == "__main__":
    main()
