"""obelics-2023 extraction: the test vectors of docs/reference.md §11 and the lexbor differences of §12."""

from __future__ import annotations

import pytest

from obelics.extract import extract_config, extract_html
from obelics.html.config import ExtractConfig
from obelics.html.media_2023 import absolute_url_2023, format_filename, format_image_size, is_url_valid
from obelics.html.simplify_2023 import simplify_2023

URL = "https://example.com/a/b.html"
EOD = "END_OF_DOCUMENT_TOKEN_TO_BE_REPLACED"


def _cfg(**kw) -> ExtractConfig:
    base = extract_config("obelics-2023")
    # the docs/reference.md §11 vectors were computed on strings handed straight to the simplifier (no bs4 step)
    return ExtractConfig(mode="obelics-2023", bs4_roundtrip=False, css_remove=list(base.css_remove),
                         css_replace=dict(base.css_replace), **kw)


def run(fragment: str, cfg: ExtractConfig | None = None):
    doc = extract_html(f"<html><body>{fragment}</body></html>", URL, profile=cfg or _cfg())
    doc.check()
    return doc


def test_profile_section():
    cfg = extract_config("obelics-2023")
    assert cfg.mode == "obelics-2023" and cfg.bs4_roundtrip
    assert cfg.css_remove == ["[class~='footer']", "[class~='site-info']"]
    assert cfg.css_replace == {"[class~='more-link']": f"\n\n{EOD}\n\n"}


def test_heading_paragraph_and_br():
    doc = run("<h1>Big   Title</h1><p>First with <b>bold</b> and <a>a link</a>.<br>Second line.</p>")
    assert doc.texts == ["Big Title\n\nFirst with bold and a link.\nSecond line."]
    assert doc.images == [None]


def test_figure_removed_with_its_image_and_caption():
    doc = run('<figure><img src="/img/f.jpg"><figcaption>Cap</figcaption></figure>')
    assert doc.texts == [] and doc.images == []


def test_protocol_relative_image_and_sizes():
    doc = run('<img src="//cdn.example.com/photo-1024x768.jpg" alt="Alt" width="600" height="50%">')
    assert doc.images == ["http://cdn.example.com/photo-1024x768.jpg"]
    meta = doc.metadata[0]
    assert meta["src"] == "http://cdn.example.com/photo-1024x768.jpg"
    assert meta["formatted_filename"] == "photo"
    assert meta["rendered_width"] == 600 and meta["rendered_height"] == "50%"
    assert meta["alt_text"] == "Alt" and meta["document_url"] == URL
    assert meta["unformatted_src"] == "//cdn.example.com/photo-1024x768.jpg"


def test_lazy_data_src_and_wrong_relative_resolution():
    doc = run('<img data-src="../imgs/lazy_image.png" src="">')
    assert doc.images == ["https://example.com/imgs/lazy_image.png"]
    assert doc.metadata[0]["formatted_filename"] == "lazy image"


def test_srcset_list_dropped():
    assert run('<p>x</p><img srcset="a.jpg 1x, b.jpg 2x">').images == [None]


def test_date_div_dropped_entirely():
    assert run('<div class="post-date">January 1, 2020 <span>by Bob</span></div>').texts == []


def test_footer_class_word():
    assert run('<div class="footer">Foot text</div>').texts == []
    assert run('<div class="site-footer x">Kept text</div>').texts == ["Kept text"]


def test_more_link_becomes_inline_eod():
    doc = run('<p>Read more: <a class="more-link">Continue</a></p>')
    assert doc.texts == [f"Read more: {EOD}"]


def test_br_variants_glue_words():
    doc = run('<p>Para one<BR>upper<br class="c">classed<br/>slash</p>')
    assert doc.texts == ["Para oneupperclassed\nslash"]


def test_nested_divs():
    assert run("<div>Div text<div>inner</div>tail</div>").texts == ["Div text\ninner\ntail"]


def test_image_php_url_auto_width():
    doc = run('<img src="https://example.com/image.php?id=12&size=2" width="auto">')
    assert doc.images == ["https://example.com/image.php?id=12&size=2"]
    assert doc.metadata[0]["rendered_width"] == "100%"
    assert doc.metadata[0]["formatted_filename"] == "image"


# --- docs/reference.md §12: lexbor API differences -------------------------------------------------------------

def test_php_processing_instruction_is_removed_not_fatal():
    doc = run("<p>Before <?php echo 'x'; ?> after</p>")
    assert doc.texts == ["Before after"]


def test_colon_tags_are_stripped_with_subtree():
    doc = run("<p>Keep</p><fb:like>Like widget</fb:like><p>Also<o:p>word junk</o:p></p>")
    assert doc.texts == ["Keep\n\nAlso"]


def test_noscript_parsed_as_markup_then_removed():
    # scripting off: <noscript> content is markup; noscript is not a kept tag, so it goes with its image
    doc = run('<p>Text</p><noscript><img src="https://example.com/px.gif"></noscript>')
    assert doc.images == [None]


