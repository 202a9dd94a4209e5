"""The ``obelics`` command line.

Each sub-command lives in its own module under ``obelics/commands/`` with a ``register(subparsers)``
function, so commands owned by different packages (extraction, filters, pipeline, publishing) stay
independent of each other. A command module imports the packages that do its work inside its ``main``:
``obelics --help`` builds every sub-parser, and should not start by loading Ray, torch or Numba.

Conventions: the global flags (``-v``/``--verbose``, ``-q``/``--quiet``) may come before or after the
sub-command; logs, progress lines and whatever libraries print (img2dataset's banner, Ray) go to stderr;
stdout carries only the command's result (``obelics run``: the JSON summary), written through
:func:`obelics.commands.result`, or nothing with ``--quiet``, so ``obelics run ... | jq`` works. A user
error (bad option, profile, key, output folder) is one line on stderr and exit code 2; a network failure
or a run stopped by a systemic loss is one line and exit code 1; ``-v`` adds the traceback.

The CLI is the top layer: it may import every package, and nothing imports it (tests/test_imports.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import sys
import traceback

from obelics import commands

# Order shown in --help; each is a module obelics/commands/<name>.py (tests/test_imports.py checks it).
COMMANDS = ["extract", "filter", "images", "run", "report", "publish", "resources", "sample", "profile", "view"]
GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "-q": "quiet", "--quiet": "quiet"}


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("obelics-toolkit")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        from obelics import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obelics", description="Build OBELICS-style interleaved datasets. "
                                     "-v and -q may also follow the sub-command.")
    parser.add_argument("--version", action="version", version=f"obelics-toolkit {version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (and tracebacks)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only; nothing on stdout")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"obelics.commands.{name}").register(sub)
    return parser


def hoist_global_flags(argv: list[str]) -> list[str]:
    """``argv`` with the global flags moved in front of the sub-command (argparse reads a parent's
    options only before it); everything after ``--`` is left alone."""
    flags, rest = [], []
    for i, a in enumerate(argv):
        if a == "--":
            rest.extend(argv[i:])
            break
        (flags if a in GLOBAL_FLAGS else rest).append(a)
    return flags + rest


def is_network_error(e: BaseException) -> bool:
    """An error of the network (DNS, connection, HTTP): OSError (requests, urllib, huggingface_hub) or httpx's."""
    if isinstance(e, OSError):
        return True
    return any(c.__module__.split(".")[0].startswith("httpx") and c.__name__ in ("HTTPError", "TransportError")
               for c in type(e).__mro__)


@contextlib.contextmanager
def results_to_stdout(quiet: bool):
    """Point file descriptor 1 at stderr for the command (so every library's prints and child processes'
    output land there) and yield the real stdout for the result. Under a test's capture (stdout not fd 1)
    the result goes to ``sys.stdout`` and nothing is moved."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        fd = None
    if fd != 1:
        yield io.StringIO() if quiet else sys.stdout
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        yield io.StringIO() if quiet else real
    finally:
        real.flush()
        real.close()
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(hoist_global_flags(list(sys.argv[1:] if argv is None else argv)))
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    with results_to_stdout(args.quiet) as out:
        commands.set_result_stream(out)
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            return 130
        except (FileNotFoundError, ValueError) as e:  # user errors (ConfigError, PreflightError: ValueErrors)
            return _fail(args, e, 2, "error")
        except Exception as e:
            from pipeline.loss import SystemicLoss

            if isinstance(e, SystemicLoss):
                return _fail(args, e, 1, "stopped")
            if is_network_error(e):
                return _fail(args, e, 1, "network error")
            raise
        finally:
            commands.set_result_stream(None)


def _fail(args: argparse.Namespace, e: BaseException, code: int, what: str) -> int:
    if args.verbose:
        traceback.print_exc(file=sys.stderr)
    message = " ".join(str(e).split()) or type(e).__name__
    print(f"obelics {args.command}: {what}: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
