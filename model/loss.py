"""The training loss, computed outside the model: its total and its named parts.

transformers 5.23's ``labels=`` path views the logits with ``config.vocab_size`` while the head emits
``vocab_size + additional_vocab_size`` columns (reference §1.5), so we call the model without labels
and compute next-token cross-entropy over the full width here, plus PaLM's z-loss.

To change the loss, edit this file only: a knob is a field of :class:`LossConfig` (the ``loss:`` section
of a training config), a term is one more entry of ``parts``. The trainer backpropagates ``total``, feeds it
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


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, cfg: LossConfig | None = None) -> LossOutput:
    """Parts ``ce`` (next-token cross-entropy) and ``z_loss`` (``cfg.z_loss`` · mean(logsumexp²)) over the
    positions whose shifted label is not -100.

    ``logits`` [B, L, V+extra] (any dtype; computed in fp32), ``labels`` [B, L] aligned with the inputs
    (the shift happens here). A batch with no target at all gives zero parts that still carry a graph
    (no NaN, open_flamingo #215).
    """
    cfg = cfg or LossConfig()
    shift_labels = labels[:, 1:]
    valid = shift_labels != IGNORE_INDEX
    n = int(valid.sum())
    if n == 0:
        zero = logits.sum() * 0.0
        return LossOutput({"ce": zero, "z_loss": zero * 0.0}, 0)
    sel = logits[:, :-1][valid].float()  # select first: fp32 copies of only the target rows
    targets = shift_labels[valid]
    ce = F.cross_entropy(sel, targets, reduction="mean")
    z = torch.logsumexp(sel, dim=-1).pow(2).mean()
    return LossOutput({"ce": ce, "z_loss": cfg.z_loss * z}, n)
