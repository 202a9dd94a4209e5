"""The ``default`` profile: HTML -> interleaved text and image nodes, fixing docs/reference.md §9.2.

One lexbor parse, C-level removals (``strip_tags`` for boilerplate tags, one combined CSS query for
boilerplate blocks), then one Python walk over what is left that emits text and images in page order:

- block boundaries give line (``\\n``) or paragraph (``\\n\\n``) breaks; ``<br>`` in any case or with
  attributes is a line break; whitespace runs collapse to one space; words are never glued across a
  block, a ``<br>`` or a table cell;
- list items, definition terms/descriptions and table rows survive as lines (lists and tables that are
  mostly link text are menus and are dropped);
- images inside ``<figure>``/``<picture>`` survive, the figcaption as the following text; ``srcset``,
  ``data-srcset`` and ``<source>`` candidates are parsed and the largest is chosen; lazy-load attributes
  are read; relative URLs resolve per RFC 3986 against the page URL and ``<base href>``;
- ``data:`` URIs and images declared 1x1 are dropped; images inside ``<noscript>`` (lazy-load
  fallbacks) are kept, their text is not; the same URL twice in a row is kept once.
"""

from __future__ import annotations

import os
import sys

from selectolax.lexbor import LexborHTMLParser

from obelics.document import EOD_TOKEN
from obelics.html import content
from obelics.html.config import ExtractConfig
from obelics.html.media_2023 import format_filename
from obelics.html.urls import parse_srcset, resolve_url

# break levels: 0 nothing, 1 space, 2 line, 3 paragraph
_SEP = ("", " ", "\n", "\n\n")
_BLOCK_LEVEL = {
    "p": 3, "h1": 3, "h2": 3, "h3": 3, "h4": 3, "h5": 3, "h6": 3, "ul": 3, "ol": 3, "dl": 3,
    "blockquote": 3, "table": 3, "pre": 3, "figure": 3, "hr": 3,
    "div": 2, "section": 2, "article": 2, "main": 2, "li": 2, "dt": 2, "dd": 2, "tr": 2, "figcaption": 2,
    "caption": 2, "address": 2, "center": 2, "summary": 2, "details": 2, "header": 2, "hgroup": 2,
    "legend": 2, "fieldset": 2, "br": 2, "thead": 2, "tbody": 2, "tfoot": 2, "body": 2, "picture": 1,
    "td": 1, "th": 1, "marquee": 2, "nobr": 0,
}
# The node-selection tables below are the only definition of these rules: the compiled walk
# (obelics/html/_walk.pyx) reads every one of them at configure time, so a rule is changed here alone.
#
# a block matched as boilerplate is kept when it is one of these, or holds an article (a content block)
_CONTENT_TAGS = frozenset(["article", "main", "body"])
_CONTENT_BLOCK_TAGS = ("article", "main")
_CONTENT_BLOCK_ATTR = ("itemprop", "articleBody")  # attribute, exact value
_CONTENT_SELECTOR = ", ".join(_CONTENT_BLOCK_TAGS) + ", [{}='{}']".format(*_CONTENT_BLOCK_ATTR)
# a table holding this field is a login box, not content: tag, attribute, value (ASCII case-insensitive)
_LOGIN_FIELD = ("input", "type", "password")
_LOGIN_SELECTOR = "{}[{}='{}' i]".format(*_LOGIN_FIELD)
# elements whose text is never page text: stripped before the Python walk, skipped by the compiled one
_STRIPPED_TAGS = ("script", "style", "template")
_LINK_TAG = "a"  # link text, for the link density of lists and tables
_PICTURE_PARTS = ("source", "img")  # what a <picture> offers: <source> candidates, then the first <img>
_DIV_TAG = "div"  # the tag the original's special-div and date rules apply to
_DATE_CLASS = "date"  # remove_dates: a div whose class value contains this
_LIST_TAGS = frozenset(["ul", "ol", "dl", "menu"])
_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset", "srcset")
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-src-fg", "data-scroll-image",
             "data-lateloadsrc", "data-img-src", "data-gt-lazy-src", "data-url", "data-hi-res-src", "src2", "src")
