"""What the training loop asks of a parallelism backend, and :func:`make_backend` to pick one.

A backend owns the process group, the device, the (wrapped) model and its optimizer, and the model and
optimizer part of checkpoints. The loop in ``train/trainer.py`` only calls the methods below:

    build(cfg, vocab_size)          model + optimizer (the unwrapped model is ``backend.model``)
    forward(batch, training)        logits
    backward(loss, boundary)        gradients of one micro-batch (``boundary``: the last one of the step)
    set_lr(lr) / step() / zero_grad()   optimizer; ``step`` clips and returns the global grad norm
    full_grad(p), gathered(params)  whole gradients / parameters, also where they are partitioned
    save(root, tag, state, per_rank) / load(root, tag)   checkpoints (``latest`` is written last)
    mean / all_reduce / barrier / close   collectives over the ranks

Backends: ``torch`` (single process, or DDP under torchrun) in ``torch_ddp.py``; ``deepspeed`` (ZeRO,
stage 3 partitioning via ``model/zero3.py``, which imports DeepSpeed only when it is used) in
``deepspeed_zero.py``; the common part in ``base.py``.
"""

from __future__ import annotations

from train.backends.base import Backend
from train.backends.deepspeed_zero import DeepSpeedBackend
from train.backends.torch_ddp import TorchBackend
from train.config import TrainConfig

__all__ = ["Backend", "DeepSpeedBackend", "TorchBackend", "make_backend"]


def make_backend(cfg: TrainConfig) -> Backend:
    """The backend ``cfg.run.backend`` names (``torch`` or ``deepspeed``)."""
    if cfg.run.backend == "deepspeed":
        return DeepSpeedBackend(cfg)
    return TorchBackend(cfg)
