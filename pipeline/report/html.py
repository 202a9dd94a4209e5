"""A static ``report.html`` that opens offline: the funnel, drops by reason, metric histograms with
their thresholds, and images and words per document. Plots are matplotlib figures inlined as SVG
(no scripts, no external files)."""

from __future__ import annotations

import html
import io
from pathlib import Path

from pipeline.cpu import cpu_html
from pipeline.report.funnel import funnel_rows

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.fig{margin:1em 0}small{color:#666}"""


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype


def _figure(width=7.5, height=3.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def funnel_svg(rows: list[dict]) -> str:
    """Documents, images and words left after each stage (log scale when they span decades)."""
    fig, axes = _figure(10, 3.6)
    fig.clf()
    names = [r["stage"] for r in rows]
    for k, (level, label) in enumerate([("document", "documents"), ("image", "images"), ("word", "words")]):
        ax = fig.add_subplot(1, 3, k + 1)
        vals = []
        for r in rows:
            lv = r["levels"].get(level) or (r["levels"].get("words") if level == "word" else None)
            vals.append(lv["out"] if lv and lv.get("out") is not None else float("nan"))
        ax.barh(range(len(names)), vals, color=["#4c72b0", "#dd8452", "#55a868"][k])
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if k == 0 else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{label} out", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    return _svg(fig)


def histogram_svg(values: list[float], title: str, threshold: dict | None = None, bins: int = 40) -> str:
    fig, ax = _figure(5, 2.8)
    vals = [v for v in values if v is not None]
    ax.hist(vals, bins=bins, color="#4c72b0")
    for key, color in (("min", "#c44e52"), ("max", "#c44e52")):
        if threshold and threshold.get(key) is not None:
            ax.axvline(threshold[key], color=color, linestyle="--", label=f"{key} {threshold[key]}")
    if threshold:
        ax.legend(fontsize=7)
    ax.set_title(f"{title} (n={len(vals):,})", fontsize=9)
    ax.tick_params(labelsize=7)
    return _svg(fig)


def _fmt(x) -> str:
    return "—" if x is None else f"{x:,}"


def _table(rows: list[dict]) -> str:
    out = ["<table><tr><th class=l>stage</th><th class=l>level</th><th>in</th><th>out</th><th>dropped</th>"
           "<th class=l>drops by reason</th></tr>"]
    for r in rows:
        for level, lv in r["levels"].items():
            reasons = ", ".join(f"{html.escape(str(k))}: {v:,}" for k, v in lv["reasons"].items()) or "—"
            out.append(f"<tr><td class=l>{html.escape(r['stage'])}</td><td class=l>{html.escape(level)}</td>"
                       f"<td>{_fmt(lv['in'])}</td><td>{_fmt(lv['out'])}</td><td>{_fmt(lv['dropped'])}</td>"
                       f"<td class=l>{reasons}</td></tr>")
    out.append("</table>")
    events = [(r["stage"], k, v) for r in rows for k, v in (r.get("events") or {}).items()]
    if events:
        out.append("<h3>Events (counted, nothing dropped)</h3><table><tr><th class=l>stage</th>"
                   "<th class=l>event</th><th>count</th></tr>")
        out += [f"<tr><td class=l>{html.escape(st)}</td><td class=l>{html.escape(k)}</td><td>{v:,}</td></tr>"
                for st, k, v in events]
        out.append("</table>")
    return "\n".join(out)


def render_report(merged: dict, title: str = "Funnel report", profile: str | None = None) -> str:
    """The whole report as one HTML string."""
    rows = funnel_rows(merged)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p><small>{merged.get('shards', 0)} shard(s)"
             + (f", profile <code>{html.escape(profile)}</code>" if profile else "") + "</small></p>"]
    if rows:
        parts += ["<h2>Funnel</h2>", f"<div class=fig>{funnel_svg(rows)}</div>", _table(rows)]
    else:
        parts.append("<p>No stage statistics.</p>")
    dists = merged.get("distributions") or {}
    if dists:
        parts.append("<h2>Output documents</h2>")
        for name, values in dists.items():
            parts.append(f"<div class=fig>{histogram_svg(values, name.replace('_', ' '))}</div>")
    thresholds = merged.get("thresholds") or {}
    metrics = merged.get("metrics") or {}
    if metrics:
        parts.append("<h2>Filter metrics</h2>")
        for stage, ms in metrics.items():
            parts.append(f"<h3>{html.escape(stage)}</h3>")
            for name, values in ms.items():
                th = thresholds.get(f"{stage}.{name}") or thresholds.get(name)
                parts.append(f"<div class=fig>{histogram_svg(values, name, th)}</div>")
    parts.append(cpu_html(merged))  # pipeline.cpu: where the run's CPU time went
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(merged: dict, path: str | Path, **kwargs) -> Path:
    """Write ``report.html`` atomically."""
    from obelics.storage import write_text_atomic

    write_text_atomic(path, render_report(merged, **kwargs))
    return Path(path)
