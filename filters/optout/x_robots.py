"""X-Robots-Tag headers and ``<meta name="robots">`` directives, scoped by user agent.

Written here rather than taken from img2dataset's ``is_disallowed``, which reads
``unavailable_after: <date>`` as a user agent named "unavailable_after", ignores ``none`` and only
takes an ``email.message.Message``. Rules (Google's documented syntax):

- a header value is a comma-separated list of directives, optionally preceded by ``agent:``;
  a later ``agent:`` in the same value starts a new scope (``googlebot: noindex, otherbot: noai``);
- directives without a scope apply to every agent; scoped ones only to the named agent;
- names are case-insensitive; several headers are all read, each on its own (a scope never runs from
  one header line into the next: ``googlebot: noindex`` then ``noai`` leaves ``noai`` for everyone),
  so repeated headers are kept as a list of lines, never joined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from email.message import Message

# Directives that take a value after a colon: "max-snippet: 20" is not a user agent named max-snippet.
_VALUED = {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}

Headers = Mapping[str, "str | list[str]"] | Iterable[tuple[str, str]] | Message


def header_values(headers: Headers | None, name: str) -> list[str]:
    """Every value of header ``name`` (case-insensitive) in a dict, a list of pairs or a Message."""
    if not headers:
        return []
    name = name.lower()
    if isinstance(headers, Message):
        return [str(v) for v in headers.get_all(name, [])]
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: list[str] = []
    for key, value in items:
        if str(key).lower() != name or value is None:
            continue
        if isinstance(value, (list, tuple)):
            out.extend(str(v) for v in value)
        else:
            out.append(str(value))
    return out


def parse_directives(value: str) -> list[tuple[str | None, str]]:
    """``(agent or None, directive)`` pairs of one X-Robots-Tag / robots-meta value, lower-cased."""
    out: list[tuple[str | None, str]] = []
    agent: str | None = None
    for token in value.split(","):
        token = token.strip()
        if not token:
            continue
        head, sep, rest = token.partition(":")
        head = head.strip().lower()
        if sep and head not in _VALUED and " " not in head:
            agent, token = head, rest.strip()
            if not token:
                continue
            head, sep, rest = token.partition(":")
            head = head.strip().lower()
        out.append((agent, head))
    return out


def directives_for(values: Iterable[str], agent_token: str) -> set[str]:
    """The directives that apply to ``agent_token`` across header/meta ``values``."""
    token = agent_token.lower()
    found: set[str] = set()
    for value in values:
        for agent, directive in parse_directives(value):
            if agent is None or agent == token:
                found.add(directive)
    return found


def header_disallows(values: Iterable[str], agent_token: str | None, disallowed: Iterable[str]) -> bool:
    """Whether X-Robots-Tag header ``values`` (one per header line) disallow ``agent_token``."""
    found = directives_for(values, agent_token or "")
    return any(d.lower() in found for d in disallowed)


def x_robots_verdict(headers: Headers | None, agent_token: str, disallowed: Iterable[str]) -> str | None:
    """``optout:x-robots-tag:<directive>`` when a disallowed directive applies to us, else None."""
    found = directives_for(header_values(headers, "x-robots-tag"), agent_token)
    for d in disallowed:
        if d.lower() in found:
            return f"optout:x-robots-tag:{d.lower()}"
    return None
