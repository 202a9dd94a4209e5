"""DOM simplification of the original build (docs/reference.md §3.4), reproduced on selectolax's lexbor.

Steps run in the original order (a-n). Two lexbor API differences are handled (docs/reference.md §12):
``<?php ?>`` blocks are nodes whose tag is ``None`` and colon tag names (``fb:like``) are not found
by lexbor's ``strip_tags``, so non-kept tags are removed by walking the tree and comparing ``.tag``.
Removals collect the nodes first, then remove them innermost first (reverse document order).

Every step is linear in the page (the original's loops restarted from the root after each change,
quadratic in the nesting depth); each one reaches the original's fixed point, so the output is the
same. The walks call ``budget.tick()`` so that a page over its time budget stops (``obelics.budget``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser

from obelics.budget import NO_BUDGET, PageBudget
from obelics.html.media_2023 import get_media_src
from obelics.html.tags_2023 import (
    BR_MARKER,
    EOD_REPLACEMENT,
    INTERESTING_TAGS,
    MEDIA_OR_SOURCE_TAGS,
    SPECIAL_DIV_VALUES,
    UNWRAP_TAGS,
)

_MULTI_NL = re.compile(r"[\n]{2,}")
_MULTI_SPACE = re.compile(r"[ ]{2,}")
_BR = re.compile("<br>|<br/>|<br />|</br>")
_DIGITS = re.compile(r"\d+")


@dataclass
class Simplify2023Config:
    """The flags of the original ``DOMTreeSimplificator`` (all on in the build)."""

    strip_multiple_linebreaks: bool = True
    strip_multiple_spaces: bool = True
    remove_html_comments: bool = True
    replace_line_break_tags: bool = True
    unwrap_tags: bool = True
    strip_tags: bool = True
    strip_special_divs: bool = True
    remove_dates: bool = True
    remove_empty_leaves: bool = True
    unnest_nodes: bool = True
    remake_tree: bool = True
    css_rules: list[str] = field(default_factory=lambda: ["[class~='footer']", "[class~='site-info']"])
    css_rules_replace_with_text: dict[str, str] = field(
        default_factory=lambda: {"[class~='more-link']": EOD_REPLACEMENT})


def parse(html: str) -> LexborHTMLParser:
    """Parse with scripting off, as Modest did (``<noscript>`` content is markup)."""
    return LexborHTMLParser(html, scripting=False)


def preprocess_string(html: str, cfg: Simplify2023Config) -> str:
    """Steps a-d: the regex passes over the raw HTML string."""
    if cfg.strip_multiple_linebreaks:
        html = _MULTI_NL.sub("\n", html)
    if cfg.strip_multiple_spaces:
        html = _MULTI_SPACE.sub(" ", html)
    if cfg.remove_html_comments:
        html = strip_comments(html)
    if cfg.replace_line_break_tags:
        html = _BR.sub(BR_MARKER, html)
    return html


def strip_comments(html: str) -> str:
    """``re.sub(r"(?s)<!--.*?-->", "", html)`` (the original's rule) in linear time.

    The regex rescans to the end of the page from every ``<!--`` that has no ``-->`` after it
    (quadratic on a page of unclosed comments); once one has none, no later one has either.
    """
    out = []
    pos = 0
    while True:
        i = html.find("<!--", pos)
        if i < 0:
            break
        j = html.find("-->", i + 4)
        if j < 0:
            break
        out.append(html[pos:i])
        pos = j + 3
    if not out:
        return html
    out.append(html[pos:])
    return "".join(out)


def _remove_all(nodes) -> None:
    """Remove collected nodes (each with its subtree), innermost first."""
    for node in reversed(nodes):
        node.decompose()


def _outermost(nodes) -> list:
    """Drop nodes inside another node of ``nodes`` (document order kept).

    Each ancestor's answer is remembered (``inside``: mem_id -> is it or an ancestor chosen), so every
    node is walked once: a later node in document order is never an ancestor of an earlier one's path.
    """
    inside: dict[int, bool] = {}
    out = []
    for node in nodes:
        path = []
        parent = node.parent
        found = False
        while parent is not None:
            known = inside.get(parent.mem_id)
            if known is not None:
                found = known
                break
            path.append(parent.mem_id)
            parent = parent.parent
        for mem_id in path:
            inside[mem_id] = found
        if not found:
            out.append(node)
        inside[node.mem_id] = True
    return out


def remove_css_rules(tree: LexborHTMLParser, rules: list[str]) -> None:
    """Step f: remove every element matching one of ``rules`` (never ``<html>``)."""
    for rule in rules:
        _remove_all([n for n in tree.css(rule) if n.tag != "html"])


def replace_css_rules_with_text(tree: LexborHTMLParser, rules: dict[str, str]) -> None:
    """Step g: replace each matching element with a text node."""
    for rule, text in rules.items():
        for node in _outermost(tree.css(rule)):
            node.replace_with(text)


def unwrap(tree: LexborHTMLParser) -> None:
    """Step h: unwrap style-only tags, then strip those left (empty ones)."""
    tree.unwrap_tags(UNWRAP_TAGS)
    tree.strip_tags(UNWRAP_TAGS)
    # lexbor's strip_tags does not match colon names; none are in UNWRAP_TAGS.


def strip_uninteresting(tree: LexborHTMLParser) -> None:
    """Step i: remove, with subtree, every element whose digit-less tag is not kept.

    Walks the tree and compares ``.tag`` so that colon names and tag-less nodes (``<?php ?>``,
    tag ``None``) are removed too; comments also go (they held no text for the later steps).
    """
    doomed = []
    for node in tree.root.traverse():
        tag = node.tag
        if tag is None or (tag not in INTERESTING_TAGS and _DIGITS.sub("", tag) not in INTERESTING_TAGS):
            doomed.append(node)
    _remove_all(doomed)


def strip_special_divs(tree: LexborHTMLParser) -> None:
    """Step j: remove divs whose id, class or title is exactly one of the special values."""
    doomed = []
    for node in tree.root.traverse():
        if node.tag == "div":
            attrs = node.attributes
            for key in ("id", "class", "title"):
                if key in attrs and attrs[key] in SPECIAL_DIV_VALUES:
                    doomed.append(node)
                    break
    _remove_all(doomed)


def remove_dates(tree: LexborHTMLParser) -> None:
    """Step k: delete the direct text children of divs whose class contains ``date``."""
    doomed = []
    for node in tree.root.traverse():
        if node.tag == "div":
            cls = node.attributes.get("class")
            if cls and "date" in cls:
                doomed.extend(c for c in node.iter(include_text=True) if c.tag == "-text")
    for node in doomed:
        node.decompose()


def _is_empty_leaf(node) -> bool:
    tag = node.tag
    if tag in MEDIA_OR_SOURCE_TAGS:
        return not get_media_src(node)
    if tag == "html":
        return False
    if node.first_child is not None:
        for _ in node.iter():
            return False
    return not node.text().strip()


def remove_empty_leaves(tree: LexborHTMLParser, budget: PageBudget = NO_BUDGET) -> None:
    """Step l: remove empty non-media leaves and media nodes without a source, until none is left.

    The original removed them round after round from the root. One pass children-first (reverse
    pre-order) reaches the same fixed point: whether a node goes depends only on its own subtree, and
    removing nodes below it can only make it go (a video loses its ``<source>`` children, which always
    go; a parent loses the text of a removed media child).
    """
    for node in reversed(list(tree.root.traverse())):
        budget.tick()
        if _is_empty_leaf(node):
            node.decompose()


def _single_same_tag_child(node):
    only = None
    count = 0
    for child in node.iter():
        count += 1
        if count > 1:
            return None
        only = child
    if count == 1 and node.tag == only.tag and not node.text(deep=False).strip():
        return only
    return None


def unnest_nodes(tree: LexborHTMLParser, budget: PageBudget = NO_BUDGET) -> None:
    """Step m: replace a node by its only element child when both have the same tag.

    The original replaced the first such node in pre-order by a copy of its child and restarted from the
    root. A replacement never changes whether a node before it in pre-order matches, so one pre-order
    walk that collapses each node while it matches ends at the same tree; the child is moved, not copied.
    """
    stack = [tree.root]
    while stack:
        node = stack.pop()
        budget.tick()
        only = _single_same_tag_child(node)
        while only is not None:
            node.replace_with(only, move=True)
            node = only
            budget.tick()
            only = _single_same_tag_child(node)
        stack.extend(reversed(list(node.iter())))


def simplify_2023(html: str, cfg: Simplify2023Config | None = None,
                  budget: PageBudget = NO_BUDGET) -> LexborHTMLParser:
    """Run steps a-n on an HTML string and return the simplified lexbor tree.

    ``budget`` bounds the page's work: it raises :class:`obelics.budget.PageBudgetExceeded` when over.
    """
    cfg = cfg or Simplify2023Config()
    tree = parse(preprocess_string(html, cfg))
    if cfg.css_rules:
        remove_css_rules(tree, cfg.css_rules)
    if cfg.css_rules_replace_with_text:
        replace_css_rules_with_text(tree, cfg.css_rules_replace_with_text)
    if cfg.unwrap_tags:
        unwrap(tree)
    if cfg.strip_tags:
        strip_uninteresting(tree)
    if cfg.strip_special_divs:
        strip_special_divs(tree)
    if cfg.remove_dates:
        remove_dates(tree)
    if cfg.remove_empty_leaves:
        remove_empty_leaves(tree, budget)
    if cfg.unnest_nodes:
        unnest_nodes(tree, budget)
    if cfg.remake_tree:
        tree = parse(tree.html)
    return tree
