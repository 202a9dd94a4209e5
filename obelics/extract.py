"""HTML -> :class:`~obelics.document.WebDocument`, for one page, one WARC record or a whole WARC.

The profile's ``extract`` section (:class:`obelics.html.config.ExtractConfig`) picks the rules:
``obelics-2023`` reproduces the original build (bs4 decoding, DOM simplification, node selection);
``default`` is the fixed, faster rule set of :mod:`obelics.html.extract_default`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from functools import partial
from pathlib import Path

from obelics.config import Profile, load_profile
from obelics.document import WebDocument
from obelics.html.config import ExtractConfig
from obelics.records import HtmlRecord, ReadStats

_CACHE: dict[int, tuple[Profile, ExtractConfig]] = {}


def extract_config(profile: str | Path | Profile | ExtractConfig = "default") -> ExtractConfig:
    """The ``extract`` section of a profile given by name, path, loaded profile, or the section itself."""
    if isinstance(profile, ExtractConfig):
        return profile
    if isinstance(profile, Profile):
        key = id(profile)
        hit = _CACHE.get(key)
        if hit is not None and hit[0] is profile:
            return hit[1]
        cfg = profile.section("extract", ExtractConfig)
        if len(_CACHE) > 64:  # profiles made per task must not pile up
            _CACHE.clear()
        _CACHE[key] = (profile, cfg)
        return cfg
    return _named_config(str(profile))


_NAMED: dict[str, ExtractConfig] = {}
_PROFILES: dict[str, Profile] = {}


def _profile(profile: str | Path | Profile) -> Profile:
    """A loaded profile; names and paths are loaded once per process (the YAML parse is slow)."""
    if isinstance(profile, Profile):
        return profile
    key = str(profile)
    prof = _PROFILES.get(key)
    if prof is None:
        prof = _PROFILES[key] = load_profile(profile)
    return prof


def _named_config(name: str) -> ExtractConfig:
    cfg = _NAMED.get(name)
    if cfg is None:
        cfg = _profile(name).section("extract", ExtractConfig)
        _NAMED[name] = cfg
    return cfg


def _nodes(html: str | bytes, url: str, cfg: ExtractConfig, budget=None, on_tree=None):
    """``(texts, images, metadata)`` of decoded HTML (``default``: or valid UTF-8 bytes); ``budget`` (a running page budget) raises
    :class:`obelics.budget.PageBudgetExceeded` when the page is over it. ``on_tree``: ``default``'s
    :func:`~obelics.html.extract_default.extract_nodes` hands it the parse of ``html`` when the walk leaves it unchanged."""
    from obelics.budget import NO_BUDGET

    budget = budget or NO_BUDGET
    if cfg.mode == "obelics-2023":
        from obelics.html.extract_2023 import tree_to_nodes
        from obelics.html.simplify_2023 import Simplify2023Config, simplify_2023

        scfg = Simplify2023Config(css_rules=list(cfg.css_remove), css_rules_replace_with_text=dict(cfg.css_replace))
        return tree_to_nodes(simplify_2023(html, scfg, budget), url, budget)
    from obelics.html.extract_default import extract_nodes

    texts, images, metadata = extract_nodes(html, url, cfg, on_tree=on_tree)  # compiled, linear: bounded by the size caps
    budget.check_time()
    return _without_refused_images(texts, images, metadata)


def _without_refused_images(texts, images, metadata):
    """Drop image nodes whose URL is a literal non-public address (``http://2130706433/``, ``[::1]``,
    ``localhost``): never fetchable (:mod:`obelics.netguard`), so ``default`` drops them at extraction."""
    from obelics.netguard import literal_refusal

    drop = [k for k, u in enumerate(images) if u is not None and literal_refusal(u)]
    if not drop:
        return texts, images, metadata
    gone = set(drop)
    keep = [k for k in range(len(images)) if k not in gone]
    return [texts[k] for k in keep], [images[k] for k in keep], [metadata[k] for k in keep]


def _decode(html: str | bytes, cfg: ExtractConfig, charset: str | None = None,
            identified_charset: str | None = None) -> str:
    from obelics.html import decode

    if cfg.mode == "obelics-2023":
        if isinstance(html, bytes):
            return decode.decode_2023(html, identified_charset, roundtrip=cfg.bs4_roundtrip)
        return decode.bs4_roundtrip(html) if cfg.bs4_roundtrip else html
    if cfg.bs4_roundtrip:
        return decode.bs4_roundtrip(decode.decode_default(html, charset) if isinstance(html, bytes) else html)
    if isinstance(html, bytes):
        return decode.decode_default(html, charset)
    return html


def _default_input(record: HtmlRecord, cfg: ExtractConfig) -> str | bytes:
    """The record's page as the ``default`` parse takes it: a valid UTF-8 payload (the reader's charset
    ``utf-8``) as its own bytes, which are exactly the UTF-8 that lexbor would be given of the decoded
    text, so the page is neither decoded here nor encoded again by the parser; else the text decoded
    with the record's charset."""
    if record.charset == "utf-8" and not cfg.bs4_roundtrip:
        payload = record.payload
        if payload.isascii() or _utf8_valid(payload):  # else undecodable bytes become U+FFFD in the text path
            return payload
    return _decode(record.html, cfg)


