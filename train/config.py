"""Training configs: YAML files under ``configs/train/`` validated into dataclasses, with overrides.

``python -m train --config configs/train/tiny.yaml data.shards=out/webdataset optim.lr=1e-4``: every key
has a default here; the YAML and the ``key=value`` overrides (values parsed as YAML) are merged over the
defaults and validated (unknown keys and wrong types are errors, via ``obelics.config.from_dict``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from model.build import ModelConfig
from model.loss import LossConfig
from obelics.config import ConfigError, apply_overrides, deep_merge, from_dict
from train.stream import PackingConfig


@dataclasses.dataclass
class DatasetConfig:
    """One data set of a mixture."""

    name: str = "obelics"
    shards: Any = None  # dir, glob, list of paths or pipe:/brace URLs
    kind: str = "webdoc"  # webdoc | pairs | dialog (instruction tuning: train/instruct.py)
    format: str = "dialog"  # dialog files: llava | m3it | lrv | mimicit | ultrachat | dialog
    images: str | None = None  # dialog files: the image folder (llava, lrv, dialog) or images JSON (mimicit)
    weight: float = 1.0  # share of trained (non-pad) tokens, relative to the other data sets' weights
    packing: Any = None  # this source's overrides of data.packing (all but seq_len), e.g. {max_images: 24}

    def packing_config(self, base: PackingConfig) -> PackingConfig:
        """``base`` with this source's overrides (checked: known keys, same ``seq_len``)."""
        if not self.packing:
            return base
        if not isinstance(self.packing, dict):
            raise ConfigError(f"dataset {self.name}: packing must be a mapping of data.packing keys")
        merged = from_dict(PackingConfig, {**dataclasses.asdict(base), **self.packing})
        if merged.seq_len != base.seq_len:
            raise ConfigError(f"dataset {self.name}: packing.seq_len must be data.packing.seq_len ({base.seq_len})")
        return merged


@dataclasses.dataclass
class DataConfig:
    shards: Any = None  # shorthand: a single web-document data set
    datasets: list[DatasetConfig] = dataclasses.field(default_factory=list)
    val_shards: Any = None  # separate validation shards (web documents); else the hash hold-out below
    val_permille: int = 0  # documents whose id hashes below this (‰) are held out for validation
    packing: PackingConfig = dataclasses.field(default_factory=PackingConfig)
    batch_size: int = 4  # rows per micro-batch per process
    prefetch: int = 2  # batches prepared ahead by a background thread (0 = inline); resumes stay exact
    image_size: int | None = None  # default: the model's vision image_size
    tokenizer: str | None = None  # local tokenizer dir (LLaMA's); None = the offline BPE
    tokenizer_vocab: int = 1000
    end_of_utterance: bool = False  # instruction tuning: <end_of_utterance> added as a trained token row (V + 2)

    def dataset_list(self) -> list[DatasetConfig]:
        if self.datasets and self.shards is not None:
            raise ConfigError("data: give either shards or datasets, not both")
        if self.datasets:
            return self.datasets
        if self.shards is None:
            raise ConfigError("data.shards (or data.datasets) is required, e.g. data.shards=out/sample/webdataset")
        return [DatasetConfig(name="webdocs", shards=self.shards, kind="webdoc", weight=1.0)]


@dataclasses.dataclass
class OptimConfig:
    lr: float = 1e-4
    final_lr: float = 0.0  # linear decay from lr to final_lr at max_steps
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float = 1.0
    grad_accum: int = 1


INJECT_KINDS = ("loss_spike", "lr_spike", "nan_grad", "nan_batch")
EVAL_TASKS = ("vqav2", "coco")  # train/evaluate.py


@dataclasses.dataclass
class InjectConfig:
    """One fault drill: at (1-based) step ``step``, once. ``loss_spike``: the loss × ``factor``;
    ``lr_spike``: that step's LR × ``factor`` (damages the weights for real); ``nan_grad``: finite loss,
    NaN gradients; ``nan_batch``: NaN pixels in the step's batches."""

    step: int = 1
    kind: str = "loss_spike"
    factor: float = 100.0


@dataclasses.dataclass
class StabilityConfig:
    window: int = 20  # recent good losses that define "normal"
    min_history: int = 5  # no spike verdict before this many good steps
    spike_sigma: float = 6.0  # spike if loss > mean + sigma·std ...
    spike_ratio: float = 1.5  # ... and loss > ratio · mean
    lr_cut: float = 0.5  # LR multiplier applied at each rollback ...
    min_lr_scale: float = 1 / 32  # ... never below this
    lr_recover_steps: int = 200  # after this many good steps in a row the LR scale is raised one cut (to 1)
    max_rollbacks: int = 5  # rollbacks allowed within rollback_window steps before the run stops
    rollback_window: int = 1000
    max_skipped_in_row: int = 3  # optimizer steps skipped for a non-finite grad norm in a row, then roll back
    inject: list[InjectConfig] = dataclasses.field(default_factory=list)  # fault drills (see InjectConfig)
    inject_spike_at: int = -1  # shorthand for inject: [{step: N, kind: loss_spike}]


