"""Bytes -> HTML string: the original build's bs4 decoding step, and the ``default`` decoding rule."""

from __future__ import annotations

import codecs
import re
import warnings

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_:.\-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class DecodeError(ValueError):
    """The page could not be decoded (the original's ``html_error``)."""


def _require_bs4() -> None:
    """bs4 comes with the ``obelics-2023`` extra (only that profile's decoding uses it)."""
    try:
        import bs4  # noqa: F401
    except ImportError:
        raise ImportError("the obelics-2023 decoding needs beautifulsoup4<4.13: "
                          "pip install 'obelics-toolkit[obelics-2023]'") from None


def detect_charset_2023(payload: bytes) -> str | None:
    """The first candidate of bs4's ``EncodingDetector(payload, is_html=True)``."""
    _require_bs4()
    from bs4.dammit import EncodingDetector

    for enc in EncodingDetector(payload, is_html=True).encodings:
        return enc
    return None


def bs4_roundtrip(markup: str | bytes, charset: str | None = None) -> str:
    """``BeautifulSoup(markup, "html.parser", from_encoding=charset).decode_contents(formatter="html")``.

    This is the re-serialisation the production build ran before simplifying: html.parser repairs
    broken markup (unclosed ``<noscript>``, ``<BR>`` -> ``<br/>``) and entities are re-encoded.
    """
    _require_bs4()
    from bs4 import BeautifulSoup

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(markup, str):
            soup = BeautifulSoup(markup, "html.parser")
        else:
            soup = BeautifulSoup(markup, "html.parser", from_encoding=charset)
    html = soup.decode_contents(formatter="html")
    html.encode()  # the original rejected pages that do not encode to UTF-8
    return html


def decode_2023(payload: bytes, identified_charset: str | None = None, roundtrip: bool = True) -> str:
    """The original ``get_html_from_warc`` after record selection: charset from
    ``WARC-Identified-Content-Charset`` else bs4's detector, then the bs4 round trip (or, with
    ``roundtrip=False``, a plain decode with that charset: the reference's "direct path").

    Raises :class:`DecodeError` where the original returned ``html = ""`` with an error.
    """
    if not payload:
        raise DecodeError("Not page or encoding")
    charset = identified_charset or detect_charset_2023(payload)
    if not charset:
        raise DecodeError("Not page or encoding")
    try:
        if not roundtrip:
            return payload.decode(charset, errors="replace")
        return bs4_roundtrip(payload, charset)
    except Exception as e:  # noqa: BLE001 - the original mapped every failure to an error string
        raise DecodeError(str(e)) from e


def sniff_charset(payload: bytes) -> str | None:
    """A byte-order mark, else a ``<meta charset>`` / ``http-equiv`` declaration in the first 4 KB."""
    for bom, name in _BOMS:
        if payload.startswith(bom):
            return name
    m = _META_CHARSET.search(payload[:4096])
    if m:
        name = m.group(1).decode("ascii", "ignore").lower()
        try:
            codecs.lookup(name)
            return name
        except LookupError:
            return None
    return None


def decode_default(payload: bytes, charset: str | None = None) -> str:
    """The ``default`` rule for bytes: the given charset, else BOM/meta, else strict UTF-8, else
    charset-normalizer's best guess (512 bytes or more), else windows-1252; undecodable bytes become
    U+FFFD."""
    for name in (charset, sniff_charset(payload)):
        if name:
            try:
                return payload.decode(name, errors="replace")
            except LookupError:
                pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        if len(payload) < 512:  # too little text for detection to beat the HTML standard's fallback
            raise ValueError
        from charset_normalizer import from_bytes

        best = from_bytes(payload[:65536]).best()
        if best is not None:
            return payload.decode(best.encoding, errors="replace")
    except Exception:  # noqa: BLE001 - detection is best effort
        pass
    return payload.decode("windows-1252", errors="replace")
