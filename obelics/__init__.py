"""OBELICS toolkit core: the document model, WARC reading, HTML simplification and extraction."""

from obelics.document import EOD_TOKEN, WebDocument

__all__ = ["EOD_TOKEN", "WebDocument", "extract_html", "iter_warc_documents", "load_profile"]
__version__ = "0.1.0"

# The functions below import their modules on call, so that ``import obelics`` (the document model) stays
# light: extraction pulls in selectolax, warcio and the profile loader, which a reader of documents does
# not need.


def extract_html(html, url, profile="default", **kwargs):
    """Turn one page's HTML (str or bytes) into a :class:`WebDocument` with the given profile."""
    from obelics.extract import extract_html as _extract

    return _extract(html, url, profile=profile, **kwargs)


def iter_warc_documents(path_or_url, profile="default", **kwargs):
    """Yield a :class:`WebDocument` for every HTML response record of a WARC file or URL."""
    from obelics.extract import iter_warc_documents as _iter

    return _iter(path_or_url, profile=profile, **kwargs)


def load_profile(name_or_path="default", overrides=None):
    """Load a pipeline profile (``default``, ``obelics-2023`` or a YAML path)."""
    from obelics.config import load_profile as _load

    return _load(name_or_path, overrides)
