"""The per-page extraction budget: over-size, over-deep and over-time pages are skipped with a reason."""

from __future__ import annotations

import io
import random

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from obelics.budget import BudgetLimits, PageBudget, PageBudgetExceeded, estimated_depth
from obelics.extract import extract_config, extract_html, iter_warc_documents
from obelics.records import ReadStats

PROFILES = ["default", "obelics-2023"]


def _cfg(profile, **limits):
    import dataclasses

    return dataclasses.replace(extract_config(profile), **limits)


def test_estimated_depth():
    assert estimated_depth("<div><p>a<p>b<div>c</div></div>") == 2
    assert estimated_depth("<div>" * 50 + "<img><br/>") == 50
    assert estimated_depth(b"<b id=1><b id=2></b><i>") == 2
    assert estimated_depth("<li>" * 100) == 0


def test_compiled_depth_scan_equals_the_python_one():
    """The C scan (``_walk.tag_depth``) gives the regex walk's number on the shared pages and odd tag shapes."""

    from obelics import budget
    from obelics.html.reference_data import iter_reference_pages
    from tests.conftest import compiled_or_skip, shared_path

    compiled_or_skip(budget._compiled_scan(), "no C depth scan")
    odd = ["", "<", "</", "<<div>", "</ div>", "<div/><DIV><Div1></div1>", "<P><p><LI>", "<1a><a1><a-b>",
           "<div" + "x" * 40 + ">", "<é><div>é</div><div>", "</div></div><div>", "<optgroupx><optgroup>",
           "<plaintext><PlainText1>", "<a\x00b><b\ud800>", "<a>" * 3 + "</" * 3 + "<b"]
    pages = [p.payload for p in iter_reference_pages(shared_path("data", "reference").parent.parent, which="both")]
    assert len(pages) == 225
    for html in odd + [o.encode("utf-8", "surrogatepass") for o in odd] + pages:
        assert budget.estimated_depth(html) == budget.estimated_depth_python(html), html[:80]
    assert max(budget.estimated_depth(p) for p in pages) > 100  # real nesting, not zeros


def test_compiled_tag_counts_equal_bytes_count():
    """``_walk.tag_counts`` (the size check's ``<`` and ``</`` counts in C) gives ``bytes.count``'s numbers on the
    shared pages and odd shapes, and ``check_size`` uses it on bytes."""

    from obelics import budget
    from obelics.html.reference_data import iter_reference_pages
    from tests.conftest import compiled_or_skip, shared_path

    count = compiled_or_skip(budget._compiled("tag_counts"), "no C tag counts")
    odd = [b"", b"<", b"/", b"</", b"<</", b"<//", b"a</b><c></", b"</" * 5 + b"<", b"\x00<\xff</\x80"]
    # the counts are summed a block of 240 bytes at a time: full blocks of '<' and '</' across the boundaries
    rnd = random.Random(17)
    odd += [b"<" * n for n in (239, 240, 241, 481, 1000)] + [b"</" * n for n in (119, 120, 121, 700)]
    odd += [b"x" * k + b"<" + b"/" * 2 + b"<" * 300 for k in (237, 238, 239, 240)]
    odd += [bytes(rnd.choice(b"</a") for _ in range(rnd.randrange(2000))) for _ in range(200)]
    pages = [p.payload for p in iter_reference_pages(shared_path("data", "reference").parent.parent, which="both")]
    for html in odd + pages:
        assert count(html) == (html.count(b"<"), html.count(b"</")), html[:80]
        assert budget.tag_counts(html) == count(html)
        assert budget.tag_counts(html.decode("latin-1")) == count(html)  # a str: the same counts
    # the caps still apply through the compiled counts
    with pytest.raises(PageBudgetExceeded, match="tags"):
        PageBudget(BudgetLimits(max_tags=3)).check_size(b"<a><b></b></a>")
    PageBudget(BudgetLimits(max_tags=4)).check_size(b"<a><b></b></a>")


@pytest.mark.parametrize("profile", PROFILES)
def test_deep_page_skipped_before_parsing(profile):
    html = "<html><body>" + "<div><section>a" * 6000
    with pytest.raises(PageBudgetExceeded) as e:
        extract_html(html, "https://e.com/", profile)
    assert e.value.skip_reason == "page_budget:depth"
    # the same page under a larger cap is extracted
    doc = extract_html("<html><body>" + "<div><section>a" * 300, "https://e.com/", profile)
    assert doc.texts


