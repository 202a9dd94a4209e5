"""obelics-2023's linear simplification and linearisation give the original quadratic algorithms' output.

The oracles below are the original loops (restart from the root after every change, whole paths per
node, string rebuilt at every merge), run on random trees built to hit every rule: same-tag chains,
whitespace around them, media with and without sources, videos with <source>, empty leaves in chains.
"""

from __future__ import annotations

import random

import pytest

from obelics.html import extract_2023 as ex
from obelics.html import simplify_2023 as s23
from obelics.html.media_2023 import get_media_src, simplify_media_node
from obelics.html.tags_2023 import BR_MARKER, MEDIA_OR_SOURCE_TAGS, TAG_TO_SEP


# -- oracles: the original algorithms ----------------------------------------------------------------
def old_remove_empty_leaves(tree):
    while True:
        doomed = [node for node in tree.root.traverse() if s23._is_empty_leaf(node)]
        if not doomed:
            return
        for node in reversed(doomed):
            node.decompose()


def old_unnest_nodes(tree):
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
                node.replace_with(only)  # a copy, as the original
                changed = True
                break


def old_outermost(nodes):
    chosen, out = set(), []
    for node in nodes:
        parent, inside = node.parent, False
        while parent is not None:
            if parent.mem_id in chosen:
                inside = True
                break
            parent = parent.parent
        if not inside:
            chosen.add(node.mem_id)
            out.append(node)
    return out


def old_nodes(tree, page_url):
    """The original linearisation and merge (tuple paths, string concatenation)."""
    out, counter, stack = [], 0, [(tree.root, ())]
    while stack:
        node, parent_path = stack.pop()
        tag = node.tag
        path = parent_path + ((tag, counter),)
        counter += 1
        if tag in MEDIA_OR_SOURCE_TAGS:
            out.append([path, simplify_media_node(node, page_url), ""])
        elif tag == "-text":
            out.append([path, None, node.text_content or ""])
        else:
            out.append([path, None, ""])
            for child in reversed(list(node.iter(include_text=True))):
                stack.append((child, path))

    def tag(n):
        return n[0][-1][0]

    def sep_of(p1, p2, t1, t2):
        seps = set()
        for sep in ("\n\n", "\n", " "):
            if t1.endswith(sep):
                seps.add(sep)
                t1 = t1[: -len(sep)]
            if t2.startswith(sep):
                seps.add(sep)
                t2 = t2[len(sep):]
        start = 0
        for i in range(min(len(p1), len(p2))):
            if p1[i] != p2[i]:
                start = i
                break
        for t, _ in p1[start:] + p2[start:]:
            if TAG_TO_SEP.get(t) is not None:
                seps.add(TAG_TO_SEP[t])
        best = next((s for s in ("\n\n", "\n", " ") if s in seps), "")
        return t1 + best + t2

    nodes = [n for n in out if tag(n) == "-text" or tag(n) == "figure" or (tag(n) == "img" and n[1])]
    for n in nodes:
        n[2] = ex._format_text(n[2])
    nodes = [n for n in nodes if tag(n) != "-text" or n[2]]
    i = 0
    while i < len(nodes):
        cur = nodes[i]
        if tag(cur) != "-text":
            i += 1
        elif i == len(nodes) - 1 or tag(nodes[i + 1]) != "-text":
            cur[0] = (("-text", 0),)
            cur[2] = cur[2].strip()
            i += 1
        else:
            nxt = nodes[i + 1]
            cur[2] = sep_of(cur[0], nxt[0], cur[2], nxt[2])
            cur[0] = nxt[0]
            del nodes[i + 1]
    nodes = [n for n in nodes if tag(n) != "-text" or n[2].strip()]
    return [(tag(n), n[2] if tag(n) == "-text" else n[1]["src"]) for n in nodes]


# -- random pages ----------------------------------------------------------------------------------
_TAGS = ["div", "div", "div", "p", "section", "h2", "ul", "blockquote", "span", "figure", "video", "center"]
_TEXTS = ["", " ", "  ", "\n", "word", " two words ", "a" + BR_MARKER + "b", BR_MARKER, "x\n\n\ny ", "\t"]


