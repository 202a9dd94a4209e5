"""TDMRep (W3C TDM Reservation Protocol): HTTP headers, HTML ``<meta>``, ``/.well-known/tdmrep.json``.

- header ``tdm-reservation: 1`` (``tdm-policy`` may accompany it) reserves the resource;
- ``<meta name="tdm-reservation" content="1">`` does the same for an HTML page;
- ``/.well-known/tdmrep.json`` at the origin is a JSON array of rules
  ``{"location": "/path/pattern*", "tdm-reservation": 0|1, "tdm-policy": "..."}``; the first rule
  whose location matches the URL's path applies (patterns use robots.txt syntax: a prefix, ``*``
  for any characters, a trailing ``$`` for the end of the path).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from filters.optout.x_robots import Headers, header_values


def _reserved(value) -> bool:
    return str(value).strip() == "1"


def header_verdict(headers: Headers | None) -> str | None:
    """``optout:tdmrep:header`` if a ``tdm-reservation: 1`` header is present."""
    return "optout:tdmrep:header" if any(_reserved(v) for v in header_values(headers, "tdm-reservation")) else None


def meta_verdict(signals: dict[str, list[str]]) -> str | None:
    """``optout:tdmrep:meta`` if a ``<meta name="tdm-reservation" content="1">`` is present."""
    return "optout:tdmrep:meta" if any(_reserved(v) for v in signals.get("tdm-reservation", [])) else None


@lru_cache(maxsize=4096)
def _pattern(location: str) -> re.Pattern:
    anchored = location.endswith("$")
    body = location[:-1] if anchored else location
    if not body.startswith(("/", "*")):
        body = "/" + body
    rx = ".*".join(re.escape(part) for part in body.split("*"))
    return re.compile(rx + ("$" if anchored else ""))


@dataclass(frozen=True)
class TdmRule:
    location: str
    reserved: bool
    policy: str | None = None

    def matches(self, path: str) -> bool:
        return _pattern(self.location).match(path) is not None


class TdmRepError(ValueError):
    """A tdmrep.json that is not a JSON array of rules."""


def parse_tdmrep(text: str | bytes) -> list[TdmRule]:
    """Rules of a ``tdmrep.json`` body; raises :class:`TdmRepError` if it is not valid."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise TdmRepError(f"tdmrep.json is not JSON: {e}") from e
    if isinstance(data, dict):  # a single rule object: tolerated
        data = [data]
    if not isinstance(data, list):
        raise TdmRepError("tdmrep.json is not a JSON array")
    rules = []
    for item in data:
        if not isinstance(item, dict) or "location" not in item:
            continue  # a malformed rule is ignored; the others still count
        rules.append(TdmRule(str(item["location"]), _reserved(item.get("tdm-reservation", 0)),
                             item.get("tdm-policy")))
    return rules


def rules_verdict(rules: list[TdmRule], url: str) -> str | None:
    """``optout:tdmrep:well-known`` if the first rule matching ``url``'s path reserves it."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    for rule in rules:
        if rule.matches(path):
            return "optout:tdmrep:well-known" if rule.reserved else None
    return None
