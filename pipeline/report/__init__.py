"""The funnel report: shard stats merged into the run's ``stats.json`` and a static ``report.html``."""

from __future__ import annotations

from pathlib import Path

from pipeline.report.funnel import funnel_rows, load_stats, merge_stats


def build_report(out_dir: str | Path, shard_stats: list[str | Path] | None = None,
                 profile: str | None = None) -> dict:
    """Merge the shards' ``stats.json`` (default: every ``stats.json`` below ``out_dir`` except its own)
    into ``out_dir/stats.json`` and write ``out_dir/report.html``; returns the merged stats."""
    from pipeline.report.html import write_report
    from pipeline.writers.stats import write_json_atomic

    out_dir = Path(out_dir)
    if shard_stats is None:
        shard_stats = sorted(p for p in out_dir.rglob("stats.json") if p.parent != out_dir and "hub" not in p.parts)
    merged = merge_stats(load_stats(shard_stats))
    if profile:
        merged["profile"] = profile
    write_json_atomic(out_dir / "stats.json", merged)
    write_report(merged, out_dir / "report.html", profile=profile)
    return merged


__all__ = ["build_report", "funnel_rows", "load_stats", "merge_stats"]
