"""The perplexity normalisation of docs/reference.md §5.2, in Python (the reference the compiled
:func:`filters.fast_metrics.normalize_many` is checked against).

Non-printing characters 0-31 and 127-159 removed (``\\n`` included, without replacement), strip, the odd
spaces of docs/reference.md §5.1 made ASCII spaces, every digit ``0``, the CCNet UNICODE_PUNCTUATION table; case kept.
"""

from __future__ import annotations

import re

from filters.text_metrics import WHITESPACE_CHARS

NON_PRINTING_CHARACTERS_RE = re.compile(f"[{''.join(map(chr, list(range(0, 32)) + list(range(127, 160))))}]")
DIGITS_RE = re.compile(r"\d")

# CCNet / BigScience table (docs/reference.md §5.1), data.
UNICODE_PUNCTUATION = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"', "」": '"',
    "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!", "（": "(", "）": ")",
    "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<",
    "〉": ">", "【": "[", "】": "]", "％": "%", "►": "-",
}
_PUNCT_RE = re.compile("|".join(map(re.escape, UNICODE_PUNCTUATION)))
_WS_RE = re.compile(f"[{WHITESPACE_CHARS}]")


def normalize(text: str) -> str:
    """The docs/reference.md §5.2 normalisation (note: it deletes ``\\n`` without replacement).

    Substitutions go through regexes that only touch the matched characters (``str.translate`` costs a
    dictionary lookup per character); the result is the same.
    """
    text = NON_PRINTING_CHARACTERS_RE.sub("", text).strip()
    text = _WS_RE.sub(" ", text)
    text = DIGITS_RE.sub("0", text)
    return _PUNCT_RE.sub(_punct, text)


def _punct(m: re.Match) -> str:
    return UNICODE_PUNCTUATION[m.group()]


def normalize_each(texts: list[str]) -> list[str]:
    """:func:`normalize` of every text."""
    return [normalize(t) for t in texts]
