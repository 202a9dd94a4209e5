"""The floor under the pipeline's CPU a page: what the chosen libraries' own calls cost on what a run gives them.

    python -m bench.bench_floor [--copies 64] [--units 4] [--keep-inputs DIR] [--rounds 3] [--set KEY=VALUE]

Runs ``default`` once without Ray (``run.use_ray=false``, one process, as ``bench_pipeline --inline``) on
:mod:`bench.corpus`'s realistic corpus with ``bench_pipeline``'s offline settings, and records, by wrapping the
library entry points in a fresh process (nothing in the pipeline changes), the exact inputs each chosen library
call is given:

- ``inflate``: every ``decompress(data, max_length)`` of ISA-L's inflate (``obelics.warc``'s gzip members), per
  member; ``warcio parse``: the header blocks of each inflated member's record, parsed in the replay by warcio's
  ``StatusAndHeadersParser.parse`` as warcio's reader would (the WARC block of every record, the HTTP block of
  ``application/http`` ones). The project parses plain blocks with its own loop (``obelics/warc.py``), faster
  than warcio's: this row is what warcio alone would cost, not what the run spent;
- ``lexbor parse``: the HTML given to ``selectolax``'s ``LexborHTMLParser`` (the tree built and freed);
- ``fastText predict``: the C++ ``predict`` calls of :class:`filters.langid.FastTextLangId`;
- ``SentencePiece encode`` and ``KenLM score``: the calls of :class:`filters.perplexity.KenlmScorer`;
- ``PIL ...``: the bytes given to ``PIL.Image.open``, per consumer (the function that opened them), replayed as
  that consumer's chain of Pillow calls at main 497e65f: the image filters' probe (``probe_image`` / ``_probe``:
  open, then ``verify`` for PNG, ``draft`` + ``load`` for JPEG, ``load`` otherwise), NSFW (``decode_rgb`` +
  ``pixels``: open, ``draft``, ``load``, ``convert``, ``resize`` 256, ``crop``, JPEG ``save`` and re-open,
  ``np.asarray``; its ``load`` not counted where the probe handed its decode over, ``filters.image.DECODED``),
  pHash (open, ``convert("L")``, ``resize`` LANCZOS), the image table's probe (``probe_bytes``: the header,
  ``load`` where no cheap truncation marker decides); any other opener: open + ``load``;
- ``NSFW onnxruntime``: the batches given to ``InferenceSession.run`` (int8, and fp32 for the re-checks and the
  AMX path's one self-check), and ``NSFW AMX``: the pixels given to the AMX path (``AmxInt8Net``: torch's
  oneDNN int8 convolutions with the project's thin glue: its input quantization table and head);
- ``numpy MinHash``: the (shingle hashes, offsets) given to :meth:`MinHasher.signatures_flat` (numpy's
  multiply/add/``minimum.reduceat``; its chunk loop is the project's, a few calls per batch);
- ``pyarrow Parquet write``: every ``ParquetWriter.write_table`` (``pq.write_table`` included) with its
  writer's options, replayed into memory.

Not counted: the compiled walk over lexbor's tree (``obelics/html/_walk.pyx``, the project's code calling lexbor's
C accessors), Parquet reads, the stages' own numpy (shingling, NSFW's batch normalization), json, regex and
Python's str methods: all of it is in "the project's own code" = the run's CPU - the floor.

Then each library call is replayed alone on the recorded inputs, timed in CPU time (``time.process_time``,
the process's threads included, as the run's), ``--rounds`` times; the table gives each row's median CPU ms a
page (of the HTML pages read), their sum (the floor), the run's own CPU ms a page (its process time around
``run()``, the recorders' own CPU taken out) and the floor's ratio to the issue-17 goal (600 pages a CPU-second).
The recorded inputs go to files under ``/tmp/floor19-*`` (removed at the end), so memory stays bounded.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_pipeline import OFFLINE, bench_inputs

GOAL_MS = 1000 / 600  # issue 17: 600 pages a CPU-second
BATCH_BYTES = 64 << 20  # frames read into memory at a time in the replay
# the table's rows, in order (every row is printed, 0 calls where the run made none)
ROWS = ("inflate (ISA-L)", "warcio header parse", "lexbor parse", "fastText predict", "SentencePiece encode",
        "KenLM score", "PIL image filters probe", "PIL NSFW decode+resize", "PIL pHash decode",
        "PIL image table probe", "PIL other", "NSFW onnxruntime", "NSFW AMX (torch oneDNN)", "numpy MinHash signatures", "pyarrow Parquet write")
_FILE = {"inflate (ISA-L)": "inflate", "lexbor parse": "lexbor", "fastText predict": "fasttext",
         "SentencePiece encode": "spm", "KenLM score": "kenlm", "NSFW onnxruntime": "ort",
         "NSFW AMX (torch oneDNN)": "amx", "numpy MinHash signatures": "minhash", "pyarrow Parquet write": "parquet"}
_PIL_ROW = {"probe_image": "PIL image filters probe", "_probe": "PIL image filters probe", "decode_rgb": "PIL NSFW decode+resize",
            "phash": "PIL pHash decode", "probe_bytes": "PIL image table probe"}
# once a process, not a page's: printed apart, not in the floor
ONCE = ("model loads",)


class Recorder:
    """Appends pickled frames to one file per library under ``folder``; counts them and its own CPU."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self.cpu = 0.0  # CPU seconds spent recording (taken out of the run's)
        self.meta: dict[str, object] = {}  # what the replay needs to rebuild the models (paths, configs)
        self._member = 0
        self.in_check = False  # inside the AMX path's load (its fp32 self-check)

    def put(self, name: str, frame) -> None:
        t = time.process_time()
        f = self.files.get(name)
        if f is None:
            f = self.files[name] = open(self.folder / f"{name}.pkl", "ab")  # noqa: SIM115 - closed in close()
        pickle.dump(frame, f, protocol=5)
        self.counts[name] = self.counts.get(name, 0) + 1
        self.cpu += time.process_time() - t

    def close(self) -> None:
        for f in self.files.values():
            f.close()
        self.files.clear()


