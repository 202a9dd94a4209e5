"""IDEFICS architecture presets: the model card's 9B and 80B values and tiny CPU shapes.

Values follow ``docs/training-reference.md`` §1.2 (9B / 80B: LLaMA-7B / LLaMA-65B + CLIP ViT-H/14) and §9
(tiny shapes that exercise every module: resampler, qk-norms, extra vocabulary, tanh gates).
"""

from __future__ import annotations

import copy

from transformers import IdeficsConfig

_VIT_H14 = dict(embed_dim=1280, image_size=224, patch_size=14, num_hidden_layers=32, num_attention_heads=16,
                intermediate_size=5120, hidden_act="gelu", layer_norm_eps=1e-5)
_PERCEIVER = dict(use_resampler=True, resampler_n_latents=64, resampler_depth=6, resampler_n_heads=16,
                  resampler_head_dim=96, qk_layer_norms_perceiver=True)
_COMMON = dict(vocab_size=32000, additional_vocab_size=2, max_position_embeddings=2048, hidden_act="silu",
               cross_layer_interval=4, qk_layer_norms=True, alpha_initializer="zeros", alpha_type="float",
               alphas_initializer_range=0.0, use_resampler=True, tie_word_embeddings=False, dropout=0.0,
               pad_token_id=0, bos_token_id=1, eos_token_id=2,
               freeze_text_layers=True, freeze_vision_layers=True, freeze_lm_head=True)

PRESETS: dict[str, dict] = {
    "idefics-9b": dict(_COMMON, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, rms_norm_eps=1e-6, vision_config=_VIT_H14,
                       perceiver_config=_PERCEIVER),
    "idefics-80b": dict(_COMMON, hidden_size=8192, intermediate_size=22016, num_hidden_layers=80,
                        num_attention_heads=64, rms_norm_eps=1e-5, vision_config=_VIT_H14,
                        perceiver_config=_PERCEIVER),
    # docs/training-reference.md §9 "9B-shaped" tiny: plain and x-attn layers both exist (interval 2), all freeze flags on.
    "tiny": dict(_COMMON, vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                 num_attention_heads=4, cross_layer_interval=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                 vision_config=dict(embed_dim=32, image_size=30, patch_size=2, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64, hidden_act="gelu"),
                 perceiver_config=dict(use_resampler=True, resampler_n_latents=8, resampler_depth=2,
                                       resampler_n_heads=2, resampler_head_dim=8, qk_layer_norms_perceiver=True)),
    # docs/training-reference.md §9 minimal: one layer, every module present; for the fastest unit tests.
    "tiny-min": dict(_COMMON, vocab_size=64, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=256, cross_layer_interval=1,
                     vision_config=dict(embed_dim=8, image_size=4, intermediate_size=16, patch_size=2,
                                        num_hidden_layers=1, num_attention_heads=2),
                     perceiver_config=dict(use_resampler=True, resampler_depth=1, resampler_head_dim=4,
                                           resampler_n_heads=1, resampler_n_latents=2,
                                           qk_layer_norms_perceiver=True)),
}


def preset_dict(name: str, overrides: dict | None = None) -> dict:
    """The preset ``name`` as a plain dict, with top-level / nested overrides merged in."""
    if name not in PRESETS:
        raise KeyError(f"unknown IDEFICS preset {name!r}; known: {sorted(PRESETS)}")
    out = copy.deepcopy(PRESETS[name])
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def idefics_config(name: str, overrides: dict | None = None) -> IdeficsConfig:
    """An ``IdeficsConfig`` for preset ``name`` (``idefics-9b``, ``idefics-80b``, ``tiny``, ``tiny-min``)."""
    d = preset_dict(name, overrides)
    check_shapes(d)
    return IdeficsConfig(**d)


def check_shapes(d: dict) -> None:
    """Reject configs that build but silently lose modules or crash later (docs/training-reference.md §9 constraints)."""
    v = d["vision_config"]
    if d["hidden_size"] % d["num_attention_heads"]:
        raise ValueError("hidden_size must be divisible by num_attention_heads")
    if v["embed_dim"] % v["num_attention_heads"]:
        raise ValueError("vision embed_dim must be divisible by its heads")
    if v["image_size"] % v["patch_size"]:
        raise ValueError("image_size must be divisible by patch_size")
    if d["num_hidden_layers"] < d["cross_layer_interval"]:
        raise ValueError("num_hidden_layers < cross_layer_interval: the model would have no x-attn block")
