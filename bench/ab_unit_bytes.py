"""Same-process A/B of the fused stage ``merge_images+image_filters+optout+nsfw+doc_filters`` (issue 17, bytes19):
a unit's image bytes read from the image-table parts for each consumer (old: ``UNIT_BYTES_CACHE = 0``, the
reads of ``main``) against read once and kept for NSFW (new: the budget), alternated, in CPU time
(``time.process_time``), over a finished run's units.

    .venv/bin/python -m bench.ab_unit_bytes WORK [--rounds 5]

``WORK`` is a run's ``work`` folder made with the default stages (its ``*-dedup_minhash.apply`` documents and
``*-image_table`` decision: e.g. ``bench_pipeline``'s run over ``realistic-c64-u4``). The whole fused stage
runs (with ``bench_pipeline``'s offline settings), the NSFW model included; the CPU inside ``UnitImages._bytes`` (the Parquet reads of the bytes) and the
URLs it read are counted apart. NSFW's scores by content are forgotten before each side's pass over the
units (as in a fresh process of a run without Ray). Every round checks that both sides give the same documents and stats (the ops'
clocks aside).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import numpy as np

OPS = ["merge_images", "image_filters", "optout", "nsfw", "doc_filters"]


def _no_clocks(stats: list) -> list:
    return [s for s in stats if "op_cpu" not in s]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("work")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from bench.bench_pipeline import OFFLINE
    from filters.nsfw import NSFW
    from filters.step import step_state
    from obelics.config import load_profile
    from obelics.document import documents_to_table
    from pipeline import stages  # noqa: F401 - registers the ops
    from pipeline.executor import read_unit_table
    from pipeline.images import join
    from pipeline.ops import get_op
    from pipeline.run import _fused

    profile = load_profile("default", OFFLINE)  # the run's settings (bench_pipeline's)
    decision = json.load(open(glob.glob(os.path.join(args.work, "*-image_table", "decision.json"))[0]))["decision"]
    source = glob.glob(os.path.join(args.work, "*-dedup_minhash.apply"))[0]
    units = sorted(os.path.basename(p)[:-len(".parquet")] for p in glob.glob(os.path.join(source, "*.parquet")))
    tables = {u: read_unit_table(source, u) for u in units}
    fn = _fused([get_op(n) for n in OPS])

    reads = {"cpu": 0.0, "urls": 0}
    real = join.UnitImages._bytes

    def counted(self, where):
        t = time.process_time()
        try:
            return real(self, where)
        finally:
            reads["cpu"] += time.process_time() - t
            reads["urls"] += len(where)

    join.UnitImages._bytes = counted
    budgets = {"old": 0, "new": join.UNIT_BYTES_CACHE}
    cpu: dict = {"old": [], "new": []}
    for r in range(args.rounds + 1):  # round 0 warms up (the model session, imports), not counted
        outs = {}
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            join.UNIT_BYTES_CACHE = budgets[name]
            reads.update(cpu=0.0, urls=0)
            nsfw = step_state(NSFW, profile)
            nsfw.cache = type(nsfw.cache)()  # as a fresh run's process: every image scored once, not across rounds
            result, total = [], 0.0
            for unit in units:
                ctx = {"profile": profile, "decisions": {"image_table": decision}, "unit": unit}
                c0 = time.process_time()
                docs, stats = fn(tables[unit], ctx)
                total += time.process_time() - c0
                table = docs if not isinstance(docs, list) else documents_to_table(docs)
                result.append((table.to_pylist(), _no_clocks(stats)))
            outs[name] = result
            if r:
                cpu[name].append((total, reads["cpu"], reads["urls"]))
        assert outs["old"] == outs["new"], "documents or stats differ"
        if r:
            o, n = cpu["old"][-1], cpu["new"][-1]
            print(f"round {r}: stage old {o[0]:.3f} s  new {n[0]:.3f} s  (bytes reads {o[1]:.3f} -> {n[1]:.3f} s, "
                  f"{o[2]} -> {n[2]} URLs)", flush=True)
    med = {k: [float(np.median([t[i] for t in v])) for i in (0, 1)] for k, v in cpu.items()}
    print(f"{len(units)} units; identical documents and stats every round")
    for k in ("old", "new"):
        print(f"{k}: fused stage {med[k][0]:.3f} s  bytes reads {med[k][1]:.3f} s  ({cpu[k][-1][2]} URLs read) "
              "(median CPU)")
    print(f"new/old: fused stage {med['new'][0] / med['old'][0]:.3f}  bytes reads {med['new'][1] / med['old'][1]:.3f}  "
          f"saved {med['old'][0] - med['new'][0]:.3f} s")


if __name__ == "__main__":
    main()
