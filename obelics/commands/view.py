"""``obelics view OUT [--port N] [--host H]``: a local web viewer of a run folder (finished or in progress).

Documents rendered as they will be trained on (paragraphs and images in page order), browse and search
(text, URL, domain), random samples, the funnel of ``stats.json`` with a sample of what each stage dropped
for each reason (with its metric and threshold), and one page as ``obelics-2023`` and ``default`` extract
it. Served on 127.0.0.1 unless ``--host`` says otherwise; needs the ``view`` extra
(``pip install 'obelics-toolkit[view]'``).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="browse a run's documents and what each filter dropped, in a web browser",
                       description=__doc__)
    p.add_argument("out_dir", metavar="OUT", help="the run's folder (local path or s3://...)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import importlib.util

    from obelics import storage

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"the viewer needs {' and '.join(missing)}: pip install 'obelics-toolkit[view]'")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, not {args.port}")
    out = args.out_dir
    if not storage.isdir(out):
        raise FileNotFoundError(f"{out} is not a folder")
    if not any(storage.exists(storage.join(out, n)) for n in ("run.json", "parquet", "stats.json")):
        raise ValueError(f"{out} holds no run (no run.json, parquet/ or stats.json)")
    from pipeline.view.app import serve

    serve(out, host=args.host, port=args.port, announce=lambda line: print(line, flush=True))
    return 0
