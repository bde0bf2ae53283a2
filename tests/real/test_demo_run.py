"""``wwwserve demo`` end to end, small: real node processes, the openai client, paced echo executors.

Checks what the demo must get right whatever the host's speed (no timing is asserted): every question
answered on both runs, the paced executors' stats read back from the node logs, the network run's
work spread over the nodes, the per-node tables and results.json written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from wwwserve_p2p import demo as demo_mod
from wwwserve_p2p.demo import DemoOptions, run_demo

pytestmark = [pytest.mark.real, pytest.mark.slow]

QUESTIONS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mt-bench" / "question.jsonl"


@pytest.mark.skipif(not QUESTIONS.is_file(), reason=f"MT-bench questions not found at {QUESTIONS}")
def test_demo_echo_alone_then_network(tmp_path, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(demo_mod, "Console", lambda *a, **k: Console(file=buf, width=100, force_terminal=False))
    opts = DemoOptions(nodes=2, requests=8, rate=4.0, max_tokens=16, executor="echo", out_dir=tmp_path / "demo",
                       questions=QUESTIONS)
    code = run_demo(opts)
    out = buf.getvalue()
    assert code == 0, out
    res = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert res["summary"]["ok"] == 8 and len(res["alone_requests"]) == 8
    assert all(r["ok"] and r["answer"] for r in res["requests"] + res["alone_requests"])
    assert res["alone_pacing"]["tokens"] > 0 and res["alone_pacing"]["requests"] == 8
    nodes = res["nodes"]
    assert sum(n["pacing"]["requests"] for n in nodes.values()) >= 8  # every node shut down cleanly
    assert nodes["0-entry"]["offloaded"] + nodes["0-entry"]["served_locally"] == 8
    assert "network p50 latency" in out and "real:" in out and "emulated:" in out
    assert max(len(x) for x in out.splitlines()) <= 100 and "…" not in out
