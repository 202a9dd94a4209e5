"""Single-core extraction speed: WARC.gz -> documents, beside a parse floor measured in the same run.

Two corpora, each a WARC.gz made here of real pages repeated to ``--pages`` records:

- ``warc``: the HTML response records of ../shared/data/warc (their exact gzip members, copied);
- ``html``: the pages of ../shared/data/html, wrapped as response records.

For each corpus the script measures, in one process pinned to one core:

- ``floor``: gunzip + warcio record iteration + one lexbor parse of the payload bytes + one walk of
  every node (the minimum any lexbor-based extractor pays);
  the ``default`` profile's walk is the compiled one (obelics/html/_walk.pyx) where it is built, which
  the first line of the output says;
- ``reader``: ``obelics.warc.iter_html_records`` alone (recovery layer, charset choice);
- ``default`` and ``obelics-2023``: ``obelics.iter_warc_documents`` end to end;
- ``default, no main-content decision``: ``default`` with ``extract.main_content: off`` (the rules before
  issue 16), so the decision's cost shows in the same run.

It prints pages/s and MB/s (uncompressed HTML payload) and the ratios to the floor and to the
original OBELICS code (12.8 pages/s on the HTML pages, 20.4 on the WARC records, same machine class:
../shared/data/reference/README.md).

    .venv/bin/python -m bench.bench_extract                  # ~3,000 pages per corpus
    .venv/bin/python -m bench.bench_extract --pages 500 --pages-2023 100 --runs 1   # quick check
    .venv/bin/python -m bench.bench_extract --op --cpu-time   # the pipeline's extract op, step by step
    .venv/bin/python -m bench.bench_extract --op-ab text-reads --runs 8   # the op with a change off / on, alternated
    .venv/bin/python -m bench.bench_extract --op-ab base --ab-so OLD.so --ab-rev REV --runs 8  # REV's reader and walk
    .venv/bin/python -m bench.bench_extract --op-in-run --runs 6   # the op as a run charges it vs the op alone
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

from bench.revisions import module_at

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("OBELICS_SHARED", ROOT.parent / "shared"))
ORIGINAL_PAGES_S = {"warc": 20.4, "html": 12.8}  # original end to end, reference README


def html_records_of_shared_warcs() -> list[bytes]:
    """The raw gzip members of every complete HTML 200 response record of the shared WARCs."""
    from obelics.warc import iter_html_records, read_record_at

    members = []
    for path in sorted((SHARED / "data" / "warc").glob("*.warc*")):
        if ".wat." in path.name or ".wet." in path.name:
            continue
        for rec in iter_html_records(path):
            data = read_record_at(path, rec.warc_record_offset, rec.warc_record_length)
            if not data.startswith(b"\x1f\x8b"):  # uncompressed source WARC: compress the record
                import gzip

                data = gzip.compress(data, mtime=0)
            d = zlib.decompressobj(31)
            d.decompress(data)
            if d.eof:  # leave out the clipped record (a truncated member is not valid mid-file)
                members.append(data)
    return members


def html_pages_as_records() -> list[bytes]:
    """The shared HTML pages as gzip-member response records, with their reference URLs."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    urls = {}
    ref = SHARED / "data" / "reference" / "shared_html.jsonl"
    for line in ref.open():
        o = json.loads(line)
        urls[o["file"]] = o["url"]
    members = []
    for path in sorted((SHARED / "data" / "html").glob("*.html")):
        buf = io.BytesIO()
        w = WARCWriter(buf, gzip=True)
        body = path.read_bytes()
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))],
                                protocol="HTTP/1.1")
        url = urls.get(path.name, f"https://example.org/{path.name}").replace(" ", "%20")
        w.write_record(w.create_warc_record(url, "response",
                                            payload=io.BytesIO(body), http_headers=http))
        members.append(buf.getvalue())
    return members


def write_corpus(members: list[bytes], pages: int, path: Path) -> int:
    """Write ``members`` cycled to ``pages`` records; returns the number written."""
    with open(path, "wb") as f:
        for i in range(pages):
            f.write(members[i % len(members)])
    return pages


