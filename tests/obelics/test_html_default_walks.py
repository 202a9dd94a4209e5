"""The compiled walk of the ``default`` profile (obelics/html/_walk.pyx) against the Python walk it mirrors.

Both must give identical ``(texts, images, metadata)`` on every page: the shared HTML pages and WARC records,
the embedded sample, and hand-made edge cases. Under ``OBELICS_REQUIRE_COMPILED=1`` (set by .ci/run) a
missing compiled walk fails instead of skipping, so CI never measures or ships the slow path by accident.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from obelics.extract import _decode, extract_config
from obelics.html import extract_default
from obelics.html.reference_data import iter_reference_pages
from tests.conftest import compiled_or_skip, shared_path

URL = "https://example.com/a/b.html"
_WS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
SAMPLE_PAGES = Path(extract_default.__file__).resolve().parent.parent / "sample" / "pages"


@pytest.fixture(scope="module")
def cfg():
    compiled_or_skip(extract_default._compiled, extract_default.COMPILED_MISSING)
    return extract_config("default")


def both(html: str, url: str, cfg):
    fast = extract_default.extract_nodes(html, url, cfg, compiled=True)
    slow = extract_default.extract_nodes(html, url, cfg, compiled=False)
    return fast, slow


@pytest.mark.parametrize("main_content", [True, False])
def test_shared_pages_identical(cfg, main_content):
    cfg = dataclasses.replace(cfg, main_content=main_content)
    shared = shared_path("data", "reference").parent.parent
    pages = nodes = 0
    for page in iter_reference_pages(shared, which="both"):
        html = _decode(page.payload, cfg)
        fast, slow = both(html, page.url, cfg)
        assert fast == slow, page.key
        pages += 1
        nodes += len(fast[0])
    # the main-content decision leaves fewer nodes: images of the page's chrome go, so text nodes merge
    assert pages == 225 and nodes > (900 if main_content else 1500)


def test_content_bench_pages_identical(cfg):
    """Both walks and both gatherers of the decision's statistics agree on the content benchmark's pages."""
    from bench.bench_content import DATA, load_pages

    if not (DATA / "ground-truth.json").exists():
        pytest.skip(f"no content benchmark at {DATA}")
    for page in load_pages()[::3]:
        fast, slow = both(page.html, page.url, cfg)
        assert fast == slow, page.key


def test_sample_pages_identical(cfg):
    files = sorted(SAMPLE_PAGES.glob("*.html"))
    assert files
    for f in files:
        fast, slow = both(f.read_text(encoding="utf-8"), f"https://sample.example/{f.name}", cfg)
        assert fast == slow, f.name
        assert fast[0], f.name


@pytest.mark.parametrize("body", [
    "",
    "plain text only",
    "<p>x<![CDATA[y]]>z</p><svg><![CDATA[s]]><title>t</title><a href='#'>sv</a></svg>",
    "<svg><foreignObject><p>fo</p></foreignObject><clipPath><p>c</p></clipPath></svg><p>after</p>",
    "<select><option>o</option></select>b<textarea>ta</textarea>c<template><p>x</p></template>d",
    "<table>stray<tr><td>x</td><td><a href=#>l</a></td></tr></table><table><tr><td>"
    "<input type='PassWord'></td><td>Login</td></tr></table><p>" + "body text " * 30 + "</p>",
    "<nav>n<ul><li>l</li></ul></nav><p>p</p><div class='sidebar'>s</div>q<div id=comments>c</div>",
    "<div class='sidebar'><article><p>kept article</p></article></div><div class=footer itemprop=articleBody>k</div>",
    "<div class='sidebar'>" + "most of the page " * 50 + "</div><p>small</p>",
    "<ul><li><a href=#>a</a></li><li><a href=#>b</a><ul><li><a href=#>c</a></li></ul></li></ul><ul><li>text "
    "<a href=#>x</a> more words here</li></ul><dl><dt>t</dt><dd>d</dd></dl>",
    "<div hidden>h</div><div aria-hidden=true>a</div><div style='display: NONE'>s</div>"
    "<article><div hidden>page 2</div><img aria-hidden=true src=i.jpg></article>",
    "<div class='post-date'>d</div><div class='entry'>e</div><div title=share>t</div><div role=navigation>r</div>",
    "<div class='wp-post-nav eod'>x</div><p>a<br>b<BR class=x>c</p><pre>l1\n  l2\n\n l3 </pre><pre></pre>",
    "<noscript><img src=ns.jpg>no text</noscript><p>t <img src=a.jpg width=1 height=1><img src='data:x'>"
    "<img srcset='s.jpg 300w, l.jpg 900w' src=m.jpg alt=' two  words '><img src=m.jpg><img src=m.jpg></p>",
    "<picture><source srcset='a.webp 800w'><source src='b.webp'><img src='a.jpg'></picture>"
    "<picture class=x><source data-srcset='c.webp'></picture><picture></picture>",
    "<my-widget class=sidebar>w</my-widget><my-widget>kept</my-widget><x-y><p>in custom</p></x-y>",
    "<p>caf\u00e9 \u00a0 na\u00efve\u2003space\u3000wide</p><p>\x00nul</p><p>emoji \U0001F600 end</p>",
    # every character str.split() splits on (the compiled walk collapses whitespace on UTF-8 bytes), and
    # neighbours that are not whitespace (zero-width space, soft hyphen, U+180E); lone surrogates
    "<p>" + _WS + "a" + _WS + "b\u200bc\u00ad\u180ed" + _WS + "</p><p>x\ud800y \udcff</p>" + _WS,
    "<h1>T</h1><address>a</address><center>c</center><details><summary>s</summary>d</details><hr><marquee>m</marquee>",
    "<div>" * 3000 + "deep" + "</div>" * 3000,
])
def test_edge_cases_identical(cfg, body):
    html = f"<html><head><base href='/base/'><title>t</title></head><body>{body}</body></html>"
    fast, slow = both(html, URL, cfg)
    assert fast == slow


def test_profile_switches_identical(cfg):
    """The switches a profile can flip reach the compiled walk too."""
    body = ("<article><aside>only in article</aside></article><aside>out</aside><ul><li>item</li></ul>"
            "<table><tr><td>cell</td></tr></table><noscript><img src=n.jpg></noscript><div class=date>d</div>"
            "<img src=a.jpg><img src=a.jpg>")
    html = f"<html><body>{body}</body></html>"
    variants = [cfg]
    for change in ({"keep_lists": False}, {"keep_tables": False}, {"noscript_images": False},
                   {"remove_dates": False}, {"drop_consecutive_duplicate_images": False},
                   {"remove_tags": list(cfg.remove_tags) + ["table"]}, {"article_only_tags": ["aside"]},
                   {"remove_hidden": False}):
        variants.append(cfg.__class__(**{**cfg.__dict__, **change}))
    outputs = set()
    for c in variants:
        fast, slow = both(html, URL, c)
        assert fast == slow, c
        outputs.add(repr(fast))
    assert len(outputs) >= 4  # the switches do change the output


def test_compiled_required_raises_when_missing(monkeypatch):
    monkeypatch.setattr(extract_default, "_compiled", None)
    with pytest.raises(RuntimeError, match="not available"):
        extract_default.extract_nodes("<p>x</p>", URL, compiled=True)
    assert extract_default.extract_nodes("<p>x</p>", URL)[0] == ["x"]


def test_pure_python_switch():
    """OBELICS_PURE_PYTHON=1 runs the Python walk, and says so."""
    import subprocess
    import sys

    code = ("from obelics.html import extract_default as e; from obelics.extract import extract_html; "
            "assert e._compiled is None and 'OBELICS_PURE_PYTHON' in e.COMPILED_MISSING; "
            "print(extract_html('<p>a <b>b</b></p>', 'https://x.org/').texts)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "OBELICS_PURE_PYTHON": "1"},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['a b']"


def test_compiled_decision_equals_the_python_one(cfg):
    """``_walk.decide`` (statistics and decision in C) gives the very plan of content.decide on the Python
    statistics, on the 225 shared pages and every content-benchmark page."""
    from selectolax.lexbor import LexborHTMLParser

    from bench.bench_content import DATA, load_pages

    rules = extract_default._rules(cfg)
    shared = shared_path("data", "reference").parent.parent
    htmls = [_decode(p.payload, cfg) for p in iter_reference_pages(shared, which="both")]
    if (DATA / "ground-truth.json").exists():
        htmls += [p.html for p in load_pages()]
    plans = 0
    for html in htmls:
        body = LexborHTMLParser(html).body
        if body is None:
            continue
        fast = extract_default._plan(body, rules, cfg, compiled=True)
        assert fast == extract_default._plan(body, rules, cfg, compiled=False)
        plans += fast is not None
    assert plans > 350


STALE = "a build older than _walk.pyx's text_reads (rebuild: python setup.py build_ext --inplace)"


def _read_both_ways(html, url, cfg):
    """The compiled walk's output reading text nodes' own bytes, and reading lexbor's copies of them."""
    w = extract_default._compiled
    try:
        assert w.text_reads(False) is False
        copied = extract_default.extract_nodes(html, url, cfg, compiled=True)
        assert w.text_reads(True) is True
        direct = extract_default.extract_nodes(html, url, cfg, compiled=True)
    finally:
        w.text_reads(True)
    return direct, copied