def _utf8_valid(payload: bytes) -> bool:
    """Whether ``payload.decode("utf-8")`` succeeds: compiled without making the str (``_walk.utf8_valid``)
    where the walk is built, else by decoding."""
    from obelics.budget import _compiled

    valid = _compiled("utf8_valid")
    if valid is not None:
        return valid(payload)
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _uses_bs4(cfg: ExtractConfig) -> bool:
    return cfg.mode == "obelics-2023" or cfg.bs4_roundtrip


def _start_budget(cfg: ExtractConfig):
    """The page's budget, its clock started once the parsers it needs are imported (an import is neither
    the page's time nor to be interrupted half-way)."""
    if _uses_bs4(cfg):
        import bs4  # noqa: F401

    return cfg.page_budget()


def _interruptible(cfg: ExtractConfig, budget):
    """The context one page's decoding and extraction run in: the bs4 steps (``obelics-2023`` decoding, a
    ``bs4_roundtrip``) have no tick, so there the deadline interrupts them (:meth:`PageBudget.alarm`); the
    ``default`` walk is compiled and linear, bounded by the size caps and its checks."""
    return budget.alarm() if _uses_bs4(cfg) else nullcontext()


def extract_html(html: str | bytes, url: str, profile: str | Path | Profile | ExtractConfig = "default",
                 general_metadata: dict | None = None, capture_date: str | None = None) -> WebDocument:
    """One page's HTML (str, or bytes decoded by the profile's rule) as a :class:`WebDocument`.

    ``obelics-2023`` decodes bytes the production way (bs4 detection and round trip) and still
    round-trips a str through bs4, as the build did; ``default`` uses a str as is. A page with no
    content yields a document with empty lists. An undecodable page (``obelics-2023``: empty payload)
    also yields an empty document. A page over the profile's per-page budget raises
    :class:`obelics.budget.PageBudgetExceeded` (its ``skip_reason`` is ``page_budget:<reason>``).
    """
    from obelics.html.decode import DecodeError

    cfg = extract_config(profile)
    gm = dict(general_metadata) if general_metadata else {"url": url}
    budget = _start_budget(cfg)
    budget.check_size(html)
    with _interruptible(cfg, budget):
        try:
            text = _decode(html, cfg)
        except DecodeError:
            return WebDocument(general_metadata=gm, capture_date=capture_date)
        texts, images, metadata = _nodes(text, url, cfg, budget)
    return WebDocument(texts=texts, images=images, metadata=metadata, general_metadata=gm,
                       capture_date=capture_date)


def extract_record(record: HtmlRecord, profile: str | Path | Profile | ExtractConfig = "default",
                   on_tree: Callable | None = None) -> WebDocument:
    """One WARC HTML record as a document (WARC pointer in ``general_metadata``, capture date set).

    ``obelics-2023`` decodes the payload the original way (``WARC-Identified-Content-Charset``, else
    bs4's detector); ``default`` uses the charset the reader chose. ``on_tree(tree)``, when given, is
    called during the extraction with lexbor's parse of exactly ``record.html``, unchanged by the walk
    (``default`` without a bs4 round trip: its input is ``record.html`` or, for a valid UTF-8 page, the same
    text as its UTF-8 bytes; and only where the compiled walk runs without CSS rules), for a caller to read
    more of the page after the extraction without parsing it again; not called otherwise.
    """
    from obelics.html.decode import DecodeError

    cfg = extract_config(profile)
    gm = record.general_metadata
    budget = _start_budget(cfg)
    budget.check_size(record.payload)
    with _interruptible(cfg, budget):
        try:
            if cfg.mode == "obelics-2023":
                text = _decode(record.payload, cfg, identified_charset=record.identified_charset)
            else:
                text = _default_input(record, cfg)
        except DecodeError:
            return WebDocument(general_metadata=gm, capture_date=record.capture_date)
        same_text = on_tree is not None and cfg.mode != "obelics-2023" and not cfg.bs4_roundtrip
        texts, images, metadata = _nodes(text, record.url, cfg, budget, on_tree if same_text else None)
    return WebDocument(texts=texts, images=images, metadata=metadata, general_metadata=gm,
                       capture_date=record.capture_date)


