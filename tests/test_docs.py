"""The references in docs/ and the citations that point at them.

Every ``§`` citation in the project names the document it cites (``docs/reference.md §5.3``,
``docs/training-reference.md §1.5``; further sections on the same line may follow bare, as in
``docs/reference.md §5.3–§5.4``), and every cited section exists, as does every cited defect ``§9 #N``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("docs/reference.md", "docs/training-reference.md")
CITATION = re.compile(r"§\s?(\d+(?:\.\d+)?)(?:\s?#(\d+))?")


def sections(doc: str) -> set[str]:
    """The numbers of a document's ``##``/``###`` headings (``5``, ``5.3``)."""
    found = set()
    for line in (ROOT / doc).read_text().splitlines():
        m = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if m:
            found.add(m.group(1))
    return found


def defects() -> dict[int, str]:
    """The numbered defects of docs/reference.md §9: item number -> its subsection (``9.2``)."""
    items, sub = {}, None
    for line in (ROOT / DOCS[0]).read_text().splitlines():
        if line.startswith("## "):
            sub = None
        m = re.match(r"### (9\.\d) ", line)
        if m:
            sub = m.group(1)
        m = re.match(r"(\d+)\. ", line)
        if sub and m:
            items[int(m.group(1))] = sub
    return items


def cited_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / f for f in listed.split() if not f.startswith("docs/") and f != "tests/test_docs.py"
            and Path(f).suffix in (".py", ".pyx", ".yaml", ".yml", ".md", ".toml") and (ROOT / f).is_file()]


def check_line(line: str, secs: dict[str, set[str]], items: dict[int, str]) -> list[str]:
    """What is wrong with the citations of one line (empty when nothing is)."""
    if not re.search(r"§\s?\d", line):
        return []
    if "RFC" in line and not any(d in line for d in DOCS):
        return []
    hits = sorted((line.find(d), d) for d in DOCS if d in line)
    first = CITATION.search(line)
    if not hits or first.start() < hits[0][0]:
        return [f"a citation that does not name its document: {line.strip()[:100]!r}"]
    errors = []
    for k, (pos, doc) in enumerate(hits):
        end = hits[k + 1][0] if k + 1 < len(hits) else len(line)
        for m in CITATION.finditer(line, pos, end):
            sec, item = m.group(1), m.group(2)
            if sec not in secs[doc]:
                errors.append(f"{doc} has no §{sec}")
            if item and doc == DOCS[0] and (int(item) not in items or (sec != "9" and items[int(item)] != sec)):
                errors.append(f"{doc} §{sec} has no defect #{item}")
    return errors


def test_check_line_catches_bad_citations():
    secs = {DOCS[0]: {"5", "5.3", "9", "9.2"}, DOCS[1]: {"1", "1.5"}}
    items = {11: "9.2"}
    assert check_line("cutoffs (docs/reference.md §5.3–§5.4)", secs, items) == ["docs/reference.md has no §5.4"]
    assert check_line("see §5.3", secs, items)
    assert check_line("docs/reference.md §9 #11, §9.2 #11", secs, items) == []
    assert check_line("docs/reference.md §9.2 #12", secs, items) == ["docs/reference.md §9.2 has no defect #12"]
    assert check_line("docs/training-reference.md §1.5 and docs/reference.md §5", secs, items) == []
    assert check_line("urljoin (RFC 3986 §5)", secs, items) == []


def test_every_citation_resolves():
    secs = {doc: sections(doc) for doc in DOCS}
    assert {"1", "3.4", "5.3", "9.3", "10.5", "12"} <= secs[DOCS[0]]
    assert {"1.1", "1.5", "2.2", "6", "9"} <= secs[DOCS[1]]
    items = defects()
    assert sorted(items) == list(range(1, 19))
    wrong = []
    for path in cited_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if path.name == "wordlists.py" and "\\u" in line:  # the character data holds a literal §
                continue
            wrong += [f"{path.relative_to(ROOT)}:{n}: {e}" for e in check_line(line, secs, items)]
    assert not wrong, "\n".join(wrong)