_LAZY_SRCSET_SET, _LAZY_SRC_SET = frozenset(_LAZY_SRCSET), frozenset(_LAZY_SRC)


def _declared_size(value):
    """A width/height attribute as the original recorded it (int, "N%"), or None."""
    if value is None:
        return None
    v = value.strip().strip('"\'”<>').lower()
    if v.endswith("px"):
        v = v[:-2].strip()
    if v.endswith("%"):
        return v
    try:
        return int(float(v))
    except (ValueError, OverflowError):
        return "100%" if v in ("auto", "full-width") else None


def image_source(attrs: dict, base: str, extra_candidates=()) -> tuple[str | None, str | None]:
    """``(absolute_url, raw_value)`` of the best source of an ``<img>`` (and ``<source>`` candidates)."""
    if extra_candidates or not _LAZY_SRCSET_SET.isdisjoint(attrs):
        candidates = list(extra_candidates)
        for name in _LAZY_SRCSET:
            value = attrs.get(name)
            if value:
                candidates.extend(parse_srcset(value))
        # a candidate without descriptors in srcset is 1x; a usable plain src counts as the 1x fallback
        for raw, *_ in sorted(candidates, key=_size_key, reverse=True) if candidates else ():
            url = resolve_url(base, raw)
            if url:
                return url, raw
    # most images have one of these names (src alone): the set's intersection, then the names in order
    present = _LAZY_SRC_SET.intersection(attrs)
    for name in _LAZY_SRC if len(present) > 1 else present:
        raw = attrs.get(name)
        if raw:
            url = resolve_url(base, raw)
            if url:
                return url, raw
    return None, None


def _size_key(c):
    _, w, x = c
    return (1, w) if w is not None else (0, x if x is not None else 1.0)


def _image_meta(attrs: dict, page_url: str, url: str, raw: str, minimum: int) -> dict | None:
    """The node's metadata; None when a declared width or height (an int) is below ``minimum`` (then the
    file name, the costly part, is not made)."""
    width, height = _declared_size(attrs.get("width")), _declared_size(attrs.get("height"))
    if (width.__class__ is int and width < minimum) or (height.__class__ is int and height < minimum):
        return None
    meta = {"document_url": page_url, "unformatted_src": raw, "src": url}
    name = format_filename(url)
    if name:
        meta["formatted_filename"] = name
    alt = attrs.get("alt")
    if alt and not alt.isspace():
        meta["alt_text"] = " ".join(alt.split())
    if width is not None:
        meta["rendered_width"] = width
    if height is not None:
        meta["rendered_height"] = height
    return meta


def _count_texts(node) -> int:
    """Number of text nodes under ``node`` (lexbor never keeps an empty text node)."""
    text = node.text(deep=True, separator="\x00")
    return text.count("\x00") + 1 if text else 0


def _nonspace_len(text: str) -> int:
    return len(text) - text.count(" ") - text.count("\n") - text.count("\t") - text.count("\r")


def _chars(node) -> int:
    """Characters of text under ``node``, ASCII whitespace not counted."""
    return _nonspace_len(node.text(deep=True))


def _link_heavy(node, limit: float) -> bool:
    """True when more than ``limit`` of the text under ``node`` is link text (a menu, a link list)."""
    links = node.css(_LINK_TAG)
    if not links:
        return False
    total = _chars(node)
    if total == 0:
        return False
    return _nonspace_len("".join([a.text(deep=True) for a in links])) / total > limit


