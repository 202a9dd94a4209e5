"""Paragraph (node) and document text filters of docs/reference.md §5.3–§5.4, and the URL ban check.

Every check returns a :data:`filters.base.Verdict`: ``None`` keeps, a reason string drops. Reasons are
the original's check names (``number_words``, ``stopword_ratio``, ...); stages count them per level as
``paragraph:<reason>``, ``node:<reason>`` and ``document:<reason>``.

Comparisons follow the original: a ``*_min`` cutoff drops values strictly below it, a ``*_max`` cutoff
values strictly above it, word-count ranges are inclusive; a cutoff set to ``null`` switches the check
off. Checks run in the original order and the first failure decides.

``obelics-2023`` reproduces the original exactly (glued perplexity, 2,000-word document cap,
case-sensitive URL substrings, no re-check after dedup). ``default`` fixes docs/reference.md §9: no document
length cap, URL ban words matched case-insensitively on word boundaries, per-paragraph perplexity
(:mod:`filters.perplexity`), and :func:`recheck_documents` for documents that dedup changed.

The checks are those of :data:`filters.text_checks.TEXT_CHECKS`, in its order. Speed:
:meth:`TextFilter.paragraph_verdict` computes them with the plain functions (the reference). The chain
itself judges all paragraphs of a document at once (:meth:`TextFilter.paragraph_verdicts`: compiled
metrics of :mod:`filters.fast_metrics` when Numba is installed, the checks applied to all paragraphs as
NumPy columns), reuses the paragraphs' words at document level, and runs the model checks (language id,
then perplexity) for all documents of a batch after the other checks (:meth:`TextFilter.model_verdicts`).
Every value and verdict is the same as the reference's (tests/filters/test_fast_metrics.py).

The steps (:class:`filters.step.Step`) of this module: ``url_ban``, ``text_filters``, ``doc_filters``
(the image count once images are merged) and ``recheck``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np

from filters import fast_metrics, text_checks
from filters.base import FilterStats, Verdict
from filters.fast_metrics import (
    Words,
    char_stats,
    word_repetition_ids,
    word_repetition_many,
    words_many,
)
from filters.step import Step, run_step
from filters.text_metrics import (
    get_words,
    standardize_whitespace,
    word_repetition_ratio,
)
from filters.wordlists import load_wordlist
from obelics.config import load_profile
from obelics.document import EOD_TOKEN, WebDocument

log = logging.getLogger(__name__)


@dataclass
class NodeChecks:
    """Paragraph-level cutoffs (docs/reference.md §5.3); ``null`` switches a check off."""

    number_words_min: int | None = 4
    number_words_max: int | None = 1000
    character_repetition_length: int = 10
    # 0.2, not the original's 0.1 (obelics-2023 pins 0.1): on short paragraphs one repeated 10-gram ("the
    # whistleblower" twice) passes 0.1; on the content benchmark's clean text, 91% of the words 0.1 dropped were
    # article body, at 0.2 six paragraphs go (python -m bench.content_filters, BENCHMARKS.md issue 16)
    character_repetition_max: float | None = 0.2
    word_repetition_length: int = 5
    word_repetition_max: float | None = 0.1
    special_character_ratio_max: float | None = 0.3
    # the registry list is larger than the original's: 0.35 agrees best with the original list at 0.3
    stopword_ratio_min: float | None = 0.35
    flagged_word_ratio_max: float | None = 0.01
    punctuation_ratio_min: float | None = 0.001
    punctuation_min_tokens: int = 12          # fewer tokens: the paragraph passes the punctuation check
    common_word_ratio_min: float | None = 0.8  # applied only when a common-words list is configured


@dataclass
class DocChecks:
    """Document-level cutoffs (docs/reference.md §5.4); ``null`` switches a check off."""

    number_images_min: int | None = 1
    number_images_max: int | None = 30
    number_words_min: int | None = 10
    number_words_max: int | None = None       # default: long documents are not dropped (docs/reference.md §9 #12); 2023: 2000
    character_repetition_length: int = 10
    character_repetition_max: float | None = 0.1
    word_repetition_length: int = 5
    word_repetition_max: float | None = 0.2
    special_character_ratio_max: float | None = 0.275
    stopword_ratio_min: float | None = 0.4    # registry list (the original list: 0.35)
    flagged_word_ratio_max: float | None = 0.01
    punctuation_ratio_min: float | None = 0.03
    common_word_ratio_min: float | None = 0.9


@dataclass
class TextFiltersConfig:
    """The ``text_filters`` profile section."""

    enabled: bool = True
    node_level: bool = True
    doc_level: bool = True
    # Word lists: "registry" (maintained packages, corrected lists) or "obelics-2023" (the original lists).
    wordlists: Literal["registry", "obelics-2023"] = "registry"
    stopwords_path: str | None = None
    flagged_words_path: str | None = None
    common_words_path: str | None = None      # not public: the common-word checks run only with a list
    standardize_whitespace: bool = True
    node: NodeChecks = field(default_factory=NodeChecks)
    doc: DocChecks = field(default_factory=DocChecks)
    # Image-URL ban words: "word" (case-insensitive, word boundaries), "substring" (the original,
    # case-sensitive), or "off".
    url_ban: Literal["word", "substring", "off"] = "word"
    url_ban_words_path: str | None = None
    # Re-apply the document-level checks to documents that dedup / opt-out changed (the original never did).
    recheck_after_dedup: bool = True


# ---------------------------------------------------------------------------------------------------------
# URL ban words
# ---------------------------------------------------------------------------------------------------------

_URL_WORD_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


def url_words(url: str) -> list[str]:
    """Lower-cased words of a URL, split on non-letters and on camelCase humps (``siteLogo`` -> site, logo)."""
    found = _URL_WORD_RE.findall(url)  # ASCII letters and digits only: lowering them joined is lowering each
    return " ".join(found).lower().split(" ") if found else []


@lru_cache(maxsize=32)
def _ban_words(mode: str, source: str, path: str | None) -> frozenset[str]:
    return load_wordlist("url_ban_words", source, path)


@lru_cache(maxsize=32)
def _ban_table(words: frozenset[str]) -> dict[str, str]:
    """``word`` mode's look-up: every lower-cased ban word and its plural -> the ban word (a word that is both a
    ban word and another's plural is itself, as the check of the word before its singular found)."""
    lowered = {w.lower() for w in words}
    return {**{w + "s": w for w in lowered}, **{w: w for w in lowered}}


