"""A per-page budget of time and memory for extraction (a hostile page is skipped, the worker lives on).

Time is bounded in-process, without signals: the extraction walks call :meth:`PageBudget.tick` once per
node, and every ``CHECK_EVERY`` ticks the clock is read; past the deadline it raises
:class:`PageBudgetExceeded` (reason ``time``). Memory is bounded before any work by the page's size: its
characters and its ``<`` count (an upper bound on its elements, each of which becomes a few Python or
lexbor objects); the extraction steps are linear, so these caps bound peak memory (reason ``memory``).
The HTML5 tree builder itself (lexbor, like every conforming parser) checks element scope by walking the
stack of open elements, so its time grows with the square of the nesting depth, inside C where no tick
can stop it: a page whose estimated nesting depth (open minus closed non-void tags, one scan in C run only
on pages with more tags than the cap) is over ``max_depth`` is skipped before parsing (reason ``depth``).
A skipped page is counted as ``page_budget:<reason>``.

Code that has no tick, such as the ``obelics-2023`` bs4 decoding and round trip (pure-Python html.parser:
a 100,000-image page took 44 s), runs under :meth:`PageBudget.alarm`: a one-shot ``SIGALRM`` timer set to
the deadline interrupts it between two Python bytecodes. Its exception derives from ``BaseException``
so that no library's ``except Exception`` swallows it, and is turned into :class:`PageBudgetExceeded`
(``time``) at the alarm's block. The timer is used only where it is safe: in the main thread of a POSIX
process with no other ``SIGALRM`` handler or timer in place (elsewhere the ticks alone bound the page).
A page within its budget never sees the alarm, so its output is unchanged.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CHECK_EVERY = 1024  # ticks between two reads of the clock

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_TAG_BYTES = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9]*)")
# tags that never hold an open element (void), close themselves implicitly (p, li, cells) or hold raw text
_NO_DEPTH = frozenset(
    "area base br col embed hr img input link meta param source track wbr keygen command basefont bgsound "
    "frame image isindex nextid spacer p li dt dd option optgroup tr td th rb rt rp rtc tbody thead tfoot "
    "colgroup caption html head body script style textarea title xmp iframe noembed noframes plaintext".split())


def estimated_depth(html: str | bytes) -> int:
    """The page's deepest nesting as its tags say (open minus closed, void and self-closing tags skipped).

    An estimate made without parsing: it over-counts a page of unclosed elements that the parser closes
    implicitly (those listed in ``_NO_DEPTH`` are skipped), which is the shape a hostile page takes too.
    Scanned in C where the compiled walk is built (``_walk.tag_depth``; a str as its UTF-8 bytes, whose
    ASCII tags are the same), else by :func:`estimated_depth_python`; both give the same number.
    """
    scan = _compiled_scan()
    if scan is None:
        return estimated_depth_python(html)
    return scan(html if isinstance(html, bytes) else html.encode("utf-8", "surrogatepass"), _NO_DEPTH)


_SCAN: list = []


def _compiled(name: str):
    """``_walk.<name>``, or None (not built, or ``OBELICS_PURE_PYTHON`` set); looked up once."""
    if not _SCAN:
        import os

        walk = None
        if not os.environ.get("OBELICS_PURE_PYTHON"):
            try:
                from obelics.html import _walk as walk
            except ImportError:
                walk = None
        _SCAN.append(walk)
    return getattr(_SCAN[0], name, None)


def _compiled_scan():
    """``_walk.tag_depth``, or None (not built, or ``OBELICS_PURE_PYTHON`` set)."""
    return _compiled("tag_depth")


def tag_counts(html: str | bytes) -> tuple[int, int]:
    """``(html.count("<"), html.count("</"))``: the page's tags, an upper bound on its elements, and its closing
    tags. Bytes are counted in one compiled pass where the walk is built (``_walk.tag_counts``)."""
    if isinstance(html, bytes):
        count = _compiled("tag_counts")
        if count is not None:
            return count(html)
        return html.count(b"<"), html.count(b"</")
    return html.count("<"), html.count("</")


def estimated_depth_python(html: str | bytes) -> int:
    """:func:`estimated_depth` in Python, one regex match at a time: the reference and the fallback."""
    pattern = _TAG_BYTES if isinstance(html, bytes) else _TAG
    depth = deepest = 0
    for close, name in pattern.findall(html):
        name = name.lower()
        if isinstance(name, bytes):
            name = name.decode("ascii")
        if name in _NO_DEPTH:
            continue
        if close:
            if depth:
                depth -= 1
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
    return deepest


class PageBudgetExceeded(Exception):
    """A page went over its budget; ``reason`` is ``time``, ``memory`` or ``depth``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"page over its {reason} budget" + (f": {detail}" if detail else ""))
        self.reason = reason

    @property
    def skip_reason(self) -> str:
        """The funnel's reason for the skipped page."""
        return f"page_budget:{self.reason}"


