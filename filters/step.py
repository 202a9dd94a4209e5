"""The step interface every filter implements, and the one runner that applies any of them.

A :class:`Step` is a filter as the pipeline sees it: its ``name`` (the funnel's stage name), the
profile ``section`` it reads and the typed ``config`` dataclass that section is validated into, the
``level`` it acts on, and its verdict: ``None`` keeps, a short reason string drops
(:data:`filters.base.Verdict`).

- ``level = "document"``: :meth:`Step.verdict` judges a whole document. A step may first edit a
  document's nodes (:meth:`Step.transform`, e.g. drop failing paragraphs; it counts what it drops at
  node/paragraph level in the tally it is given), may reject before that edit (:meth:`Step.precheck`,
  cheap checks that make the edit pointless), and may leave its costliest checks for all surviving
  documents at once (:meth:`Step.late_verdicts`, model checks kept hot in cache).
- ``level = "image"``: :meth:`Step.image_verdict` judges one image node (its URL and metadata); failing
  nodes are removed. :meth:`Step.document_verdict_from_images` may drop the whole document from its
  images' verdicts (NSFW ``action: document``).

Work shared by many items (scoring images, checking URLs) goes in :meth:`Step.prepare`, called once
per chunk of ``chunk_docs`` documents with the inputs the caller provides (``needs``: e.g.
``image_bytes``, ``image_headers``). Models and word lists are built once per profile in
:meth:`Step.setup`.

:func:`run_step` is the only place that counts items in and out, drops by reason and level
(:class:`filters.base.FilterStats`), diverts rejected documents, and returns the step's report metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from filters.base import FilterStats, Verdict, without_nodes
from obelics.config import load_profile
from obelics.document import WebDocument

Inputs = Mapping[str, Callable[..., Any]]


class Step:
    """A filter step (subclass it; see the module docstring). Class attributes describe it."""

    name: ClassVar[str] = ""                 # the funnel's stage name (stats.json)
    section: ClassVar[str | None] = None     # the profile section it reads
    config: ClassVar[type | None] = None     # the dataclass that section is validated into
    level: ClassVar[str] = "document"        # "document" or "image"
    count_documents: ClassVar[bool] = True   # image level: also count documents in and out
    chunk_docs: ClassVar[int | None] = None  # documents prepared together (bounds memory); None: all
    needs: ClassVar[tuple[str, ...]] = ()    # inputs prepare() reads (the pipeline provides them)

    # -- setup --------------------------------------------------------------------------------------
    def config_of(self, profile) -> Any:
        """The step's typed config from ``profile`` (None for a step without a section)."""
        if self.section is None or self.config is None:
            return None
        return profile.section(self.section, self.config)

    def setup(self, cfg, profile) -> Any:
        """State built once per profile (word lists, models); the config itself by default."""
        return cfg

    def active(self, state) -> bool:
        """Whether the step runs; an inactive step passes documents through (counted as kept)."""
        return getattr(state, "enabled", True)

    def prepare(self, docs: list[WebDocument], state, inputs: Inputs) -> Any:
        """Work shared by the documents of one chunk (scores, URL verdicts); passed to the verdicts."""
        return None

    def finish(self, state, prepared, tally: FilterStats) -> None:
        """After a chunk: record events of the shared work (errors kept by policy, ...)."""

    def metrics(self, docs: list[WebDocument], state) -> dict | None:
        """Values for the report's histograms (``{"metrics": ..., "thresholds": ...}``), or None."""
        return None

    # -- document level -----------------------------------------------------------------------------
    def precheck(self, doc: WebDocument, state, prepared) -> Verdict:
        """A check before :meth:`transform` (a failing document is not transformed)."""
        return None

    def transform(self, doc: WebDocument, state, prepared, tally: FilterStats) -> WebDocument:
        """The document after node-level edits; drops below document level are counted in ``tally``."""
        return doc

    def verdict(self, doc: WebDocument, state, prepared) -> Verdict:
        """Reason the (transformed) document is dropped, or None."""
        return None

    def late_verdicts(self, docs: list[WebDocument], state) -> list[Verdict] | None:
        """Verdicts for every document that passed :meth:`verdict`, all at once; None: no late checks."""
        return None

    # -- image level --------------------------------------------------------------------------------
    def image_verdict(self, url: str, meta, state, prepared) -> Verdict | tuple[Verdict, Any]:
        """Reason the image node is dropped, or None; or ``(verdict, new metadata)`` to rewrite it."""
        return None

    def document_verdict_from_images(self, reasons: list[Verdict], state) -> Verdict:
        """Reason to drop the whole document given its images' verdicts, or None."""
        return None


