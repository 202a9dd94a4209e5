"""``obelics profile [NAME|YAML] [--set KEY=VALUE]``: validate a profile and print it whole, defaults included."""

from __future__ import annotations

import argparse

import yaml

from obelics.commands import result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="validate a pipeline profile and print it with every default",
                       description="Load a profile (its `extends` chain and the --set overrides applied), "
                                   "validate every section, and print the complete profile as YAML.")
    p.add_argument("profile", nargs="?", default="default", help="profile name or YAML (default: default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pipeline.profile import load_profile, resolved

    text = yaml.safe_dump(resolved(load_profile(args.profile, args.set)), sort_keys=False, allow_unicode=True)
    result(text)
    return 0
