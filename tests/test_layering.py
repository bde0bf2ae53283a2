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


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute-ish module name, level) of every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
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