@pytest.mark.parametrize("profile", PROFILES)
def test_too_many_tags_or_chars(profile):
    with pytest.raises(PageBudgetExceeded) as e:
        extract_html("<p>x</p>" * 600, "https://e.com/", _cfg(profile, page_max_tags=1000))
    assert e.value.skip_reason == "page_budget:memory"
    with pytest.raises(PageBudgetExceeded) as e:
        extract_html("<p>" + "x" * 5000 + "</p>", "https://e.com/", _cfg(profile, page_max_chars=4000))
    assert e.value.reason == "memory"


def test_time_budget_stops_the_2023_walk():
    """A deadline already past: the walk raises at its first clock read (after CHECK_EVERY nodes)."""
    html = "<html><body>" + "<p>a<b>b</b>c</p>" * 3000
    with pytest.raises(PageBudgetExceeded) as e:
        extract_html(html, "https://e.com/", _cfg("obelics-2023", page_max_seconds=1e-9))
    assert e.value.skip_reason == "page_budget:time"
    assert extract_html(html, "https://e.com/", "obelics-2023").texts


def test_tick_reads_the_clock_every_check():
    budget = PageBudget(BudgetLimits(max_seconds=1.0), now=-10.0)  # deadline long past
    budget.tick(1000)
    with pytest.raises(PageBudgetExceeded):
        budget.tick(100)


def _warc(pages):
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    for i, html in enumerate(pages):
        body = html.encode()
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        w.write_record(w.create_warc_record(f"https://e.com/{i}.html", "response", payload=io.BytesIO(body),
                                            http_headers=http))
    return buf.getvalue()


@pytest.mark.parametrize("profile", PROFILES)
def test_hostile_page_counted_and_the_rest_kept(tmp_path, profile):
    good = "<html><body><p>" + "A normal paragraph of words. " * 20 + "</p></body></html>"
    bad = "<html><body>" + "<div><section>a" * 6000 + "</body></html>"
    path = tmp_path / "x.warc.gz"
    path.write_bytes(_warc([good, bad, good]))
    stats = ReadStats()
    docs = list(iter_warc_documents(str(path), profile, stats=stats))
    assert len(docs) == 2
    assert stats.as_dict()["skipped"].get("page_budget:depth") == 1


def test_default_drops_literal_address_images_at_extraction(monkeypatch):
    monkeypatch.delenv("OBELICS_NET_ALLOW", raising=False)
    html = ("<html><body><p>" + "Words of a paragraph here. " * 5 + "</p>"
            '<img src="http://2130706433/a.jpg"><img src="http://[::1]/b.jpg"><img src="http://10.0.0.1/c.jpg">'
            '<img src="http://169.254.169.254/latest/meta-data/x.jpg"><img src="https://example.com/ok.jpg">'
            "<p>" + "More words after. " * 5 + "</p></body></html>")
    doc = extract_html(html, "https://example.com/page.html", "default")
    assert [u for u in doc.images if u] == ["https://example.com/ok.jpg"]
    assert len(doc.texts) == len(doc.images) == len(doc.metadata)


def _spin_swallowing_exceptions():
    """Work with no tick that never ends by itself, and swallows ``Exception`` as some libraries do."""
    n = 0
    while True:
        try:
            n += 1
        except Exception:  # noqa: BLE001, S112 - what the alarm must get through
            continue


def test_alarm_interrupts_work_without_ticks_and_restores_the_signal():
    import signal

    budget = PageBudget(BudgetLimits(max_seconds=0.05))
    with pytest.raises(PageBudgetExceeded) as e, budget.alarm():
        _spin_swallowing_exceptions()
    assert e.value.skip_reason == "page_budget:time" and "interrupted" in str(e.value)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with PageBudget(BudgetLimits(max_seconds=30)).alarm():  # within the budget: the block runs as is
        done = sum(range(1000))
    assert done == 499500 and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_alarm_leaves_someone_elses_handler_alone():
    import signal

    def theirs(signum, frame):
        raise AssertionError("not ours")

    old = signal.signal(signal.SIGALRM, theirs)
    try:
        with PageBudget(BudgetLimits(max_seconds=0.01)).alarm():
            assert signal.getsignal(signal.SIGALRM) is theirs
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, old)


