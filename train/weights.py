"""A training run's weights as one plain state dict on CPU, whatever wrote them.

A checkpoint is named by the run's folder (``run.out_dir``: its ``latest``), the ``checkpoints`` folder, or
one ``step_N`` folder. The torch backend's ``model.pt`` holds every weight, or only the trained ones when the
backbones came from local checkpoints (``model.llama_path`` / ``clip_path``): then the backbones are read
again and the trained weights laid over them. A DeepSpeed checkpoint (ZeRO 1-3) is gathered on CPU by
DeepSpeed's own ``zero_to_fp32`` (fp32 master weights of the trained parameters, frozen ones from the
model states), so no GPU and no process group are needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from obelics.config import ConfigError
from train.config import TrainConfig, load_config


def resolve(path: str | Path) -> tuple[Path, Path]:
    """(run folder, checkpoint folder) for a run folder, its ``checkpoints`` folder or a ``step_N`` folder."""
    p = Path(path)
    if (p / "checkpoints").is_dir():
        p = p / "checkpoints"
    if (p / "latest").is_file():
        p = p / (p / "latest").read_text().strip()
    if not p.is_dir() or not p.name.startswith("step_"):
        raise ConfigError(f"{path}: not a training run, checkpoints folder or step_N checkpoint")
    run = p.parent.parent
    if not (run / "config.json").is_file():
        raise ConfigError(f"{run}: no config.json beside the checkpoints (written by python -m train)")
    return run, p


def run_config(run: Path) -> TrainConfig:
    """The training config a run saved (``config.json``)."""
    return load_config(run / "config.json")


def is_deepspeed(ckpt: Path) -> bool:
    return any(ckpt.glob("*model_states.pt"))


def state_dict(ckpt: Path, model: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The weights saved in checkpoint folder ``ckpt`` (all of them for DeepSpeed and full torch checkpoints;
    only the trained ones for a torch checkpoint of a run with backbone paths)."""
    if is_deepspeed(ckpt):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        sd = get_fp32_state_dict_from_zero_checkpoint(str(ckpt.parent), tag=ckpt.name)
        return {k: v for k, v in sd.items() if not k.endswith("rotary_emb.inv_freq")}
    f = ckpt / "model.pt"
    if not f.is_file():
        raise ConfigError(f"{ckpt}: neither model.pt nor DeepSpeed model states")
    return torch.load(f, map_location="cpu", weights_only=True)


def load_model(path: str | Path, dtype: torch.dtype = torch.float32):
    """(model, training config, tokenizer) of a run's checkpoint: the model built as the run built it, on CPU,
    with the saved weights (over re-read backbones when the checkpoint holds only the trained ones)."""
    from model.build import build_model
    from train.tokenizer import base_vocab_size, load_tokenizer

    run, ckpt = resolve(path)
    cfg = run_config(run)
    tok = load_tokenizer(cfg.data.tokenizer, cfg.data.tokenizer_vocab, cfg.data.end_of_utterance)
    sd = state_dict(ckpt)
    names = set(sd)
    partial = not is_deepspeed(ckpt) and bool(cfg.model.llama_path or cfg.model.clip_path)
    mcfg = cfg.model
    if not partial:  # every weight is in the checkpoint: no backbone (nor init_from) to read first
        import dataclasses

        mcfg = dataclasses.replace(mcfg, llama_path=None, clip_path=None, init_from=None)
    model = build_model(mcfg, vocab_size=base_vocab_size(tok), seed=cfg.run.seed,
                        extra_tokens=len(tok) - base_vocab_size(tok))
    want = {n for n, _ in model.named_parameters()}
    unexpected = sorted(names - want)
    missing = sorted(want - names)
    if unexpected or (missing and not partial):
        raise ConfigError(f"{ckpt}: weights do not match the run's model: unexpected {unexpected[:4]}, "
                          f"missing {missing[:4]}")
    model.load_state_dict(sd, strict=False)
    model.to(dtype)
    model.eval()
    return model, cfg, tok


def summary(ckpt: Path) -> dict:
    """The trainer state saved with a torch checkpoint (step, tokens seen), or {} for DeepSpeed."""
    f = ckpt / "trainer_state.json"
    return json.loads(f.read_text()) if f.is_file() else {}
