"""The common part of the training backends: ranks, device, precision, collectives, checkpoint files.

The interface the loop uses is described in :mod:`train.backends`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path

import torch

from model.build import ModelConfig
from obelics.storage import write_text_atomic
from train.config import TrainConfig


def local_weights(p: torch.Tensor, part_rank: int | None = None) -> torch.Tensor:
    """The values of ``p`` this rank holds: all of it, or under ZeRO-3 its partition without the padding.

    DeepSpeed pads the last partitions of a parameter up to ``world × partition size`` and leaves that
    padding uninitialised (``torch.empty``): whatever the allocator hands back, NaN bits included. Judging the
    padding made finite runs roll back as "non-finite weights" where recycled memory held such bits.
    ``part_rank``: this rank in the parameter's partition group (read from ``torch.distributed`` if None).
    """
    t = getattr(p, "ds_tensor", None)
    if t is None:
        return p
    if part_rank is None:
        part_rank = torch.distributed.get_rank(group=getattr(p, "ds_process_group", None))
    size = t.numel()
    return t.view(-1).narrow(0, 0, max(0, min(size, p.ds_numel - part_rank * size)))


class Backend:
    """Common part: ranks, device, precision, collectives over ``torch.distributed``, checkpoint files."""

    name = "?"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        use_cuda = torch.cuda.is_available()
        if not use_cuda and cfg.run.cpu_threads > 0:
            torch.set_num_threads(cfg.run.cpu_threads)
        self.device = torch.device(f"cuda:{self.local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        self._init_distributed("nccl" if use_cuda else "gloo")
        prec = cfg.run.precision
        if prec == "auto":
            prec = "bf16" if use_cuda and torch.cuda.is_bf16_supported() else "fp32"
        self.precision = prec
        self.model = None  # the unwrapped model
        self.optimizer = None
        self.groups: list[dict] = []  # param_groups(): decay / no-decay, with their parameter names
        # checkpoints with backbones hold only the trained weights (the backbones are on disk already)
        self.save_full = not (cfg.model.llama_path or cfg.model.clip_path)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------ to implement
    def _init_distributed(self, dist_backend: str) -> None:
        raise NotImplementedError

    def build(self, model_cfg: ModelConfig, vocab_size: int, extra_tokens: int | None = None) -> None:
        """Build ``self.model`` (unwrapped) and ``self.optimizer`` (AdamW over ``param_groups``)."""
        raise NotImplementedError

    def forward(self, batch: dict, training: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def train_mode(self, on: bool) -> None:
        raise NotImplementedError

    def backward(self, loss: torch.Tensor, boundary: bool) -> None:
        raise NotImplementedError

    #: True when every process holds the whole model (not partitioned): periodic evaluation can generate on rank 0
    holds_full_model = True

    #: True when :meth:`step` can leave the weights untouched on a non-finite gradient norm
    skips_nonfinite = True

    def step(self) -> tuple[float, bool]:
        """Clip, update, clear gradients: (the global gradient norm before clipping, whether the update was
        applied). A non-finite norm skips the update where :attr:`skips_nonfinite` (gradients cleared)."""
        raise NotImplementedError

    def zero_grad(self) -> None:
        raise NotImplementedError

    def full_grad(self, p: torch.nn.Parameter) -> torch.Tensor | None:
        raise NotImplementedError

    def gathered(self, params, write: bool = False):
        """Context: ``params`` readable (and writable where it yields True)."""
        return contextlib.nullcontext(True)

    def count_params(self) -> dict:
        raise NotImplementedError

    def fingerprint(self, names: list[str]) -> dict[str, float]:
        raise NotImplementedError

    def save(self, root: Path, tag: str, state: dict, per_rank: dict, confirm: bool = True) -> None:
        """Write checkpoint ``root/tag`` (model, optimizer, ``state`` and each rank's ``per_rank``), then
        point ``root/latest`` at it when ``confirm`` (else the trainer does, once the state proved healthy)."""
        raise NotImplementedError

    def load(self, root: Path, tag: str) -> dict:
        """Load model and optimizer from ``root/tag``; the ``state`` that was saved with them."""
        raise NotImplementedError

    # ------------------------------------------------------------ common
    def set_lr(self, lr: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    @staticmethod
    def distributed() -> bool:
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    def _comm_device(self):
        return self.device if self.device.type == "cuda" else "cpu"

    def all_reduce(self, t: torch.Tensor, op=None) -> torch.Tensor:
        """``t`` reduced over the ranks (sum unless ``op``); ``t`` itself when single-process."""
        if not self.distributed():
            return t
        t = t.to(self._comm_device())
        torch.distributed.all_reduce(t, op=op or torch.distributed.ReduceOp.SUM)
        return t.cpu()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (one collective for all)."""
        if not self.distributed():
            return dict(values)
        t = self.all_reduce(torch.tensor(list(values.values()), dtype=torch.float64))
        return {k: float(v) / self.world for k, v in zip(values, t.tolist())}

    def min(self, x: int) -> int:
        return int(self.all_reduce(torch.tensor([x], dtype=torch.long), torch.distributed.ReduceOp.MIN
                                   if self.distributed() else None).item())

    def any(self, flags: list[bool]) -> list[bool]:
        """Each flag true on any rank."""
        t = torch.tensor([int(f) for f in flags])
        t = self.all_reduce(t, torch.distributed.ReduceOp.MAX if self.distributed() else None)
        return [bool(v) for v in t.tolist()]

    def weights_finite(self) -> bool:
        """Every trained weight (this rank's partition of it under ZeRO-3) finite, on all ranks."""
        bad = False
        with torch.no_grad():
            for p in self.model.parameters():
                if p.requires_grad:
                    t = local_weights(p)
                    if t.numel() and not bool(torch.isfinite(t).all()):
                        bad = True
                        break
        return not self.any([bad])[0]

    def barrier(self) -> None:
        if self.distributed():
            torch.distributed.barrier()

    def close(self) -> None:
        """Leave the process group cleanly (an abrupt exit can abort the other ranks)."""
        if self.distributed():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    def _write_rank_file(self, d: Path, per_rank: dict) -> None:
        with open(d / f"rank_{self.rank:05d}.pkl", "wb") as f:
            pickle.dump(per_rank, f)

    @staticmethod
    def _point_latest(root: Path, tag: str) -> None:
        write_text_atomic(root / "latest", tag)
