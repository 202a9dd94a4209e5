"""Opt-out stages over documents: image nodes (reference §7.1-7.2) and document URLs (the card's fix)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from filters.base import FilterStats
from filters.image import without_nodes
from filters.optout.checker import OptOutChecker
from filters.optout.config import OptOutConfig, optout_config
from filters.optout.x_robots import Headers
from obelics.config import Profile
from obelics.document import WebDocument

# Optional keys of general_metadata a producer may fill (the WARC record's HTTP headers, and the
# page's opt-out <meta> tags as filters.optout.html_meta.meta_signals returns them).
PAGE_HEADERS_KEY = "http_headers"
PAGE_META_KEY = "optout_meta"


def _record(stats: FilterStats, checker: OptOutChecker, errors0: Counter, events0: Counter) -> None:
    for source, n in (checker.errors - errors0).items():
        stats.event(f"optout:error:{source}", n)
    for name, n in (checker.events - events0).items():
        stats.event(name, n)


def _checker(cfg: OptOutConfig, checker: OptOutChecker | None) -> OptOutChecker:
    return checker if checker is not None else OptOutChecker(cfg)


def optout_filter_images(docs: Iterable[WebDocument], headers_by_url: Mapping[str, Headers] | None = None,
                         profile: Profile | str | OptOutConfig | None = "default",
                         stats: FilterStats | None = None, checker: OptOutChecker | None = None) -> list[WebDocument]:
    """Drop image nodes whose URL is opted out; documents are kept (final processing drops empty ones).

    ``headers_by_url`` holds each image's response headers from the download stage (a dict, or a
    list of pairs to keep repeated headers). Each unique URL is checked once.
    """
    cfg = optout_config(profile)
    stats = stats if stats is not None else FilterStats("optout_images")
    docs = list(docs)
    if not cfg.enabled or not cfg.images:
        return stats.pass_through(docs)
    checker = _checker(cfg, checker)
    errors0, events0 = checker.errors.copy(), checker.events.copy()
    verdicts = checker.check_urls([u for d in docs for u in d.images if u], "image", headers_by_url)
    out = []
    for doc in docs:
        stats.seen("document")
        drop = []
        for i, url in enumerate(doc.images):
            if url is None:
                continue
            stats.seen("image")
            verdict = verdicts.get(url)
            if verdict:
                stats.drop("image", verdict)
                drop.append(i)
            else:
                stats.kept("image")
        out.append(without_nodes(doc, drop) if drop else doc)
        stats.kept("document")
    _record(stats, checker, errors0, events0)
    return out


def optout_filter_documents(docs: Iterable[WebDocument], profile: Profile | str | OptOutConfig | None = "default",
                            stats: FilterStats | None = None, checker: OptOutChecker | None = None,
                            headers_by_url: Mapping[str, Headers] | None = None,
                            html_by_url: Mapping[str, str | bytes] | None = None,
                            rejects: list | None = None) -> list[WebDocument]:
    """Drop documents whose page URL is opted out, and the images of pages that forbid image use.

    Page headers come from ``headers_by_url`` or ``general_metadata["http_headers"]``; page HTML
    (for ``<meta>`` signals) from ``html_by_url``, or pre-extracted ``general_metadata["optout_meta"]``.
    A dropped document goes to ``rejects`` as ``(doc, "document:<reason>")``.
    """
    cfg = optout_config(profile)
    stats = stats if stats is not None else FilterStats("optout_documents")
    docs = list(docs)
    if not cfg.enabled or not cfg.documents:
        return stats.pass_through(docs)
    checker = _checker(cfg, checker)
    errors0, events0 = checker.errors.copy(), checker.events.copy()
    headers = dict(headers_by_url or {})
    meta: dict[str, Mapping[str, list[str]]] = {}
    for d in docs:
        if d.url and d.url not in headers and isinstance(d.general_metadata.get(PAGE_HEADERS_KEY), (dict, list)):
            headers[d.url] = d.general_metadata[PAGE_HEADERS_KEY]
        if d.url and isinstance(d.general_metadata.get(PAGE_META_KEY), dict):
            meta[d.url] = d.general_metadata[PAGE_META_KEY]
    html = html_by_url or {}
    verdicts = checker.check_urls([d.url for d in docs if d.url], "document", headers, html, meta)
    page_checks = any(s in cfg.documents for s in ("x_robots", "meta"))
    out = []
    for doc in docs:
        stats.seen("document")
        if not doc.url:
            stats.event("optout:document_without_url")
        verdict = verdicts.get(doc.url) if doc.url else None
        if verdict:
            stats.drop("document", verdict)
            if rejects is not None:
                rejects.append((doc, f"document:{verdict}"))
            continue
        n_images = doc.num_images
        stats.seen("image", n_images)
        block = None
        if page_checks and doc.url and n_images:
            block = checker.page_blocks_images(headers.get(doc.url), html.get(doc.url), meta.get(doc.url))
        if block:
            stats.drop("image", block, n_images)
            doc = without_nodes(doc, [i for i, u in enumerate(doc.images) if u is not None])
        else:
            stats.kept("image", n_images)
        out.append(doc)
        stats.kept("document")
    _record(stats, checker, errors0, events0)
    return out
