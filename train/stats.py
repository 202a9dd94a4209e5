"""Per-layer training statistics: activation RMS (forward hooks) and gradient norms per module group."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


class ActivationRMS:
    """While on, records the RMS of the output of each decoder layer, x-attn block, the perceiver and the ViT."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.values: dict[str, float] = {}
        self._hooks = []

    def set(self, on: bool) -> None:
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
                    self.values[name] = float(t.detach().float().pow(2).mean().sqrt())
            return hook

        self._hooks = [mod.register_forward_hook(make(n)) for n, mod in named]


def grad_norms(model: nn.Module, full_grad: Callable[[nn.Parameter], torch.Tensor | None]) -> dict[str, float]:
    """L2 norm of the gradient per module group (e.g. ``model.gated_cross_attn_layers.3``)."""
    sums: dict[str, float] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        g = full_grad(p)
        if g is None:
            continue
        parts = name.split(".")
        key = ".".join(parts[:3] if parts[1] in ("gated_cross_attn_layers", "layers") else parts[:2])
        sums[key] = sums.get(key, 0.0) + float(g.detach().float().pow(2).sum())
    return {k: math.sqrt(v) for k, v in sums.items()}
