"""Instruction tuning data: dialogues (``User:`` / ``Assistant:`` turns with images) → units whose loss is on
the assistant's words only.

Layout of one dialogue (the IDEFICS-instruct prompt format of the model card)::

    <s>User: {text}<fake><image><fake>{text}<end_of_utterance>\\nAssistant: {answer}<end_of_utterance>\\nUser: ...

The whole string is tokenized at once (as ``python -m train.generate --instruct`` tokenizes its prompt), and a
token is trained when its first character lies in an assistant answer or the ``<end_of_utterance>`` that closes
it; everything else (the user's turns, the role labels, images) is masked out of the loss.

Readers of the public formats of the IDEFICS-instruct mixture (model card; all local files, nothing is
downloaded), each yielding ``(key, turns)`` with ``turns = [(role, [("text", str) | ("image", bytes)])]``:

- ``llava``: LLaVA-Instruct-150K, LLaVAR and SVIT (a JSON list of ``{id, image, conversations: [{from: human|gpt,
  value}]}``, ``<image>`` marking the image's place, image files under the data set's ``images`` folder);
- ``m3it``: M3IT JSONL (``instruction``, ``inputs``, ``outputs``, ``image_base64_str`` list);
- ``lrv``: LRV-Instruction JSON (``{annotations: [{image_id, question, answer}]}``, ``images/{image_id}.jpg``);
- ``mimicit``: MIMIC-IT instructions JSON (``{data: {id: {instruction, answer, image_ids}}}``) with its images
  JSON (``{image_id: base64}``) given as the data set's ``images`` (Spot-the-Diff, General Scene Difference);
- ``ultrachat``: UltraChat JSONL, text only (``{data: [user, assistant, ...]}`` or ``{messages: [{role,
  content}]}`` as in ultrachat_200k);
- ``dialog``: this project's JSONL ``{id, turns: [{role: user|assistant, content: [{text} | {image: path} |
  {image_base64}]}]}``.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

from train.collate import Unit
from train.tokenizer import END_OF_UTTERANCE, FAKE_TOKEN, IMAGE_TOKEN

FORMATS = ("llava", "m3it", "lrv", "mimicit", "ultrachat", "dialog")
ROLES = {"user": "User", "assistant": "Assistant"}
Turn = tuple[str, list[tuple[str, object]]]


def dialog_text(turns: list[Turn], bos: str, cue: bool = False) -> tuple[str, list, list[tuple[int, int]]]:
    """(the dialogue string, its images in order, the character spans trained: each assistant answer with its
    closing ``<end_of_utterance>``). ``cue``: end with ``\\nAssistant:`` for generation."""
    out, images, spans = [bos], [], []
    pos = len(bos)

    def put(s: str) -> None:
        nonlocal pos
        out.append(s)
        pos += len(s)

    for i, (role, items) in enumerate(turns):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        put(("\n" if i else "") + ROLES[role] + ":")
        start = pos
        last = None
        for kind, value in items:
            if kind == "image":
                put(IMAGE_TOKEN + FAKE_TOKEN if last == "image" else FAKE_TOKEN + IMAGE_TOKEN + FAKE_TOKEN)
                images.append(value)
            else:
                put((" " if last != "image" else "") + str(value).strip())
            last = kind
        put(END_OF_UTTERANCE)
        if role == "assistant":
            spans.append((start, pos))
    if cue:
        put(("\n" if turns else "") + ROLES["assistant"] + ":")
    return "".join(out), images, spans


def dialog_unit(turns: list[Turn], tokenizer, seq_len: int, max_images: int, source: int = 0,
                stats: Counter | None = None) -> Unit | None:
    """One dialogue as a unit with its loss mask; turns after the last that fits ``seq_len`` and ``max_images``
    are dropped (whole user+assistant exchanges); None when not even the first exchange fits or no assistant
    turn is left (counted in ``stats``)."""
    stats = stats if stats is not None else Counter()
    while turns:
        text, images, spans = dialog_text(turns, tokenizer.bos_token)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        if len(ids) <= seq_len and len(images) <= max_images:
            mask = [int(any(a <= s < b for a, b in spans)) for s, _ in enc["offset_mapping"]]
            if not any(mask):
                break
            return Unit(list(ids), list(images), source, [0], mask)
        stats["dialog_turns_cut"] += 1
        cut = max((i for i, (r, _) in enumerate(turns) if r == "user" and i > 0), default=0)
        turns = turns[:cut]
    stats["dialog_skipped"] += 1
    return None


# -------------------------------------------------------------------------------------------- readers
def _file(root: str | None, name: str) -> bytes:
    p = Path(root or ".") / name
    return p.read_bytes()


def _split_image_marker(text: str, image) -> list[tuple[str, object]]:
    """LLaVA's ``<image>`` placeholder → an image item at that place (at the start when absent)."""
    if "<image>" not in text:
        return ([("image", image)] if image is not None else []) + [("text", text)]
    before, after = text.split("<image>", 1)
    items = [("text", before)] if before.strip() else []
    items.append(("image", image))
    if after.replace("<image>", "").strip():
        items.append(("text", after.replace("<image>", "")))
    return items