def extract_or_skip(stats: ReadStats, extract: Callable[..., WebDocument], *args, **kwargs) -> WebDocument | None:
    """``extract(*args, **kwargs)``, or ``None`` with the reason counted in ``stats.skipped``: the
    exception's ``skip_reason`` (``page_budget:<reason>``) or ``extract_error:<ExceptionType>``. One bad
    page never stops a run."""
    try:
        return extract(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - one bad page never stops a run
        stats.skip(getattr(e, "skip_reason", None) or f"extract_error:{type(e).__name__}")
        return None


READ_AHEAD_RECORDS = 64  # records read before they are extracted (1: one at a time)
READ_AHEAD_BYTES = 16 << 20  # ... or fewer, once their payloads hold this many bytes


def extract_records(records: Iterable[HtmlRecord], cfg: ExtractConfig, stats: ReadStats,
                    ahead: int | None = None, on_tree: Callable | None = None) -> Iterator[tuple[HtmlRecord, WebDocument]]:
    """``(record, document)`` of every record that :func:`extract_or_skip` extracts, in order.
    ``on_tree(record, tree)``: :func:`extract_record`'s ``on_tree`` of each record, called before its pair is yielded.

    The records are read ahead, up to ``ahead`` (:data:`READ_AHEAD_RECORDS`) or :data:`READ_AHEAD_BYTES` of
    payload at a time, then extracted one after the other: the reader (inflating, warcio) and the parser
    and walk each keep their code and tables in the processor's caches for a run of pages instead of
    evicting each other at every page (the same op, 1.63 -> 1.42 CPU ms a page on a realistic-corpus unit,
    one A/B run). Same documents, same counts. When the reader raises, the records it gave before are
    extracted and yielded first, then its exception propagates, as when each record was extracted as read.
    """
    ahead = READ_AHEAD_RECORDS if ahead is None else ahead
    it = iter(records)
    while True:
        batch, size, error = [], 0, None
        try:
            for record in it:
                batch.append(record)
                size += len(record.payload)
                if len(batch) >= ahead or size >= READ_AHEAD_BYTES:
                    break
        except Exception as e:  # noqa: BLE001 - re-raised below, after the records read before it
            error = e
        for record in batch:
            if on_tree is None:
                doc = extract_or_skip(stats, extract_record, record, cfg)
            else:
                doc = extract_or_skip(stats, extract_record, record, cfg, partial(on_tree, record))
            if doc is not None:
                yield record, doc
        if error is not None:
            raise error
        if not batch:
            return


def iter_extracted(path_or_url, profile: str | Path | Profile = "default", stats: ReadStats | None = None,
                   warc_config=None, on_tree: Callable | None = None) -> Iterator[tuple[HtmlRecord, WebDocument]]:
    """Every HTML response record of a WARC file or URL with its document: the one extract-and-skip loop.

    The reader counts what it skips (status, size, encoding) in ``stats``; a record whose extraction
    raises is skipped and counted (:func:`extract_or_skip`). Pages without nodes still
    yield a document (empty lists): later filters drop them. An input that cannot be read raises (the
    caller decides whether that stops it). ``on_tree``: :func:`extract_records`'s.
    """
    from obelics.warc import WarcConfig, iter_html_records

    prof = _profile(profile)
    cfg = extract_config(prof)
    wcfg = warc_config or prof.section("warc", WarcConfig)
    stats = stats if stats is not None else ReadStats()
    yield from extract_records(iter_html_records(path_or_url, wcfg, stats), cfg, stats, on_tree=on_tree)


def iter_warc_documents(path_or_url, profile: str | Path | Profile = "default",
                        stats: ReadStats | None = None, warc_config=None) -> Iterator[WebDocument]:
    """Yield a document for every HTML response record of a WARC file or URL (see :func:`iter_extracted`)."""
    for _record, doc in iter_extracted(path_or_url, profile, stats, warc_config):
        yield doc
