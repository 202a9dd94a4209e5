"""The ``extract`` section of a profile: which HTML -> document rules run, and their settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from obelics.html.tags_2023 import EOD_REPLACEMENT

DEFAULT_REMOVE_TAGS = [
    "head", "script", "style", "template", "noembed", "noframes", "nav", "footer", "form", "button", "select",
    "textarea", "input", "option", "label", "fieldset", "iframe", "frame", "frameset", "object", "embed",
    "applet", "canvas", "svg", "math", "map", "audio", "video", "track", "menu", "dialog", "aside",
]
DEFAULT_REMOVE_CSS = [
    # the original's CSS rules and special divs (reference A.6, A.7)
    "[class~='footer']", "[class~='site-info']",
    "div[id='footer'], div[id='header'], div[id='navigation'], div[id='nav'], div[id='navbar'], div[id='menu']",
    "div[class='footer'], div[class='header'], div[class='navigation'], div[class='nav'], div[class='navbar'], "
    "div[class='menu']",
    # ARIA landmarks and widgets that are never page content, hidden elements
    "[role='navigation'], [role='banner'], [role='contentinfo'], [role='menu'], [role='menubar'], "
    "[role='search'], [role='dialog'], [role='alertdialog'], [role='complementary']",
    "[hidden], [aria-hidden='true']",
    # whole-word classes of common boilerplate blocks
    "[class~='sidebar'], [class~='widget'], [class~='breadcrumb'], [class~='breadcrumbs'], "
    "[class~='screen-reader-text'], [class~='sr-only'], [class~='visually-hidden'], [class~='skip-link'], "
    "[class~='share'], [class~='sharing'], [class~='social'], [class~='cookie-notice'], [class~='related-posts'], "
    "[class~='comment-respond'], [class~='menu']",
]


@dataclass
class ExtractConfig:
    """The ``extract`` section. ``mode`` picks the rule set; the other keys tune it."""

    mode: Literal["default", "obelics-2023"] = "default"
    # obelics-2023: the production decoding step (bs4 html.parser re-serialisation) before simplifying
    bs4_roundtrip: bool = False
    # elements removed with their subtree (both modes; obelics-2023 uses the original's two rules)
    css_remove: list[str] = field(default_factory=lambda: list(DEFAULT_REMOVE_CSS))
    # elements replaced by the end-of-document marker text (the original's `more-link` rule)
    css_replace: dict[str, str] = field(default_factory=lambda: {"[class~='more-link']": EOD_REPLACEMENT})
    # --- default mode only -------------------------------------------------------------------
    remove_tags: list[str] = field(default_factory=lambda: list(DEFAULT_REMOVE_TAGS))
    keep_header_in_article: bool = True  # <header> inside <article> holds the title: kept
    keep_lists: bool = True  # li/dt/dd as lines
    max_list_link_density: float = 0.6  # a ul/ol/dl whose text is mostly link text is a menu: dropped
    keep_tables: bool = True  # cells as text, one row per line
    noscript_images: bool = True  # images inside <noscript> (lazy-load fallbacks) are kept, their text not
    min_declared_size: int = 2  # images declaring width or height below this (1x1 pixels) are dropped
    remove_dates: bool = False  # the original's "class contains date" rule
    drop_consecutive_duplicate_images: bool = True  # lazy <img> + <noscript><img> of the same URL
