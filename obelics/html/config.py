"""The ``extract`` section of a profile: which HTML -> document rules run, and their settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from obelics.budget import BudgetLimits, PageBudget

DEFAULT_REMOVE_TAGS = [
    "head", "script", "style", "template", "noembed", "noframes", "nav", "footer", "form", "button", "select",
    "textarea", "input", "option", "label", "fieldset", "iframe", "frame", "frameset", "object", "embed",
    "applet", "canvas", "svg", "math", "map", "audio", "video", "track", "menu", "dialog",
]
# whole-word classes of boilerplate blocks (the original's `footer` and `site-info` rules included)
DEFAULT_REMOVE_CLASSES = [
    "footer", "site-info", "sidebar", "breadcrumb", "breadcrumbs", "screen-reader-text", "sr-only",
    "visually-hidden", "skip-link", "share", "sharing", "social", "cookie-notice", "related-posts",
    "comment-respond", "menu", "navbar", "nav", "navigation", "related", "advertisement", "ad-container",
    "ad", "ads", "promo", "sponsored",
]
# class words containing one of these are boilerplate blocks too (`td-main-sidebar`, `widget-area`)
DEFAULT_REMOVE_CLASS_SUBSTRINGS = ["sidebar", "widget-area", "related", "cookie-banner", "cookie-consent", "sharedaddy",
                                   "likes-widget", "advert", "newsletter-signup", "sharebar", "share-bar",
                                   "share-button", "social-share", "social-icon", "-rail", "__rail"]
# ...unless the word also holds one of these: it then names a wrapper around the content
# (`content-has-sidebar`, `sticky-sidebar-parent`, `layout-right-sidebar`)
DEFAULT_WRAPPER_MARKERS = ["parent", "relative", "has-", "has_", "with-", "content", "wrap", "layout", "active",
                           "both", "position", "and-"]
# class words or ids starting with one of these: navigation blocks (`navi-box`, `nav-menu`, `navbar-top`)
DEFAULT_REMOVE_CLASS_PREFIXES = ["nav-", "nav_", "navi", "navbar", "breadcrumb", "share-", "sharing-", "social-", "ad-",
                                 "ads-"]
# ARIA landmarks and widgets that are never page content
DEFAULT_REMOVE_ROLES = [
    "navigation", "banner", "contentinfo", "menu", "menubar", "search", "dialog", "alertdialog", "complementary",
]
# class/id words of content containers and of boilerplate, for the main-content decision (substrings)
DEFAULT_CONTENT_POSITIVE = ["article", "body", "content", "entry", "main", "page", "post", "text", "blog", "story",
                            "prose", "markdown"]
DEFAULT_CONTENT_NEGATIVE = ["comment", "sidebar", "related", "share", "sharing", "social", "footer", "foot",
                            "masthead", "banner", "sponsor", "promo", "advert", "widget", "newsletter", "subscribe",
                            "outbrain", "taboola", "recommend", "popular", "trending", "cookie", "breadcrumb",
                            "menu", "nav", "tags", "byline", "author", "meta", "shopping", "hidden", "skip"]
# the original's special divs: id, class or title exactly one of these (docs/reference.md App. A.6)
DEFAULT_SPECIAL_DIV_VALUES = ["footer", "header", "navigation", "nav", "navbar", "menu"]


@dataclass
class ExtractConfig:
    """The ``extract`` section. ``mode`` picks the rule set; the other keys tune it."""

    mode: Literal["default", "obelics-2023"] = "default"
    # obelics-2023: the production decoding step (bs4 html.parser re-serialisation) before simplifying
    bs4_roundtrip: bool = False
    # obelics-2023: elements removed with their subtree / replaced by a text (the original's CSS rules);
    # default: extra CSS selectors run by lexbor (none: the rules below are checked during the walk)
    css_remove: list[str] = field(default_factory=list)
    css_replace: dict[str, str] = field(default_factory=dict)
    # --- default mode only -------------------------------------------------------------------
    # the main-content decision (obelics/html/content.py): keep the page's content blocks (text, figures,
    # captions, tables, lists, code) and drop the boilerplate around them; off: the rules before issue 16
    main_content: bool = True
    min_block_chars: int = 25  # a text block scores when it owns at least this many characters
    content_positive: list[str] = field(default_factory=lambda: list(DEFAULT_CONTENT_POSITIVE))
    content_negative: list[str] = field(default_factory=lambda: list(DEFAULT_CONTENT_NEGATIVE))
    # a text block is prose from this many characters; short blocks before the first prose block and short
    # ones (under content_tail_chars) after the last are the title, byline, share and tag lines
    content_good_chars: int = 40
    content_tail_chars: int = 60
    # hidden blocks inside an <article>/<main> are kept without the decision (collapsed text); with it, the
    # content is chosen on what shows: off drops them too
    content_keep_hidden: bool = False
    # with the decision: a line of at least this many characters equal to the line before it is dropped
    # (a full and a truncated copy of one caption); 0: kept
    repeated_line_chars: int = 30
    # an article split in parts of one class: their common ancestor is the root when they hold this share of
    # its text
    content_parts_share: float = 0.3
    content_candidates: int = 40  # containers compared with their class/id evidence (the best by score alone)
    content_sibling_chars: int = 80
    content_sibling_share: float = 1.0
    # a container under an element with a class/id word starting with one of these is never the content root
    content_section_negative: list[str] = field(default_factory=lambda: ["comment", "disqus"])
    # inside the content, a container with few commas and more than this share of link text is dropped
    content_max_link_density: float = 0.33
    # ...and a text block of fewer characters than this that is mostly (this share) one link: a link line
    content_link_line_density: float = 0.8
    content_link_line_chars: int = 200
    remove_tags: list[str] = field(default_factory=lambda: list(DEFAULT_REMOVE_TAGS))
    remove_classes: list[str] = field(default_factory=lambda: list(DEFAULT_REMOVE_CLASSES))
    remove_class_substrings: list[str] = field(default_factory=lambda: list(DEFAULT_REMOVE_CLASS_SUBSTRINGS))
    wrapper_markers: list[str] = field(default_factory=lambda: list(DEFAULT_WRAPPER_MARKERS))
    remove_class_prefixes: list[str] = field(default_factory=lambda: list(DEFAULT_REMOVE_CLASS_PREFIXES))
    remove_roles: list[str] = field(default_factory=lambda: list(DEFAULT_REMOVE_ROLES))
    special_div_values: list[str] = field(default_factory=lambda: list(DEFAULT_SPECIAL_DIV_VALUES))
    # a block matched by the class/id/role/style rules is removed only when it holds less than this share
    # of the page's text: layout wrappers such as `content-has-sidebar` hold the article itself
    max_boilerplate_text_share: float = 0.5
    remove_hidden: bool = True  # hidden, aria-hidden=true (not on img), style display:none / visibility:hidden
    eod_classes: list[str] = field(default_factory=lambda: ["more-link"])  # "read more" links: an EOD paragraph
    # <header> and <aside> are boilerplate (site header, sidebar) unless inside an <article>, where they
    # hold the title, pull quotes and in-text images
    article_only_tags: list[str] = field(default_factory=lambda: ["header", "aside"])
    keep_lists: bool = True  # li/dt/dd as lines
    max_list_link_density: float = 0.6  # a ul/ol/dl/table whose text is mostly link text is a menu: dropped
    keep_tables: bool = True  # cells as text, one row per line
    noscript_images: bool = False  # images inside <noscript>: almost all trackers and ads (text never kept)
    drop_image_classes: list[str] = field(default_factory=lambda: ["avatar", "emoji", "wp-smiley"])  # substrings
    min_declared_size: int = 2  # images declaring width or height below this (1x1 pixels) are dropped
    remove_dates: bool = False  # the original's "class contains date" rule
    drop_consecutive_duplicate_images: bool = True  # lazy <img> + <noscript><img> of the same URL
    # --- every mode: a page over its budget is skipped as page_budget:<time|memory|depth> (obelics.budget)
    page_max_seconds: float = 20.0  # wall time of one page's extraction; 0: no limit
    page_max_chars: int = 12_000_000  # characters (or bytes) of the page
    page_max_tags: int = 400_000  # `<` in the page, an upper bound on its elements
    page_max_depth: int = 5_000  # estimated nesting depth (the HTML5 parser is quadratic in it)

    def page_budget(self):
        """A fresh :class:`obelics.budget.PageBudget` for one page, its clock started now."""
        return PageBudget(BudgetLimits(self.page_max_seconds, self.page_max_chars, self.page_max_tags,
                                       self.page_max_depth))