@lru_cache(maxsize=32)
def _in_order(words: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(words))


def url_is_banned(url: str | None, cfg: TextFiltersConfig | None = None) -> Verdict:
    """``"url_ban:<word>"`` if the image URL contains a ban word, else ``None``.

    ``substring`` (obelics-2023): case-sensitive substring, as the original (``silicon`` is hit by
    ``icon``). ``word``: a URL word (split on non-letters and camelCase, lower-cased) equal to a ban word
    or its plural, so ``/img/site-logo.png``, ``SiteLogo.png`` and ``icons/`` are hit but ``silicon``,
    ``Essex`` and ``buttonwood`` are not.
    """
    cfg = cfg or TextFiltersConfig()
    if not url or cfg.url_ban == "off":
        return None
    words = _ban_words(cfg.url_ban, cfg.wordlists, cfg.url_ban_words_path)
    if cfg.url_ban == "substring":
        for w in _in_order(words):
            if w in url:
                return f"url_ban:{w}"
        return None
    table = _ban_table(words)
    for w in url_words(url):
        hit = table.get(w)
        if hit is not None:
            return f"url_ban:{hit}"
    return None


# ---------------------------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Lists:
    stopwords: frozenset[str]
    flagged: frozenset[str]
    common: frozenset[str] | None

    def by_vocabulary(self) -> dict[str, frozenset[str] | None]:
        """The lists by the vocabulary names of :data:`filters.text_checks.TEXT_CHECKS`."""
        return {"stop": self.stopwords, "flagged": self.flagged, "common": self.common}


def _load_lists(cfg: TextFiltersConfig) -> _Lists:
    common = None
    if cfg.common_words_path:
        common = load_wordlist("common_words", cfg.wordlists, cfg.common_words_path)
    return _Lists(
        stopwords=load_wordlist("stopwords", cfg.wordlists, cfg.stopwords_path),
        flagged=load_wordlist("flagged_words", cfg.wordlists, cfg.flagged_words_path),
        common=common,
    )