@pytest.mark.parametrize("main_content", [True, False])
def test_text_read_in_place_equals_the_copies(cfg, main_content):
    """The walk and the decision's statistics read each text node's bytes where lexbor keeps them (the layout
    checked at import; it holds for the selectolax installed here) and give exactly what lexbor's copies give:
    every shared page, the sample, and odd text (invalid UTF-8 passed through, NUL, CDATA, long runs)."""
    compiled_or_skip(getattr(extract_default._compiled, "text_reads", None), STALE)
    cfg = dataclasses.replace(cfg, main_content=main_content)
    shared = shared_path("data", "reference").parent.parent
    pages = [(_decode(p.payload, cfg), p.url) for p in iter_reference_pages(shared, which="both")]
    pages += [(f.read_text(encoding="utf-8"), URL) for f in sorted(SAMPLE_PAGES.glob("*.html"))]
    odd = (b"<p>caf\xe9 \xff\xfe bytes</p><p>ok \xc3\xa9t\xc3\xa9</p><ul><li><a href=#>l\x80</a></li></ul>"
           b"<p>x<![CDATA[y]]>z\x00w</p><div class=sidebar>" + b"long text " * 5000 + b"</div><p>" + b"a" * 70000
           + b"</p><table><tr><td><a href=#>\xe2\x80</a></td><td>t</td></tr></table>")
    pages += [(odd, URL), (odd.decode("utf-8", "replace"), URL), ("<body></body>", URL), ("<p></p>text", URL)]
    nodes = 0
    for html, url in pages:
        direct, copied = _read_both_ways(html, url, cfg)
        assert direct == copied, url
        nodes += len(direct[0])
    assert len(pages) > 225 and nodes > 900


