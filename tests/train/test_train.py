"""End-to-end training on CPU: loss falls, kill+resume is exact, spikes roll back, ZeRO-3 runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.launch import free_port, shm_buffers
from train.config import ConfigError, load_config
from train.stability import SpikeDetector, lr_at

ROOT = Path(__file__).resolve().parents[2]


def _cfg(shards, out, *extra):
    return load_config(ROOT / "configs/train/tiny.yaml", [
        f"data.shards={shards}", f"run.out_dir={out}", "data.packing.seq_len=64", "data.batch_size=2",
        "data.packing.max_images=2", "data.packing.shuffle_rows=4", "data.val_permille=0", "run.val_every=0",
        "run.tensorboard=false", "optim.warmup_steps=2", "run.stats_every=0", *extra])


def _losses(out: Path) -> dict[int, float]:
    by_step = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r and "event" not in r:
            by_step[r["step"]] = r["loss"]  # a resumed run re-logs steps after its checkpoint: last wins
    return by_step


def _plain_groups() -> dict:
    """Decay / no-decay tensor counts of the tiny.yaml model built plainly."""
    from model import ModelConfig, build_model, param_groups

    m = build_model(ModelConfig(preset="tiny", freeze_text=False, freeze_lm_head=False), vocab_size=1000)
    decay, no_decay = param_groups(m, 0.1)
    return {"decay": len(decay["names"]), "no_decay": len(no_decay["names"])}


def _run(cfg):
    from train.trainer import Trainer

    return Trainer(cfg).train()


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config(ROOT / "configs/train/tiny.yaml", ["data.shards=x", "optim.lr=3e-4", "run.max_steps=7"])
    assert cfg.optim.lr == 3e-4 and cfg.run.max_steps == 7 and cfg.data.packing.seq_len == 128
    with pytest.raises(ConfigError):
        load_config(ROOT / "configs/train/tiny.yaml", ["optim.learning_rate=1"])
    with pytest.raises(ConfigError):
        load_config(ROOT / "configs/train/tiny.yaml", ["run.max_steps=many"])
    for name in ("idefics-9b", "idefics-80b", "mixture-example"):
        c = load_config(ROOT / f"configs/train/{name}.yaml")
        assert c.optim.betas == [0.9, 0.999] and c.optim.weight_decay == 0.1 and c.optim.grad_clip == 1.0
    mix = load_config(ROOT / "configs/train/mixture-example.yaml").data.dataset_list()
    assert [(d.name, d.weight, d.kind) for d in mix] == [("obelics", 73.85, "webdoc"), ("wikipedia", 6.15, "webdoc"),
                                                          ("laion", 17.18, "pairs"), ("pmd", 2.82, "pairs")]


def test_schedule_and_detector():
    assert lr_at(0, 1.0, 0.1, 4, 20) == 0.25 and lr_at(3, 1.0, 0.1, 4, 20) == 1.0
    assert lr_at(20, 1.0, 0.1, 4, 20) == pytest.approx(0.1) and lr_at(12, 1.0, 0.1, 4, 20, 0.5) == pytest.approx(0.275)
    d = SpikeDetector(window=10, min_history=3, sigma=6, ratio=1.5)
    assert [d.check(x) for x in (5.0, 4.9, 5.1, 5.0)] == [None] * 4
    assert d.check(float("nan")) == "nan"
    assert d.check(50.0).startswith("spike")
    assert d.check(5.05) is None and len(d.history) == 5


def test_tiny_trains_on_shards_and_loss_falls(shards, tmp_path):
    from train.__main__ import main

    out = tmp_path / "run"
    main(["--config", str(ROOT / "configs/train/tiny.yaml"), f"data.shards={shards}", f"run.out_dir={out}",
          "data.packing.seq_len=64", "data.batch_size=2", "run.max_steps=16", "run.save_every=8",
          "run.val_every=8", "run.val_batches=1", "data.val_permille=200", "run.stats_every=8",
          "optim.warmup_steps=2"])
    loss = _losses(out)
    assert sorted(loss) == list(range(1, 17))
    first, last = sum(loss[i] for i in (1, 2, 3)) / 3, sum(loss[i] for i in (14, 15, 16)) / 3
    assert last < first - 0.3, (first, last)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val_loss" in r for r in recs)
    stats = next(r for r in recs if "grad_norms" in r)
    assert any(k.startswith("model.gated_cross_attn_layers") for k in stats["grad_norms"])
    assert "perceiver" in stats["act_rms"] and "xattn.0" in stats["act_rms"]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 for r in recs if "mfu" in r)
    assert (out / "checkpoints" / "latest").read_text() == "step_00000016"
    assert recs[0]["event"] == "start" and recs[0]["param_groups"] == _plain_groups()
    for r in recs:  # the loss logged is the sum of its logged parts
        if "ce" in r:
            assert r["loss"] == pytest.approx(r["ce"] + r["z_loss"], rel=1e-12)
        if "val_loss" in r:
            assert r["val_loss"] == pytest.approx(r["val_ce"] + r["val_z_loss"], rel=1e-12)
    assert list((out / "tb").glob("events.out.tfevents.*"))


def test_kill_and_resume_reproduce_the_uninterrupted_curve(shards, tmp_path):
    full = tmp_path / "full"
    _run(_cfg(shards, full, "run.max_steps=9", "run.save_every=3"))
    killed = tmp_path / "killed"
    _run(_cfg(shards, killed, "run.max_steps=9", "run.save_every=3", "run.stop_after=5"))  # dies after step 5
    assert (killed / "checkpoints" / "latest").read_text() == "step_00000003"
    _run(_cfg(shards, killed, "run.max_steps=9", "run.save_every=3"))  # resumes from step 3
    a, b = _losses(full), _losses(killed)
    assert sorted(a) == sorted(b) == list(range(1, 10))
    for s in a:
        assert b[s] == pytest.approx(a[s], rel=1e-6, abs=1e-7), s


def test_injected_spike_rolls_back_and_cuts_lr(shards, tmp_path):
    out = tmp_path / "spike"
    last = _run(_cfg(shards, out, "run.max_steps=10", "run.save_every=4", "stability.inject_spike_at=6",
                     "stability.min_history=3"))
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    events = [r for r in recs if r.get("event") == "rollback"]
    assert len(events) == 1
    ev = events[0]
    assert ev["step"] == 6 and ev["to_step"] == 4 and ev["lr_scale"] == 0.5 and "spike" in ev["reason"]
    assert last["step"] == 10 and last["lr_scale"] == 0.5 and last["loss"] < 10


@pytest.mark.slow
def test_zero3_two_processes_with_resume(shards, tmp_path):
    """DeepSpeed ZeRO-3 on CPU (DS_ACCELERATOR=cpu), two ranks, via the deepspeed launcher; then resume."""
    pytest.importorskip("deepspeed")
    from tests.model.backbones import tiny_backbones

    llama, clip = tiny_backbones(tmp_path)
    out = tmp_path / "z3"
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port", str(free_port()),
            "--module", "train", "--config", str(ROOT / "configs/train/tiny.yaml"), f"data.shards={shards}",
            f"run.out_dir={out}", "run.backend=deepspeed",
            f"run.deepspeed_config={ROOT / 'configs/deepspeed/zero3.json'}", "data.packing.seq_len=64",
            "data.batch_size=2", "run.save_every=2", "run.val_every=2", "data.val_permille=200", "run.tensorboard=false",
            "run.stats_every=2", f"model.llama_path={tmp_path / 'llama'}", f"model.clip_path={tmp_path / 'clip'}"]
    ref = tmp_path / "z3-ref"
    for steps, where in ((3, out), (5, out), (5, ref)):  # killed at 3 + resumed to 5, and uninterrupted
        cmd = [a.replace(str(out), str(where)) for a in base] + [f"run.max_steps={steps}"]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    loss, ref_loss = _losses(out), _losses(ref)
    assert sorted(loss) == [1, 2, 3, 4, 5] and all(v < 8 for v in loss.values())
    for s in ref_loss:
        assert loss[s] == pytest.approx(ref_loss[s], rel=1e-5), s
    assert any("val_loss" in json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines())
    assert (out / "checkpoints" / "latest").read_text() == "step_00000005"
    assert (out / "checkpoints" / "step_00000005" / "rank_00001.pkl").exists()
    # the backbones were written into the ZeRO-3 partitions (gathered sums equal the checkpoints')
    start = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"start"' in x]
    fp = start[0]["fingerprint"]
    assert fp["model.embed_tokens.weight"] == pytest.approx(float(llama.model.embed_tokens.weight.detach().double().sum()))
    assert fp["model.vision_model.embeddings.patch_embedding.weight"] == pytest.approx(
        float(clip.state_dict()["embeddings.patch_embedding.weight"].double().sum()))
    assert fp["model.gated_cross_attn_layers.0.alpha_cross_attn"] == 0.0
    assert start[0]["params"]["total"] == 172132 and start[0]["world"] == 2
    # weight decay judged on the full shapes, not on the (1-D) partitions: the same groups as unpartitioned
    assert start[0]["param_groups"] == _plain_groups()


def test_gradient_checkpointing_gives_the_same_losses(shards, tmp_path):
    a, b = tmp_path / "plain", tmp_path / "ckpt"
    _run(_cfg(shards, a, "run.max_steps=3", "run.save_every=10"))
    _run(_cfg(shards, b, "run.max_steps=3", "run.save_every=10", "model.gradient_checkpointing=true"))
    from model import ModelConfig, build_model

    m = build_model(ModelConfig(preset="tiny", gradient_checkpointing=True), vocab_size=1000)
    assert getattr(m, "is_activation_checkpointing", None) or m.is_gradient_checkpointing
    assert m.model.gated_cross_attn_layers[0].gradient_checkpointing
    la, lb = _losses(a), _losses(b)
    assert la.keys() == lb.keys()
    for s in la:
        assert lb[s] == pytest.approx(la[s], rel=1e-5)


@pytest.mark.slow
def test_torchrun_ddp_two_processes(shards, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "train", "--config", str(ROOT / "configs/train/tiny.yaml"), f"data.shards={shards}",
           f"run.out_dir={out}", "run.max_steps=4", "run.save_every=2", "data.packing.seq_len=64",
           "run.val_every=2", "data.val_permille=200", "run.stats_every=2", "run.tensorboard=false"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss" in r] == [1, 2, 3, 4]
    assert recs[0]["world"] == 2 and any("val_loss" in r for r in recs)
    assert {p.name for p in (out / "checkpoints" / "step_00000004").iterdir()} == {
        "model.pt", "optimizer.pt", "trainer_state.json", "rank_00000.pkl", "rank_00001.pkl"}


def test_bf16_autocast_path_runs(shards, tmp_path):
    """bf16 mixed precision (fp32 master weights); on CPU through torch.autocast's CPU bf16 kernels."""
    last = _run(_cfg(shards, tmp_path / "bf16", "run.max_steps=2", "run.save_every=10", "run.precision=bf16"))
    assert last["step"] == 2 and 0 < last["loss"] < 10


