"""Build an ``IdeficsForVisionText2Text`` for training: init, backbones, freezing, parameter groups."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
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


def build_config(cfg: ModelConfig, vocab_size: int | None = None):
    """The ``IdeficsConfig`` for ``cfg``; ``vocab_size`` (base rows, from the tokenizer) overrides the preset."""
    over = dict(cfg.overrides)
    if vocab_size is not None:
        over["vocab_size"] = vocab_size
    over.update(freeze_text_layers=cfg.freeze_text, freeze_vision_layers=cfg.freeze_vision,
                freeze_lm_head=cfg.freeze_lm_head)
    return idefics_config(cfg.preset, over)


def _zero3(params) -> bool:
    return any(hasattr(p, "ds_id") for p in params)


def _is_rank0() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


@contextlib.contextmanager
def writable(params):
    """Yield True where this process should write ``params``: everywhere without ZeRO-3; under ZeRO-3
    the partitioned params are gathered, rank 0 writes, and the result is re-partitioned on exit."""
    params = list(params)
    if _zero3(params):
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
            yield _is_rank0()
    else:
        yield True


@torch.no_grad()
def init_new_modules(model: IdeficsForVisionText2Text, std: float = 0.02) -> None:
    """Our init for what LLaMA and CLIP do not provide (transformers' ``_init_weights`` is not one, §1.1).

    Gated x-attn blocks: linear weights N(0, std), RMSNorms at 1, tanh gates at the configured value
    (zeros for IDEFICS, so the model starts as exactly the text LM). Perceiver: latents N(0, 1) as in
    the port, linear weights N(0, std), LayerNorms at (1, 0). Extra token rows (embedding and head):
    N(0, std). Works on ZeRO-3-partitioned models one block at a time.
    """
    cfg = model.config
    blocks = [m for m in model.modules() if isinstance(m, (IdeficsGatedCrossAttentionLayer, IdeficsPerceiverResampler))]
    for module in blocks:
        with writable(module.parameters()) as write:
            if write:
                _init_block(module, cfg, std)
    if cfg.additional_vocab_size:
        extra = [model.model.embed_tokens.additional_embedding.weight, model.lm_head.additional_fc.weight]
        with writable(extra) as write:
            if write:
                for w in extra:
                    w.normal_(0.0, std)


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


def _text_targets(model) -> list[str]:
    return [n for n, _ in model.named_parameters()
            if n.startswith(("model.layers.", "model.norm.")) or n in ("model.embed_tokens.weight", "lm_head.weight")]


def load_llama(model: IdeficsForVisionText2Text, path: str) -> None:
    """Copy a local LLaMA checkpoint into the text side (embeddings, decoder layers, norm, LM head).

    Under ZeRO-3 only rank 0 reads the checkpoint; each module is gathered, written, re-partitioned.
    """
    def read():
        from transformers import LlamaForCausalLM

        return {k: v for k, v in LlamaForCausalLM.from_pretrained(path, dtype="auto").state_dict().items()
                if not k.endswith("rotary_emb.inv_freq")}

    _load_checkpoint(model, _text_targets(model), read, f"LLaMA checkpoint {path}")


def load_clip(model: IdeficsForVisionText2Text, path: str) -> None:
    """Copy a local CLIP vision tower into ``model.vision_model``; refuses an activation mismatch."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    clip_cfg = CLIPVisionConfig.from_pretrained(path)
    act = model.config.vision_config.hidden_act
    if clip_cfg.hidden_act != act:
        # §1.2 caveat: QuickGELU vs GELU. The IDEFICS config is authoritative; refuse a silent mismatch.
        raise ValueError(f"CLIP checkpoint uses {clip_cfg.hidden_act!r} but the IDEFICS vision config says "
                         f"{act!r}; set model.overrides.vision_config.hidden_act to match")
    targets = [n for n, _ in model.named_parameters() if n.startswith("model.vision_model.")]

    def read():
        raw = CLIPVisionModel.from_pretrained(path, dtype="auto").state_dict()
        return {"model.vision_model." + k.removeprefix("vision_model."): v for k, v in raw.items()
                if not k.endswith("position_ids")}

    _load_checkpoint(model, targets, read, f"CLIP checkpoint {path}")


def _load_checkpoint(model: nn.Module, targets: list[str], read, what: str) -> None:
    """Copy the tensors ``read()`` returns (by parameter name) into ``targets``; refuses a checkpoint whose
    names differ. Under ZeRO-3 only rank 0 reads it."""
    src = None
    if _is_rank0() or not _zero3(model.parameters()):
        src = read()
        extra = sorted(set(src) - set(targets))
        missing = sorted(set(targets) - set(src))
        if extra or missing:
            raise ValueError(f"{what} does not fit: unused {extra[:4]}, missing {missing[:4]}")
    _copy(model, targets, (lambda name: src[name]) if src is not None else None)


@torch.no_grad()
def _copy(model: nn.Module, targets: list[str], get) -> None:
    """Write ``get(name)`` into each target parameter, one module at a time (ZeRO-3 aware)."""
    params = dict(model.named_parameters())
    by_module: dict[str, list[str]] = {}
    for name in targets:
        by_module.setdefault(name.rsplit(".", 1)[0], []).append(name)
    for names in by_module.values():
        with writable(params[n] for n in names) as write:
            if not write:
                continue
            for n in names:
                value = get(n)
                if params[n].shape != value.shape:
                    raise ValueError(f"shape mismatch for {n}: {tuple(value.shape)} vs {tuple(params[n].shape)}")
                params[n].copy_(value.to(params[n].dtype))


@torch.no_grad()
def fingerprint(model: nn.Module, names: list[str]) -> dict[str, float]:
    """Sum of each named parameter (gathered under ZeRO-3): a cheap check that weights landed."""
    params = dict(model.named_parameters())
    out = {}
    for n in names:
        with writable([params[n]]):
            out[n] = float(params[n].detach().double().sum())
    return out


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


def _build_zero3(config, ds_config: dict) -> IdeficsForVisionText2Text:
    """Partitioned construction, as transformers' ``_from_config`` does under ZeRO-3 (zero.Init without
    eager init, then a per-module gathered init on rank 0), without its ``HfDeepSpeedConfig`` global
    (which needs ``accelerate``)."""
    import deepspeed
    from transformers import initialization as hf_init
    from transformers.integrations.deepspeed import initialize_weights_zero3, prevent_arange_dtype_change

    with hf_init.no_init_weights(), prevent_arange_dtype_change(), deepspeed.zero.Init(config_dict_or_path=ds_config):
        model = IdeficsForVisionText2Text(config)
    initialize_weights_zero3(model)
    return model


def build_model(cfg: ModelConfig, vocab_size: int | None = None, seed: int = 0,
                zero3_config: dict | None = None) -> IdeficsForVisionText2Text:
    """Construct, initialise, load backbones (when paths are given) and freeze an IDEFICS model.

    With ``zero3_config`` (a DeepSpeed config dict) the model is built inside ``deepspeed.zero.Init`` so
    no process ever holds all weights; new modules and backbones are then written one module at a time.
    """
    config = build_config(cfg, vocab_size)
    config._attn_implementation = cfg.attn_implementation
    torch.manual_seed(seed)
    if zero3_config is not None:
        model = _build_zero3(config, zero3_config)
    else:
        model = IdeficsForVisionText2Text(config)
    init_new_modules(model, cfg.init_std)
    if cfg.llama_path:
        load_llama(model, cfg.llama_path)
    if cfg.clip_path:
        load_clip(model, cfg.clip_path)
    freeze(model, cfg)
    if cfg.gradient_checkpointing:
        kw = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5.2x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
    model.config.use_cache = False
    return model


NO_DECAY_KEYS = ("bias", "norm", "alpha_", "latents", "layernorm", "layer_norm", "ln.")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decay / no-decay groups (norms, biases, gates, perceiver latents)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or any(k in name.lower() for k in NO_DECAY_KEYS):
            no_decay.append((name, p))
        else:
            decay.append((name, p))
    return [
        {"params": [p for _, p in decay], "names": [n for n, _ in decay], "weight_decay": weight_decay},
        {"params": [p for _, p in no_decay], "names": [n for n, _ in no_decay], "weight_decay": 0.0},
    ]


def count_params(model: nn.Module) -> dict:
    """Total and trainable parameter counts."""
    def n(p):
        return getattr(p, "ds_numel", p.numel())  # ZeRO-3 partitions report their full size here

    total = sum(n(p) for p in model.parameters())
    trainable = sum(n(p) for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
