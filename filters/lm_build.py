"""Build a small, real English KenLM model offline (``builtin-en``), for tests and networkless runs.

No package on any registry ships an English KenLM model, and the ``kenlm`` wheel has no ``lmplz`` to
estimate one. So this module:

1. gathers English prose that ships with Python itself: ``pydoc_data/topics.py`` (the language
   reference), the CPython licence text and the docstrings of a fixed list of standard-library
   modules (code blocks, doctests and short fragments are skipped);
2. normalises it exactly as the scorer does (:func:`filters.perplexity.normalize`);
3. trains a SentencePiece unigram model on it with ``sentencepiece``;
4. estimates an interpolated modified-Kneser-Ney trigram model over the pieces and writes it as ARPA —
   **hand-written**, because no installed library estimates ARPA models (kenlm's Python module only
   queries them, NLTK is not installed and writes no ARPA);
5. checks that ``kenlm.Model`` loads the ARPA.

Output: ``<dir>/en.arpa`` and ``<dir>/en.sp.model`` (+ ``meta.json``), built once into
``build/resources/builtin-en`` (``python -m filters.lm_build``), written atomically. Takes ~10 s.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from filters.normalize import normalize
from obelics.paths import build_dir

# build/ in a checkout, the user cache folder for an installed package (never site-packages)
DEFAULT_DIR = build_dir() / "resources" / "builtin-en"
BUILD_VERSION = 2

# Prose-heavy standard-library modules whose docstrings join the corpus (fixed for reproducibility).
STDLIB_MODULES = (
    "argparse", "subprocess", "typing", "collections/__init__", "logging/__init__", "inspect", "pathlib",
    "_pydecimal", "shutil", "tarfile", "zipfile/__init__", "threading", "unittest/case", "doctest",
    "configparser", "csv", "difflib", "enum", "functools", "gettext", "imaplib", "mailbox", "pickle",
    "pydoc", "smtplib", "socket", "statistics", "tempfile", "textwrap", "turtle", "urllib/request",
    "email/message", "http/client", "http/cookiejar", "ftplib", "optparse", "dataclasses", "fractions",
    "random", "heapq", "bisect", "calendar", "locale", "platform", "sched", "shlex", "string", "trace",
    "warnings", "weakref", "xml/dom/minidom", "asyncio/events", "concurrent/futures/_base", "queue",
)

_WORD_RE = re.compile(r"[A-Za-z]+")


def _stdlib_dir() -> Path:
    import pydoc_data

    return Path(pydoc_data.__file__).resolve().parent.parent


def _prose_paragraphs(text: str) -> list[str]:
    """Paragraphs of running English in ``text``: blank-line separated, unwrapped, code skipped."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.split("\n")
        if any(line.startswith(("   ", "\t")) or ">>>" in line for line in lines):
            continue
        para = " ".join(line.strip() for line in lines).strip()
        words = para.split()
        if len(words) < 6:
            continue
        letters = sum(len(w) for w in _WORD_RE.findall(para))
        if letters < 0.7 * len(para.replace(" ", "")):
            continue
        out.append(para)
    return out


def gather_corpus() -> list[str]:
    """English prose paragraphs shipped with the Python standard library (deterministic)."""
    import pydoc_data.topics as topics

    paras: list[str] = []
    for key in sorted(topics.topics):
        paras.extend(_prose_paragraphs(topics.topics[key]))
    stdlib = _stdlib_dir()
    lic = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "LICENSE.txt"
    if lic.is_file():
        paras.extend(_prose_paragraphs(lic.read_text(encoding="utf-8", errors="replace")))
    for mod in STDLIB_MODULES:
        p = stdlib / f"{mod}.py"
        if not p.is_file():
            continue
        try:
            tree = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    paras.extend(_prose_paragraphs(doc))
    return paras


def _sentences(paragraphs: list[str]) -> list[str]:
    out = []
    for para in paragraphs:
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
            s = normalize(s)
            if len(s.split()) >= 4:
                out.append(s)
    return out


def train_sentencepiece(sentences: list[str], vocab_size: int = 4000) -> bytes:
    """A SentencePiece unigram model trained on ``sentences`` (serialized bytes)."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=0.9995, num_threads=1, minloglevel=2, hard_vocab_limit=False,
        input_sentence_size=0, shuffle_input_sentence=False,
    )
    return model.getvalue()


def _discounts(counts: dict) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from counts of counts (Chen & Goodman)."""
    coc = Counter(min(c, 4) for c in counts.values())
    n1, n2, n3, n4 = (coc.get(i, 0) for i in (1, 2, 3, 4))
    if n1 == 0 or n2 == 0:
        return 0.5, 0.75, 0.9
    y = n1 / (n1 + 2 * n2)
    d1 = max(min(1 - 2 * y * n2 / n1, 0.95), 0.05)
    d2 = max(min(2 - 3 * y * n3 / n2, 1.9), 0.1) if n2 else 1.0
    d3 = max(min(3 - 4 * y * n4 / n3, 2.9), 0.2) if n3 else 1.5
    return d1, d2, d3