class _Rules:
    """The profile's removal rules as sets, built once per config."""

    def __init__(self, cfg: ExtractConfig):
        self.remove_tags = frozenset(cfg.remove_tags)
        self.remove_classes = frozenset(cfg.remove_classes)
        self.class_substrings = tuple(cfg.remove_class_substrings)
        self.class_prefixes = tuple(cfg.remove_class_prefixes)
        self.wrapper_markers = tuple(cfg.wrapper_markers)
        self.remove_roles = frozenset(cfg.remove_roles)
        self.special_div = frozenset(cfg.special_div_values)
        self.eod_classes = frozenset(cfg.eod_classes)
        self.hidden = cfg.remove_hidden
        self.article_only = frozenset(cfg.article_only_tags)
        self.kinds = dict(_KIND)
        for tag in cfg.remove_tags:
            self.kinds[tag] = _K_SKIP
        for tag in self.article_only:
            self.kinds.pop(tag, None)
        self.names: dict[str, bool] = {}  # class/id value -> boilerplate?
        self.class_verdicts: dict[str, int] = {}  # class value -> _class_verdict
        self.tag_table = None  # the compiled walk's table of tag ids, made on its first page


_RULES: dict[int, tuple[ExtractConfig, _Rules]] = {}


def _rules(cfg: ExtractConfig) -> _Rules:
    hit = _RULES.get(id(cfg))
    if hit is None or hit[0] is not cfg:
        if len(_RULES) > 64:
            _RULES.clear()
        hit = _RULES[id(cfg)] = (cfg, _Rules(cfg))
    return hit[1]


def _boiler_names(value: str, rules: _Rules) -> bool:
    """True when a class/id value names a boilerplate block (word, substring or prefix rule); cached."""
    hit = rules.names.get(value)
    if hit is not None:
        return hit
    hit = False
    for w in value.lower().split():
        if w in rules.remove_classes:
            hit = True
            break
        if w.startswith(rules.class_prefixes) or any(sub in w for sub in rules.class_substrings):
            if not any(m in w for m in rules.wrapper_markers):
                hit = True
                break
    if len(rules.names) > 200_000:
        rules.names.clear()
    rules.names[value] = hit
    return hit


def _class_verdict(cls: str, rules: _Rules) -> int:
    """1 when a class value names a boilerplate block, 2 when it marks an end-of-document link, else 0; cached."""
    verdict = 1 if _boiler_names(cls, rules) else 0
    if not verdict and rules.eod_classes and not rules.eod_classes.isdisjoint(cls.split()):
        verdict = 2
    if len(rules.class_verdicts) > 200_000:
        rules.class_verdicts.clear()
    rules.class_verdicts[cls] = verdict
    return verdict


def _verdict(tag: str, attrs: dict, rules: _Rules) -> int:
    """0 keep, 1 remove with subtree (boilerplate by name), 2 replace with the end-of-document paragraph,
    3 remove with subtree (hidden). Called only for elements that carry one of ``_RULE_ATTRS``."""
    cls = attrs.get("class")
    if cls:
        verdict = rules.class_verdicts.get(cls)
        if verdict is None:
            verdict = _class_verdict(cls, rules)
        if verdict:
            return verdict
    ident = attrs.get("id")
    if ident and _boiler_names(ident, rules):
        return 1
    if tag == _DIV_TAG and rules.special_div:
        sd = rules.special_div
        if cls in sd or ident in sd or attrs.get("title") in sd:
            return 1
    role = attrs.get("role")
    if role and role in rules.remove_roles:
        return 1
    if rules.hidden:
        if "hidden" in attrs:
            return 3
        if attrs.get("aria-hidden") == "true" and tag != "img":
            return 3
        style = attrs.get("style")
        if style and ("none" in style or "hidden" in style):
            st = style.replace(" ", "").lower()
            if "display:none" in st or "visibility:hidden" in st:
                return 3
    return 0


def simplify_default(html: str | bytes, cfg: ExtractConfig) -> tuple[LexborHTMLParser, str | None]:
    """Parse; run the profile's extra CSS rules (none by default); return the tree and ``<base href>``.

    Everything else is decided during the walk: on these pages a Python walk reading each element's
    attributes costs less than lexbor's ``strip_tags`` or a CSS query over the same tree.
    """
    tree = LexborHTMLParser(html)
    base_href = None
    head = tree.head
    if head is not None:
        for node in head.iter():
            if node.tag == "base":
                base_href = node.attributes.get("href")
                if base_href:
                    break
    # script/style text would count as page text in the boilerplate share: strip them first (C level)
    tree.strip_tags(list(_STRIPPED_TAGS))
    _css_rules(tree, cfg)
    return tree, base_href


