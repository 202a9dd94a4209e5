"""Instruction tuning: dialogue layout and loss mask, the <end_of_utterance> row, readers, generation stops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.train.launch import free_port
from tests.train.shards import photo_bytes, write_dialogs
from tests.train.test_train import _cfg
from train.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tok():
    from train.tokenizer import load_tokenizer

    return load_tokenizer(None, 1000, end_of_utterance=True)


def test_end_of_utterance_is_the_third_extra_token_and_refused_without_the_flag(tok):
    from train.tokenizer import END_OF_UTTERANCE, base_vocab_size, check_ids, load_tokenizer

    assert tok.convert_tokens_to_ids(END_OF_UTTERANCE) == base_vocab_size(tok) + 2 == 1002 and len(tok) == 1003
    with pytest.raises(ValueError, match="end_of_utterance"):
        check_ids(tok)
    assert len(load_tokenizer(None, 1000)) == 1002


def test_dialogue_layout_and_loss_mask_cover_the_assistant_turns_only(tok):
    from train.collate import ImageTransform, collate_rows
    from train.instruct import dialog_text, dialog_unit

    img = photo_bytes(0)
    turns = [("user", [("text", "What is this?"), ("image", img)]), ("assistant", [("text", "A cat.")]),
             ("user", [("text", "And its colour?")]), ("assistant", [("text", "Grey.")])]
    text, images, spans = dialog_text(turns, tok.bos_token)
    assert text == ("<s>User: What is this?<fake_token_around_image><image><fake_token_around_image>"
                    "<end_of_utterance>\nAssistant: A cat.<end_of_utterance>\nUser: And its colour?"
                    "<end_of_utterance>\nAssistant: Grey.<end_of_utterance>")
    assert images == [img] and [text[a:b] for a, b in spans] == [" A cat.<end_of_utterance>",
                                                                  " Grey.<end_of_utterance>"]
    unit = dialog_unit(turns, tok, 128, 3)
    trained = [t for t, m in zip(unit.tokens, unit.mask) if m]
    assert tok.decode(trained) == " A cat.<end_of_utterance> Grey.<end_of_utterance>"
    # the labels of the collated batch: -100 everywhere but on those tokens (pads, user turns, images, labels)
    batch = collate_rows([unit], tok, 128, ImageTransform(30))
    lab = batch["labels"][0]
    assert lab[lab != -100].tolist() == trained
    # too long: whole exchanges are dropped from the end; nothing left → skipped and counted
    from collections import Counter

    stats = Counter()
    short = dialog_unit(turns, tok, len(unit.tokens) - 1, 3, stats=stats)
    assert tok.decode([t for t, m in zip(short.tokens, short.mask) if m]) == " A cat.<end_of_utterance>"
    assert dialog_unit(turns, tok, 5, 3, stats=stats) is None and stats["dialog_skipped"] == 1


def test_packing_keeps_each_units_mask(tok):
    from train.collate import Unit
    from train.stream import GreedyPacker

    p = GreedyPacker(64, 5, 2)
    p.add(Unit([5, 6, 7], [], 0))  # a web document: every token trained
    p.add(Unit([8, 9], [], 0, [0], [0, 1]))
    assert p.rows[0].tokens == [5, 6, 7, 8, 9] and p.rows[0].mask == [1, 1, 1, 0, 1] and p.rows[0].starts == [0, 3]


def test_dialogue_files_stream_with_their_masks(tmp_path, tok):
    from train.stream import PackedStream, PackingConfig

    write_dialogs(tmp_path / "llava" / "d.json", 4, fmt="llava")
    s = PackedStream(str(tmp_path / "llava" / "d.json"), "dialog", tok, PackingConfig(seq_len=128, max_images=3,
                     shuffle_rows=1, pack_rows=1), fmt="llava", images=str(tmp_path / "llava" / "images"),
                     infinite=False)
    rows = [r for r in iter(s.next_row, None)]
    assert sum(len(r.starts) for r in rows) == 4 and all(r.mask is not None and len(r.images) >= 1 for r in rows)
    answers = {tok.decode([t for t, m in zip(r.tokens, r.mask) if m]) for r in rows}
    assert all(a.endswith("<end_of_utterance>") for a in answers)


def test_public_format_readers(tmp_path, tok):
    import base64

    from train.instruct import record_turns

    write_dialogs(tmp_path / "llava" / "llava.json", 2, fmt="llava")
    rec = json.loads((tmp_path / "llava" / "llava.json").read_text())[1]
    turns = record_turns(rec, "llava", str(tmp_path / "llava" / "images"))
    assert turns == [("user", [("image", photo_bytes(1)), ("text", "\nWhat is this?")]),
                     ("assistant", [("text", "An astronaut.")])]
    b64 = base64.b64encode(photo_bytes(2)).decode()
    m3it = {"instruction": "Describe.", "inputs": "Be brief.", "outputs": "Coffee.", "image_base64_str": [b64]}
    assert record_turns(m3it, "m3it") == [("user", [("text", "Describe."), ("image", photo_bytes(2)),
                                                      ("text", "Be brief.")]), ("assistant", [("text", "Coffee.")])]
    assert record_turns({"data": ["hi", "hello", "bye"]}, "ultrachat") == [
        ("user", [("text", "hi")]), ("assistant", [("text", "hello")]), ("user", [("text", "bye")])]
    assert record_turns({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "q"},
                                      {"role": "assistant", "content": "a"}]}, "ultrachat") == [
        ("user", [("text", "q")]), ("assistant", [("text", "a")])]
    (tmp_path / "vg").mkdir()
    (tmp_path / "vg" / "7.jpg").write_bytes(photo_bytes(3))
    assert record_turns({"image_id": 7, "question": "Q?", "answer": "A."}, "lrv", str(tmp_path / "vg"))[0][1][0] == (
        "image", photo_bytes(3))
    (tmp_path / "mimic.json").write_text(json.dumps({"a": b64, "b": b64}))
    t = record_turns({"instruction": "Differences?", "answer": "None.", "image_ids": ["a", "b"]}, "mimicit",
                     str(tmp_path / "mimic.json"))
    assert [k for k, _ in t[0][1]] == ["image", "image", "text"]
    with pytest.raises(ConfigError, match="format"):
        load_config(ROOT / "configs/train/tiny-instruct.yaml", ["data.datasets=[{kind: dialog, format: sharegpt}]"])
    with pytest.raises(ConfigError, match="end_of_utterance"):
        load_config(ROOT / "configs/train/tiny-instruct.yaml", ["data.end_of_utterance=false"])


def test_instruct_configs_carry_the_cards_hyperparameters_and_mixture():
    shares = {"m3it": 7.7, "lrv": 1.7, "llava-instruct": 5.9, "llavar": 6.3, "svit": 11.4, "spot-the-diff+gsd": 2.1,
              "ultrachat": 29.1, "pairs": 5.1, "obelics": 30.7}
    for size, lr, final in (("9b", 1e-5, 1.2e-6), ("80b", 3e-6, 3.6e-7)):
        c = load_config(ROOT / f"configs/train/idefics-{size}-instruct.yaml")
        assert (c.optim.lr, c.optim.final_lr, c.optim.warmup_steps, c.loss.z_loss) == (lr, final, 1000, 0.0)
        assert c.data.packing.seq_len == 2048 and c.data.end_of_utterance and c.optim.weight_decay == 0.1
        assert not (c.model.freeze_text or c.model.freeze_vision or c.model.freeze_lm_head)  # everything trains
        assert c.model.init_from and {d.name: d.weight for d in c.data.datasets} == shares


def _base_export(shards, tmp_path):
    from train.export import export_checkpoint
    from train.trainer import Trainer

    Trainer(_cfg(shards, tmp_path / "base", "run.max_steps=2")).train()
    return export_checkpoint(tmp_path / "base", tmp_path / "base-export")


def _instruct(tmp_path, init, *extra):
    dialogs = write_dialogs(tmp_path / "dialogs.jsonl", 12)
    return load_config(ROOT / "configs/train/tiny-instruct.yaml", [
        f"model.init_from={init}", f"run.out_dir={tmp_path / 'inst'}",
        f"data.datasets=[{{name: dialogs, kind: dialog, format: dialog, shards: {dialogs}}}]", *extra])


def test_new_token_row_trains_while_frozen_rows_stay_frozen(shards, tmp_path):
    from safetensors.torch import load_file

    from train.trainer import Trainer

    base = _base_export(shards, tmp_path)
    src = load_file(str(base / "model.safetensors"))
    # started from the training run itself (not its export): the trainer exports it to out_dir/init_from first
    cfg = _instruct(tmp_path, tmp_path / "base", "model.freeze_text=true", "model.freeze_lm_head=true",
                    "run.max_steps=4")
    trainer = Trainer(cfg)
    assert cfg.model.init_from == str(tmp_path / "inst" / "init_from")
    m = trainer.model
    emb, head = m.model.embed_tokens, m.lm_head
    assert emb.additional_embedding.weight.shape == (3, 32) and head.additional_fc.weight.shape == (3, 32)
    # the base model's weights came in, the two image-token rows included; the new row is drawn fresh
    assert torch.equal(emb.weight, src["model.embed_tokens.weight"])
    assert torch.equal(emb.additional_embedding.weight[:2], src["model.embed_tokens.additional_embedding.weight"])
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    trainer.train()
    trainer.close()
    after = m.state_dict()
    for name in ("model.embed_tokens.weight", "lm_head.weight", "model.layers.0.mlp.down_proj.weight",
                 "model.vision_model.embeddings.patch_embedding.weight"):
        assert torch.equal(after[name], before[name]), name  # frozen rows / layers untouched
    for name in ("model.embed_tokens.additional_embedding.weight", "lm_head.additional_fc.weight"):
        assert not torch.equal(after[name][2], before[name][2]), name  # the <end_of_utterance> row trained


def test_instruct_generation_is_deterministic_and_stops_at_end_of_utterance(shards, tmp_path):
    from train.export import export_checkpoint
    from train.generate import generate, load
    from train.trainer import Trainer

    base = _base_export(shards, tmp_path)
    trainer = Trainer(_instruct(tmp_path, base, "run.max_steps=30", "optim.lr=1e-2"))
    last = trainer.train()
    trainer.close()
    assert last["loss"] < 1.5
    out = export_checkpoint(tmp_path / "inst", tmp_path / "inst-export")
    loaded = load(out)
    eou = loaded.tok.convert_tokens_to_ids("<end_of_utterance>")
    prompt = [("image", photo_bytes(0)), ("text", "What is this?")]
    text, ids = generate(loaded, prompt, max_new_tokens=16, instruct=True)
    assert ids[-1] == eou and eou not in ids[:-1] and len(ids) < 16  # stopped at the end of the answer
    assert text.strip() in {"A cat.", "An astronaut.", "A cup of coffee.", "A rocket.", "Cells."}
    assert generate(loaded, prompt, max_new_tokens=16, instruct=True) == (text, ids)  # greedy: deterministic
    # sampling: seeded, so repeatable too, and it also ends at <end_of_utterance> or the token budget
    s1 = generate(loaded, prompt, max_new_tokens=16, instruct=True, sample=True, seed=3)
    assert s1 == generate(loaded, prompt, max_new_tokens=16, instruct=True, sample=True, seed=3)


@pytest.mark.slow
def test_instruct_under_zero3_starts_from_the_export_with_a_new_row(shards, tmp_path):
    """The 9B/80B instruct recipe's path: two ZeRO-3 ranks build the partitioned model from an exported folder
    (rank 0 reads it, every module written gathered), the <end_of_utterance> row added, and train."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    pytest.importorskip("deepspeed")
    base = _base_export(shards, tmp_path)
    src = load_file(str(base / "model.safetensors"))
    dialogs = write_dialogs(tmp_path / "dialogs.jsonl", 12)
    out = tmp_path / "z3"
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port", str(free_port()),
           "--module", "train", "--config", str(ROOT / "configs/train/tiny-instruct.yaml"), f"model.init_from={base}",
           f"data.datasets=[{{name: dialogs, kind: dialog, format: dialog, shards: {dialogs}}}]",
           f"run.out_dir={out}", "run.backend=deepspeed", f"run.deepspeed_config={ROOT / 'configs/deepspeed/zero3.json'}",
           "run.max_steps=2", "data.batch_size=2"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    start = next(x for x in recs if x.get("event") == "start")
    assert start["fingerprint"]["model.embed_tokens.weight"] == pytest.approx(
        float(src["model.embed_tokens.weight"].double().sum()))
    assert [x["step"] for x in recs if "loss" in x and "event" not in x] == [1, 2]
    from train.export import export_checkpoint

    sd = load_file(str(export_checkpoint(out, tmp_path / "z3-export") / "model.safetensors"))
    assert sd["model.embed_tokens.additional_embedding.weight"].shape == (3, 32)
