"""The funnel report: shard stats merged into the run's ``stats.json`` and a static ``report.html``."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.report.funnel import funnel_rows, load_stats, merge_flow, merge_stats


def shard_stats_files(out_dir: str | Path) -> list[str]:
    """Every ``stats.json`` below ``out_dir`` (a folder or an object-store prefix) but its own and the Hub
    folder's, sorted."""
    from obelics import storage

    out_dir = os.fspath(out_dir)
    own, prefix = storage.join(out_dir, "stats.json"), storage.join(out_dir, "")
    return [p for p in storage.walk_files(out_dir) if storage.basename(p) == "stats.json" and p != own
            and not {"hub", ".hub"} & set(p[len(prefix):].split("/"))]


def build_report(out_dir: str | Path, shard_stats: list[str | Path] | None = None,
                 profile: str | None = None) -> dict:
    """Merge the shards' ``stats.json`` (default: every ``stats.json`` below ``out_dir`` except its own)
    into ``out_dir/stats.json`` and write ``out_dir/report.html``; returns the merged stats.

    For the output folder of ``obelics run`` (it has ``run.json``) with no ``shard_stats`` given, the run's
    own ``stats.json`` is used as is and only ``report.html`` is written again. To merge several runs
    (shards of a snapshot), pass their ``stats.json`` files as ``shard_stats``. ``out_dir`` may be a
    local folder or an object-store prefix such as ``s3://bucket/run`` (:mod:`obelics.storage`).
    """
    from obelics import storage
    from pipeline.report.html import write_report

    out_dir = os.fspath(out_dir)
    own = storage.join(out_dir, "stats.json")
    if shard_stats is None and storage.exists(storage.join(out_dir, "run.json")) and storage.exists(own):
        # the folder of an `obelics run`: its stats.json is the run's funnel (and completion marker),
        # already merged over units; re-render the report from it, never replace it
        merged = load_stats([own])[0]
        write_report(merged, storage.join(out_dir, "report.html"),
                     profile=profile or merged.get("summary", {}).get("profile"))
        return merged
    if shard_stats is None:
        shard_stats = shard_stats_files(out_dir)
    loaded = load_stats(shard_stats)
    merged = merge_stats(loaded)
    flow = merge_flow(f for s in loaded for f in s.get("flow") or [])
    if flow:
        merged["flow"] = flow
    if profile:
        merged["profile"] = profile
    storage.write_json_atomic(own, merged)
    write_report(merged, storage.join(out_dir, "report.html"), profile=profile)
    return merged


def write_run_report(stats: dict, out: str | Path, output) -> None:
    """``out/report.html`` of a finished run's ``stats`` when ``output.report`` (an ``OutputConfig``) is on."""
    from obelics.storage import join
    from pipeline.report.html import write_report

    if output.report:
        write_report(stats, join(str(out), "report.html"), profile=(stats.get("summary") or {}).get("profile"))


__all__ = ["build_report", "funnel_rows", "load_stats", "merge_stats", "shard_stats_files", "write_run_report"]
