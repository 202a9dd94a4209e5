"""``obelics resources fetch|status|build-lm``: the filter resources no package ships."""

from __future__ import annotations

import argparse
from pathlib import Path

from obelics.commands import result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resources", help="fetch the original word lists and models; build the offline LM",
                       description="fetch: download the original OBELICS/BigScience word lists, fastText "
                                   "lid.176.bin and the edugp/kenlm Wikipedia English model into the cache "
                                   "(needs a network). status: show what is cached. build-lm: build the "
                                   "offline English KenLM model (builtin-en).")
    rs = p.add_subparsers(dest="action", metavar="ACTION")
    rs.required = True
    f = rs.add_parser("fetch", help="download resources into the cache")
    f.add_argument("--only", nargs="+", choices=["wordlists", "langid", "kenlm"],
                   default=["wordlists", "langid", "kenlm"])
    f.add_argument("--dir", help="cache folder (default: $OBELICS_RESOURCES or ~/.cache/obelics/resources)")
    f.add_argument("--force", action="store_true", help="download again even if present")
    f.set_defaults(func=fetch_main)
    s = rs.add_parser("status", help="show which resources are cached")
    s.add_argument("--dir")
    s.set_defaults(func=status_main)
    b = rs.add_parser("build-lm", help="build the offline English KenLM model")
    b.add_argument("-o", "--out", help="output folder (default build/resources/builtin-en)")
    b.add_argument("--force", action="store_true")
    b.set_defaults(func=build_main)


def fetch_main(args: argparse.Namespace) -> int:
    from filters import resources

    done = resources.fetch(args.only, Path(args.dir) if args.dir else None, args.force)
    for item, paths in done.items():
        for p in paths:
            result(f"{item}: {p}")
    return 0


def status_main(args: argparse.Namespace) -> int:
    from filters import resources

    d = Path(args.dir) if args.dir else resources.cache_dir()
    result(f"cache: {d}")
    for name, present in resources.status(d).items():
        result(f"  {'ok     ' if present else 'missing'} {name}")
    return 0


def build_main(args: argparse.Namespace) -> int:
    from filters import lm_build

    d = lm_build.build(args.out or lm_build.DEFAULT_DIR, force=args.force)
    result(str(d))
    return 0
