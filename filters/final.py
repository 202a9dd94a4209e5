"""Final processing of docs/reference.md §7.3 (the original's ``13_final_processing.py``), as a pure stage.

Node level, in this order:

1. images repeated within a document: the first node of each ``src`` is kept, later repeats dropped;
2. spam paragraphs: each text is split on ``\\n\\n``; a paragraph is kept iff its spam-word ratio
   (words in the spam list / words, the filters' word splitter) is *strictly below* the cutoff (0.12);
3. clean: drop ``""`` texts, merge adjacent texts with ``\\n\\n``;
4. runs of consecutive paragraphs equal (after strip) to the EOD token are reduced to the first;
5. if the last node is a text whose last paragraph is exactly the EOD token, that paragraph goes;
6. clean again.

Document level: dropped if every non-empty text is the EOD token (``only_eod``), or if it has no
non-empty text (``no_text``) or no image (``no_image``).

``obelics-2023`` uses the original spam list (with its ``newletter`` typo and ordinary words such as
``like``, ``might``, ``list``, ``content``); ``default`` uses :data:`filters.wordlists.SPAM_WORDS_FIXED`
(typo fixed, ordinary-prose words removed, docs/reference.md §9 #17).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from filters.base import FilterStats, Verdict
from filters.step import Step, run_step
from filters.text_metrics import get_words
from filters.wordlists import load_wordlist
from obelics.config import load_profile
from obelics.document import EOD_TOKEN, WebDocument


@dataclass
class FinalConfig:
    """The ``final`` profile section."""

    enabled: bool = True
    remove_repeated_images: bool = True
    # registry: the original list with its typo ("newletter") fixed and ordinary words (like, might, list)
    # removed (docs/reference.md §9 #17); obelics-2023: the original list
    spam_words: Literal["registry", "obelics-2023"] = "registry"
    spam_words_path: str | None = None
    spam_word_ratio_cutoff: float | None = 0.12   # a paragraph is kept iff its ratio < cutoff; null: off
    merge_eod_runs: bool = True
    remove_trailing_eod: bool = True
    drop_eod_only_documents: bool = True
    require_text_and_image: bool = True


def spam_word_ratio(text: str, spam_words) -> float:
    words = get_words(text)
    if not words:
        return 0.0
    return sum(1 for w in words if w in spam_words) / len(words)


Nodes = tuple[list, list, list]


def remove_repeated_images(texts, images, metadata, stats: FilterStats | None = None) -> Nodes:
    seen = set()
    out_t, out_i, out_m = [], [], []
    for t, i, m in zip(texts, images, metadata):
        if m:
            src = m.get("src", i)
            if src in seen:
                if stats is not None:
                    stats.drop("node", "repeated_image")
                continue
            seen.add(src)
        out_t.append(t)
        out_i.append(i)
        out_m.append(m)
    return out_t, out_i, out_m


def remove_spam_paragraphs(texts, spam_words, cutoff: float, stats: FilterStats | None = None) -> list:
    out = []
    for text in texts:
        if text is None:
            out.append(None)
            continue
        kept = []
        for p in text.split("\n\n"):
            if spam_word_ratio(p, spam_words) < cutoff:
                kept.append(p)
            elif stats is not None:
                stats.drop("paragraph", "spam_word_ratio")
        out.append("\n\n".join(kept))
    return out


def clean_nodes(texts, images, metadata) -> Nodes:
    """Drop ``""`` texts and merge adjacent texts with ``\\n\\n`` (the original's final cleaning)."""
    out_t, out_i, out_m = [], [], []
    previous_is_text = False
    for t, i, m in zip(texts, images, metadata):
        if t is not None:
            if t == "":
                continue
            if previous_is_text:
                out_t[-1] = out_t[-1] + "\n\n" + t
            else:
                out_t.append(t)
                out_i.append(None)
                out_m.append(None)
                previous_is_text = True
        elif i is not None:
            out_t.append(None)
            out_i.append(i)
            out_m.append(m)
            previous_is_text = False
    return out_t, out_i, out_m


def merge_eod_runs(texts, stats: FilterStats | None = None) -> list:
    out = []
    for text in texts:
        if text is None:
            out.append(None)
            continue
        kept, last_is_eod = [], False
        for p in text.split("\n\n"):
            is_eod = p.strip() == EOD_TOKEN
            if last_is_eod and is_eod:
                if stats is not None:
                    stats.drop("paragraph", "repeated_eod")
                continue
            last_is_eod = is_eod
            kept.append(p)
        out.append("\n\n".join(kept))
    return out


def remove_trailing_eod(texts, stats: FilterStats | None = None) -> list:
    texts = list(texts)
    if texts and texts[-1]:
        paras = texts[-1].split("\n\n")
        if paras and paras[-1] == EOD_TOKEN:
            paras = paras[:-1]
            if stats is not None:
                stats.drop("paragraph", "trailing_eod")
        texts[-1] = "\n\n".join(paras)
    return texts


class FinalProcessor:
    def __init__(self, cfg: FinalConfig | None = None):
        self.cfg = cfg or FinalConfig()
        self.spam_words = (load_wordlist("spam_words", self.cfg.spam_words, self.cfg.spam_words_path)
                           if self.cfg.spam_word_ratio_cutoff is not None else frozenset())

    def process_nodes(self, doc: WebDocument, stats: FilterStats | None = None) -> WebDocument:
        c = self.cfg
        t, i, m = list(doc.texts), list(doc.images), list(doc.metadata)
        if c.remove_repeated_images:
            t, i, m = remove_repeated_images(t, i, m, stats)
        if c.spam_word_ratio_cutoff is not None:
            t = remove_spam_paragraphs(t, self.spam_words, c.spam_word_ratio_cutoff, stats)
        t, i, m = clean_nodes(t, i, m)
        if c.merge_eod_runs:
            t = merge_eod_runs(t, stats)
        if c.remove_trailing_eod:
            t = remove_trailing_eod(t, stats)
        t, i, m = clean_nodes(t, i, m)
        return WebDocument(t, i, m, dict(doc.general_metadata), doc.doc_id, doc.capture_date)

    def document_verdict(self, doc: WebDocument) -> str | None:
        texts = [t for t in doc.texts if t]
        if self.cfg.drop_eod_only_documents and texts and all(t.strip() == EOD_TOKEN for t in texts):
            return "only_eod"
        if self.cfg.require_text_and_image:
            if not texts:
                return "no_text"
            if not any(x is not None for x in doc.images):
                return "no_image"
        return None


class FinalStep(Step):
    """docs/reference.md §7.3: node-level cleaning, then the document rules (only EOD, no text, no image)."""

    name = "final"
    section = "final"
    config = FinalConfig

    def setup(self, cfg: FinalConfig, profile) -> FinalProcessor:
        return FinalProcessor(cfg)

    def active(self, proc: FinalProcessor) -> bool:
        return proc.cfg.enabled

    def transform(self, doc, proc: FinalProcessor, prepared, tally: FilterStats) -> WebDocument:
        return proc.process_nodes(doc, tally)

    def verdict(self, doc, proc: FinalProcessor, prepared) -> Verdict:
        return proc.document_verdict(doc)


class CleanStep(Step):
    """The original's final cleaning (S13): drop empty texts, merge adjacent texts, then drop documents
    without text or without image (``clean:no_text_or_no_image``)."""

    name = "clean"

    def transform(self, doc, state, prepared, tally: FilterStats) -> WebDocument:
        texts, images, metadata = clean_nodes(doc.texts, doc.images, doc.metadata)
        return WebDocument(list(texts), list(images), list(metadata), doc.general_metadata, doc.doc_id,
                           doc.capture_date)

    def verdict(self, doc, state, prepared) -> Verdict:
        empty = doc.num_images == 0 or not any(t for t in doc.texts if t)
        return "clean:no_text_or_no_image" if empty else None


FINAL, CLEAN = FinalStep(), CleanStep()


def final_processing(docs, profile, stats: FilterStats, rejects: list | None = None) -> list[WebDocument]:
    """Apply docs/reference.md §7.3 to ``docs`` (:class:`FinalStep`); drops counted in ``stats`` (``rejects`` gets ``(doc, reason)``)."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    return run_step(FINAL, docs, profile, stats=stats, rejects=rejects)[0]