def run_floor(path: Path) -> tuple[int, int]:
    from selectolax.lexbor import LexborHTMLParser
    from warcio.archiveiterator import ArchiveIterator

    n = nbytes = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response":
                continue
            payload = rec.content_stream().read()
            tree = LexborHTMLParser(payload)
            nodes = 0
            if tree.root is not None:
                for _ in tree.root.traverse(include_text=True):
                    nodes += 1
            n += 1
            nbytes += len(payload)
    return n, nbytes


def run_reader(path: Path) -> tuple[int, int]:
    from obelics.warc import iter_html_records

    n = nbytes = 0
    for rec in iter_html_records(path):
        n += 1
        nbytes += len(rec.payload)
    return n, nbytes


def run_profile(path: Path, profile: str, limit: int | None = None) -> tuple[int, int]:
    from obelics.extract import iter_warc_documents
    from obelics.records import ReadStats

    stats = ReadStats()
    n = 0
    for _doc in iter_warc_documents(path, profile=profile, stats=stats):
        n += 1
        if limit and n >= limit:
            break
    return n, stats.bytes_read


def breakdown(path: Path, runs: int = 5) -> dict:
    """CPU ms per page of each step of the ``default`` profile, beside a C-level and a Python-level walk.

    Steps: the WARC reader; lexbor's parse; the whole extraction (``extract_nodes``), whose remainder is
    the walk with the rules (the compiled walk where it is built); the same with the Python walk
    (``compiled=False``: lexbor's parse with the script/style removal of ``simplify_default``, then the
    walk). Walks (of trees parsed beforehand): lexbor's ``traverse`` (the floor's walk) and a bare Python
    walk reading each node's tag and attributes (the least a Python extractor pays).
    """
    from selectolax.lexbor import LexborHTMLParser

    from obelics.extract import extract_config
    from obelics.html.extract_default import extract_nodes, simplify_default
    from obelics.warc import iter_html_records

    cfg = extract_config("default")
    records = list(iter_html_records(path))
    trees = [LexborHTMLParser(r.html) for r in records]

    def reader():
        for _ in iter_html_records(path):
            pass

    def parse():
        for r in records:
            LexborHTMLParser(r.html)

    def parse_strip():
        for r in records:
            simplify_default(r.html, cfg)

    def extract():
        for r in records:
            extract_nodes(r.html, r.url, cfg)

    def extract_python():
        for r in records:
            extract_nodes(r.html, r.url, cfg, compiled=False)

    def c_walk():
        for tree in trees:
            for _ in tree.root.traverse(include_text=True):
                pass

    def python_walk():
        for tree in trees:
            stack, node = [], tree.root.first_child
            while True:
                if node is None:
                    if not stack:
                        break
                    node = stack.pop().next
                    continue
                if node.tag != "-text":
                    node.attributes  # noqa: B018 - what a Python extractor reads at each element
                child = node.first_child
                if child is None:
                    node = node.next
                else:
                    stack.append(node)
                    node = child

    out = {}
    for name, fn in (("reader", reader), ("parse", parse), ("parse_strip", parse_strip), ("extract", extract),
                     ("extract_python", extract_python), ("c_walk", c_walk), ("python_walk", python_walk)):
        times = []
        for _ in range(runs):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        out[name] = statistics.median(times) / len(records) * 1000
    return out