@dataclass
class _Batch:
    """Words of many paragraphs computed at once (:meth:`TextFilter.paragraph_verdicts`)."""

    words: Words


class _DocumentWords:
    """The words of a document's full text, from its paragraphs' batch when all are there (ids and
    vocabulary counts already known), else from ``get_words``; the same values either way."""

    def __init__(self, chain: TextFilter, full: str):
        self.chain = chain
        memo = chain._words_memo
        entries = [memo.get(p) for p in full.split("\n\n")]
        batch = entries[0][0] if entries and isinstance(entries[0], tuple) else None
        if batch is not None and all(isinstance(e, tuple) and e[0] is batch for e in entries):
            self.batch, self.index = batch, [e[1] for e in entries]
            counts = batch.words.counts
            self.n = sum(counts[i] for i in self.index)
        else:
            self.batch = None
            self.words = []
            for p, e in zip(full.split("\n\n"), entries):
                self.words.extend(e if isinstance(e, list) else get_words(p))
            self.n = len(self.words)

    def repetition(self, n: int) -> float:
        if self.batch is None:
            if self.chain.fast:
                return word_repetition_many([self.words], n)[0]
            return word_repetition_ratio(self.words, n)
        w = self.batch.words
        ids = np.concatenate([w.ids[w.offsets[i]:w.offsets[i + 1]] for i in self.index])
        return word_repetition_ids(ids, [self.n], n)[0]

    def count(self, name: str, vocabulary) -> int:
        """How many of the words are in ``vocabulary`` (named ``name`` in the batch)."""
        if self.batch is None:
            return sum(map(vocabulary.__contains__, self.words))
        counts = self.batch.words.in_vocab[name]
        return sum(counts[i] for i in self.index)

    def ratio(self, name: str, vocabulary) -> float:
        """= ``word_ratio(words, vocabulary)``."""
        return self.count(name, vocabulary) / self.n if self.n else 0.0


class _VocabularyCounts(dict):
    """``{vocabulary: [words of the document in it]}``, each counted when first read."""

    def __init__(self, words: _DocumentWords, vocabularies: dict):
        super().__init__()
        self.words, self.vocabularies = words, vocabularies

    def __missing__(self, name: str) -> list[int]:
        if self.vocabularies.get(name) is None:
            raise KeyError(name)
        value = self[name] = [self.words.count(name, self.vocabularies[name])]
        return value


class _OneDocument:
    """A document's word counts in the shape :data:`filters.text_checks.COLUMNS` reads (one row)."""

    __slots__ = ("counts", "in_vocab")

    def __init__(self, words: _DocumentWords, vocabularies: dict):
        self.counts = [words.n]
        self.in_vocab = _VocabularyCounts(words, vocabularies)


def _batch_rows(texts: list[str], words, c) -> text_checks.Rows:
    """The compiled kernels' rows of ``texts`` (``words``: their :func:`words_many`) under the cutoffs ``c``;
    character and word-repetition statistics are computed when a check first needs them."""
    return text_checks.Rows(len(texts), words, lambda: char_stats(texts, c.character_repetition_length),
                            lambda: word_repetition_ids(words.ids, words.counts, c.word_repetition_length), c)


