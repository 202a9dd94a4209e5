// obelics view: the page over the JSON API of pipeline/view/app.py. No framework, no CDN; every text from
// the run is inserted as text (never as HTML), images come from /api/image (the run's own image bytes).
"use strict";

const main = document.getElementById("main");
const PAGE = 20;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") e.textContent = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

async function api(path) {
  const r = await fetch(path);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(4);
  return String(v);
}

function params(hash) {
  const q = hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(q));
}

function show(...nodes) { main.replaceChildren(...nodes); }

function fail(e) { show(el("p", { class: "error", "data-testid": "error", text: String(e.message || e) })); }

// -- documents -----------------------------------------------------------------------------------------------
function docTable(docs) {
  const rows = docs.map((d) => el("tr", { "data-testid": "doc-row" },
    el("td", { class: "num" }, el("a", { href: `#/doc/${d.index}`, text: String(d.index) })),
    el("td", {}, el("a", { href: `#/doc/${d.index}`, "data-testid": "doc-link", text: d.url || "(no url)" }),
      el("div", { class: "snippet", text: d.snippet })),
    el("td", { class: "num", text: String(d.words) }), el("td", { class: "num", text: String(d.images) })));
  return el("table", { "data-testid": "doc-table" },
    el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "document" }),
      el("th", { class: "num", text: "words" }), el("th", { class: "num", text: "images" })), ...rows);
}

async function listDocs(p) {
  const start = Math.max(0, parseInt(p.start || "0", 10));
  const page = await api(`/api/docs?start=${start}&n=${PAGE}`);
  const last = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
  const jump = el("input", { type: "number", min: "0", value: String(start), "data-testid": "jump", style: "width:9em" });
  const pager = el("div", { class: "pager" },
    el("a", { href: `#/docs?start=0`, text: "« first" }),
    el("a", { href: `#/docs?start=${Math.max(0, start - PAGE)}`, "data-testid": "prev", text: "‹ prev" }),
    el("span", { "data-testid": "page-info", text: `${start}–${start + page.documents.length - 1} of ${page.total}` }),
    el("a", { href: `#/docs?start=${start + PAGE < page.total ? start + PAGE : start}`, "data-testid": "next", text: "next ›" }),
    el("a", { href: `#/docs?start=${last}`, text: "last »" }),
    el("span", {}, " go to #", jump,
      el("button", { type: "button", onclick: () => { location.hash = `#/docs?start=${jump.value || 0}`; }, text: "go" })));
  show(pager, docTable(page.documents));
}

