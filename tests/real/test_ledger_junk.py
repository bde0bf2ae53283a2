"""Issue 18 §5 on real processes: 20,000 junk ledger messages from fresh keys (valid blocks,
"paid" legacy claims between fresh keys, gap tips, ~200 KB duplicate-entry blocks,
equivocations, malformed and oversized payloads; ``benchmarks/ledger_junk.py``) published on
the ledger gossip topic into one of 3 honest nodes, the attacker also serving
``/wwwserve/ledger-sync/1`` with all its chains.

Structural bounds only (no timing): on every honest node what non-members hold stays within
the documented cap (``services/_admission.STORED_BYTES``) in the node's own count and in its
SQLite store read back after it stopped, at most the shared rate budget of non-member blocks
were stored, and user requests through the OpenAI API still succeed. CPU and RSS are measured
by ``benchmarks/adversaries.py --attack ledger_junk`` (with a baseline run).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from wwwserve_p2p.config import load_genesis
from wwwserve_p2p.ledger_store import LedgerStore
from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh, write_network_genesis
from wwwserve_p2p.services._admission import STORED_BYTES, TOTAL_BLOCKS, WINDOW_S

pytestmark = [pytest.mark.real, pytest.mark.slow]

ADVERSARIES = Path(__file__).resolve().parents[2] / "benchmarks" / "adversaries.py"
JUNK = 20_000


def spec(name: str, models: list[str]) -> NodeSpec:
    return NodeSpec(name, {"node": {"network": "junk-real", "seed": 1},
                           "status": {"interval": 1.0},
                           "ledger": {"block_interval": 0.5, "sync_interval": 1.0},
                           "executor": {"kind": "echo", "models": models, "capacity": 4}})


def ask(node, i: int) -> str:
    client = openai.OpenAI(base_url=node.api_url + "/v1", api_key="none", max_retries=2, timeout=60)
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"legit {i} ok"}],
                                         max_tokens=4)
    return out.choices[0].message.content


def test_junk_from_fresh_keys_leaves_honest_storage_capped_and_requests_served(tmp_path):
    specs = [spec("a", ["front"]), spec("b", ["m"]), spec("c", ["m"])]
    genesis_path = write_network_genesis(specs, tmp_path, "junk-real", credits=100.0)
    params = {"genesis": str(genesis_path), "count": JUNK, "rate": 1e9, "duration": 0.0, "drain": 3.0}
    # the attacker generates its junk (tens of seconds) while the network starts
    errlog = tmp_path / "attacker.log"  # a file, not a pipe: nothing can block the child while we wait
    with open(errlog, "w") as err_file:
        attacker = subprocess.Popen([sys.executable, str(ADVERSARIES), "--child", "ledger_junk", json.dumps(params)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file, text=True)
    nodes = []
    try:
        nodes = start_network(specs, tmp_path, ready_timeout=120)
        wait_for_mesh(nodes, timeout=90)
        honest = {n.peer_id for n in nodes}
        assert ask(nodes[0], 0)
        assert attacker.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        attacker.stdin.write(json.dumps({"multiaddr": nodes[0].multiaddr, "peer_id": nodes[0].peer_id}) + "\n")
        attacker.stdin.flush()
        out, _ = attacker.communicate(timeout=300)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        assert attacker.returncode == 0 and lines, errlog.read_text()[-3000:]
        res = json.loads(lines[-1])
        assert res["sent"] == JUNK
        for i in range(1, 6):  # honest requests still succeed right after the flood
            assert ask(nodes[0], i)
        elapsed = time.monotonic() - t0
        views = {n.name: httpx.get(n.api_url + "/ledger", timeout=30).json() for n in nodes}
        heads = {n.name: httpx.get(n.api_url + "/ledger/blocks", timeout=30).json()["heads"] for n in nodes}
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait(10)
        stop_network(nodes)
    # the rate budget: at most TOTAL_BLOCKS non-member blocks per window (plus one full bucket)
    rate_bound = TOTAL_BLOCKS * (1 + elapsed / WINDOW_S) + TOTAL_BLOCKS
    genesis = load_genesis(genesis_path)
    for n in nodes:
        v = views[n.name]
        nm = v["non_members"]
        assert nm["stored_bytes"] <= nm["max_stored_bytes"] == STORED_BYTES, nm
        assert v["rejected"].get("non_member_rate", 0) + v["rejected"].get("non_member_full", 0) > 0, v["rejected"]
        junk_heads = [h for h in heads[n.name] if h["author"] not in honest]
        assert sum(h["height"] for h in junk_heads) <= rate_bound, (len(junk_heads), rate_bound)
        # the store on disk, read back: non-members' blocks within the cap
        with LedgerStore.open(Path(n.config_path).parent / "ledger.sqlite", genesis) as store:
            junk_blocks = [b for b in store.iter_blocks() if b.author not in honest]
            junk_proofs = [p for p in store.iter_proofs() if p.author not in honest]
        assert sum(b.canonical_size() for b in junk_blocks) <= STORED_BYTES
        assert len(junk_blocks) <= rate_bound and len(junk_proofs) <= rate_bound
