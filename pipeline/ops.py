"""The operations a run is composed of, by name; the profile's ``run.stages`` lists them in order.

A *unit op* transforms one unit's documents (pure functions from ``obelics``/``filters``); consecutive
unit ops are fused into one stage so a unit is read and written once per fused group. A *global op*
needs every unit: it decides over the whole dataset on Ray (dedup passes, the image table) and then
applies its decision unit by unit.

This module is the registry only; :mod:`pipeline.stages` defines the ops and registers them when it is
imported (``pipeline.run`` and ``pipeline.profile`` import it), so the registry never imports its ops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from obelics.document import WebDocument

# A unit op: (docs, ctx) -> (docs, [stage stats dicts]). ctx holds the profile, the run paths, and
# whatever the preceding global ops decided (ctx["decisions"][name]).
UnitFn = Callable[[list[WebDocument], dict], tuple[list[WebDocument], list[dict]]]


@dataclass
class UnitOp:
    name: str
    fn: UnitFn
    source: bool = False          # reads the unit's source (a WARC) instead of documents
    # the op takes and returns a DOCUMENT_SCHEMA Arrow table instead of a list of documents: the fused stage
    # converts between the two forms only where consecutive ops differ (pipeline.run._fused), so a stage
    # of table ops reads and writes its unit's Parquet without a Python object per document
    arrow: bool = False


@dataclass
class GlobalOp:
    name: str
    # decide(prev_stage_dir, units, ctx) -> JSON-able decision (may write files under ctx["decision_dir"])
    decide: Callable[..., Any]
    # apply(docs, decision, ctx) -> (docs, stats); None when the decision is only read by later ops
    apply: UnitFn | None = None
    meta: dict = field(default_factory=dict)
    apply_arrow: bool = False     # apply takes and returns a DOCUMENT_SCHEMA table (UnitOp.arrow)


REGISTRY: dict[str, UnitOp | GlobalOp] = {}


def register(op: UnitOp | GlobalOp) -> UnitOp | GlobalOp:
    REGISTRY[op.name] = op
    return op


def get_op(name: str) -> UnitOp | GlobalOp:
    """The registered op called ``name``; ValueError naming the known ones otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown pipeline op {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]