@pytest.mark.gpu
def test_tiny_trains_on_gpu_in_bf16(shards, tmp_path):
    out = tmp_path / "gpu"
    last = _run(_cfg(shards, out, "run.max_steps=8", "run.save_every=4", "run.precision=auto"))
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert recs[0]["precision"] == "bf16" and last["step"] == 8 and last["tokens_per_s"] > 0


@pytest.mark.slow
def test_zero3_spike_rollback(shards, tmp_path):
    """The rollback path under ZeRO-3: partitioned weights corrupted, DeepSpeed checkpoint reloaded."""
    pytest.importorskip("deepspeed")
    out = tmp_path / "z3spike"
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    port = free_port()
    # a crashed earlier run on this port left its CPU all-reduce files: the trainer must not reuse them
    stale = [Path(f"/dev/shm/deepspeed_allreduce_buffer_{os.getuid()}_127.0.0.1_{port}_{r}") for r in (0, 1)]
    for f in stale:
        f.write_bytes(b"\xff" * 4096)
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port", str(port),
           "--module", "train", "--config", str(ROOT / "configs/train/tiny.yaml"), f"data.shards={shards}",
           f"run.out_dir={out}", "run.backend=deepspeed", "data.packing.seq_len=64", "data.batch_size=2",
           f"run.deepspeed_config={ROOT / 'configs/deepspeed/zero3.json'}", "run.max_steps=8", "run.save_every=3",
           "run.val_every=0", "run.tensorboard=false", "stability.inject_spike_at=5", "stability.min_history=3"]
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        left = shm_buffers(port)
        for f in stale + left:
            f.unlink(missing_ok=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not left, left  # each rank unlinked its file once all had mapped it
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    (ev,) = [x for x in recs if x.get("event") == "rollback"]
    assert ev["to_step"] == 3 and ev["lr_scale"] == 0.5
    after = [x for x in recs[recs.index(ev) + 1:] if "loss" in x]
    assert [x["step"] for x in after] == [4, 5, 6, 7, 8] and all(x["loss"] < 8 for x in after)


def test_kill_and_save_switch_files(shards, tmp_path):
    kill, save = tmp_path / "KILL", tmp_path / "SAVE"
    out = tmp_path / "sw"
    save.touch()
    kill.touch()
    last = _run(_cfg(shards, out, "run.max_steps=9", "run.save_every=100", f"run.kill_switch={kill}",
                     f"run.save_switch={save}"))
    assert last["step"] == 1 and not save.exists()
    assert (out / "checkpoints" / "latest").read_text() == "step_00000001"
    kill.unlink()
    last = _run(_cfg(shards, out, "run.max_steps=3", "run.save_every=100", f"run.kill_switch={kill}"))
    assert last["step"] == 3


def test_mixture_of_webdocs_and_pairs_trains_with_per_dataset_loss(shards, tmp_path):
    from tests.train.shards import write_pairs

    write_pairs(tmp_path / "pairs", 12)
    out = tmp_path / "mix"
    cfg = load_config(ROOT / "configs/train/mixture-example.yaml", [
        f"data.datasets=[{{name: obelics, shards: '{shards}', kind: webdoc, weight: 0.5}}, "
        f"{{name: laion, shards: '{tmp_path / 'pairs'}', kind: pairs, weight: 0.5}}]",
        f"run.out_dir={out}", "run.max_steps=8", "run.save_every=100", "run.val_every=0", "run.tensorboard=false",
        "data.packing.seq_len=64", "run.cpu_threads=1"])
    _run(cfg)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    seen = {r["dataset"] for r in recs}
    assert seen == {"obelics", "laion"}
    assert all(list(r["loss_per_dataset"]) == [r["dataset"]] for r in recs)
    share = recs[-1]["token_share"]  # realised shares of trained tokens, logged every step
    assert set(share) == {"obelics", "laion"} and sum(share.values()) == pytest.approx(1.0)
    assert all(0.2 < v < 0.8 for v in share.values()), share


def test_per_source_packing_overrides(shards):
    cfg = load_config(ROOT / "configs/train/mixture-example.yaml")
    laion = next(d for d in cfg.data.datasets if d.name == "laion")
    assert laion.packing_config(cfg.data.packing).max_images == 16
    assert laion.packing_config(cfg.data.packing).seq_len == cfg.data.packing.seq_len
    for bad in ("{seq_len: 64}", "{max_imgs: 4}"):
        with pytest.raises(ConfigError):
            load_config(ROOT / "configs/train/mixture-example.yaml", [
                f"data.datasets=[{{name: a, shards: x, kind: pairs, weight: 1, packing: {bad}}}]"])


def test_prefetch_changes_nothing_but_speed(shards, tmp_path):
    a, b = tmp_path / "inline", tmp_path / "prefetch"
    _run(_cfg(shards, a, "run.max_steps=5", "run.save_every=100", "data.prefetch=0"))
    _run(_cfg(shards, b, "run.max_steps=5", "run.save_every=100", "data.prefetch=3"))
    assert _losses(a) == _losses(b)


def test_the_loop_has_no_backend_branches_and_the_model_no_parallelism():
    """The trainer calls its backend object; only model/zero3.py and train/backends/ know DeepSpeed."""
    loop = (ROOT / "train/trainer.py").read_text()
    for word in ("deepspeed", "engine", "DistributedDataParallel", "torch.distributed", "backend.name =="):
        assert word not in loop, word
    for name in ("build.py", "loss.py", "presets.py", "flops.py", "__init__.py"):
        src = (ROOT / "model" / name).read_text()
        for word in ("deepspeed import", "import deepspeed", "torch.distributed", "ds_id", "ds_numel", "zero.Init",
                     "GatheredParameters", "from model.zero3", "import zero3"):
            assert word not in src, (name, word)


def test_mfu_on_cpu_only_with_an_explicit_peak_and_unknown_gpu_refused(shards, tmp_path, monkeypatch):
    out = tmp_path / "nopeak"
    last = _run(_cfg(shards, out, "run.max_steps=1", "run.save_every=10"))
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["mfu_definition"]["peak_tflops"] is None and "peak bf16 dense" in start["mfu_definition"]["definition"]
    assert "mfu" not in last and "mfu_trained" not in last and last["trained_tflops_per_device"] > 0
    last = _run(_cfg(shards, tmp_path / "peak", "run.max_steps=1", "run.save_every=10", "run.peak_tflops=0.001"))
    assert 0 < last["mfu_trained"] and 0 < last["mfu"]
    # a GPU whose peak is unknown, with run.peak_tflops unset: refused; a user error exits 2 in one line
    from train.__main__ import main
    from train.trainer import mfu_peak

    assert mfu_peak("cuda", "NVIDIA H100 80GB HBM3", 0.0) == 989.4 and mfu_peak("cuda", "Imaginary 9000", 500) == 500
    assert mfu_peak("cpu", "cpu", 0.0) is None
    with pytest.raises(ConfigError, match="set run.peak_tflops"):
        mfu_peak("cuda", "Imaginary GPU 9000", 0.0)
    assert main(["--config", str(ROOT / "configs/train/tiny.yaml"), "data.shards=x", "optim.learning_rate=1"]) == 2
