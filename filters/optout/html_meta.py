"""Opt-out signals in a page's ``<meta>`` tags: ``robots``/our agent, ``tdm-reservation``, ``tdm-policy``."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

META_NAMES = ("robots", "tdm-reservation", "tdm-policy")
MAX_CHARS = 2_000_000  # the part of a page read for <meta> tags (callers' pre-filters cover the same part)


def meta_signals(html: str | bytes | None, agent_token: str = "", max_chars: int = MAX_CHARS) -> dict[str, list[str]]:
    """``{name: [content, ...]}`` for the opt-out ``<meta name=...>`` tags of ``html`` (lower-case names).

    Names read: ``robots``, ``tdm-reservation``, ``tdm-policy`` and ``agent_token`` (a robots meta
    addressed to our agent, like ``<meta name="obelics-toolkit" content="noai">``).
    """
    if not html:
        return {}
    if isinstance(html, bytes):
        html = html[:max_chars].decode("utf-8", "replace")
    else:
        html = html[:max_chars]
    try:
        tree = LexborHTMLParser(html)
    except Exception:  # noqa: BLE001 - a page we cannot parse has no readable signal
        return {}
    return meta_signals_of_tree(tree, agent_token)


def meta_signals_of_tree(tree: LexborHTMLParser, agent_token: str = "") -> dict[str, list[str]]:
    """:func:`meta_signals` of a page already parsed (``tree``: lexbor's parse of the text, unchanged since)."""
    wanted = set(META_NAMES) | ({agent_token.lower()} if agent_token else set())
    out: dict[str, list[str]] = {}
    try:
        nodes = tree.css("meta[name]")
    except Exception:  # noqa: BLE001 - a page we cannot parse has no readable signal
        return {}
    for node in nodes:
        name = (node.attributes.get("name") or "").strip().lower()
        content = node.attributes.get("content")
        if name in wanted and content is not None:
            out.setdefault(name, []).append(content.strip())
    return out


def meta_robots_values(signals: dict[str, list[str]], agent_token: str) -> list[str]:
    """Robots-meta values that apply to us: ``robots`` plus the one named after our agent token.

    The agent-named meta carries bare directives, so they are scoped by prefixing ``agent:``.
    """
    values = list(signals.get("robots", []))
    token = agent_token.lower()
    values += [f"{token}: {v}" for v in signals.get(token, [])] if token else []
    return values
