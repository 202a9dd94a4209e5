"""Opt-out steps over documents: image nodes (docs/reference.md §7.1-7.2) and document URLs (the card's fix)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from filters.base import FilterStats, Verdict, without_nodes
from filters.optout.checker import OptOutChecker
from filters.optout.config import OptOutConfig, optout_config
from filters.optout.html_meta import MAX_CHARS as META_MAX_CHARS
from filters.optout.html_meta import meta_signals, meta_signals_of_tree
from filters.optout.x_robots import Headers
from filters.step import Step, run_step
from obelics.budget import _compiled
from obelics.config import Profile
from obelics.document import WebDocument

# Optional keys of general_metadata a producer may fill (the WARC record's HTTP headers, and the
# page's opt-out <meta> tags as filters.optout.html_meta.meta_signals returns them).
PAGE_HEADERS_KEY = "http_headers"
PAGE_META_KEY = "optout_meta"
# Page headers the document opt-out reads; kept in general_metadata until pipeline.finish strips them.
PAGE_HEADERS = ("x-robots-tag", "tdm-reservation", "tdm-policy")
# A cheap look at the page before parsing it for <meta> tags (most pages have none), over as much of the
# page as meta_signals parses (its characters are at most 4 UTF-8 bytes each).
_META_HINT = re.compile(rb"<meta[^>]{0,200}name\s*=\s*[\"']?(robots|tdm-|obelics)", re.I)
_META_HINT_WITHIN = 200  # the {0,200} of _META_HINT: where its "name" may start after "<meta"


def _meta_hint(payload: bytes) -> bool:
    """Whether ``_META_HINT.search(payload, 0, 4 * META_MAX_CHARS)`` finds a match. Where the walk is built, the
    regex is tried (``match``) only at the positions where its ``<meta[^>]{0,200}name`` can begin
    (``_walk.meta_name_candidate``, a ``memchr`` for ``<``): the same answer, without the regex engine stepping
    through every byte of the page case-folded (0.033 CPU ms of a 48 KB page; ~10x less)."""
    end = 4 * META_MAX_CHARS
    find = _compiled("meta_name_candidate")
    if find is None:
        return _META_HINT.search(payload, 0, end) is not None
    i = find(payload, 0, end, _META_HINT_WITHIN)
    while i >= 0:
        if _META_HINT.match(payload, i, end):
            return True
        i = find(payload, i + 1, end, _META_HINT_WITHIN)
    return False


def page_signals(record, agent_token: str = "", tree=None) -> dict:
    """What the document opt-out needs from a WARC HTML ``record`` (``http_headers``, ``payload``,
    ``html``), as the ``general_metadata`` entries to add: its opt-out response headers and <meta> tags.

    ``tree``: the extraction's lexbor tree of ``record.html`` (``obelics.extract.extract_records``'s
    ``on_tree``), read for the <meta> tags instead of parsing the page again when it is all of what
    :func:`meta_signals` parses (a payload of at most ``MAX_CHARS`` bytes has at most as many characters)."""
    out: dict = {}
    headers = {k: v for k, v in record.http_headers.items() if k in PAGE_HEADERS}
    if headers:
        out[PAGE_HEADERS_KEY] = headers
    if _meta_hint(record.payload):
        if tree is not None and len(record.payload) <= META_MAX_CHARS:
            meta = meta_signals_of_tree(tree, agent_token)
        else:
            meta = meta_signals(record.html, agent_token)
        if meta:
            out[PAGE_META_KEY] = meta
    return out


@dataclass
class _Checked:
    """One chunk's shared work: the checker, each URL's verdict, and the checker's counters before it."""

    checker: OptOutChecker
    verdicts: dict
    errors0: Counter
    events0: Counter
    headers: dict = field(default_factory=dict)
    html: Mapping = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def _record(stats: FilterStats, c: _Checked) -> None:
    for source, n in (c.checker.errors - c.errors0).items():
        stats.event(f"optout:error:{source}", n)
    for name, n in (c.checker.events - c.events0).items():
        stats.event(name, n)


def _start(cfg: OptOutConfig, inputs) -> tuple[OptOutChecker, Counter, Counter]:
    given = inputs.get("checker")
    checker = given() if given else None
    checker = checker if checker is not None else OptOutChecker(cfg)
    return checker, checker.errors.copy(), checker.events.copy()


class OptOutImagesStep(Step):
    """Drop image nodes whose URL is opted out; documents are kept (final processing drops empty ones).

    The ``image_headers`` input gives each image's response headers from the download stage (a dict,
    or a list of pairs to keep repeated headers). Each unique URL is checked once.
    """

    name = "optout_images"
    section = "optout"
    config = OptOutConfig
    level = "image"
    needs = ("image_headers", "checker")

    def active(self, cfg: OptOutConfig) -> bool:
        return cfg.enabled and bool(cfg.images)

    def prepare(self, docs, cfg: OptOutConfig, inputs) -> _Checked:
        checker, errors0, events0 = _start(cfg, inputs)
        urls = [u for d in docs for u in d.images if u]
        headers = inputs["image_headers"](urls) if "image_headers" in inputs else None
        return _Checked(checker, checker.check_urls(urls, "image", headers), errors0, events0)

    def image_verdict(self, url, meta, cfg, checked: _Checked) -> Verdict:
        return checked.verdicts.get(url)

    def finish(self, cfg, checked: _Checked, tally: FilterStats) -> None:
        _record(tally, checked)


