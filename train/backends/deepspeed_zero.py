"""The DeepSpeed backend: one process per device under the ``deepspeed`` launcher (or torchrun), ZeRO as
``run.deepspeed_config`` says. With stage 3 the model is built partitioned (``model/zero3.py``), so no
process holds all weights. bf16 is DeepSpeed's (weights in bf16, fp32 master copy in the optimizer).
A checkpoint is DeepSpeed's folder plus one ``rank_N.pkl`` per rank.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from model import zero3
from model.build import ModelConfig, build_config, build_model
from train.backends.base import Backend


def _shm_buffer(rank: int) -> Path:
    """The /dev/shm file of DeepSpeed's CPU all-reduce for ``rank`` (its name as ``shm.cpp`` builds it)."""
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    return Path("/dev/shm") / f"deepspeed_allreduce_buffer_{os.getuid()}_{addr}_{port}_{rank}"


class DeepSpeedBackend(Backend):
    name = "deepspeed"

    def _init_distributed(self, dist_backend: str) -> None:
        import deepspeed

        if dist_backend != "gloo" or self.world < 2:
            deepspeed.init_distributed(dist_backend=dist_backend)
            return
        # On CPU, DeepSpeed's shared-memory all-reduce (its inference_all_reduce; training's collectives go
        # through gloo) keeps one /dev/shm file per rank, named by user, master address and port, and never
        # removes it. A later run on the same port would reopen the stale file, and a rank could read the old
        # run's "copy done" flags before their owner resets them. Each rank removes its own stale file before
        # any rank maps the others', and unlinks the name once every rank has mapped it (the mappings stay
        # valid; nothing is left behind in /dev/shm).
        torch.distributed.init_process_group(backend=dist_backend)
        own = _shm_buffer(self.rank)
        own.unlink(missing_ok=True)
        torch.distributed.barrier()
        deepspeed.init_distributed(dist_backend=dist_backend)
        torch.distributed.barrier()
        own.unlink(missing_ok=True)

    def ds_config(self, hidden_size: int) -> dict:
        """The DeepSpeed JSON with its "auto" fields filled from the training config and hidden size."""
        cfg = self.cfg
        with open(cfg.run.deepspeed_config) as f:
            ds = json.load(f)
        fill = {"train_micro_batch_size_per_gpu": cfg.data.batch_size,
                "gradient_accumulation_steps": cfg.optim.grad_accum,
                "train_batch_size": cfg.data.batch_size * cfg.optim.grad_accum * self.world,
                "gradient_clipping": cfg.optim.grad_clip}
        for k, v in fill.items():
            if ds.get(k, "auto") == "auto":
                ds[k] = v
        d = hidden_size
        zo = ds.setdefault("zero_optimization", {})
        for k, v in {"reduce_bucket_size": d * d, "stage3_prefetch_bucket_size": int(0.9 * d * d),
                     "stage3_param_persistence_threshold": 10 * d}.items():
            if zo.get(k, "auto") == "auto":
                zo[k] = v
        ds.setdefault("bf16", {})["enabled"] = self.precision == "bf16"
        ds["zero_allow_untested_optimizer"] = True
        ds["zero_force_ds_cpu_optimizer"] = False
        return ds

    def build(self, model_cfg: ModelConfig, vocab_size: int, extra_tokens: int | None = None) -> None:
        import deepspeed

        self.config = self.ds_config(build_config(model_cfg, vocab_size).hidden_size)
        seed = self.cfg.run.seed
        if self.config.get("zero_optimization", {}).get("stage") == 3:
            self.model = zero3.build_model(model_cfg, self.config, vocab_size=vocab_size, seed=seed,
                                           extra_tokens=extra_tokens)
        else:
            self.model = build_model(model_cfg, vocab_size=vocab_size, seed=seed, extra_tokens=extra_tokens)
        self.groups = zero3.param_groups(self.model, self.cfg.optim.weight_decay)
        o = self.cfg.optim
        opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in self.groups],
                                lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=self.model, optimizer=opt, config=self.config)

    @property
    def holds_full_model(self) -> bool:
        return self.config.get("zero_optimization", {}).get("stage") != 3

    def forward(self, batch: dict, training: bool = True) -> torch.Tensor:
        return self.engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           pixel_values=batch["pixel_values"], image_attention_mask=batch["image_attention_mask"],
                           use_cache=False).logits

    def train_mode(self, on: bool) -> None:
        self.engine.train(on)

    def backward(self, loss: torch.Tensor, boundary: bool) -> None:
        self.engine.backward(loss)  # scales by 1/grad_accum itself
        if not boundary:
            self.engine.step()  # DeepSpeed counts micro-steps; it updates only at the boundary

    # ZeRO-3 computes the norm inside its step (bf16/fp32 have no overflow skip): a non-finite norm has been
    # applied already, so the trainer rolls back instead of skipping
    skips_nonfinite = False

    def step(self) -> tuple[float, bool]:
        self.engine.step()
        gnorm = self.engine.get_global_grad_norm()
        gnorm = float(gnorm) if gnorm is not None else float("nan")
        return gnorm, math.isfinite(gnorm)

    def zero_grad(self) -> None:
        pass  # the engine clears gradients at each update; a rollback reloads its state

    def full_grad(self, p: torch.nn.Parameter) -> torch.Tensor | None:
        from deepspeed.utils import safe_get_full_grad

        return safe_get_full_grad(p)

    def gathered(self, params, write: bool = False):
        return zero3.gathered(params, write=write)

    def count_params(self) -> dict:
        return zero3.count_params(self.model)

    def fingerprint(self, names: list[str]) -> dict[str, float]:
        return zero3.fingerprint(self.model, names)

    def save(self, root: Path, tag: str, state: dict, per_rank: dict, confirm: bool = True) -> None:
        self.engine.save_checkpoint(str(root), tag=tag, client_state={"trainer": state}, save_latest=False)
        self._write_rank_file(root / tag, per_rank)
        self.barrier()
        if self.is_main and confirm:
            self._point_latest(root, tag)

    def load(self, root: Path, tag: str) -> dict:
        _, client = self.engine.load_checkpoint(str(root), tag=tag)
        return client["trainer"]
