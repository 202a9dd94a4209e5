"""Same-process A/B of the fused stage's image steps (issue 17, img19): ``image_filters`` then ``nsfw``'s
decode and preprocessing, old code (a git revision's ``filters/image.py`` and ``filters/nsfw.py``) against
the working tree's, alternated, in CPU time (``time.process_time``), over a finished run's units.

    .venv/bin/python -m bench.ab_image_decode WORK [--rounds 5] [--base main]

``WORK`` is a run's ``work`` folder made with the default stages (its ``*-dedup_minhash.apply`` documents
and ``*-image_table`` decision: e.g. ``bench_pipeline``'s run over ``realistic-c64-u4``). The NSFW model
itself is not run (its scores are a function of the pixels, which are compared): a stub returns 0 for
every image, so both sides keep the same documents (the stub's own CPU is not counted). Every round checks that both sides give the same
stats, the same documents and metadata, and the same model input arrays (byte for byte).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import time

import numpy as np

from bench.revisions import module_at


def _stub(nsfw_mod, seen: list):
    class Stub(nsfw_mod.OpenNsfwClassifier):
        """The package's preprocessing, no model: records each batch's digest (its CPU time in ``self.own``, taken
        off the step's), scores 0."""

        own = 0.0

        def run(self, model, x):
            t = time.process_time()
            seen.append(hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).hexdigest())
            out = np.tile(np.array([[1.0, 0.0]], np.float32), (len(x), 1))
            self.own += time.process_time() - t
            return out

    return Stub(nsfw_mod.NsfwConfig(model="fp32", threads=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--base", default="main", help="the old code's git revision")
    args = ap.parse_args()

    from filters import image as new_image
    from filters import nsfw as new_nsfw
    from filters.step import run_step
    from obelics.config import load_profile
    from obelics.document import documents_to_table, table_to_documents
    from pipeline import stages
    from pipeline.executor import read_unit_table

    old_image = module_at(args.base, "filters/image.py", "_img19_old_image")
    old_nsfw = module_at(args.base, "filters/nsfw.py", "_img19_old_nsfw")
    profile = load_profile("default")
    decision = json.load(open(glob.glob(os.path.join(args.work, "*-image_table", "decision.json"))[0]))["decision"]
    source = glob.glob(os.path.join(args.work, "*-dedup_minhash.apply"))[0]
    units = sorted(os.path.basename(p)[:-len(".parquet")] for p in glob.glob(os.path.join(source, "*.parquet")))
    merged = {}
    for unit in units:  # the image steps' input: the unit's documents with the image table's rows merged in
        ctx = {"profile": profile, "decisions": {"image_table": decision}, "unit": unit}
        table, _ = stages._merge_images(read_unit_table(source, unit), ctx)
        merged[unit] = list(table_to_documents(table))
    sides = {}
    for name, im, ns in (("old", old_image, old_nsfw), ("new", new_image, new_nsfw)):
        seen: list = []
        sides[name] = (im, ns, _stub(ns, seen), seen)
    icfg = new_image.image_config(profile)
    ncfg = new_nsfw.nsfw_config(profile)
    cpu = {"old": [], "new": []}
    n_images = 0
    for r in range(args.rounds + 1):  # round 0 warms up (the model session, imports), not counted
        outs = {}
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            im, ns, clf, seen = sides[name]
            seen.clear()
            t = [0.0, 0.0]
            result = []
            for unit in units:
                ctx = {"profile": profile, "decisions": {"image_table": decision}, "unit": unit}
                inputs = stages._inputs(ctx)
                c0 = time.process_time()
                kept, st1, _ = run_step(im.IMAGE_FILTERS, merged[unit], state=im.ImageFilterConfig(**vars(icfg)),
                                        inputs=inputs, metrics=False)
                c1 = time.process_time()
                state = ns.NsfwState(ns.NsfwConfig(**{**vars(ncfg), "model": "fp32"}), clf)
                clf.own = 0.0
                kept, st2, _ = run_step(ns.NSFW, kept, state=state, inputs=inputs, metrics=False)
                c2 = time.process_time() - clf.own
                t[0] += c1 - c0
                t[1] += c2 - c1
                result.append((st1.as_dict(), st2.as_dict(), documents_to_table(kept).to_pylist()))
            outs[name] = (result, list(seen))
            if r:
                cpu[name].append(t)
        assert outs["old"][0] == outs["new"][0], "stats or documents differ"
        assert outs["old"][1] == outs["new"][1], "model inputs differ"
        n_images = sum(s[0]["in"].get("image", 0) for s in outs["new"][0])
        if r:
            print(f"round {r}: old {sum(cpu['old'][-1]):.3f} s  new {sum(cpu['new'][-1]):.3f} s  "
                  f"(image_filters {cpu['old'][-1][0]:.3f} -> {cpu['new'][-1][0]:.3f}, "
                  f"nsfw {cpu['old'][-1][1]:.3f} -> {cpu['new'][-1][1]:.3f})", flush=True)
    med = {k: [float(np.median([t[i] for t in v])) for i in (0, 1)] for k, v in cpu.items()}
    print(f"{len(units)} units, {n_images} images in; identical stats, documents and model inputs every round")
    for k in ("old", "new"):
        print(f"{k}: image_filters {med[k][0]:.3f} s  nsfw {med[k][1]:.3f} s  both {sum(med[k]):.3f} s (median CPU)")
    print(f"new/old: image_filters {med['new'][0] / med['old'][0]:.3f}  nsfw {med['new'][1] / med['old'][1]:.3f}  "
          f"both {sum(med['new']) / sum(med['old']):.3f}")


if __name__ == "__main__":
    main()
