"""examples/change_loss: the label-smoothing patch applies to model/loss.py, computes what torch's label
smoothing computes, and the unchanged trainer trains with it and logs the new part (tiny preset, CPU)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.train.shards import make_docs, write_webdataset

ROOT = Path(__file__).resolve().parents[2]
PATCH = ROOT / "examples/change_loss/label_smoothing.patch"


@pytest.fixture(scope="module")
def patched(tmp_path_factory) -> Path:
    """A copy of model/ with the example applied (the worktree itself is left alone)."""
    root = tmp_path_factory.mktemp("change-loss")
    shutil.copytree(ROOT / "model", root / "model", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run(["git", "apply", str(PATCH)], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, f"the example no longer applies to model/loss.py: {r.stderr}"
    assert "label_smoothing" in (root / "model/loss.py").read_text()
    return root


def test_patched_loss_is_torch_label_smoothing_plus_z_loss(patched, monkeypatch):
    spec = importlib.util.spec_from_file_location("patched_loss", patched / "model/loss.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "patched_loss", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 11, generator=g) * 3
    labels = torch.randint(0, 11, (2, 7), generator=g)
    labels[0, 2] = -100
    out = mod.causal_lm_loss(logits, labels, mod.LossConfig(z_loss=1e-3, label_smoothing=0.1))
    assert list(out.parts) == ["ce", "z_loss", "smoothing"]
    sel, tgt = logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1)
    ref = F.cross_entropy(sel, tgt, ignore_index=-100, label_smoothing=0.1)
    torch.testing.assert_close(out.total - out.parts["z_loss"], ref)
    off = mod.causal_lm_loss(logits, labels, mod.LossConfig(z_loss=1e-3))
    assert off.parts["smoothing"].item() == 0.0
    empty = mod.causal_lm_loss(logits, torch.full_like(labels, -100), mod.LossConfig(label_smoothing=0.1))
    assert list(empty.parts) == ["ce", "z_loss", "smoothing"] and empty.total.item() == 0.0


def test_trainer_trains_and_logs_the_new_part(patched, tmp_path):
    shards = tmp_path / "wds"
    write_webdataset(shards, make_docs(16, seed=3), n_shards=1)
    out = tmp_path / "run"
    # cwd = the patched copy: ``python -m`` puts it first on sys.path, so ``model`` is the patched one
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "train", "--config", str(ROOT / "configs/train/tiny.yaml"), f"data.shards={shards}",
           f"run.out_dir={out}", "loss.label_smoothing=0.1", "run.max_steps=4", "run.save_every=2",
           "run.val_every=2", "run.val_batches=1", "data.val_permille=200", "data.packing.seq_len=64",
           "data.batch_size=2", "run.tensorboard=false", "run.stats_every=0"]
    r = subprocess.run(cmd, cwd=patched, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in recs if "loss" in x and "event" not in x]
    assert [x["step"] for x in steps] == [1, 2, 3, 4]
    for x in steps:
        assert x["loss"] == pytest.approx(x["ce"] + x["z_loss"] + x["smoothing"], rel=1e-9)
    val = [x for x in steps if "val_loss" in x]
    assert val and all(v["val_loss"] == pytest.approx(v["val_ce"] + v["val_z_loss"] + v["val_smoothing"])
                       for v in val)
    assert json.loads((out / "config.json").read_text())["loss"]["label_smoothing"] == 0.1
