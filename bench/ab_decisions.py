"""The MinHash decision and the image table (the global decisions ``bench_pipeline`` reports as "MinHash decision"
and "image table"), several source trees alternated on the same inputs: CPU seconds of each decision.

    python -m bench.ab_decisions --run OUT --make-run --inputs WARC...   # a run on the inputs, its work kept
    python -m bench.ab_decisions --run OUT --trees /tmp/base /tmp/main . --rounds 5 [--ray]

``--make-run`` runs the ``default`` profile with ``bench_pipeline``'s offline settings (images from the WARCs,
no Ray) into ``OUT``; its stage folders are every decision's inputs. Then each round runs, for each tree in
turn, each decision in a fresh process whose ``PYTHONPATH`` is that tree (a detached worktree of another
revision, e.g. ``git worktree add --detach /tmp/base REV``, with its ``_walk`` built or copied): a warm-up call,
then ``--reps`` timed calls, each into a new decision folder. CPU is the process's (``time.process_time``: the
tasks run in it) or, with ``--ray`` (a local Ray of ``OBELICS_NUM_CPUS`` CPUs), the process tree's, Ray's workers
and daemons included. The decisions' stats are checked equal across trees. Prints each tree's median CPU
seconds and CPU ms a page read (the run's pages) and its ratio to the first tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS = {"dedup_minhash": "02-dedup_url.apply", "image_table": "04-dedup_minhash.apply"}  # each one's input stage
SOURCE_STAGE = "00-extract+url_ban+text_filters"


def child(op_name: str, out: str, reps: int, ray: bool) -> None:
    """In the tree under test: ``reps`` timed calls of the decision after a warm-up; prints JSON."""
    import shutil
    import tempfile
    import time

    from bench.bench_pipeline import OFFLINE
    from pipeline import stages  # noqa: F401 - registers the ops
    from pipeline.ops import get_op
    from pipeline.profile import load_profile
    from pipeline.sources import input_name

    run = json.loads(Path(out, "run.json").read_text())
    work = os.path.join(out, "work")
    units = {input_name(i): i for i in run["inputs"]}
    profile = load_profile("default", OFFLINE + [f"run.use_ray={str(ray).lower()}"])
    clock = time.process_time
    if ray:
        from pipeline.cpu import process_tree_cpu
        from pipeline.shuffle import ensure_ray

        ensure_ray()
        clock = process_tree_cpu
    op = get_op(op_name)
    cpu, stats = [], None
    for r in range(reps + 1):
        d = tempfile.mkdtemp(prefix="ab-decisions-")
        ctx = {"profile": profile, "out": out, "work": work, "decisions": {}, "sources": units, "use_ray": ray,
               "source_stage_dir": os.path.join(work, SOURCE_STAGE), "decision_dir": d}
        t = clock()
        decision = op.decide(os.path.join(work, OPS[op_name]), sorted(units), ctx)
        t = clock() - t
        shutil.rmtree(d)
        if r:
            cpu.append(t)
        stats = decision.get("stats")
    print(json.dumps({"cpu": cpu, "stats": stats}, sort_keys=True))


def make_run(out: Path, inputs: list[str]) -> None:
    from bench.bench_pipeline import OFFLINE
    from pipeline.run import run

    run("default", str(out), inputs, overrides=OFFLINE + ["run.use_ray=false"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="the run folder (made by --make-run)")
    ap.add_argument("--make-run", action="store_true")
    ap.add_argument("--inputs", nargs="+", default=[], help="--make-run's WARCs (or one inputs.json)")
    ap.add_argument("--trees", nargs="+", default=[str(ROOT)])
    ap.add_argument("--ops", nargs="+", default=list(OPS), choices=list(OPS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--ray", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, str(args.run), args.reps, args.ray)
    if args.make_run:
        inputs = args.inputs
        if len(inputs) == 1 and inputs[0].endswith(".json"):
            inputs = json.loads(Path(inputs[0]).read_text())
        return make_run(args.run, inputs)
    pages = json.loads((args.run / "stats.json").read_text())["cpu"]["pages"]
    got: dict = {}
    stats: dict = {}
    for r in range(args.rounds):
        for tree in args.trees:
            for op in args.ops:
                env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--run", str(args.run.resolve()),
                                    "--child", op, "--reps", str(args.reps)] + (["--ray"] if args.ray else []),
                                   cwd=tree, env=env, capture_output=True, text=True)
                if p.returncode:
                    raise SystemExit(f"{tree} {op}: {p.stderr[-2000:]}")
                res = json.loads(p.stdout.strip().splitlines()[-1])
                got.setdefault((op, tree), []).extend(res["cpu"])
                stats.setdefault(op, json.dumps(res["stats"], sort_keys=True))
                if json.dumps(res["stats"], sort_keys=True) != stats[op]:
                    raise SystemExit(f"{tree} {op}: other stats than {args.trees[0]}'s")
                print(f"round {r + 1} {op:<14} {tree:<30} {' '.join(f'{c:.3f}' for c in res['cpu'])} CPU s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"\nmedian CPU of {args.rounds} rounds x {args.reps} calls ({pages:,} pages; "
          f"{'Ray, process tree' if args.ray else 'no Ray, the process'}):")
    for op in args.ops:
        first = statistics.median(got[(op, args.trees[0])])
        for tree in args.trees:
            m = statistics.median(got[(op, tree)])
            print(f"  {op:<14} {tree:<30} {m:7.3f} s  {m * 1000 / pages:6.3f} ms a page  x{m / first:.3f}")


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # run as a file (in another tree): its modules come from PYTHONPATH's tree, not bench/
    main()
