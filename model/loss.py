"""The training loss, computed outside the model.

transformers 5.23's ``labels=`` path views the logits with ``config.vocab_size`` while the head emits
``vocab_size + additional_vocab_size`` columns (reference §1.5), so we call the model without labels
and compute next-token cross-entropy over the full width here, plus PaLM's z-loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, z_loss_weight: float = 1e-3) -> dict:
    """CE + ``z_loss_weight`` · mean(logsumexp²) over positions whose shifted label is not -100.

    ``logits`` [B, L, V+extra] (any dtype; computed in fp32), ``labels`` [B, L] aligned with the inputs
    (the shift happens here). Returns ``loss`` (to backprop), ``ce``, ``z`` (unweighted) and ``n_tokens``.
    A batch with no target at all gives a zero loss that still carries a graph (no NaN, open_flamingo #215).
    """
    shift_labels = labels[:, 1:]
    valid = shift_labels != IGNORE_INDEX
    n = int(valid.sum())
    if n == 0:
        zero = logits.sum() * 0.0
        return {"loss": zero, "ce": zero.detach(), "z": zero.detach(), "n_tokens": 0}
    sel = logits[:, :-1][valid].float()  # select first: fp32 copies of only the target rows
    ce = F.cross_entropy(sel, shift_labels[valid], reduction="mean")
    z = torch.logsumexp(sel, dim=-1).pow(2).mean()
    loss = ce + z_loss_weight * z
    return {"loss": loss, "ce": ce.detach(), "z": z.detach(), "n_tokens": n}
