"""``python -m train.evaluate MODEL --task vqav2|coco --data DIR``: few-shot evaluation as the IDEFICS card runs it.

Protocol (model card, docs/training-reference.md §7): in-context few-shot, 0/4/8/16/32 shots, the priming
examples drawn at random from a support set for each query (seeded, no ensembling); "0-shot" is primed with
two *text-only* examples of the task (Flamingo's trick); greedy decoding, the answer cut at the first newline.
VQA is scored with VQAv2's accuracy, captioning with CIDEr-D (train/metrics.py). The support set is
``--support DIR`` or, when absent, the examples of ``--data`` that are not queries (the first ``--limit`` are).

Prompt layout (one example per line; images as in training)::

    VQA:      <image>Question: {question} Answer: {answer}\\n ... <image>Question: {question} Answer:
    caption:  <image>Caption: {caption}\\n ... <image>Caption:

Benchmark folders hold the published files: VQAv2 ``*questions*.json`` (``{questions: [{question_id, image_id,
question}]}``) + ``*annotations*.json`` (``{annotations: [{question_id, answers: [{answer}],
multiple_choice_answer}]}``); COCO captions ``captions_*.json`` (``{images: [{id, file_name}], annotations:
[{image_id, caption}]}``) or Karpathy's ``dataset_coco.json`` (``{images: [{filename, filepath, split,
sentences: [{raw}]}]}``, the ``test`` split as queries, ``train``/``restval`` as support). Images are found
anywhere under the folder by file name (``COCO_val2014_000000000042.jpg``, ``000000000042.jpg`` or ``42.jpg``).
Results: JSON (``--out``), one score per shot count, with the predictions.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import random
import sys
from pathlib import Path

from obelics.config import ConfigError
from train.config import EVAL_TASKS as TASKS

SHOTS = (0, 4, 8, 16, 32)
ZERO_SHOT_TEXT_EXAMPLES = 2


@dataclasses.dataclass
class Example:
    """One benchmark item: an image file, and a question with its answers (VQA) or reference captions."""

    id: object
    image: str
    question: str | None = None
    answers: list[str] = dataclasses.field(default_factory=list)
    captions: list[str] = dataclasses.field(default_factory=list)

    @property
    def target(self) -> str:
        """The text a priming example shows: the most frequent answer, or the first caption."""
        if self.question is not None:
            return collections.Counter(self.answers).most_common(1)[0][0] if self.answers else ""
        return self.captions[0] if self.captions else ""


# ------------------------------------------------------------------------------------------- loaders
def _image_index(folder: Path) -> dict[str, str]:
    """File name → path for every image under ``folder``."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            if f.lower().endswith((".jpg", ".jpeg", ".png")):
                out.setdefault(f, os.path.join(dirpath, f))
    return out


def _find_image(index: dict[str, str], image_id: int, where: str) -> str:
    for name in (f"{image_id:012d}.jpg", f"{image_id}.jpg", f"{image_id}.png"):
        if name in index:
            return index[name]
    suffix = f"_{image_id:012d}.jpg"
    for name, path in index.items():
        if name.endswith(suffix):
            return path
    raise ConfigError(f"{where}: no image file for image_id {image_id}")


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.rglob(pattern))
    if len(found) != 1:
        raise ConfigError(f"{folder}: expected one {pattern} file, found {len(found)}")
    return found[0]


def load_vqav2(folder: str | Path) -> list[Example]:
    """VQAv2 (or OK-VQA, same files) questions with their ten answers, in the questions file's order."""
    folder = Path(folder)
    questions = json.loads(_one(folder, "*questions*.json").read_text())["questions"]
    annotations = {a["question_id"]: a for a in json.loads(_one(folder, "*annotations*.json").read_text())["annotations"]}
    index = _image_index(folder)
    out = []
    for q in questions:
        ann = annotations.get(q["question_id"])
        if ann is None:
            raise ConfigError(f"{folder}: question {q['question_id']} has no annotation (test split?)")
        out.append(Example(q["question_id"], _find_image(index, q["image_id"], str(folder)), q["question"],
                           [a["answer"] for a in ann["answers"]]))
    return out


def load_coco_captions(folder: str | Path, split: str | None = None) -> list[Example]:
    """COCO captions (``captions_*.json``) or Karpathy's ``dataset_coco.json`` (``split``: test, val, train,
    restval, or several joined by "+")."""
    folder = Path(folder)
    index = _image_index(folder)
    karpathy = sorted(folder.rglob("dataset_coco.json"))
    if karpathy:
        data = json.loads(karpathy[0].read_text())["images"]
        keep = set(split.split("+")) if split else None
        out = []
        for im in data:
            if keep and im.get("split") not in keep:
                continue
            path = index.get(im["filename"])
            if path is None:
                raise ConfigError(f"{folder}: image {im['filename']} not found")
            out.append(Example(im.get("cocoid", im["filename"]), path, captions=[s["raw"] for s in im["sentences"]]))
        return out
    data = json.loads(_one(folder, "captions_*.json").read_text())
    caps = collections.defaultdict(list)
    for a in data["annotations"]:
        caps[a["image_id"]].append(a["caption"])
    out = []
    for im in data["images"]:
        path = index.get(im["file_name"])
        if path is None:
            raise ConfigError(f"{folder}: image {im['file_name']} not found")
        out.append(Example(im["id"], path, captions=caps[im["id"]]))
    return out


def load_task(task: str, folder: str | Path, split: str | None = None) -> list[Example]:
    if task == "vqav2":
        return load_vqav2(folder)
    if task == "coco":
        return load_coco_captions(folder, split)
    raise ConfigError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


