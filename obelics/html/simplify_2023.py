"""DOM simplification of the original build (reference §3.4), reproduced on selectolax's lexbor.

Steps run in the original order (a-n). Two lexbor API differences are handled (reference §12):
``<?php ?>`` blocks are nodes whose tag is ``None`` and colon tag names (``fb:like``) are not found
by lexbor's ``strip_tags``, so non-kept tags are removed by walking the tree and comparing ``.tag``.
Removals collect the nodes first, then remove them innermost first (reverse document order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser

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
# The original wrote `<!--(?s).*?-->`, an error on Python >= 3.11; a leading inline flag means the same.
_COMMENT = re.compile(r"(?s)<!--.*?-->")
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
        html = _COMMENT.sub("", html)
    if cfg.replace_line_break_tags:
        html = _BR.sub(BR_MARKER, html)
    return html


def _remove_all(nodes) -> None:
    """Remove collected nodes (each with its subtree), innermost first."""
    for node in reversed(nodes):
        node.decompose()


def _outermost(nodes) -> list:
    """Drop nodes inside another node of ``nodes`` (document order kept)."""
    chosen = set()
    out = []
    for node in nodes:
        parent = node.parent
        inside = False
        while parent is not None:
            if parent.mem_id in chosen:
                inside = True
                break
            parent = parent.parent
        if not inside:
            chosen.add(node.mem_id)
            out.append(node)
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


def remove_empty_leaves(tree: LexborHTMLParser) -> None:
    """Step l: repeatedly remove empty non-media leaves and media nodes without a source."""
    while True:
        doomed = [node for node in tree.root.traverse() if _is_empty_leaf(node)]
        if not doomed:
            return
        _remove_all(doomed)


def unnest_nodes(tree: LexborHTMLParser) -> None:
    """Step m: replace a node by its only element child when both have the same tag."""
    changed = True
    while changed:
        changed = False
        for node in tree.root.traverse():
            only = None
            count = 0
            for child in node.iter():
                count += 1
                if count > 1:
                    break
                only = child
            if count == 1 and node.tag == only.tag and not node.text(deep=False).strip():
                node.replace_with(only)
                changed = True
                break


def simplify_2023(html: str, cfg: Simplify2023Config | None = None) -> LexborHTMLParser:
    """Run steps a-n on an HTML string and return the simplified lexbor tree."""
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
        remove_empty_leaves(tree)
    if cfg.unnest_nodes:
        unnest_nodes(tree)
    if cfg.remake_tree:
        tree = parse(tree.html)
    return tree
