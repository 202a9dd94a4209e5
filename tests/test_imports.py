"""Import structure: no cycles, the packages layered, and every module importable on its own.

- Static (``ast``): the graph of the project's imports between its own modules has no cycle, neither among
  module-level imports nor once imports inside functions are added (a deferred import that only hides a
  cycle is still a cycle). Imports under ``if TYPE_CHECKING:`` are not run and are not counted.
- Layering: the core (``obelics/`` but its CLI) imports no other package; ``filters`` only the core;
  ``pipeline`` the core and ``filters``; ``model`` the core; ``train`` the core and ``model``. The CLI
  (``obelics/cli.py``, ``obelics/__main__.py``, ``obelics/commands/``) sits on top: it may import
  everything and nothing imports it. Every command the CLI lists has its module.
- Dynamic: every module is imported as the first of the project's modules, in a fresh interpreter state:
  one subprocess imports the modules one after another and, before each, drops every project module from
  ``sys.modules``, so each import runs all of the project code it needs anew, in the order that module
  triggers (which is why one pass in any order covers every order). Third-party packages (torch, ray, ...)
  stay loaded, which keeps this to seconds (about 8 s of CPU); compiled extension modules stay too (they
  cannot be initialised twice).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("obelics", "filters", "pipeline", "model", "train")
CLI = "cli"
# which packages each may import (beside itself); the CLI may import every package
ALLOWED = {
    "obelics": set(),
    "filters": {"obelics"},
    "pipeline": {"obelics", "filters"},
    "model": {"obelics"},
    "train": {"obelics", "model"},
    CLI: set(PACKAGES),
}


def _modules() -> dict[str, Path]:
    """Dotted name -> source file of every module of the project's packages (compiled ones by their .pyx)."""
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")) + sorted((ROOT / pkg).rglob("*.pyx")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()
# the dynamic check imports these; ``__main__`` modules are programs (importing one runs it)
PY_MODULES = sorted(m for m, p in MODULES.items() if p.suffix == ".py" and not m.endswith(".__main__"))


def layer(module: str) -> str:
    """The layer a module belongs to: its top-level package, or ``cli``."""
    if module in ("obelics.cli", "obelics.__main__") or module.startswith("obelics.commands"):
        return CLI
    return module.split(".")[0]


def _owner(name: str) -> str | None:
    """The project module ``name`` lives in (``a.b.func`` -> ``a.b``), or None outside the project."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules an import statement in ``module`` loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".")
            if MODULES[module].name not in ("__init__.py", "__init__.pyx"):
                base = base[:-1]
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        # `from pkg import sub` loads the module pkg.sub; `from mod import name` loads mod
        names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]
    found = []
    for name in names:
        owner = _owner(name)
        if owner and owner != module and owner not in found:
            found.append(owner)
    return found


def import_graph() -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """``(top, deferred)``: for every module, the project modules it imports (with a line number) at module
    level, and inside functions."""
    top: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    deferred: dict[str, dict[str, int]] = {m: {} for m in MODULES}

    def visit(module: str, nodes: list[ast.stmt], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for t in _targets(module, node):
                    (deferred if in_function else top)[module].setdefault(t, node.lineno)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                visit(module, node.orelse, in_function)
                continue
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    visit(module, [b for b in block if isinstance(b, ast.AST)], inner)

    for module, path in MODULES.items():
        if path.suffix == ".py":
            visit(module, ast.parse(path.read_text(), str(path)).body, False)
    return top, deferred


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def strongconnect(v: str) -> None:
        # iterative Tarjan: (node, iterator over its successors)
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        while work:
            node, succ = work[-1]
            for w in succ:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1 or node in graph[node]:
                        cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return cycles


def _describe(cycles, edges) -> str:
    lines = []
    for comp in cycles:
        lines.append(" <-> ".join(comp))
        for a in comp:
            for b in comp:
                if b in edges[a]:
                    lines.append(f"    {a} imports {b} ({MODULES[a].relative_to(ROOT)}:{edges[a][b]})")
    return "\n".join(lines)


def test_find_cycles_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c"], ["e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_relative_deferred_and_type_checking_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "obelics"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\nfrom obelics.c import thing\n")
    (pkg / "b.py").write_text("def f():\n    from obelics import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from obelics import a\n")
    monkeypatch.setattr(sys.modules[__name__], "MODULES",
                        {"obelics": pkg / "__init__.py", "obelics.a": pkg / "a.py", "obelics.b": pkg / "b.py",
                         "obelics.c": pkg / "c.py"})
    top, deferred = import_graph()
    assert set(top["obelics.a"]) == {"obelics.b", "obelics.c"}
    assert top["obelics.b"] == {} and set(deferred["obelics.b"]) == {"obelics.a"}
    assert top["obelics.c"] == {} and deferred["obelics.c"] == {}
    full = {m: set(top[m]) | set(deferred[m]) for m in top}
    assert find_cycles(full) == [["obelics.a", "obelics.b"]]


def test_no_import_cycle_at_module_level():
    top, _ = import_graph()
    cycles = find_cycles({m: set(t) for m, t in top.items()})
    assert not cycles, "import cycles among module-level imports:\n" + _describe(cycles, top)


def test_no_import_cycle_through_deferred_imports():
    top, deferred = import_graph()
    full = {m: {**deferred[m], **top[m]} for m in top}
    cycles = find_cycles({m: set(t) for m, t in full.items()})
    assert not cycles, ("import cycles once imports inside functions are counted (move the shared code to "
                        "a module both can import):\n" + _describe(cycles, full))


def test_layering():
    top, deferred = import_graph()
    wrong = []
    for module in MODULES:
        for target, line in {**deferred[module], **top[module]}.items():
            src, dst = layer(module), layer(target)
            if src != dst and dst not in ALLOWED[src]:
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} ({src}) imports {target} ({dst})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_cli_commands_have_modules():
    from obelics.cli import COMMANDS

    missing = [c for c in COMMANDS if f"obelics.commands.{c}" not in MODULES]
    assert not missing, f"obelics/cli.py lists commands without a module: {missing}"


_IMPORT_EACH = r"""
import importlib, json, sys, traceback
packages = tuple(sys.argv[1].split(","))
failed = {}
for name in json.loads(sys.stdin.read()):
    for loaded in [m for m in sys.modules if m.split(".")[0] in packages]:
        if not (getattr(sys.modules[loaded], "__file__", None) or "").endswith(".so"):
            del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-4)
print(json.dumps(failed))
"""


def _import_each(names: list[str], packages: tuple[str, ...], path: Path) -> dict[str, str]:
    """Import each module of ``names`` first (see the module docstring); the failures with their traceback."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]),
           "DS_ACCELERATOR": os.environ.get("DS_ACCELERATOR", "cpu")}
    proc = subprocess.run([sys.executable, "-c", _IMPORT_EACH, ",".join(packages)], input=json.dumps(names),
                          capture_output=True, text=True, cwd=path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_each_catches_a_cycle(tmp_path):
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from cyc.a import A\nB = 1\n")
    (pkg / "c.py").write_text("C = 1\n")
    failed = _import_each(["cyc.a", "cyc.b", "cyc.c"], ("cyc",), tmp_path)
    assert sorted(failed) == ["cyc.a", "cyc.b"]
    assert "partially initialized" in failed["cyc.a"]


def test_every_module_imports_first():
    failed = _import_each(PY_MODULES, PACKAGES, ROOT)
    assert not failed, "modules that fail to import on their own:\n" + "\n".join(
        f"--- {name}\n{tb}" for name, tb in failed.items())