function imageNode(n) {
  const m = n.meta || {};
  const lines = [`src: ${n.url}`];
  for (const k of ["alt_text", "original_width", "original_height", "rendered_width", "rendered_height", "format", "sha256"])
    if (m[k] !== undefined && m[k] !== null && m[k] !== "") lines.push(`${k}: ${m[k]}`);
  for (const [k, v] of Object.entries(m))
    if (!lines.some((l) => l.startsWith(`${k}:`)) && !["src", "unformatted_src", "document_url"].includes(k) && v !== null)
      lines.push(`${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
  const text = lines.join("\n");
  const img = el("img", { src: `/api/image?url=${encodeURIComponent(n.url)}`, alt: m.alt_text || "", title: text,
    "data-testid": "doc-image", "data-src": n.url });
  const fig = el("figure", { class: "node-image" }, img, el("div", { class: "meta", "data-testid": "image-meta", text: text }));
  img.addEventListener("error", () => img.replaceWith(el("div", { class: "missing", title: text,
    text: `image not in this run's image table or shards: ${n.url}` })), { once: true });
  return fig;
}

function renderDoc(d, testid) {
  const w = d.warc || {};
  const head = el("div", { class: "doc-head" },
    el("div", { class: "url" }, el("a", { href: d.url, rel: "noreferrer noopener", target: "_blank", "data-testid": "doc-url", text: d.url || "" })),
    el("div", { class: "counts", "data-testid": "doc-counts" },
      el("span", { text: `${d.words} words` }), el("span", { text: `${d.images} images` }),
      el("span", { text: `${d.nodes.length} nodes` }), d.domain ? el("span", { text: d.domain }) : null),
    el("div", { "data-testid": "doc-warc" }, "WARC ", el("code", { text: w.warc_filename || "?" }),
      " offset ", el("code", { text: fmt(w.warc_record_offset) }), " length ", el("code", { text: fmt(w.warc_record_length) })));
  const body = d.nodes.map((n) => n.type === "image" ? imageNode(n)
    : el("div", { class: "node-text", "data-testid": "doc-text" }, ...n.text.split("\n\n").map((p) => el("p", { text: p }))));
  return el("article", { class: "doc", "data-testid": testid || "document" }, head, ...body);
}

async function showDoc(index) {
  const d = await api(`/api/doc/${index}`);
  const nav = el("div", { class: "pager" },
    index > 0 ? el("a", { href: `#/doc/${index - 1}`, text: "‹ previous document" }) : null,
    el("a", { href: `#/doc/${index + 1}`, text: "next document ›" }),
    el("a", { href: `#/docs?start=${Math.floor(index / PAGE) * PAGE}`, text: "back to the list" }),
    el("a", { href: `#/compare/${index}`, "data-testid": "compare-link", text: "obelics-2023 vs default extraction" }));
  show(nav, renderDoc(d));
}

async function showCompare(index, p) {
  show(el("p", { class: "muted", text: "extracting the WARC record with both profiles…" }));
  const r = index === null
    ? await api(`/api/compare?warc_filename=${encodeURIComponent(p.f)}&offset=${p.o}&length=${p.l}`)
    : await api(`/api/compare/${index}`);
  const col = (name) => {
    const d = r.profiles[name];
    return el("section", { "data-testid": `compare-${name}` }, el("h3", { text: name }),
      d ? renderDoc(d, `compare-doc-${name}`) : el("p", { class: "muted", text: "no document extracted" }));
  };
  show(el("div", { class: "pager" }, index === null ? el("a", { href: "javascript:history.back()", text: "‹ back" })
    : el("a", { href: `#/doc/${index}`, text: "‹ back to the document" }),
    el("span", { class: "muted", text: "as extracted now from the stored record, before any filter" })),
  el("div", { class: "cols" }, col("obelics-2023"), col("default")));
}

async function showSearch(p) {
  const start = parseInt(p.start || "0", 10);
  const r = await api(`/api/search?q=${encodeURIComponent(p.q || "")}&field=${encodeURIComponent(p.field || "text")}&start=${start}`);
  const more = r.next !== null
    ? el("a", { href: `#/search?q=${encodeURIComponent(r.query)}&field=${r.field}&start=${r.next}`, "data-testid": "search-more",
      text: `continue from document ${r.next} ›` }) : el("span", { class: "muted", text: "end of the run" });
  show(el("div", { class: "pager", "data-testid": "search-info" },
    el("span", { text: `${r.documents.length} match(es) for “${r.query}” in ${r.field}, documents ${r.start}–${r.start + r.scanned - 1} of ${r.total} scanned` }), more),
  docTable(r.documents));
}

// -- funnel and drops --------------------------------------------------------------------------------------------
async function showFunnel() {
  const s = await api("/api/funnel");
  const levels = ["document", "node", "paragraph", "image"];
  const rows = (s.stages || []).map((st) => {
    const counts = levels.filter((l) => (st.in || {})[l] !== undefined || (st.out || {})[l] !== undefined)
      .map((l) => `${l}: ${fmt((st.in || {})[l])} → ${fmt((st.out || {})[l])}`).join("\n");
    const reasons = [];
    for (const [level, byReason] of Object.entries(st.dropped || {}))
      for (const [reason, n] of Object.entries(byReason))
        reasons.push(el("a", { href: `#/drops?stage=${encodeURIComponent(st.stage)}&level=${encodeURIComponent(level)}&reason=${encodeURIComponent(reason)}`,
          "data-testid": "drop-link", "data-stage": st.stage, "data-level": level, "data-reason": reason },
        `${reason} `, el("span", { class: "level", text: `(${level}) ×${n}` })));
    return el("tr", { "data-testid": "funnel-row" }, el("td", { text: st.stage }),
      el("td", { style: "white-space:pre", text: counts }), el("td", { class: "reasons" }, ...reasons));
  });
  const sum = s.summary ? `${s.summary.documents} documents, ${s.summary.images} images, ${s.summary.words} words out` : "";
  const read = s.read ? `read: ${fmt(s.read.records)} WARC records, ${fmt(s.read.html_records)} HTML pages; skipped: ` +
    (Object.entries(s.read.skipped || {}).map(([k, v]) => `${k} ×${v}`).join(", ") || "none") : "";
  show(el("p", { class: "muted", text: s.finished ? `finished run: ${sum}` : "run in progress: the units done so far" }),
    el("p", { class: "muted", "data-testid": "funnel-read", text: read }),
    el("table", { class: "funnel", "data-testid": "funnel" },
      el("tr", {}, el("th", { text: "stage" }), el("th", { text: "in → out" }), el("th", { text: "dropped (click for a sample)" })), ...rows));
}

function metricLine(m) {
  if (!m) return null;
  const bounds = [m.min !== null && m.min !== undefined ? `min ${fmt(m.min)}` : null,
    m.max !== null && m.max !== undefined ? `max ${fmt(m.max)}` : null].filter(Boolean).join(", ");
  return el("div", { class: "metric", "data-testid": "drop-metric" }, `${m.name} = ${fmt(m.value)}${bounds ? `  (threshold: ${bounds})` : ""}`);
}

async function showDrops(p) {
  show(el("p", { class: "muted", text: `recomputing a sample of ${p.reason} drops at ${p.stage}…` }));
  const limit = parseInt(p.limit || "10", 10);
  const r = await api(`/api/drops?stage=${encodeURIComponent(p.stage)}&level=${encodeURIComponent(p.level)}&reason=${encodeURIComponent(p.reason)}&limit=${limit}`);
  const items = r.items.map((it) => {
    const settings = Object.keys(it.settings || {}).length
      ? el("div", { class: "settings", text: "profile: " + Object.entries(it.settings).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("  ") }) : null;
    let body;
    if (it.kind === "document") {
      const w = it.document.warc || {};
      body = el("div", {}, w.warc_filename ? el("a", { "data-testid": "drop-compare",
        href: `#/compare-record?f=${encodeURIComponent(w.warc_filename)}&o=${w.warc_record_offset}&l=${w.warc_record_length}`,
        text: "obelics-2023 vs default extraction of this page" }) : null, renderDoc(it.document, "drop-document"));
    }
    else if (it.kind === "image") body = imageNode({ url: it.image, meta: it.image_meta || {} });
    else body = el("div", { class: "text", "data-testid": "drop-text", text: it.text });
    return el("div", { class: "drop", "data-testid": "drop-item" },
      it.url ? el("div", { class: "muted", text: it.url }) : null, metricLine(it.metric),
      it.note ? el("div", { class: "muted", "data-testid": "drop-note", text: it.note }) : null, settings, body);
  });
  show(el("h2", { text: `${r.stage}: ${r.reason} (${r.level})` }),
    el("p", { class: "muted", "data-testid": "drop-info" },
      `${r.items.length} item(s) from the first ${fmt(r.scanned)} documents read by ${r.folder || "the run"}, recomputed with the run's profile `,
      r.items.length === limit && limit < 50 ? el("a", { href: `${location.hash.split("&limit=")[0]}&limit=50`, text: "show up to 50" }) : null),
    ...items);
}

// -- routing -------------------------------------------------------------------------------------------------
async function route() {
  const hash = location.hash || "#/docs";
  const p = params(hash);
  const path = hash.split("?")[0];
  try {
    let m;
    if ((m = path.match(/^#\/doc\/(\d+)$/))) await showDoc(parseInt(m[1], 10));
    else if ((m = path.match(/^#\/compare\/(\d+)$/))) await showCompare(parseInt(m[1], 10));
    else if (path === "#/compare-record") await showCompare(null, p);
    else if (path === "#/search") await showSearch(p);
    else if (path === "#/funnel") await showFunnel();
    else if (path === "#/drops") await showDrops(p);
    else await listDocs(p);
    main.setAttribute("data-route", path);
  } catch (e) { fail(e); }
}

document.getElementById("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = document.getElementById("search-q").value.trim();
  if (q) location.hash = `#/search?q=${encodeURIComponent(q)}&field=${document.getElementById("search-field").value}`;
});
document.getElementById("random").addEventListener("click", async () => {
  try { location.hash = `#/doc/${(await api("/api/random")).index}`; } catch (e) { fail(e); }
});
window.addEventListener("hashchange", route);
api("/api/summary").then((s) => {
  document.getElementById("run").textContent =
    `${s.out} · ${s.profile || "?"} · ${s.documents} documents from ${s.source}${s.finished ? "" : " (in progress)"}`;
}).catch(() => {});
route();
