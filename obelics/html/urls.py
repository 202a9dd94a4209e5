"""Image URLs for the ``default`` profile: ``srcset`` parsing and RFC 3986 resolution.

Resolution is :func:`urllib.parse.urljoin` (RFC 3986 §5) against the page URL or ``<base href>``;
validation is :func:`urllib.parse.urlsplit` (http/https with a host; ports and IP hosts are valid).
``srcset`` parsing is hand-written because the standard library has none: it follows the HTML
standard's algorithm (a URL is a run of non-space characters, so URLs with commas such as
``/w_300,h_200/x.jpg`` survive; trailing commas end a candidate; descriptors run to the next comma
outside parentheses).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit

_WS = " \t\n\r\f"
_SAFE = ":/?#[]@!$&'()*+,;=%~"
_SKIP_SCHEMES = ("data:", "javascript:", "blob:", "about:", "mailto:", "tel:", "file:", "chrome:")


_SKIP_SEPARATORS = re.compile(r"[ \t\n\r\f,]*")
_URL_RUN = re.compile(r"[^ \t\n\r\f]*")


def parse_srcset(value: str) -> list[tuple[str, float | None, float | None]]:
    """``srcset`` -> ``[(url, width_w, density_x), ...]`` (missing descriptors are None)."""
    out = []
    i, n = 0, len(value)
    while i < n:
        i = _SKIP_SEPARATORS.match(value, i).end()
        if i >= n:
            break
        end = _URL_RUN.match(value, i).end()
        url = value[i:end]
        i = end
        descriptors = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            comma = value.find(",", i)
            if comma < 0:
                comma = n
            if "(" in value[i:comma]:  # a comma inside parentheses does not end the descriptors
                comma = _descriptors_end(value, i)
            descriptors = value[i:comma]
            i = comma + 1
        if url:
            out.append((url, *descriptor_values(descriptors)))
    return out


def descriptor_values(descriptors: str) -> tuple[float | None, float | None]:
    """``(width_w, density_x)`` of a srcset candidate's descriptors (the last of each wins; bad ones are
    ignored)."""
    width = density = None
    for d in descriptors.split():
        try:
            if d.endswith("w"):
                width = float(d[:-1])
            elif d.endswith("x"):
                density = float(d[:-1])
        except ValueError:
            pass
    return width, density


def _descriptors_end(value: str, i: int) -> int:
    """Index of the comma that ends a candidate's descriptors (outside parentheses), or ``len(value)``."""
    depth, n = 0, len(value)
    while i < n:
        c = value[i]
        if c == "(":
            depth += 1
        elif c == ")" and depth:
            depth -= 1
        elif c == "," and depth == 0:
            break
        i += 1
    return i


def best_candidate(candidates: list[tuple[str, float | None, float | None]]) -> str | None:
    """The largest candidate: by ``w`` width when any has one, else by ``x`` density (default 1x)."""
    if not candidates:
        return None
    if any(w is not None for _, w, _ in candidates):
        return max(candidates, key=lambda c: c[1] if c[1] is not None else -1.0)[0]
    return max(candidates, key=lambda c: c[2] if c[2] is not None else 1.0)[0]


def resolve_url(base: str, value: str | None) -> str | None:
    """``value`` made absolute against ``base`` (RFC 3986), or None when it is not a usable
    http(s) URL (empty, ``data:``/``javascript:``, no host, bad port)."""
    if not value:
        return None
    value = value.strip(_WS)
    if not value or value.startswith("#"):
        return None
    low = value[:12].lower()
    if low.startswith(_SKIP_SCHEMES):
        return None
    try:
        url = urljoin(base, value) if base else value
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if any(c in url for c in ' "<>\\^`{|}'):
        url = quote(url, safe=_SAFE)
    return url