def estimate_arpa(token_sentences: list[list[str]], order: int = 3) -> str:
    """An interpolated modified-Kneser-Ney ARPA model of ``order`` over tokenised sentences.

    Highest order uses raw counts, lower orders continuation counts (number of distinct left
    extensions; raw counts for n-grams starting with ``<s>``, as KenLM does). Stored probabilities are
    fully interpolated; the backoff of a context is its interpolation weight, so a back-off query
    gives exactly the interpolated estimate.
    """
    raw: list[Counter] = [Counter() for _ in range(order + 1)]
    for toks in token_sentences:
        seq = ["<s>"] + toks + ["</s>"]
        for n in range(1, order + 1):
            for i in range(len(seq) - n + 1):
                raw[n][tuple(seq[i:i + n])] += 1
    # Adjusted counts: continuation counts below the top order.
    adj: list[dict] = [dict() for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        cont = Counter(g[1:] for g in raw[n + 1])
        a = {}
        for g, c in raw[n].items():
            a[g] = c if g[0] == "<s>" else cont.get(g, 0)
        adj[n] = {g: c for g, c in a.items() if c > 0}
    adj[1].pop(("<s>",), None)

    vocab = sorted({g[0] for g in raw[1]} | {"<unk>"})
    probs: list[dict] = [dict() for _ in range(order + 1)]
    backoffs: list[dict] = [dict() for _ in range(order + 1)]

    # Unigrams: discounted continuation counts, interpolated with the uniform distribution.
    d1, d2, d3 = _discounts(adj[1])
    total = sum(adj[1].values())
    nk = Counter(min(c, 3) for c in adj[1].values())
    gamma = (d1 * nk[1] + d2 * nk[2] + d3 * nk[3]) / total
    uniform = 1.0 / (len(vocab) - 1)  # <s> is never predicted
    for w in vocab:
        c = adj[1].get((w,), 0)
        disc = (0, d1, d2, d3)[min(c, 3)]
        probs[1][(w,)] = max(c - disc, 0) / total + gamma * uniform
    probs[1][("<s>",)] = 0.0  # never predicted: log10 = -99 below

    for n in range(2, order + 1):
        d1, d2, d3 = _discounts(adj[n])
        by_ctx: dict[tuple, list] = defaultdict(list)
        for g, c in adj[n].items():
            by_ctx[g[:-1]].append((g[-1], c))
        for ctx, items in by_ctx.items():
            tot = sum(c for _, c in items)
            nk = Counter(min(c, 3) for _, c in items)
            gam = (d1 * nk[1] + d2 * nk[2] + d3 * nk[3]) / tot
            backoffs[n - 1][ctx] = gam
            for w, c in items:
                disc = (0, d1, d2, d3)[min(c, 3)]
                lower = _interp(probs, backoffs, ctx[1:] + (w,))
                probs[n][ctx + (w,)] = (c - disc) / tot + gam * lower

    lines = ["", "\\data\\"]
    for n in range(1, order + 1):
        lines.append(f"ngram {n}={len(probs[n])}")
    for n in range(1, order + 1):
        lines.append("")
        lines.append(f"\\{n}-grams:")
        for g in sorted(probs[n]):
            p = probs[n][g]
            lp = -99.0 if p <= 0 else math.log10(p)
            row = f"{lp:.6f}\t{' '.join(g)}"
            if n < order:
                b = backoffs[n].get(g)
                if b is not None:
                    row += f"\t{math.log10(b):.6f}"
                elif g[0] != "</s>":
                    row += "\t0.000000"
            lines.append(row)
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _interp(probs: list[dict], backoffs: list[dict], g: tuple) -> float:
    """Interpolated probability of n-gram ``g`` from the tables built so far (back-off recursion)."""
    n = len(g)
    if n == 1:
        return probs[1].get(g, probs[1][("<unk>",)])
    p = probs[n].get(g)
    if p is not None:
        return p
    return backoffs[n - 1].get(g[:-1], 1.0) * _interp(probs, backoffs, g[1:])


def _current(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a complete model of this BUILD_VERSION."""
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == BUILD_VERSION and (out_dir / "en.arpa").is_file() and \
        (out_dir / "en.sp.model").is_file()


def build(out_dir: str | Path = DEFAULT_DIR, vocab_size: int = 4000, order: int = 3, force: bool = False) -> Path:
    """Build ``en.arpa`` + ``en.sp.model`` into ``out_dir`` (skipped if present and current)."""
    out_dir = Path(out_dir)
    if not force and _current(out_dir):
        return out_dir
    import kenlm
    import sentencepiece as spm

    t0 = time.time()
    sentences = _sentences(gather_corpus())
    sp_bytes = train_sentencepiece(sentences, vocab_size)
    sp = spm.SentencePieceProcessor(model_proto=sp_bytes)
    tokenised = [sp.encode_as_pieces(s) for s in sentences]
    arpa = estimate_arpa(tokenised, order)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".builtin-en.", dir=out_dir.parent))
    try:
        (tmp / "en.sp.model").write_bytes(sp_bytes)
        (tmp / "en.arpa").write_text(arpa, encoding="utf-8")
        kenlm.Model(str(tmp / "en.arpa"))  # must load
        (tmp / "meta.json").write_text(json.dumps({
            "version": BUILD_VERSION, "order": order, "vocab_size": sp.get_piece_size(),
            "sentences": len(sentences), "tokens": sum(len(t) for t in tokenised),
            "seconds": round(time.time() - t0, 1),
        }, indent=1))
        if out_dir.exists() and not _current(out_dir):
            shutil.rmtree(out_dir, ignore_errors=True)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not _current(out_dir):  # another process built it meanwhile: keep theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the offline English KenLM model (builtin-en).")
    ap.add_argument("-o", "--out", default=str(DEFAULT_DIR))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    d = build(args.out, force=args.force)
    print(d, (d / "meta.json").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