def test_an_alarm_dropped_once_goes_off_again():
    """An alarm raised inside a finalizer or weakref callback is dropped by Python (CI saw one in bs4's decoding):
    the timer repeats, so the block is still interrupted."""
    import time

    dropped = []
    with pytest.raises(PageBudgetExceeded) as e:
        with PageBudget(BudgetLimits(max_seconds=0.05)).alarm():
            try:
                time.sleep(1)  # the first alarm lands here and is dropped, as in a finalizer
            except BaseException as x:  # noqa: BLE001
                dropped.append(type(x).__name__)
            t = time.perf_counter()
            while time.perf_counter() - t < 2:
                pass
    assert dropped == ["_Alarm"] and "interrupted" in str(e.value)
    assert signal_state() == ("default", 0.0)


def signal_state():
    import signal

    return ("default" if signal.getsignal(signal.SIGALRM) == signal.SIG_DFL else "other",
            signal.getitimer(signal.ITIMER_REAL)[0])


def test_time_budget_interrupts_the_2023_bs4_decoding():
    """bs4's decoding and round trip have no tick: the deadline's alarm stops them (they take seconds here)."""
    html = ("<html><body><p>images</p>" + "".join(f'<img src="https://e.com/{i}.jpg" width="3">' for i in range(20000))
            + "</body></html>").encode()
    with pytest.raises(PageBudgetExceeded) as e:
        # the size checks off, so that all the time goes to decoding (the depth scan would use it up)
        extract_html(html, "https://e.com/", _cfg("obelics-2023", page_max_seconds=0.2, page_max_depth=0,
                                                  page_max_tags=0))
    assert e.value.skip_reason == "page_budget:time" and "interrupted" in str(e.value)
    small = b"<html><body><p>" + b"Some words. " * 10 + b"</p><img src='https://e.com/a.jpg'></body></html>"
    assert extract_html(small, "https://e.com/", "obelics-2023").images == [None, "https://e.com/a.jpg"]


def test_depth_scan_only_when_the_opening_tags_could_be_over_the_cap(monkeypatch):
    """The depth is at most the number of opening tags: below the cap the scan is skipped, same verdicts."""
    import obelics.budget as budget

    scans = []
    real = budget.estimated_depth
    monkeypatch.setattr(budget, "estimated_depth", lambda html: scans.append(1) or real(html))
    b = PageBudget(BudgetLimits(max_depth=100))
    b.check_size("<b>x</b>" * 80)  # 160 tags, 80 opening: no scan, nothing raised
    b.check_size(b"<i></i>" * 80)
    assert scans == []
    b.check_size("<p>x</p>" * 150)  # 150 opening tags: scanned, depth 0
    assert len(scans) == 1
    with pytest.raises(PageBudgetExceeded):
        b.check_size("<div>" * 120 + "</div>" * 120)  # 120 opening: scanned, depth 120
    assert len(scans) == 2


def test_compiled_depth_skips_exactly_the_listed_names():
    """``_walk.tag_depth`` looks a tag up among the listed names of its length and first letter only: random
    tags (every listed name in mixed case, their prefixes and extensions, digits, other names) give the
    Python scan's depth, with the default list and with a small one."""
    from obelics import budget
    from tests.conftest import compiled_or_skip

    scan = compiled_or_skip(budget._compiled("tag_depth"), "no C tag depth")
    rnd = random.Random(17)
    names = sorted(budget._NO_DEPTH) + ["div", "span", "h1", "h7", "col1", "tbodyx", "tbod", "a", "b", "z", "x9"]
    names += [n[:-1] for n in budget._NO_DEPTH if len(n) > 1] + [n + "s" for n in budget._NO_DEPTH]

    def tag():
        name = "".join(c.upper() if rnd.random() < 0.3 else c for c in rnd.choice(names))
        return f"<{'/' if rnd.random() < 0.3 else ''}{name}{rnd.choice(['>', ' a=1>', '/>', ''])}"

    for no_depth in (budget._NO_DEPTH, frozenset({"p", "li", "td"}), frozenset()):
        for _ in range(300):
            page = "".join(tag() if rnd.random() < 0.8 else "text<" for _ in range(rnd.randrange(200))).encode()
            want = budget.estimated_depth_python(page) if no_depth is budget._NO_DEPTH else None
            if want is None:  # the Python scan with this list
                saved = budget._NO_DEPTH
                try:
                    budget._NO_DEPTH = no_depth
                    want = budget.estimated_depth_python(page)
                finally:
                    budget._NO_DEPTH = saved
            assert scan(page, no_depth) == want, page[:200]
    scan(b"", budget._NO_DEPTH)  # the default table again for the other tests
