"""Fault drills through ``stability.inject`` (CPU, tiny preset): each run recovers with no person and finishes.

Every test asserts the step the run returned to, the data it skipped (micro-batches read since that
checkpoint and never trained on) and that the run ends at ``max_steps`` with finite losses.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from train.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def _drill(shards, out, inject: str, *extra, max_steps=12):
    from train.trainer import Trainer

    cfg = load_config(ROOT / "configs/train/tiny.yaml", [
        f"data.shards={shards}", f"run.out_dir={out}", "data.packing.seq_len=64", "data.batch_size=2",
        "data.packing.max_images=2", "data.packing.shuffle_rows=4", "data.val_permille=0", "run.val_every=0",
        "run.tensorboard=false", "optim.warmup_steps=2", "run.stats_every=0", "stability.min_history=3",
        f"run.max_steps={max_steps}", "run.save_every=4", f"stability.inject={inject}", *extra])
    last = Trainer(cfg).train()
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if "loss" in r and "event" not in r]
    assert last["step"] == max_steps and math.isfinite(last["loss"]) and last["loss"] < 10
    assert all(math.isfinite(r["loss"]) for r in steps)
    assert (out / "checkpoints" / "latest").read_text() == f"step_{max_steps:08d}"
    events = [r for r in recs if r.get("event") in ("rollback", "skip_step")]
    return last, events, steps


def test_lr_spike_on_a_checkpoint_step_never_becomes_the_rollback_target(shards, tmp_path):
    """Step 8 (a checkpoint step) runs with 1000× the LR: the weights are wrecked, the loss of step 9 explodes.
    step_8 was only pending, so it is deleted and the run returns to step 4 in one rollback."""
    last, events, steps = _drill(shards, tmp_path / "r", "[{step: 8, kind: lr_spike, factor: 1000}]")
    (ev,) = events
    assert ev["event"] == "rollback" and ev["step"] == 9 and ev["to_step"] == 4
    assert ev["discarded"] == ["step_00000008"]
    assert ev["skipped_batches"] == 5 and ev["data_position"] == 9  # batches 5..9 never trained on again
    assert last["lr_scale"] == 0.5
    first5 = [r["loss"] for r in steps if r["step"] == 5]
    assert len(first5) == 2 and first5[0] != first5[1]  # step 5 replayed on new data


def test_nan_gradient_with_finite_loss_skips_the_update(shards, tmp_path):
    last, events, steps = _drill(shards, tmp_path / "g", "[{step: 6, kind: nan_grad}]")
    (ev,) = events
    assert ev["event"] == "skip_step" and ev["step"] == 6 and ev["to_step"] == 5 and not math.isfinite(ev["grad_norm"])
    assert ev["skipped_batches"] == 1 and ev["data_position"] == 6
    assert last["skipped_steps"] == 1 and last["lr_scale"] == 1.0
    assert [r["step"] for r in steps] == list(range(1, 13))  # no step logged twice, none missing


def test_nan_pixels_roll_back(shards, tmp_path):
    last, events, _ = _drill(shards, tmp_path / "p", "[{step: 6, kind: nan_batch}]")
    (ev,) = events
    assert ev["event"] == "rollback" and ev["step"] == 6 and ev["reason"] == "nan" and ev["to_step"] == 4
    assert ev["discarded"] == [] and ev["skipped_batches"] == 2 and ev["data_position"] == 6
    assert last["lr_scale"] == 0.5


def test_two_spikes_close_together(shards, tmp_path):
    last, events, _ = _drill(shards, tmp_path / "t", "[{step: 6, kind: loss_spike}, {step: 7, kind: loss_spike}]")
    assert [(e["step"], e["to_step"], e["skipped_batches"], e["lr_scale"]) for e in events] == [
        (6, 4, 2, 0.5), (7, 4, 5, 0.25)]  # the second skips the 3 batches of steps 5-7 after the first
    assert last["lr_scale"] == 0.25


def test_spike_after_a_rollback(shards, tmp_path):
    last, events, _ = _drill(shards, tmp_path / "a", "[{step: 6, kind: loss_spike}, {step: 10, kind: loss_spike}]")
    assert [(e["step"], e["to_step"], e["skipped_batches"], e["discarded"]) for e in events] == [
        (6, 4, 2, []), (10, 8, 2, [])]
    assert last["lr_scale"] == 0.25


def test_first_step_after_a_rollback_failing_again_goes_one_checkpoint_further_back(shards, tmp_path):
    """Drills fire in list order: the second hits step 5, the first step after returning to step 4."""
    last, events, _ = _drill(shards, tmp_path / "e", "[{step: 6, kind: loss_spike}, {step: 5, kind: loss_spike}]")
    assert [(e["step"], e["to_step"], e["discarded"]) for e in events] == [(6, 4, []), (5, 0, ["step_00000004"])]
    assert events[1]["skipped_batches"] == 7  # everything read since step 0: batches 1-7


def test_lr_scale_recovers_after_a_stable_stretch(shards, tmp_path):
    last, events, _ = _drill(shards, tmp_path / "l", "[{step: 6, kind: loss_spike}]", "stability.lr_recover_steps=3")
    assert [(e["step"], e["to_step"]) for e in events] == [(6, 4)]
    recs = [json.loads(x) for x in (tmp_path / "l" / "metrics.jsonl").read_text().splitlines()]
    rec = [r for r in recs if r.get("event") == "lr_recover"]
    assert [r["step"] for r in rec] == [7] and rec[0]["lr_scale"] == 1.0 and last["lr_scale"] == 1.0


def test_rollback_limit_is_per_window(shards, tmp_path):
    from train.trainer import RollbackLimit

    drills = "[{step: 6, kind: loss_spike}, {step: 6, kind: loss_spike}, {step: 11, kind: loss_spike}]"
    with pytest.raises(RollbackLimit, match="2 rollbacks within the last 1000 steps"):
        _drill(shards, tmp_path / "w", drills, "stability.max_rollbacks=2")
    last, events, _ = _drill(shards, tmp_path / "w2", drills, "stability.max_rollbacks=2",
                             "stability.rollback_window=3")  # the two at step 6 are out of the window at 11
    assert [(e["step"], e["to_step"]) for e in events] == [(6, 4), (6, 4), (11, 8)] and last["lr_scale"] == 0.125


def test_bad_drill_is_a_config_error():
    with pytest.raises(ConfigError):
        load_config(ROOT / "configs/train/tiny.yaml", ["data.shards=x", "stability.inject=[{step: 3, kind: meteor}]"])
