"""The training loss, computed outside the model: its total and its named parts.

transformers 5.23's ``labels=`` path views the logits with ``config.vocab_size`` while the head emits
``vocab_size + additional_vocab_size`` columns (docs/training-reference.md §1.5), so we call the model without labels
and compute next-token cross-entropy over the full width here, plus PaLM's z-loss.

To change the loss, edit this file only: a term is one more entry of :func:`loss_parts`, its knob a field of
:class:`LossConfig` (the ``loss:`` section of a training config). The trainer backpropagates ``total``, feeds it
to the spike detector, validation and per-dataset curves, and logs every part under its name.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclasses.dataclass
class LossConfig:
    """The ``loss:`` section of a training config: one weight (or knob) per part."""

    z_loss: float = 1e-3  # weight of PaLM's z-loss, mean(logsumexp²); 1e-3 in IDEFICS pretraining, 0 to turn off


@dataclasses.dataclass
class LossOutput:
    """``parts``: each named term as it enters the loss (weighted); ``total`` is their sum (to backprop);
    ``n_tokens``: the positions that had a target."""

    parts: dict[str, torch.Tensor]
    n_tokens: int
    total: torch.Tensor = dataclasses.field(init=False)

    def __post_init__(self):
        if not self.parts:
            raise ValueError("a loss needs at least one part")
        self.total = sum(self.parts.values())

    def values(self) -> dict[str, float]:
        """The parts as floats (for logs)."""
        return {k: float(v.detach()) for k, v in self.parts.items()}


def loss_parts(sel: torch.Tensor, targets: torch.Tensor, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """The named terms of the loss over the target rows ``sel`` [N, V+extra] (fp32) and their ``targets`` [N]:
    ``ce`` (next-token cross-entropy) and ``z_loss`` (``cfg.z_loss`` · mean(logsumexp²)). Add a term here."""
    ce = F.cross_entropy(sel, targets, reduction="mean")
    z = torch.logsumexp(sel, dim=-1).pow(2).mean()
    return {"ce": ce, "z_loss": cfg.z_loss * z}


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, cfg: LossConfig | None = None) -> LossOutput:
    """:func:`loss_parts` over the positions whose shifted label is not -100.

    ``logits`` [B, L, V+extra] (any dtype; computed in fp32), ``labels`` [B, L] aligned with the inputs
    (the shift happens here). A batch with no target at all gives the same parts at zero, still carrying a
    graph (no NaN, open_flamingo #215).
    """
    cfg = cfg or LossConfig()
    shift_labels = labels[:, 1:]
    valid = shift_labels != IGNORE_INDEX
    n = int(valid.sum())
    if n == 0:
        row = logits[:1, :1].reshape(1, -1).float()  # any row, target 0: finite parts, times zero
        return LossOutput({k: v * 0.0 for k, v in loss_parts(row, labels.new_zeros(1), cfg).items()}, 0)
    sel = logits[:, :-1][valid].float()  # select first: fp32 copies of only the target rows
    return LossOutput(loss_parts(sel, shift_labels[valid], cfg), n)
