"""The training loop: torch (single process or torchrun/DDP) or DeepSpeed ZeRO-3 backends.

One step = ``grad_accum`` micro-batches → (spike check) → clip → AdamW → LR from the schedule. Every
``save_every`` steps a checkpoint with weights, optimizer, schedule state, RNG and data position is
written and ``checkpoints/latest`` is pointed at it last, so ``latest`` only ever names a complete one.
A NaN or spike rolls back to ``latest``, cuts the LR and carries on with *new* data (the stream is not
rewound, so the offending batches are not replayed), up to ``max_rollbacks`` times.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from model.build import build_config, build_model, count_params, fingerprint, param_groups
from model.flops import flops_per_token
from model.loss import causal_lm_loss
from train.collate import ImageTransform, collate_rows
from train.config import TrainConfig, to_dict
from train.prefetch import Prefetcher, pending_from_state, unit_dict
from train.stability import SpikeDetector, lr_at
from train.stream import Mixture, PackedStream
from train.tokenizer import base_vocab_size, load_tokenizer

log = logging.getLogger("train")

TENSOR_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_attention_mask", "labels")


class RollbackLimit(RuntimeError):
    """Too many rollbacks: the run needs a human."""


def _dist():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _rank_world() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


class Trainer:
    """Owns model, optimizer, data streams, logs and checkpoints for one process."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.rank, self.world, self.local_rank = _rank_world()
        self.out = Path(cfg.run.out_dir)
        self.ckpt_root = self.out / "checkpoints"
        use_cuda = torch.cuda.is_available()
        if not use_cuda and cfg.run.cpu_threads > 0:
            torch.set_num_threads(cfg.run.cpu_threads)
        self.device = torch.device(f"cuda:{self.local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        backend = "nccl" if use_cuda else "gloo"
        if cfg.run.backend == "deepspeed":
            import deepspeed

            deepspeed.init_distributed(dist_backend=backend)
        elif self.world > 1 and not _dist():
            torch.distributed.init_process_group(backend=backend)
        prec = cfg.run.precision
        if prec == "auto":
            prec = "bf16" if use_cuda and torch.cuda.is_bf16_supported() else "fp32"
        self.precision = prec
        self._seed(cfg.run.seed)

        self.tok = load_tokenizer(cfg.data.tokenizer, cfg.data.tokenizer_vocab)
        self.ds_config = None
        zero3 = None
        if cfg.run.backend == "deepspeed":
            self.ds_config = self._ds_config(build_config(cfg.model, base_vocab_size(self.tok)).hidden_size)
            if self.ds_config.get("zero_optimization", {}).get("stage") == 3:
                zero3 = self.ds_config
        self.model = build_model(cfg.model, vocab_size=base_vocab_size(self.tok), seed=cfg.run.seed,
                                 zero3_config=zero3)
        self.model_config = self.model.config
        self.counts = count_params(self.model)
        self.save_full = not (cfg.model.llama_path or cfg.model.clip_path)
        image_size = cfg.data.image_size or self.model_config.vision_config.image_size
        self.transform = ImageTransform(image_size)
        self.datasets = cfg.data.dataset_list()
        self.mixture = self._make_mixture()
        self.prefetcher: Prefetcher | None = None
        self.pending: list = []  # batches restored from a checkpoint, consumed before the mixture
        groups = param_groups(self.model, cfg.optim.weight_decay)
        self.group_names = [g.pop("names") for g in groups]
        opt = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
        if cfg.run.backend == "deepspeed":
            self._init_deepspeed(opt)
        else:
            self.model.to(self.device)
            self.optimizer = opt
            self.engine = None
            self.ddp = None
            if self.world > 1:
                self.ddp = torch.nn.parallel.DistributedDataParallel(
                    self.model, device_ids=[self.local_rank] if use_cuda else None)
        self.detector = SpikeDetector(cfg.stability.window, cfg.stability.min_history, cfg.stability.spike_sigma,
                                      cfg.stability.spike_ratio)
        self.step = 0
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.tokens_seen = 0
        self.spike_injected = False
        self._acts: dict[str, float] = {}
        self._hooks = []
        self.tb = None
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "config.json", "w") as f:
                json.dump(to_dict(cfg), f, indent=1, default=str)
            if cfg.run.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self.tb = SummaryWriter(str(self.out / "tb"))
                except ImportError:
                    log.warning("tensorboard not installed; JSONL logs only")

    # ---------------------------------------------------------------- setup
    def _seed(self, seed: int) -> None:
        random.seed(seed + self.rank)
        np.random.seed(seed + self.rank)
        torch.manual_seed(seed + self.rank)

    def _make_mixture(self) -> Mixture:
        streams = [PackedStream(d.shards, d.kind, self.tok, self.cfg.data.packing, seed=self.cfg.run.seed,
                                rank=self.rank, world=self.world, source=i, split="train",
                                val_permille=self.cfg.data.val_permille)
                   for i, d in enumerate(self.datasets)]
        return Mixture(streams, [d.weight for d in self.datasets], self.cfg.data.batch_size, self.cfg.run.seed,
                       self.rank)

    def _ds_config(self, d: int) -> dict:
        """The DeepSpeed JSON with its "auto" fields filled from the training config and hidden size."""
        with open(self.cfg.run.deepspeed_config) as f:
            ds = json.load(f)
        fill = {"train_micro_batch_size_per_gpu": self.cfg.data.batch_size,
                "gradient_accumulation_steps": self.cfg.optim.grad_accum,
                "train_batch_size": self.cfg.data.batch_size * self.cfg.optim.grad_accum * self.world,
                "gradient_clipping": self.cfg.optim.grad_clip}
        for k, v in fill.items():
            if ds.get(k, "auto") == "auto":
                ds[k] = v
        zo = ds.setdefault("zero_optimization", {})
        for k, v in {"reduce_bucket_size": d * d, "stage3_prefetch_bucket_size": int(0.9 * d * d),
                     "stage3_param_persistence_threshold": 10 * d}.items():
            if zo.get(k, "auto") == "auto":
                zo[k] = v
        ds.setdefault("bf16", {})["enabled"] = self.precision == "bf16"
        ds["zero_allow_untested_optimizer"] = True
        ds["zero_force_ds_cpu_optimizer"] = False
        return ds

    def _init_deepspeed(self, opt) -> None:
        import deepspeed

        self.engine, self.optimizer, _, _ = deepspeed.initialize(model=self.model, optimizer=opt,
                                                                  config=self.ds_config)
        self.ddp = None

    @property
    def net(self):
        return self.engine or self.ddp or self.model

    # ---------------------------------------------------------------- data
    def _collate(self, rows) -> dict:
        return collate_rows(rows, self.tok, self.cfg.data.packing.seq_len, self.transform)

    def _data_state(self) -> dict:
        if self.prefetcher is not None:
            return self.prefetcher.state_dict()
        return {"mixture": self.mixture.state_dict(), "pending": [[unit_dict(u) for u in rows] for rows in self.pending]}

    def _load_data_state(self, state: dict) -> None:
        if self.prefetcher is not None:
            self.prefetcher.close()
            self.prefetcher = None
        self.mixture.load_state_dict(state["mixture"])
        self.pending = pending_from_state(state)

    def _next_batch(self):
        """(rows, device batch): checkpointed leftovers first, then the mixture (prefetched if enabled)."""
        if self.cfg.data.prefetch > 0:
            if self.prefetcher is None:
                self.prefetcher = Prefetcher(self.mixture, self._collate, self.cfg.data.prefetch, self.pending)
                self.pending = []
            got = self.prefetcher.get()
            if got is None:
                return None
            rows, b = got
        else:
            rows = self.pending.pop(0) if self.pending else self.mixture.next_batch_rows()
            if rows is None:
                return None
            b = self._collate(rows)
        for k in TENSOR_KEYS:
            b[k] = b[k].to(self.device)
        return rows, b

    def _batch(self, rows) -> dict:
        b = collate_rows(rows, self.tok, self.cfg.data.packing.seq_len, self.transform)
        for k in TENSOR_KEYS:
            b[k] = b[k].to(self.device)
        return b

    def _forward(self, b: dict, module=None) -> dict:
        dtype = torch.bfloat16 if self.precision == "bf16" else None
        ctx = (torch.autocast(self.device.type, dtype=dtype) if dtype and self.engine is None
               else _nullcontext())
        with ctx:
            out = (module or self.net)(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                           pixel_values=b["pixel_values"], image_attention_mask=b["image_attention_mask"],
                           use_cache=False)
        return causal_lm_loss(out.logits, b["labels"], self.cfg.optim.z_loss)

    def _mean(self, x: float) -> float:
        if not _dist():
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world

    def _per_dataset(self, source: int, ce: float) -> dict[str, float]:
        """Mean CE per data set over the ranks whose batch came from it this step (m4's per-dataset curves)."""
        k = len(self.datasets)
        v = torch.zeros(2 * k, dtype=torch.float64)
        v[source], v[k + source] = ce, 1.0
        if _dist():
            v = v.to(self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(v)
            v = v.cpu()
        return {self.datasets[i].name: float(v[i] / v[k + i]) for i in range(k) if v[k + i] > 0}

    def _switches(self) -> tuple[bool, bool]:
        """(kill, save) switch files, agreed across ranks (any rank seeing one counts)."""
        flags = [bool(p) and os.path.exists(p) for p in (self.cfg.run.kill_switch, self.cfg.run.save_switch)]
        if _dist():
            t = torch.tensor([int(f) for f in flags], device=self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flags = [bool(v) for v in t.tolist()]
        return flags[0], flags[1]

    def _min(self, x: int) -> int:
        if not _dist():
            return x
        t = torch.tensor([x], dtype=torch.long, device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return int(t.item())

    # ---------------------------------------------------------------- stats
    def _hook_acts(self, on: bool) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if not on:
            return
        m = self.model.model
        named = [(f"decoder.{i}", lay) for i, lay in enumerate(m.layers)]
        named += [(f"xattn.{i}", lay) for i, lay in enumerate(m.gated_cross_attn_layers)]
        if getattr(m, "perceiver_resampler", None) is not None:
            named.append(("perceiver", m.perceiver_resampler))
        named.append(("vision", m.vision_model))

        def make(name):
            def hook(_mod, _inp, out):
                t = out[0] if isinstance(out, tuple) else getattr(out, "last_hidden_state", out)
                if isinstance(t, torch.Tensor):
                    self._acts[name] = float(t.detach().float().pow(2).mean().sqrt())
            return hook

        self._hooks = [mod.register_forward_hook(make(n)) for n, mod in named]

    def _grad_norms(self) -> dict:
        """L2 norm of the gradient per module group (e.g. ``model.gated_cross_attn_layers.3``)."""
        sums: dict[str, float] = {}
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if self.engine is not None:
                from deepspeed.utils import safe_get_full_grad

                g = safe_get_full_grad(p)
            else:
                g = p.grad
            if g is None:
                continue
            parts = name.split(".")
            key = ".".join(parts[:3] if parts[1] in ("gated_cross_attn_layers", "layers") else parts[:2])
            sums[key] = sums.get(key, 0.0) + float(g.detach().float().pow(2).sum())
        return {k: math.sqrt(v) for k, v in sums.items()}

    # ---------------------------------------------------------------- checkpoints
    def _tag(self, step: int) -> str:
        return f"step_{step:08d}"

    def latest_tag(self) -> str | None:
        p = self.ckpt_root / "latest"
        return p.read_text().strip() if p.exists() else None

    def _state(self) -> dict:
        return {"step": self.step, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
                "tokens_seen": self.tokens_seen, "detector": self.detector.state_dict()}

    def save(self) -> None:
        tag = self._tag(self.step)
        final = self.ckpt_root / tag
        per_rank = {"rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                            "torch": torch.get_rng_state(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                    "data": self._data_state()}
        if self.engine is not None:
            self.engine.save_checkpoint(str(self.ckpt_root), tag=tag, client_state={"trainer": self._state()},
                                        save_latest=False)
            with open(final / f"rank_{self.rank:05d}.pkl", "wb") as f:
                pickle.dump(per_rank, f)
            self._barrier()
            if self.rank == 0:
                _write_text_atomic(self.ckpt_root / "latest", tag)
        else:
            tmp = self.ckpt_root / f"{tag}.tmp"
            if self.rank == 0:
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir(parents=True)
            self._barrier()
            with open(tmp / f"rank_{self.rank:05d}.pkl", "wb") as f:
                pickle.dump(per_rank, f)
            if self.rank == 0:
                sd = self.model.state_dict()
                if not self.save_full:
                    keep = {n for n, p in self.model.named_parameters() if p.requires_grad}
                    sd = {k: v for k, v in sd.items() if k in keep}
                torch.save(sd, tmp / "model.pt")
                torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
                with open(tmp / "trainer_state.json", "w") as f:
                    json.dump(self._state(), f)
            self._barrier()
            if self.rank == 0:
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
                _write_text_atomic(self.ckpt_root / "latest", tag)
        self._barrier()
        if self.rank == 0:
            self._prune()
        self._barrier()

    def _prune(self) -> None:
        latest = self.latest_tag()
        tags = sorted(p.name for p in self.ckpt_root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
        for t in tags[: max(0, len(tags) - self.cfg.run.keep_checkpoints)]:
            if t != latest:
                shutil.rmtree(self.ckpt_root / t, ignore_errors=True)

    def load(self, tag: str, restore_data: bool = True) -> None:
        """Load checkpoint ``tag``; ``restore_data=False`` keeps the current data position (rollback)."""
        d = self.ckpt_root / tag
        if self.engine is not None:
            _, client = self.engine.load_checkpoint(str(self.ckpt_root), tag=tag)
            state = client["trainer"]
        else:
            sd = torch.load(d / "model.pt", map_location="cpu")
            missing, unexpected = self.model.load_state_dict(sd, strict=False)
            if unexpected or (self.save_full and missing):
                raise RuntimeError(f"checkpoint {d} does not match the model: {unexpected or missing}")
            self.optimizer.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=False))
            with open(d / "trainer_state.json") as f:
                state = json.load(f)
        self.step, self.lr_scale, self.rollbacks = state["step"], state["lr_scale"], state["rollbacks"]
        self.tokens_seen = state["tokens_seen"]
        self.detector.load_state_dict(state["detector"])
        if restore_data:
            with open(d / f"rank_{self.rank:05d}.pkl", "rb") as f:
                per_rank = pickle.load(f)
            rng = per_rank["rng"]
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            self._load_data_state(per_rank["data"])

    def _barrier(self) -> None:
        if _dist():
            torch.distributed.barrier()

    # ---------------------------------------------------------------- logging
    def _log(self, rec: dict) -> None:
        if self.rank != 0:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k != "step" and math.isfinite(v):
                    self.tb.add_scalar(k.replace(".", "/"), v, rec.get("step", 0))
                elif isinstance(v, dict):
                    for kk, vv in v.items():
                        if isinstance(vv, (int, float)) and math.isfinite(vv):
                            self.tb.add_scalar(f"{k}/{kk}", vv, rec.get("step", 0))

    # ---------------------------------------------------------------- validation
    def validate(self) -> float | None:
        cfg = self.cfg
        if cfg.data.val_shards is not None:
            specs = [(cfg.data.val_shards, "webdoc", 1000)]  # separate shards: every document
        elif cfg.data.val_permille > 0:
            specs = [(d.shards, d.kind, cfg.data.val_permille) for d in self.datasets]
        else:
            return None
        total, n = 0.0, 0
        self.net.eval() if self.engine is None else self.engine.eval()
        try:
            with torch.no_grad():
                for i, (shards, kind, permille) in enumerate(specs):
                    s = PackedStream(shards, kind, self.tok, cfg.data.packing, seed=cfg.run.seed, rank=self.rank,
                                     world=self.world, source=i, split="val", val_permille=permille,
                                     infinite=False)
                    batches = []
                    for _ in range(cfg.run.val_batches):
                        rows = [r for r in (s.next_row() for _ in range(cfg.data.batch_size)) if r is not None]
                        if not rows:
                            break
                        batches.append(rows)
                    # ZeRO-3 forwards are collective: every rank runs the same number of batches
                    k = self._min(len(batches))
                    for rows in batches[:k]:
                        out = self._forward(self._batch(rows), module=self.engine or self.model)
                        total += float(out["ce"]) * out["n_tokens"]
                        n += out["n_tokens"]
        finally:
            self.net.train() if self.engine is None else self.engine.train()
        total, n = self._mean(total) * self.world, self._mean(float(n)) * self.world
        return total / n if n else None

    # ---------------------------------------------------------------- training
    def _inject_spike(self) -> None:
        """Testing aid: blow up the trainable extra rows of the LM head so the loss really spikes."""
        from model.build import writable

        w = self.model.lm_head.additional_fc.weight
        with torch.no_grad(), writable([w]) as write:  # ZeRO-3: gathered, written on rank 0
            if write:
                w.normal_(0.0, 1000.0)
        self.spike_injected = True

    def rollback(self, reason: str) -> None:
        tag = self.latest_tag()
        if tag is None:
            raise RollbackLimit(f"{reason} at step {self.step} and no checkpoint to roll back to")
        if self.rollbacks >= self.cfg.stability.max_rollbacks:
            raise RollbackLimit(f"{reason} at step {self.step}: {self.rollbacks} rollbacks already")
        bad_step, rollbacks, scale = self.step, self.rollbacks, self.lr_scale
        if self.engine is None:
            self.optimizer.zero_grad(set_to_none=True)
        self.load(tag, restore_data=False)
        self.rollbacks = rollbacks + 1
        self.lr_scale = scale * self.cfg.stability.lr_cut
        self._log({"event": "rollback", "step": bad_step, "to_step": self.step, "reason": reason,
                   "lr_scale": self.lr_scale, "rollbacks": self.rollbacks})
        log.warning("rollback at step %d (%s) to %s, lr scale now %.3g", bad_step, reason, tag, self.lr_scale)

    def train(self) -> dict:
        try:
            return self._train()
        finally:
            if self.prefetcher is not None:
                self.prefetcher.close()
                self.prefetcher = None

    def _train(self) -> dict:
        cfg = self.cfg
        tag = self.latest_tag() if cfg.run.resume else None
        if tag:
            self.load(tag)
            log.info("resumed from %s at step %d", tag, self.step)
        else:
            self.save()  # step 0: a rollback target before the first regular checkpoint
        names = ["model.embed_tokens.weight", "model.vision_model.embeddings.patch_embedding.weight",
                 "model.gated_cross_attn_layers.0.alpha_cross_attn"]
        self._log({"event": "start", "step": self.step, "params": self.counts, "world": self.world,
                   "backend": cfg.run.backend, "precision": self.precision,
                   "fingerprint": fingerprint(self.model, names)})
        self.net.train() if self.engine is None else self.engine.train()
        steps_here = 0
        last = {}
        train_text = not cfg.model.freeze_text
        train_vision = not cfg.model.freeze_vision
        while self.step < cfg.run.max_steps:
            if cfg.run.stop_after >= 0 and steps_here >= cfg.run.stop_after:
                log.info("stop_after=%d reached: exiting without a final save (simulated kill)", steps_here)
                return last
            if cfg.stability.inject_spike_at == self.step and not self.spike_injected:
                self._inject_spike()
            t0 = time.perf_counter()
            lr = lr_at(self.step, cfg.optim.lr, cfg.optim.final_lr, cfg.optim.warmup_steps, cfg.run.max_steps,
                       self.lr_scale)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            stats_step = cfg.run.stats_every > 0 and self.step % cfg.run.stats_every == 0
            self._hook_acts(stats_step)
            ce_sum = z_sum = 0.0
            n_tok = n_img = n_real = 0
            spiked = None
            source = 0
            for _micro in range(cfg.optim.grad_accum):
                got = self._next_batch()
                if got is None:
                    raise RuntimeError("data stream ended")
                rows, b = got
                source = b["source"]
                out = self._forward(b)
                # all ranks see the same mean loss, so they agree on a rollback
                reason = _peek(self.detector, self._mean(float(out["loss"].detach())))
                if reason:
                    spiked = reason
                    break
                if self.engine is not None:
                    self.engine.backward(out["loss"])
                else:
                    (out["loss"] / cfg.optim.grad_accum).backward()
                ce_sum += float(out["ce"])
                z_sum += float(out["z"])
                n_tok += out["n_tokens"]
                n_img += b["num_images"]
                n_real += b["num_tokens"]
                if self.engine is not None and _micro < cfg.optim.grad_accum - 1:
                    self.engine.step()
            self._hook_acts(False)
            if spiked:
                self.rollback(spiked)
                continue
            grad_norms = self._grad_norms() if stats_step else None
            if self.engine is not None:
                self.engine.step()
                gnorm = self.engine.get_global_grad_norm()
                gnorm = float(gnorm) if gnorm is not None else float("nan")
            else:
                params = [p for p in self.model.parameters() if p.requires_grad]
                if self.ddp is None and self.world > 1:
                    raise RuntimeError("multi-process torch backend needs DDP")
                gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            per_ds = self._per_dataset(source, ce_sum / cfg.optim.grad_accum)
            ce = self._mean(ce_sum / cfg.optim.grad_accum)
            z = self._mean(z_sum / cfg.optim.grad_accum)
            self.detector.check(ce + cfg.optim.z_loss * z)
            self.step += 1
            steps_here += 1
            dt = time.perf_counter() - t0
            real_tokens = self._mean(float(n_real)) * self.world
            images = self._mean(float(n_img)) * self.world
            self.tokens_seen += int(real_tokens)
            fl = flops_per_token(self.model_config, cfg.data.packing.seq_len, images / max(real_tokens, 1),
                                 grad_ckpt=cfg.model.gradient_checkpointing, train_text=train_text,
                                 train_vision=train_vision)
            tps = real_tokens / dt
            per_dev = tps / self.world
            rec = {"step": self.step, "loss": ce + cfg.optim.z_loss * z, "ce": ce, "z_loss": z, "lr": lr,
                   "grad_norm": gnorm, "tokens": int(real_tokens), "images": int(images),
                   "dataset": self.datasets[source].name, "step_time_s": dt, "tokens_per_s": tps,
                   "tflops_per_device": per_dev * fl.hardware / 1e12,
                   "model_tflops_per_device": per_dev * fl.model / 1e12,
                   "mfu": per_dev * fl.model / (cfg.run.peak_tflops * 1e12),
                   "m4_tflops_per_device": per_dev * fl.m4_style / 1e12,
                   "tokens_seen": self.tokens_seen, "lr_scale": self.lr_scale, "ce_per_dataset": per_ds}
            if grad_norms is not None:
                rec["grad_norms"] = grad_norms
                rec["act_rms"] = dict(self._acts)
                rec["alphas"] = {f"xattn.{i}": [float(lay.alpha_cross_attn.detach().float().mean()),
                                                float(lay.alpha_dense.detach().float().mean())]
                                 for i, lay in enumerate(self.model.model.gated_cross_attn_layers)} \
                    if self.engine is None else {}
            if cfg.run.val_every > 0 and self.step % cfg.run.val_every == 0:
                v = self.validate()
                if v is not None:
                    rec["val_loss"] = v
            if self.step % max(1, cfg.run.log_every) == 0 or "val_loss" in rec:
                self._log(rec)
            last = rec
            kill, save_now = self._switches()
            if self.step % cfg.run.save_every == 0 or kill or save_now:
                self.save()
            if save_now and self.rank == 0:
                Path(cfg.run.save_switch).unlink(missing_ok=True)
            if kill:
                log.info("kill switch %s found: checkpointed at step %d, exiting", cfg.run.kill_switch, self.step)
                return last
        if self.latest_tag() != self._tag(self.step):
            self.save()
        if self.tb is not None:
            self.tb.flush()
        return last

    def close(self) -> None:
        """Flush logs and leave the process group cleanly (an abrupt exit can abort the other ranks)."""
        if self.prefetcher is not None:
            self.prefetcher.close()
        if self.tb is not None:
            self.tb.close()
        if _dist():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def _peek(detector: SpikeDetector, loss: float) -> str | None:
    """Spike verdict for ``loss`` without recording it (recorded after the step succeeds)."""
    saved = list(detector.history)
    reason = detector.check(loss)
    detector.history.clear()
    detector.history.extend(saved)
    return reason


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