class _ImagesJSON:
    """MIMIC-IT's images JSON ({id: base64}), read once per path."""

    cache: dict[str, dict] = {}

    @classmethod
    def get(cls, path: str) -> dict:
        if path not in cls.cache:
            with open(path, encoding="utf-8") as f:
                cls.cache[path] = json.load(f)
        return cls.cache[path]


def record_turns(rec: dict, fmt: str, images: str | None = None) -> list[Turn]:
    """The turns of one record of format ``fmt`` (see the module docstring)."""
    if fmt == "llava":
        img = _file(images, rec["image"]) if rec.get("image") else None
        turns, placed = [], False
        for c in rec["conversations"]:
            role = "user" if c["from"] in ("human", "user") else "assistant"
            if role == "user" and not placed and img is not None:
                items, placed = _split_image_marker(c["value"], img), True
            else:
                items = [("text", c["value"].replace("<image>", "").strip())]
            turns.append((role, items))
        return turns
    if fmt == "m3it":
        items = [("text", rec["instruction"])]
        items += [("image", base64.b64decode(b)) for b in rec.get("image_base64_str") or []]
        if rec.get("inputs"):
            items.append(("text", rec["inputs"]))
        return [("user", items), ("assistant", [("text", rec["outputs"])])]
    if fmt == "lrv":
        img = _file(images, f"{rec['image_id']}.jpg")
        return [("user", [("image", img), ("text", rec["question"])]), ("assistant", [("text", rec["answer"])])]
    if fmt == "mimicit":
        table = _ImagesJSON.get(images) if images else {}
        items = [("image", base64.b64decode(table[i])) for i in rec.get("image_ids") or []]
        return [("user", items + [("text", rec["instruction"])]), ("assistant", [("text", rec["answer"])])]
    if fmt == "ultrachat":
        if "messages" in rec:
            return [(m["role"], [("text", m["content"])]) for m in rec["messages"] if m["role"] in ROLES]
        return [("user" if i % 2 == 0 else "assistant", [("text", t)]) for i, t in enumerate(rec["data"])]
    if fmt == "dialog":
        turns = []
        for t in rec["turns"]:
            items = []
            for c in t["content"]:
                if "text" in c:
                    items.append(("text", c["text"]))
                elif "image_base64" in c:
                    items.append(("image", base64.b64decode(c["image_base64"])))
                else:
                    items.append(("image", _file(images, c["image"])))
            turns.append((t["role"], items))
        return turns
    raise ValueError(f"unknown dialogue format {fmt!r}; known: {', '.join(FORMATS)}")


def sample_unit(sample: dict, fmt: str, images: str | None, tokenizer, seq_len: int, max_images: int,
                source: int, stats: Counter) -> tuple[str, Unit | None]:
    """(key, unit or None) for one raw record; unreadable records and undecodable images are counted."""
    from train.sources import image_ok

    key = sample.get("__key__", "")
    rec = sample["__record__"]
    key = str(rec.get("id") or key) if isinstance(rec, dict) else key
    try:
        turns = record_turns(rec, fmt, images)
    except (KeyError, OSError, ValueError, TypeError) as e:
        stats[f"dialog_bad_record:{type(e).__name__}"] += 1
        return key, None
    for _, items in turns:
        for kind, value in items:
            if kind == "image" and not image_ok(value):
                stats["image_undecodable"] += 1
                return key, None
    return key, dialog_unit(turns, tokenizer, seq_len, max_images, source, stats)