def frames(path: Path):
    """Batches (lists) of the frames in ``path``, about :data:`BATCH_BYTES` each."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        batch, start = [], 0
        while True:
            try:
                batch.append(pickle.load(f))
            except EOFError:
                break
            if f.tell() - start >= BATCH_BYTES:
                yield batch
                batch, start = [], f.tell()
        if batch:
            yield batch


# -- recording ---------------------------------------------------------------------------------------------

class _RecordingInflate:
    """An ISA-L decompress object that records each ``decompress`` call's input (one member per object)."""

    def __init__(self, rec: Recorder, lib, wbits):
        self._d = lib.decompressobj(wbits)
        self._rec = rec
        rec._member += 1
        self._id = rec._member

    def decompress(self, data, max_length=0):
        self._rec.put("inflate", (self._id, bytes(data), max_length))
        return self._d.decompress(data, max_length)

    def __getattr__(self, name):
        return getattr(self._d, name)


def install(rec: Recorder) -> None:
    """Wrap each chosen library's entry point so that it records its inputs in ``rec`` (this process only)."""
    import numpy as np
    import pyarrow.parquet as pq
    from PIL import Image
    from selectolax import lexbor

    import filters.dedup.minhash as minhash
    import filters.langid as langid
    import filters.nsfw as nsfw
    import filters.perplexity as perplexity
    import obelics.html.extract_default  # noqa: F401 - binds LexborHTMLParser before it is replaced
    import obelics.warc as warc
    import pipeline.run  # noqa: F401 - the pipeline's modules imported, so their bound names can be replaced
    from filters.image import DECODED

    lib = warc._inflate_lib

    class _InflateLib:
        error = lib.error

        @staticmethod
        def decompressobj(wbits=15, *a):
            return _RecordingInflate(rec, lib, wbits)

    warc._inflate_lib = _InflateLib

    parser = lexbor.LexborHTMLParser

    def recording_parser(html, *args, **kwargs):
        rec.put("lexbor", (html, args, kwargs))
        return parser(html, *args, **kwargs)

    for mod in list(sys.modules.values()):  # every module that bound the name at import
        if getattr(mod, "LexborHTMLParser", None) is parser and mod is not lexbor:
            mod.LexborHTMLParser = recording_parser

    class _Proxy:
        """Delegates to ``obj``; its ``name`` method records its arguments in ``rec`` under ``key`` first."""

        def __init__(self, obj, name, key):
            self._obj, self._key = obj, key
            method = getattr(obj, name)

            def recording(*args, **kwargs):
                rec.put(key, (args, kwargs))
                return method(*args, **kwargs)

            setattr(self, name, recording)

        def __getattr__(self, name):
            return getattr(self._obj, name)

    ft_init = langid.FastTextLangId.__init__

    def fasttext_init(self, path):
        ft_init(self, path)
        rec.meta["fasttext"] = str(self.path)
        self.model.f = _Proxy(self.model.f, "predict", "fasttext")

    langid.FastTextLangId.__init__ = fasttext_init
    for m in langid._MODELS.values():  # loaded before (none in a fresh process)
        m.model.f = _Proxy(m.model.f, "predict", "fasttext")

    km_init = perplexity.KenlmScorer.__init__

    def kenlm_init(self, kenlm_path, sp_path, name="custom"):
        km_init(self, kenlm_path, sp_path, name)
        rec.meta["kenlm"] = (str(kenlm_path), str(sp_path), name)
        self.model = _Proxy(self.model, "score", "kenlm")
        self.sp = _Proxy(self.sp, "encode", "spm")

    perplexity.KenlmScorer.__init__ = kenlm_init

    image_open = Image.open

    def recording_open(fp, mode="r", formats=None):
        t = time.process_time()
        frame = sys._getframe(1)
        fn = frame.f_code.co_name
        if not (fn == "pixels" and formats == ("JPEG",)) and hasattr(fp, "getvalue"):  # NSFW's round trip: replayed
            loc = frame.f_locals
            extra = {k: loc[k] for k in ("cfg", "max_pixels", "min_side", "size") if k in loc}
            if "cfg" in extra:
                extra["cfg"] = {k: getattr(extra["cfg"], k, None) for k in ("verify_decode", "max_pixels")}
            if fn == "decode_rgb":  # the image filters' probe kept its decode for this one (filters.image.DECODED)
                extra["shared"] = fp.getvalue() in DECODED._held
            rec.cpu += time.process_time() - t
            rec.put("pil", (frame.f_globals.get("__name__"), fn, fp.getvalue(), formats, extra))
        return image_open(fp, mode, formats)

    Image.open = recording_open

    run = nsfw.OpenNsfwClassifier.run
    clf_init = nsfw.OpenNsfwClassifier.__init__

    def classifier_init(self, cfg=None):
        clf_init(self, cfg)
        rec.meta["nsfw"] = self.cfg

    def recording_run(self, model, x):
        t = time.process_time()
        u8 = (x + nsfw._MEAN_BGR).astype(np.uint8)  # the batch's pixels (BGR): exact, they are small integers
        rec.cpu += time.process_time() - t
        rec.put("ort_check" if rec.in_check else "ort", ("int8" if model == "amx" else model, u8))
        return run(self, model, x)

    load_amx = nsfw._load_amx

    def recording_load_amx(*args, **kwargs):
        rec.in_check = True
        try:
            return load_amx(*args, **kwargs)
        finally:
            rec.in_check = False

    nsfw._load_amx = recording_load_amx

    score_amx = nsfw.OpenNsfwClassifier._score_amx

    def recording_score_amx(self, pixels):
        probs = score_amx(self, pixels)
        if probs is not None:
            rec.put("amx", np.stack(pixels))
        return probs

    nsfw.OpenNsfwClassifier.__init__ = classifier_init
    nsfw.OpenNsfwClassifier.run = recording_run
    nsfw.OpenNsfwClassifier._score_amx = recording_score_amx

    sig = minhash.MinHasher.signatures_flat

    def recording_signatures(self, flat, offsets):
        rec.meta.setdefault("minhash", (self.ngram, self.bands, self.rows, self.seed))
        rec.put("minhash", (flat, offsets))
        return sig(self, flat, offsets)

    minhash.MinHasher.signatures_flat = recording_signatures

    w_init, w_write = pq.ParquetWriter.__init__, pq.ParquetWriter.write_table

    def writer_init(self, where, schema, *args, **kwargs):
        self._floor_options = (args, kwargs)
        w_init(self, where, schema, *args, **kwargs)

    def recording_write(self, table, row_group_size=None):
        rec.put("parquet", (table, row_group_size, getattr(self, "_floor_options", ((), {}))))
        return w_write(self, table, row_group_size=row_group_size)

    pq.ParquetWriter.__init__ = writer_init
    pq.ParquetWriter.write_table = recording_write