def test_special_divs_and_tags():
    doc = run('<div id="nav">menu</div><nav>n</nav><ul><li>item</li></ul><table><tr><td>cell</td></tr></table>'
              '<div title="menu">m</div><div class="menu x">kept</div>')
    assert doc.texts == ["kept"]


def test_image_between_texts_and_link_unwrapped():
    doc = run('<p>One</p><a href="/x"><img src="/i/pic.jpg" alt=""></a><p>Two</p>')
    assert doc.texts == ["One", None, "Two"]
    assert doc.images == [None, "https://example.com/i/pic.jpg", None]
    assert "alt_text" not in doc.metadata[1]


def test_unnest_same_tag_and_empty_leaves():
    tree = simplify_2023("<div><div><div><p>deep</p></div></div></div><div><span></span></div>")
    assert tree.body.html == "<body><div><p>deep</p></div></body>"


def test_bs4_roundtrip_repairs_upper_case_br():
    cfg = extract_config("obelics-2023")
    doc = extract_html("<p>Para one<BR>upper</p>", URL, profile=cfg)
    assert doc.texts == ["Para one\nupper"]


def test_bytes_are_decoded_by_bs4_detection():
    html = '<html><head><meta charset="windows-1251"></head><body><p>Привет мир</p></body></html>'
    doc = extract_html(html.encode("windows-1251"), URL, profile="obelics-2023")
    assert doc.texts == ["Привет мир"]


def test_empty_payload_gives_empty_document():
    doc = extract_html(b"", URL, profile="obelics-2023", general_metadata={"url": URL})
    assert doc.texts == [] and doc.general_metadata == {"url": URL}


@pytest.mark.parametrize("size,expected", [("600", 600), ("50%", "50%"), ("300px", 300), ('"200"', 200),
                                           ("12.7", 12), ("auto", "100%"), ("full-width", "100%")])
def test_format_image_size(size, expected):
    assert format_image_size(size) == expected


def test_format_image_size_unrecognised():
    with pytest.raises(ValueError):
        format_image_size("big")


def test_url_helpers():
    assert absolute_url_2023(URL, "relative/path/pic.jpg") == "https://example.com/relative/path/pic.jpg"
    assert absolute_url_2023(URL, "../imgs/x.png") == "https://example.com/imgs/x.png"
    assert not is_url_valid("http://example.com:8080/x.jpg")
    assert not is_url_valid("http://127.0.0.1/x.jpg")
    assert not is_url_valid("http://localhost/x.jpg")
    assert is_url_valid("https://example.com/x.jpg?a=1")
    assert format_filename("https://x.com/Chocolate_Berry-Bark_300x200.jpg") == "Chocolate Berry Bark"
    assert format_filename("https://x.com/it?ids=201904&ca=n") == ""


def _format_filename_before(url: str) -> str:
    """format_filename as written before its regex steps were guarded (the reference it must equal)."""
    import os
    import re

    name = os.path.split(url)[1].split(".")[0]
    if re.findall(r"\?[A-Za-z0-9]+=", name):
        return ""
    name = name.replace("_", " ").replace("-", " ")
    name = re.sub(r"%2[0]*", " ", name)
    name = re.sub(r"[0-9]+x[0-9]+", "", name)
    name = re.sub(r"[0-9]+", " ", name)
    name = re.sub(r"[ ]{2,}", " ", name)
    for junk in ("\n", "+", "%B", "%"):
        name = name.replace(junk, " ")
    name = name.strip()
    return name if len(name) > 1 else ""


def test_format_filename_equals_the_unguarded_steps():
    """Every image URL of the shared pages and 20,000 generated names built of the pieces each step matches
    (``?k=``, ``%2``, ``%20``, digits, ``NxM``, runs of spaces, ``_``/``-``, non-ASCII digits, ``%B``)."""
    import random

    from obelics.html.reference_data import iter_reference_pages
    from tests.conftest import shared_path

    urls = []
    shared = shared_path("data", "reference").parent.parent
    for page in iter_reference_pages(shared, which="both"):
        text = page.payload.decode("utf-8", "replace")
        urls += [m.split('"')[0] for m in text.split('src="')[1:]]
    pieces = ["a", "img", "photo", "?", "?w=", "?a1=", "=", "%2", "%20", "%2000", "%B", "%", "1", "42", "800x600",
              "x", "12x", "x3", " ", "  ", "_", "-", "__", "--", "+", "\n", ".", "/", "\u0663", "\u00e9", "9x9x9"]
    rng = random.Random(17)
    for _ in range(20_000):
        name = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        urls.append(rng.choice(["https://x.org/p/", "", "/", "//h/", "a/b?c/"]) + name + rng.choice(["", ".jpg", ".a.b"]))
    assert len(urls) > 20_500
    for url in urls:
        assert format_filename(url) == _format_filename_before(url), url
