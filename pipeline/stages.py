"""The ops of a run: filter steps scheduled by name, extraction, dedup passes and the image table.

Names here are what a profile lists in ``run.stages``. Every filter is a :class:`filters.step.Step`
listed in :data:`filters.steps.OPS`; it becomes a unit op that runs its steps with
:func:`filters.step.run_step` (which counts, diverts and records metrics), given the inputs only the
run has (image bytes and headers from the image table). No filter logic lives here. Each unit op
returns the documents it keeps and the stage statistics (``FilterStats.as_dict()`` shape: stage, in,
out, dropped) for the funnel.
"""

from __future__ import annotations

import logging

from filters import steps as filter_steps
from filters.base import FilterStats
from filters.step import run_step
from obelics.records import ReadStats
from pipeline.ops import GlobalOp, UnitOp, register
from pipeline.report.funnel import WordCounter, document_flow

log = logging.getLogger("obelics.run")


# -- extraction --------------------------------------------------------------------------------------
IMAGE_RECORDS = "{unit}.image_records.parquet"  # beside the extraction stage's unit: where its image records are


def _locates_images(profile) -> bool:
    """Whether the run's image table reads the input WARCs' image records (``images.source: warc``)."""
    from pipeline.images.config import ImagesConfig
    from pipeline.run_config import RunConfig

    return (profile.section("images", ImagesConfig).source == "warc"
            and "image_table" in profile.section("run", RunConfig).stages)


def _extracted(source, profile, rs, wcfg, found, on_tree=None):
    """(record, document) of every HTML record of ``source``; with ``found`` a list, the image records'
    locations are noted in it during the same scan (the image table then reads only those records).
    ``on_tree``: :func:`obelics.extract.extract_records`'s."""
    from obelics.extract import extract_config, extract_records, iter_extracted
    from pipeline.images.offline import html_records_locating_images

    if found is None:
        yield from iter_extracted(source, profile, rs, wcfg, on_tree)
        return
    # iter_extracted's loop
    yield from extract_records(html_records_locating_images(source, wcfg, rs, found), extract_config(profile), rs,
                               on_tree=on_tree)


def _extract(source, ctx):
    """Read one WARC and extract its HTML records; keep the page's opt-out signals for the opt-out op; with
    the image table read from the WARCs, note where the image records are (``IMAGE_RECORDS``)."""
    import pyarrow as pa

    from filters.optout.stage import page_signals
    from obelics import storage
    from obelics.warc import WarcConfig

    profile = ctx["profile"]
    token = profile.get("optout.user_agent_token", "") or ""
    rs = ReadStats()
    docs = []
    found: list | None = [] if ctx.get("stage_dir") and _locates_images(profile) else None
    parsed: list = [None, None]  # the record being extracted and its lexbor tree: its <meta> tags read from it

    def on_tree(record, tree):
        parsed[:] = record, tree

    try:
        for record, doc in _extracted(source, profile, rs, profile.section("warc", WarcConfig), found, on_tree):
            tree = parsed[1] if parsed[0] is record else None
            parsed[:] = None, None
            doc.general_metadata.update(page_signals(record, token, tree))
            docs.append(doc)
    except Exception as e:  # noqa: BLE001 - an unreadable input (404, retries exhausted) never stops the run
        # the reader already retried and resumed by Range; what was read is kept, the rest counted
        log.warning("input %s: %s: %s", source, type(e).__name__, e)
        rs.skip(f"input_error:{type(e).__name__}")
        found = None  # a partial list: the image table scans this input itself
    if found is not None:  # written before the unit's marker, so a unit done has its list
        cols = list(zip(*found)) if found else [[], [], []]
        storage.write_parquet_atomic(
            storage.join(ctx["stage_dir"], IMAGE_RECORDS.format(unit=ctx["unit"])),
            pa.table({"url": pa.array(cols[0], pa.string()), "offset": pa.array(cols[1], pa.int64()),
                      "length": pa.array(cols[2], pa.int64())}))
    if rs.records == 0 and not any(k.startswith("input_error:") for k in rs.skipped):
        rs.skip("input_error:empty")  # no record at all (an empty or non-WARC file): a lost input, counted
    st = FilterStats("extract")
    st.seen("document", rs.html_records)
    st.kept("document", len(docs))
    st.kept("image", sum(d.num_images for d in docs))
    st.kept("text", sum(d.num_texts for d in docs))
    return docs, [{"read": rs.as_dict()}, st.as_dict()]


