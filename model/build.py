"""Build an ``IdeficsForVisionText2Text`` for training: init, backbones, freezing, parameter groups.

Plain torch/transformers only. Each step is a list of small writes (one module each) that
:func:`build_model` runs directly; ``model/zero3.py`` runs the same writes on a ZeRO-3-partitioned
model, gathering one module at a time, so nothing here knows about parallelism.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers import IdeficsForVisionText2Text
from transformers.models.idefics.modeling_idefics import IdeficsGatedCrossAttentionLayer
from transformers.models.idefics.perceiver import IdeficsPerceiverResampler

from model.presets import idefics_config

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ModelConfig:
    """The ``model:`` section of a training config."""

    preset: str = "tiny"
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # IdeficsConfig fields over the preset
    llama_path: str | None = None  # local LlamaForCausalLM checkpoint directory
    clip_path: str | None = None  # local CLIPVisionModel / CLIPModel checkpoint directory
    freeze_text: bool = True
    freeze_vision: bool = True
    freeze_lm_head: bool = True
    init_std: float = 0.02  # std of the new modules' linear layers and extra token rows
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    # start from these weights (over llama_path / clip_path): an exported folder (python -m train.export) or a
    # training run / checkpoint; extra token rows it lacks (e.g. <end_of_utterance>) are drawn N(0, init_std)
    init_from: str | None = None


def build_config(cfg: ModelConfig, vocab_size: int | None = None, extra_tokens: int | None = None):
    """The ``IdeficsConfig`` for ``cfg``; ``vocab_size`` (base rows, from the tokenizer) and ``extra_tokens``
    (rows of the trained extra table: 2 image tokens, 3 with ``<end_of_utterance>``) override the preset."""
    over = dict(cfg.overrides)
    if vocab_size is not None:
        over["vocab_size"] = vocab_size
    if extra_tokens is not None:
        over["additional_vocab_size"] = extra_tokens
    over.update(freeze_text_layers=cfg.freeze_text, freeze_vision_layers=cfg.freeze_vision,
                freeze_lm_head=cfg.freeze_lm_head)
    config = idefics_config(cfg.preset, over)
    config._attn_implementation = cfg.attn_implementation
    return config


Write = tuple[list[nn.Parameter], Callable[[], None]]  # (the parameters it writes, the write)


def new_module_inits(model: IdeficsForVisionText2Text, std: float = 0.02) -> list[Write]:
    """Our init for what LLaMA and CLIP do not provide (transformers' ``_init_weights`` is not one, docs/training-reference.md §1.1),
    as one write per block, in the order that fixes the random draws.

    Gated x-attn blocks: linear weights N(0, std), RMSNorms at 1, tanh gates at the configured value
    (zeros for IDEFICS, so the model starts as exactly the text LM). Perceiver: latents N(0, 1) as in
    the port, linear weights N(0, std), LayerNorms at (1, 0). Extra token rows (embedding and head):
    N(0, std).
    """
    cfg = model.config
    blocks = [m for m in model.modules() if isinstance(m, (IdeficsGatedCrossAttentionLayer, IdeficsPerceiverResampler))]
    writes: list[Write] = [(list(b.parameters()), lambda b=b: _init_block(b, cfg, std)) for b in blocks]
    if cfg.additional_vocab_size:
        extra = [model.model.embed_tokens.additional_embedding.weight, model.lm_head.additional_fc.weight]

        def init_extra():
            for w in extra:
                w.normal_(0.0, std)

        writes.append((extra, init_extra))
    return writes


@torch.no_grad()
def init_new_modules(model: IdeficsForVisionText2Text, std: float = 0.02) -> None:
    """Run :func:`new_module_inits` on a plain model."""
    for _, write in new_module_inits(model, std):
        write()


def _init_block(module, cfg, std: float) -> None:
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            sub.weight.normal_(0.0, std)
            if sub.bias is not None:
                sub.bias.zero_()
        elif isinstance(sub, nn.LayerNorm):
            sub.weight.fill_(1.0)
            if sub.bias is not None:
                sub.bias.zero_()
        elif type(sub).__name__ == "IdeficsRMSNorm":
            sub.weight.fill_(1.0)
    if isinstance(module, IdeficsGatedCrossAttentionLayer):
        for alpha in (module.alpha_cross_attn, module.alpha_dense):
            if cfg.alpha_initializer == "zeros":
                alpha.zero_()
            elif cfg.alpha_initializer == "ones":
                alpha.fill_(1.0)
            else:
                alpha.normal_(0.0, cfg.alphas_initializer_range)
    if isinstance(module, IdeficsPerceiverResampler):
        module.latents.normal_(0.0, 1.0)


@dataclasses.dataclass
class Backbone:
    """A local checkpoint to copy into the model: ``read()`` returns tensors by our parameter names."""

    what: str
    targets: list[str]
    read: Callable[[], dict[str, torch.Tensor]]

    def check(self, src: dict) -> None:
        """Refuse a checkpoint whose names differ from the targets."""
        extra = sorted(set(src) - set(self.targets))
        missing = sorted(set(self.targets) - set(src))
        if extra or missing:
            raise ValueError(f"{self.what} does not fit: unused {extra[:4]}, missing {missing[:4]}")


def llama_backbone(model: IdeficsForVisionText2Text, path: str) -> Backbone:
    """The text side (embeddings, decoder layers, norm, LM head) from a local LLaMA checkpoint."""
    def read():
        from transformers import LlamaForCausalLM

        return {k: v for k, v in LlamaForCausalLM.from_pretrained(path, dtype="auto").state_dict().items()
                if not k.endswith("rotary_emb.inv_freq")}

    targets = [n for n, _ in model.named_parameters()
               if n.startswith(("model.layers.", "model.norm.")) or n in ("model.embed_tokens.weight", "lm_head.weight")]
    return Backbone(f"LLaMA checkpoint {path}", targets, read)


def clip_backbone(model: IdeficsForVisionText2Text, path: str) -> Backbone:
    """``model.vision_model`` from a local CLIP vision tower; refuses an activation mismatch at once."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    clip_cfg = CLIPVisionConfig.from_pretrained(path)
    act = model.config.vision_config.hidden_act
    if clip_cfg.hidden_act != act:
        # docs/training-reference.md §1.2 caveat: QuickGELU vs GELU. The IDEFICS config is authoritative; refuse a silent mismatch.
        raise ValueError(f"CLIP checkpoint uses {clip_cfg.hidden_act!r} but the IDEFICS vision config says "
                         f"{act!r}; set model.overrides.vision_config.hidden_act to match")

    def read():
        raw = CLIPVisionModel.from_pretrained(path, dtype="auto").state_dict()
        return {"model.vision_model." + k.removeprefix("vision_model."): v for k, v in raw.items()
                if not k.endswith("position_ids")}

    targets = [n for n, _ in model.named_parameters() if n.startswith("model.vision_model.")]
    return Backbone(f"CLIP checkpoint {path}", targets, read)


EXTRA_ROWS = ("model.embed_tokens.additional_embedding.weight", "lm_head.additional_fc.weight")


def is_exported(path: str) -> bool:
    """A folder of safetensors weights (``python -m train.export``, or any IDEFICS checkpoint in that format)."""
    from pathlib import Path

    return Path(path).is_dir() and any(Path(path).glob("*.safetensors"))


def read_pretrained(path: str) -> dict[str, torch.Tensor]:
    """Every weight of an exported folder (safetensors, sharded or not). The trainer exports a training run
    named as ``init_from`` first (train/trainer.py), so only this format reaches the model."""
    from pathlib import Path

    if not is_exported(path):
        raise ValueError(f"{path}: no safetensors weights (export a training run with python -m train.export)")
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def pretrained_backbone(model: IdeficsForVisionText2Text, path: str, std: float = 0.02, seed: int = 0) -> Backbone:
    """Every weight from ``path`` (:func:`read_pretrained`). Where the model has more extra token rows than the
    source (``<end_of_utterance>`` added for instruction tuning), the new rows are drawn N(0, ``std``)."""
    cfg = model.config
    rows = cfg.additional_vocab_size

    def read():
        src = read_pretrained(path)
        gen = torch.Generator().manual_seed(seed)
        for name in EXTRA_ROWS:
            have = src.get(name)
            if have is not None and have.shape[0] < rows:
                new = torch.randn(rows - have.shape[0], have.shape[1], generator=gen) * std
                src[name] = torch.cat([have, new.to(have.dtype)])
        return {k: v for k, v in src.items() if not k.endswith("rotary_emb.inv_freq")}

    targets = [n for n, _ in model.named_parameters()]
    return Backbone(f"pretrained weights {path}", targets, read)


def backbones(model: IdeficsForVisionText2Text, cfg: ModelConfig, seed: int = 0) -> list[Backbone]:
    """The backbones ``cfg`` names (LLaMA, CLIP, then ``init_from`` over them), checked where that needs no
    weights."""
    out = []
    if cfg.llama_path:
        out.append(llama_backbone(model, cfg.llama_path))
    if cfg.clip_path:
        out.append(clip_backbone(model, cfg.clip_path))
    if cfg.init_from:
        out.append(pretrained_backbone(model, cfg.init_from, cfg.init_std, seed))
    return out


def copy_writes(model: nn.Module, backbone: Backbone, src: dict | None) -> list[Write]:
    """One write per module copying ``src`` into ``backbone.targets`` (``src`` None: a process that only
    takes part in the writes, see ``model/zero3.py``)."""
    params = dict(model.named_parameters())
    by_module: dict[str, list[str]] = {}
    for name in backbone.targets:
        by_module.setdefault(name.rsplit(".", 1)[0], []).append(name)

    def copy(names):
        for n in names:
            value = src[n]
            if params[n].shape != value.shape:
                raise ValueError(f"shape mismatch for {n}: {tuple(value.shape)} vs {tuple(params[n].shape)}")
            params[n].copy_(value.to(params[n].dtype))

    return [([params[n] for n in names], lambda names=names: copy(names)) for names in by_module.values()]


@torch.no_grad()
def load_backbone(model: nn.Module, backbone: Backbone) -> None:
    """Read ``backbone``, check its names and copy it into a plain model."""
    src = backbone.read()
    backbone.check(src)
    for _, write in copy_writes(model, backbone, src):
        write()


def load_llama(model: IdeficsForVisionText2Text, path: str) -> None:
    """Copy a local LLaMA checkpoint into the text side."""
    load_backbone(model, llama_backbone(model, path))


def load_clip(model: IdeficsForVisionText2Text, path: str) -> None:
    """Copy a local CLIP vision tower into ``model.vision_model``; refuses an activation mismatch."""
    load_backbone(model, clip_backbone(model, path))


@torch.no_grad()
def fingerprint(model: nn.Module, names: list[str]) -> dict[str, float]:
    """Sum of each named parameter: a cheap check that weights landed (gather them first if partitioned)."""
    params = dict(model.named_parameters())
    return {n: float(params[n].detach().double().sum()) for n in names}


def freeze(model: IdeficsForVisionText2Text, cfg: ModelConfig) -> None:
    """Backbones frozen (LLaMA layers+norm+base embedding rows, ViT, LM head base rows); rest trainable."""
    for p in model.parameters():
        p.requires_grad_(True)
    m = model.model
    if cfg.freeze_text:
        for mod in (m.layers, m.norm):
            mod.requires_grad_(False)
        m.embed_tokens.weight.requires_grad_(False)
    if cfg.freeze_vision:
        m.vision_model.requires_grad_(False)
    if cfg.freeze_lm_head:
        model.lm_head.weight.requires_grad_(False)


def finish(model: IdeficsForVisionText2Text, cfg: ModelConfig) -> IdeficsForVisionText2Text:
    """Freezing, gradient checkpointing, no KV cache: what follows the weights."""
    freeze(model, cfg)
    if cfg.gradient_checkpointing:
        kw = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
    model.config.use_cache = False
    return model


def build_model(cfg: ModelConfig, vocab_size: int | None = None, seed: int = 0,
                extra_tokens: int | None = None) -> IdeficsForVisionText2Text:
    """Construct, initialise, load backbones (when paths are given) and freeze an IDEFICS model.

    For a model that no process holds whole (DeepSpeed ZeRO-3), ``model.zero3.build_model`` runs the same steps.
    """
    config = build_config(cfg, vocab_size, extra_tokens)
    torch.manual_seed(seed)
    model = IdeficsForVisionText2Text(config)
    init_new_modules(model, cfg.init_std)
    for backbone in backbones(model, cfg, seed):
        load_backbone(model, backbone)
    return finish(model, cfg)


NO_DECAY_KEYS = ("bias", "norm", "alpha_", "latents", "layernorm", "layer_norm", "ln.")


def param_groups(model: nn.Module, weight_decay: float, ndim: Callable[[nn.Parameter], int] = lambda p: p.ndim
                 ) -> list[dict]:
    """Trainable parameters split into decay / no-decay groups (norms, biases, gates, perceiver latents).

    ``ndim``: a parameter's number of dimensions (a partitioned one reports its full shape elsewhere)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if ndim(p) < 2 or any(k in name.lower() for k in NO_DECAY_KEYS):
            no_decay.append((name, p))
        else:
            decay.append((name, p))
    return [
        {"params": [p for _, p in decay], "names": [n for n, _ in decay], "weight_decay": weight_decay},
        {"params": [p for _, p in no_decay], "names": [n for n, _ in no_decay], "weight_decay": 0.0},
    ]


def count_params(model: nn.Module, numel: Callable[[nn.Parameter], int] = lambda p: p.numel()) -> dict:
    """Total and trainable parameter counts (``numel``: a parameter's full size)."""
    total = sum(numel(p) for p in model.parameters())
    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
