"""Analytic FLOP counts for IDEFICS training, honest about frozen weights.

Matmul FLOPs = 2·m·n·k. Per token of text we count the LLaMA layers, the gated x-attn blocks and the
LM head; per image the ViT and the perceiver (spread over tokens with ``images_per_token``).
Backward: a frozen module on the gradient path costs only its activation gradients (≈1× forward for
weight matmuls, 2× for attention score/value products whose both operands are activations); a
trainable module costs 2× forward; the ViT (frozen, fed by pixels) has no backward at all.
Activation recomputation (gradient checkpointing) adds one forward of the checkpointed text-side
modules to the *hardware* FLOPs but not to the *model* FLOPs used for MFU.
MFU = model FLOPs per token × tokens/s per device ÷ the device's peak bf16 dense FLOP/s (:data:`MFU_DEFINITION`);
``mfu_trained`` uses 6 × the trained parameters per token instead (the "6N" count over what is trained only).
The m4 / ml-engineering logged figure is ``4 · 2 · N_params`` per token (docs/training-reference.md §6), which counts
frozen weights as if trained; we report it beside the honest one.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Flops:
    """FLOPs per text token, split by kind."""

    forward: float
    backward: float
    recompute: float
    m4_style: float

    @property
    def model(self) -> float:
        """Useful FLOPs per token: forward + the backward that is really needed (used for MFU)."""
        return self.forward + self.backward

    @property
    def hardware(self) -> float:
        """What the GPU executes: model FLOPs plus activation recomputation."""
        return self.model + self.recompute


MFU_DEFINITION = ("mfu = model FLOPs/token (forward of every module incl. frozen ones + the backward really "
                  "needed: activation gradients through frozen parts, weight gradients of trained ones; no "
                  "recomputation) x tokens/s per device / peak bf16 dense FLOP/s; mfu_trained = 6 x trained "
                  "params x tokens/s per device / peak")

# bf16 dense (no sparsity) peak TFLOP/s per device, from the vendors' data sheets; matched on the device name
# in this order (the first substring found wins)
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H200", 989.4), ("H100", 989.4), ("A100", 312.0))


def peak_tflops(device_name: str) -> float | None:
    """The bf16 dense peak of the GPU called ``device_name`` (A100/H100/H200), None when unknown."""
    for key, tf in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tf
    return None


def trained_flops_per_token(n_trained: int) -> float:
    """6 FLOPs per trained parameter per token (2 forward + 4 backward): the count over trained weights only."""
    return 6.0 * n_trained


def count_parameters(config) -> int:
    """Parameter count of an ``IdeficsConfig`` without building it (matches the meta-device count)."""
    d, f, n, V, X = (config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size,
                     config.additional_vocab_size)
    v = config.vision_config
    e, fi, nv = v.embed_dim, v.intermediate_size, v.num_hidden_layers
    T = (v.image_size // v.patch_size) ** 2 + 1
    pc = config.perceiver_config
    inner = pc.resampler_n_heads * pc.resampler_head_dim
    lm_layer = 4 * d * d + 3 * d * f + 2 * d
    n_x = n // config.cross_layer_interval
    x_layer = 2 * d * d + 2 * e * d + 3 * d * f + 2 * d + 2 + (2 * (d // config.num_attention_heads)
                                                               if config.qk_layer_norms else 0)
    vit_layer = 4 * e * e + 4 * e + 2 * e * fi + fi + e + 4 * e
    vit = nv * vit_layer + 3 * v.patch_size ** 2 * e + e + T * e + 4 * e
    perc_attn = 4 * e + 3 * e * inner + inner * e + (4 * pc.resampler_head_dim if pc.qk_layer_norms_perceiver else 0)
    perc_mlp = 2 * e + 2 * e * 4 * e
    perceiver = pc.resampler_depth * (perc_attn + perc_mlp) + pc.resampler_n_latents * e + 2 * e
    return (n * lm_layer + d + n_x * x_layer + vit + perceiver + 2 * (V + X) * d)


def flops_per_token(config, seq_len: int, images_per_token: float, grad_ckpt: bool = True,
                    train_text: bool = False, train_vision: bool = False) -> Flops:
    """Training FLOPs per text token for ``config`` at ``seq_len`` with ``images_per_token`` images."""
    d, f, n, V, X = (config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size,
                     config.additional_vocab_size)
    L = seq_len
    v = config.vision_config
    e, fi, nv = v.embed_dim, v.intermediate_size, v.num_hidden_layers
    P = (v.image_size // v.patch_size) ** 2
    T = P + 1
    pc = config.perceiver_config
    nl, inner = pc.resampler_n_latents, pc.resampler_n_heads * pc.resampler_head_dim
    n_x = n // config.cross_layer_interval
    images_per_seq = images_per_token * L

    # text side, per token
    lm_w = 2 * (4 * d * d + 3 * d * f) * n
    lm_att = 2 * 2 * L * d * n
    x_w = 2 * (2 * d * d + 3 * d * f) * n_x
    x_kv = 2 * 2 * e * d * nl * images_per_seq / L * n_x  # k/v projections of the latents, spread per token
    x_att = 2 * 2 * nl * images_per_seq * d * n_x
    head = 2 * d * (V + X)
    # image side, per image
    vit = nv * (2 * T * (4 * e * e + 2 * e * fi) + 2 * 2 * T * T * e) + 2 * 3 * v.patch_size ** 2 * e * P
    ctx = T + nl
    perc = pc.resampler_depth * (2 * nl * e * inner + 2 * 2 * ctx * e * inner + 2 * 2 * nl * ctx * inner
                                 + 2 * nl * inner * e + 2 * nl * 2 * e * 4 * e)
    vit_t, perc_t = vit * images_per_token, perc * images_per_token

    fwd = lm_w + lm_att + x_w + x_kv + x_att + head + vit_t + perc_t
    bwd = (lm_w * (2 if train_text else 1) + 2 * lm_att + 2 * (x_w + x_kv + x_att) + head * (2 if train_text else 1)
           + 2 * perc_t + (2 * vit_t if train_vision else 0))
    recompute = (lm_w + lm_att + x_w + x_kv + x_att) if grad_ckpt else 0.0
    m4 = 4 * 2 * count_parameters(config)
    return Flops(forward=fwd, backward=bwd, recompute=recompute, m4_style=m4)
