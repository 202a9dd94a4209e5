"""From nodes to model inputs: the IDEFICS text layout, chunking, image attention mask, padding.

Layout (same as ``IdeficsProcessor``): ``<s>`` + each text stripped of spaces + for each image
``<fake_token_around_image><image><fake_token_around_image>`` (only ``<image><fake…>`` when the previous
node was an image too) + ``</s>``. Packed documents are concatenated; the image attention mask of
docs/training-reference.md §1.4 is computed on the packed row and resets at every ``</s>`` and at every
unit boundary (``Unit.starts``), so a chunk cut for length (no ``</s>``) never lends its image to the
document packed after it.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import torch

from model.loss import IGNORE_INDEX
from train.tokenizer import FAKE_TOKEN, IMAGE_TOKEN


@dataclasses.dataclass
class Unit:
    """A tokenized piece of one document (or pair) ready for packing."""

    tokens: list[int]
    images: list[bytes]
    source: int = 0
    starts: list[int] = dataclasses.field(default_factory=lambda: [0])  # where each packed unit begins
    mask: list[int] | None = None  # per token, 1 = in the loss (instruction tuning: assistant turns); None = all

    def loss_mask(self) -> list[int]:
        return self.mask if self.mask is not None else [1] * len(self.tokens)


def layout_text(nodes: list[tuple[str, object]], bos: str, eos: str, text_separator: str = "\n\n") -> str:
    """The IDEFICS prompt string of one document; images become the image-token pattern."""
    out = [bos]
    last = None
    for kind, value in nodes:
        if kind == "image":
            out.append(IMAGE_TOKEN + FAKE_TOKEN if last == "image" else FAKE_TOKEN + IMAGE_TOKEN + FAKE_TOKEN)
        else:
            if last == "text" and text_separator:
                out.append(text_separator)
            out.append(str(value).strip(" "))
        last = kind
    out.append(eos)
    return "".join(out)


def trim_trailing_images(nodes: list) -> list:
    """Drop images after the last text: no token could attend to them."""
    end = len(nodes)
    while end and nodes[end - 1][0] == "image":
        end -= 1
    return nodes[:end]


def doc_units(nodes: list, tokenizer, seq_len: int, max_images: int, max_chunks: int, source: int = 0,
              text_separator: str = "\n\n", require_image: bool = True) -> list[Unit]:
    """Tokenize one document and cut it into units of ≤ ``seq_len`` tokens and ≤ ``max_images`` images.

    A cut never separates ``<image>`` from the ``<fake…>`` before it. Units without an image are dropped
    when ``require_image`` (IDEFICS trained on rows with images only); at most ``max_chunks`` are kept.
    """
    nodes = trim_trailing_images(nodes)
    if not nodes or not any(k == "text" for k, _ in nodes):
        return []
    text = layout_text(nodes, tokenizer.bos_token, tokenizer.eos_token, text_separator)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    images = [v for k, v in nodes if k == "image"]
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    fake_id = tokenizer.convert_tokens_to_ids(FAKE_TOKEN)
    units: list[Unit] = []
    cur: list[int] = []
    cur_imgs: list[bytes] = []
    img_idx = 0

    def close():
        nonlocal cur, cur_imgs
        if cur and (cur_imgs or not require_image):
            units.append(Unit(cur, cur_imgs, source))
        cur, cur_imgs = [], []

    def cut():
        """Close the current unit; image tokens at its very end (no text after them) move on."""
        nonlocal cur, cur_imgs
        carry, carry_imgs = [], []
        while cur and cur[-1] in (image_id, fake_id) and len(carry) < len(cur) - 1:
            t = cur.pop()
            carry.insert(0, t)
            if t == image_id:
                carry_imgs.insert(0, cur_imgs.pop())
        close()
        cur, cur_imgs = carry, carry_imgs

    for tok in ids:
        if len(units) >= max_chunks:
            break
        if tok == image_id and len(cur_imgs) == max_images:
            cut()
            if len(cur_imgs) == max_images:  # only image tokens left (≥ max_images in a row): drop them
                cur, cur_imgs = [t for t in cur if t == fake_id][:1], []
        if len(cur) >= seq_len:
            cut()
            if len(cur) >= seq_len:  # a run of images longer than a row: give up on it
                cur, cur_imgs = [], []
        cur.append(tok)
        if tok == image_id:
            cur_imgs.append(images[img_idx])
            img_idx += 1
    if len(units) < max_chunks:
        close()
    return units[:max_chunks]


def image_attention_mask(input_ids: torch.Tensor, image_id: int, eos_id: int, num_images: int,
                         starts: torch.Tensor | None = None) -> torch.Tensor:
    """[B, L, num_images] 0/1: each token sees the most recent preceding ``<image>`` of its row (itself
    included), nothing before the first image, nothing after an ``</s>`` until the next image (the
    ``</s>`` itself still sees it), exactly as ``IdeficsProcessor`` builds it (docs/training-reference.md §1.4).
    ``starts`` [B, L] bool marks where a packed unit begins: an image before it is not seen from it on
    (a document boundary with or without ``</s>``)."""
    B, L = input_ids.shape
    is_img = input_ids == image_id
    idx = torch.cumsum(is_img.long(), dim=1) - 1  # index of the latest image at or before each position
    # position of the latest image / latest eos strictly before each token
    pos = torch.arange(L).expand(B, L)
    last_img = torch.where(is_img, pos, torch.full_like(pos, -1)).cummax(dim=1).values
    is_eos = input_ids == eos_id
    eos_before = torch.where(is_eos, pos, torch.full_like(pos, -1)).cummax(dim=1).values
    eos_before = torch.cat([torch.full((B, 1), -1, dtype=pos.dtype), eos_before[:, :-1]], dim=1)
    valid = (idx >= 0) & (last_img > eos_before) & (idx < num_images)
    if starts is not None:
        seg = torch.where(starts, pos, torch.full_like(pos, -1)).cummax(dim=1).values  # latest start, inclusive
        valid &= last_img >= seg
    mask = torch.zeros(B, L, max(num_images, 1), dtype=torch.long)
    mask.scatter_(2, idx.clamp(min=0).clamp(max=max(num_images, 1) - 1).unsqueeze(-1), valid.long().unsqueeze(-1))
    return mask


def labels_for(input_ids: torch.Tensor, attention_mask: torch.Tensor, masked_ids: list[int]) -> torch.Tensor:
    """Targets = inputs, -100 on pads and on the ids in ``masked_ids`` (image, fake, bos)."""
    labels = input_ids.clone()
    labels[attention_mask == 0] = IGNORE_INDEX
    for t in masked_ids:
        labels[input_ids == t] = IGNORE_INDEX
    return labels


class ImageTransform:
    """IDEFICS preprocessing via transformers' ``IdeficsImageProcessor`` (RGB, bicubic resize, CLIP norm)."""

    def __init__(self, image_size: int):
        try:  # the PIL backend (no torchvision needed); same resize/rescale/normalize
            from transformers import IdeficsImageProcessorPil as Proc
        except ImportError:
            from transformers import IdeficsImageProcessor as Proc

        self.image_size = image_size
        self.processor = Proc(image_size=image_size)

    def __call__(self, blobs: list[bytes]) -> tuple[torch.Tensor, int]:
        """[N, 3, S, S] float32; undecodable images become zeros (returned count of failures)."""
        from PIL import Image

        out = torch.zeros(len(blobs), 3, self.image_size, self.image_size)
        bad = 0
        ims, where = [], []
        for i, b in enumerate(blobs):
            try:
                im = Image.open(io.BytesIO(b))
                im.load()
                ims.append(im)
                where.append(i)
            except Exception:
                bad += 1
        if ims:
            px = self.processor(ims, return_tensors="pt")
            out[where] = px if isinstance(px, torch.Tensor) else torch.as_tensor(np.asarray(px))
        return out, bad