def _css_rules(tree: LexborHTMLParser, cfg: ExtractConfig) -> None:
    """The profile's extra CSS removals and replacements (none by default)."""
    for rule in cfg.css_remove:
        for node in reversed(tree.css(rule)):
            if node.tag not in ("html", "body"):
                node.decompose()
    for rule, text in cfg.css_replace.items():
        for node in tree.css(rule):
            node.replace_with(text)


def _pre_text(t: str, buf: list, pending: int) -> int:
    """Append a text node inside ``<pre>`` (its line breaks kept) to ``buf``; returns the pending break."""
    if not t or (t.isspace() and "\n" not in t):
        return 1 if buf and pending < 1 else pending
    for k, piece in enumerate(t.split("\n")):
        if k and pending < 2:
            pending = 2
        core = " ".join(piece.split())
        if not core:
            if buf and pending < 1:
                pending = 1
            continue
        if buf:
            level = pending
            if level < 1 and piece[0].isspace():
                level = 1
            buf.append(_SEP[level] + core if level else core)
        else:
            buf.append(core)
        pending = 1 if piece[-1].isspace() else 0
    return pending


class _Emitter:
    """Accumulates text with pending break levels; images flush the text into its own node."""

    __slots__ = ("buf", "pending", "texts", "images", "metadata")

    def __init__(self):
        self.buf: list[str] = []
        self.pending = 0
        self.texts: list = []
        self.images: list = []
        self.metadata: list = []

    def text(self, t: str) -> None:
        core = " ".join(t.split())
        if not core:
            if self.buf and self.pending < 1:
                self.pending = 1
            return
        if self.buf:
            level = self.pending
            if level < 1 and t[0].isspace():
                level = 1
            self.buf.append(_SEP[level] + core if level else core)
        else:
            self.buf.append(core)
        self.pending = 1 if t[-1].isspace() else 0

    def brk(self, level: int) -> None:
        if level > self.pending:
            self.pending = level

    def flush(self) -> None:
        if self.buf:
            text = "".join(self.buf).strip()
            if text:
                self.texts.append(text)
                self.images.append(None)
                self.metadata.append(None)
            self.buf = []
        self.pending = 0

    def image(self, url: str, meta: dict) -> None:
        self.flush()
        self.texts.append(None)
        self.images.append(url)
        self.metadata.append(meta)


def _emit_eod(em: _Emitter, pending: int) -> int:
    """The end-of-document paragraph, in place of an end-of-article marker; returns the break owed after it."""
    em.pending = pending
    em.brk(3)
    em.text(EOD_TOKEN)
    em.brk(3)
    return em.pending


def _emit_image(em: _Emitter, attrs: dict, page_url: str, base: str, cfg: ExtractConfig, extra=()) -> None:
    """Emit the image an ``<img>`` (or ``<picture>``) with these attributes declares, unless a rule drops it."""
    cls = attrs.get("class")
    if cls and cfg.drop_image_classes:
        low = cls.lower()
        if any(sub in low for sub in cfg.drop_image_classes):
            return
    url, raw = image_source(attrs, base, extra)
    if url is None:
        return
    meta = _image_meta(attrs, page_url, url, raw, cfg.min_declared_size)
    if meta is None:
        return
    if cfg.drop_consecutive_duplicate_images and em.images and em.images[-1] == url and not em.buf:
        return
    em.image(url, meta)


