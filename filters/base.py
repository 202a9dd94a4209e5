"""What every filter returns, and how stages count what was dropped.

A filter returns ``None`` to keep an item, or a short reason string to drop it (``"words<4"``,
``"nsfw"``, ``"optout:x-robots-tag:noai"``). Stages count reasons with :class:`FilterStats`, which
merges across shards and serialises into the shard's ``stats.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from obelics.document import WebDocument

Verdict = str | None  # None: keep; a string: dropped, for that reason

KEEP: Verdict = None


@dataclass
class FilterStats:
    """Items in and out of one stage, and drops by reason, per level (document, node, paragraph, image)."""

    stage: str
    inputs: Counter = field(default_factory=Counter)
    outputs: Counter = field(default_factory=Counter)
    dropped: dict[str, Counter] = field(default_factory=dict)
    events: Counter = field(default_factory=Counter)  # notable non-drop events (errors kept by policy, ...)

    def seen(self, level: str, n: int = 1) -> None:
        self.inputs[level] += n

    def kept(self, level: str, n: int = 1) -> None:
        self.outputs[level] += n

    def drop(self, level: str, reason: str, n: int = 1) -> None:
        counts = self.dropped.get(level)
        if counts is None:  # not setdefault: it would build a Counter at every drop
            counts = self.dropped[level] = Counter()
        counts[reason] += n

    def event(self, name: str, n: int = 1) -> None:
        self.events[name] += n

    def pass_through(self, items: list, level: str = "document") -> list:
        """Count ``items`` as seen and kept unchanged (a switched-off check); returns them."""
        self.seen(level, len(items))
        self.kept(level, len(items))
        return items

    def decide(self, item, reason: Verdict, kept: list, rejects: list | None = None, level: str = "document") -> bool:
        """Count ``item`` as kept (appended to ``kept``) or, with a ``reason``, dropped (appended to ``rejects``
        as ``(item, "<level>:<reason>")``). Returns whether it was kept."""
        if reason:
            self.drop(level, reason)
            if rejects is not None:
                rejects.append((item, f"{level}:{reason}"))
            return False
        self.kept(level)
        kept.append(item)
        return True

    def merge(self, other: FilterStats) -> FilterStats:
        self.inputs.update(other.inputs)
        self.outputs.update(other.outputs)
        for level, c in other.dropped.items():
            self.dropped.setdefault(level, Counter()).update(c)
        self.events.update(other.events)
        return self

    def as_dict(self) -> dict:
        d = {
            "stage": self.stage,
            "in": dict(self.inputs),
            "out": dict(self.outputs),
            "dropped": {lvl: dict(c.most_common()) for lvl, c in sorted(self.dropped.items())},
        }
        if self.events:
            d["events"] = dict(self.events.most_common())
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FilterStats:
        s = cls(d["stage"], Counter(d.get("in", {})), Counter(d.get("out", {})))
        s.dropped = {lvl: Counter(c) for lvl, c in d.get("dropped", {}).items()}
        s.events = Counter(d.get("events", {}))
        return s


def without_nodes(doc: WebDocument, drop: Iterable[int], metadata: list | None = None) -> WebDocument:
    """A copy of ``doc`` without the node positions in ``drop`` (same doc_id and capture date)."""
    drop = set(drop)
    meta = metadata if metadata is not None else doc.metadata
    keep = [i for i in range(len(doc.texts)) if i not in drop]
    return WebDocument(
        texts=[doc.texts[i] for i in keep],
        images=[doc.images[i] for i in keep],
        metadata=[meta[i] for i in keep],
        general_metadata=dict(doc.general_metadata),
        doc_id=doc.doc_id,
        capture_date=doc.capture_date,
    )
