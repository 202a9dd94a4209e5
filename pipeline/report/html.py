"""A static ``report.html`` that opens offline: a summary and the warnings first, then the funnel, drops by
reason, errors and events, metric histograms with their thresholds, and images and words per document.
Plots are matplotlib figures inlined as SVG (no scripts, no external files); a plot without data is not
drawn ("no data" instead).

The page is a list of sections (:data:`SECTIONS`), each a function of the merged stats returning HTML:
a new table is one more function in that list.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path

from pipeline.cpu import cpu_html
from pipeline.report.funnel import funnel_rows
from pipeline.report.summary import run_summary, run_warnings

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.fig{margin:1em 0}small{color:#666}
.warn{background:#fff4e5;border-left:4px solid #e67e22;padding:.5em 1em}.warn li.systemic,.warn li.empty{color:#a00}
.nodata{color:#888;font-style:italic}dl.sum{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.sum dt{font-weight:600}dl.sum dd{margin:0}"""
LEVEL_COLORS = {"document": "#4c72b0", "image": "#dd8452", "word": "#55a868"}
HIST_COLOR = "#4c72b0"
NO_DATA = "<p class=nodata>no data</p>"


def _svg(fig, tight: bool = True) -> str:
    """``fig`` as inline SVG; its text as SVG text, not glyph outlines (half the bytes, less CPU). ``tight``: cut
    to what is drawn (a second drawing pass: only where labels are long, as the funnel's stage names)."""
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight" if tight else None)
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype


