"""docs/hostile-input.md states every budget key with the value the profiles really use."""

from __future__ import annotations

import re

import pytest

from pipeline.profile import load_profile, resolved
from tests.test_docs import ROOT

ROW = re.compile(r"^\| `([a-z_]+(?:\.[a-z_]+)+)` \| ([^|]*) \|(?: ([^|]*) \|)?")
VALUE = re.compile(r"^\s*(null|same|[\d,.]+)?\s*$")  # an obelics-2023 column (tables with one), else text


def _number(text: str):
    text = text.strip().replace(",", "")
    if text == "null":
        return None
    return float(text)


def documented() -> list[tuple[str, object, object]]:
    """``(key, default, obelics-2023)`` of every table row naming a key (``same``/empty: the default's)."""
    rows = []
    for line in (ROOT / "docs" / "hostile-input.md").read_text().splitlines():
        m = ROW.match(line)
        if m:
            default = _number(m.group(2))
            other = (m.group(3) or "").strip() if VALUE.match(m.group(3) or "") else ""
            rows.append((m.group(1), default, default if other in ("", "same") else _number(other)))
    return rows


def _value(profile: dict, key: str):
    for part in key.split("."):
        profile = profile[part]
    return profile


def test_every_page_download_and_fetch_budget_key_is_documented_with_its_value():
    rows = documented()
    keys = {k for k, _, _ in rows}
    for required in ("extract.page_max_seconds", "extract.page_max_chars", "extract.page_max_tags",
                     "extract.page_max_depth", "images.max_seconds", "images.max_bytes", "images.max_pixels",
                     "images.max_decode_pixels", "optout.http.max_seconds", "optout.http.max_bytes"):
        assert required in keys
    profiles = {name: resolved(load_profile(name)) for name in ("default", "obelics-2023")}
    for key, default, old in rows:
        for name, want in (("default", default), ("obelics-2023", old)):
            got = _value(profiles[name], key)
            assert (got is None) if want is None else got == pytest.approx(want), (name, key, got)