register(UnitOp("extract", _extract, source=True))


# -- filter steps (filters.steps) ------------------------------------------------------------------------
def _inputs(ctx: dict) -> dict:
    """What only the run can give a step (``Step.needs``): image bytes and response headers from the image table."""

    def image_bytes(urls):  # raises when run.stages has no image_table op before
        rows = image_table_of(ctx).lookup(set(urls), with_bytes=True)
        return {u: r["bytes"] for u, r in rows.items() if r.get("status") == "success"}

    def image_headers(urls):
        return image_table_of(ctx).headers_by_url(set(urls)) if "image_table" in ctx["decisions"] else {}

    return {"image_bytes": image_bytes, "image_headers": image_headers}


def step_op(name: str, steps) -> UnitOp:
    """The unit op that runs ``steps`` in order, each with its own funnel stage (and report metrics)."""
    def run(docs, ctx):
        given = _inputs(ctx)
        out = []
        words = ctx.get("word_counter") or WordCounter()  # the fused stage's (pipeline.run._fused): a text
        for step in steps:  # that an earlier op or step left unchanged is not split again
            inputs = {k: given[k] for k in step.needs if k in given}
            docs, st, metrics = run_step(step, docs, ctx["profile"], inputs=inputs)
            out.append(st.as_dict())
            out.append({"flow": document_flow(docs, st.stage, words)})  # what is left after each step
            if metrics:
                out.append(metrics)
        return docs, out

    return UnitOp(name, run)


def _register_steps() -> None:
    """Every op of filters.steps, and any registered later (a filter defined outside the package)."""
    filter_steps.subscribe(lambda name, steps: register(step_op(name, steps)))


# -- dedup passes (pipeline.dedup: decide over all units, apply per unit) ---------------------------------------
def _with_phash(ctx: dict, unit: bool = False) -> dict:
    """``ctx`` for a dedup pass when the image-table decision computed pHash clusters (their canonical URLs
    are the ``canonical`` column of each unit's joined rows, ``units/<unit>.parquet``): with ``unit`` (an
    apply) ``phash_canonical``, the unit's URLs' entries (:func:`image_table_of`; without a unit, every
    unit's); else ``phash_unit_dir``, the folder of those files, from which the decision's map tasks read
    their own units' entries (nothing holds or broadcasts the whole mapping). A decision of an older version
    names its ``phash_file`` instead of ``phash``; its units' files have the column too."""
    decision = ctx["decisions"].get("image_table") or {}
    if not (decision.get("phash") or decision.get("phash_file")) or not decision.get("unit_dir"):
        return ctx
    if unit and ctx.get("unit"):
        return dict(ctx, phash_canonical=image_table_of(ctx).canonical())
    if unit:  # an apply to documents of no named unit (tests, tools): every unit's entries, as the decision's
        from pipeline.dedup import unit_canonical
        from pipeline.shuffle import list_files

        canonical: dict[str, str] = {}
        for path in list_files(decision["unit_dir"], ".parquet"):
            canonical.update(unit_canonical(path))
        return dict(ctx, phash_canonical=canonical)
    return dict(ctx, phash_unit_dir=decision["unit_dir"])


def _dedup_op(op_name: str, pass_name: str) -> GlobalOp:
    def decide(prev_dir, units, ctx):
        from pipeline.dedup import decide as dd

        return dd(pass_name, prev_dir, units, _with_phash(ctx))

    def apply(table, decision, ctx):  # on the unit's table (apply_arrow): no document objects
        from pipeline.dedup import apply as da

        table, st = da(pass_name, table, decision, _with_phash(ctx, unit=True))
        return table, [st.as_dict()]

    return GlobalOp(op_name, decide, apply, apply_arrow=True)


for _op, _pass in [("dedup_url", "url"), ("dedup_minhash", "minhash"), ("dedup_image_urls", "image_url"),
                   ("dedup_paragraphs", "paragraphs"), ("dedup_image_sets", "image_set")]:
    register(_dedup_op(_op, _pass))


