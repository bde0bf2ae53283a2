"""benchmarks/gossip_latency.py: its --quick mode runs real node processes of every system and
writes JSON, Markdown and a plot; its helpers report missing runtimes plainly.

Assertions are on structure and delivery, never on timings (the CI machine has 2 cores).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gossip_latency.py"


@pytest.mark.real
@pytest.mark.slow
def test_gossip_latency_quick(tmp_path, run_quick):
    out = tmp_path / "bench"
    run_quick(SCRIPT.name, out, timeout=240)
    res = json.loads((out / "gossip_latency.json").read_text())
    cfg = res["config"]
    assert cfg["nodes"] == 6 and cfg["repeats"] == 1 and cfg["size"] == 1024 and cfg["netem"] is None
    assert res["host"]["cpu_cores"] >= 1 and res["host"]["node_processes"] == 6
    assert res["failures"] == {}
    systems = ["overlay", "bare"] + ([] if "js" in res["skipped"] else ["js"])
    if "js" in res["skipped"]:  # no Node.js / node_modules here: skipped with the fix
        assert "npm ci --prefix" in res["skipped"]["js"] or "Node.js" in res["skipped"]["js"]
    assert sorted(res["summary"]) == sorted(systems)
    for system in systems:
        s = res["summary"][system]
        run = res["runs"][system][0]
        assert s["delivery"] == 1.0, (system, s["delivery"])
        assert run["deliveries"] == run["expected"] == cfg["messages"] * (cfg["nodes"] - 1)
        assert run["published"] == cfg["messages"] and run["payload_time_mismatches"] == 0
        for kind in ("first_ms", "last_ms"):
            assert all(s[kind][q] > 0 and math.isfinite(s[kind][q]) for q in ("p50", "p95", "p99"))
        assert s["first_ms"]["p50"] <= s["last_ms"]["p50"]
        assert len(run["last_samples_ms"]) == cfg["messages"]
        assert s["dups_per_delivery"] >= 0 and s["cpu_s_per_delivery"] > 0 and s["rss_mib_median"] > 10
    assert any(k.startswith("overlay/bare") for k in res["ratios"])
    md = (out / "gossip_latency.md").read_text()
    assert "| system |" in md and "| overlay |" in md and "| bare |" in md
    assert (out / "gossip_latency.png").stat().st_size > 1000


def test_js_baseline_missing_modules_names_the_npm_command(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "JS_DIR", tmp_path / "js_gossip")
    monkeypatch.setattr(bench.shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None)

    class Done:
        stdout = "v20.20.2\n"

    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: Done())
    why = bench.js_available()
    assert why is not None and "npm ci --prefix" in why and "js_gossip" in why
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert "Node.js is not installed" in bench.js_available()


def test_js_harness_is_pinned_with_a_lockfile():
    pkg = json.loads((ROOT / "benchmarks" / "js_gossip" / "package.json").read_text())
    lock = json.loads((ROOT / "benchmarks" / "js_gossip" / "package-lock.json").read_text())
    deps = pkg["dependencies"]
    assert deps["libp2p"] == "3.3.11" and deps["@libp2p/gossipsub"] == "17.1.1"
    assert all(v[0].isdigit() for v in deps.values()), "exact versions only"
    assert lock["packages"][""]["dependencies"] == deps
    assert lock["packages"]["node_modules/libp2p"]["version"] == "3.3.11"


def test_netem_preflight_says_what_is_missing(bench, monkeypatch):
    monkeypatch.setattr(bench.os, "geteuid", lambda: 1000)
    assert "needs root" in bench.NetemLab.preflight()
    monkeypatch.setattr(bench.os, "geteuid", lambda: 0)
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert "apt-get install -y iproute2" in bench.NetemLab.preflight()


@pytest.mark.parametrize("size", [320, 1024, 1100, 4096])
def test_overlay_payload_is_a_real_status_of_exactly_the_size(bench, size):
    import dataclasses

    from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
    from wwwserve_p2p.wire import codec

    template = PeerStatus(peer_id="12D3KooWExamplePeer", incarnation=0, seq=0, models=("bench",),
                          load=LoadSnapshot(capacity=4), accepting=True,
                          addrs=("/ip4/127.0.0.1/tcp/40000/p2p/12D3KooWExamplePeer",))
    for msg_id, t_ns in ((1, 1_795_000_000_000_000_000), (300, 1_795_000_000_123_456_789)):
        data = bench.padded_status(codec, template, msg_id, t_ns, size, "gossip-bench")
        assert len(data) == size
        st = codec.decode_status(data, "gossip-bench")
        assert (st.seq, st.incarnation, st.peer_id) == (msg_id, t_ns, template.peer_id)
        assert dataclasses.replace(st, models=template.models) == dataclasses.replace(
            template, seq=msg_id, incarnation=t_ns)
    with pytest.raises(ValueError):
        bench.padded_status(codec, template, 1, 1, 20, "gossip-bench")