# ------------------------------------------------------------------------------------------- prompts
def example_items(task: str, ex: Example, with_image: bool = True, answer: bool = True) -> list[tuple[str, object]]:
    """One example's prompt items (the query's when ``answer`` is False)."""
    image = [("image", Path(ex.image).read_bytes())] if with_image else []
    if task == "vqav2":
        text = f"Question: {ex.question} Answer:" + (f" {ex.target}\n" if answer else "")
    else:
        text = "Caption:" + (f" {ex.target}\n" if answer else "")
    return image + [("text", text)]


def draw_shots(support: list[Example], shots: int, rng: random.Random) -> list[Example]:
    """The priming examples of one query: ``shots`` drawn without replacement (two for 0-shot)."""
    k = shots if shots > 0 else ZERO_SHOT_TEXT_EXAMPLES
    if k > len(support):
        raise ConfigError(f"{shots}-shot needs {k} support examples, the support set has {len(support)}")
    return rng.sample(support, k)


def few_shot_prompt(task: str, query: Example, primes: list[Example], shots: int) -> list[tuple[str, object]]:
    """The interleaved prompt: the priming examples (text only for 0-shot), then the query."""
    items: list[tuple[str, object]] = []
    for ex in primes:
        items += example_items(task, ex, with_image=shots > 0)
    items += example_items(task, query, answer=False)
    # consecutive text items are one text (the layout would otherwise separate them)
    merged: list[tuple[str, object]] = []
    for kind, value in items:
        if kind == "text" and merged and merged[-1][0] == "text":
            merged[-1] = ("text", merged[-1][1] + value)
        else:
            merged.append((kind, value))
    return merged


def clean_answer(text: str) -> str:
    """The generated continuation up to its first newline, stripped."""
    return text.split("\n", 1)[0].strip()


# ------------------------------------------------------------------------------------------- running
def evaluate(loaded, task: str, queries: list[Example], support: list[Example], shots=SHOTS, seed: int = 0,
             max_new_tokens: int | None = None) -> dict:
    """{"task", "scores": {shots: score}, "n", "predictions": {shots: [...]}} for a loaded model
    (train.generate.Loaded)."""
    from train.generate import generate
    from train.metrics import cider_d, vqa_accuracy

    if not queries:
        raise ConfigError("no query examples")
    max_new = max_new_tokens or (10 if task == "vqav2" else 20)
    scores, preds = {}, {}
    for k in shots:
        out = []
        for q in queries:
            rng = random.Random(f"{seed}-{k}-{q.id}")
            prompt = few_shot_prompt(task, q, draw_shots([s for s in support if s.id != q.id], k, rng), k)
            text, _ = generate(loaded, prompt, max_new_tokens=max_new)
            out.append({"id": q.id, "prediction": clean_answer(text)})
        if task == "vqav2":
            accs = [vqa_accuracy(p["prediction"], q.answers) for p, q in zip(out, queries)]
            scores[k] = 100.0 * sum(accs) / len(accs)
        else:
            scores[k] = 100.0 * cider_d({p["id"]: p["prediction"] for p in out}, {q.id: q.captions for q in queries})[0]
        preds[k] = out
    return {"task": task, "metric": "vqa_accuracy" if task == "vqav2" else "cider_d", "n": len(queries),
            "scores": scores, "predictions": preds}


def split_queries(examples: list[Example], support: list[Example] | None, limit: int | None
                  ) -> tuple[list[Example], list[Example]]:
    """(queries, support): the first ``limit`` examples, and the given support set or the other examples."""
    n = len(examples) if limit is None else min(limit, len(examples))
    queries = examples[:n]
    return queries, (support if support is not None else examples[n:])


def write_json(path: str | Path, data: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="exported folder or training run / checkpoint")
    ap.add_argument("--task", required=True, choices=TASKS)
    ap.add_argument("--data", required=True, help="benchmark folder (published file formats)")
    ap.add_argument("--split", default=None, help="Karpathy split of the queries (coco), e.g. test")
    ap.add_argument("--support", default=None, help="folder of the support set (default: the non-query examples)")
    ap.add_argument("--support-split", default=None, help="Karpathy split of the support set, e.g. train+restval")
    ap.add_argument("--shots", type=int, nargs="+", default=list(SHOTS))
    ap.add_argument("--limit", type=int, default=None, help="queries: the first N examples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="results JSON (default: print)")
    args = ap.parse_args(argv)
    try:
        if any(s < 0 for s in args.shots):
            raise ConfigError("--shots must be >= 0")
        if not Path(args.model).exists():
            raise ConfigError(f"{args.model}: no such model folder or checkpoint")
        examples = load_task(args.task, args.data, args.split)
        support = load_task(args.task, args.support or args.data, args.support_split) \
            if (args.support or args.support_split) else None
        queries, support = split_queries(examples, support, args.limit)
        for k in args.shots:
            draw_shots(support, k, random.Random(0))  # enough support for every shot count, before any work
    except ConfigError as e:
        print(f"python -m train.evaluate: {e}", file=sys.stderr)
        return 2
    from train.generate import load

    result = evaluate(load(args.model), args.task, queries, support, args.shots, args.seed)
    result.update(model=str(args.model), data=str(args.data), seed=args.seed,
                  protocol="random priming examples per query from the support set; 0-shot: two text-only examples")
    if args.out:
        write_json(args.out, result)
    print(json.dumps({"task": args.task, "n": result["n"], "scores": result["scores"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
