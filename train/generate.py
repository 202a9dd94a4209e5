"""``python -m train.generate MODEL --text ... --image PATH_OR_URL --text ...``: continue an interleaved prompt.

``MODEL`` is an exported folder (``python -m train.export``) or a training run / checkpoint. The prompt is
laid out exactly as in training (train/collate.py: ``<s>``, texts, ``<fake><image><fake>`` per image; the
same string ``IdeficsProcessor`` builds) and continued with transformers' ``generate``: greedy by default,
sampling with ``--sample`` (temperature / top-p / top-k, seeded). ``--instruct`` wraps the prompt as one
``User:`` turn and the ``Assistant:`` cue (train/instruct.py) and stops at ``<end_of_utterance>``. Image URLs
are fetched through ``obelics.netguard`` (no private, loopback or link-local address; ``--allow`` CIDRs for
tests or mirrors) within a byte and a time budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from obelics.config import ConfigError


class FetchError(ValueError):
    """An image URL that could not be fetched within the guard and the budgets."""


def fetch_image(url: str, max_bytes: int = 20 << 20, timeout: float = 20.0, allow=None) -> bytes:
    """The bytes at ``url`` via a guarded requests session; refuses more than ``max_bytes`` or ``timeout``
    seconds in all (connect + every read)."""
    import requests

    from obelics import netguard

    deadline = time.monotonic() + timeout
    try:
        with netguard.guarded_session(allow) as s, s.get(url, stream=True, timeout=timeout) as r:
            r.raise_for_status()
            if int(r.headers.get("content-length") or 0) > max_bytes:
                raise FetchError(f"{url}: {r.headers['content-length']} bytes > budget {max_bytes}")
            buf = bytearray()
            for chunk in r.iter_content(64 << 10):
                buf += chunk
                if len(buf) > max_bytes:
                    raise FetchError(f"{url}: more than the budget of {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url}: over the time budget of {timeout} s")
            return bytes(buf)
    except (requests.RequestException, netguard.AddressRefused) as e:
        raise FetchError(f"{url}: {e}") from e


def image_bytes(item: str, **fetch) -> bytes:
    """A prompt image: a local path, or an http(s) URL fetched with :func:`fetch_image`."""
    if item.startswith(("http://", "https://")):
        return fetch_image(item, **fetch)
    p = Path(item)
    if not p.is_file():
        raise ConfigError(f"image {item!r}: no such file (and not an http(s) URL)")
    return p.read_bytes()


@dataclasses.dataclass
class Loaded:
    """A model ready to generate: weights, tokenizer, image size."""

    model: torch.nn.Module
    tok: object
    image_size: int


def load(path: str | Path, dtype: torch.dtype = torch.float32) -> Loaded:
    """An exported folder (plain transformers) or a training run / checkpoint (train/weights.py)."""
    p = Path(path)
    if (p / "config.json").is_file() and any(p.glob("*.safetensors")):
        from transformers import AutoTokenizer, IdeficsForVisionText2Text

        model = IdeficsForVisionText2Text.from_pretrained(p, dtype=dtype).eval()
        tok = AutoTokenizer.from_pretrained(p)
    else:
        from train.weights import load_model

        model, _, tok = load_model(p, dtype)
    model.config.use_cache = True
    return Loaded(model, tok, model.config.vision_config.image_size)


def prompt_batch(loaded: Loaded, items: list[tuple[str, object]], instruct: bool = False) -> dict:
    """Model inputs for an interleaved prompt ``[("text", str) | ("image", bytes)]`` laid out as in training."""
    from train.collate import ImageTransform, image_attention_mask, layout_text
    from train.instruct import dialog_text
    from train.tokenizer import IMAGE_TOKEN

    tok = loaded.tok
    if instruct:
        text, images, _ = dialog_text([("user", items)], tok.bos_token, cue=True)
    else:
        text = layout_text(items, tok.bos_token, "", text_separator="")
        images = [v for k, v in items if k == "image"]
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    transform = ImageTransform(loaded.image_size)
    n = max(1, len(images))
    pixels = torch.zeros(1, n, 3, loaded.image_size, loaded.image_size)
    if images:
        px, bad = transform(images)
        if bad:
            raise ConfigError(f"{bad} prompt image(s) could not be decoded")
        pixels[0, : len(images)] = px
    mask = image_attention_mask(ids, tok.convert_tokens_to_ids(IMAGE_TOKEN), tok.eos_token_id, n)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels.to(loaded.model.dtype),
            "image_attention_mask": mask}


def generate(loaded: Loaded, items: list[tuple[str, object]], max_new_tokens: int = 20, sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 50, seed: int = 0,
             instruct: bool = False) -> tuple[str, list[int]]:
    """(continuation text, its token ids) of ``items``; stops at ``</s>`` and, where the tokenizer has it,
    ``<end_of_utterance>`` (kept in the ids, not in the text). Image tokens are never generated."""
    from train.tokenizer import END_OF_UTTERANCE, FAKE_TOKEN, IMAGE_TOKEN

    tok = loaded.tok
    if instruct and END_OF_UTTERANCE not in tok.get_vocab():
        raise ConfigError("--instruct needs a model trained with <end_of_utterance> (data.end_of_utterance)")
    device = next(loaded.model.parameters()).device
    b = {k: v.to(device) for k, v in prompt_batch(loaded, items, instruct).items()}
    eos = [tok.eos_token_id] + ([tok.convert_tokens_to_ids(END_OF_UTTERANCE)] if END_OF_UTTERANCE in tok.get_vocab() else [])
    kw = dict(do_sample=sample)
    if sample:
        kw.update(temperature=temperature, top_p=top_p, top_k=top_k)
        torch.manual_seed(seed)
    else:
        kw.update(temperature=None, top_p=None, top_k=None)
    with torch.no_grad():
        out = loaded.model.generate(**b, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                    pad_token_id=tok.pad_token_id,
                                    bad_words_ids=[[tok.convert_tokens_to_ids(t)] for t in (IMAGE_TOKEN, FAKE_TOKEN)],
                                    **kw)
    new = out[0, b["input_ids"].shape[1]:].tolist()
    return tok.decode(new, skip_special_tokens=True), new


class _Item(argparse.Action):
    """--text / --image in command-line order."""

    def __call__(self, parser, ns, value, option_string=None):
        items = getattr(ns, "items", None) or []
        items.append((self.dest, value))
        ns.items = items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="exported folder or training run / checkpoint")
    ap.add_argument("--text", action=_Item, help="a text piece of the prompt (repeatable, in order)")
    ap.add_argument("--image", action=_Item, help="an image path or http(s) URL (repeatable, in order)")
    ap.add_argument("--instruct", action="store_true", help="User:/Assistant: turn, stop at <end_of_utterance>")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-image-bytes", type=int, default=20 << 20)
    ap.add_argument("--fetch-timeout", type=float, default=20.0, help="seconds per image URL, in all")
    ap.add_argument("--allow", action="append", default=None, help="CIDR a URL may resolve into (tests, mirrors)")
    args = ap.parse_args(argv)
    items_in = getattr(args, "items", None) or []
    try:
        if not any(k == "text" for k, _ in items_in) and not args.instruct:
            raise ConfigError("give at least one --text")
        if not Path(args.model).exists():
            raise ConfigError(f"{args.model}: no such model folder or checkpoint")
        items = [(k, image_bytes(v, max_bytes=args.max_image_bytes, timeout=args.fetch_timeout, allow=args.allow)
                  if k == "image" else v) for k, v in items_in]
    except (ConfigError, FetchError) as e:
        print(f"python -m train.generate: {e}", file=sys.stderr)
        return 2
    loaded = load(args.model)
    text, _ = generate(loaded, items, args.max_new_tokens, args.sample, args.temperature, args.top_p, args.top_k,
                       args.seed, args.instruct)
    print(text.replace("\n", " ").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
