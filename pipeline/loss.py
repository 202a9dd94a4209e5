"""Systemic loss: a stage that drops a large share of its input to *errors* (network, DNS, services).

A page without enough words is the data's fault; an image that failed on DNS or a document dropped
because TDMRep could not be read (``optout:error:tdmrep``) is the run's. When errors drop more than
``run.max_error_share`` of a stage's input (and at least ``run.min_error_drops`` items), the run stops
with a clear message (``run.on_systemic_loss: fail``, the default) or goes on with a warning (``warn``).
Either way the facts go into ``stats.json`` under ``errors`` (every stage's error drops, whatever their
share) and ``systemic_loss`` (the stages over the limit), so the report can put them at the top and
never show an error that dropped something as an event that dropped nothing.

Which drop reasons are errors is ``run.error_reasons`` (shell patterns, :mod:`fnmatch`).
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict


class SystemicLoss(RuntimeError):
    """A stage lost more than the allowed share of its input to errors (the run stops; exit code 1)."""


def _merge(stage_stats: list[dict]) -> dict[str, dict]:
    """Stage dicts (one per unit, ``FilterStats.as_dict``) summed by stage name, in first-seen order."""
    out: dict[str, dict] = {}
    for s in stage_stats:
        if "stage" not in s:  # the reader's counts, metrics: not a stage's funnel
            continue
        m = out.setdefault(s["stage"], {"in": defaultdict(int), "dropped": defaultdict(lambda: defaultdict(int))})
        for level, n in (s.get("in") or {}).items():
            if isinstance(n, int):
                m["in"][level] += n
        for level, reasons in (s.get("dropped") or {}).items():
            for reason, n in reasons.items():
                m["dropped"][level][reason] += n
    return out


def is_error(reason: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(reason, p) for p in patterns)


def error_drops(stage_stats: list[dict], patterns: list[str]) -> list[dict]:
    """For each stage and level that dropped something to an error: the counts by reason and the share of
    the stage's input at that level."""
    out = []
    for stage, m in _merge(stage_stats).items():
        for level, reasons in m["dropped"].items():
            errs = {r: n for r, n in reasons.items() if n and is_error(r, patterns)}
            if not errs:
                continue
            total = m["in"].get(level, 0)
            n = sum(errs.values())
            out.append({"stage": stage, "level": level, "dropped": n, "in": total,
                        "share": round(n / total, 4) if total else 1.0,
                        "reasons": dict(sorted(errs.items(), key=lambda kv: -kv[1]))})
    return out


def systemic(drops: list[dict], max_share: float, min_drops: int) -> list[dict]:
    """The entries of :func:`error_drops` over the limit."""
    return [d for d in drops if d["dropped"] >= min_drops and d["share"] > max_share]


def describe(loss: dict) -> str:
    """One line for a systemic loss."""
    reasons = ", ".join(f"{r} {n}" for r, n in list(loss["reasons"].items())[:4])
    return (f"stage {loss['stage']} lost {loss['dropped']} of {loss['in']} {loss['level']}(s) "
            f"({loss['share']:.0%}) to errors ({reasons})")
