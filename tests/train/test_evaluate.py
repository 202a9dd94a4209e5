"""Few-shot evaluation: benchmark loaders for the published formats, the prompt layout, the CLI and the periodic
evaluation during training."""

from __future__ import annotations

import json
import random

import pytest

from tests.train.benchmarks import write_coco_captions, write_vqav2
from tests.train.test_train import _cfg


def test_loaders_read_the_published_formats(tmp_path):
    from train.evaluate import load_coco_captions, load_vqav2

    v = load_vqav2(write_vqav2(tmp_path / "vqa", 12))
    assert len(v) == 12 and v[0].id == 5000 and v[0].question == "What is this?" and len(v[0].answers) == 10
    assert v[0].image.endswith("COCO_val2014_000000001000.jpg") and v[0].target == "a cat"
    c = load_coco_captions(write_coco_captions(tmp_path / "coco", 6))
    assert [e.id for e in c] == list(range(2000, 2006)) and c[1].captions == ["An astronaut.", "a photo of an astronaut."]
    k = load_coco_captions(write_coco_captions(tmp_path / "karpathy", 6, karpathy=True), "test")
    assert [e.id for e in k] == [2000, 2001, 2002]
    assert len(load_coco_captions(tmp_path / "karpathy", "train+restval")) == 3


def test_few_shot_prompt_layout(tmp_path):
    from train.evaluate import draw_shots, few_shot_prompt, load_vqav2

    ex = load_vqav2(write_vqav2(tmp_path / "vqa", 12))
    query, support = ex[0], ex[1:]
    primes = draw_shots(support, 4, random.Random(0))
    items = few_shot_prompt("vqav2", query, primes, 4)
    # image, "Question: … Answer: …\n" per priming example, then the query's image and its open question
    assert [k for k, _ in items] == ["image", "text"] * 5
    texts = [v for k, v in items if k == "text"]
    assert texts[:4] == [f"Question: {p.question} Answer: {p.target}\n" for p in primes]
    assert texts[4] == f"Question: {query.question} Answer:"
    assert len({p.id for p in primes}) == 4 and query.id not in {p.id for p in primes}
    # 0-shot: two text-only priming examples (Flamingo's trick), merged into one text before the query image
    zero = few_shot_prompt("vqav2", query, draw_shots(support, 0, random.Random(0)), 0)
    assert [k for k, _ in zero] == ["text", "image", "text"] and zero[0][1].count("Answer:") == 2
    cap = few_shot_prompt("coco", query, primes[:1], 1)
    assert [v for k, v in cap if k == "text"] == [f"Caption: {primes[0].target}\n", "Caption:"]
    with pytest.raises(Exception, match="support"):
        draw_shots(support[:3], 4, random.Random(0))


def test_evaluate_cli_writes_json_scores_for_each_shot_count(shards, tmp_path, capsys):
    from train.evaluate import main
    from train.export import export_checkpoint
    from train.trainer import Trainer

    Trainer(_cfg(shards, tmp_path / "run", "run.max_steps=2")).train()
    model = export_checkpoint(tmp_path / "run", tmp_path / "export")
    vqa = write_vqav2(tmp_path / "vqa", 12)
    out = tmp_path / "res.json"
    assert main([str(model), "--task", "vqav2", "--data", str(vqa), "--shots", "0", "4", "--limit", "3",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["metric"] == "vqa_accuracy" and res["n"] == 3 and set(res["scores"]) == {"0", "4"}
    assert all(0.0 <= s <= 100.0 for s in res["scores"].values()) and len(res["predictions"]["4"]) == 3
    again = tmp_path / "again.json"
    assert main([str(model), "--task", "vqav2", "--data", str(vqa), "--shots", "0", "4", "--limit", "3",
                 "--out", str(again)]) == 0
    assert json.loads(again.read_text())["predictions"] == res["predictions"]  # seeded draws, greedy decoding
    coco = write_coco_captions(tmp_path / "coco", 8)
    assert main([str(model), "--task", "coco", "--data", str(coco), "--shots", "0", "--limit", "2"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["task"] == "coco" and line["n"] == 2 and line["scores"]["0"] >= 0.0
    # user errors before any work: one line, exit code 2
    assert main([str(model), "--task", "vqav2", "--data", str(vqa), "--shots", "32", "--limit", "3"]) == 2
    assert main([str(model), "--task", "coco", "--data", str(vqa)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("python -m train.evaluate: ") for e in err)


def test_periodic_evaluation_is_logged_during_training(shards, tmp_path):
    from train.trainer import Trainer

    vqa = write_vqav2(tmp_path / "vqa", 8)
    cfg = _cfg(shards, tmp_path / "run", "run.max_steps=4", "eval.every=2",
               f"eval.tasks=[{{task: vqav2, data: {vqa}, shots: [0, 4], limit: 2}}]")
    Trainer(cfg).train()
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in recs if "eval_vqav2_4shot" in r]
    assert [r["step"] for r in evals] == [2, 4] and all("eval_vqav2_0shot" in r for r in evals)
    saved = json.loads((tmp_path / "run" / "eval" / "step_00000004.json").read_text())
    assert saved["step"] == 4 and saved["results"][0]["n"] == 2