# -- replay ------------------------------------------------------------------------------------------------

def _timed(batches, call) -> tuple[int, float]:
    """(calls, CPU s) of ``call(frame)`` over every frame; only the calls are timed."""
    n, cpu = 0, 0.0
    for batch in batches:
        t = time.process_time()
        for fr in batch:
            call(fr)
        cpu += time.process_time() - t
        n += len(batch)
    return n, cpu


def _inflate(folder: Path, heads: list | None) -> tuple[int, float]:
    """Replay the inflate calls member by member (a fresh decompress object each); with ``heads``, keep the
    first output of each member (its record's header blocks) there."""
    from obelics.warc import _inflate_lib as lib

    if isinstance(lib, type):  # the recording shim (when replayed in the recording process)
        from isal import isal_zlib as lib
    state = {"id": None, "d": None}
    n, cpu = 0, 0.0
    for batch in frames(folder / "inflate.pkl"):
        t = time.process_time()
        for member, data, max_length in batch:
            if member != state["id"]:
                state["id"], state["d"] = member, lib.decompressobj(31)
                first = True
            else:
                first = False
            try:
                out = state["d"].decompress(data, max_length)
            except lib.error:  # a corrupt member: the run's reader skipped it too
                continue
            if heads is not None and first:
                heads.append(out)
        cpu += time.process_time() - t
        n += len(batch)
    return n, cpu