@dataclasses.dataclass
class RunConfig:
    out_dir: str = "out/train/tiny"
    max_steps: int = 100
    seed: int = 0
    backend: str = "torch"  # torch (single process or torchrun/DDP) | deepspeed
    deepspeed_config: str = "configs/deepspeed/zero3.json"
    precision: str = "auto"  # auto (bf16 where supported, else fp32) | bf16 | fp32
    save_every: int = 50
    keep_checkpoints: int = 3
    log_every: int = 1
    stats_every: int = 10  # per-layer grad and activation norms
    val_every: int = 50
    val_batches: int = 4
    tensorboard: bool = True
    resume: bool = True  # continue from out_dir/checkpoints/latest when present
    stop_after: int = -1  # testing: exit (as if killed) after this many steps in this process
    peak_tflops: float = 0.0  # per device, for MFU; 0 = from the GPU's name (A100/H100/H200 bf16 dense)
    kill_switch: str | None = None  # if this file exists: checkpoint and exit (m4's kill switch)
    save_switch: str | None = None  # if this file exists: checkpoint now, delete the file, continue
    cpu_threads: int = 0  # torch intra-op threads on CPU; 0 = torch's default (tiny models: 1 is fastest)


@dataclasses.dataclass
class EvalTaskConfig:
    """One benchmark of the periodic few-shot evaluation (train/evaluate.py)."""

    task: str = "vqav2"  # vqav2 | coco
    data: str | None = None  # benchmark folder (published file formats)
    split: str | None = None  # Karpathy split of the queries (coco)
    support: str | None = None  # support-set folder; default: the benchmark's non-query examples
    shots: list[int] = dataclasses.field(default_factory=lambda: [0])
    limit: int = 16  # queries: the first N examples
    seed: int = 0


@dataclasses.dataclass
class EvalConfig:
    every: int = 0  # run the tasks every N steps (0 = never); scores go to metrics.jsonl and out_dir/eval/
    tasks: list[EvalTaskConfig] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TrainConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: OptimConfig = dataclasses.field(default_factory=OptimConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)  # model/loss.py: one knob per part
    stability: StabilityConfig = dataclasses.field(default_factory=StabilityConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)  # periodic few-shot evaluation


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults ← YAML ← ``key=value`` overrides, validated into a :class:`TrainConfig`."""
    data = dataclasses.asdict(TrainConfig())
    if path:
        with open(path, encoding="utf-8") as f:
            y = yaml.safe_load(f) or {}
        if not isinstance(y, dict):
            raise ConfigError(f"{path}: a training config must be a mapping")
        data = deep_merge(data, y)
    data = apply_overrides(data, overrides)  # the project's one override parser (obelics.config)
    cfg = from_dict(TrainConfig, data)
    if cfg.run.backend not in ("torch", "deepspeed"):
        raise ConfigError("run.backend must be torch or deepspeed")
    for j in cfg.stability.inject:
        if j.kind not in INJECT_KINDS or j.step < 1:
            raise ConfigError(f"stability.inject: kind must be one of {', '.join(INJECT_KINDS)} and step >= 1, "
                              f"got {j}")
    if cfg.stability.inject_spike_at >= 1:
        cfg.stability.inject.append(InjectConfig(cfg.stability.inject_spike_at, "loss_spike", 100.0))
        cfg.stability.inject_spike_at = -1
    if not 0 < cfg.stability.lr_cut <= 1 or cfg.stability.max_rollbacks < 1:
        raise ConfigError("stability.lr_cut must be in (0, 1] and stability.max_rollbacks >= 1")
    for t in cfg.eval.tasks:
        if t.task not in EVAL_TASKS or not t.data or any(s < 0 for s in t.shots):
            raise ConfigError(f"eval.tasks: task must be one of {', '.join(EVAL_TASKS)} with data and shots >= 0, "
                              f"got {t}")
    for d in cfg.data.datasets:
        if d.kind not in ("webdoc", "pairs", "dialog"):
            raise ConfigError(f"dataset {d.name}: kind must be webdoc, pairs or dialog")
        from train.instruct import FORMATS

        if d.kind == "dialog" and d.format not in FORMATS:
            raise ConfigError(f"dataset {d.name}: format must be one of {', '.join(FORMATS)}")
        if d.kind == "dialog" and not cfg.data.end_of_utterance:
            raise ConfigError(f"dataset {d.name}: dialogues need data.end_of_utterance=true")
        if d.weight <= 0:
            raise ConfigError(f"dataset {d.name}: weight must be > 0")
        d.packing_config(cfg.data.packing)
    return cfg


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
