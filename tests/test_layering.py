"""Enforces DESIGN §2's import rules on src/wwwserve_p2p by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "src" / "wwwserve_p2p"

# modules core/ may import: the standard library minus I/O, clocks and randomness
CORE_FORBIDDEN = {"trio", "libp2p", "google", "torch", "transformers", "time", "random", "socket",
                  "asyncio", "threading", "os", "subprocess", "sqlite3", "httpx", "datetime", "secrets",
                  "uuid", "logging", "pathlib", "io"}


def _imports(path: Path, tree: ast.AST | None = None) -> list[tuple[str, int]]:
    """(absolute-ish module name, level) of every import in ``path`` (or in ``tree``, a part of it)."""
    tree = tree or ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = list(path.relative_to(PKG).parent.parts)
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                names = [f"{mod}"] if mod else [a.name for a in node.names]
                out += [("wwwserve_p2p." + ".".join([*base, n]).strip("."), node.level) for n in names]
            else:
                out.append((mod, 0))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "_pb" not in p.parts)


def _sub(path: Path) -> str:
    return path.relative_to(PKG).parts[0] if len(path.relative_to(PKG).parts) > 1 else path.stem


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_import_rules(path: Path) -> None:
    sub = _sub(path)
    for mod, _level in _imports(path):
        top = mod.split(".")[0]
        inner = mod.split(".")[1] if mod.startswith("wwwserve_p2p.") and mod.count(".") >= 1 else ""
        if sub == "core":
            assert top not in CORE_FORBIDDEN, f"core/ must stay pure: {path.name} imports {mod}"
            if top == "wwwserve_p2p":
                assert inner in ("core", "", "errors"), f"core/ may import only core/ and errors: {mod}"
        if top == "libp2p" or top == "multiaddr":
            assert sub == "net" and path.name != "base.py", f"libp2p is confined to net/: {path} imports {mod}"
        if top == "google" or inner == "_pb":
            assert sub == "wire", f"protobuf is confined to wire/: {path} imports {mod}"
        if top in ("torch", "transformers", "tokenizers"):
            assert sub == "executors", f"torch/transformers only in executors/: {path} imports {mod}"
        if sub in ("services", "api", "core", "wire", "executors"):
            assert not mod.startswith("wwwserve_p2p.net.libp2p"), f"{path} must use net.base, not {mod}"
        if sub in ("api", "services"):
            assert inner != "_pb", f"{path} imports generated protobuf"


def test_rules_see_violations(tmp_path: Path) -> None:
    """The checker itself must catch a violation (so this test can fail)."""
    bad = PKG / "core" / "_layering_probe.py"
    bad.write_text("import time\n")
    try:
        with pytest.raises(AssertionError):
            test_import_rules(bad)
    finally:
        bad.unlink()


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(["wwwserve_p2p", *parts])


def _type_checking_imports(path: Path) -> set[str]:
    """Modules imported only under ``if TYPE_CHECKING:`` in ``path`` (named as by _imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    blocks = [n for n in ast.walk(tree) if isinstance(n, ast.If)
              and getattr(n.test, "id", getattr(n.test, "attr", "")) == "TYPE_CHECKING"]
    return {m for b in blocks for m, _ in _imports(path, ast.Module(body=b.body, type_ignores=[]))}


def _import_graph(*, intra_package_typing: bool = True) -> dict[str, set[str]]:
    """module -> wwwserve_p2p modules it imports (``from pkg import name`` counts as pkg.name
    when that is a module, else as pkg), TYPE_CHECKING imports included; with
    ``intra_package_typing=False``, annotation-only imports between modules of one package
    (e.g. core/ledger's entries <-> blocks) are left out."""
    mods = {_module_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        typing_only = _type_checking_imports(path) if not intra_package_typing else set()
        for mod, _ in _imports(path):
            if mod in typing_only and mod.rsplit(".", 1)[0] == name.rsplit(".", 1)[0]:
                continue
            if not mod.startswith("wwwserve_p2p"):
                continue
            while mod not in mods and "." in mod:
                mod = mod.rsplit(".", 1)[0]
            if mod in mods and mod != name:
                deps.add(mod)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """No circle in the import graph, TYPE_CHECKING imports included, except annotation-only
    imports between sibling modules of one package (a package is one unit)."""
    graph = _import_graph(intra_package_typing=False)
    graph.pop("wwwserve_p2p", None)  # the curated public API imports lazily from everything
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_services_never_import_the_node() -> None:
    """Services get narrow dependencies (DESIGN §2), never the node: not even for typing."""
    graph = _import_graph()
    bad = {m: sorted(d) for m, d in graph.items() if m.startswith("wwwserve_p2p.services")
           and "wwwserve_p2p.node" in d}
    assert bad == {}


def test_services_rule_sees_a_violation() -> None:
    probe = PKG / "services" / "_layering_probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..node import Node\n")
    try:
        with pytest.raises(AssertionError):
            test_services_never_import_the_node()
    finally:
        probe.unlink()
