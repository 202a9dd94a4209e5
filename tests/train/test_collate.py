"""Layout, packing and masks: hand-computed cases and transformers' IdeficsProcessor on the same inputs."""

from __future__ import annotations

import io

import pytest
import torch

from tests.train.shards import photo_bytes
from train.collate import ImageTransform, Unit, collate_rows, doc_units, image_attention_mask, layout_text
from train.stream import GreedyPacker
from train.tokenizer import FAKE_TOKEN, IMAGE_TOKEN, base_vocab_size, load_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(None, 1000)


@pytest.fixture(scope="module")
def processor(tok):
    from transformers import IdeficsImageProcessorPil, IdeficsProcessor

    return IdeficsProcessor(image_processor=IdeficsImageProcessorPil(image_size=30), tokenizer=tok)


def _pil(b):
    from PIL import Image

    return Image.open(io.BytesIO(b))


def test_offline_tokenizer_ids(tok):
    assert base_vocab_size(tok) == 1000
    assert tok.convert_tokens_to_ids(FAKE_TOKEN) == 1000 and tok.convert_tokens_to_ids(IMAGE_TOKEN) == 1001
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 0)


def test_layout_hand_computed():
    s = layout_text([("text", " a "), ("image", b""), ("image", b""), ("text", "b"), ("text", "c")], "<s>", "</s>")
    assert s == "<s>a<fake_token_around_image><image><fake_token_around_image><image><fake_token_around_image>b\n\nc</s>"


def test_image_attention_mask_hand_computed():
    # ids: 5=text, 9=<image>, 2=</s>
    ids = torch.tensor([[5, 9, 5, 5, 9, 5, 2, 5, 5, 9, 5, 0]])
    m = image_attention_mask(ids, image_id=9, eos_id=2, num_images=3)
    seen = [int(r.argmax()) if r.any() else -1 for r in m[0]]
    #         5   9  5  5  9  5  2   5   5  9  5  pad
    assert seen == [-1, 0, 0, 0, 1, 1, 1, -1, -1, 2, 2, 2]
    assert m.sum(-1).max() == 1  # one image at most per token


def test_image_attention_mask_equals_processor_rule_on_random_rows(tok):
    from transformers.models.idefics.processing_idefics import (
        image_attention_mask_for_packed_input_ids_pt,
        incremental_to_binary_attention_mask,
    )

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 50, (6, 40), generator=g)
    ids[torch.rand(6, 40, generator=g) < 0.15] = 1001
    ids[torch.rand(6, 40, generator=g) < 0.1] = 2
    n = int((ids == 1001).sum(1).max())
    inc, _ = image_attention_mask_for_packed_input_ids_pt(ids.clone(), tok)
    ref = incremental_to_binary_attention_mask(inc, "pt", num_classes=n)
    ours = image_attention_mask(ids, 1001, 2, n)
    assert torch.equal(ours, ref.long())


def test_single_document_equals_processor(tok, processor):
    b1, b2 = photo_bytes(0), photo_bytes(1)
    items = ["user : describe this image", b1, "a cat on the grass", b2, b2, "a dog"]
    ref = processor(text=[x if isinstance(x, str) else _pil(x) for x in items], add_eos_token=True,
                    return_tensors="pt")
    nodes = [("text", x) if isinstance(x, str) else ("image", x) for x in items]
    units = doc_units(nodes, tok, 128, 5, 1)
    assert len(units) == 1 and len(units[0].images) == 3
    batch = collate_rows(units, tok, len(units[0].tokens), ImageTransform(30))
    assert torch.equal(batch["input_ids"], ref["input_ids"])
    assert torch.equal(batch["attention_mask"], ref["attention_mask"].long())
    assert torch.equal(batch["image_attention_mask"], ref["image_attention_mask"].long())
    torch.testing.assert_close(batch["pixel_values"], ref["pixel_values"])


def test_packed_row_equals_processor_with_reset_at_eos(tok, processor):
    b1, b2, b3 = photo_bytes(0), photo_bytes(1), photo_bytes(2)
    d1 = [("text", "first page"), ("image", b1), ("text", "about a cat")]
    d2 = [("image", b2), ("text", "second page about rockets"), ("image", b3), ("text", "the end")]
    u1, u2 = doc_units(d1, tok, 64, 5, 1)[0], doc_units(d2, tok, 64, 5, 1)[0]
    packer = GreedyPacker(seq_len=64, max_images=5, open_rows=2)
    assert packer.add(u1) == [] and packer.add(u2) == []
    (row,) = packer.rows
    # the processor builds the same packed row when the document boundary is given as text
    items = ["first page", _pil(b1), "about a cat</s><s>", _pil(b2), "second page about rockets", _pil(b3), "the end"]
    ref = processor(text=items, add_eos_token=True, return_tensors="pt")
    L = len(row.tokens)
    batch = collate_rows([row], tok, L, ImageTransform(30))
    assert torch.equal(batch["input_ids"], ref["input_ids"])
    assert torch.equal(batch["image_attention_mask"], ref["image_attention_mask"].long())
    torch.testing.assert_close(batch["pixel_values"], ref["pixel_values"])
    # tokens of doc 2 before its first image see nothing; doc 1's tokens never see doc 2's images
    eos = row.tokens.index(2)
    assert batch["image_attention_mask"][0, eos + 1].sum() == 0
    assert batch["image_attention_mask"][0, :eos + 1, 1:].sum() == 0


