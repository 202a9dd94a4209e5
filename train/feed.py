"""The batches one rank trains and validates on: the mixture of packed streams, prefetched when asked, with
its position (and any batches in flight) saved in checkpoints so a resume continues exactly."""

from __future__ import annotations

import torch

from train.collate import ImageTransform, collate_rows
from train.config import TrainConfig
from train.prefetch import Prefetcher, pending_from_state, unit_dict
from train.stream import Mixture, PackedStream

TENSOR_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_attention_mask", "labels")


class Feed:
    """Training batches: checkpointed leftovers first, then the mixture (through a background thread when
    ``data.prefetch`` > 0); validation batches from the held-out documents or ``data.val_shards``."""

    def __init__(self, cfg: TrainConfig, tok, image_size: int, rank: int, world: int, device: torch.device):
        self.cfg, self.tok, self.rank, self.world, self.device = cfg, tok, rank, world, device
        self.transform = ImageTransform(image_size)
        self.datasets = cfg.data.dataset_list()
        streams = [PackedStream(d.shards, d.kind, tok, d.packing_config(cfg.data.packing), seed=cfg.run.seed, rank=rank,
                                world=world, source=i, split="train", val_permille=cfg.data.val_permille,
                                fmt=d.format, images=d.images)
                   for i, d in enumerate(self.datasets)]
        self.mixture = Mixture(streams, [d.weight for d in self.datasets], cfg.data.batch_size, cfg.run.seed, rank)
        self.prefetcher: Prefetcher | None = None
        self.pending: list = []  # batches restored from a checkpoint, consumed before the mixture

    def _collate(self, rows) -> dict:
        return collate_rows(rows, self.tok, self.cfg.data.packing.seq_len, self.transform)

    def _to_device(self, b: dict) -> dict:
        for k in TENSOR_KEYS:
            b[k] = b[k].to(self.device)
        return b

    def next(self) -> tuple[list, dict]:
        """(rows, device batch) for the next micro-batch."""
        if self.cfg.data.prefetch > 0:
            if self.prefetcher is None:
                self.prefetcher = Prefetcher(self.mixture, self._collate, self.cfg.data.prefetch, self.pending)
                self.pending = []
            got = self.prefetcher.get()
            if got is None:
                raise RuntimeError("data stream ended")
            rows, b = got
        else:
            rows = self.pending.pop(0) if self.pending else self.mixture.next_batch_rows()
            if rows is None:
                raise RuntimeError("data stream ended")
            b = self._collate(rows)
        return rows, self._to_device(b)

    def batch(self, rows) -> dict:
        """``rows`` collated onto the device."""
        return self._to_device(self._collate(rows))

    def validation_rows(self) -> list[list[list]]:
        """Per validation source, up to ``run.val_batches`` batches (as rows); empty when none is configured."""
        cfg = self.cfg
        if cfg.data.val_shards is not None:
            specs = [(cfg.data.val_shards, "webdoc", 1000, None)]  # separate shards: every document
        elif cfg.data.val_permille > 0:
            specs = [(d.shards, d.kind, cfg.data.val_permille, d) for d in self.datasets]
        else:
            return []
        out = []
        for i, (shards, kind, permille, d) in enumerate(specs):
            s = PackedStream(shards, kind, self.tok, cfg.data.packing, seed=cfg.run.seed, rank=self.rank,
                             world=self.world, source=i, split="val", val_permille=permille, infinite=False,
                             fmt=d.format if d else "dialog", images=d.images if d else None)
            batches = []
            for _ in range(cfg.run.val_batches):
                rows = [r for r in (s.next_row() for _ in range(cfg.data.batch_size)) if r is not None]
                if not rows:
                    break
                batches.append(rows)
            out.append(batches)
        return out

    def state_dict(self) -> dict:
        if self.prefetcher is not None:
            return self.prefetcher.state_dict()
        return {"mixture": self.mixture.state_dict(), "pending": [[unit_dict(u) for u in rows] for rows in self.pending]}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.mixture.load_state_dict(state["mixture"])
        self.pending = pending_from_state(state)

    def close(self) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()
            self.prefetcher = None
