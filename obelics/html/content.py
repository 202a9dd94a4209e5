"""The ``default`` profile's main-content decision: which blocks of a page are its content, which boilerplate.

Written here because no library decides it on the lexbor tree the walk reads (trafilatura, Readability and
jusText work on lxml or their own DOMs); the ideas are theirs, the code is not:

1. **Text blocks.** Every block element (``p``, ``div``, ``td``, ``li``, headings...) owns the text of its
   inline descendants. A block owning at least ``min_block_chars`` characters scores
   ``1 + commas + min(chars // 100, 3)`` (longer, comma-rich prose scores more: Readability's paragraph score).
2. **Containers.** Each block hands its score to its ancestors: all of it to its parent, half to the
   grandparent, a third of that to the level above, and so on for five levels, so the element holding the
   most prose collects the most. A container's score gets a bonus or penalty from its tag (``div`` +5,
   ``td``/``pre``/``blockquote`` +3, list parts -3, headings -5) and from its class/id words (``article``,
   ``content``, ``post``... +25; ``comment``, ``sidebar``, ``related``, ``share``... -25), then is scaled by
   ``1 - link density``.
3. **The content root** is the best container; when three of the five best lie under one of its ancestors,
   or a parent scores more, the root moves up (the article is split over sibling wrappers), and an only child
   gives way to its parent.
4. **Siblings** of the root are kept when they score at least a fifth of the root (more with the root's
   class) or are prose blocks with few links: a lead paragraph, a figure with its caption beside the body.
5. **Inside the content**, a container (``div``, ``section``, ``ul``, ``table``, ``aside``...) with little
   prose (fewer than ten commas) is dropped when its links are most of its text, when its class/id says
   boilerplate (unless containers so named hold half of the root's text: a page builder calling every block
   a "widget"), or when it is a list of links posing as text: related-article lists, share bars, tag clouds.
   Short blocks before the first prose block (40+ characters, few links, not a heading) and after the last
   one go too: title, byline, date above the body, tags and credits below it.

Everything outside the kept blocks is dropped, images included: thumbnails, avatars and logos of the page's
chrome go, images of the content (in it or in a figure beside it) stay with their captions. A page without
any text block keeps the old rules (no decision).

The inputs are per-element arrays in document order (:class:`PageStats`). The compiled walk gathers them
and decides in C (:func:`obelics.html._walk.decide`, no Python object per element: 0.03 ms a page on top of
the statistics, against 0.2 ms for this module); :func:`decide` here is its twin for the Python walk
(``extract_default._page_stats_python``), and ``tests/obelics/test_html_default_walks.py`` checks that both
give the same plan on every benchmark and shared page. A rule changed here must be changed there too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# elements that own the text of their inline descendants (a text block); anything else is inline
TEXT_BLOCK_TAGS = frozenset([
    "p", "div", "section", "article", "main", "td", "th", "li", "dt", "dd", "blockquote", "pre", "h1", "h2",
    "h3", "h4", "h5", "h6", "figure", "figcaption", "caption", "address", "center", "details", "summary",
    "header", "aside", "ul", "ol", "dl", "table", "tr", "tbody", "thead", "tfoot", "body", "hgroup", "legend",
    "fieldset", "dialog", "marquee", "html", "form", "nav", "footer",
])
# containers the inner cleaning may drop; prose blocks (p, li, td, headings) are dropped only as link lines
CLEANED_TAGS = frozenset(["div", "section", "ul", "ol", "dl", "table", "aside", "header", "form", "nav",
                          "fieldset", "details", "center", "footer"])
HEADING_TAGS = frozenset(["h1", "h2", "h3", "h4", "h5", "h6"])
BLOCK, CONTAINER, HEADING = 1, 2, 3  # kinds of element in PageStats.kind (0: inline)
TAG_CLASSES = {t: (CONTAINER if t in CLEANED_TAGS else HEADING if t in HEADING_TAGS else BLOCK)
               for t in TEXT_BLOCK_TAGS}
_TAG_BONUS = {"div": 5, "pre": 3, "td": 3, "blockquote": 3, "address": -3, "ol": -3, "ul": -3, "dl": -3,
              "dd": -3, "dt": -3, "li": -3, "form": -3, "h1": -5, "h2": -5, "h3": -5, "h4": -5, "h5": -5,
              "h6": -5, "th": -5}
# removed tags that may wrap a whole page (ASP.NET pages put the body in one <form>): the decision looks inside
# them, and walks through one when it holds the content; elsewhere they stay removed
TRANSPARENT_TAGS = frozenset(["form"])


@dataclass
class PageStats:
    """Per-element figures of a page's ``<body>`` in document order (index 0 is the body), skipped subtrees
    (script/style/template, the profile's removed tags, noscript) left out.

    ``parent``/``end``: the parent's index (-1 for the body) and the index past the element's subtree;
    ``chars``/``links``: characters of text (ASCII whitespace not counted) under the element and inside
    ``<a>`` under it; ``own``/``commas``: characters and commas of the text the element owns as a text
    block, ``commas_under`` those of the blocks under it; ``images``: ``<img>``/``<picture>`` under it;
    ``tags``: names; ``ids``: the nodes' ``mem_id``; ``names``: ``names(i)`` is the element's class and id
    values joined with a space; ``score``: the container scores of :func:`score_blocks`."""

    parent: np.ndarray
    end: np.ndarray
    chars: np.ndarray
    links: np.ndarray
    own: np.ndarray
    commas: np.ndarray
    commas_under: np.ndarray
    images: np.ndarray
    kind: np.ndarray
    tags: list
    ids: np.ndarray
    names: object
    score: np.ndarray


LEVEL_SHARE = (36, 18, 6, 4, 3)  # a block's score on its container and the levels above: 1, 1/2, 1/6, 1/9, 1/12
SCALE = LEVEL_SHARE[0]  # scores are integers, in 36ths of a point: exact, and the same in C and here


def score_blocks(parent, own, commas, kind, chars, min_block_chars: int) -> np.ndarray:
    """Readability's container scores, in 36ths: every text block owning at least ``min_block_chars``
    characters scores ``1 + commas + min(chars // 100, 3)``, credited to its container (the block itself when
    it mixes its own text, at least half of it, with child blocks, else its parent), half to the next level
    up, then a sixth, a ninth, a twelfth. ``_walk._sums_and_scores`` computes the same in C."""
    n = len(parent)
    blocks = np.flatnonzero(own >= min_block_chars)
    score = np.zeros(n, dtype=np.int64)
    if not len(blocks):
        return score
    bs = 1 + commas[blocks].astype(np.int64) + np.minimum(own[blocks] // 100, 3)
    has_block_child = np.zeros(n, dtype=bool)
    has_block_child[parent[np.flatnonzero(kind[1:] > 0) + 1]] = True
    anc = np.where(has_block_child[blocks] & (own[blocks] * 2 >= chars[blocks]), blocks, parent[blocks])
    for share in LEVEL_SHARE:
        ok = anc >= 0
        if not ok.any():
            break
        anc, bs = anc[ok], bs[ok]
        score += np.bincount(anc, weights=bs * share, minlength=n).astype(np.int64)  # exact: integers < 2**53
        anc = parent[anc]
    return score


def stats_of(parent, end, text, link, own, commas, images, kind, tags, ids, names, min_block_chars) -> PageStats:
    """:class:`PageStats` from what the Python gatherer counted per element: ``text``/``link``/``images`` of
    the element itself (its direct text nodes, those inside a link, 1 for an image), summed here over
    subtrees, and the scores (the C gatherer does both itself)."""
    idx = np.arange(len(tags))

    def under(direct):
        cs = np.concatenate(([0], np.cumsum(direct, dtype=np.int64)))
        return (cs[end] - cs[idx]).astype(np.int32)

    chars = under(text)
    return PageStats(parent=parent, end=end, chars=chars, links=under(link), own=own, commas=commas,
                     commas_under=under(commas), images=under(images), kind=kind, tags=tags, ids=ids, names=names,
                     score=score_blocks(parent, own, commas, kind, chars, min_block_chars))


@dataclass(frozen=True)
class Plan:
    """The decision, as node ``mem_id`` sets: ``roots`` kept with their subtree, ``ancestors`` of roots
    walked through (their own text dropped), ``drops`` inside the roots removed with their subtree."""

    roots: frozenset
    ancestors: frozenset
    drops: frozenset


_WORDS: dict = {}
_NAME_WEIGHTS: dict = {}  # patterns -> {class/id value: weight}, across pages (a site repeats its names)


def _word_patterns(cfg):
    """Compiled searches for the class/id words of ``cfg`` (negative, positive, section prefixes), cached."""
    key = (tuple(cfg.content_negative), tuple(cfg.content_positive), tuple(cfg.content_section_negative))
    hit = _WORDS.get(key)
    if hit is None:
        if len(_WORDS) > 16:
            _WORDS.clear()

        def any_of(words, prefix=False):
            if not words:
                return None
            alts = "|".join(re.escape(w) for w in words)
            return re.compile(rf"(?:^|\s)(?:{alts})" if prefix else alts)

        hit = _WORDS[key] = (any_of(key[0]), any_of(key[1]), any_of(key[2], prefix=True))
    return hit


def _weight(name: str, patterns) -> int:
    """Class/id evidence: +25 for a content word, -25 for a boilerplate word (each at most once)."""
    low = name.lower()
    negative, positive, _ = patterns
    w = 0
    if negative is not None and negative.search(low):
        w -= 25
    if positive is not None and positive.search(low):
        w += 25
    return w


def name_words(cfg) -> tuple:
    """``(patterns, weights by class/id value, weight function, tag bonus)``: the class/id evidence both
    deciders read (this module's :func:`decide` and ``_walk.decide``), the weights cached across pages."""
    patterns = _word_patterns(cfg)
    by_name = _NAME_WEIGHTS.get(patterns)
    if by_name is None or len(by_name) > 100_000:
        if len(_NAME_WEIGHTS) > 16:
            _NAME_WEIGHTS.clear()
        by_name = _NAME_WEIGHTS[patterns] = {}
    return patterns, by_name, _weight, _TAG_BONUS


def decide(st: PageStats, cfg) -> Plan | None:
    """The content blocks of a page (see the module docstring), or None when it has no text block."""
    n = len(st.tags)
    if n < 2:
        return None
    parent, chars, links, score = st.parent, st.chars, st.links, st.score
    cand = np.flatnonzero(score > 0)
    density = np.where(chars > 0, links / np.maximum(chars, 1), 0.0)
    tags = st.tags
    patterns, by_name, _, _ = name_words(cfg)
    final: dict[int, float] = {}
    weights: dict[int, int] = {}

    def weight(i: int) -> int:
        w = weights.get(i)
        if w is None:
            name = st.names(i)
            w = by_name.get(name)
            if w is None:
                w = by_name[name] = _weight(name, patterns)
            weights[i] = w
        return w

    def value(i: int) -> float:
        """The container's score with its tag and class/id evidence, times the share of non-link text."""
        v = final.get(i)
        if v is None:
            s = int(score[i])
            if s <= 0:
                v = 0.0
            else:
                c = int(chars[i])
                s += SCALE * (_TAG_BONUS.get(tags[i], 0) + weight(i))
                v = s * (c - int(links[i])) / c if c else float(s)
            final[i] = v
        return v

    if not len(cand):
        return None
    # tag and class/id words move a score by at most 30 points: only the best by score alone can win
    base = score[cand] * (1.0 - density[cand])
    order = np.argsort(-base, kind="stable")[:cfg.content_candidates]
    best = base[order[0]]
    short = [int(cand[k]) for k in order if base[k] + 60 * SCALE >= best]
    # ...and only those that can reach half the best value matter below (the parts of a split article, a
    # close second): their evidence is read, the others' is not
    reach = base[order] + 30 * SCALE
    top_value = 0.0
    seen = []
    for k, i in enumerate(short):
        if reach[k] < 0.5 * top_value:
            break
        seen.append(i)
        top_value = max(top_value, value(i))
    ranked = sorted(seen, key=lambda i: (-value(i), i))
    # a comment section, or a container in one, is not the article, however much text it has
    section = patterns[2]
    under: dict[int, bool] = {-1: False}  # element -> in or under a comment section

    def under_boilerplate(i: int) -> bool:
        chain = []
        while i not in under:
            chain.append(i)
            i = int(parent[i])
        hit = under[i]
        for j in reversed(chain):
            hit = under[j] = hit or section.search(st.names(j).lower()) is not None
        return hit

    top = ranked[0]
    if section is not None and under_boilerplate(top):
        ranked = sorted(short, key=lambda i: (-value(i), i))
        ranked = [i for i in ranked[:12] if not under_boilerplate(i)] or ranked
        top = ranked[0]
    # a close second holding several times the prose (the body beside a popup named "content") wins
    prose = chars - links
    for i in ranked[1:8]:
        if value(i) < 0.75 * value(top):
            break
        if prose[i] >= 4 * prose[top] and not (i < top < st.end[i] or top < i < st.end[top]):
            top = i
            break
    top = _move_up(st, top, ranked, value, cfg)
    if top == 0:
        return None  # the whole body: no decision
    roots = _with_siblings(st, top, value(ranked[0]), value, weight, density, cfg,
                           under_boilerplate if section is not None else None)
    drops = _inner_drops(st, roots, weight, density, cfg)
    drops += _edge_drops(st, roots, drops, density, cfg)
    ancestors = set()
    p = parent[roots[0]]
    while p >= 0:
        ancestors.add(int(st.ids[p]))
        p = parent[p]
    return Plan(frozenset(int(st.ids[r]) for r in roots), frozenset(ancestors),
                frozenset(int(st.ids[d]) for d in drops))


def _ancestors(parent, i: int) -> list[int]:
    out = []
    p = parent[i]
    while p >= 0:
        out.append(int(p))
        p = parent[p]
    return out


def _move_up(st: PageStats, top: int, ranked: list[int], value, cfg) -> int:
    """Readability's steps up from the best container: a common ancestor of most of the best ones, a parent
    scoring more than the root (or not much less, three levels up at most), an only child's parent."""
    parent, end = st.parent, st.end
    # an article split in parts of one class (paragraph cards, body sections between ads): their common
    # ancestor holds it
    name = st.names(top)
    if name.strip():
        top_value = value(top)
        parts = [i for i in ranked[1:12] if value(i) >= 0.5 * top_value and st.names(i) == name
                 and not (i < top < end[i] or top < i < end[top])]
        if parts:
            # the highest ancestor where the parts are at least half of the text
            best_a = None
            for a in _ancestors(parent, top):
                if a == 0:
                    break
                inside = [i for i in parts if a < i < end[a]]
                share = cfg.content_parts_share * st.chars[a]
                if inside and st.chars[top] + sum(int(st.chars[i]) for i in inside) >= share:
                    best_a = a
            if best_a is not None:
                top = best_a
    best = last = value(top)
    p = int(parent[top])
    while p > 0:
        v = value(p)
        if v <= 0:
            p = int(parent[p])
            continue
        if v < last / 3:
            break
        if v > best:
            top = p
            break
        last = v
        p = int(parent[p])
    # an only child (no element siblings) stands for its parent
    while top > 0:
        p = int(parent[top])
        if p <= 0 or not (end[top] == end[p] and top == p + 1):
            break
        top = p
    return top


def _children(st: PageStats, p: int) -> list[int]:
    out = []
    i = p + 1
    stop = st.end[p]
    while i < stop:
        out.append(i)
        i = int(st.end[i])
    return out


def _with_siblings(st: PageStats, top: int, best_value: float, value, weight, density, cfg,
                   section=None) -> list[int]:
    """The root and the siblings that belong with it, in document order (never a comment section)."""
    p = int(st.parent[top])
    if p < 0:
        return [top]
    top_value = max(value(top), best_value)
    threshold = max(10.0 * SCALE, top_value * 0.2)
    top_name = st.names(top).split(" ")[0]
    kept = []
    for s in _children(st, p):
        if s == top:
            kept.append(s)
            continue
        if section is not None and section(s):
            continue
        v = value(s)
        if top_name and st.names(s).split(" ")[0] == top_name:
            v += top_value * 0.2
        if v >= threshold * cfg.content_sibling_share:
            kept.append(s)
            continue
        c = st.chars[s]
        if weight(s) < 0:
            continue
        if c > cfg.content_sibling_chars and density[s] < 0.25 and st.own[s] > 0.5 * c:
            kept.append(s)  # a prose paragraph beside the body
        elif st.images[s] and c < 200 and density[s] == 0 and _adjacent(st, kept, s, top):
            kept.append(s)  # a figure or lead image beside the body, with its caption
    return kept


def _adjacent(st: PageStats, kept: list[int], s: int, top: int) -> bool:
    """``s`` comes right before the root or right after a kept block (no text block in between)."""
    nxt = int(st.end[s])
    return nxt == top or (kept and int(st.end[kept[-1]]) == s)


def _inner_drops(st: PageStats, roots: list[int], weight, density, cfg) -> list[int]:
    """Elements inside the roots that are boilerplate (step 5 of the module docstring), outermost first."""
    n = len(st.tags)
    marks = np.zeros(n + 1, dtype=np.int32)
    for r in roots:
        marks[r + 1] += 1
        marks[st.end[r]] -= 1
    inside = np.cumsum(marks[:n]) > 0  # under a root, the roots themselves left out
    c, own = st.chars, st.own
    # a container with little prose, mostly links
    linky = inside & (st.kind == CONTAINER) & (c > 0) & (st.commas_under < 10) & (
        density > cfg.content_max_link_density)
    # a line that is one link: "Read more", a related headline, a tag
    link_line = inside & (own > 0) & (own * 10 >= c * 9) & (density >= cfg.content_link_line_density) & (
        c < cfg.content_link_line_chars)
    # a container with little prose, named as boilerplate (Readability's conditional cleaning): a share bar,
    # a gallery's controls, a newsletter box inside the article
    containers = inside & (st.kind == CONTAINER) & (c > 0)
    named = containers & (st.commas_under < 10)
    end = st.end
    # ...unless containers so named hold half of the root's text: then the words are the site's own vocabulary
    # (a page builder calling every block a "widget"), not the mark of a box
    boxes = set()
    for r in roots:
        covered, stop = 0, -1
        for i in np.flatnonzero(containers[r + 1:end[r]]).tolist():
            i += r + 1
            if i >= stop and weight(i) < 0:
                covered += int(c[i])
                stop = int(end[i])
        if 2 * covered < c[r]:
            boxes.update(i + r + 1 for i in np.flatnonzero(named[r + 1:end[r]]).tolist())
    drops = []
    stop = -1
    for i in np.flatnonzero(linky | link_line | named).tolist():
        if i < stop:
            continue  # inside one dropped already
        if linky[i] and density[i] <= 0.5 and weight(i) >= 25:
            continue  # a content container by name with a few links: kept
        if not (linky[i] or link_line[i]) and (i not in boxes or weight(i) >= 0):
            continue
        drops.append(i)
        stop = int(end[i])
    return drops


def _edge_drops(st: PageStats, roots: list[int], drops: list[int], density, cfg) -> list[int]:
    """Short text blocks before the content's first prose paragraph (a block of at least ``content_good_chars``
    characters, mostly not links, not a heading) and after its last one (jusText's neighbourhood rule): the
    title, byline, date and share line above the body, the tags and credits below.
    Only blocks whose text is all their own and that hold no image (a caption beside its image stays)."""
    n = len(st.tags)
    marks = np.zeros(n + 1, dtype=np.int32)  # +1 where a kept range opens, -1 where it closes
    for r in roots:
        marks[r] += 1
        marks[st.end[r]] -= 1
    for d in drops:
        marks[d] -= 1
        marks[st.end[d]] += 1
    inside = np.cumsum(marks[:n]) > 0
    own = st.own
    text = np.flatnonzero(inside & (own > 0))
    if not len(text):
        return []
    t_own = own[text]
    # a heading is not prose: the title above the body is an edge line, however long
    good = np.flatnonzero((t_own >= cfg.content_good_chars) & (density[text] < 0.3) & (st.kind[text] != HEADING))
    if not len(good):
        return []
    first, last = text[good[0]], text[good[-1]]
    leaf = (t_own == st.chars[text]) & (st.images[text] == 0) & (st.images[np.maximum(st.parent[text], 0)] == 0)
    lead = leaf & (text < first)
    tail = leaf & (text > last) & (t_own < cfg.content_tail_chars)
    out = text[lead | tail]
    if not len(out):
        return []
    roots_set = set(roots)
    return [int(i) for i in out if int(i) not in roots_set]


_REPEATED: list = []  # _walk.repeated_line_free, or None (not built)


def without_repeated_lines(text: str, min_chars: int) -> str:
    """``text`` without a line (of at least ``min_chars`` characters) equal to the line before it, blank
    lines between not counted: a full and a truncated copy of one caption, a heading for mobile and desktop."""
    if "\n" not in text:
        return text
    if not _REPEATED:
        from obelics.budget import _compiled

        _REPEATED.append(_compiled("repeated_line_free"))
    if _REPEATED[0] is not None and _REPEATED[0](text, min_chars):  # nothing to drop (most texts), found in C
        return text
    return _drop_repeated_lines(text, min_chars)


def _drop_repeated_lines(text: str, min_chars: int) -> str:
    """:func:`without_repeated_lines`' loop (also the reference of its compiled check's tests)."""
    out: list[str] = []
    last = None
    for line in text.split("\n"):
        if line and line == last and len(line) >= min_chars:
            while out and not out[-1]:
                out.pop()
            continue
        out.append(line)
        if line:
            last = line
    return "\n".join(out)