class OptOutDocumentsStep(Step):
    """Drop documents whose page URL is opted out, and the images of pages that forbid image use.

    Page headers come from the ``page_headers`` input or ``general_metadata["http_headers"]``; page HTML
    (for ``<meta>`` signals) from the ``page_html`` input, or pre-extracted ``general_metadata["optout_meta"]``.
    """

    name = "optout_documents"
    section = "optout"
    config = OptOutConfig
    needs = ("page_headers", "page_html", "checker")

    def active(self, cfg: OptOutConfig) -> bool:
        return cfg.enabled and bool(cfg.documents)

    def prepare(self, docs, cfg: OptOutConfig, inputs) -> _Checked:
        checker, errors0, events0 = _start(cfg, inputs)
        headers = dict(inputs["page_headers"]() if "page_headers" in inputs else {})
        meta: dict[str, Mapping[str, list[str]]] = {}
        for d in docs:
            if d.url and d.url not in headers and isinstance(d.general_metadata.get(PAGE_HEADERS_KEY), (dict, list)):
                headers[d.url] = d.general_metadata[PAGE_HEADERS_KEY]
            if d.url and isinstance(d.general_metadata.get(PAGE_META_KEY), dict):
                meta[d.url] = d.general_metadata[PAGE_META_KEY]
        html = (inputs["page_html"]() if "page_html" in inputs else None) or {}
        verdicts = checker.check_urls([d.url for d in docs if d.url], "document", headers, html, meta)
        return _Checked(checker, verdicts, errors0, events0, headers, html, meta)

    def precheck(self, doc, cfg, checked: _Checked) -> Verdict:
        return checked.verdicts.get(doc.url) if doc.url else None

    def transform(self, doc, cfg: OptOutConfig, checked: _Checked, tally: FilterStats) -> WebDocument:
        """The page's own opt-out of its images (X-Robots-Tag / <meta> ``noimageai``...): all its image nodes go."""
        if not doc.url:
            tally.event("optout:document_without_url")
        n_images = doc.num_images
        tally.seen("image", n_images)
        block = None
        if doc.url and n_images and any(s in cfg.documents for s in ("x_robots", "meta")):
            block = checked.checker.page_blocks_images(checked.headers.get(doc.url), checked.html.get(doc.url),
                                                       checked.meta.get(doc.url))
        if block:
            tally.drop("image", block, n_images)
            return without_nodes(doc, [i for i, u in enumerate(doc.images) if u is not None])
        tally.kept("image", n_images)
        return doc

    def finish(self, cfg, checked: _Checked, tally: FilterStats) -> None:
        _record(tally, checked)


OPTOUT_IMAGES, OPTOUT_DOCUMENTS = OptOutImagesStep(), OptOutDocumentsStep()


def _inputs(checker: OptOutChecker | None, **given) -> dict:
    inputs = {k: (lambda v=v: v) for k, v in given.items() if v is not None}
    if checker is not None:
        inputs["checker"] = lambda: checker
    return inputs


def optout_filter_images(docs: Iterable[WebDocument], headers_by_url: Mapping[str, Headers] | None = None,
                         profile: Profile | str | OptOutConfig | None = "default",
                         stats: FilterStats | None = None, checker: OptOutChecker | None = None) -> list[WebDocument]:
    """:class:`OptOutImagesStep` over ``docs`` (``headers_by_url``: each image's response headers)."""
    inputs = _inputs(checker)
    if headers_by_url is not None:
        inputs["image_headers"] = lambda urls: headers_by_url
    return run_step(OPTOUT_IMAGES, docs, state=optout_config(profile), inputs=inputs, stats=stats)[0]


def optout_filter_documents(docs: Iterable[WebDocument], profile: Profile | str | OptOutConfig | None = "default",
                            stats: FilterStats | None = None, checker: OptOutChecker | None = None,
                            headers_by_url: Mapping[str, Headers] | None = None,
                            html_by_url: Mapping[str, str | bytes] | None = None,
                            rejects: list | None = None) -> list[WebDocument]:
    """:class:`OptOutDocumentsStep` over ``docs``; a dropped document goes to ``rejects`` as
    ``(doc, "document:<reason>")``."""
    inputs = _inputs(checker, page_headers=headers_by_url, page_html=html_by_url)
    return run_step(OPTOUT_DOCUMENTS, docs, state=optout_config(profile), inputs=inputs, stats=stats,
                    rejects=rejects)[0]
