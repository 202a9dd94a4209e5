"""The MinHash decision with the passes' IPC files (de)compressed on Arrow's thread pool against on the task's own
thread (``pipeline.shuffle.IPC_READ``/``IPC_WRITE``), alternated in one process on a finished run's stage files:

    python -m bench.ab_ipc_threads --run OUT --rounds 10   # OUT made by ``bench.ab_decisions --make-run``

Prints each side's median CPU seconds (``time.process_time``: the tasks run in this process, no Ray), their
ratio and whether the decision's stats were equal in every call.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

import pyarrow as pa

from bench.ab_decisions import OPS, SOURCE_STAGE

VARIANTS = {"pool": (pa.ipc.IpcReadOptions(), pa.ipc.IpcWriteOptions(compression="lz4")),
            "own thread": (pa.ipc.IpcReadOptions(use_threads=False),
                           pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="the run folder (made by bench.ab_decisions --make-run)")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    from bench.bench_pipeline import OFFLINE
    from pipeline import shuffle as fs
    from pipeline import stages  # noqa: F401 - registers the ops
    from pipeline.ops import get_op
    from pipeline.profile import load_profile
    from pipeline.sources import input_name

    run = json.loads(open(os.path.join(args.run, "run.json")).read())
    work = os.path.join(args.run, "work")
    units = {input_name(i): i for i in run["inputs"]}
    profile = load_profile("default", OFFLINE + ["run.use_ray=false"])
    op = get_op("dedup_minhash")

    def once() -> tuple[float, str]:
        d = tempfile.mkdtemp(prefix="ab-ipc-threads-")
        ctx = {"profile": profile, "out": args.run, "work": work, "decisions": {}, "sources": units,
               "use_ray": False, "source_stage_dir": os.path.join(work, SOURCE_STAGE), "decision_dir": d}
        t = time.process_time()
        decision = op.decide(os.path.join(work, OPS["dedup_minhash"]), sorted(units), ctx)
        t = time.process_time() - t
        shutil.rmtree(d)
        return t, json.dumps(decision.get("stats"), sort_keys=True, default=str)

    once()  # warm-up
    cpu: dict[str, list[float]] = {k: [] for k in VARIANTS}
    stats = set()
    for r in range(args.rounds):
        for k in (list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]):
            fs.IPC_READ, fs.IPC_WRITE = VARIANTS[k]
            t, s = once()
            cpu[k].append(t)
            stats.add(s)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    for k, v in med.items():
        print(f"{k:12s} {v:.3f} CPU s")
    print(f"ratio {med['own thread'] / med['pool']:.3f}; stats equal in every call: {len(stats) == 1}")


if __name__ == "__main__":
    main()
