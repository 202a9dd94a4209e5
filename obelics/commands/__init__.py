"""Sub-commands of the ``obelics`` CLI, one module each (see ``obelics.cli``).

A command writes its result (the JSON summary, a profile, a table) with :func:`result`; everything else
(progress, logs) goes to the logger or stderr, so stdout can be piped (``obelics run ... | jq``).
"""

from __future__ import annotations

import sys
from typing import TextIO

_RESULT: TextIO | None = None


def set_result_stream(stream: TextIO | None) -> None:
    """Where :func:`result` writes (set by ``obelics.cli.main``; None: ``sys.stdout``)."""
    global _RESULT
    _RESULT = stream


def result(text: str) -> None:
    """Write ``text`` (a line is added) as the command's result on stdout (nothing with ``--quiet``)."""
    stream = _RESULT if _RESULT is not None else sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()