def _random_html(rng: random.Random, budget: int) -> str:
    out = []

    def node(depth):
        nonlocal budget
        budget -= 1
        r = rng.random()
        if budget <= 0 or depth > 30 or r < 0.25:
            out.append(rng.choice(_TEXTS))
            return
        if r < 0.35:
            out.append(rng.choice(['<img src="https://e.com/a.jpg">', "<img>", '<img src="a b.png">',
                                   '<source src="https://e.com/s.mp4">', "<br>", "<br/>"]))
            return
        tag = rng.choice(_TAGS)
        if tag == "video" and rng.random() < 0.5:
            out.append('<video src="https://e.com/v.mp4">')
        else:
            out.append(f"<{tag}>")
        if rng.random() < 0.4:  # a same-tag chain, sometimes with whitespace around
            k = rng.randint(1, 5)
            for _ in range(k):
                out.append(rng.choice(["", " ", "\n"]) + f"<{tag}>")
            node(depth + k)
            out.append(f"</{tag}>" * k)
        else:
            for _ in range(rng.randint(0, 4)):
                node(depth + 1)
        out.append(f"</{tag}>")

    out.append("<html><body>")
    while budget > 0:
        node(0)
    out.append("</body></html>")
    return "".join(out)


def _prepared(html):
    tree = s23.parse(s23.preprocess_string(html, s23.Simplify2023Config()))
    s23.unwrap(tree)
    s23.strip_uninteresting(tree)
    return tree


@pytest.mark.parametrize("seed", range(60))
def test_linear_steps_match_the_original_loops(seed):
    rng = random.Random(seed)
    html = _random_html(rng, rng.randint(5, 120))
    old, new = _prepared(html), _prepared(html)
    old_remove_empty_leaves(old)
    s23.remove_empty_leaves(new)
    assert new.html == old.html
    old_unnest_nodes(old)
    s23.unnest_nodes(new)
    assert new.html == old.html
    old = s23.parse(old.html)
    new = s23.parse(new.html)
    got = [(("-text", t) if t is not None else ("img", i))
           for t, i in zip(*ex.tree_to_nodes(new, "https://e.com/p.html")[:2])]
    assert got == old_nodes(old, "https://e.com/p.html")


@pytest.mark.parametrize("seed", range(20))
def test_whole_simplification_matches_on_random_pages(seed):
    rng = random.Random(1000 + seed)
    html = _random_html(rng, 200)
    cfg = s23.Simplify2023Config()
    new = s23.simplify_2023(html, cfg)
    cfg.remove_empty_leaves = cfg.unnest_nodes = cfg.remake_tree = False
    old = s23.simplify_2023(html, cfg)
    old_remove_empty_leaves(old)
    old_unnest_nodes(old)
    old = s23.parse(old.html)
    assert new.html == old.html


def test_outermost_matches_the_original():
    html = ('<div class="more-link">a<div class="more-link">b<p class="more-link">c</p></div></div>'
            '<p class="more-link">d</p><div><span class="more-link">e</span></div>')
    tree = s23.parse(html)
    nodes = tree.css("[class~='more-link']")
    assert [n.mem_id for n in s23._outermost(nodes)] == [n.mem_id for n in old_outermost(nodes)]
    assert len(s23._outermost(nodes)) == 3


@pytest.mark.parametrize("html", ["a<!--x-->b<!--y", "<!--<!---->c-->", "<!-->x-->y", "<!--" * 50 + "z",
                                  "no comment", "<!---->", "a<!--1-->b<!--2-->c<!--"])
def test_strip_comments_is_the_original_regex(html):
    import re

    assert s23.strip_comments(html) == re.sub(r"(?s)<!--.*?-->", "", html)


def test_text_accumulator_trims_across_pieces():
    acc = ex._Text("ab\n")
    acc.append("\n")
    assert acc.endswith("\n\n")
    acc.drop(2)
    assert acc.value() == "ab" and not acc.endswith("\n")
    acc.append(" ")
    acc.drop(2)
    assert acc.value() == "a"


def test_deep_same_tag_chain_collapses_to_one():
    n = 3000
    tree = s23.simplify_2023("<html><body>" + "<div>" * n + "hi" + "</div>" * n)
    assert tree.html.count("<div>") == 1


def test_video_losing_its_sources_goes_in_one_pass():
    tree = s23.parse('<html><body><div><video><source src="https://e.com/a.mp4"></video></div>t</body></html>')
    assert get_media_src(tree.css_first("video"))
    s23.remove_empty_leaves(tree)
    assert tree.css_first("video") is None and tree.css_first("div") is None