@dataclass(frozen=True)
class BudgetLimits:
    """Per-page limits (the profile's ``extract.page_budget``); ``0`` turns a limit off."""

    max_seconds: float = 20.0  # wall time of one page's extraction (decoding included)
    max_chars: int = 12_000_000  # characters of the decoded page
    max_tags: int = 400_000  # `<` characters in the page: an upper bound on its elements
    max_depth: int = 5_000  # estimated nesting depth (the shared real pages reach 418; lexbor: 0.15 s)


class PageBudget:
    """The running budget of one page: a deadline checked every ``CHECK_EVERY`` ticks."""

    __slots__ = ("deadline", "_left", "limits")

    def __init__(self, limits: BudgetLimits | None = None, now: float | None = None):
        self.limits = limits or BudgetLimits()
        start = time.perf_counter() if now is None else now
        self.deadline = start + self.limits.max_seconds if self.limits.max_seconds > 0 else None
        self._left = CHECK_EVERY

    def check_size(self, html: str | bytes) -> None:
        """Raise (``memory``) when the page is larger than the caps, before anything is parsed."""
        lim = self.limits
        if lim.max_chars and len(html) > lim.max_chars:
            raise PageBudgetExceeded("memory", f"{len(html):,} characters > {lim.max_chars:,}")
        if lim.max_tags or lim.max_depth:
            tags, closing = tag_counts(html)
            if lim.max_tags and tags > lim.max_tags:
                raise PageBudgetExceeded("memory", f"{tags:,} tags > {lim.max_tags:,}")
            # the depth is at most the number of opening tags: the scan runs only when that could be over
            if lim.max_depth and tags > lim.max_depth and tags - closing > lim.max_depth:
                depth = estimated_depth(html)
                if depth > lim.max_depth:
                    raise PageBudgetExceeded("depth", f"nesting depth about {depth:,} > {lim.max_depth:,}")

    def check_time(self) -> None:
        """Raise (``time``) when the deadline has passed."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise PageBudgetExceeded("time", f"over {self.limits.max_seconds:g} s")

    def tick(self, n: int = 1) -> None:
        """Count ``n`` units of work; read the clock every ``CHECK_EVERY`` of them."""
        self._left -= n
        if self._left <= 0:
            self._left = CHECK_EVERY
            self.check_time()

    def alarm(self):
        """A context in which the deadline interrupts work that has no tick (see the module docstring):
        :class:`PageBudgetExceeded` (``time``) is raised out of the block when the deadline passes inside
        it. A plain block without a deadline or where a timer cannot be used safely."""
        if self.deadline is None or not _alarm_usable():
            return _no_alarm()
        return _alarm_at(self)


REFIRE_SECONDS = 0.02  # the deadline's timer goes off again this often until its block is left


class _Alarm(BaseException):
    """The deadline's timer went off (raised by the ``SIGALRM`` handler, caught by :meth:`PageBudget.alarm`)."""


def _alarm_usable() -> bool:
    """Whether a ``SIGALRM`` timer can be set here without disturbing anyone: POSIX, main thread, no
    handler other than the default one, no real-time timer running."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None) and signal.getitimer(signal.ITIMER_REAL)[0] == 0


@contextmanager
def _alarm_at(budget: PageBudget) -> Iterator[None]:
    left = budget.deadline - time.perf_counter()
    if left <= 0:
        budget.check_time()
    armed = [True]

    def fire(signum, frame):
        if armed[0]:  # never after the block is left
            raise _Alarm

    signal.signal(signal.SIGALRM, fire)
    try:
        try:
            # the timer repeats until the block is left: an _Alarm raised while Python runs a finalizer or a
            # weakref callback is printed and dropped ("Exception ignored in"), and the next one stops the block
            signal.setitimer(signal.ITIMER_REAL, left, REFIRE_SECONDS)
            yield
        finally:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Alarm:
        raise PageBudgetExceeded("time", f"over {budget.limits.max_seconds:g} s (interrupted)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)  # also where a repeat cut the inner finally short
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


@contextmanager
def _no_alarm() -> Iterator[None]:
    yield


class _NoBudget(PageBudget):
    """The unlimited budget (library calls that pass none)."""

    def __init__(self):
        super().__init__(BudgetLimits(max_seconds=0, max_chars=0, max_tags=0, max_depth=0))

    def tick(self, n: int = 1) -> None:
        return None


NO_BUDGET = _NoBudget()