class TextFilter:
    """Paragraph and document verdicts for one profile, with its word lists and models loaded once.

    The text checks are those of :data:`filters.text_checks.TEXT_CHECKS`; ``langid`` and ``perplexity``
    are optional scorers (:class:`filters.langid.LanguageFilter`, :class:`filters.perplexity.PerplexityFilter`)
    run after them; ``None`` switches those checks off.
    """

    def __init__(self, cfg: TextFiltersConfig | None = None, langid=None, perplexity=None,
                 fast: bool | None = None):
        self.cfg = cfg or TextFiltersConfig()
        self.lists = _load_lists(self.cfg)
        self.langid = langid
        self.perplexity = perplexity
        vocabularies = self.lists.by_vocabulary()
        self._vocab_lists = vocabularies
        self.node_plan = text_checks.plan(self.cfg.node, vocabularies, "paragraph")
        self.doc_plan = text_checks.plan(self.cfg.doc, vocabularies, "document")
        # the compiled per-character metrics (filters.fast_metrics) when Numba is installed; the same values
        self.fast = fast_metrics.available() if fast is None else fast
        if self.fast:
            self._vocabularies = fast_metrics.Vocabularies({k: v for k, v in vocabularies.items() if v is not None})
        # words of the paragraphs judged by the last filter_nodes call (a list, or (batch, index)), reused
        # by document_verdict (document words = the paragraphs' words in order: "\n" splits words anyway)
        self._words_memo: dict[str, list[str] | tuple[_Batch, int]] = {}

    @classmethod
    def from_profile(cls, profile) -> TextFilter:
        """Build the chain of a :class:`obelics.config.Profile` (text filters + langid + perplexity)."""
        from filters.langid import LangIdConfig, LanguageFilter
        from filters.perplexity import PerplexityConfig, PerplexityFilter

        cfg = profile.section("text_filters", TextFiltersConfig)
        lcfg = profile.section("langid", LangIdConfig)
        pcfg = profile.section("perplexity", PerplexityConfig)
        langid = LanguageFilter(lcfg) if (lcfg.node_level or lcfg.doc_level) else None
        ppl = PerplexityFilter(pcfg) if (pcfg.node_level or pcfg.doc_level) else None
        return cls(cfg, langid, ppl)

    # -- paragraphs ------------------------------------------------------------------------------
    def _paragraph_models(self, text: str) -> Verdict:
        """The model checks of a paragraph that passed the text checks (language id, then perplexity)."""
        if self.langid is not None and self.langid.cfg.node_level:
            v = self.langid.verdict(text)
            if v:
                return v
        if self.perplexity is not None and self.perplexity.cfg.node_level:
            v = self.perplexity.paragraph_verdict(text)
            if v:
                return v
        return None

    def paragraph_verdict(self, text: str) -> Verdict:
        """Reason the paragraph fails (first failing check of docs/reference.md §5.3), or ``None``; computed with the plain
        functions of :mod:`filters.text_metrics` (:meth:`paragraph_verdicts` gives the same verdicts)."""
        words = get_words(text)
        reason = text_checks.reference_verdict(text, words, self.node_plan, self.cfg.node, self._vocab_lists)
        if reason is None:
            reason = self._paragraph_models(text)
        if reason is None:
            self._words_memo[text] = words
        return reason

    def paragraph_verdicts(self, paragraphs: list[str]) -> list[Verdict]:
        """:meth:`paragraph_verdict` of every paragraph (``None`` for the end-of-document token).

        With Numba installed, every metric of all of them is computed in one compiled pass each
        (:mod:`filters.fast_metrics`) and the checks applied to all at once, with the same values.
        """
        if not (self.fast and paragraphs):
            verdict = self.paragraph_verdict
            return [None if p == EOD_TOKEN else verdict(p) for p in paragraphs]
        c = self.cfg.node
        words = words_many(paragraphs, self._vocabularies)
        batch = _Batch(words)
        reasons = _batch_rows(paragraphs, words, c).verdicts(self.node_plan)
        memo = self._words_memo
        for i, p in enumerate(paragraphs):  # for document_verdict: a kept paragraph's words and ids
            memo[p] = (batch, i)
        models = self._paragraph_models
        return [None if p == EOD_TOKEN else (r or models(p)) for p, r in zip(paragraphs, reasons)]

    def filter_text(self, text: str, stats: FilterStats | None = None,
                    decisions: list | None = None) -> str | None:
        """The text node after paragraph filtering (kept paragraphs re-joined), or ``None`` if none is left.

        ``decisions`` (optional) receives ``(paragraph, reason)`` for every paragraph.
        """
        paras = self._paragraphs(text)
        return self._keep(paras, self.paragraph_verdicts(paras), stats, decisions)

    def _paragraphs(self, text: str) -> list[str]:
        if self.cfg.standardize_whitespace:
            text = standardize_whitespace(text)
        return text.split("\n\n")

    @staticmethod
    def _keep(paras: list[str], reasons: list[Verdict], stats: FilterStats | None,
              decisions: list | None = None) -> str | None:
        kept = [para for para, reason in zip(paras, reasons) if reason is None]
        if stats is not None:
            stats.seen("paragraph", len(paras))
            stats.kept("paragraph", len(kept))
            if len(kept) < len(paras):
                for reason, n in Counter(reasons).items():
                    if reason:
                        stats.drop("paragraph", reason, n)
        if decisions is not None:
            decisions.extend(zip(paras, reasons))
        return "\n\n".join(kept) if kept else None

    def filter_nodes(self, doc: WebDocument, stats: FilterStats | None = None) -> WebDocument:
        """Node level (docs/reference.md §5.3, text part): filter every text node's paragraphs; drop emptied and null nodes.

        The paragraphs of all text nodes are judged in one :meth:`paragraph_verdicts` call.
        """
        self._words_memo.clear()
        nodes = []                      # (text node's paragraphs or None, image, metadata)
        flat: list[str] = []
        for t, i, m in zip(doc.texts, doc.images, doc.metadata):
            if i is not None:
                nodes.append((None, i, m))
            elif t is None:
                if stats is not None:
                    stats.drop("node", "empty_node")
            else:
                paras = self._paragraphs(t)
                nodes.append((paras, None, None))
                flat.extend(paras)
        reasons = self.paragraph_verdicts(flat)
        texts, images, metadata = [], [], []
        pos = 0
        for paras, i, m in nodes:
            if paras is None:
                texts.append(None)
                images.append(i)
                metadata.append(m)
                continue
            if stats is not None:
                stats.seen("node")
            new = self._keep(paras, reasons[pos:pos + len(paras)], stats)
            pos += len(paras)
            if new is None:
                if stats is not None:
                    stats.drop("node", "no_paragraph_left")
                continue
            if stats is not None:
                stats.kept("node")
            texts.append(new)
            images.append(None)
            metadata.append(None)
        return WebDocument(texts, images, metadata, dict(doc.general_metadata), doc.doc_id, doc.capture_date)

    # -- documents -------------------------------------------------------------------------------
    def image_count_verdict(self, doc: WebDocument) -> Verdict:
        """The first document check alone: the number of images."""
        c = self.cfg.doc
        n_img = sum(1 for i in doc.images if i is not None)
        if text_checks.fails(n_img, c.number_images_min, c.number_images_max):
            return "number_images"
        return None

    def text_verdict(self, texts: list[str]) -> Verdict:
        """The document's text checks (docs/reference.md §5.4, :data:`filters.text_checks.TEXT_CHECKS`) over its non-empty
        ``texts``: the first failing one, or None."""
        c = self.cfg.doc
        full = "\n\n".join(texts)
        words = _DocumentWords(self, full)
        if not self.fast:
            all_words = words.words if words.batch is None else get_words(full)
            return text_checks.reference_verdict(full, all_words, self.doc_plan, c, self._vocab_lists)
        rows = text_checks.Rows(1, _OneDocument(words, self._vocab_lists),
                                lambda: char_stats([full], c.character_repetition_length),
                                lambda: [words.repetition(c.word_repetition_length)], c)
        return rows.verdicts(self.doc_plan)[0]

    def document_verdict(self, doc: WebDocument, models: bool = True) -> Verdict:
        """Reason the document fails (first failing check of docs/reference.md §5.4), or ``None``.

        ``models=False`` stops before the checks that run models (language id, perplexity): see
        :meth:`model_verdicts`.
        """
        v = self.image_count_verdict(doc)
        if v:
            return v
        texts = [t for t in doc.texts if t]
        v = self.text_verdict(texts)
        if v:
            return v
        return self.model_verdicts([texts])[0] if models else None

    @property
    def runs_models(self) -> bool:
        """Whether the document level has checks that run models (language id, perplexity)."""
        return ((self.langid is not None and self.langid.cfg.doc_level)
                or (self.perplexity is not None and self.perplexity.cfg.doc_level))

    def model_verdicts(self, documents: list[list[str]]) -> list[Verdict]:
        """The last document checks (language id, then perplexity) of documents given as their non-empty
        texts; each check runs over all documents before the next, so each model's tables stay in the
        processor's cache (the verdicts are those of running them document by document)."""
        reasons: list[Verdict] = [None] * len(documents)
        if self.langid is not None and self.langid.cfg.doc_level:  # the batch through fastText's C++ predict
            reasons = self.langid.verdicts(["\n\n".join(texts) for texts in documents])
        if self.perplexity is not None and self.perplexity.cfg.doc_level:  # those language id kept, in one batch
            todo = [k for k, r in enumerate(reasons) if r is None]
            for k, v in zip(todo, self.perplexity.document_verdicts([documents[k] for k in todo])):
                reasons[k] = v
        return reasons

    def document_metrics(self, docs: list[WebDocument], sample: int = 500) -> dict:
        """Document-level values of every text check for (a deterministic sample of at most ``sample`` of)
        ``docs``, and the cutoffs, in the funnel's ``metrics``/``thresholds`` shape for the report's
        histograms. With Numba, the compiled kernels compute all of them at once (the same values as the
        plain functions, tests/filters/test_text_filters.py; ~5x less CPU)."""
        c = self.cfg.doc
        checks = [chk for chk in text_checks.TEXT_CHECKS if "document" in chk.levels
                  and (not chk.vocabulary or self._vocab_lists.get(chk.vocabulary) is not None)]
        step = max(1, -(-len(docs) // sample))
        fulls = [full for d in docs[::step] if (full := "\n\n".join(t for t in d.texts if t))]
        if self.fast and fulls:
            rows = _batch_rows(fulls, words_many(fulls, self._vocabularies), c)
            values = {chk.name: [float(v) if chk.name != "number_words" else int(v)
                                 for v in text_checks.COLUMNS[chk.name](rows)] for chk in checks}
        else:
            values = {chk.name: [] for chk in checks}
            for full in fulls:
                for name, v in text_checks.reference_values(full, get_words(full), checks, c,
                                                            self._vocab_lists).items():
                    values[name].append(v)
        stage = "text_filters (document level, before filtering)"
        thresholds = {f"{stage}.{chk.name}": {k: v for k, v in zip(("min", "max"), chk.cutoffs(c)) if v is not None}
                      for chk in checks}
        return {"metrics": {stage: values}, "thresholds": thresholds}


# ---------------------------------------------------------------------------------------------------------
# Stage functions
# ---------------------------------------------------------------------------------------------------------

_CHAINS: dict[str, TextFilter] = {}


def text_filter_for(profile) -> TextFilter:
    """The :class:`TextFilter` of a profile (cached per profile content)."""
    import json

    key = json.dumps([profile.name, profile.data.get("text_filters"), profile.data.get("langid"),
                      profile.data.get("perplexity")], sort_keys=True, default=str)
    chain = _CHAINS.get(key)
    if chain is None:
        chain = _CHAINS[key] = TextFilter.from_profile(profile)
    return chain


METRIC_SAMPLE_DOCS = 500  # documents per unit whose metrics go to the report's histograms


class TextFiltersStep(Step):
    """Node level then document level text checks (+ language id and perplexity per the profile).

    The image count (first document check) does not depend on the text: a document that fails it is
    dropped before its paragraphs are filtered (same decision, less work; its paragraphs are then not
    counted). The model checks run last, for all documents that passed the others at once.
    """

    name = "text_filters"
    section = "text_filters"
    config = TextFiltersConfig

    def setup(self, cfg, profile) -> TextFilter:
        return text_filter_for(profile)

    def active(self, chain: TextFilter) -> bool:
        return chain.cfg.enabled

    def metrics(self, docs, chain: TextFilter) -> dict:
        return chain.document_metrics(docs, METRIC_SAMPLE_DOCS)

    def precheck(self, doc, chain: TextFilter, prepared) -> Verdict:
        return chain.image_count_verdict(doc) if chain.cfg.doc_level else None

    def transform(self, doc, chain: TextFilter, prepared, tally: FilterStats) -> WebDocument:
        return chain.filter_nodes(doc, tally) if chain.cfg.node_level else doc

    def verdict(self, doc, chain: TextFilter, prepared) -> Verdict:
        return chain.document_verdict(doc, models=False) if chain.cfg.doc_level else None

    def late_verdicts(self, docs, chain: TextFilter) -> list[Verdict] | None:
        if not (chain.cfg.doc_level and chain.runs_models):
            return None
        return chain.model_verdicts([[t for t in d.texts if t] for d in docs])


class DocFiltersStep(Step):
    """The document image-count rule again once images are merged and filtered (failed downloads count)."""

    name = "doc_filters"
    section = "text_filters"
    config = TextFiltersConfig

    def setup(self, cfg, profile) -> TextFilter:
        return text_filter_for(profile)

    def active(self, chain: TextFilter) -> bool:
        return True  # switched off, it still counts every document as kept

    def verdict(self, doc, chain: TextFilter, prepared) -> Verdict:
        return chain.image_count_verdict(doc) if chain.cfg.enabled and chain.cfg.doc_level else None


class RecheckStep(Step):
    """All document-level checks again after dedup changed documents (reasons ``recheck:<check>``).

    Inactive when ``text_filters.recheck_after_dedup`` is false (``obelics-2023``: the original never
    re-checked, so final documents can have fewer than 10 words). The model checks run last, for all
    documents the other checks kept at once (the verdicts of :meth:`TextFilter.document_verdict`).
    """

    name = "recheck"
    section = "text_filters"
    config = TextFiltersConfig

    def setup(self, cfg, profile) -> TextFilter:
        return text_filter_for(profile)

    def active(self, chain: TextFilter) -> bool:
        return chain.cfg.enabled and chain.cfg.recheck_after_dedup

    def verdict(self, doc, chain: TextFilter, prepared) -> Verdict:
        reason = chain.document_verdict(doc, models=False)
        return f"recheck:{reason}" if reason else None

    def late_verdicts(self, docs, chain: TextFilter) -> list[Verdict] | None:
        """The model checks of the documents the other checks kept, in one batch (as the text filters)."""
        if not chain.runs_models:
            return None
        reasons = chain.model_verdicts([[t for t in d.texts if t] for d in docs])
        return [f"recheck:{r}" if r else None for r in reasons]


class UrlBanStep(Step):
    """Drop image nodes whose URL has a banned word (docs/reference.md §4.4; default: word boundaries)."""

    name = "url_ban"
    section = "text_filters"
    config = TextFiltersConfig
    level = "image"
    count_documents = False

    def active(self, cfg) -> bool:
        return True  # "off" still counts every image as kept

    def prepare(self, docs, cfg: TextFiltersConfig, inputs) -> dict[str, Verdict]:
        """The verdict of every distinct image URL of the chunk, each judged once: a site's logo, buttons and
        icons recur on most of its pages (the bench corpus: 1,009 distinct of 3,568 image nodes in a unit)."""
        return {url: url_is_banned(url, cfg) for url in {u for d in docs for u in d.images if u}}

    def image_verdict(self, url, meta, cfg: TextFiltersConfig, prepared: dict[str, Verdict]) -> Verdict:
        return prepared[url] if url in prepared else url_is_banned(url, cfg)


TEXT_FILTERS, DOC_FILTERS, RECHECK, URL_BAN = TextFiltersStep(), DocFiltersStep(), RecheckStep(), UrlBanStep()


def filter_documents(docs, profile, stats: FilterStats, rejects: list | None = None) -> list[WebDocument]:
    """Node-level then document-level text filters (+ language id and perplexity per the profile).

    Returns the kept documents (their text nodes filtered). Drops are counted in ``stats`` by level
    and reason; ``rejects`` (optional) receives ``(document, "document:<reason>")`` for each dropped one.
    """
    profile = load_profile(profile) if isinstance(profile, str) else profile
    chain = text_filter_for(profile)
    return run_step(TEXT_FILTERS, docs, state=chain, stats=stats, rejects=rejects, metrics=False)[0]


def recheck_documents(docs, profile, stats: FilterStats, rejects: list | None = None) -> list[WebDocument]:
    """Re-apply the document-level checks to documents that a later step (dedup, opt-out) changed
    (:class:`RecheckStep`)."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    return run_step(RECHECK, docs, state=text_filter_for(profile), stats=stats, rejects=rejects)[0]
