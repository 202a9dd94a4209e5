"""``obelics sample [-o PATH]``: build the embedded sample WARC (offline; what ``make sample`` does)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from obelics.sample.build_sample import DEFAULT_OUT

    p = sub.add_parser("sample", help="build the embedded sample WARC (pages written for the project + photos)",
                       description="Build the deterministic sample WARC from obelics/sample/pages and "
                                   "scikit-image's bundled photos.")
    p.add_argument("-o", "--out", default=str(DEFAULT_OUT), help="output WARC (default: %(default)s)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from obelics.sample.build_sample import main as build_main

    return build_main(["-o", args.out])
