"""Resumable packed streams: shards → documents → units → greedy packing → shuffle → rows.

All state (shard order, shard cursor, offset inside the shard, open packing rows, shuffle buffer, RNG)
lives in plain Python objects and is saved with every checkpoint, so a resume continues with exactly
the next row: nothing repeated, nothing skipped. Rows are shuffled *after* packing (the fix m4 adopted
after the 80B resume spikes). A stream is infinite: it starts a new epoch with a new shard order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter

from train.collate import Unit, doc_units
from train.instruct import sample_unit
from train.sources import expand_shards, image_ok, iter_shard, sample_to_nodes


@dataclasses.dataclass
class PackingConfig:
    """How documents become rows."""

    seq_len: int = 1024
    max_images: int = 5  # image budget per row
    max_chunks_per_doc: int = 2
    pack_rows: int = 8  # open rows of the first-fit packer
    shuffle_rows: int = 64  # shuffle buffer after packing
    require_image: bool = True
    text_separator: str = "\n\n"


def in_validation(doc_id: str, val_permille: int) -> bool:
    """Deterministic hold-out: a document is in the validation split when its id hashes below the bound."""
    if val_permille <= 0:
        return False
    h = int.from_bytes(hashlib.sha1(doc_id.encode()).digest()[:4], "big") % 1000
    return h < val_permille


class GreedyPacker:
    """First-fit packing of units into rows of ``seq_len`` tokens and ``max_images`` images."""

    def __init__(self, seq_len: int, max_images: int, open_rows: int):
        self.seq_len, self.max_images, self.open_rows = seq_len, max_images, open_rows
        self.rows: list[Unit] = []

    def add(self, unit: Unit) -> list[Unit]:
        """Place ``unit``; returns the rows that had to be closed to make room."""
        for row in self.rows:
            if (len(row.tokens) + len(unit.tokens) <= self.seq_len
                    and len(row.images) + len(unit.images) <= self.max_images):
                row.starts = row.starts + [len(row.tokens) + s for s in unit.starts]
                if row.mask is not None or unit.mask is not None:
                    row.mask = row.loss_mask() + unit.loss_mask()
                row.tokens = row.tokens + unit.tokens
                row.images = row.images + unit.images
                return []
        out = []
        if len(self.rows) >= self.open_rows:
            fullest = max(range(len(self.rows)), key=lambda i: len(self.rows[i].tokens))
            out.append(self.rows.pop(fullest))
        self.rows.append(Unit(list(unit.tokens), list(unit.images), unit.source, list(unit.starts),
                              None if unit.mask is None else list(unit.mask)))
        return out

    def state_dict(self) -> dict:
        return {"rows": [dataclasses.asdict(r) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [Unit(**r) for r in state["rows"]]


class PackedStream:
    """Infinite, resumable stream of packed rows from one data set's shards, for one rank."""

    def __init__(self, shards, kind: str, tokenizer, pack: PackingConfig, seed: int = 0, rank: int = 0,
                 world: int = 1, source: int = 0, split: str = "train", val_permille: int = 0,
                 infinite: bool = True, fmt: str = "dialog", images: str | None = None):
        if kind not in ("webdoc", "pairs", "dialog"):
            raise ValueError(f"dataset kind must be webdoc, pairs or dialog, got {kind!r}")
        self.fmt, self.images = fmt, images  # dialog: the file format and image folder (train/instruct.py)
        self.shards = expand_shards(shards)
        self.kind, self.tok, self.pack = kind, tokenizer, pack
        self.seed, self.rank, self.world, self.source = seed, rank, world, source
        self.split, self.val_permille, self.infinite = split, val_permille, infinite
        # Enough shards: each rank reads its own; otherwise every rank reads all and keeps 1 doc in `world`.
        self.by_shard = len(self.shards) >= world
        self.stats: Counter = Counter()
        self.epoch, self.shard_pos, self.offset, self.seen = 0, 0, 0, 0
        self.epoch_docs = 0  # documents that gave units in the current epoch
        self.order = self._order(0)
        self.packer = GreedyPacker(pack.seq_len, pack.max_images, pack.pack_rows)
        self.buffer: list[Unit] = []
        self.rng = random.Random(f"{seed}-{rank}-{source}-rows")
        self.exhausted = False

    def _order(self, epoch: int) -> list[int]:
        idx = list(range(len(self.shards)))
        if self.by_shard:
            idx = [i for i in idx if i % self.world == self.rank]
        random.Random(f"{self.seed}-{epoch}-shards").shuffle(idx) if self.split == "train" else None
        return idx

    def _units(self):
        """Lists of units, one per document, from the current position; advances the position as samples are consumed."""
        while True:
            if self.shard_pos >= len(self.order):
                if not self.infinite:
                    return
                if self.epoch_docs == 0:
                    raise RuntimeError(f"a whole pass over {len(self.order)} shard(s) gave no trainable document "
                                       f"(need text and ≥1 image with bytes); counts: {dict(self.stats)}")
                self.epoch_docs = 0
                self.epoch += 1
                self.order, self.shard_pos, self.offset = self._order(self.epoch), 0, 0
                if not self.order:
                    return
            path = self.shards[self.order[self.shard_pos]]
            for sample in iter_shard(path, skip=self.offset):
                self.offset += 1
                self.seen += 1
                if not self.by_shard and (self.seen - 1) % self.world != self.rank:
                    continue
                if self.kind == "dialog":
                    doc_id, unit = sample_unit(sample, self.fmt, self.images, self.tok, self.pack.seq_len,
                                               self.pack.max_images, self.source, self.stats)
                    if (self.split == "val") != in_validation(doc_id, self.val_permille):
                        continue
                    units = [unit] if unit is not None else []
                else:
                    try:
                        doc_id, nodes = sample_to_nodes(sample, self.kind, self.stats)
                    except Exception:
                        self.stats["bad_sample"] += 1
                        continue
                    if (self.split == "val") != in_validation(doc_id, self.val_permille):
                        continue
                    kept = []
                    for kind, value in nodes:
                        if kind == "image" and not image_ok(value):
                            self.stats["image_undecodable"] += 1
                            continue
                        kept.append((kind, value))
                    units = doc_units(kept, self.tok, self.pack.seq_len, self.pack.max_images,
                                      self.pack.max_chunks_per_doc, self.source, self.pack.text_separator,
                                      self.pack.require_image)
                self.stats["docs"] += 1
                if not units:
                    self.stats["docs_skipped"] += 1
                    continue
                # All units of a document at once: the generator only pauses between documents,
                # so (shard_pos, offset) always describes exactly what the packer has received.
                self.epoch_docs += 1
                yield units
            self.shard_pos += 1
            self.offset = 0

    def next_row(self) -> Unit | None:
        """The next packed row, or None when a finite stream is exhausted."""
        shuffle = self.split == "train"
        cap = max(1, self.pack.shuffle_rows) if shuffle else 1
        while len(self.buffer) < cap and not self.exhausted:
            units = next(self._gen(), None)
            if units is None:
                self.exhausted = True
                self.buffer.extend(self.packer.rows)
                self.packer.rows = []
                break
            for unit in units:
                self.buffer.extend(self.packer.add(unit))
        if not self.buffer:
            return None
        i = self.rng.randrange(len(self.buffer)) if shuffle else 0
        return self.buffer.pop(i)

    def _gen(self):
        # One generator per stream, recreated after a state load; position is in the counters.
        if getattr(self, "_g", None) is None:
            self._g = self._units()
        return self._g

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where this stream stands."""
        return {"epoch": self.epoch, "shard_pos": self.shard_pos, "offset": self.offset, "seen": self.seen,
                "order": list(self.order), "packer": self.packer.state_dict(),
                "buffer": [dataclasses.asdict(u) for u in self.buffer], "rng": self.rng.getstate(),
                "stats": dict(self.stats), "exhausted": self.exhausted, "epoch_docs": self.epoch_docs, "shards": list(self.shards)}

    def load_state_dict(self, state: dict) -> None:
        if state["shards"] != list(self.shards):
            raise ValueError("data state was saved for a different shard list; refusing an inexact resume")
        self.epoch, self.shard_pos, self.offset, self.seen = (state["epoch"], state["shard_pos"], state["offset"],
                                                              state["seen"])
        self.order = list(state["order"])
        self.packer.load_state_dict(state["packer"])
        self.buffer = [Unit(**u) for u in state["buffer"]]
        self.rng.setstate(_tuplify(state["rng"]))
        self.stats = Counter(state["stats"])
        self.exhausted = state["exhausted"]
        self.epoch_docs = state["epoch_docs"]
        self._g = None


def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, (list, tuple)) else x


class Mixture:
    """Batches from several streams, one data set per batch (as m4's ``proba_interleaving_dataset``), where a
    weight is the data set's share of trained (non-pad) tokens, not of batches: each batch comes from the data
    set furthest below its share so far (a deterministic deficit rule, so the realised shares stay within
    one batch of the weights however long each source's rows are). Resumable like its streams."""

    def __init__(self, streams: list[PackedStream], weights: list[float], batch_size: int, seed: int, rank: int):
        if len(streams) != len(weights) or not streams or min(weights) <= 0:
            raise ValueError("one positive weight per data set")
        total = float(sum(weights))
        self.streams, self.weights, self.batch_size = streams, [w / total for w in weights], batch_size
        self.tokens = [0] * len(streams)  # non-pad tokens handed out per data set

    def _pick(self) -> int:
        total = sum(self.tokens)
        return max(range(len(self.streams)), key=lambda i: (self.weights[i] * total - self.tokens[i], self.weights[i]))

    def next_batch_rows(self) -> list[Unit] | None:
        i = self._pick()
        rows = []
        while len(rows) < self.batch_size:
            row = self.streams[i].next_row()
            if row is None:
                break
            rows.append(row)
        self.tokens[i] += sum(len(r.tokens) for r in rows)
        return rows or None

    def state_dict(self) -> dict:
        return {"tokens": list(self.tokens), "streams": [s.state_dict() for s in self.streams]}

    def load_state_dict(self, state: dict) -> None:
        self.tokens = list(state.get("tokens", [0] * len(self.streams)))
        for s, st in zip(self.streams, state["streams"]):
            s.load_state_dict(st)
