"""A module of this checkout as a git revision has it, loaded beside the working tree's: the benches' A/Bs of old
against new code in one process."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_at(rev: str, path: str, name: str) -> types.ModuleType:
    """The module at ``path`` (relative to the checkout) as revision ``rev`` has it, loaded under ``name`` (its
    functions refer to its own globals; it imports the working tree's other modules)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True,
                         text=True).stdout
    mod = types.ModuleType(name)
    mod.__file__ = f"{rev}:{path}"
    sys.modules[name] = mod  # dataclasses look their module up
    exec(compile(src, mod.__file__, "exec"), mod.__dict__)
    return mod
