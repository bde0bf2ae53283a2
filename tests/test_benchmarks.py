"""The benchmarks' --quick modes run and produce their JSON, table and plot."""

from __future__ import annotations

import json

import pytest



@pytest.mark.real
def test_delegation_overhead_quick(tmp_path, run_quick):
    out = tmp_path / "bench"
    run_quick("delegation_overhead.py", out, timeout=120)
    res = json.loads((out / "delegation_overhead.json").read_text())
    s = res["summary"]
    assert s["direct"]["p50_ms"] > 0 and s["overlay"]["p50_ms"] > s["direct"]["p50_ms"]
    assert s["overlay"]["rps"] > 0 and len(res["samples_ms"]["overlay"]) == 30
    assert (out / "delegation_overhead.md").read_text().startswith("| path |")
    assert (out / "delegation_overhead.png").stat().st_size > 1000


@pytest.mark.real
def test_ledger_throughput_quick(tmp_path, run_quick):
    out = tmp_path / "bench"
    run_quick("ledger_throughput.py", out, timeout=300)
    res = json.loads((out / "ledger_throughput.json").read_text())
    s = res["summary"]
    # structure and consistency, never speed: the fold alone is faster than fold + checks
    assert s["apply_fold_eps"] > s["apply_checked_eps"] > 0 and s["ed25519_vps"] > 0
    assert s["sync_entries"] == 10_000 and res["sync"][0]["stored_blocks"] == res["sync"][0]["blocks"] == 10
    assert len(res["heal_rounds"]) == 1 and len(res["heal_rounds"][0]["per_node_s"]) == 6
    assert (out / "ledger_throughput.md").read_text().startswith("| measurement |")
    assert (out / "ledger_throughput.png").stat().st_size > 1000
