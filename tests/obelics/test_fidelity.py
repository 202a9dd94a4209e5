"""Fidelity of the obelics-2023 profile to the original code's outputs on the shared pages.

Pages: ../shared/data/html (each as a one-record WARC without ``WARC-Identified-Content-Charset``, so
bs4 detects the charset) and the HTML records of ../shared/data/warc at their byte ranges; page URL is
the reference rows' ``url``. Expected: ../shared/data/reference/shared_html.jsonl and shared_warc.jsonl
(production path, with the bs4 re-serialisation). Prints every mismatch with its first differing node.
"""

from __future__ import annotations

import pytest

from obelics.extract import extract_html
from obelics.html.reference_data import first_difference, iter_reference_pages
from tests.conftest import shared_path

MIN_RATE = 0.95


def _compare(which: str):
    shared = shared_path("data", "reference").parent.parent
    pages = texts_images_ok = meta_ok = 0
    mismatches = []
    for page in iter_reference_pages(shared, which=which):
        pages += 1
        try:
            doc = extract_html(page.payload, page.url, profile="obelics-2023",
                               general_metadata=page.general_metadata or None)
        except Exception as e:  # a crash is a mismatch, listed like the others
            mismatches.append(f"{page.key}: raised {e!r}")
            continue
        expected_texts, expected_images = page.expected_texts, page.expected_images
        if doc.texts != expected_texts:
            mismatches.append(f"{page.key}: texts {first_difference(doc.texts, expected_texts)}")
            continue
        if doc.images != expected_images:
            mismatches.append(f"{page.key}: images {first_difference(doc.images, expected_images)}")
            continue
        texts_images_ok += 1
        expected_gm = page.expected["general_metadata"] or {"url": page.url}
        if doc.metadata == page.expected["metadata"] and doc.general_metadata == expected_gm:
            meta_ok += 1
        else:
            mismatches.append(f"{page.key}: metadata {first_difference(doc.metadata, page.expected['metadata'])}"
                              f" general_metadata {doc.general_metadata} vs {expected_gm}")
    rate = texts_images_ok / pages
    print(f"\n[{which}] texts+images identical: {texts_images_ok}/{pages} = {rate:.1%}; "
          f"with metadata: {meta_ok}/{pages}")
    for m in mismatches:
        print("  MISMATCH", m)
    return pages, texts_images_ok, meta_ok, rate


@pytest.mark.parametrize("which,expected_pages", [("html", 81), ("warc", 144)])
def test_obelics_2023_matches_original(which, expected_pages):
    pages, _, meta_ok, rate = _compare(which)
    assert pages == expected_pages
    assert rate >= MIN_RATE
    assert meta_ok / pages >= MIN_RATE