# -- images ---------------------------------------------------------------------------------------------
def _image_table_decide(prev_dir, units, ctx):
    """The unique image URLs of every unit, fetched once: img2dataset (web) or the input WARCs' image records;
    then each unit's rows of the table (and its URLs' pHash canonical URLs) joined and written per unit
    (:mod:`pipeline.images.join`), so that a unit task reads its own file, never every part of the table.

    The URLs come from a hash-partitioned shuffle of the units' image columns (tasks), distinct per
    partition; the driver lists the unit folder once and hands the fetch those files, never the URLs."""
    from obelics import storage
    from pipeline import shuffle as fs
    from pipeline.dedup import config_of, partitions_for, survey
    from pipeline.images import join
    from pipeline.images.config import ImagesConfig
    from pipeline.images.stage import fetch_images
    from pipeline.shuffle import get_backend

    cfg = ctx["profile"].section("images", ImagesConfig)
    dcfg = config_of(ctx["profile"])
    backend = ctx.get("backend") or get_backend(ctx.get("use_ray"))
    ddir = ctx["decision_dir"]
    present = set(storage.listdir(prev_dir))  # one listing, not a request per unit
    unit_of = {storage.join(prev_dir, f"{u}.parquet"): u for u in units if f"{u}.parquet" in present}
    work = join.new_work(ddir, "image_table")
    try:
        paths = survey(backend, list(unit_of))
        P = partitions_for(paths.rows, dcfg)
        wanted = join.wanted_urls(backend, paths, P, dcfg, fs.join(work, "wanted")) if paths else None
        files, n_urls = join.distinct_urls(backend, wanted, fs.join(work, "urls")) if paths else ([], 0)
        table = fetch_images(join.url_files(files, n_urls, P), ddir, cfg, warcs=[ctx["sources"][u] for u in units],
                             stats=ReadStats(), located=_image_locations(units, ctx) if cfg.source == "warc" else None,
                             use_ray=ctx.get("use_ray"), dedup=dcfg)
        tables, counts, row_groups = join.table_rows(backend, table, P, dcfg, fs.join(work, "table"))
        decision = {"table_dir": str(table.folder)}
        canon_index = _phash_canonical(table, ctx["profile"], fs.join(work, "phash"), P, backend, row_groups,
                                       images=counts.get("success", 0))
        if canon_index is not None:
            decision["phash"] = True  # the canonical URLs: the units' rows files' ``canonical`` column
        if paths:
            join.join_units(backend, paths, unit_of, wanted, tables, canon_index, P, dcfg,
                            storage.join(ddir, join.UNIT_DIR), work)
        decision["unit_dir"] = storage.join(ddir, join.UNIT_DIR)
    finally:
        fs.remove_tree(work)
    st = FilterStats("image_table")
    st.seen("image", n_urls)  # unique image URLs of the whole run
    for reason, n in sorted(counts.items()):
        if reason != "success":
            st.drop("image", reason, n)
    st.kept("image", counts.get("success", 0))
    decision["stats"] = [st.as_dict()]
    return decision


def _image_locations(units, ctx) -> dict[str, str]:
    """{source: its image-record list's file} of the units whose extraction noted their image records (a unit
    extracted without, e.g. by an older version, is missing: the image table scans its WARC). One listing of
    the extraction's folder; the files are read by the image table's tasks, never by the driver."""
    from obelics import storage

    sdir = ctx.get("source_stage_dir")
    if not sdir:
        return {}
    present = set(storage.listdir(sdir))
    return {str(ctx["sources"][u]): storage.join(sdir, IMAGE_RECORDS.format(unit=u))
            for u in units if IMAGE_RECORDS.format(unit=u) in present}


PHASH_TASK_ROW_GROUPS = 2  # image-table row groups (256 images each) hashed by one task (~1-2 CPU-s)


def _phash_slice(part: str, first: int, stop: int, hash_size: int) -> tuple[list[str], list[int | None]]:
    """(urls, pHashes) of the downloaded images in row groups ``[first, stop)`` of one image-table part."""
    from filters.dedup.phash import phash
    from obelics import storage

    f = storage.parquet_file(part)
    urls, hashes = [], []
    for i in range(first, stop):
        t = f.read_row_group(i, columns=["url", "status", "bytes"])
        for url, status, data in zip(t["url"].to_pylist(), t["status"].to_pylist(), t["bytes"].to_pylist()):
            if status == "success" and data:
                urls.append(url)
                hashes.append(phash(data, hash_size))
    return urls, hashes


