"""Export: a training checkpoint (torch or ZeRO-3) → a folder plain transformers loads, with the same logits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.train.launch import free_port
from tests.train.test_train import _cfg

ROOT = Path(__file__).resolve().parents[2]
BATCH_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_attention_mask")

# Run in a fresh interpreter in isolated mode (-I: no PYTHONPATH, no cwd on the path): only transformers.
FRESH = r"""
import io, sys, torch
from PIL import Image
from transformers import IdeficsForVisionText2Text, IdeficsProcessor
out, batch, dst, photo = sys.argv[1:]
model = IdeficsForVisionText2Text.from_pretrained(out).eval()
proc = IdeficsProcessor.from_pretrained(out)
b = torch.load(batch)
with torch.no_grad():
    logits = model(**b).logits
img = Image.open(photo)
enc = proc(text=[["A photo of", img, "the cat"]], return_tensors="pt")
project = sorted(n for n in sys.modules if n.split(".")[0] in ("train", "model", "obelics", "pipeline", "filters"))
torch.save({"logits": logits, "project_modules": project, "ids": enc["input_ids"][0].tolist(),
            "pixels": tuple(enc["pixel_values"].shape), "dtype": str(next(model.parameters()).dtype)}, dst)
"""

# fp32 throughout and the same kernels on both sides: the exported model must give the trainer's logits to
# within float rounding of a re-ordered reduction (seen: exactly 0.0)
ATOL = 1e-6


def _fresh_logits(out: Path, batch: Path, tmp: Path) -> dict:
    from tests.train.shards import photo_bytes

    photo = tmp / "photo.jpg"
    photo.write_bytes(photo_bytes(1))
    dst = tmp / "fresh.pt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-I", "-c", FRESH, str(out), str(batch), str(dst), str(photo)], cwd=tmp,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return torch.load(dst)


def test_export_loads_with_plain_transformers_and_gives_the_trainers_logits(shards, tmp_path):
    from train.collate import layout_text
    from train.export import export_checkpoint
    from train.trainer import Trainer

    trainer = Trainer(_cfg(shards, tmp_path / "run", "run.max_steps=3"))
    trainer.train()
    _, b = trainer.feed.next()
    trainer.backend.train_mode(False)
    with torch.no_grad():
        ref = trainer.backend.forward(b, training=False)
    tok = trainer.tok
    trainer.close()
    batch = {k: b[k] for k in BATCH_KEYS}
    torch.save(batch, tmp_path / "batch.pt")

    out = export_checkpoint(tmp_path / "run", tmp_path / "export", max_shard_size="100KB")
    names = sorted(p.name for p in out.iterdir())
    assert "model.safetensors.index.json" in names and sum(n.endswith(".safetensors") for n in names) > 1
    assert {"config.json", "generation_config.json", "tokenizer.json", "processor_config.json"} <= set(names)
    assert not any(n.endswith((".bin", ".pt")) for n in names) and not (tmp_path / "export.tmp").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "idefics" and config["additional_vocab_size"] == 2
    assert not config["freeze_text_layers"] and config["use_cache"]
    assert json.loads((out / "training_run.json").read_text())["trainer_state"]["step"] == 3

    got = _fresh_logits(out, tmp_path / "batch.pt", tmp_path)
    assert got["project_modules"] == []
    assert got["dtype"] == "torch.float32"
    assert got["logits"].shape == ref.shape == (2, 64, 1002)
    assert (got["logits"] - ref).abs().max().item() <= ATOL
    # the exported processor lays out a prompt exactly as the trainer's collator does
    text = layout_text([("text", "A photo of"), ("image", b""), ("text", "the cat")], tok.bos_token, "", "")
    assert got["ids"] == tok(text, add_special_tokens=False)["input_ids"]
    assert got["pixels"] == (1, 1, 3, 30, 30)


def test_export_cli_refuses_a_folder_that_is_no_checkpoint(tmp_path, capsys):
    from train.export import main

    assert main([str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m train.export: ") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_export_from_a_zero3_checkpoint_gives_the_trainers_logits(shards, tmp_path):
    """Two ZeRO-3 ranks train (with frozen backbones from local checkpoints) and forward a saved batch through
    their partitioned model; the export gathered on CPU gives the same logits in plain transformers."""
    pytest.importorskip("deepspeed")
    from tests.model.backbones import tiny_backbones
    from train.export import export_checkpoint
    from train.feed import Feed
    from train.tokenizer import load_tokenizer

    tiny_backbones(tmp_path)
    over = [f"data.shards={shards}", f"run.out_dir={tmp_path / 'z3'}", "data.packing.seq_len=64", "data.batch_size=2",
            "data.packing.max_images=2", "data.val_permille=0", "run.val_every=0", "run.tensorboard=false",
            "run.max_steps=2", "run.stats_every=0", "run.backend=deepspeed",
            f"run.deepspeed_config={ROOT / 'configs/deepspeed/zero3.json'}", f"model.llama_path={tmp_path / 'llama'}",
            f"model.clip_path={tmp_path / 'clip'}"]
    cfg = _cfg(shards, tmp_path / "z3", *over[1:])
    feed = Feed(cfg, load_tokenizer(None, 1000), 30, 0, 1, torch.device("cpu"))
    _, b = feed.next()
    feed.close()
    torch.save({k: b[k] for k in BATCH_KEYS}, tmp_path / "batch.pt")
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port", str(free_port()),
           str(ROOT / "tests/train/run_and_forward.py"), str(tmp_path / "batch.pt"), str(tmp_path / "ref.pt"),
           "--config", str(ROOT / "configs/train/tiny.yaml"), *over]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ckpt = tmp_path / "z3" / "checkpoints" / "step_00000002"
    assert any(ckpt.glob("*model_states.pt")) and not (ckpt / "model.pt").exists()

    out = export_checkpoint(tmp_path / "z3", tmp_path / "export")
    got = _fresh_logits(out, tmp_path / "batch.pt", tmp_path)
    ref = torch.load(tmp_path / "ref.pt")
    assert got["project_modules"] == [] and got["logits"].shape == ref.shape
    assert (got["logits"] - ref).abs().max().item() <= ATOL
    # the frozen backbone came through the gather: the exported vision tower is the CLIP checkpoint's
    from safetensors.torch import load_file
    from transformers import CLIPVisionModel

    sd = {}
    for f in out.glob("*.safetensors"):
        sd.update(load_file(str(f)))
    clip = CLIPVisionModel.from_pretrained(tmp_path / "clip").state_dict()
    patch = next(v for k, v in clip.items() if k.endswith("embeddings.patch_embedding.weight"))
    assert torch.equal(sd["model.vision_model.embeddings.patch_embedding.weight"], patch)


def test_export_of_a_run_with_backbone_paths_merges_frozen_and_trained_weights(shards, tmp_path):
    """The torch backend saves only the trained weights when the backbones come from local checkpoints; the
    export reads the backbones again and lays the trained weights over them."""
    from safetensors.torch import load_file

    from tests.model.backbones import tiny_backbones
    from train.export import export_checkpoint
    from train.trainer import Trainer

    _, clip = tiny_backbones(tmp_path)
    trainer = Trainer(_cfg(shards, tmp_path / "run", "run.max_steps=2", f"model.llama_path={tmp_path / 'llama'}",
                           f"model.clip_path={tmp_path / 'clip'}"))
    trainer.train()
    _, b = trainer.feed.next()
    trainer.backend.train_mode(False)
    with torch.no_grad():
        ref = trainer.backend.forward(b, training=False)
    trained = dict(trainer.model.named_parameters())
    trainer.close()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "step_00000002" / "model.pt")
    assert not any(k.startswith("model.vision_model.") for k in saved)  # the frozen tower is not in the checkpoint
    out = export_checkpoint(tmp_path / "run", tmp_path / "export")
    sd = load_file(str(out / "model.safetensors"))
    patch = next(v for k, v in clip.state_dict().items() if k.endswith("embeddings.patch_embedding.weight"))
    assert torch.equal(sd["model.vision_model.embeddings.patch_embedding.weight"], patch)
    assert torch.equal(sd["model.perceiver_resampler.latents"], trained["model.perceiver_resampler.latents"].detach())
    from transformers import IdeficsForVisionText2Text

    m = IdeficsForVisionText2Text.from_pretrained(out).eval()
    with torch.no_grad():
        got = m(**{k: b[k] for k in BATCH_KEYS}).logits
    assert (got - ref).abs().max().item() <= ATOL
