"""Where the toolkit finds its shipped files and keeps the files it makes.

Shipped files (the profiles and run YAMLs of ``configs/``, the sample pages) come from the checkout when
the toolkit runs from one (an editable install, ``PYTHONPATH``), else from the installed package, where
the wheel puts ``configs/`` as ``obelics/configs`` (``pyproject.toml``). What the toolkit makes (the
sample WARC, the built-in language model, fetched resources) goes to ``build/`` in a checkout and to the
user's cache folder otherwise (``$OBELICS_CACHE``, else platformdirs' user cache folder: ``~/.cache/obelics``
on Linux); never into ``site-packages``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None for an installed package."""
    root = _PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "configs" / "pipeline").is_dir():
        return root
    return None


def configs_dir() -> Path:
    """The ``configs/`` folder: the checkout's, else the one shipped in the wheel (``obelics/configs``)."""
    root = checkout_root()
    if root is not None:
        return root / "configs"
    return _PACKAGE / "configs"


def user_cache_dir() -> Path:
    """The user's cache folder for the toolkit (``$OBELICS_CACHE``, else platformdirs' user cache)."""
    if os.environ.get("OBELICS_CACHE"):
        return Path(os.environ["OBELICS_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "obelics"
    import platformdirs

    return Path(platformdirs.user_cache_dir("obelics", appauthor=False))


def build_dir() -> Path:
    """Where built files go: ``build/`` in a checkout, the user's cache folder for an installed package."""
    root = checkout_root()
    return root / "build" if root is not None else user_cache_dir()
