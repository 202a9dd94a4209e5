"""``obelics view`` in a real headless browser (Debian's Chromium and chromedriver, driven by selenium).

The viewer is started by the CLI on the sample run; the tests open it, check what a user sees and save a
screenshot of each page in ``$OBELICS_ARTIFACTS/view-screenshots`` (default: the session's tmp folder).
Without Chromium they skip with a message; CI (``.ci/run``) sets ``OBELICS_REQUIRE_BROWSER=1`` and installs it,
so there they are mandatory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.pipeline.test_view import _serve, sample_run

pytest.importorskip("starlette", reason="the viewer needs the view extra (starlette, uvicorn)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _need_browser() -> None:
    missing = [n for n, p in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not p]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (dev extra)")
    if missing:
        msg = f"browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("OBELICS_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    _need_browser()
    out = sample_run(tmp_path_factory.getbasetemp())
    proc, host = _serve(str(out), "--port", "0")
    import psutil

    port = next(c.laddr.port for c in psutil.Process(proc.pid).net_connections("inet")
                if c.status == psutil.CONN_LISTEN)
    yield f"http://{host}:{port}/", out
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    base = os.environ.get("OBELICS_ARTIFACTS")
    folder = Path(base) / "view-screenshots" if base else tmp_path_factory.mktemp("view-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(viewer):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _open(driver, url: str, route: str) -> None:
    driver.get(url + route)
    _wait(driver, lambda d: d.find_element("id", "main").get_attribute("data-route") == route.split("?")[0]
          or _css(d, "[data-testid=error]"))
    errors = _css(driver, "[data-testid=error]")
    assert not errors, errors[0].text


def _screenshot(driver, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def test_viewer_starts_on_the_sample_run(browser, viewer, shots):
    url, out = viewer
    _open(browser, url, "#/docs")
    rows = _css(browser, "[data-testid=doc-row]")
    n = sum(pq.read_metadata(p).num_rows for p in (out / "parquet").glob("*.parquet"))
    assert len(rows) == n == 6
    _wait(browser, lambda d: "6 documents" in d.find_element("id", "run").text)
    _screenshot(browser, shots, "01-documents")


def test_a_document_renders_with_its_images_in_order(browser, viewer, shots):
    url, out = viewer
    row = pq.read_table(next((out / "parquet").glob("*.parquet"))).to_pylist()[3]
    _open(browser, url, "#/doc/3")
    # every image decoded by the browser (bytes from the run, not the web)
    _wait(browser, lambda d: d.execute_script(
        "const im = [...document.querySelectorAll('[data-testid=doc-image]')];"
        "return im.length > 0 && im.every(i => i.complete && i.naturalWidth > 0);"))
    nodes = browser.execute_script(
        "return [...document.querySelectorAll('[data-testid=document] > .node-text, [data-testid=document] > figure')]"
        ".map(e => e.tagName === 'FIGURE' ? ['image', e.querySelector('img').dataset.src] : ['text', e.innerText]);")
    expected = [["image", u] if u is not None else ["text", t] for t, u in zip(row["texts"], row["images"])]
    assert [k for k, _ in nodes] == [k for k, _ in expected]
    assert [v for k, v in nodes if k == "image"] == [u for u in row["images"] if u]
    first_text = next(t for t in row["texts"] if t)
    assert nodes[[k for k, _ in nodes].index("text")][1].split("\n")[0] == first_text.split("\n\n")[0]
    meta = json.loads(row["metadata"])
    img = _css(browser, "[data-testid=doc-image]")[0]
    first_meta = next(m for m, u in zip(meta, row["images"]) if u)
    assert f"original_width: {first_meta['original_width']}" in img.get_attribute("title")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(img).perform()  # the metadata box shows on hover
    box = _css(browser, "[data-testid=image-meta]")[0]
    _wait(browser, lambda d: box.is_displayed())
    gm = json.loads(row["general_metadata"])
    assert browser.find_element("css selector", "[data-testid=doc-url]").text == gm["url"]
    warc = browser.find_element("css selector", "[data-testid=doc-warc]").text
    assert gm["warc_filename"] in warc and str(gm["warc_record_offset"]) in warc
    counts = browser.find_element("css selector", "[data-testid=doc-counts]").text
    assert f"{sum(1 for u in row['images'] if u)} images" in counts
    _screenshot(browser, shots, "02-document")


def test_search_finds_a_known_document(browser, viewer, shots):
    url, _ = viewer
    _open(browser, url, "#/docs")
    box = browser.find_element("id", "search-q")
    box.send_keys("deep field")
    browser.find_element("css selector", "[data-testid=search-go]").click()
    _wait(browser, lambda d: d.find_element("id", "main").get_attribute("data-route") == "#/search")
    links = [a.text for a in _css(browser, "[data-testid=doc-link]")]
    assert links == ["https://sample.obelics.example/news/2023/hubble-deep-field.html"]
    _screenshot(browser, shots, "03-search")


def test_drop_sample_shows_the_paragraph_and_its_metric(browser, viewer, shots):
    url, _ = viewer
    _open(browser, url, "#/funnel")
    link = next(a for a in _css(browser, "[data-testid=drop-link]")
                if a.get_attribute("data-stage") == "text_filters" and a.get_attribute("data-reason") == "stopword_ratio"
                and a.get_attribute("data-level") == "paragraph")
    _screenshot(browser, shots, "04-funnel")
    link.click()
    _wait(browser, lambda d: _css(d, "[data-testid=drop-item]") or _css(d, "[data-testid=error]"))
    assert not _css(browser, "[data-testid=error]")
    texts = [e.text for e in _css(browser, "[data-testid=drop-text]")]
    metrics = [e.text for e in _css(browser, "[data-testid=drop-metric]")]
    assert "Food, water and the litter tray" in texts
    assert len(metrics) == len(texts) == 10
    assert all(m.startswith("stopword_ratio = ") and "min 0.35" in m for m in metrics)
    assert metrics[texts.index("Food, water and the litter tray")].startswith("stopword_ratio = 0.3333")
    _screenshot(browser, shots, "05-drops")


def test_side_by_side_extraction(browser, viewer, shots):
    url, _ = viewer
    _open(browser, url, "#/compare/0")
    for profile in ("obelics-2023", "default"):
        doc = browser.find_element("css selector", f"[data-testid=compare-doc-{profile}]")
        assert "hubble-deep-field.html" in doc.text
    _screenshot(browser, shots, "06-compare")


def test_a_dropped_page_side_by_side(browser, viewer, shots):
    url, _ = viewer
    _open(browser, url, "#/drops?stage=text_filters&level=document&reason=number_words")
    _wait(browser, lambda d: _css(d, "[data-testid=drop-compare]"))
    assert "de/mond/beobachten.html" in browser.find_element("css selector", "[data-testid=drop-document]").text
    _css(browser, "[data-testid=drop-compare]")[0].click()
    _wait(browser, lambda d: d.find_element("id", "main").get_attribute("data-route") == "#/compare-record")
    for profile in ("obelics-2023", "default"):
        assert "de/mond/beobachten.html" in browser.find_element("css selector", f"[data-testid=compare-{profile}]").text
    _screenshot(browser, shots, "07-dropped-page-compare")
