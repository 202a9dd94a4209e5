"""A/B of the text filters' op in one process: ``filter_documents`` of a git revision's
``filters/text_filters.py`` + ``fast_metrics.py`` + ``text_checks.py`` (old) against the working tree's (new), on the
documents of one unit of the bench corpus (``bench.bench_pipeline.make_inputs``), each profile's old and
new passes alternated, median CPU time of ``--rounds`` passes. The outputs (kept documents, counts) are
checked equal first.

    python -m bench.ab_text_filters --old main --copies 16 --units 4 --unit 1 2 --rounds 11 [--inputs-cache /tmp/corpus17-inputs]

``--run-op``: the op as a run has it: the ``url_ban`` step, then the ``text_filters`` step with its report metrics
(``TextFilter.document_metrics`` of a sample of the unit's documents, before filtering; compared too).

``--pieces``: then the report metrics (``document_metrics``) and the ``url_ban`` step alone, old and new alternated.

``--parts``: then the working tree's op split into its parts, over ``--rounds`` instrumented passes (:func:`parts`):
the node level, the document checks before the models, language id (fastText's C++ ``predict`` in it), perplexity
(SentencePiece's ``encode``, KenLM's ``score``, the compiled normalisation in it), and the compiled kernels of
:mod:`filters.fast_metrics` (word split, character statistics, word repetition), which run in both levels ("kernels of both").
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

from bench.bench_filters import timed_call as _timed  # noqa: E402
from filters.base import FilterStats  # noqa: E402


def old_text_filters(rev: str, folder: Path) -> types.ModuleType:
    """``filters.text_filters`` of ``rev``, bound to ``filters.fast_metrics`` and ``filters.text_checks`` of
    ``rev`` (all loaded under ``_old`` names beside the working tree's)."""
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
    tc = types.ModuleType("filters.text_checks_old")
    sys.modules[tc.__name__] = filters.text_checks_old = tc
    exec(compile(show("filters/text_checks.py"), f"{rev}:filters/text_checks.py", "exec"), tc.__dict__)
    src = (show("filters/text_filters.py")
           .replace("from filters import fast_metrics, text_checks",
                    "from filters import fast_metrics_old as fast_metrics, text_checks_old as text_checks")
           .replace("from filters.fast_metrics import", "from filters.fast_metrics_old import"))
    tf = types.ModuleType("filters.text_filters_old")
    sys.modules[tf.__name__] = tf
    exec(compile(src, f"{rev}:filters/text_filters.py", "exec"), tf.__dict__)
    return tf


# the order parts are printed in; "  " marks a part of the line above
PARTS = ["node level", "document checks", "  kernels of both: words", "  kernels of both: characters", "  kernels of both: word rep.",
         "language id", "  fastText predict", "perplexity", "  SentencePiece encode", "  KenLM score",
         "  kernel: normalisation", "rest (step loop, stats)"]


class _Timed:
    """``obj`` with the methods named in ``keys`` timed (CPU) into ``spent[keys[name]]``: for the models' C++
    objects, whose attributes cannot be replaced."""

    def __init__(self, obj, spent: dict, **keys: str):
        self._obj, self._spent, self._keys = obj, spent, keys

    def __getattr__(self, name: str):
        attr = getattr(self._obj, name)
        key = self._keys.get(name)
        return attr if key is None else _timed(attr, self._spent, key)


def parts(tf, docs, prof, rounds: int) -> dict[str, float]:
    """CPU ms a document spent in each part of ``tf.filter_documents`` (the working tree's chain), the mean of
    ``rounds`` instrumented passes (each timed call adds ~0.5 µs: KenLM's ``score`` is called per distinct line)."""
    from filters import fast_metrics as fm

    chain = tf.text_filter_for(prof)
    spent: dict[str, float] = {}
    methods = [(chain, "filter_nodes", "node level"), (chain, "text_verdict", "document checks")]
    if chain.langid is not None:
        methods.append((chain.langid, "verdicts", "language id"))
    if chain.perplexity is not None:
        methods.append((chain.perplexity, "document_verdicts", "perplexity"))
    kernels = [(fm._SPLIT_COMPILED, "  kernels of both: words"), (fm._COMPILED, "  kernels of both: characters"),
               (fm._WORD_COMPILED, "  kernels of both: word rep."), (fm._NORM_COMPILED, "  kernel: normalisation")]
    swapped = []  # (object, attribute, original)
    try:
        for obj, name, key in methods:
            setattr(obj, name, _timed(getattr(obj, name), spent, key))
        for compiled, key in kernels:
            if compiled:
                swapped.append((compiled, 0, compiled[0]))
                compiled[0] = _timed(compiled[0], spent, key)
        if chain.langid is not None:
            lid = chain.langid.model
            swapped.append((lid, "model", lid.model))
            lid.model = types.SimpleNamespace(f=_Timed(lid.model.f, spent, predict="  fastText predict"))
        if chain.perplexity is not None:
            sc = chain.perplexity.scorer
            swapped += [(sc, "sp", sc.sp), (sc, "model", sc.model)]
            sc.sp = _Timed(sc.sp, spent, encode="  SentencePiece encode")
            sc.model = _Timed(sc.model, spent, score="  KenLM score")
        c0 = time.process_time()
        for _ in range(rounds):
            tf.filter_documents(docs, prof, FilterStats("parts"))
        spent["total"] = time.process_time() - c0
    finally:
        for obj, name, _ in methods:
            delattr(obj, name)  # back to the class's method
        for obj, name, orig in swapped:
            if isinstance(name, int):
                obj[name] = orig
            else:
                setattr(obj, name, orig)
    return {k: v / rounds / len(docs) * 1000 for k, v in spent.items()}


def op(tf, docs, prof, stats: FilterStats, run_op: bool):
    """The text filters' op of the module ``tf``: ``filter_documents``, or with ``run_op`` the steps as a run
    has them (:func:`filters.step.run_step`: ``url_ban``, then ``text_filters`` with its report metrics);
    (kept documents, the url_ban step's counts and the report metrics, or None)."""
    if not run_op:
        return tf.filter_documents(docs, prof, stats), None
    from filters.step import run_step

    docs, ban, _ = run_step(tf.URL_BAN, docs, prof)
    kept, _, values = run_step(tf.TEXT_FILTERS, docs, state=tf.text_filter_for(prof), stats=stats, metrics=True)
    return kept, (ban.as_dict(), values)


def alternated(fn, modules: dict, rounds: int) -> dict[str, float]:
    """Median CPU ms of ``fn(module)`` for each of ``modules`` (label -> module), the order alternated each round."""
    cpu: dict[str, list[float]] = {k: [] for k in modules}
    order = list(modules.items())
    for r in range(rounds):
        for label, mod in order if r % 2 == 0 else order[::-1]:
            c0 = time.process_time()
            fn(mod)
            cpu[label].append(time.process_time() - c0)
    return {k: statistics.median(v) * 1000 for k, v in cpu.items()}


def pieces(old_tf, new_tf, docs, prof, rounds: int) -> list[str]:
    """The report metrics and the url_ban step alone, old against new (outputs compared), as printed lines."""
    from filters.step import run_step

    cases = {"document_metrics": lambda m: m.text_filter_for(prof).document_metrics(docs, m.METRIC_SAMPLE_DOCS),
             "url_ban step": lambda m: run_step(m.URL_BAN, docs, prof)[1].as_dict()}
    out = []
    for what, fn in cases.items():
        if fn(old_tf) != fn(new_tf):
            raise SystemExit(f"{what}: OUTPUTS DIFFER")
        ms = alternated(fn, {"old": old_tf, "new": new_tf}, rounds)
        out.append(f"  {what:16s} old {ms['old']:.2f} new {ms['new']:.2f} CPU ms ({(1 - ms['new'] / ms['old']) * 100:+.1f}%)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--old", default="main", help="git revision of the old code")
    ap.add_argument("--copies", type=int, default=16)
    ap.add_argument("--units", type=int, default=4)
    ap.add_argument("--unit", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--profiles", nargs="+", default=["default", "obelics-2023"])
    ap.add_argument("--inputs-cache", type=Path, help="a folder of corpora made by bench_pipeline --keep-inputs "
                    "(bench_pipeline.cached_inputs): read from there, made there if missing")
    ap.add_argument("--run-op", action="store_true",
                    help="the op as a run has it: url_ban, then text_filters with its report metrics")
    ap.add_argument("--pieces", action="store_true", help="then the report metrics and url_ban alone, old and new")
    ap.add_argument("--parts", action="store_true", help="then the new code's op split into its parts")
    args = ap.parse_args()

    from bench.bench_pipeline import cached_inputs, make_inputs
    from filters import text_filters as new_tf
    from obelics.config import load_profile
    from obelics.extract import iter_extracted

    with tempfile.TemporaryDirectory(prefix="ab-text-filters-") as tmp:
        old_tf = old_text_filters(args.old, Path(tmp))
        inputs = (cached_inputs(args.inputs_cache, args.copies, args.units, "realistic") if args.inputs_cache
                  else make_inputs(Path(tmp), args.copies, args.units))
        units = {u: [d for _, d in iter_extracted(inputs[u], "default")] for u in args.unit}
        for u, docs in units.items():
            for name in args.profiles:
                prof = load_profile(name)
                outs = []
                for tf in (old_tf, new_tf):  # also the warm-up: word lists, models, compiled kernels
                    st = FilterStats("ab")
                    kept, values = op(tf, docs, prof, st, args.run_op)
                    outs.append(([(d.texts, d.images) for d in kept], st.as_dict(), values))
                if outs[0] != outs[1]:
                    print(f"unit {u} {name}: OUTPUTS DIFFER", file=sys.stderr)
                    return 1
                cpu: dict[str, list[float]] = {"old": [], "new": []}
                for r in range(args.rounds):
                    order = [("old", old_tf), ("new", new_tf)]
                    for label, tf in order if r % 2 == 0 else order[::-1]:
                        c0 = time.process_time()
                        op(tf, docs, prof, FilterStats("ab"), args.run_op)
                        cpu[label].append(time.process_time() - c0)
                old, new = (statistics.median(cpu[k]) / len(docs) * 1000 for k in ("old", "new"))
                print(f"unit {u} {name:13s} {len(docs)} documents: old {old:.4f} new {new:.4f} CPU ms a document "
                      f"({(1 - new / old) * 100:+.1f}%), same output")
                if args.pieces:
                    print("\n".join(pieces(old_tf, new_tf, docs, prof, args.rounds)))
                if args.parts:
                    spent = parts(new_tf, docs, prof, args.rounds)
                    total = spent.pop("total")
                    spent["rest (step loop, stats)"] = total - sum(
                        spent.get(k, 0.0) for k in ("node level", "document checks", "language id", "perplexity"))
                    print(f"  parts (CPU ms a document, mean of {args.rounds} instrumented passes; total {total:.4f}):")
                    for k in PARTS:
                        if k in spent:
                            print(f"    {k:30s} {spent[k]:.4f} {spent[k] / total * 100:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