def _figure(width=7.5, height=3.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _level(row: dict, level: str) -> dict | None:
    return row["levels"].get(level) or (row["levels"].get("words") if level == "word" else None)


def funnel_svg(rows: list[dict]) -> str:
    """Documents, images and words left after each stage, one panel per level that has data ("" if none)."""
    names = [r["stage"] for r in rows]
    panels = []
    for level, label in (("document", "documents"), ("image", "images"), ("word", "words")):
        vals = [(_level(r, level) or {}).get("out") for r in rows]
        if any(v is not None for v in vals):
            panels.append((level, label, [float("nan") if v is None else v for v in vals]))
    if not panels:
        return ""
    fig, _ = _figure(3.4 * len(panels), 0.6 + 0.22 * len(rows))
    fig.clf()
    for k, (level, label, vals) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.barh(range(len(names)), vals, color=LEVEL_COLORS[level])
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if k == 0 else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{label} out", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    return _svg(fig)


def histogram_svg(values: list[float], title: str, threshold: dict | None = None, bins: int = 40) -> str:
    """A histogram of ``values`` with the threshold lines ("" when there is no finite value)."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return ""
    import numpy as np

    fig, ax = _figure(5, 2.8)
    counts, edges = np.histogram(np.asarray(vals, dtype=float), bins=bins)  # what ax.hist counts
    ax.stairs(counts, edges, fill=True, color=HIST_COLOR)  # one path, not a patch per bin
    for key in ("min", "max"):
        if threshold and threshold.get(key) is not None:
            ax.axvline(threshold[key], color="#c44e52", linestyle="--", label=f"{key} {threshold[key]}")
    if threshold:
        ax.legend(fontsize=7)
    ax.set_title(f"{title} (n={len(vals):,})", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.88)  # room for the short tick labels and title
    return _svg(fig, tight=False)


def _fig(svg: str, n: int, name: str) -> str:
    if not svg:
        return f"<div class=nodata data-plot='{html.escape(name)}'>{html.escape(name)}: no data</div>"
    return f"<div class=fig data-plot='{html.escape(name)}' data-values={n}>{svg}</div>"


def _fmt(x) -> str:
    return "—" if x is None else f"{x:,}"


# -- sections -------------------------------------------------------------------------------------------------
def summary_section(merged: dict, out_dir: str | None = None, **_) -> str:
    """Documents, images, words out, share kept and where the outputs are."""
    s = run_summary(merged, out_dir)
    kept = "—" if s["share_kept"] is None else f"{s['share_kept']:.1%} of {s['documents_in']:,} HTML pages"
    items = [("documents out", _fmt(s["documents"])), ("images out", _fmt(s["images"])),
             ("words out", _fmt(s["words"])), ("documents kept", kept)]
    if s["units"] is not None:
        items.append(("input units", _fmt(s["units"])))
    where = [f"<code>{html.escape(o['folder'])}/</code>: {o['files']:,} {html.escape(o['format'])} file(s), "
             f"{o['documents']:,} documents" for o in s["outputs"]]
    base = html.escape(str(out_dir)) if out_dir else "the run folder"
    items.append(("outputs", (f"in <code>{base}</code>: " + "; ".join(where)) if where else "none written"))
    items.append(("funnel", f"<code>{base}/stats.json</code>" if out_dir else "<code>stats.json</code>"))
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return f"<section id=summary><h2>Summary</h2><dl class=sum>{body}</dl></section>"


def warnings_section(merged: dict, **_) -> str:
    ws = run_warnings(merged)
    if not ws:
        return "<section id=warnings><h2>Warnings</h2><p>None: no stage lost its input to errors or dropped " \
               "almost everything.</p></section>"
    items = "".join(f"<li class={html.escape(w['kind'])}>{html.escape(w['message'])}</li>" for w in ws)
    return f"<section id=warnings class=warn><h2>Warnings ({len(ws)})</h2><ul>{items}</ul></section>"


def _is_error(name: str) -> bool:
    return ":error" in name or name.startswith(("error", "input_error"))


def funnel_section(merged: dict, **_) -> str:
    rows = funnel_rows(merged)
    if not rows:
        return f"<section id=funnel><h2>Funnel</h2>{NO_DATA}</section>"
    out = ["<section id=funnel><h2>Funnel</h2>", _fig(funnel_svg(rows), len(rows), "funnel"),
           "<table><tr><th class=l>stage</th><th class=l>level</th><th>in</th><th>out</th><th>dropped</th>"
           "<th class=l>drops by reason</th></tr>"]
    for r in rows:
        if not r["levels"]:  # a stage that counted nothing (a decision with no effect) still has its row
            out.append(f"<tr data-stage='{html.escape(r['stage'])}'><td class=l>{html.escape(r['stage'])}</td>"
                       "<td class=l>—</td><td>—</td><td>—</td><td>—</td><td class=l>nothing counted</td></tr>")
        for level, lv in r["levels"].items():
            reasons = ", ".join(f"{html.escape(str(k))}: {v:,}" for k, v in lv["reasons"].items()) or "—"
            out.append(f"<tr data-stage='{html.escape(r['stage'])}'><td class=l>{html.escape(r['stage'])}</td>"
                       f"<td class=l>{html.escape(level)}</td><td>{_fmt(lv['in'])}</td><td>{_fmt(lv['out'])}</td>"
                       f"<td>{_fmt(lv['dropped'])}</td><td class=l>{reasons}</td></tr>")
    out.append("</table>")
    events = [(r, k, v) for r in rows for k, v in (r.get("events") or {}).items()]
    errors = [(r, k, v) for r, k, v in events if _is_error(k)]
    if errors:  # an error may drop what it concerns (e.g. optout.on_error: drop): say how many, never "nothing"
        out.append("<h3>Errors</h3><table><tr><th class=l>stage</th><th class=l>error</th><th>count</th>"
                   "<th class=l>dropped for it</th></tr>")
        for r, k, v in errors:
            dropped = [f"{n:,} {level}(s)" for level, lv in r["levels"].items() if (n := lv["reasons"].get(k))]
            out.append(f"<tr><td class=l>{html.escape(r['stage'])}</td><td class=l>{html.escape(k)}</td>"
                       f"<td>{v:,}</td><td class=l>{', '.join(dropped) or 'none'}</td></tr>")
        out.append("</table>")
    others = [(r, k, v) for r, k, v in events if not _is_error(k)]
    if others:
        out.append("<h3>Events (counted; drops are in the funnel above)</h3><table><tr><th class=l>stage</th>"
                   "<th class=l>event</th><th>count</th></tr>")
        out += [f"<tr><td class=l>{html.escape(r['stage'])}</td><td class=l>{html.escape(k)}</td><td>{v:,}</td></tr>"
                for r, k, v in others]
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


def documents_section(merged: dict, **_) -> str:
    dists = merged.get("distributions") or {}
    if not dists:
        return ""
    parts = ["<section id=documents><h2>Output documents</h2>"]
    for name, values in dists.items():
        parts.append(_fig(histogram_svg(values, name.replace("_", " ")), len(values), name))
    return "\n".join(parts + ["</section>"])


def metrics_section(merged: dict, **_) -> str:
    thresholds = merged.get("thresholds") or {}
    metrics = merged.get("metrics") or {}
    if not metrics:
        return ""
    parts = ["<section id=metrics><h2>Filter metrics</h2>"]
    for stage, ms in metrics.items():
        parts.append(f"<h3>{html.escape(stage)}</h3>")
        for name, values in ms.items():
            th = thresholds.get(f"{stage}.{name}") or thresholds.get(name)
            parts.append(_fig(histogram_svg(values, name, th), len(values), f"{stage}: {name}"))
    return "\n".join(parts + ["</section>"])


def cpu_section(merged: dict, **_) -> str:
    return cpu_html(merged)  # pipeline.cpu: where the run's CPU time went


SECTIONS = [summary_section, warnings_section, funnel_section, documents_section, metrics_section, cpu_section]


def render_report(merged: dict, title: str = "Funnel report", profile: str | None = None,
                  out_dir: str | None = None) -> str:
    """The whole report as one HTML string (``out_dir``: where the run's outputs are, for the summary)."""
    s = run_summary(merged, out_dir)
    files = ", ".join(f"{o['files']:,} {o['format']} file(s)" for o in s["outputs"])
    sub = [f"profile <code>{html.escape(profile)}</code>" if profile else "",
           f"{s['units']:,} input unit(s)" if s["units"] is not None else "", files]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p><small>{', '.join(x for x in sub if x)}</small></p>"]
    parts += [section(merged, out_dir=out_dir) for section in SECTIONS]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_report(merged: dict, path: str | Path, **kwargs) -> Path:
    """Write ``report.html`` atomically (the summary names the folder it is written in)."""
    from obelics.storage import write_text_atomic

    kwargs.setdefault("out_dir", str(path).rsplit("/", 1)[0] if "/" in str(path) else ".")
    write_text_atomic(path, render_report(merged, **kwargs))
    return Path(path)
