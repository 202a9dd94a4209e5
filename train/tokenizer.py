"""Tokenizers: a local one (LLaMA's for 9B/80B) or one the project trains offline for tests and tiny runs.

The offline tokenizer is a byte-level BPE trained with the ``tokenizers`` library on English prose that
ships with CPython (``pydoc_data.topics``), so it needs no download. Special tokens follow LLaMA's ids
(``<unk>``=0, ``<s>``=1, ``</s>``=2; pad = unk as in IDEFICS) and the two IDEFICS tokens are added
*after* the base vocabulary so that ``<fake_token_around_image>`` = V and ``<image>`` = V + 1, as
``IdeficsDecoupledEmbedding`` requires. Instruction tuning adds ``<end_of_utterance>`` as V + 2, a third row
of the trained extra table (the model is built with ``additional_vocab_size`` = 3).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from transformers import PreTrainedTokenizerFast

FAKE_TOKEN = "<fake_token_around_image>"
IMAGE_TOKEN = "<image>"
END_OF_UTTERANCE = "<end_of_utterance>"  # instruction tuning: ends every dialogue turn; id V + 2 (a trained row)
BASE_SPECIALS = ["<unk>", "<s>", "</s>"]
ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "build" / "tokenizer"


def _corpus() -> list[str]:
    import pydoc_data.topics as topics

    return [t for t in topics.topics.values() if t.strip()]


def train_offline_tokenizer(vocab_size: int = 1000, cache_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Train (or load from ``build/tokenizer``) the offline byte-level BPE with ``vocab_size`` base rows."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    cache = Path(cache_dir) if cache_dir else CACHE_DIR
    corpus = _corpus()
    key = hashlib.sha1(("\n".join(corpus) + f"|{vocab_size}|v1").encode()).hexdigest()[:12]
    path = cache / f"bpe-{vocab_size}-{key}.json"
    if path.exists():
        tok = Tokenizer.from_file(str(path))
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=BASE_SPECIALS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(corpus, trainer=trainer)
        if tok.get_vocab_size() != vocab_size:
            raise RuntimeError(f"BPE produced {tok.get_vocab_size()} tokens, expected {vocab_size}")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tok.save(str(tmp))
        os.replace(tmp, path)
    return wrap(tok)


def wrap(tok) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` around a ``tokenizers.Tokenizer`` with the IDEFICS special tokens."""
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>")
    fast.add_special_tokens({"additional_special_tokens": [FAKE_TOKEN, IMAGE_TOKEN]})
    return fast


def extra_tokens(end_of_utterance: bool = False) -> list[str]:
    """The tokens after the base vocabulary, in id order."""
    return [FAKE_TOKEN, IMAGE_TOKEN] + ([END_OF_UTTERANCE] if end_of_utterance else [])


def load_tokenizer(path: str | None, vocab_size: int = 1000, end_of_utterance: bool = False
                   ) -> PreTrainedTokenizerFast:
    """``path`` (a local tokenizer directory, e.g. LLaMA's or an exported model's) or, when None, the offline
    BPE; with ``end_of_utterance`` the instruct token is added as V + 2 (where the tokenizer lacks it)."""
    if path is None:
        tok = train_offline_tokenizer(vocab_size)
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.unk_token
    # one call with every special token in id order (a tokenizer that has them already keeps their ids)
    specials = list(tok.special_tokens_map.get("additional_special_tokens", []))
    missing = [t for t in extra_tokens(end_of_utterance) if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": specials + missing})
    check_ids(tok, end_of_utterance)
    return tok


def base_vocab_size(tok) -> int:
    """Rows of the base (frozen) vocabulary: the id of ``<fake_token_around_image>``."""
    return tok.convert_tokens_to_ids(FAKE_TOKEN)


def check_ids(tok, end_of_utterance: bool = False) -> None:
    """The IDEFICS tokens must be V, V+1 (and ``<end_of_utterance>`` V+2 when asked) and nothing may lie beyond,
    since the model's extra table has exactly that many rows (docs/training-reference.md §1.2 caveat)."""
    v = base_vocab_size(tok)
    want = extra_tokens(end_of_utterance)
    for i, t in enumerate(want):
        if tok.convert_tokens_to_ids(t) != v + i:
            raise ValueError(f"{t} must have id {v + i}")
    if len(tok) != v + len(want):
        raise ValueError(f"tokenizer has {len(tok)} tokens; only V+{len(want)}={v + len(want)} fit the decoupled "
                         f"embedding" + ("" if end_of_utterance else " (data.end_of_utterance adds the instruct token)"))
