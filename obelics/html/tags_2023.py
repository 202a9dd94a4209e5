"""Tag lists and separators of the original OBELICS build (docs/reference.md App. A.1-A.3, A.6-A.8)."""

from __future__ import annotations

# A.1: style-only tags, unwrapped (content kept).
UNWRAP_TAGS = [
    "a", "abbr", "acronym", "b", "bdi", "bdo", "big", "cite", "code", "data", "dfn", "em", "font", "i",
    "ins", "kbd", "mark", "q", "s", "samp", "shadow", "small", "span", "strike", "strong", "sub", "sup",
    "time", "tt", "u", "var", "wbr",
]

# A.2: kept tags; every other element is removed with its subtree (digits deleted before lookup).
STRUCTURE_TAGS = [
    "address", "article", "aside", "blink", "blockquote", "body", "br", "caption", "center", "dd", "dl",
    "dt", "div", "figcaption", "h", "h1", "h2", "h3", "h4", "h5", "h6", "hgroup", "html", "legend", "main",
    "marquee", "ol", "p", "section", "summary", "title", "ul",
]
MEDIA_TAGS = ["audio", "embed", "figure", "iframe", "img", "object", "picture", "video"]
MEDIA_OR_SOURCE_TAGS = frozenset(MEDIA_TAGS + ["source"])
INTERESTING_TAGS = frozenset(STRUCTURE_TAGS + MEDIA_TAGS + ["source"])

# A.3: separator implied by a tag on the path between two text nodes.
TAG_TO_SEP = {
    "address": "\n", "article": "\n", "aside": "\n", "blink": "", "blockquote": "\n\n", "body": "",
    "caption": "", "center": "\n", "dd": "\n", "dl": "\n\n", "dt": "\n", "div": "\n", "figcaption": "\n",
    "h": "", "h1": "\n\n", "h2": "\n\n", "h3": "\n\n", "h4": "\n\n", "h5": "\n\n", "h6": "\n\n",
    "hgroup": "\n", "html": "", "legend": "\n", "main": "\n", "marquee": "\n", "ol": "\n\n", "p": "\n\n",
    "section": "\n", "summary": "\n", "title": "", "ul": "\n\n",
}

# A.6: <div> id/class/title values (exact match) removed with their subtree.
SPECIAL_DIV_VALUES = frozenset(["footer", "header", "navigation", "nav", "navbar", "menu"])

# A.8: <img> source attributes, in priority order.
IMG_SOURCE_ATTRIBUTES = [
    "src", "data-src", "data-src-fg", "data-scroll-image", "srcset", "data-lateloadsrc", "data-img-src",
    "data-original", "data-gt-lazy-src", "data-lazy", "data-lazy-src", "src2",
]

BR_MARKER = "#BR_TAG#"
EOD_REPLACEMENT = "\n\nEND_OF_DOCUMENT_TOKEN_TO_BE_REPLACED\n\n"