def collate_rows(rows: list[Unit], tokenizer, seq_len: int, transform: ImageTransform,
                 mask_bos: bool = True) -> dict:
    """Packed rows → the model-ready batch of docs/training-reference.md §2.2 (pixels zero-padded to the batch's max)."""
    pad = tokenizer.pad_token_id
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    fake_id = tokenizer.convert_tokens_to_ids(FAKE_TOKEN)
    B = len(rows)
    ids = torch.full((B, seq_len), pad, dtype=torch.long)
    att = torch.zeros((B, seq_len), dtype=torch.long)
    n_img = max(1, max(len(r.images) for r in rows))
    pixels = torch.zeros(B, n_img, 3, transform.image_size, transform.image_size)
    starts = torch.zeros((B, seq_len), dtype=torch.bool)
    bad = 0
    for b, r in enumerate(rows):
        starts[b, [s for s in r.starts if s < seq_len]] = True
        ids[b, : len(r.tokens)] = torch.tensor(r.tokens, dtype=torch.long)
        att[b, : len(r.tokens)] = 1
        if r.images:
            px, nbad = transform(r.images)
            pixels[b, : len(r.images)] = px
            bad += nbad
    masked = [image_id, fake_id] + ([tokenizer.bos_token_id] if mask_bos else [])
    labels = labels_for(ids, att, masked)
    for b, r in enumerate(rows):
        if r.mask is not None:  # instruction tuning: only the assistant's tokens are targets
            keep = torch.tensor(r.mask[:seq_len], dtype=torch.bool)
            labels[b, : len(keep)][~keep] = IGNORE_INDEX
    return {
        "input_ids": ids,
        "attention_mask": att,
        "pixel_values": pixels,
        "image_attention_mask": image_attention_mask(ids, image_id, tokenizer.eos_token_id, n_img, starts),
        "labels": labels,
        "num_images": sum(len(r.images) for r in rows),
        "num_tokens": int(att.sum()),
        "bad_images": bad,
        "source": rows[0].source,
    }
