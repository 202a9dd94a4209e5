"""Linearising a simplified tree into text and image nodes, the original way (docs/reference.md §3.5-3.6).

Pre-order walk with each node's path of ``(tag, index)``; media tags are leaves carrying their
media info; text nodes are formatted (``#BR_TAG#`` -> newline) and consecutive ones merged with the
strongest separator among their whitespace and the ``TAG_TO_SEP`` tags where their paths diverge.
"""

from __future__ import annotations

import re

from obelics.budget import NO_BUDGET, PageBudget
from obelics.html.media_2023 import simplify_media_node
from obelics.html.tags_2023 import BR_MARKER, MEDIA_OR_SOURCE_TAGS, TAG_TO_SEP

_MULTI_SPACE = re.compile(r"[ ]{2,}")


class _Path:
    """One step of a node's path from the root: its tag, the parent's step and its depth.

    The original kept the whole ``[tag, index]`` list per node (memory quadratic in the depth); linked
    steps share their prefixes, and two paths diverge where their steps stop being the same object.
    """

    __slots__ = ("tag", "parent", "depth")

    def __init__(self, tag, parent):
        self.tag = tag
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1


class _Node:
    __slots__ = ("path", "media", "text")

    def __init__(self, path, media, text):
        self.path = path
        self.media = media
        self.text = text

    @property
    def tag(self):
        return self.path.tag


def linearise(root, page_url: str, budget: PageBudget = NO_BUDGET) -> list[_Node]:
    """Pre-order list of every node under ``root`` (leaves: media tags and text nodes)."""
    out = []
    stack = [(root, None)]
    while stack:
        node, parent_path = stack.pop()
        budget.tick()
        tag = node.tag
        path = _Path(tag, parent_path)
        if tag in MEDIA_OR_SOURCE_TAGS:
            out.append(_Node(path, simplify_media_node(node, page_url), ""))
        elif tag == "-text":
            out.append(_Node(path, None, node.text_content or ""))
        else:
            out.append(_Node(path, None, ""))
            children = list(node.iter(include_text=True))
            for child in reversed(children):
                stack.append((child, path))
    return out


def _format_text(text: str) -> str:
    if text == "":
        return text
    text = text.replace("\n", " ").replace("\t", " ")
    text = _MULTI_SPACE.sub(" ", text)
    lead = text[0] == " "
    trail = text[-1] == " " and len(text) > 1
    text = "\n".join(piece.strip() for piece in text.split(BR_MARKER))
    return (" " if lead else "") + text + (" " if trail else "")


def _diverging_tags(p1: _Path, p2: _Path) -> set:
    """The tags of both paths below the point where they diverge (every tag when one path is a prefix
    of the other, as the original's index search then started at 0)."""
    a, b = p1, p2
    tags_a, tags_b = [], []
    while a.depth > b.depth:
        tags_a.append(a.tag)
        a = a.parent
    while b.depth > a.depth:
        tags_b.append(b.tag)
        b = b.parent
    if a is b:  # one path is a prefix of the other
        return _all_tags(p1) | _all_tags(p2)
    while a is not None and a is not b:
        tags_a.append(a.tag)
        tags_b.append(b.tag)
        a, b = a.parent, b.parent
    return set(tags_a) | set(tags_b)


def _all_tags(p: _Path) -> set:
    tags = set()
    while p is not None:
        tags.add(p.tag)
        p = p.parent
    return tags


class _Text:
    """A growing text whose end gets trimmed, kept as pieces with the used length of each (joins and
    trims are linear overall, where the original rebuilt the whole string at every merge)."""

    __slots__ = ("pieces", "ends")

    def __init__(self, text: str):
        self.pieces = [text] if text else []
        self.ends = [len(text)] if text else []

    def endswith(self, sep: str) -> bool:
        n = len(sep)
        out = ""
        k = len(self.pieces) - 1
        while k >= 0 and len(out) < n:
            end = self.ends[k]
            out = self.pieces[k][max(0, end - (n - len(out))):end] + out
            k -= 1
        return out == sep

    def drop(self, n: int) -> None:
        while n > 0 and self.pieces:
            if n < self.ends[-1]:
                self.ends[-1] -= n
                return
            n -= self.ends.pop()
            self.pieces.pop()

    def append(self, text: str) -> None:
        if text:
            self.pieces.append(text)
            self.ends.append(len(text))

    def value(self) -> str:
        return "".join(p if e == len(p) else p[:e] for p, e in zip(self.pieces, self.ends))


def _merge(acc: _Text, p1: _Path, p2: _Path, t2: str) -> None:
    """Append ``t2`` to ``acc`` with the strongest separator among their facing whitespace and the
    ``TAG_TO_SEP`` tags where the paths diverge (the original's ``_merge_text_nodes`` rule)."""
    seps = set()
    for sep in ("\n\n", "\n", " "):
        if acc.endswith(sep):
            seps.add(sep)
            acc.drop(len(sep))
        if t2.startswith(sep):
            seps.add(sep)
            t2 = t2[len(sep):]
    for tag in _diverging_tags(p1, p2):
        sep = TAG_TO_SEP.get(tag)
        if sep is not None:
            seps.add(sep)
    if "\n\n" in seps:
        sep = "\n\n"
    elif "\n" in seps:
        sep = "\n"
    elif " " in seps:
        sep = " "
    else:
        sep = ""
    acc.append(sep)
    acc.append(t2)


def select_nodes(nodes: list[_Node], budget: PageBudget = NO_BUDGET) -> list[_Node]:
    """Keep text nodes, figures and images with media info; format and merge texts.

    Each run of consecutive text nodes becomes one text node (merged left to right, then stripped).
    """
    nodes = [n for n in nodes if n.tag == "-text" or n.tag == "figure" or (n.tag == "img" and n.media)]
    for n in nodes:
        n.text = _format_text(n.text)
    nodes = [n for n in nodes if n.tag != "-text" or n.text]
    out = []
    i = 0
    while i < len(nodes):
        cur = nodes[i]
        i += 1
        if cur.tag != "-text":
            out.append(cur)
            continue
        if i < len(nodes) and nodes[i].tag == "-text":
            acc = _Text(cur.text)
            path = cur.path
            while i < len(nodes) and nodes[i].tag == "-text":
                budget.tick()
                nxt = nodes[i]
                _merge(acc, path, nxt.path, nxt.text)
                path = nxt.path
                i += 1
            cur.text = acc.value()
        cur.path = _Path("-text", None)
        cur.text = cur.text.strip()
        out.append(cur)
    return [n for n in out if n.tag != "-text" or n.text.strip()]


def tree_to_nodes(tree, page_url: str, budget: PageBudget = NO_BUDGET):
    """``(texts, images, metadata)`` of a simplified tree, as ``html_to_web_documents`` emits them
    (``None`` rather than ``""`` at text positions of ``images``)."""
    texts, images, metadata = [], [], []
    for node in select_nodes(linearise(tree.root, page_url, budget), budget):
        tag = node.tag
        if tag == "-text":
            texts.append(node.text)
            images.append(None)
            metadata.append(None)
        elif tag == "img":
            texts.append(None)
            images.append(node.media["src"])
            metadata.append(node.media)
    return texts, images, metadata
