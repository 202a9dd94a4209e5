"""Filter resources that are not shipped in any package, and the command that fetches them.

``obelics resources fetch`` downloads, where there is a network:

- the original word lists (BigScience ``data_tooling`` ``ac_dc`` stop words and flagged words, the
  OBELICS build scripts' spam words and image-URL ban substrings), parsed out of the Python sources
  on GitHub and written one word per line;
- fastText ``lid.176.bin`` (dl.fbaipublicfiles.com);
- the edugp/kenlm Wikipedia English model (``en.arpa.bin`` + ``en.sp.model``) from the Hugging Face Hub.

Everything lands in :func:`cache_dir` (``$OBELICS_RESOURCES``, else ``resources/`` in the user's cache
folder, :func:`obelics.paths.user_cache_dir`: ``$XDG_CACHE_HOME/obelics`` or ``~/.cache/obelics`` on Linux). Files are written under a temporary name, then renamed. Nothing
here runs at import time or in a filter: the filters only *look* in the cache.
"""

from __future__ import annotations

import ast
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from obelics.storage import atomic_writer, write_bytes_atomic

log = logging.getLogger(__name__)

GITHUB_RAW = "https://raw.githubusercontent.com"
OBELICS_REPO = "huggingface/OBELICS"
OBELICS_REF = "main"
DATA_TOOLING_REPO = "bigscience-workshop/data_tooling"
DATA_TOOLING_REF = "master"
FASTTEXT_LID_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
KENLM_REPO = "edugp/kenlm"
KENLM_FILES = ("wikipedia/en.arpa.bin", "wikipedia/en.sp.model")


class ResourceMissing(FileNotFoundError):
    """A resource (word list, model) is not available offline; ``obelics resources fetch`` gets it."""


def cache_dir() -> Path:
    """Where fetched resources live (see module docstring)."""
    if os.environ.get("OBELICS_RESOURCES"):
        return Path(os.environ["OBELICS_RESOURCES"])
    from obelics.paths import user_cache_dir

    return user_cache_dir() / "resources"


def lid_bin_path() -> Path:
    return cache_dir() / "lid.176.bin"


def kenlm_paths(name: str = "wikipedia", lang: str = "en") -> tuple[Path, Path]:
    """(ARPA/binary model, SentencePiece model) of a fetched edugp/kenlm model."""
    d = cache_dir() / "kenlm" / name
    return d / f"{lang}.arpa.bin", d / f"{lang}.sp.model"


@dataclass(frozen=True)
class WordlistSource:
    """One original word list: a Python file on GitHub and the variable (and key) holding the list."""

    file: str          # output file name in the cache's wordlists/ folder
    repo: str
    ref: str
    path: str
    variable: str
    key: str | None = None          # for dict variables: the language key
    remove: tuple[str, ...] = ()    # words the original removed from the upstream list


WORDLIST_SOURCES = (
    WordlistSource("stopwords_en.txt", DATA_TOOLING_REPO, DATA_TOOLING_REF, "ac_dc/stopwords.py", "stopwords", "en"),
    WordlistSource("flagged_words_en.txt", DATA_TOOLING_REPO, DATA_TOOLING_REF, "ac_dc/flagged_words.py",
                   "flagged_words", "en", remove=("cougar",)),
    WordlistSource("spam_words_en.txt", OBELICS_REPO, OBELICS_REF, "build_obelics/13_final_processing.py",
                   "SPAM_WORDS"),
    WordlistSource("image_url_ban_substrings.txt", OBELICS_REPO, OBELICS_REF,
                   "build_obelics/04_merge_web_docs_with_images.py", "URL_BAN_WORDS"),
)


def extract_list(source: str, variable: str, key: str | None = None) -> list[str]:
    """The literal list assigned to ``variable`` (or ``variable[key]`` for a dict) in Python ``source``.

    Parsed with :mod:`ast` and evaluated with ``literal_eval`` only — the file is never executed.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if not any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            continue
        data = ast.literal_eval(value)
        if key is not None:
            data = data[key]
        if not isinstance(data, (list, tuple, set)) or not all(isinstance(w, str) for w in data):
            raise ValueError(f"{variable} is not a list of strings")
        return list(data)
    raise ValueError(f"no literal assignment to {variable!r} found")


def _download(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` (temporary name, then rename)."""
    import requests

    with requests.get(url, stream=True, timeout=timeout) as r:
        r.raise_for_status()
        with atomic_writer(dest) as f:
            for chunk in r.iter_content(1 << 20):
                f.write(chunk)
    return dest


def _hf_download(repo_id: str, filename: str, dest: Path) -> Path:
    from huggingface_hub import hf_hub_download

    got = Path(hf_hub_download(repo_id=repo_id, filename=filename))
    with open(got, "rb") as src, atomic_writer(dest) as f:
        shutil.copyfileobj(src, f)
    return dest


def fetch_wordlists(dest: Path, github_raw: str = GITHUB_RAW, sources: Iterable[WordlistSource] = WORDLIST_SOURCES,
                    timeout: float = 60.0) -> list[Path]:
    """Download and parse the original word lists into ``dest`` (one word per line)."""
    import requests

    out = []
    for s in sources:
        url = f"{github_raw.rstrip('/')}/{s.repo}/{s.ref}/{s.path}"
        r = requests.get(url, timeout=timeout)
        r.raise_for_status()
        words = [w for w in extract_list(r.text, s.variable, s.key) if w not in s.remove]
        path = dest / s.file
        write_bytes_atomic(path, ("\n".join(words) + "\n").encode("utf-8"))
        log.info("wrote %s (%d entries) from %s", path, len(words), url)
        out.append(path)
    return out


def fetch(what: Iterable[str] = ("wordlists", "langid", "kenlm"), dest: Path | None = None, force: bool = False,
          github_raw: str = GITHUB_RAW, lid_url: str = FASTTEXT_LID_URL,
          hf_download: Callable[[str, str, Path], Path] = _hf_download) -> dict[str, list[Path]]:
    """Fetch the named resources into ``dest`` (default :func:`cache_dir`); returns the files written.

    Files already present are kept unless ``force``. Raises on any download or parse failure.
    """
    dest = Path(dest) if dest else cache_dir()
    done: dict[str, list[Path]] = {}
    for item in what:
        if item == "wordlists":
            d = dest / "wordlists"
            have = all((d / s.file).is_file() for s in WORDLIST_SOURCES)
            done[item] = ([d / s.file for s in WORDLIST_SOURCES] if have and not force
                          else fetch_wordlists(d, github_raw))
        elif item == "langid":
            p = dest / "lid.176.bin"
            if force or not p.is_file():
                _download(lid_url, p)
            done[item] = [p]
        elif item == "kenlm":
            paths = []
            for f in KENLM_FILES:
                p = dest / "kenlm" / f
                if force or not p.is_file():
                    hf_download(KENLM_REPO, f, p)
                paths.append(p)
            done[item] = paths
        else:
            raise ValueError(f"unknown resource {item!r} (wordlists, langid, kenlm)")
    return done


def status(dest: Path | None = None) -> dict[str, bool]:
    """Which resources are present in the cache."""
    dest = Path(dest) if dest else cache_dir()
    st = {f"wordlists/{s.file}": (dest / "wordlists" / s.file).is_file() for s in WORDLIST_SOURCES}
    st["lid.176.bin"] = (dest / "lid.176.bin").is_file()
    for f in KENLM_FILES:
        st[f"kenlm/{f}"] = (dest / "kenlm" / f).is_file()
    return st
