"""Payment channels on real node processes (issue 18): a funded requester's users send chat
completions through the official ``openai`` client; the requester locks credit toward each
executor (OpenChannel, solvency-checked), pays with cumulative vouchers, and the executors
claim the latest total once per ``ledger.claim_every`` requests instead of once per request.
Every replica ends with the same state; what the executors earned is exactly what the
requester spent (actual prices), and nothing is paid beyond the locked deposits."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh, write_network_genesis

pytestmark = pytest.mark.real

REQUESTS = 24
CLAIM_EVERY = 8
#: s; long enough that on a slow box the timer does not turn every request into a claim
CLAIM_INTERVAL = 10.0


def spec(name: str, model: str) -> NodeSpec:
    return NodeSpec(name, {
        "node": {"network": "channels-real", "seed": 1},
        "status": {"interval": 1.0},
        "ledger": {"block_interval": 0.5, "sync_interval": 1.0, "claim_every": CLAIM_EVERY, "claim_interval": CLAIM_INTERVAL},
        "delegation": {"max_attempts": 3, "max_retries": 3},
        "executor": {"kind": "echo", "models": [model], "capacity": 4}})


def _entries(node, author: str) -> list[dict]:
    out = httpx.get(node.api_url + "/ledger/blocks", params={"author": author, "limit": 1000}, timeout=10).json()
    return [e for b in out["blocks"] for e in b["entries"]]


def _accounts(node) -> dict:
    return {a["peer_id"]: a for a in httpx.get(node.api_url + "/ledger/accounts", timeout=10).json()["accounts"]}


def test_delegated_requests_are_paid_through_channels_with_few_entries(tmp_path):
    specs = [spec("front", "front"), spec("exec1", "m"), spec("exec2", "m")]
    write_network_genesis(specs, tmp_path, "channels-real", credits=100)
    nodes = start_network(specs, tmp_path, ready_timeout=120)
    try:
        wait_for_mesh(nodes, timeout=90)
        front, execs = nodes[0], nodes[1:]
        client = openai.OpenAI(base_url=front.api_url + "/v1", api_key="none", max_retries=0, timeout=60)
        served, t_start = 0, time.monotonic()
        for i in range(REQUESTS):
            out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"hello {i}"}],
                                                 max_tokens=8)
            assert out.choices[0].message.content
            served += 1
        # every executor claims its remainder within claim_interval; all replicas agree then
        deadline = time.monotonic() + 60
        while True:
            states = {httpx.get(n.api_url + "/ledger", timeout=10).json()["state_hash"] for n in nodes}
            acc = _accounts(execs[0])
            earned = sum(acc.get(e.peer_id, {}).get("earned", 0) for e in execs)
            if len(states) == 1 and earned and earned == acc[front.peer_id]["spent"] and all(
                    not any(c["unclaimed"] for c in httpx.get(e.api_url + "/ledger", timeout=10).json()
                            .get("channels", {}).get("in", [])) for e in execs):
                break
            assert time.monotonic() < deadline, (states, earned, acc[front.peer_id]["spent"])
            time.sleep(0.5)
        opens = [e for e in _entries(execs[0], front.peer_id) if e["t"] == "open_channel"]
        claims = [e for ex in execs for e in _entries(execs[0], ex.peer_id) if e["t"] == "claim"]
        vouchers = [c for c in claims if c["ticket"].get("channel")]
        assert opens and len(opens) <= 4 * len(nodes)   # channels toward the peers, not per request
        assert vouchers == claims                     # no legacy per-request ticket was claimed
        served_by = {ex.peer_id: httpx.get(ex.api_url + "/status", timeout=10).json()["stats"]["accepted_for_others"]
                     for ex in execs}
        assert sum(served_by.values()) >= REQUESTS
        # one claim per CLAIM_EVERY requests, plus what the claim timer took (at most one per
        # executor per CLAIM_INTERVAL while vouchers were unclaimed), never one per request
        timer = len(execs) * (int((time.monotonic() - t_start) // CLAIM_INTERVAL) + 1)
        assert len(claims) <= sum(-(-n // CLAIM_EVERY) for n in served_by.values()) + timer, (len(claims), timer)
        assert len(claims) < REQUESTS / 2
        # paid exactly what was claimed, within the deposits; supply conserved
        deposits = {(o["executor"]): o["deposit"] for o in opens}
        for ex in execs:
            assert acc[ex.peer_id]["earned"] <= sum(d for e, d in deposits.items() if e == ex.peer_id)
        summary = httpx.get(front.api_url + "/ledger", timeout=10).json()
        assert summary["supply"] + summary["burned"] == summary["genesis_supply"]
    finally:
        stop_network(nodes)