# -- state cache: one per (step, profile section content) -------------------------------------------------
_STATES: dict[tuple, Any] = {}


def step_state(step: Step, profile) -> Any:
    """``step.setup`` of ``profile``, cached per step and profile content (models and lists load once)."""
    key = (type(step), profile.name, json.dumps(profile.data, sort_keys=True, default=str))
    if key not in _STATES:
        if len(_STATES) > 64:
            _STATES.clear()
        _STATES[key] = step.setup(step.config_of(profile), profile)
    return _STATES[key]


def run_step(step: Step, docs, profile=None, *, state=None, inputs: Inputs | None = None,
             stats: FilterStats | None = None, rejects: list | None = None,
             metrics: bool = True) -> tuple[list, FilterStats, dict | None]:
    """Apply ``step`` to ``docs``: returns (kept documents, the step's stats, its report metrics or None).

    ``state`` (optional) replaces ``step.setup`` of ``profile`` (a test's classifier, a given checker).
    Dropped documents go to ``rejects`` as ``(document, "document:<reason>")``. ``metrics=False`` skips
    the report metrics (a caller that does not publish them).
    """
    docs = list(docs)
    stats = stats if stats is not None else FilterStats(step.name)
    if state is None:
        if profile is None or isinstance(profile, str):
            profile = load_profile(profile or "default")
        state = step_state(step, profile)
    values = step.metrics(docs, state) if metrics else None
    if not step.active(state):
        return stats.pass_through(docs), stats, values
    inputs = inputs or {}
    size = step.chunk_docs or max(len(docs), 1)
    out: list = []
    for start in range(0, len(docs), size):
        chunk = docs[start:start + size]
        prepared = step.prepare(chunk, state, inputs)
        if step.level == "image":
            _images(step, chunk, state, prepared, stats, out, rejects)
        else:
            _documents(step, chunk, state, prepared, stats, out, rejects)
        step.finish(state, prepared, stats)
    return out, stats, values


def _documents(step: Step, docs, state, prepared, stats: FilterStats, out: list, rejects) -> None:
    decided: list[list] = []    # [document after transform, reason], in input order
    waiting: list[int] = []     # documents that passed verdict(): judged again by late_verdicts()
    for doc in docs:
        stats.seen("document")
        reason = step.precheck(doc, state, prepared)
        if reason is None:
            doc = step.transform(doc, state, prepared, stats)
            reason = step.verdict(doc, state, prepared)
            if reason is None:
                waiting.append(len(decided))
        decided.append([doc, reason])
    if waiting:
        late = step.late_verdicts([decided[k][0] for k in waiting], state)
        for k, reason in zip(waiting, late or ()):
            decided[k][1] = reason
    for doc, reason in decided:
        stats.decide(doc, reason, out, rejects)


def _images(step: Step, docs, state, prepared, stats: FilterStats, out: list, rejects) -> None:
    for doc in docs:
        if step.count_documents:
            stats.seen("document")
        drop, reasons, metadata = [], [], None
        for k, (url, meta) in enumerate(zip(doc.images, doc.metadata)):
            if url is None:
                continue
            stats.seen("image")
            reason = step.image_verdict(url, meta, state, prepared)
            if isinstance(reason, tuple):
                reason, new = reason
                metadata = metadata if metadata is not None else list(doc.metadata)
                metadata[k] = new
            reasons.append(reason)
            if reason:
                stats.drop("image", reason)
                drop.append(k)
            else:
                stats.kept("image")
        if step.count_documents:
            doc_reason = step.document_verdict_from_images(reasons, state)
            if doc_reason:
                stats.drop("document", doc_reason)
                if rejects is not None:
                    rejects.append((doc, f"document:{doc_reason}"))
                continue
        out.append(without_nodes(doc, drop, metadata) if (drop or metadata is not None) else doc)
        if step.count_documents:
            stats.kept("document")