def _picture_candidates(items) -> tuple[dict | None, list]:
    """``(attributes of the first <img>, candidates of the <source>s)`` from a ``<picture>``'s descendants,
    given as ``(tag, attributes)`` pairs of its ``<source>`` and ``<img>`` elements in document order."""
    img = None
    extra = []
    for tag, attrs in items:
        if tag == _PICTURE_PARTS[0]:
            for name in ("srcset", "data-srcset"):
                if attrs.get(name):
                    extra.extend(parse_srcset(attrs[name]))
            if attrs.get("src"):
                extra.append((attrs["src"], None, None))
        elif tag == _PICTURE_PARTS[1] and img is None:
            img = attrs
    return img, extra


def _emit_picture(em: _Emitter, picture, page_url: str, base: str, cfg: ExtractConfig) -> None:
    items = [(c.tag, c.attributes) for c in picture.traverse() if c.tag in _PICTURE_PARTS]
    img, extra = _picture_candidates(items)
    if img is not None or extra:
        _emit_image(em, img if img is not None else picture.attributes, page_url, base, cfg, extra)


# what the walk does with an element, by tag (anything else: a transparent container)
_K_SKIP, _K_IMG, _K_PICTURE, _K_BR, _K_LIST, _K_ITEM, _K_TABLE, _K_NOSCRIPT, _K_PRE, _K_ARTICLE, _K_MAIN = range(1, 12)
_KIND = {"img": _K_IMG, "picture": _K_PICTURE, "br": _K_BR, "ul": _K_LIST, "ol": _K_LIST, "dl": _K_LIST,
         "menu": _K_LIST, "li": _K_ITEM, "dt": _K_ITEM, "dd": _K_ITEM, "table": _K_TABLE, "noscript": _K_NOSCRIPT,
         "pre": _K_PRE, "article": _K_ARTICLE, "main": _K_MAIN}
# inline formatting and table/list internals: their attributes are not checked against the rules
_NO_ATTR_CHECK = frozenset(["b", "i", "em", "strong", "u", "s", "small", "sup", "sub", "abbr", "code", "cite",
                            "q", "mark", "time", "wbr", "font", "tr", "td", "th", "tbody", "thead", "tfoot",
                            "li", "dt", "dd", "strike", "tt", "kbd", "var", "samp", "bdi", "bdo", "big", "nobr"])
_EMPTY: dict = {}
# the attributes :func:`_verdict` reads: an element with none of them is kept without calling it
_RULE_ATTRS = frozenset(["class", "id", "role", "style", "hidden", "aria-hidden", "title"])


def extract_nodes(html: str | bytes, page_url: str, cfg: ExtractConfig | None = None, compiled: bool | None = None,
                  on_tree=None):
    """``(texts, images, metadata)`` of a page (text, or UTF-8 bytes as lexbor reads them) with the ``default`` rules.

    The walk is the compiled one of :mod:`obelics.html._walk` where it is built and loads (``compiled=None``),
    else this module's Python walk; ``compiled=True/False`` asks for one (True raises where it is missing).
    Both give the same output. ``on_tree(tree)`` is called with lexbor's parse of ``html`` when the walk leaves
    it as parsed (the compiled walk without CSS rules: it only reads the tree), so a caller can read more of
    the page from it after the walk instead of parsing the page again.
    """
    cfg = cfg or ExtractConfig()
    if compiled is None:
        compiled = _compiled is not None
    elif compiled and _compiled is None:
        raise RuntimeError(f"the compiled walk is not available: {COMPILED_MISSING}")
    if compiled and not (cfg.css_remove or cfg.css_replace):
        # the compiled walk skips script/style/template and leaves them out of its counts: no strip_tags
        tree = LexborHTMLParser(html)
        if on_tree is not None:
            on_tree(tree)
        base_href = _compiled.base_href(tree.head)
    else:
        tree, base_href = simplify_default(html, cfg)
    base = page_url
    if base_href:
        resolved = resolve_url(page_url, base_href) if page_url else base_href
        base = resolved or page_url
    body = tree.body
    if body is None:
        return [], [], []
    rules = _rules(cfg)
    plan = _plan(body, rules, cfg, compiled)
    if compiled:
        out = _compiled.walk(body, page_url, base, cfg, rules, plan)
    else:
        try:
            out = _walk_python(body, page_url, base, cfg, rules, bulk_text=True, plan=plan)
        except _TextCountMismatch:
            out = _walk_python(body, page_url, base, cfg, rules, bulk_text=False, plan=plan)
    if cfg.main_content and cfg.repeated_line_chars:
        texts = out[0]
        for k, t in enumerate(texts):
            if t is not None and "\n" in t:
                texts[k] = content.without_repeated_lines(t, cfg.repeated_line_chars)
    return out


