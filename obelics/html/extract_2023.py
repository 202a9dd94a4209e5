"""Linearising a simplified tree into text and image nodes, the original way (reference §3.5-3.6).

Pre-order walk with each node's path of ``(tag, index)``; media tags are leaves carrying their
media info; text nodes are formatted (``#BR_TAG#`` -> newline) and consecutive ones merged with the
strongest separator among their whitespace and the ``TAG_TO_SEP`` tags where their paths diverge.
"""

from __future__ import annotations

import re

from obelics.html.media_2023 import simplify_media_node
from obelics.html.tags_2023 import BR_MARKER, MEDIA_OR_SOURCE_TAGS, TAG_TO_SEP

_MULTI_SPACE = re.compile(r"[ ]{2,}")


class _Node:
    __slots__ = ("path", "media", "text")

    def __init__(self, path, media, text):
        self.path = path
        self.media = media
        self.text = text

    @property
    def tag(self):
        return self.path[-1][0]


def linearise(root, page_url: str) -> list[_Node]:
    """Pre-order list of every node under ``root`` (leaves: media tags and text nodes)."""
    out = []
    counter = 0
    stack = [(root, ())]
    while stack:
        node, parent_path = stack.pop()
        tag = node.tag
        path = parent_path + ((tag, counter),)
        counter += 1
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


def _separator(n1: _Node, n2: _Node, t1: str, t2: str):
    seps = set()
    for sep in ("\n\n", "\n", " "):
        if t1.endswith(sep):
            seps.add(sep)
            t1 = t1[: -len(sep)]
        if t2.startswith(sep):
            seps.add(sep)
            t2 = t2[len(sep):]
    p1, p2 = n1.path, n2.path
    start = 0
    for i in range(min(len(p1), len(p2))):
        if p1[i] != p2[i]:
            start = i
            break
    for tag, _ in p1[start:] + p2[start:]:
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
    return t1 + sep + t2


def select_nodes(nodes: list[_Node]) -> list[_Node]:
    """Keep text nodes, figures and images with media info; format and merge texts."""
    nodes = [n for n in nodes if n.tag == "-text" or n.tag == "figure" or (n.tag == "img" and n.media)]
    for n in nodes:
        n.text = _format_text(n.text)
    nodes = [n for n in nodes if n.tag != "-text" or n.text]
    i = 0
    while i < len(nodes):
        cur = nodes[i]
        if cur.tag != "-text":
            i += 1
        elif i == len(nodes) - 1 or nodes[i + 1].tag != "-text":
            cur.path = (("-text", 0),)
            cur.text = cur.text.strip()
            i += 1
        else:
            nxt = nodes[i + 1]
            cur.text = _separator(cur, nxt, cur.text, nxt.text)
            cur.path = nxt.path
            del nodes[i + 1]
    return [n for n in nodes if n.tag != "-text" or n.text.strip()]


def tree_to_nodes(tree, page_url: str):
    """``(texts, images, metadata)`` of a simplified tree, as ``html_to_web_documents`` emits them
    (``None`` rather than ``""`` at text positions of ``images``)."""
    texts, images, metadata = [], [], []
    for node in select_nodes(linearise(tree.root, page_url)):
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