def header_blocks(heads: list[bytes]) -> list[tuple[str, bytes]]:
    """("warc" | "http", header block) of each member's record, as warcio's reader parses them."""
    out = []
    for h in heads:
        if not h.startswith(b"WARC/"):
            continue
        end = h.find(b"\r\n\r\n")
        if end < 0:
            continue
        warc = h[:end + 4]
        out.append(("warc", warc))
        low = warc.lower()
        if b"\r\ncontent-type: application/http" in low and b"\r\nwarc-type: response" in low:
            rest = h[end + 4:]
            e2 = rest.find(b"\r\n\r\n")
            if e2 >= 0:
                out.append(("http", rest[:e2 + 4]))
    return out


def _warcio_parse(blocks: list[tuple[str, bytes]]) -> tuple[int, float]:
    from warcio.recordloader import ArcWarcRecordLoader

    loader = ArcWarcRecordLoader()
    parsers = {"warc": loader.warc_parser, "http": loader.http_parser}
    streams = [(parsers[k], io.BytesIO(b)) for k, b in blocks]
    t = time.process_time()
    for p, s in streams:
        p.parse(s)
    return len(streams), time.process_time() - t


def _pil_chain(consumer: tuple) -> float:
    """One recorded ``Image.open``'s consumer chain of Pillow calls (see the module docstring); the CPU seconds
    not to count: NSFW's decode of pixels the image filters' probe decoded and handed over (counted there)."""
    import numpy as np
    from PIL import Image

    module, fn, data, formats, extra = consumer
    try:
        img = Image.open(io.BytesIO(data), formats=formats)
        if fn in ("probe_image", "_probe"):
            cfg = extra.get("cfg") or {}
            w, h = img.size
            if cfg.get("max_pixels") is not None and w * h > cfg["max_pixels"] or not cfg.get("verify_decode", True):
                return 0.0
            if img.format == "PNG":
                img.verify()
                return 0.0
            if img.format in ("JPEG", "MPO"):
                img.draft(None, (max(1, w // 8), max(1, h // 8)))
            img.load()
        elif fn == "decode_rgb":
            w, h = img.size
            mp = extra.get("max_pixels")
            if mp is not None and w * h > mp:
                return 0.0
            if img.format in ("JPEG", "MPO"):
                side = extra.get("min_side", 512)
                img.draft("RGB", (side, side))
            t = time.process_time()
            img.load()
            skipped = time.process_time() - t if extra.get("shared") else 0.0
            img = img if img.mode == "RGB" else img.convert("RGB")
            img = img.resize((256, 256), resample=Image.Resampling.BILINEAR).crop((16, 16, 240, 240))
            with io.BytesIO() as buf:
                img.save(buf, format="JPEG")
                buf.seek(0)
                np.asarray(Image.open(buf, formats=("JPEG",)))
            return skipped
        elif fn == "probe_bytes":  # pipeline.images.table: the header; pixels only where no cheap marker says
            from pipeline.images.table import is_truncated

            if is_truncated(data, (img.format or "").lower()) is None:
                img.load()
        elif fn == "phash":
            size = extra.get("size", 32)
            img.convert("L").resize((size, size), Image.Resampling.LANCZOS)
        else:
            img.load()
    except Exception:  # noqa: BLE001 - the consumers give up on undecodable bytes the same way
        return 0.0
    return 0.0


def replay(folder: Path, meta: dict) -> dict[str, tuple[int, float]]:
    """{row: (calls, CPU s)} of one replay of every recorded library call (models loaded outside the clocks)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {}
    loads = 0.0
    heads: list = []
    out["inflate (ISA-L)"] = _inflate(folder, heads)
    out["warcio header parse"] = _warcio_parse(header_blocks(heads))
    del heads

    from selectolax.lexbor import LexborHTMLParser

    def parse(fr):
        html, args, kwargs = fr
        LexborHTMLParser(html, *args, **kwargs)

    out["lexbor parse"] = _timed(frames(folder / "lexbor.pkl"), parse)

    if "fasttext" in meta:
        from filters.langid import FastTextLangId

        t = time.process_time()
        predict = FastTextLangId(meta["fasttext"]).model.f.predict
        loads += time.process_time() - t
        out["fastText predict"] = _timed(frames(folder / "fasttext.pkl"), lambda fr: predict(*fr[0], **fr[1]))
    if "kenlm" in meta:
        from filters.perplexity import KenlmScorer

        t = time.process_time()
        scorer = KenlmScorer(*meta["kenlm"])
        loads += time.process_time() - t
        encode, score = scorer.sp.encode, scorer.model.score
        out["SentencePiece encode"] = _timed(frames(folder / "spm.pkl"), lambda fr: encode(*fr[0], **fr[1]))
        out["KenLM score"] = _timed(frames(folder / "kenlm.pkl"), lambda fr: score(*fr[0], **fr[1]))

    pil = {row: [0, 0.0] for row in ROWS if row.startswith("PIL ")}
    for batch in frames(folder / "pil.pkl"):
        for fr in batch:
            row = _PIL_ROW.get(fr[1], "PIL other")
            t = time.process_time()
            skipped = _pil_chain(fr)
            pil[row][1] += time.process_time() - t - skipped
            pil[row][0] += 1
    out.update({k: tuple(v) for k, v in pil.items()})

    if "nsfw" in meta:
        from filters.nsfw import _MEAN_BGR, OpenNsfwClassifier

        clf = OpenNsfwClassifier(meta["nsfw"])
        n, cpu = 0, 0.0
        for batch in frames(folder / "ort.pkl"):
            for model, u8 in batch:
                x = u8.astype(np.float32) - _MEAN_BGR
                t = time.process_time()
                clf._get_session(model)
                loads += time.process_time() - t
                t = time.process_time()
                clf.run(model, x)
                cpu += time.process_time() - t
                n += 1
        out["NSFW onnxruntime"] = (n, cpu)
        if (folder / "amx.pkl").exists():
            clf.scored = clf.cfg.amx_min_images
            t = time.process_time()
            amx = clf.amx()  # its fp32 self-check included, as in the run
            loads += time.process_time() - t
            n, cpu = 0, 0.0
            for batch in frames(folder / "amx.pkl"):
                for px in batch:
                    pixels = list(px)
                    t = time.process_time()
                    amx(amx.quantize(pixels))
                    cpu += time.process_time() - t
                    n += 1
            out["NSFW AMX (torch oneDNN)"] = (n, cpu)

    if "minhash" in meta:
        from filters.dedup.minhash import MinHasher

        hasher = MinHasher(*meta["minhash"])
        out["numpy MinHash signatures"] = _timed(frames(folder / "minhash.pkl"),
                                                 lambda fr: hasher.signatures_flat(*fr))

    def write(fr):
        table, row_group_size, (args, kwargs) = fr
        sink = pa.BufferOutputStream()
        with pq.ParquetWriter(sink, table.schema, *args, **kwargs) as w:
            w.write_table(table, row_group_size=row_group_size)

    out["pyarrow Parquet write"] = _timed(frames(folder / "parquet.pkl"), write)
    out["model loads"] = (1, loads)
    return {row: out.get(row, (0, 0.0)) for row in ROWS + ONCE}


# -- the bench ---------------------------------------------------------------------------------------------

def record_run(inputs: list[str], out: Path, rec_dir: Path, overrides: list[str]) -> dict:
    """Run ``default`` without Ray on ``inputs`` with the recorders installed; the run's figures and meta."""
    rec = Recorder(rec_dir)
    install(rec)
    from pipeline.run import run

    t = time.process_time()
    stats = run("default", out, inputs, overrides=OFFLINE + ["run.use_ray=false", *overrides])
    cpu = time.process_time() - t
    rec.close()
    return {"cpu": cpu, "recording_cpu": rec.cpu, "counts": dict(rec.counts), "meta": rec.meta,
            "pages": stats["read"]["html_records"], "stages_cpu": stats["cpu"]["cpu_seconds"],
            "stats": stats}


def _replay_child(rec_dir: str, rounds: int | str) -> None:
    """In a fresh process (no recorders installed): ``rounds`` replays, printed as JSON."""
    from PIL import Image

    Image.init()  # Pillow's plugins imported before the clocks (the run imported them before its first image)
    meta = pickle.loads((Path(rec_dir) / "meta.pkl").read_bytes())
    print(json.dumps([replay(Path(rec_dir), meta) for _ in range(int(rounds))]))


def _record_child(args: str) -> None:
    """In a fresh process: :func:`record_run` with the recorders installed (they are never taken out again, so
    not in the caller's process); its figures printed as JSON, its meta pickled beside the recorded inputs."""
    inputs, out, rec_dir, overrides = json.loads(args)
    r = record_run(inputs, Path(out), Path(rec_dir), overrides)
    (Path(rec_dir) / "meta.pkl").write_bytes(pickle.dumps(r.pop("meta")))
    print(json.dumps(r, default=str))


def _child(call: str, *args: str) -> str:
    """The last stdout line of ``bench.bench_floor.<call>(*sys.argv[1:])`` run in a fresh Python process."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = f"import sys;from bench.bench_floor import {call};{call}(*sys.argv[1:])"
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=root, env=env, capture_output=True, text=True)
    if p.returncode:
        raise SystemExit(p.stderr[-3000:])
    return p.stdout.strip().splitlines()[-1]


def measure(inputs: list[str], rounds: int, overrides: list[str], tmp: Path, clean_run: bool = True) -> dict:
    """Run once in a fresh process (``clean_run``), record a run's library inputs in another, then replay them
    ``rounds`` times in a third."""
    from bench.bench_pipeline import run_once

    clean = None
    if clean_run:  # the same run in a fresh process, no recorders: the whole's reference
        clean = run_once(inputs, 1, tmp / "clean", ("run.use_ray=false", *overrides))
        shutil.rmtree(tmp / "clean", ignore_errors=True)
    rec_dir = tmp / "rec"
    rec_dir.mkdir()
    r = json.loads(_child("_record_child", json.dumps([list(map(str, inputs)), str(tmp / "out"), str(rec_dir),
                                                        list(overrides)])))
    r["clean"] = clean
    r["meta"] = pickle.loads((rec_dir / "meta.pkl").read_bytes())
    shutil.rmtree(tmp / "out", ignore_errors=True)
    r["rounds"] = json.loads(_child("_replay_child", str(rec_dir), str(rounds)))
    return r


def table(r: dict) -> dict:
    """Per row: calls, median CPU s, CPU ms a page; the floor, the run's CPU a page, the goal's ratio."""
    pages = r["pages"]
    rows = []
    for row in ROWS:
        calls = r["rounds"][0][row][0]
        cpu = statistics.median(rd[row][1] for rd in r["rounds"])
        rows.append({"row": row, "calls": calls, "cpu_s": cpu, "ms_page": cpu * 1000 / pages})
    floor = sum(x["ms_page"] for x in rows)
    whole = (r["cpu"] - r["recording_cpu"]) * 1000 / pages
    loads = statistics.median(rd["model loads"][1] for rd in r["rounds"])
    out = {"rows": rows, "floor_ms": floor, "whole_ms": whole, "pages": pages, "loads_s": loads,
           "stages_ms": (r["stages_cpu"] - r["recording_cpu"]) * 1000 / pages,
           "whole_less_loads_ms": whole - loads * 1000 / pages}
    c = r.get("clean")
    if c is not None:
        out["clean_stages_ms"] = c["cpu"]["cpu_seconds"] * 1000 / pages
        out["clean_all_ms"] = c["all_cpu"] * 1000 / pages
    return out


def report(t: dict, r: dict, rounds: int) -> None:
    pages = t["pages"]
    print(f"{pages:,} HTML pages read; each library call replayed alone on the run's recorded inputs, median CPU "
          f"of {rounds} rounds")
    print(f"  {'library call':<28} {'calls':>9} {'CPU s':>8} {'ms/page':>8}")
    for x in t["rows"]:
        print(f"  {x['row']:<28} {x['calls']:>9,} {x['cpu_s']:>8.2f} {x['ms_page']:>8.3f}")
    f, w = t["floor_ms"], t["whole_ms"]
    print(f"  {'the floor (sum)':<28} {'':>9} {f * pages / 1000:>8.2f} {f:>8.3f}   = {1000 / f:,.0f} pages per "
          "CPU-second")
    print(f"  {'(once) model loads':<28} {'':>9} {t['loads_s']:>8.2f} {t['loads_s'] * 1000 / pages:>8.3f}   not in "
          "the floor: fastText, KenLM+SentencePiece, onnxruntime sessions, the AMX path (+ its fp32 self-check)")
    print(f"the recorded run: process CPU around run() {w:.3f} ms a page, its stages' clocks {t['stages_ms']:.3f} "
          f"(the recorders' {r['recording_cpu']:.1f} CPU s taken out of both)")
    ref, what = w, "the recorded run's process CPU"
    if "clean_stages_ms" in t:
        ref, what = t["clean_stages_ms"], "the clean run's stages' clocks"
        print(f"the clean run (a fresh process, no recorders, just before): its stages' clocks {ref:.3f} ms a page "
              f"= {1000 / ref:,.0f} pages per CPU-second; all-in (imports, Ray-less driver) {t['clean_all_ms']:.3f}")
    own = ref - f - t["loads_s"] * 1000 / pages
    print(f"the project's own code = {what} - the floor - the model loads: {own:.3f} ms a page ({own / ref:.0%}); "
          f"the floor is {f / ref:.0%} of it")
    warcio = next(x["ms_page"] for x in t["rows"] if x["row"] == "warcio header parse")
    print(f"the floor / the goal ({GOAL_MS:.3f} ms a page, 600 pages per CPU-second): {f / GOAL_MS:.2f}; without "
          f"warcio's parse (the project's own header loop does it for less): {f - warcio:.3f} ms a page, "
          f"{(f - warcio) / GOAL_MS:.2f} of the goal")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=64)
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep-inputs", type=Path, default=None, metavar="DIR",
                    help="make the corpus once in DIR and reuse it (as bench_pipeline's option)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a profile override (as `obelics run --set`), e.g. nsfw.amx_min_images=0")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.copies < 1:
        ap.error("--rounds and --copies must be at least 1")
    if args.overrides:
        from obelics.config import ConfigError
        from pipeline.profile import load_profile

        try:
            load_profile("default", OFFLINE + args.overrides)
        except (ConfigError, ValueError) as e:
            ap.error(f"--set: {e}")
    tmp = Path(tempfile.mkdtemp(prefix="floor19-"))
    try:
        inputs = bench_inputs(args.keep_inputs, tmp, args.copies, args.units)
        r = measure(inputs, args.rounds, args.overrides, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"corpus: {args.copies} copies, {args.units} units; overrides: {args.overrides or 'none'}; "
          f"load {os.getloadavg()[0]:.1f}")
    report(table(r), r, args.rounds)


if __name__ == "__main__":
    main()