def _plan(body, rules: _Rules, cfg: ExtractConfig, compiled: bool):
    """The main-content decision of the page (:mod:`obelics.html.content`), or None (off, or no text block)."""
    if not cfg.main_content:
        return None
    if compiled:
        # statistics and decision in C (content.decide's twin, tested equal on every benchmark page)
        sets = _compiled.decide(body, rules, content.TAG_CLASSES, content.TRANSPARENT_TAGS, cfg.min_block_chars, cfg,
                                content.name_words(cfg))
        return None if sets is None else content.Plan(*sets)
    return content.decide(_page_stats_python(body, rules, cfg.min_block_chars), cfg)


def _page_stats_python(body, rules: _Rules, min_block_chars: int) -> content.PageStats:
    """What ``_walk.page_stats`` counts, on selectolax nodes (the Python walk's side of the decision)."""
    import numpy as np

    kinds = rules.kinds
    classes = content.TAG_CLASSES
    transparent = content.TRANSPARENT_TAGS
    parent, end, text, link, own, commas, images = [-1], [0], [0], [0], [0], [0], [0]
    kinds_of = [classes.get("body", 0)]
    tags, ids, nodes, owner = ["body"], [body.mem_id], [body], [0]
    stack = []
    cur = 0
    in_link = 0
    node = body.first_child
    while True:
        if node is None:
            if not stack:
                break
            top, i, in_link = stack.pop()
            end[i] = len(tags)
            cur = parent[i]
            node = top.next
            continue
        tag = node.tag
        if tag == "-text":
            t = node.text_content or ""
            c = _nonspace_len(t)
            if c:
                text[cur] += c
                if in_link:
                    link[cur] += c
                o = owner[cur]
                own[o] += c
                commas[o] += t.count(",") + t.count("，")
            node = node.next
            continue
        kind = kinds.get(tag, 0)
        if tag is None or tag[0] == "-" or kind == _K_NOSCRIPT or tag in _STRIPPED_TAGS or (
                kind == _K_SKIP and tag not in transparent):
            node = node.next
            continue
        i = len(tags)
        parent.append(cur)
        end.append(i + 1)
        text.append(0)
        link.append(0)
        own.append(0)
        commas.append(0)
        is_image = kind == _K_IMG or kind == _K_PICTURE
        images.append(1 if is_image else 0)
        tags.append(tag)
        ids.append(node.mem_id)
        nodes.append(node)
        tag_class = classes.get(tag, 0)
        kinds_of.append(tag_class)
        owner.append(i if tag_class else owner[cur])
        child = node.first_child
        if is_image or child is None:
            node = node.next
            continue
        stack.append((node, i, in_link))
        cur = i
        if tag == _LINK_TAG:
            in_link = 1
        node = child
    end[0] = len(tags)

    def names(i: int) -> str:
        attrs = nodes[i].attributes
        return (attrs.get("class") or "") + " " + (attrs.get("id") or "")

    cols = [np.array(x, dtype=np.int32) for x in (parent, end, text, link, own, commas, images, kinds_of)]
    return content.stats_of(*cols, tags, np.array(ids, dtype=np.uint64), names, min_block_chars)


class _TextCountMismatch(RuntimeError):
    pass