def _phash_canonical(table, profile, work: str, P: int, backend=None, row_groups: dict[str, int] | None = None,
                     images: int | None = None):
    """The pHash clusters' {url: canonical url} of the downloaded images as (url, canonical) rows partitioned
    by URL hash into ``P`` partitions under ``work`` (the :class:`pipeline.rounds.Index` that
    :func:`pipeline.images.join.join_units` takes), or None when the profile does not use pHash.

    The images are hashed in tasks of a few row groups each (a snapshot downloads ~80M images, hashed in the
    driver they took days), read by the tasks themselves, and clustered by tasks
    (:func:`pipeline.images.phash_tasks.phash_canonical_index`: the same mapping as
    :func:`filters.dedup.phash.phash_clusters` over the images in part and row order; the driver held
    every URL, hash and the mapping: ~1.2 KB an image, ~100 GB at a snapshot, ``bench/bench_phash.py``). ``row_groups``: each part's row groups, as
    tasks read them (else the driver reads every part's footer). ``images``: the table's downloaded images
    (at most :data:`pipeline.images.phash_tasks.SMALL_IMAGES`: clustered in the driver, the same index)."""
    from filters.phash_canonical import uses_phash
    from obelics import storage
    from pipeline.dedup import config_of
    from pipeline.images.phash_tasks import phash_canonical_index
    from pipeline.shuffle import get_backend

    cfg = config_of(profile)
    if not uses_phash(cfg):
        return None
    calls = []
    for part in table.parts():
        n = row_groups[part] if row_groups is not None and part in row_groups else storage.parquet_file(part).num_row_groups
        calls += [(part, i, min(i + PHASH_TASK_ROW_GROUPS, n), cfg.phash.hash_size)
                  for i in range(0, n, PHASH_TASK_ROW_GROUPS)]
    index, counts = phash_canonical_index(backend or get_backend(None), _phash_slice, calls, cfg.phash.max_distance,
                                          P, cfg, work, images=images)
    if "candidate_edges" in counts:
        log.info("phash: %d images hashed, %d candidate and %d confirmed edges, %d URLs clustered",
                 counts["hashed"], counts["candidate_edges"], counts["confirmed_edges"], counts["urls"])
    else:  # a few images, clustered in the driver
        log.info("phash: %d images hashed, %d URLs clustered", counts["hashed"], counts["urls"])
    return index


def image_table_of(ctx):
    """The image table as a unit op sees it: the unit's own joined rows (:class:`pipeline.images.join.UnitImages`,
    kept in ``ctx`` for the unit's other ops), or the whole table (a decision made before the join, or no unit)."""
    from pipeline.images.table import ImageTable

    decision = ctx["decisions"].get("image_table")
    if not decision:
        raise ValueError("this op needs the image_table op earlier in run.stages")
    if decision.get("unit_dir") and ctx.get("unit"):
        from obelics import storage
        from pipeline.images.join import UNIT_BYTES_CACHE, UnitImages

        key = ("_unit_images", ctx["unit"])
        if ctx.get("_unit_images_key") != key:  # its bytes read once for the unit's ops (image filters, NSFW)
            ctx["_unit_images"] = UnitImages(decision["table_dir"],
                                             storage.join(decision["unit_dir"], f"{ctx['unit']}.parquet"),
                                             cache_bytes=UNIT_BYTES_CACHE)
            ctx["_unit_images_key"] = key
        return ctx["_unit_images"]
    return ImageTable(decision["table_dir"])


def _merge_images(table, ctx):
    """The unit's table with its image nodes' table rows merged in (sizes and hashes, no bytes: UnitOp.arrow)."""
    from pipeline.images.merge import merge_table, strip_image_columns

    st = FilterStats("merge_images")
    merged = merge_table(table, image_table_of(ctx), st, with_bytes=False)
    return strip_image_columns(merged), [st.as_dict()]


register(GlobalOp("image_table", _image_table_decide))
register(UnitOp("merge_images", _merge_images, arrow=True))
_register_steps()
