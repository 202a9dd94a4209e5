"""The plain builder (``model/build.py``) run on a DeepSpeed ZeRO-3-partitioned model.

No process ever holds all weights: the model is constructed inside ``deepspeed.zero.Init``, and each of
the builder's writes (one module each: new-module init, backbone copy) runs with that module gathered,
on rank 0, then re-partitioned. Only rank 0 reads backbone checkpoints. Used by the trainer's DeepSpeed
backend; nothing in ``model/`` imports this.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from transformers import IdeficsForVisionText2Text

from model import build
from model.build import ModelConfig


def is_rank0() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or \
        torch.distributed.get_rank() == 0


def is_partitioned(params) -> bool:
    return any(hasattr(p, "ds_id") for p in params)


@contextlib.contextmanager
def gathered(params, write: bool = False):
    """Gather partitioned ``params`` for the block; yield True where this process may write them (rank 0
    when ``write``: its values are broadcast and re-partitioned on exit). A no-op (yielding True) for
    parameters that are not partitioned."""
    params = list(params)
    if not is_partitioned(params):
        yield True
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(params, modifier_rank=0 if write else None):
        yield is_rank0() if write else True


@torch.no_grad()
def _run(writes) -> None:
    for params, write in writes:
        with gathered(params, write=True) as mine:
            if mine:
                write()


def _construct(config, ds_config: dict) -> IdeficsForVisionText2Text:
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


def build_model(cfg: ModelConfig, ds_config: dict, vocab_size: int | None = None,
                seed: int = 0, extra_tokens: int | None = None) -> IdeficsForVisionText2Text:
    """``build.build_model`` for ZeRO-3: the same steps, in the same order, with the same random draws."""
    config = build.build_config(cfg, vocab_size, extra_tokens)
    torch.manual_seed(seed)
    model = _construct(config, ds_config)
    _run(build.new_module_inits(model, cfg.init_std))
    for backbone in build.backbones(model, cfg, seed):
        src = None
        if is_rank0():
            src = backbone.read()
            backbone.check(src)
        _run(build.copy_writes(model, backbone, src))
    return build.finish(model, cfg)


def _ndim(p: nn.Parameter) -> int:
    return len(p.ds_shape) if hasattr(p, "ds_shape") else p.ndim  # a partition's own tensor is empty (1-D)


def _numel(p: nn.Parameter) -> int:
    return getattr(p, "ds_numel", p.numel())


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """``build.param_groups`` judged on the full shapes, not the partitions."""
    return build.param_groups(model, weight_decay, ndim=_ndim)


def count_params(model: nn.Module) -> dict:
    """``build.count_params`` with the full sizes of partitioned parameters."""
    return build.count_params(model, numel=_numel)


def fingerprint(model: nn.Module, names: list[str]) -> dict[str, float]:
    """``build.fingerprint`` with the named parameters gathered."""
    params = dict(model.named_parameters())
    out = {}
    for n in names:
        with gathered([params[n]]):
            out.update(build.fingerprint(model, [n]))
    return out
