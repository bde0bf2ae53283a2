"""The benchmarks' --quick modes run and produce their JSON, table and plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.real
def test_delegation_overhead_quick(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "delegation_overhead.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "delegation_overhead.json").read_text())
    s = res["summary"]
    assert s["direct"]["p50_ms"] > 0 and s["overlay"]["p50_ms"] > s["direct"]["p50_ms"]
    assert s["overlay"]["rps"] > 0 and len(res["samples_ms"]["overlay"]) == 30
    assert (out / "delegation_overhead.md").read_text().startswith("| path |")
    assert (out / "delegation_overhead.png").stat().st_size > 1000