def op_steps(copies: int = 16, runs: int = 3) -> dict:
    """CPU ms per page of the pipeline's ``extract`` op and of each of its steps, on one unit of the realistic
    corpus (:mod:`bench.corpus`, as ``bench_pipeline --copies N --units 2`` makes it: a WARC of ~70 pages a
    copy, six records a page) with the pipeline bench's offline settings. Each step runs over every page of
    the unit in turn (median of ``runs``); the op is timed whole too (its steps' sum should come near it)."""
    from selectolax.lexbor import LexborHTMLParser

    from bench.bench_pipeline import OFFLINE, make_inputs
    from filters.optout.stage import page_signals
    from obelics.document import WebDocument
    from obelics.extract import _default_input, _without_refused_images, extract_config
    from obelics.html import content
    from obelics.html import extract_default as ed
    from obelics.html.urls import resolve_url
    from obelics.records import ReadStats
    from obelics.warc import WarcConfig
    from pipeline import stages
    from pipeline.images.offline import html_records_locating_images
    from pipeline.profile import load_profile

    profile = load_profile("default", OFFLINE)
    cfg, wcfg = extract_config(profile), profile.section("warc", WarcConfig)
    if ed._compiled is None or not cfg.main_content:
        raise SystemExit("--op measures the compiled walk with the main-content decision")
    rules = ed._rules(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in").mkdir()
        src = make_inputs(Path(tmp) / "in", copies, 2)[0]
        steps: dict = {}

        def step(name, fn):
            times, out = [], None
            for _ in range(runs):
                t = time.process_time()
                out = fn()
                times.append(time.process_time() - t)
            steps[name] = statistics.median(times)
            return out

        recs = step("WARC read (inflate, records, charset; image records noted)",
                    lambda: list(html_records_locating_images(src, wcfg, ReadStats(), [])))
        step("page budget checks (size, tags, nesting depth)",
             lambda: [cfg.page_budget().check_size(r.payload) for r in recs])
        # the page's own steps, each timed page by page (a tree is dropped after its page, as in the op)
        names = ("page input (UTF-8 bytes as they are, else decoded)", "lexbor parse", "<base href>",
                 "main-content decision (statistics pass + decision, C)",
                 "compiled walk and its rules (incl. image URLs)", "repeated lines, refused image URLs",
                 "WebDocument")
        per_run = {k: [] for k in names}
        clock = time.process_time
        for _ in range(runs):
            spent = dict.fromkeys(names, 0.0)
            for r in recs:
                t0 = clock()
                html = _default_input(r, cfg)
                t1 = clock()
                tree = LexborHTMLParser(html)
                t2 = clock()
                href = ed._compiled.base_href(tree.head)
                base = (resolve_url(r.url, href) or r.url) if href else r.url
                body = tree.body
                t3 = clock()
                plan = ed._plan(body, rules, cfg, True) if body is not None else None
                t4 = clock()
                out = ed._compiled.walk(body, r.url, base, cfg, rules, plan) if body is not None else ([], [], [])
                t5 = clock()
                for k, text in enumerate(out[0]):
                    if text is not None and "\n" in text:
                        out[0][k] = content.without_repeated_lines(text, cfg.repeated_line_chars)
                texts, images, metadata = _without_refused_images(*out)
                t6 = clock()
                WebDocument(texts=texts, images=images, metadata=metadata, general_metadata=r.general_metadata,
                            capture_date=r.capture_date)
                t7 = clock()
                del tree, body, plan
                for k, a, b in zip(names, (t0, t1, t2, t3, t4, t5, t6), (t1, t2, t3, t4, t5, t6, t7)):
                    spent[k] += b - a
            for k in names:
                per_run[k].append(spent[k])
        steps.update({k: statistics.median(v) for k, v in per_run.items()})
        step("opt-out signals of the page (headers, <meta>)", lambda: [page_signals(r, "") for r in recs])
        whole = {}
        stages._extract(src, {"profile": profile, "stage_dir": tmp, "unit": "u"})  # warm-up: first-call imports
        step("the op whole (pipeline.stages._extract)",
             lambda: whole.update(r=stages._extract(src, {"profile": profile, "stage_dir": tmp, "unit": "u"})))
    pages = whole["r"][1][0]["read"]["html_records"]
    return {"pages": pages, "copies": copies, "ms": {k: v / pages * 1000 for k, v in steps.items()}}


def print_op_steps(r: dict) -> None:
    ms = r["ms"]
    names = list(ms)
    print(f"\n== the pipeline's extract op on one realistic-corpus unit ({r['pages']} pages, --copies {r['copies']}); "
          "CPU ms a page, median")
    for k in names[:-1]:
        print(f"{k:<62}{ms[k]:>8.3f}")
    print(f"{'sum of the steps':<62}{sum(ms[k] for k in names[:-1]):>8.3f}")
    print(f"{names[-1]:<62}{ms[names[-1]]:>8.3f}")


def _text_reads(on: bool) -> None:
    from obelics.html import extract_default

    extract_default._compiled.text_reads(on)


def _node_reads(on: bool) -> None:
    from obelics.html import extract_default

    extract_default._compiled.node_reads(on)


_HINT: dict = {}


def _meta_hint(on: bool) -> None:
    """off: the opt-out's <meta> hint as ``_META_HINT.search`` over the page; on: the regex tried at the compiled
    candidates only (``filters.optout.stage._meta_hint``)."""
    from filters.optout import stage

    compiled = _HINT.setdefault("on", stage._meta_hint)
    stage._meta_hint = compiled if on else (
        lambda payload: stage._META_HINT.search(payload, 0, 4 * stage.META_MAX_CHARS) is not None)


def _meta_tree(on: bool) -> None:
    """off: the opt-out's <meta> tags read by parsing the page again; on: from the extraction's tree."""
    from filters.optout import stage

    real = _HINT.setdefault("page_signals", stage.page_signals)
    stage.page_signals = real if on else (lambda record, token="", tree=None: real(record, token))


def _walk_module(path: str):
    """The compiled walk built at ``path`` (an earlier build of ``_walk.pyx``), loaded beside the installed one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("obelics.html._walk", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _use_walk(mod) -> None:
    """Make ``mod`` the compiled walk ``extract_default`` runs (its tag tables made again on the next page)."""
    from obelics.html import extract_default

    mod.configure(extract_default)
    extract_default._compiled = mod
    for _cfg, rules in extract_default._RULES.values():
        rules.tag_table = None


def _walk_builds(path: str):
    from obelics.html import _walk

    other = _walk_module(path)
    return (lambda: _use_walk(other), lambda: _use_walk(_walk))


def _swap_functions(target, source) -> dict:
    """Put ``source``'s module-level functions in ``target`` in place of those of the same name; the ones
    replaced, to put back."""
    import types

    kept = {}
    for k, v in vars(source).items():
        if isinstance(v, types.FunctionType) and v.__module__ == source.__name__ and isinstance(
                getattr(target, k, None), types.FunctionType):
            kept[k] = getattr(target, k)
            setattr(target, k, v)
    return kept


def _base_builds(so: str, rev: str):
    """off: the reader of revision ``rev`` (``obelics/warc.py``'s functions) with the compiled walk built at
    ``so`` (that revision's ``_walk.pyx``; the walk, the decision, the budget's counts, the UTF-8 check); on:
    this checkout's. The whole op of a session's start against the current one, in one process."""
    from obelics import budget, warc
    from obelics.html import _walk

    other = _walk_module(so)
    base = module_at(rev, "obelics/warc.py", "obelics_warc_base")
    current = _swap_functions(warc, base)  # the functions replaced, put back at once
    for k, v in current.items():
        setattr(warc, k, v)

    def off():
        _swap_functions(warc, base)
        _use_walk(other)
        budget._SCAN[:] = [other]

    def on():
        for k, v in current.items():
            setattr(warc, k, v)
        _use_walk(_walk)
        budget._SCAN[:] = [_walk]

    return off, on


_PY_MODULES = ("obelics/warc.py", "obelics/html/extract_default.py", "obelics/html/media_2023.py", "obelics/html/urls.py",
               "obelics/html/content.py")


def _py_base_builds(rev: str):
    """off: the module-level functions of :data:`_PY_MODULES` as revision ``rev`` has them; on: this checkout's;
    the compiled walk is this checkout's in both (made again each time, so it calls the image functions in
    place). The Python changes of a session against its start, in one process."""
    import importlib
    import types

    from obelics.html import _walk

    swaps = []
    for path in _PY_MODULES:
        target = importlib.import_module(path[:-3].replace("/", "."))
        base = module_at(rev, path, path[:-3].replace("/", "_") + "_base")
        current = _swap_functions(target, base)
        for k, v in current.items():
            setattr(target, k, v)
        swaps.append((target, base, current))
    # a base module's names imported from another of these modules (``from ... import format_filename``) are
    # this checkout's functions: bind them to that module's base functions
    bases = {target.__name__: base for target, base, _current in swaps}
    for _target, base, _current in swaps:
        for k, v in list(vars(base).items()):
            if isinstance(v, types.FunctionType) and v.__module__ in bases and hasattr(bases[v.__module__], k):
                setattr(base, k, getattr(bases[v.__module__], k))

    def off():
        for target, base, _current in swaps:
            _swap_functions(target, base)
        _use_walk(_walk)

    def on():
        for target, _base, current in swaps:
            for k, v in current.items():
                setattr(target, k, v)
        _use_walk(_walk)

    return off, on


# --op-ab: a change of the op that can be switched off in the running process, as (off, on); a callable taking
# the --ab-so path (and --ab-rev) for the walk's builds
AB_SWITCHES = {
    # the walk and the decision's statistics read text nodes' bytes in place, or lexbor's copies of them
    "text-reads": (lambda: _text_reads(False), lambda: _text_reads(True)),
    # the walk, the decision's statistics and the counts read nodes' links, tag ids and types from their fields,
    # or through lexbor's functions
    "node-reads": (lambda: _node_reads(False), lambda: _node_reads(True)),
    # the opt-out <meta> hint: the regex over the whole page, or tried at the compiled candidates only
    "meta-hint": (lambda: _meta_hint(False), lambda: _meta_hint(True)),
    # the opt-out <meta> tags: parsed again, or read from the extraction's tree
    "meta-tree": (lambda: _meta_tree(False), lambda: _meta_tree(True)),
    # both of the above (ext18's opt-out cuts)
    "meta": (lambda: (_meta_hint(False), _meta_tree(False)), lambda: (_meta_hint(True), _meta_tree(True))),
    # off: the compiled walk built at --ab-so (e.g. from main's _walk.pyx); on: the one built here
    "walk-so": _walk_builds,
    # off: the reader of --ab-rev and the compiled walk built at --ab-so from that revision; on: this checkout's
    "base": _base_builds,
    # off: the Python functions of the reader and the default walk's helpers (_PY_MODULES) at --ab-rev; on: this
    # checkout's; the same compiled walk
    "py-base": _py_base_builds,
}


def op_ab(switch: str, copies: int = 16, passes: int = 8, so: str | None = None, rev: str | None = None) -> dict:
    """CPU ms per page of the pipeline's ``extract`` op with ``switch`` off and on, in one process, the two
    alternated pass by pass (ABBA order) on one unit of the realistic corpus; each pass's documents, counts
    and image-record list are compared with the first pass's (a change must not change them)."""
    from bench.bench_pipeline import OFFLINE, make_inputs
    from pipeline import stages
    from pipeline.profile import load_profile

    profile = load_profile("default", OFFLINE)
    off, on = (AB_SWITCHES[switch] if switch not in ("walk-so", "base", "py-base")
               else AB_SWITCHES[switch](so) if switch == "walk-so"
               else AB_SWITCHES[switch](rev) if switch == "py-base" else AB_SWITCHES[switch](so, rev))
    times: dict = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in").mkdir()
        src = make_inputs(Path(tmp) / "in", copies, 2)[0]

        def run(mode: str, k: int):
            out = Path(tmp) / f"{mode}{k}"
            out.mkdir()
            t = time.process_time()
            r = stages._extract(src, {"profile": profile, "stage_dir": str(out), "unit": "u"})
            times[mode].append(time.process_time() - t)
            return r, ([d.to_row() for d in r[0]], r[1], sorted(p.read_bytes() for p in out.rglob("*") if p.is_file()))

        on()
        run("on", -1)  # warm-up: first-call imports
        times["on"].clear()
        first = None
        try:
            for k in range(passes):
                for mode in (("off", "on") if k % 2 == 0 else ("on", "off")):
                    (off if mode == "off" else on)()
                    r, files = run(mode, k)
                    first = first if first is not None else files
                    if files != first:
                        raise SystemExit(f"--op-ab {switch}: pass {k} ({mode}) wrote other documents")
        finally:
            on()
    pages = r[1][0]["read"]["html_records"]
    ms = {m: [t / pages * 1000 for t in v] for m, v in times.items()}
    return {"switch": switch, "pages": pages, "copies": copies, "passes": passes, "ms": ms,
            "median": {m: statistics.median(v) for m, v in ms.items()}, "load": os.getloadavg()}


def op_in_run(copies: int = 16, rounds: int = 5, cache: Path | None = None) -> dict:
    """CPU ms a page of the ``extract`` op as a run charges it (a run without Ray on ``copies`` copies in 4
    units: ``stats.json`` -> ``cpu.stages[].ops``, what ``bench_pipeline``'s fit reads) and of the same op
    called alone on the same WARCs (as ``--op`` times it), in one process, the two alternated ``rounds`` times
    (ABBA). Their ratio separates CPU the run charges to the op besides its work from a difference in the
    machine's state between two sessions' figures (BENCHMARKS.md issue 17, gap18)."""
    import shutil

    from bench.bench_pipeline import OFFLINE, cached_inputs, make_inputs
    from pipeline import stages
    from pipeline.profile import load_profile
    from pipeline.run import run

    profile = load_profile("default", OFFLINE)
    ms: dict = {"run": [], "alone": []}
    pages: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if cache is not None:
            inputs = cached_inputs(cache, copies, 4, "realistic")
        else:
            (Path(tmp) / "in").mkdir()
            inputs = make_inputs(Path(tmp) / "in", copies, 4)
        alone_dir = Path(tmp) / "alone"
        alone_dir.mkdir()
        stages._extract(inputs[0], {"profile": profile, "stage_dir": str(alone_dir), "unit": "w"})  # first-call imports

        def in_run(k: int) -> tuple[float, int]:
            out = Path(tmp) / f"run{k}"
            s = run("default", str(out), inputs, overrides=OFFLINE + ["run.use_ray=false"])
            shutil.rmtree(out)
            cpu = sum(o["cpu_seconds"] for st in s["cpu"]["stages"] for o in st.get("ops", []) if o["op"] == "extract")
            return cpu, s["cpu"]["pages"]

        def alone(k: int) -> tuple[float, int]:
            cpu, n = 0.0, 0
            for i, src in enumerate(inputs):
                t = time.process_time()
                _, st = stages._extract(src, {"profile": profile, "stage_dir": str(alone_dir), "unit": f"u{k}-{i}"})
                cpu += time.process_time() - t
                n += st[0]["read"]["html_records"]
            return cpu, n

        for k in range(rounds):
            for mode in (("run", "alone") if k % 2 == 0 else ("alone", "run")):
                cpu, n = (in_run if mode == "run" else alone)(k)
                pages.setdefault(mode, n)
                ms[mode].append(cpu / n * 1000)
    if pages["run"] != pages["alone"]:
        raise SystemExit(f"--op-in-run: the run read {pages['run']} pages, the op alone {pages['alone']}")
    ratios = [a / b for a, b in zip(ms["run"], ms["alone"])]
    return {"copies": copies, "pages": pages["run"], "rounds": rounds, "ms": ms, "ratios": ratios,
            "median": {m: statistics.median(v) for m, v in ms.items()}, "median_ratio": statistics.median(ratios),
            "load": os.getloadavg()}


def print_op_in_run(r: dict) -> None:
    med = r["median"]
    print(f"\n== the extract op in a run without Ray (its op_cpu) and alone on the same {r['pages']} pages "
          f"(--op-copies {r['copies']}, 4 units), alternated {r['rounds']} times; CPU ms a page")
    for m in ("run", "alone"):
        print(f"{m:<5} median {med[m]:.3f}  rounds {' '.join(f'{x:.3f}' for x in r['ms'][m])}")
    print(f"run / alone: median {r['median_ratio']:.3f} (rounds {' '.join(f'{x:.3f}' for x in r['ratios'])}); "
          f"load average {' '.join(f'{x:.1f}' for x in r['load'])}")


def print_op_ab(r: dict) -> None:
    med = r["median"]
    print(f"\n== the extract op, {r['switch']} off / on, alternated {r['passes']} times ({r['pages']} pages, "
          f"--copies {r['copies']}); CPU ms a page; same documents in every pass")
    for m in ("off", "on"):
        print(f"{m:<4} median {med[m]:.3f}  min {min(r['ms'][m]):.3f}  passes {' '.join(f'{x:.3f}' for x in r['ms'][m])}")
    print(f"on / off: {med['on'] / med['off']:.3f} ({100 * (med['on'] / med['off'] - 1):+.1f}%); "
          f"load average {' '.join(f'{x:.1f}' for x in r['load'])}")


CLOCK = time.perf_counter  # --cpu-time: time.process_time (this process's CPU seconds, for a loaded machine)


def timed(fn, *args, runs: int = 1) -> dict:
    times, result = [], None
    for _ in range(runs):
        t = CLOCK()
        result = fn(*args)
        times.append(CLOCK() - t)
    sec = statistics.median(times)
    pages, nbytes = result
    return {"pages": pages, "mb": nbytes / 1e6, "seconds": sec, "pages_s": pages / sec, "mb_s": nbytes / 1e6 / sec}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=3000, help="records per corpus (default 3000)")
    ap.add_argument("--pages-2023", type=int, default=300, help="records for the slow obelics-2023 profile")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--corpus", choices=["warc", "html", "both"], default="both")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    ap.add_argument("--json", help="also write the figures as JSON")
    ap.add_argument("--breakdown", action="store_true",
                    help="also print CPU ms per page of each step of the default profile (unique pages)")
    ap.add_argument("--op", action="store_true",
                    help="only the pipeline's extract op, step by step, on one unit of the realistic bench corpus")
    ap.add_argument("--op-copies", type=int, default=16, help="--op: copies of the shared WARCs (2 units made)")
    ap.add_argument("--op-ab", choices=sorted(AB_SWITCHES),
                    help="only the extract op with this change off and on, alternated --runs times (CPU time)")
    ap.add_argument("--op-in-run", action="store_true",
                    help="only the extract op as a run without Ray charges it against the op alone, alternated "
                         "--runs times (CPU time)")
    ap.add_argument("--keep-inputs", type=Path, metavar="DIR",
                    help="--op-in-run: the corpus cached in DIR (bench_pipeline --keep-inputs's layout)")
    ap.add_argument("--ab-so", help="--op-ab walk-so, base: the earlier build of the compiled walk (a .so path)")
    ap.add_argument("--ab-rev", help="--op-ab base: the earlier revision whose obelics/warc.py is compared")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time in CPU seconds of this process instead of wall time (other jobs on shared cores)")
    args = ap.parse_args(argv)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    if not (SHARED / "data").exists():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    if args.op_ab:
        if args.op_ab in ("walk-so", "base") and not (args.ab_so and Path(args.ab_so).is_file()):
            print(f"--op-ab {args.op_ab} needs --ab-so PATH, an earlier build of the compiled walk", file=sys.stderr)
            return 2
        if args.op_ab in ("base", "py-base") and not args.ab_rev:
            print("--op-ab base needs --ab-rev REV, the revision --ab-so was built from", file=sys.stderr)
            return 2
        r = op_ab(args.op_ab, args.op_copies, args.runs, args.ab_so, args.ab_rev)
        print_op_ab(r)
        if args.json:
            Path(args.json).write_text(json.dumps(r, indent=2))
        return 0
    if args.op_in_run:
        r = op_in_run(args.op_copies, args.runs, args.keep_inputs)
        print_op_in_run(r)
        if args.json:
            Path(args.json).write_text(json.dumps(r, indent=2))
        return 0
    if args.op:
        r = op_steps(args.op_copies, args.runs)
        print_op_steps(r)
        if args.json:
            Path(args.json).write_text(json.dumps(r, indent=2))
        return 0

    corpora = ["warc", "html"] if args.corpus == "both" else [args.corpus]
    from obelics.html import extract_default

    walk_name = "compiled" if extract_default._compiled is not None else "Python"
    print(f"default profile walk: {walk_name}"
          + (f" ({extract_default.COMPILED_MISSING})" if extract_default._compiled is None else
             " (obelics/html/_walk.pyx)"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in corpora:
            members = html_records_of_shared_warcs() if name == "warc" else html_pages_as_records()
            path = Path(tmp) / f"{name}.warc.gz"
            write_corpus(members, args.pages, path)
            path_2023 = Path(tmp) / f"{name}-2023.warc.gz"
            write_corpus(members, min(args.pages, args.pages_2023), path_2023)
            off = Path(tmp) / "default-no-main-content.yaml"
            off.write_text("extends: default\nname: default-no-main-content\nextract:\n  main_content: false\n")
            # warm-up: imports, profile loading, first-call costs
            run_profile(path, "default", limit=20)
            run_profile(path, str(off), limit=20)
            run_profile(path_2023, "obelics-2023", limit=5)
            r = {
                "unique_pages": len(members),
                "compressed_mb": path.stat().st_size / 1e6,
                "floor": timed(run_floor, path, runs=args.runs),
                "reader": timed(run_reader, path, runs=args.runs),
                "default": timed(run_profile, path, "default", runs=args.runs),
                "default, no main-content decision": timed(run_profile, path, str(off), runs=args.runs),
                "obelics-2023": timed(run_profile, path_2023, "obelics-2023", runs=1),
            }
            results[name] = r
            print(f"\n== {name}: {len(members)} unique pages cycled to {args.pages} records "
                  f"({r['floor']['mb']:.1f} MB of HTML, {r['compressed_mb']:.1f} MB gzipped); "
                  f"median of {args.runs} run(s), one core")
            print(f"{'what':<36}{'pages':>8}{'pages/s':>10}{'MB/s':>8}{'floor/x':>9}{'x/original':>12}")
            for key in ("floor", "reader", "default", "default, no main-content decision", "obelics-2023"):
                m = r[key]
                ratio_floor = r["floor"]["pages_s"] / m["pages_s"]
                ratio_orig = m["pages_s"] / ORIGINAL_PAGES_S[name]
                print(f"{key:<36}{m['pages']:>8}{m['pages_s']:>10.1f}{m['mb_s']:>8.1f}{ratio_floor:>9.2f}{ratio_orig:>12.1f}")
            print(f"default is {r['floor']['pages_s'] / r['default']['pages_s']:.2f}x slower than the parse floor "
                  f"(goal <= 2x) and {r['default']['pages_s'] / ORIGINAL_PAGES_S[name]:.0f}x the original "
                  f"({ORIGINAL_PAGES_S[name]} pages/s; goal > 40x)")
            if args.breakdown:
                unique = Path(tmp) / f"{name}-unique.warc.gz"
                write_corpus(members, len(members), unique)
                b = r["breakdown"] = breakdown(unique)
                print(f"CPU ms per page ({len(members)} unique pages, median of 5): reader {b['reader']:.3f}; "
                      f"lexbor parse {b['parse']:.3f}; {walk_name} walk and rules {b['extract'] - b['parse']:.3f}; "
                      f"extraction in all {b['extract']:.3f}")
                print(f"  with the Python walk: parse + script/style removal {b['parse_strip']:.3f}, walk and rules "
                      f"{b['extract_python'] - b['parse_strip']:.3f}, extraction in all {b['extract_python']:.3f}")
                print(f"  walks alone (trees parsed beforehand): lexbor traverse {b['c_walk']:.3f}, "
                      f"bare Python walk reading tags and attributes {b['python_walk']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
