"""The training loop, the same for every backend (``train/backends/``: torch/DDP, DeepSpeed ZeRO).

One step = ``grad_accum`` micro-batches → (spike check) → clip → AdamW → LR from the schedule. The loss
is ``model/loss.py``'s: its ``total`` is backpropagated, checked for spikes and logged as ``loss``, each of
its named parts is logged under its name. Steps are numbered from 1 everywhere (metrics, events, drills):
step N is the N-th optimizer update; checkpoint ``step_N`` holds the state after it.

Recovery, with no person (``stability.*``):
- a non-finite gradient norm skips the optimizer step (event ``skip_step``, counted); the step is retried on
  new data; ``max_skipped_in_row`` skips in a row roll back;
- a NaN/inf loss or a spike rolls back to ``latest``, cuts the LR (``lr_cut``, floor ``min_lr_scale``) and
  carries on with *new* data (the stream is not rewound: the offending batches are skipped);
- a checkpoint is written as *pending* and ``latest`` is pointed at it only once the next step succeeded, and
  never when the weights are non-finite: a damaging update on a checkpoint step is never a rollback target
  (the pending folder is deleted, the rollback goes one checkpoint further back);
- if the first step after a rollback fails again, that checkpoint is deleted too and the next rollback goes
  further back (the last ``run.keep_checkpoints`` good ones are kept);
- at most ``max_rollbacks`` within ``rollback_window`` steps (else :class:`RollbackLimit`); after
  ``lr_recover_steps`` good steps in a row the LR scale is raised back by one cut, up to 1.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from model.build import is_exported
from model.flops import MFU_DEFINITION, flops_per_token, peak_tflops, trained_flops_per_token
from model.loss import LossOutput, causal_lm_loss
from obelics.config import ConfigError
from train.backends import make_backend
from train.config import TrainConfig, to_dict
from train.feed import Feed
from train.stability import SpikeDetector, lr_at
from train.stats import ActivationRMS, grad_norms
from train.tokenizer import base_vocab_size, load_tokenizer

log = logging.getLogger("train")


class RollbackLimit(RuntimeError):
    """Too many rollbacks: the run needs a human."""


class Trainer:
    """Owns the backend (model, optimizer), data streams, logs and checkpoints for one process."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.backend = make_backend(cfg)
        self.rank, self.world, self.device = self.backend.rank, self.backend.world, self.backend.device
        self.precision = self.backend.precision
        self.out = Path(cfg.run.out_dir)
        self.ckpt_root = self.out / "checkpoints"
        self._seed(cfg.run.seed)

        self.tok = load_tokenizer(cfg.data.tokenizer, cfg.data.tokenizer_vocab, cfg.data.end_of_utterance)
        if cfg.model.init_from and not is_exported(cfg.model.init_from):
            cfg.model.init_from = self._export_init(cfg.model.init_from)
        vocab = base_vocab_size(self.tok)
        self.backend.build(cfg.model, vocab, extra_tokens=len(self.tok) - vocab)
        self.model = self.backend.model  # unwrapped: for statistics and hooks only
        self.model_config = self.model.config
        self.counts = self.backend.count_params()
        if cfg.eval.every > 0 and not self.backend.holds_full_model:
            raise ConfigError("eval.every needs a backend where rank 0 holds the whole model (torch, or ZeRO "
                              "stage < 3); export a ZeRO-3 checkpoint and run python -m train.evaluate on it")
        self._eval_sets: dict = {}
        self.device_name, self.peak = self._peak()
        self.feed = Feed(cfg, self.tok, cfg.data.image_size or self.model_config.vision_config.image_size,
                         self.rank, self.world, self.device)
        self.datasets = self.feed.datasets
        self.detector = SpikeDetector(cfg.stability.window, cfg.stability.min_history, cfg.stability.spike_sigma,
                                      cfg.stability.spike_ratio)
        self.acts = ActivationRMS(self.model)
        self.step = 0  # optimizer updates done (the next one is step self.step + 1)
        self.lr_scale = 1.0
        self.rollback_steps: list[int] = []  # the (1-based) steps that failed and rolled back
        self.stable = 0  # good steps since the last rollback or LR raise
        self.skipped = 0  # optimizer steps skipped for a non-finite gradient norm (whole run)
        self.skipped_in_row = 0
        self.tokens_seen = 0
        self.source_tokens = [0.0] * len(self.datasets)  # trained (non-pad) tokens per data set, all ranks
        self.fired: list[int] = []  # indices of stability.inject drills already fired
        self.pending: str | None = None  # checkpoint written but not yet proven by a good next step
        self.fresh_from: str | None = None  # checkpoint just rolled back to, until one step succeeds
        self.batches_read = 0  # micro-batches read from the stream (its position; not rewound by a rollback)
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

    # ---------------------------------------------------------------- training
    def train(self) -> dict:
        """Run to ``run.max_steps`` (resuming from ``latest`` when asked); the last step's record."""
        try:
            return self._train()
        finally:
            self.feed.close()

    def _train(self) -> dict:
        cfg = self.cfg
        tag = self.latest_tag() if cfg.run.resume else None
        if tag:
            self.load(tag)
            log.info("resumed from %s at step %d", tag, self.step)
        else:
            self.save()  # step 0: a rollback target before the first regular checkpoint
        self._log_start()
        self.backend.train_mode(True)
        steps_here = 0
        last: dict = {}
        while self.step < cfg.run.max_steps:
            if cfg.run.stop_after >= 0 and steps_here >= cfg.run.stop_after:
                log.info("stop_after=%d reached: exiting without a final save (simulated kill)", steps_here)
                return last
            rec = self._train_step()
            if rec is None:  # rolled back
                continue
            steps_here += 1
            if cfg.run.val_every > 0 and self.step % cfg.run.val_every == 0:
                rec.update(self.validate())
            if cfg.eval.every > 0 and self.step % cfg.eval.every == 0:
                rec.update(self.evaluate())
            if self.step % max(1, cfg.run.log_every) == 0 or "val_loss" in rec or any(k.startswith("eval_") for k in rec):
                self._log(rec)
            last = rec
            kill, save_now = self._switches()
            if self.step % cfg.run.save_every == 0 or kill or save_now:
                if not self.backend.weights_finite():
                    self.rollback("non-finite weights", failed=self.step)  # never checkpointed
                    continue
                self.save(confirm=kill or save_now)
            if save_now and self.rank == 0:
                Path(cfg.run.save_switch).unlink(missing_ok=True)
            if kill:
                log.info("kill switch %s found: checkpointed at step %d, exiting", cfg.run.kill_switch, self.step)
                return last
        if self.latest_tag() != self._tag(self.step):
            if not self.backend.weights_finite():
                raise RollbackLimit(f"non-finite weights after the last step {self.step}")
            self.save()
        if self.tb is not None:
            self.tb.flush()
        return last

    def _train_step(self) -> dict | None:
        """One optimizer step (``self.step`` counts it); its record, or None when a spike rolled the run back."""
        cfg, backend, accum = self.cfg, self.backend, self.cfg.optim.grad_accum
        t0 = time.perf_counter()
        drills = self._drills(self.step + 1)
        lr = lr_at(self.step, cfg.optim.lr, cfg.optim.final_lr, cfg.optim.warmup_steps, cfg.run.max_steps,
                   self.lr_scale) * drills.get("lr_spike", 1.0)
        backend.set_lr(lr)
        stats_step = cfg.run.stats_every > 0 and self.step % cfg.run.stats_every == 0
        self.acts.set(stats_step)
        sums: dict[str, float] = {}
        n_img = n_real = source = 0
        by_source = [0.0] * len(self.datasets)
        spiked = None
        for micro in range(accum):
            _, b = self.feed.next()
            self.batches_read += 1
            source = b["source"]
            if "nan_batch" in drills:
                b["pixel_values"] = torch.full_like(b["pixel_values"], float("nan"))
            out = self._loss(b)
            total = out.total
            if "loss_spike" in drills:
                total = total * drills["loss_spike"]
            if "nan_grad" in drills:
                # + 0·sqrt(0·total): adds exactly 0 to the loss, but d sqrt(u)/du at 0 is inf, so 0·inf = NaN
                # flows into every gradient (a finite loss with non-finite gradients)
                total = total + (total * 0.0).sqrt() * 0.0
            # all ranks see the same mean loss, so they agree on a rollback
            spiked = _peek(self.detector, backend.mean({"loss": float(total.detach())})["loss"])
            if spiked:
                break
            backend.backward(total, boundary=micro == accum - 1)
            for k, v in out.values().items():
                sums[k] = sums.get(k, 0.0) + v
            n_img += b["num_images"]
            n_real += b["num_tokens"]
            by_source[source] += b["num_tokens"]
        self.acts.set(False)
        if spiked:
            self.rollback(spiked)
            return None
        norms = grad_norms(self.model, backend.full_grad) if stats_step else None
        gnorm, applied = backend.step()
        if not applied:
            return self._skipped_step(gnorm)
        self.skipped_in_row = 0
        parts_here = {k: v / accum for k, v in sums.items()}
        per_ds = self._per_dataset(source, sum(parts_here.values()), by_source)
        parts = backend.mean(parts_here)
        loss = sum(parts.values())
        self.detector.check(loss)
        self.step += 1
        self._after_good_step()
        dt = time.perf_counter() - t0
        counts = backend.mean({"tokens": float(n_real), "images": float(n_img)})
        real_tokens, images = counts["tokens"] * self.world, counts["images"] * self.world
        self.tokens_seen += int(real_tokens)
        fl = flops_per_token(self.model_config, cfg.data.packing.seq_len, images / max(real_tokens, 1),
                             grad_ckpt=cfg.model.gradient_checkpointing, train_text=not cfg.model.freeze_text,
                             train_vision=not cfg.model.freeze_vision)
        fl_trained = trained_flops_per_token(self.counts["trainable"])
        tps = real_tokens / dt
        per_dev = tps / self.world
        rec = {"step": self.step, "loss": loss, **parts}
        rest = {"lr": lr, "grad_norm": gnorm, "tokens": int(real_tokens), "images": int(images),
                "dataset": self.datasets[source].name, "step_time_s": dt, "tokens_per_s": tps,
                "tflops_per_device": per_dev * fl.hardware / 1e12,
                "model_tflops_per_device": per_dev * fl.model / 1e12,
                "trained_tflops_per_device": per_dev * fl_trained / 1e12, "skipped_steps": self.skipped,
                "m4_tflops_per_device": per_dev * fl.m4_style / 1e12,
                "tokens_seen": self.tokens_seen, "lr_scale": self.lr_scale, "loss_per_dataset": per_ds,
                "token_share": self._token_shares()}
        if self.peak:
            rest["mfu"] = per_dev * fl.model / (self.peak * 1e12)
            rest["mfu_trained"] = per_dev * fl_trained / (self.peak * 1e12)
        if set(rest) & set(parts):
            raise ValueError(f"loss part names {sorted(set(rest) & set(parts))} clash with log keys")
        rec.update(rest)
        if norms is not None:
            rec["grad_norms"] = norms
            rec["act_rms"] = dict(self.acts.values)
            rec["alphas"] = self._alphas()
        return rec

    def _loss(self, b: dict, training: bool = True) -> LossOutput:
        return causal_lm_loss(self.backend.forward(b, training), b["labels"], self.cfg.loss)

    def _drills(self, step: int) -> dict[str, float]:
        """The drill due at (1-based) ``step`` as {kind: factor} (empty if none), marked fired. Drills fire one at
        a time in list order (each waits for those before it), so a later entry can target a step that is
        revisited after a rollback."""
        todo = [i for i in range(len(self.cfg.stability.inject)) if i not in self.fired]
        if not todo or self.cfg.stability.inject[todo[0]].step != step:
            return {}
        d = self.cfg.stability.inject[todo[0]]
        self.fired.append(todo[0])
        log.warning("fault drill at step %d: %s ×%g", step, d.kind, d.factor)
        return {d.kind: d.factor}

    def _skipped_step(self, gnorm: float) -> None:
        """The update was not applied (non-finite gradient norm): count, log, retry the step on new data."""
        self.skipped += 1
        self.skipped_in_row += 1
        self._log({"event": "skip_step", "step": self.step + 1, "to_step": self.step, "grad_norm": gnorm,
                   "skipped_steps": self.skipped, "skipped_batches": self.cfg.optim.grad_accum,
                   "data_position": self.batches_read})
        log.warning("step %d: grad norm %s, optimizer step skipped (%d so far)", self.step + 1, gnorm, self.skipped)
        if not self.backend.skips_nonfinite or self.skipped_in_row >= self.cfg.stability.max_skipped_in_row:
            self.rollback(f"non-finite grad norm ({self.skipped_in_row} in a row)")
        return None

    def _after_good_step(self) -> None:
        """A step succeeded: the checkpoint it started from is proven good; the LR scale recovers over time."""
        st = self.cfg.stability
        self.fresh_from = None
        if self.pending is not None:
            if self.rank == 0:
                self.backend._point_latest(self.ckpt_root, self.pending)
                self._prune()
            self.pending = None
        self.stable += 1
        if self.lr_scale < 1.0 and st.lr_recover_steps > 0 and self.stable >= st.lr_recover_steps:
            self.lr_scale = min(1.0, self.lr_scale / st.lr_cut)
            self.stable = 0
            self._log({"event": "lr_recover", "step": self.step, "lr_scale": self.lr_scale})

    def _discard(self, tag: str) -> None:
        """Delete checkpoint ``tag`` (a state that failed its first step) and point ``latest`` one further back."""
        self.backend.barrier()
        if self.rank == 0:
            shutil.rmtree(self.ckpt_root / tag, ignore_errors=True)
            older = [t for t in self._tags() if t < tag]
            if self.latest_tag() == tag:
                if older:
                    self.backend._point_latest(self.ckpt_root, older[-1])
                else:
                    (self.ckpt_root / "latest").unlink(missing_ok=True)
        self.backend.barrier()

    def rollback(self, reason: str, failed: int | None = None) -> None:
        """Back to the newest good checkpoint with the LR cut; the data stream goes on (the batches read since
        that checkpoint are skipped, not replayed)."""
        st = self.cfg.stability
        failed = self.step + 1 if failed is None else failed  # the step that failed (1-based)
        discarded = []
        if self.pending is not None:  # the state saved just before this failure is not trusted
            discarded.append(self.pending)
            self._discard(self.pending)
            self.pending = None
        elif self.fresh_from is not None and self.fresh_from != self._tag(0):
            # its first step failed again after a rollback: one rollback was not enough, go further back
            discarded.append(self.fresh_from)
            self._discard(self.fresh_from)
        recent = [s for s in self.rollback_steps if s > failed - st.rollback_window]
        if len(recent) >= st.max_rollbacks:
            raise RollbackLimit(f"{reason} at step {failed}: {len(recent)} rollbacks within the last "
                                f"{st.rollback_window} steps (stability.max_rollbacks)")
        tag = self.latest_tag()
        if tag is None:
            raise RollbackLimit(f"{reason} at step {failed} and no good checkpoint to roll back to")
        scale, skipped, fired = self.lr_scale, self.skipped, self.fired
        read = self.batches_read
        self.backend.zero_grad()
        self.load(tag, restore_data=False)
        skipped_batches, self.batches_read = read - self.batches_read, read
        self.rollback_steps = recent + [failed]
        self.skipped, self.fired = skipped, fired
        self.lr_scale = max(st.min_lr_scale, scale * st.lr_cut)
        self.stable = 0
        self.skipped_in_row = 0
        self.fresh_from = tag
        self._log({"event": "rollback", "step": failed, "to_step": self.step, "reason": reason,
                   "lr_scale": self.lr_scale, "rollbacks": len(self.rollback_steps), "discarded": discarded,
                   "skipped_batches": skipped_batches, "data_position": read})
        log.warning("rollback at step %d (%s) to %s, lr scale now %.3g, %d batches skipped", failed, reason, tag,
                    self.lr_scale, skipped_batches)

    # ---------------------------------------------------------------- validation
    def validate(self) -> dict:
        """``val_loss`` (the loss total) and ``val_<part>`` for each part, token-weighted over the ranks;
        empty when no validation data is configured."""
        sums: dict[str, float] = {}
        n = 0
        self.backend.train_mode(False)
        try:
            with torch.no_grad():
                for batches in self.feed.validation_rows():
                    # ZeRO-3 forwards are collective: every rank runs the same number of batches
                    for rows in batches[:self.backend.min(len(batches))]:
                        out = self._loss(self.feed.batch(rows), training=False)
                        for k, v in out.values().items():
                            sums[k] = sums.get(k, 0.0) + v * out.n_tokens
                        n += out.n_tokens
        finally:
            self.backend.train_mode(True)
        means = self.backend.mean({**sums, "": float(n)})
        n_all = means.pop("")
        if not n_all:
            return {}
        parts = {k: v / n_all for k, v in means.items()}
        return {"val_loss": sum(parts.values()), **{f"val_{k}": v for k, v in parts.items()}}

    def evaluate(self) -> dict:
        """The few-shot benchmarks of ``eval.tasks`` on the current weights (rank 0, greedy): their scores as
        ``eval_<task>_<k>shot`` (also written to ``out_dir/eval/step_N.json``)."""
        out: dict = {}
        if self.rank == 0:
            from train import evaluate as ev
            from train.generate import Loaded

            loaded = Loaded(self.model, self.tok, self.cfg.data.image_size or self.model_config.vision_config.image_size)
            results = []
            self.backend.train_mode(False)
            try:
                for t in self.cfg.eval.tasks:
                    if t.data not in self._eval_sets:
                        examples = ev.load_task(t.task, t.data, t.split)
                        support = ev.load_task(t.task, t.support) if t.support else None
                        self._eval_sets[t.data] = ev.split_queries(examples, support, t.limit)
                    queries, support = self._eval_sets[t.data]
                    r = ev.evaluate(loaded, t.task, queries, support, t.shots, t.seed)
                    results.append(r)
                    out.update({f"eval_{t.task}_{k}shot": v for k, v in r["scores"].items()})
            finally:
                self.backend.train_mode(True)
            ev.write_json(self.out / "eval" / f"{self._tag(self.step)}.json", {"step": self.step, "results": results})
        self.backend.barrier()
        return out

    def _export_init(self, source: str) -> str:
        """``model.init_from`` named a training run or checkpoint: export it (rank 0) to ``out_dir/init_from`` once,
        the folder the model then starts from (model/ reads exported folders only)."""
        target = self.out / "init_from"
        if self.rank == 0 and not target.exists():
            from train.export import export_checkpoint

            export_checkpoint(source, target, dtype="fp32")
            log.info("init_from %s exported to %s", source, target)
        self.backend.barrier()
        return str(target)

    # ---------------------------------------------------------------- data, collectives
    def _seed(self, seed: int) -> None:
        random.seed(seed + self.rank)
        np.random.seed(seed + self.rank)
        torch.manual_seed(seed + self.rank)

    def _per_dataset(self, source: int, loss: float, by_source: list[float]) -> dict[str, float]:
        """Mean loss per data set over the ranks whose batch came from it this step (m4's per-dataset curves);
        adds this step's trained tokens per data set (all ranks) to ``source_tokens``."""
        k = len(self.datasets)
        v = torch.zeros(3 * k, dtype=torch.float64)
        v[source], v[k + source] = loss, 1.0
        v[2 * k:] = torch.tensor(by_source, dtype=torch.float64)
        v = self.backend.all_reduce(v)
        for i in range(k):
            self.source_tokens[i] += float(v[2 * k + i])
        return {self.datasets[i].name: float(v[i] / v[k + i]) for i in range(k) if v[k + i] > 0}

    def _token_shares(self) -> dict[str, float]:
        """Realised share of trained (non-pad) tokens per data set so far (the mixture weights' target)."""
        total = sum(self.source_tokens) or 1.0
        return {d.name: t / total for d, t in zip(self.datasets, self.source_tokens)}

    def _switches(self) -> tuple[bool, bool]:
        """(kill, save) switch files, agreed across ranks (any rank seeing one counts)."""
        kill, save = self.backend.any([bool(p) and Path(p).exists()
                                       for p in (self.cfg.run.kill_switch, self.cfg.run.save_switch)])
        return kill, save

    # ---------------------------------------------------------------- checkpoints
    def _tag(self, step: int) -> str:
        return f"step_{step:08d}"

    def latest_tag(self) -> str | None:
        p = self.ckpt_root / "latest"
        return p.read_text().strip() if p.exists() else None

    def _state(self) -> dict:
        return {"step": self.step, "lr_scale": self.lr_scale, "rollback_steps": self.rollback_steps,
                "stable": self.stable, "skipped": self.skipped, "fired": self.fired,
                "tokens_seen": self.tokens_seen, "batches_read": self.batches_read,
                "source_tokens": self.source_tokens,
                "detector": self.detector.state_dict()}

    def save(self, confirm: bool = True) -> None:
        """Checkpoint the current step (model, optimizer, trainer state, each rank's RNG and data position)."""
        per_rank = {"rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                            "torch": torch.get_rng_state(),
                            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                    "data": self.feed.state_dict()}
        tag = self._tag(self.step)
        self.backend.save(self.ckpt_root, tag, self._state(), per_rank, confirm=confirm)
        self.pending = None if confirm else tag
        self.backend.barrier()
        if self.rank == 0:
            self._prune()
        self.backend.barrier()

    def _tags(self) -> list[str]:
        return sorted(p.name for p in self.ckpt_root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))

    def _prune(self) -> None:
        """Keep the last ``keep_checkpoints`` good ones (up to ``latest``) and any newer pending one."""
        latest = self.latest_tag()
        good = [t for t in self._tags() if latest is None or t <= latest]
        for t in good[: max(0, len(good) - self.cfg.run.keep_checkpoints)]:
            shutil.rmtree(self.ckpt_root / t, ignore_errors=True)

    def load(self, tag: str, restore_data: bool = True) -> None:
        """Load checkpoint ``tag``; ``restore_data=False`` keeps the current data position (rollback)."""
        state = self.backend.load(self.ckpt_root, tag)
        self.step, self.lr_scale = state["step"], state["lr_scale"]
        self.rollback_steps, self.stable = list(state["rollback_steps"]), state["stable"]
        self.skipped, self.fired = state["skipped"], list(state["fired"])
        self.tokens_seen = state["tokens_seen"]
        self.source_tokens = list(state["source_tokens"])
        self.pending = None
        self.batches_read = state["batches_read"]
        self.detector.load_state_dict(state["detector"])
        if restore_data:
            with open(self.ckpt_root / tag / f"rank_{self.rank:05d}.pkl", "rb") as f:
                per_rank = pickle.load(f)
            rng = per_rank["rng"]
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            self.feed.load_state_dict(per_rank["data"])

    # ---------------------------------------------------------------- logging
    def _alphas(self) -> dict[str, list[float]]:
        layers = self.model.model.gated_cross_attn_layers
        params = [p for lay in layers for p in (lay.alpha_cross_attn, lay.alpha_dense)]
        with self.backend.gathered(params):
            return {f"xattn.{i}": [float(lay.alpha_cross_attn.detach().float().mean()),
                                   float(lay.alpha_dense.detach().float().mean())] for i, lay in enumerate(layers)}

    def _peak(self) -> tuple[str, float | None]:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type
        return name, mfu_peak(self.device.type, name, self.cfg.run.peak_tflops)

    def _log_start(self) -> None:
        names = ["model.embed_tokens.weight", "model.vision_model.embeddings.patch_embedding.weight",
                 "model.gated_cross_attn_layers.0.alpha_cross_attn"]
        self._log({"event": "start", "step": self.step, "params": self.counts, "world": self.world,
                   "backend": self.backend.name, "precision": self.precision,
                   "param_groups": {"decay": len(self.backend.groups[0]["names"]),
                                    "no_decay": len(self.backend.groups[1]["names"])},
                   "fingerprint": self.backend.fingerprint(names),
                   "mfu_definition": {"definition": MFU_DEFINITION, "device": self.device_name, "peak_tflops": self.peak}})
        if self.rank == 0:
            log.info("%s; device %s, peak %s", MFU_DEFINITION, self.device_name,
                     f"{self.peak} TFLOP/s" if self.peak else "unknown on CPU: MFU not reported (set run.peak_tflops)")

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

    def close(self) -> None:
        """Flush logs and leave the process group cleanly (an abrupt exit can abort the other ranks)."""
        self.feed.close()
        if self.tb is not None:
            self.tb.close()
        self.backend.close()


def mfu_peak(device_type: str, device_name: str, configured: float) -> float | None:
    """Peak TFLOP/s per device for MFU: ``run.peak_tflops`` if set, else looked up from the GPU's name; None on
    CPU (MFU not reported); an unknown GPU without ``run.peak_tflops`` is refused (ConfigError)."""
    if configured:
        return configured
    if device_type != "cuda":
        return None
    peak = peak_tflops(device_name)
    if peak is None:
        raise ConfigError(f"no bf16 peak known for GPU {device_name!r}: set run.peak_tflops (per device, dense "
                          f"TFLOP/s) so MFU can be computed")
    return peak


def _peek(detector: SpikeDetector, loss: float) -> str | None:
    """Spike verdict for ``loss`` without recording it (recorded after the step succeeds)."""
    saved = list(detector.history)
    reason = detector.check(loss)
    detector.history.clear()
    detector.history.extend(saved)
    return reason