def test_text_layout_probe():
    """The import-time check finds lexbor's text field at its offset and refuses the fields before it (it
    compares each probe node's length before it follows a pointer)."""
    import struct

    w = extract_default._compiled
    compiled_or_skip(w, extract_default.COMPILED_MISSING)
    compiled_or_skip(getattr(w, "probe_text_layout", None), STALE)
    ptr = struct.calcsize("P")
    assert w.probe_text_layout(12 * ptr) == 12 * ptr
    for k in range(8, 12):
        assert w.probe_text_layout(k * ptr) == -1


@pytest.mark.parametrize("main_content", [True, False])
def test_node_fields_read_directly_equal_the_functions(cfg, main_content):
    """The walk, the decision's statistics and the counts read a node's links, tag id and type from its fields
    (the layout checked at import: ``probe_node_layout``) and give exactly what lexbor's functions give: every
    shared page, the sample, odd and nested pages, with the main-content decision on and off."""
    w = extract_default._compiled
    compiled_or_skip(w, extract_default.COMPILED_MISSING)
    compiled_or_skip(getattr(w, "node_reads", None), "a build older than _walk.pyx's node_reads (rebuild)")
    assert w.probe_node_layout() is True and w.node_reads(True) is True
    cfg = dataclasses.replace(cfg, main_content=main_content)
    shared = shared_path("data", "reference").parent.parent
    pages = [(_decode(p.payload, cfg), p.url) for p in iter_reference_pages(shared, which="both")]
    pages += [(f.read_text(encoding="utf-8"), URL) for f in sorted(SAMPLE_PAGES.glob("*.html"))]
    pages += [("<div>" * 3000 + "deep" + "</div>" * 10, URL), ("<body></body>", URL), ("<p></p>text", URL),
              ("<table><tr><td><picture><source srcset=a.jpg><img src=b.jpg></picture><noscript><img src=c.jpg>"
               "</noscript><x-y>z</x-y><svg><text>s</text></svg><!-- c --></td></tr></table>", URL)]
    nodes = 0
    try:
        for html, url in pages:
            assert w.node_reads(False) is False
            by_functions = extract_default.extract_nodes(html, url, cfg, compiled=True)
            assert w.node_reads(True) is True
            direct = extract_default.extract_nodes(html, url, cfg, compiled=True)
            assert direct == by_functions, url
            nodes += len(direct[0])
    finally:
        w.node_reads(True)
    assert len(pages) > 225 and nodes > 900