def test_labels_mask_pads_image_tokens_and_bos(tok):
    u = doc_units([("text", "hello there"), ("image", photo_bytes(0)), ("text", "world")], tok, 32, 5, 1)[0]
    b = collate_rows([u], tok, 32, ImageTransform(30))
    ids, lab = b["input_ids"][0], b["labels"][0]
    for i, t in enumerate(ids.tolist()):
        if i >= len(u.tokens) or t in (1000, 1001, 1):
            assert lab[i] == -100
        else:
            assert lab[i] == t
    assert b["pixel_values"].shape == (1, 1, 3, 30, 30)


def test_greedy_first_fit_and_image_budget():
    p = GreedyPacker(seq_len=10, max_images=2, open_rows=2)
    assert p.add(Unit([1] * 6, [b"a"])) == []
    assert p.add(Unit([2] * 5, [])) == []  # does not fit row 0 (6+5>10) → new row
    assert p.add(Unit([3] * 4, [b"b"])) == []  # first fit: row 0 (6+4=10, images 2)
    assert [r.tokens for r in p.rows] == [[1] * 6 + [3] * 4, [2] * 5]
    out = p.add(Unit([4] * 3, [b"c"]))  # row 1 fits tokens and images
    assert out == [] and p.rows[1].tokens == [2] * 5 + [4] * 3
    out = p.add(Unit([5] * 3, [b"d", b"e"]))  # fits nowhere, 2 rows open → fullest closed
    assert [r.tokens for r in out] == [[1] * 6 + [3] * 4]
    assert len(p.rows) == 2 and p.rows[-1].tokens == [5] * 3


def test_doc_units_cut_by_length_and_image_budget(tok):
    imgs = [photo_bytes(i) for i in range(5)]
    nodes = []
    for i in range(5):
        nodes += [("text", "some words here " * 3), ("image", imgs[i])]
    nodes.append(("text", "tail text"))
    units = doc_units(nodes, tok, seq_len=40, max_images=2, max_chunks=10)
    assert len(units) >= 3
    assert sum(len(u.images) for u in units) == 5
    for u in units:
        assert len(u.tokens) <= 40 and 1 <= len(u.images) <= 2
        assert u.tokens.count(1001) == len(u.images)
        # a <fake> never ends a unit right before its <image> went to the next one
        assert not (u.tokens[-1] == 1000 and u is not units[-1] and units[units.index(u) + 1].tokens[0] == 1001)
    assert units[0].tokens[0] == 1 and units[-1].tokens[-1] == 2
    assert doc_units(nodes, tok, 40, 2, max_chunks=1) == units[:1]
    # text-only and image-only documents give nothing; trailing images are trimmed
    assert doc_units([("text", "no image")], tok, 40, 2, 4) == []
    assert doc_units([("image", imgs[0])], tok, 40, 2, 4) == []
    (u,) = doc_units([("text", "x"), ("image", imgs[0]), ("text", "y"), ("image", imgs[1])], tok, 40, 2, 4)
    assert len(u.images) == 1


def test_mask_resets_after_a_chunk_cut_for_length(tok):
    """A document cut for length (its first chunk has no ``</s>``) packed before a short document: the short
    document's tokens before its own image must not see the previous document's image."""
    imgs = [photo_bytes(i) for i in range(3)]
    long_doc = [("image", imgs[0]), ("text", "long words " * 30), ("image", imgs[1]), ("text", "end")]
    first = doc_units(long_doc, tok, seq_len=24, max_images=2, max_chunks=1)[0]
    assert 2 not in first.tokens and first.tokens[-1] not in (1000, 1001)  # cut for length, ends in text
    (short,) = doc_units([("text", "short caption first"), ("image", imgs[2]), ("text", "after")], tok, 64, 2, 4)
    p = GreedyPacker(seq_len=64, max_images=3, open_rows=1)
    p.add(first)
    p.add(short)
    (row,) = p.rows
    assert row.starts == [0, len(first.tokens)]
    b = collate_rows([row], tok, 64, ImageTransform(30))
    m = b["image_attention_mask"][0]
    s = len(first.tokens)
    own_img = s + short.tokens.index(1001)
    assert m[s:own_img].sum() == 0  # the short document's text before its image sees nothing
    assert m[own_img, 1] == 1 and m[s - 1, 0] == 1  # its own image from there on; the chunk keeps its image
    old = image_attention_mask(b["input_ids"], 1001, 2, 2)  # the </s>-only rule leaks image 0 into it
    assert old[0, s:own_img, 0].sum() > 0
