"""The ``obelics`` command line.

Each sub-command lives in its own module under ``obelics/commands/`` with a ``register(subparsers)``
function, so commands owned by different packages (extraction, filters, pipeline, publishing) stay
independent of each other. A command module imports the packages that do its work inside its ``main``:
``obelics --help`` builds every sub-parser, and should not start by loading Ray, torch or Numba.

The CLI is the top layer: it may import every package, and nothing imports it (tests/test_imports.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Order shown in --help; each is a module obelics/commands/<name>.py (tests/test_imports.py checks it).
COMMANDS = ["extract", "filter", "images", "run", "report", "publish", "resources", "sample", "profile", "view"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obelics", description="Build OBELICS-style interleaved datasets.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"obelics.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError) as e:
        print(f"obelics {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
