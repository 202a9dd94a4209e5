"""Tiny benchmark folders in the published VQAv2 / COCO-caption file formats, with skimage photos."""

from __future__ import annotations

import json
from pathlib import Path

from tests.train.shards import ANSWERS, photo_bytes

QUESTIONS = ("What is this?", "What is shown?", "Name the object.")


def write_vqav2(folder: Path, n: int = 12) -> Path:
    """``v2_OpenEnded_mscoco_val2014_questions.json``, ``v2_mscoco_val2014_annotations.json``, ``val2014/``."""
    (folder / "val2014").mkdir(parents=True, exist_ok=True)
    qs, anns = [], []
    for i in range(n):
        image_id = 1000 + i % 6
        (folder / "val2014" / f"COCO_val2014_{image_id:012d}.jpg").write_bytes(photo_bytes(i % 6))
        answer = ANSWERS[i % 6].rstrip(".").lower()
        answers = [answer] * 7 + ["something"] * 3
        qs.append({"image_id": image_id, "question": QUESTIONS[i % 3], "question_id": 5000 + i})
        anns.append({"question_id": 5000 + i, "image_id": image_id, "question_type": "what is",
                     "answer_type": "other", "multiple_choice_answer": answer,
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                 for j, a in enumerate(answers)]})
    (folder / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(
        {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "questions": qs}))
    (folder / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(
        {"info": {}, "data_type": "mscoco", "data_subtype": "val2014", "annotations": anns}))
    return folder


def write_coco_captions(folder: Path, n: int = 12, karpathy: bool = False) -> Path:
    """``annotations/captions_val2014.json`` + ``val2014/`` or Karpathy's ``dataset_coco.json``."""
    (folder / "val2014").mkdir(parents=True, exist_ok=True)
    images, anns, kimages = [], [], []
    for i in range(n):
        name = f"COCO_val2014_{2000 + i:012d}.jpg"
        (folder / "val2014" / name).write_bytes(photo_bytes(i % 6))
        caps = [f"{ANSWERS[i % 6]}", f"a photo of {ANSWERS[i % 6].lower()}"]
        images.append({"id": 2000 + i, "file_name": name, "height": 64, "width": 64})
        anns += [{"image_id": 2000 + i, "id": 10 * i + j, "caption": c} for j, c in enumerate(caps)]
        kimages.append({"filepath": "val2014", "filename": name, "cocoid": 2000 + i,
                        "split": "test" if i < n // 2 else "train",
                        "sentences": [{"raw": c, "tokens": c.lower().split()} for c in caps]})
    if karpathy:
        (folder / "dataset_coco.json").write_text(json.dumps({"images": kimages, "dataset": "coco"}))
    else:
        (folder / "annotations").mkdir(exist_ok=True)
        (folder / "annotations" / "captions_val2014.json").write_text(json.dumps({"images": images, "annotations": anns}))
    return folder
