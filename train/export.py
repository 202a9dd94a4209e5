"""``python -m train.export CHECKPOINT OUT``: a training checkpoint as a folder plain transformers loads.

``OUT`` gets the merged weights (frozen backbones + trained modules) as safetensors, sharded above
``--max-shard-size``, the transformers ``config.json`` (``IdeficsConfig``, freeze flags off as in the released
hub configs, KV cache on), ``generation_config.json``, the tokenizer and the image processor, so that
``IdeficsForVisionText2Text.from_pretrained(OUT)`` and ``IdeficsProcessor.from_pretrained(OUT)`` need no
project code. ``CHECKPOINT`` is a run folder (its ``latest``), its ``checkpoints`` folder or a ``step_N``
folder, of the torch or the DeepSpeed backend (ZeRO-3 partitions are gathered on CPU, see train/weights.py).
The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from obelics.config import ConfigError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def processor_for(tok, image_size: int):
    """The ``IdeficsProcessor`` (CLIP-normalised, bicubic ``image_size`` images) around ``tok``."""
    from transformers import IdeficsProcessor

    try:  # the PIL backend: no torchvision needed (same resize / rescale / normalise)
        from transformers import IdeficsImageProcessorPil as Proc
    except ImportError:
        from transformers import IdeficsImageProcessor as Proc
    return IdeficsProcessor(Proc(image_size=image_size), tok, image_size=image_size)


def export_model(model, tok, out: str | Path, max_shard_size: str = "5GB", meta: dict | None = None) -> Path:
    """Write ``model`` (plain, on CPU) with ``tok`` and its image processor to ``out`` (temporary name, rename)."""
    from train.tokenizer import END_OF_UTTERANCE

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    cfg = model.config
    saved = {k: getattr(cfg, k) for k in ("freeze_text_layers", "freeze_vision_layers", "freeze_lm_head", "use_cache")}
    try:
        cfg.freeze_text_layers = cfg.freeze_vision_layers = cfg.freeze_lm_head = False
        cfg.use_cache = True
        gen = model.generation_config
        gen.bos_token_id, gen.pad_token_id = tok.bos_token_id, tok.pad_token_id
        eos = [tok.eos_token_id]
        if END_OF_UTTERANCE in tok.get_vocab():
            eos.append(tok.convert_tokens_to_ids(END_OF_UTTERANCE))
        gen.eos_token_id = eos if len(eos) > 1 else eos[0]
        model.save_pretrained(tmp, max_shard_size=max_shard_size, safe_serialization=True)
    finally:
        for k, v in saved.items():
            setattr(cfg, k, v)
    processor_for(tok, cfg.vision_config.image_size).save_pretrained(tmp)
    if meta:
        (tmp / "training_run.json").write_text(json.dumps(meta, indent=1, default=str))
    if out.exists():
        shutil.rmtree(out)
    tmp.replace(out)
    return out


def export_checkpoint(checkpoint: str | Path, out: str | Path, dtype: str = "auto",
                      max_shard_size: str = "5GB") -> Path:
    """Load a training checkpoint (train/weights.py) and :func:`export_model` it. ``dtype``: fp32, bf16, fp16
    or auto (bf16 when the run's config says run.precision=bf16, else fp32)."""
    from train.weights import load_model, resolve, summary

    run, ckpt = resolve(checkpoint)
    model, cfg, tok = load_model(checkpoint)
    if dtype == "auto":
        dtype = "bf16" if cfg.run.precision == "bf16" else "fp32"
    model.to(DTYPES[dtype])
    meta = {"checkpoint": str(ckpt), "run": str(run), "dtype": dtype, "trainer_state": summary(ckpt),
            "training_config": json.loads((run / "config.json").read_text())}
    return export_model(model, tok, out, max_shard_size, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="run folder, its checkpoints/ folder or a step_N checkpoint")
    ap.add_argument("out", help="folder to write (replaced when it exists)")
    ap.add_argument("--dtype", choices=["auto", *DTYPES], default="auto")
    ap.add_argument("--max-shard-size", default="5GB", help="safetensors shard size (transformers syntax)")
    args = ap.parse_args(argv)
    try:
        from train.weights import resolve

        resolve(args.checkpoint)  # user errors before any work: one line, exit code 2
    except ConfigError as e:
        print(f"python -m train.export: {e}", file=sys.stderr)
        return 2
    out = export_checkpoint(args.checkpoint, args.out, args.dtype, args.max_shard_size)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
