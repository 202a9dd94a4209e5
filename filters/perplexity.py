"""Perplexity with KenLM + SentencePiece, normalised as docs/reference.md §5.2.

Scoring: normalise (remove non-printing characters 0-31 and 127-159, strip, standardise whitespace,
digits -> 0, the CCNet UNICODE_PUNCTUATION table; case kept), tokenise with SentencePiece
(``encode_as_pieces``, joined by spaces), then over lines: ``sum(kenlm.score(line))`` (log10, BOS/EOS)
and ``sum(#pieces + 1)``; PPL = ``10 ** (-sum_score / sum_len)``, rounded to 1 decimal.

Modes (profile ``perplexity.mode``):

- ``glued`` (obelics-2023): the whole document is normalised at once, so the non-printing removal
  deletes every ``\\n`` and the paragraphs are glued into one line (the original's defect, docs/reference.md §9 #12);
- ``paragraph`` (default): each paragraph is normalised and scored as its own line, and the document
  perplexity aggregates the lines (same formula, so a one-paragraph document scores the same).

Models (``perplexity.model``): ``wikipedia-en`` is the original edugp/kenlm Wikipedia model, found in
the resource cache after ``obelics resources fetch``; ``builtin-en`` is the small model built offline
from the prose shipped with Python (:mod:`filters.lm_build`); ``auto`` takes the first available of
the two; ``custom`` uses ``kenlm_path`` + ``sp_path``. Thresholds are per model (``max_perplexity``),
because perplexities of different models are not comparable.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from filters import fast_metrics, lm_build
from filters.base import Verdict
from filters.normalize import normalize, normalize_each
from filters.resources import ResourceMissing, kenlm_paths

__all__ = ["KenlmScorer", "PerplexityConfig", "PerplexityFilter", "get_scorer", "normalize", "resolve_model"]

log = logging.getLogger(__name__)

@dataclass
class PerplexityConfig:
    """The ``perplexity`` profile section."""

    node_level: bool = False
    doc_level: bool = True
    # paragraph: each paragraph scored as its own line; glued: the original deleted \n first (docs/reference.md §9 #12)
    mode: Literal["paragraph", "glued"] = "paragraph"
    # auto: wikipedia-en (edugp/kenlm, fetched) if present, else builtin-en (built offline)
    model: Literal["auto", "wikipedia-en", "builtin-en", "custom"] = "auto"
    kenlm_path: str | None = None
    sp_path: str | None = None
    # Maximum perplexity per model name (a text above it is dropped): perplexities of different models are
    # not comparable. wikipedia-en: the original's 1500; builtin-en calibrated on the shared pages (English
    # 240-683, German prose ~1,100).
    max_perplexity: dict[str, float] = field(default_factory=lambda: {
        "wikipedia-en": 1500.0, "builtin-en": 1000.0, "custom": 1500.0})
    builtin_dir: str | None = None      # where builtin-en is built (default build/resources/builtin-en)


class KenlmScorer:
    """A KenLM model with its SentencePiece tokenizer."""

    def __init__(self, kenlm_path: str | Path, sp_path: str | Path, name: str = "custom"):
        import kenlm
        import sentencepiece as spm

        self.name = name
        self.model = kenlm.Model(str(kenlm_path))
        self.sp = spm.SentencePieceProcessor()
        self.sp.load(str(sp_path))

    def score_lines(self, lines: list[str]) -> tuple[float, int]:
        """(sum of log10 scores, sum of #pieces + 1) over already-normalised lines."""
        total, length = 0.0, 0
        score, encode = self.model.score, self.sp.encode
        for line in lines:
            pieces = encode(line, out_type=str)  # = encode_as_pieces; one line at a time: the batch call
            total += score(" ".join(pieces))     # starts a thread pool per call, slower here
            length += len(pieces) + 1
        return total, length

    def perplexities(self, texts: list[str], mode: str = "glued") -> list[float]:
        """``[perplexity(t, mode) for t in texts]`` for a batch: every distinct paragraph (line) of the batch is
        normalised, tokenised and scored once (one compiled normalisation pass, one SentencePiece call on one
        thread; boilerplate repeated across a site's pages is common), then each text sums its lines' scores
        in its own order, so every sum and value is the one :meth:`perplexity` computes."""
        if not texts:
            return []
        norm = fast_metrics.normalize_many if fast_metrics.available() else normalize_each
        parts = [[t] if mode == "glued" else t.split("\n\n") for t in texts]
        distinct = list(dict.fromkeys(p for ps in parts for p in ps))
        normed = dict(zip(distinct, norm(distinct)))
        lines_of = []
        for ps in parts:
            lines = [normed[p] for p in ps]
            if mode != "glued":
                lines = [n for n in lines if n] or [""]
            lines_of.append(lines)
        unique = list(dict.fromkeys(line for lines in lines_of for line in lines))
        score = self.model.score
        scored = {line: (score(" ".join(p)), len(p) + 1)
                  for line, p in zip(unique, self.sp.encode(unique, out_type=str, num_threads=1))}
        out = []
        for lines in lines_of:
            total, length = 0.0, 0
            for line in lines:
                s, n = scored[line]
                total += s
                length += n
            out.append(round(10.0 ** (-total / length), 1))
        return out

    def perplexity(self, text: str, mode: str = "glued") -> float:
        """Perplexity of ``text``: glued (one normalised line) or one line per ``\\n\\n`` paragraph.

        With Numba installed the normalisation runs compiled (:func:`filters.fast_metrics.normalize_many`,
        the same strings as :func:`normalize`).
        """
        norm = fast_metrics.normalize_many if fast_metrics.available() else normalize_each
        if mode == "glued":
            lines = norm([text])
        else:
            lines = [n for n in norm(text.split("\n\n")) if n]
            if not lines:
                lines = [""]
        total, length = self.score_lines(lines)
        return round(10.0 ** (-total / length), 1)


_SCORERS: dict[tuple, KenlmScorer] = {}
_LOCK = threading.Lock()


def resolve_model(cfg: PerplexityConfig) -> tuple[str, Path, Path]:
    """(model name, kenlm path, sentencepiece path) for the profile's ``model`` choice.

    ``builtin-en`` is built on first use (about 10 s) if it is not there yet.
    """
    if cfg.model == "custom":
        if not (cfg.kenlm_path and cfg.sp_path):
            raise ValueError("perplexity.model=custom needs kenlm_path and sp_path")
        return "custom", Path(cfg.kenlm_path), Path(cfg.sp_path)
    if cfg.model in ("auto", "wikipedia-en"):
        lm, sp = kenlm_paths("wikipedia", "en")
        if lm.is_file() and sp.is_file():
            return "wikipedia-en", lm, sp
        if cfg.model == "wikipedia-en":
            raise ResourceMissing(f"{lm} not found: run `obelics resources fetch` (needs a network)")
    d = lm_build.build(cfg.builtin_dir or lm_build.DEFAULT_DIR)
    return "builtin-en", d / "en.arpa", d / "en.sp.model"


def get_scorer(cfg: PerplexityConfig) -> KenlmScorer:
    """The (cached, per process) scorer of ``cfg``."""
    key = (cfg.model, cfg.kenlm_path, cfg.sp_path, cfg.builtin_dir)
    with _LOCK:
        s = _SCORERS.get(key)
        if s is None:
            name, lm, sp = resolve_model(cfg)
            log.info("perplexity model %s: %s", name, lm)
            s = _SCORERS[key] = KenlmScorer(lm, sp, name)
        return s


class PerplexityFilter:
    """Paragraph and document verdicts against the model's ``max_perplexity``."""

    def __init__(self, cfg: PerplexityConfig | None = None, scorer: KenlmScorer | None = None):
        self.cfg = cfg or PerplexityConfig()
        self._scorer = scorer

    @property
    def scorer(self) -> KenlmScorer:
        if self._scorer is None:
            self._scorer = get_scorer(self.cfg)
        return self._scorer

    @property
    def cutoff(self) -> float:
        name = self.scorer.name
        if name not in self.cfg.max_perplexity:
            raise ValueError(f"perplexity.max_perplexity has no threshold for model {name!r}")
        return self.cfg.max_perplexity[name]

    def paragraph_verdict(self, text: str) -> Verdict:
        return "perplexity" if self.scorer.perplexity(text, "glued") > self.cutoff else None

    def document_perplexity(self, texts: list[str]) -> float:
        full = "\n\n".join(t for t in texts if t)
        return self.scorer.perplexity(full, "glued" if self.cfg.mode == "glued" else "paragraph")

    def document_verdict(self, texts: list[str]) -> Verdict:
        return "perplexity" if self.document_perplexity(texts) > self.cutoff else None

    def document_verdicts(self, documents: list[list[str]]) -> list[Verdict]:
        """``[document_verdict(texts) for texts in documents]``, scored in one batch (:meth:`KenlmScorer.perplexities`)."""
        if not documents:  # no model loaded for nothing
            return []
        fulls = ["\n\n".join(t for t in texts if t) for texts in documents]
        ppl = self.scorer.perplexities(fulls, "glued" if self.cfg.mode == "glued" else "paragraph")
        cutoff = self.cutoff
        return ["perplexity" if v > cutoff else None for v in ppl]
