"""Build an ``IdeficsForVisionText2Text`` for training: init, backbones, freezing, parameter groups."""

from __future__ import annotations

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


@torch.no_grad()
def init_new_modules(model: IdeficsForVisionText2Text, std: float = 0.02) -> None:
    """Our init for what LLaMA and CLIP do not provide (transformers' ``_init_weights`` is not one, §1.1).

    Gated x-attn blocks: linear weights N(0, std), RMSNorms at 1, tanh gates at the configured value
    (zeros for IDEFICS, so the model starts as exactly the text LM). Perceiver: latents N(0, 1) as in
    the port, linear weights N(0, std), LayerNorms at (1, 0). Extra token rows (embedding and head):
    N(0, std).
    """
    cfg = model.config
    for module in model.modules():
        if isinstance(module, (IdeficsGatedCrossAttentionLayer, IdeficsPerceiverResampler)):
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
    if cfg.additional_vocab_size:
        model.model.embed_tokens.additional_embedding.weight.normal_(0.0, std)
        model.lm_head.additional_fc.weight.normal_(0.0, std)


def load_llama(model: IdeficsForVisionText2Text, path: str) -> list[str]:
    """Copy a local LLaMA checkpoint into the text side (embeddings, decoder layers, norm, LM head)."""
    from transformers import LlamaForCausalLM

    src = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).state_dict()
    own = model.state_dict()
    mapping = {}
    for k in src:
        if k.endswith("rotary_emb.inv_freq"):
            continue
        if k in own:
            mapping[k] = k
        else:
            raise ValueError(f"LLaMA checkpoint key {k!r} has no place in the IDEFICS model")
    _copy(model, src, mapping)
    text_keys = {k for k in own if k.startswith(("model.layers.", "model.norm.", "lm_head.weight"))
                 or k == "model.embed_tokens.weight"}
    return sorted(text_keys - set(mapping.values()))


def load_clip(model: IdeficsForVisionText2Text, path: str) -> list[str]:
    """Copy a local CLIP vision tower into ``model.vision_model``; pins the activation from its config."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    clip_cfg = CLIPVisionConfig.from_pretrained(path)
    src = CLIPVisionModel.from_pretrained(path, dtype=torch.float32).state_dict()
    act = model.config.vision_config.hidden_act
    if clip_cfg.hidden_act != act:
        # §1.2 caveat: QuickGELU vs GELU. The IDEFICS config is authoritative; refuse silent mismatch.
        raise ValueError(f"CLIP checkpoint uses {clip_cfg.hidden_act!r} but the IDEFICS vision config says "
                         f"{act!r}; set model.overrides.vision_config.hidden_act to match")
    own = model.state_dict()
    mapping = {}
    for k in src:
        if k.endswith("position_ids"):
            continue
        name = "model.vision_model." + k.removeprefix("vision_model.")
        if name not in own:
            raise ValueError(f"CLIP checkpoint key {k!r} has no place in the IDEFICS vision tower")
        mapping[k] = name
    _copy(model, src, mapping)
    vis = {k for k in own if k.startswith("model.vision_model.") and not k.endswith("position_ids")}
    return sorted(vis - set(mapping.values()))


def _copy(model: nn.Module, src: dict, mapping: dict) -> None:
    own = model.state_dict()
    with torch.no_grad():
        for sk, dk in mapping.items():
            if own[dk].shape != src[sk].shape:
                raise ValueError(f"shape mismatch {sk} {tuple(src[sk].shape)} -> {dk} {tuple(own[dk].shape)}")
            own[dk].copy_(src[sk].to(own[dk].dtype))


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


def build_model(cfg: ModelConfig, vocab_size: int | None = None, seed: int = 0) -> IdeficsForVisionText2Text:
    """Construct, initialise, load backbones (when paths are given) and freeze an IDEFICS model."""
    config = build_config(cfg, vocab_size)
    config._attn_implementation = cfg.attn_implementation
    torch.manual_seed(seed)
    model = IdeficsForVisionText2Text(config)
    init_new_modules(model, cfg.init_std)
    if cfg.llama_path:
        missing = load_llama(model, cfg.llama_path)
        if missing:
            raise ValueError(f"LLaMA checkpoint did not provide {missing[:5]} (+{len(missing) - 5 if len(missing) > 5 else 0})")
    if cfg.clip_path:
        missing = load_clip(model, cfg.clip_path)
        if missing:
            log.warning("CLIP checkpoint left %d vision tensors at init: %s", len(missing), missing[:4])
    freeze(model, cfg)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
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
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
