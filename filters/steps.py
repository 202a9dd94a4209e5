"""Every filter step by the op name a profile's ``run.stages`` lists (the pipeline schedules them).

An op runs one or more steps in order (``optout``: image nodes, then documents), each with its own
stage in the funnel. :func:`register` adds an op (a new filter: one line in :data:`OPS`, or a call
from the module that defines it); :func:`subscribe` lets the scheduler see ops registered later.
"""

from __future__ import annotations

from collections.abc import Callable

from filters.final import CLEAN, FINAL
from filters.image import IMAGE_FILTERS
from filters.nsfw import NSFW
from filters.optout.stage import OPTOUT_DOCUMENTS, OPTOUT_IMAGES
from filters.step import Step
from filters.text_filters import DOC_FILTERS, RECHECK, TEXT_FILTERS, URL_BAN

OPS: dict[str, tuple[Step, ...]] = {
    "url_ban": (URL_BAN,),
    "text_filters": (TEXT_FILTERS,),
    "image_filters": (IMAGE_FILTERS,),
    "optout": (OPTOUT_IMAGES, OPTOUT_DOCUMENTS),
    "nsfw": (NSFW,),
    "doc_filters": (DOC_FILTERS,),
    "recheck": (RECHECK,),
    "clean": (CLEAN,),
    "final": (FINAL,),
}

_LISTENERS: list[Callable[[str, tuple[Step, ...]], None]] = []


def register(op: str, *steps: Step) -> None:
    """Make ``steps`` runnable as the op ``op`` (a name for ``run.stages``)."""
    if not steps:
        raise ValueError(f"op {op!r}: no step given")
    OPS[op] = tuple(steps)
    for listener in _LISTENERS:
        listener(op, OPS[op])


def subscribe(listener: Callable[[str, tuple[Step, ...]], None]) -> None:
    """Call ``listener(op, steps)`` for every op, now and whenever one is registered."""
    _LISTENERS.append(listener)
    for op, steps in list(OPS.items()):
        listener(op, steps)


def sections() -> dict[str, type]:
    """The profile sections the steps read, with the dataclass each is validated into."""
    return {s.section: s.config for steps in OPS.values() for s in steps if s.section and s.config}
