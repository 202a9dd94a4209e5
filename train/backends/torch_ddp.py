"""The torch backend: one process, or one per device under torchrun with DistributedDataParallel.

bf16 is mixed precision through ``torch.autocast`` (fp32 master weights). A checkpoint is a folder written
under a temporary name and renamed: ``model.pt`` (all weights, or only the trained ones when backbones
come from local checkpoints), ``optimizer.pt``, ``trainer_state.json`` and one ``rank_N.pkl`` per rank.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path

import torch

from model.build import ModelConfig, build_model, count_params, fingerprint, param_groups
from train.backends.base import Backend


class TorchBackend(Backend):
    name = "torch"

    def _init_distributed(self, dist_backend: str) -> None:
        if self.world > 1 and not self.distributed():
            torch.distributed.init_process_group(backend=dist_backend)

    def build(self, model_cfg: ModelConfig, vocab_size: int, extra_tokens: int | None = None) -> None:
        self.model = build_model(model_cfg, vocab_size=vocab_size, seed=self.cfg.run.seed, extra_tokens=extra_tokens)
        self.model.to(self.device)
        self.groups = param_groups(self.model, self.cfg.optim.weight_decay)
        o = self.cfg.optim
        self.optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in self.groups],
                                           lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        self.net = self.model
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)

    def forward(self, batch: dict, training: bool = True) -> torch.Tensor:
        module = self.net if training else self.model  # validation: no DDP bookkeeping
        ctx = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16"
               else contextlib.nullcontext())
        with ctx:
            return module(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          pixel_values=batch["pixel_values"], image_attention_mask=batch["image_attention_mask"],
                          use_cache=False).logits

    def train_mode(self, on: bool) -> None:
        self.net.train(on)

    def backward(self, loss: torch.Tensor, boundary: bool) -> None:
        (loss / self.cfg.optim.grad_accum).backward()

    def step(self) -> tuple[float, bool]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        # the norm is over the all-reduced gradients (DDP), so every rank takes the same decision
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip))
        applied = math.isfinite(gnorm)
        if applied:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return gnorm, applied

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def full_grad(self, p: torch.nn.Parameter) -> torch.Tensor | None:
        return p.grad

    def count_params(self) -> dict:
        return count_params(self.model)

    def fingerprint(self, names: list[str]) -> dict[str, float]:
        return fingerprint(self.model, names)

    def save(self, root: Path, tag: str, state: dict, per_rank: dict, confirm: bool = True) -> None:
        tmp, final = root / f"{tag}.tmp", root / tag
        if self.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        self.barrier()
        self._write_rank_file(tmp, per_rank)
        if self.is_main:
            sd = self.model.state_dict()
            if not self.save_full:
                keep = {n for n, p in self.model.named_parameters() if p.requires_grad}
                sd = {k: v for k, v in sd.items() if k in keep}
            torch.save(sd, tmp / "model.pt")
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            with open(tmp / "trainer_state.json", "w") as f:
                json.dump(state, f)
        self.barrier()
        if self.is_main:
            if final.exists():
                shutil.rmtree(final)
            tmp.replace(final)
            if confirm:
                self._point_latest(root, tag)

    def load(self, root: Path, tag: str) -> dict:
        d = root / tag
        sd = torch.load(d / "model.pt", map_location="cpu")
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        if unexpected or (self.save_full and missing):
            raise RuntimeError(f"checkpoint {d} does not match the model: {unexpected or missing}")
        self.optimizer.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=False))
        with open(d / "trainer_state.json") as f:
            return json.load(f)