def _walk_python(body, page_url: str, base: str, cfg: ExtractConfig, rules: _Rules, bulk_text: bool,
                 plan: content.Plan | None = None):
    """The walk in Python: the reference the compiled walk (:mod:`obelics.html._walk`) is checked against.
    With a ``plan`` (the main-content decision) only its roots are emitted, less its drops; the roots and
    their ancestors are walked whatever the other rules say of them."""
    kinds = rules.kinds
    block_level = _BLOCK_LEVEL
    no_check = _NO_ATTR_CHECK
    keep_lists, keep_tables, noscript_images = cfg.keep_lists, cfg.keep_tables, cfg.noscript_images
    density = cfg.max_list_link_density
    share = cfg.max_boilerplate_text_share
    remove_dates = cfg.remove_dates
    article_only = rules.article_only
    sep = _SEP
    rule_attrs = _RULE_ATTRS
    # text being accumulated for the current text node, and the break owed before the next word
    # (0 none, 1 space, 2 line, 3 paragraph)
    em = _Emitter()
    buf = em.buf
    pending = 0
    # flags restored when an element closes
    no_text = False
    in_pre = False
    in_article = 0
    in_content = 0  # inside <article> or <main>
    in_list = 0  # inside a list that passed the link-density check
    in_main = 0 if plan is not None else 1  # inside a content root of the plan (everything without a plan)
    roots, ancestors, drops = (plan.roots, plan.ancestors, plan.drops) if plan is not None else ((), (), ())
    keep_hidden = plan is None or cfg.content_keep_hidden
    page_chars = -1  # characters of text in <body>, computed when first needed
    # the text of every text node under <body>, in document order, from one C call: the walk takes
    # the next item at each text node, and skips the count of a subtree it does not enter
    # (bulk_text=False reads each text node instead: the fallback should the two ever disagree)
    if bulk_text:
        all_text = body.text(deep=True, separator="\x00")
        texts = all_text.split("\x00") if all_text else []
    else:
        texts = None
    n_texts = len(texts) if texts is not None else 0
    idx = 0
    stack = []
    node = body.first_child
    while True:
        if node is None:
            if not stack:
                break
            parent, level, saved = stack.pop()
            if level > pending:
                pending = level
            if saved is not None:
                no_text, in_pre, in_article, in_content, in_list, in_main = saved
            node = parent.next
            continue
        tag = node.tag
        if tag == "-text":
            if texts is not None:
                t = texts[idx] if idx < n_texts else ""
            else:
                t = node.text_content or ""
            idx += 1
            if no_text or not in_main:
                pass
            elif in_pre:  # rare: line breaks inside <pre> are kept
                pending = _pre_text(t, buf, pending)
            elif not t or t.isspace():
                if buf and pending < 1:
                    pending = 1
            else:  # _pre_text's steps for one piece, inlined: this runs for every text node of the page
                core = " ".join(t.split())
                if buf:
                    level = pending
                    if level < 1 and t[0].isspace():
                        level = 1
                    buf.append(sep[level] + core if level else core)
                else:
                    buf.append(core)
                pending = 1 if t[-1].isspace() else 0
            node = node.next
            continue
        kind = kinds.get(tag, 0)
        skip = kind == _K_SKIP or tag is None or tag[0] == "-"  # removed tags, comments, instructions
        forced = entering = False
        if plan is not None and (not skip or kind == _K_SKIP):
            mid = node.mem_id
            if not in_main:
                if mid in roots:
                    forced = entering = True
                    skip = False
                elif mid in ancestors:
                    forced = True
                    skip = False
                else:
                    skip = True  # outside the content
            elif drops and mid in drops:
                skip = True  # boilerplate inside the content
        if not skip and not forced:
            attrs = None if tag in no_check else node.attributes
            if attrs and not rule_attrs.isdisjoint(attrs):
                verdict = _verdict(tag, attrs, rules)
                if verdict:
                    if verdict == 3:
                        # hidden inside an article is paginated or collapsed text that scripts reveal: kept
                        if keep_hidden:
                            verdict = 0 if in_content else 1
                        else:  # with the decision, the content is what shows: hidden blocks go whatever they hold
                            verdict = 4
                    if verdict == 1:
                        # never drop the article, a wrapper around it, or a block with most of the page's text
                        if tag in _CONTENT_TAGS or node.css_first(_CONTENT_SELECTOR) is not None:
                            verdict = 0
                        else:
                            if page_chars < 0:
                                page_chars = _chars(body)
                            if page_chars and _chars(node) >= share * page_chars:
                                verdict = 0
                    if verdict == 2:
                        pending = _emit_eod(em, pending)
                    skip = verdict != 0
        if not skip:
            if kind:
                if kind == _K_IMG or kind == _K_PICTURE:
                    em.pending = pending
                    if kind == _K_IMG:
                        _emit_image(em, node.attributes, page_url, base, cfg)
                    else:
                        _emit_picture(em, node, page_url, base, cfg)
                    buf = em.buf
                    pending = em.pending
                    skip = True
                elif kind == _K_BR:
                    if pending < 2:
                        pending = 2
                    skip = True
                elif kind == _K_LIST:
                    skip = not keep_lists or (not in_list and _link_heavy(node, density))
                elif kind == _K_ITEM:
                    skip = not keep_lists
                elif kind == _K_TABLE:
                    skip = not keep_tables or _link_heavy(node, density)
                    if not skip and node.css_first(_LOGIN_SELECTOR) is not None:
                        # a login box laid out as a table: its labels are not page content
                        if page_chars < 0:
                            page_chars = _chars(body)
                        skip = _chars(node) < share * page_chars
                elif kind == _K_NOSCRIPT:
                    skip = not noscript_images
            elif tag in article_only:
                skip = not in_article
            if remove_dates and tag == _DIV_TAG and not skip:
                cls = (node.attributes or _EMPTY).get("class")
                skip = bool(cls and _DATE_CLASS in cls)
            if forced and kind != _K_IMG and kind != _K_PICTURE and kind != _K_BR:
                skip = False  # a content root or its ancestor: the decision has judged it
        if skip:
            if texts is not None and node.first_child is not None:
                idx += _count_texts(node)
            node = node.next
            continue
        level = block_level.get(tag, 0)
        if level > pending:
            pending = level
        child = node.first_child
        if child is None:
            node = node.next
            continue
        if kind or entering:
            stack.append((node, level, (no_text, in_pre, in_article, in_content, in_list, in_main)))
            if entering:
                in_main = 1
            if kind == _K_NOSCRIPT:
                no_text = True
            elif kind == _K_PRE:
                in_pre = True
            elif kind == _K_ARTICLE:
                in_article += 1
                in_content += 1
            elif kind == _K_MAIN:
                in_content += 1
            elif kind == _K_LIST:
                in_list += 1
        else:
            stack.append((node, level, None))
        node = child
    if texts is not None and idx != len(texts):  # the C text walk and this one disagree: never seen so far
        raise _TextCountMismatch(f"walked {idx} text nodes, lexbor has {len(texts)}")
    em.pending = pending
    em.flush()
    return em.texts, em.images, em.metadata


def _load_compiled():
    """The compiled walk, configured with this module's rules; ``(None, why)`` where it cannot run."""
    if os.environ.get("OBELICS_PURE_PYTHON"):
        return None, "OBELICS_PURE_PYTHON is set"
    try:
        from obelics.html import _walk
    except ImportError as exc:  # not built (no C compiler at install time)
        return None, f"obelics.html._walk is not built ({exc}); reinstall with a C compiler present"
    if not _walk.AVAILABLE:
        return None, "selectolax's extension does not export lexbor's accessor functions on this platform"
    if not hasattr(_walk, "decide"):  # built before the main-content decision was compiled
        return None, "obelics.html._walk is a stale build; rebuild it (python setup.py build_ext --inplace)"
    try:
        _walk.configure(sys.modules[__name__])
    except ImportError as exc:  # a stale build, or a lexbor that numbers tags otherwise
        return None, str(exc)
    return _walk, None


_compiled, COMPILED_MISSING = _load_compiled()
