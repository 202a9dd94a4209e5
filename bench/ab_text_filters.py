"""A/B of the text filters' op in one process: ``filter_documents`` of a git revision's
``filters/text_filters.py`` + ``filters/fast_metrics.py`` (old) against the working tree's (new), on the
documents of one unit of the bench corpus (``bench.bench_pipeline.make_inputs``), each profile's old and
new passes alternated, median CPU time of ``--rounds`` passes. The outputs (kept documents, counts) are
checked equal first.

    python -m bench.ab_text_filters --old main --copies 16 --units 4 --unit 1 2 --rounds 11
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from filters.base import FilterStats  # noqa: E402


def old_text_filters(rev: str, folder: Path) -> types.ModuleType:
    """``filters.text_filters`` of ``rev``, bound to ``filters.fast_metrics`` of ``rev`` (both loaded under
    ``_old`` names beside the working tree's)."""
    import importlib.util

    import filters

    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    fm_path = folder / "fast_metrics_old.py"
    fm_path.write_text(show("filters/fast_metrics.py"))
    spec = importlib.util.spec_from_file_location("filters.fast_metrics_old", fm_path)
    fm = importlib.util.module_from_spec(spec)
    sys.modules["filters.fast_metrics_old"] = filters.fast_metrics_old = fm
    spec.loader.exec_module(fm)
    src = (show("filters/text_filters.py")
           .replace("from filters import fast_metrics, text_checks",
                    "from filters import fast_metrics_old as fast_metrics, text_checks")
           .replace("from filters.fast_metrics import", "from filters.fast_metrics_old import"))
    tf = types.ModuleType("filters.text_filters_old")
    sys.modules[tf.__name__] = tf
    exec(compile(src, f"{rev}:filters/text_filters.py", "exec"), tf.__dict__)
    return tf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", default="main", help="git revision of the old code")
    ap.add_argument("--copies", type=int, default=16)
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--unit", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--profiles", nargs="+", default=["default", "obelics-2023"])
    args = ap.parse_args()

    from bench.bench_pipeline import make_inputs
    from filters import text_filters as new_tf
    from obelics.config import load_profile
    from obelics.extract import iter_extracted

    with tempfile.TemporaryDirectory(prefix="ab-text-filters-") as tmp:
        old_tf = old_text_filters(args.old, Path(tmp))
        inputs = make_inputs(Path(tmp), args.copies, args.units)
        units = {u: [d for _, d in iter_extracted(inputs[u], "default")] for u in args.unit}
        for u, docs in units.items():
            for name in args.profiles:
                prof = load_profile(name)
                outs = []
                for tf in (old_tf, new_tf):  # also the warm-up: word lists, models, compiled kernels
                    st = FilterStats("ab")
                    kept = tf.filter_documents(docs, prof, st)
                    outs.append(([(d.texts, d.images) for d in kept], st.as_dict()))
                if outs[0] != outs[1]:
                    print(f"unit {u} {name}: OUTPUTS DIFFER", file=sys.stderr)
                    return 1
                cpu: dict[str, list[float]] = {"old": [], "new": []}
                for r in range(args.rounds):
                    order = [("old", old_tf), ("new", new_tf)]
                    for label, tf in order if r % 2 == 0 else order[::-1]:
                        c0 = time.process_time()
                        tf.filter_documents(docs, prof, FilterStats("ab"))
                        cpu[label].append(time.process_time() - c0)
                old, new = (statistics.median(cpu[k]) / len(docs) * 1000 for k in ("old", "new"))
                print(f"unit {u} {name:13s} {len(docs)} documents: old {old:.4f} new {new:.4f} CPU ms a document "
                      f"({(1 - new / old) * 100:+.1f}%), same output")
    return 0


if __name__ == "__main__":
    sys.exit(main())
