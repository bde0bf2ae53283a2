"""Issue 12, dynamic participation with real node processes: while a loaded node's users keep
sending requests (some waiting in its queue, offloadable: late binding), a node joins, one
leaves (SIGTERM) and one is killed (SIGKILL). Every request gets exactly one complete answer
(0 lost, 0 duplicated), and the executor that joined claims, in its own chain, payment for every request it answered and
never more than the requester's vouchers promise."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from wwwserve_p2p.localnet import NodeSpec, start_network, start_node, stop_network, wait_for_mesh

pytestmark = [pytest.mark.real, pytest.mark.slow]

WORDS = " ".join(f"w{i}" for i in range(24))
N_REQUESTS = 24


def spec(name, capacity, delay):
    return NodeSpec(name, {"node": {"network": "wwwserve-test-dynamic", "log_level": "INFO"},
                           "status": {"interval": 1.0},
                           "executor": {"kind": "echo", "models": ["m"], "capacity": capacity,
                                        "delay_per_token": delay}})


def send(url: str, i: int) -> dict:
    """One streamed completion; returns text, executor and errors."""
    body = {"model": "m", "prompt": WORDS, "max_tokens": 100, "stream": True}
    out = {"i": i, "text": "", "executor": None, "error": None}
    try:
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as r:
            out["executor"] = r.headers.get("x-wwwserve-executor")
            if r.status_code != 200:
                out["error"] = f"HTTP {r.status_code}"
                return out
            for line in r.iter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    obj = json.loads(line[5:])
                    if obj.get("choices"):
                        out["text"] += obj["choices"][0].get("text") or ""
    except httpx.HTTPError as exc:
        out["error"] = repr(exc)
    return out


def paid(node, author: str) -> tuple[int, int, int]:
    """What ``author``'s own chain (in ``node``'s view) claims: (requests paid, claimed amount,
    running total of the vouchers claimed). A payment-channel voucher claim is cumulative (its
    ``seq`` counts the requests of the channel); a legacy ticket claim pays one request."""
    blocks = httpx.get(node.api_url + "/ledger/blocks", params={"author": author, "from": 1, "to": 1000},
                       timeout=10).json().get("blocks", [])
    entries = [e for b in blocks for e in b["entries"] if e.get("t") == "claim"]
    per_channel: dict[str, dict] = {}
    legacy = 0
    for e in entries:
        t = e["ticket"]
        if t.get("channel"):
            if t["seq"] >= per_channel.get(t["channel"], {"ticket": {"seq": 0}})["ticket"]["seq"]:
                per_channel[t["channel"]] = e
        else:
            legacy += 1
    n = legacy + sum(e["ticket"]["seq"] for e in per_channel.values())
    amount = sum(e["amount"] for e in per_channel.values())
    total = sum(e["ticket"]["total"] for e in per_channel.values())
    return n, amount, total


def test_join_leave_kill_loses_and_duplicates_nothing_and_claims_match(tmp_path):
    # a: the loaded node (1 slow slot) with all the users; b, c, d: executors (d joins later)
    specs = [spec("a", 1, 0.1), spec("b", 2, 0.05), spec("c", 2, 0.05)]
    late = spec("d", 2, 0.05)
    nodes = start_network(specs, tmp_path, ready_timeout=90)
    extra = []
    try:
        wait_for_mesh(nodes, timeout=60)
        a, b, c = nodes
        with ThreadPoolExecutor(max_workers=N_REQUESTS) as pool:
            futs = []
            for i in range(N_REQUESTS):
                futs.append(pool.submit(send, a.api_url, i))
                time.sleep(0.25)
                if i == 6:
                    extra.append(start_node(late, tmp_path, bootstrap=[a.multiaddr]))
                elif i == 12:
                    c.terminate()  # leaves gracefully
                elif i == 16:
                    b.kill()  # SIGKILL mid-stream: its attempts are re-dispatched
            results = [f.result() for f in futs]
        assert [r["error"] for r in results] == [None] * N_REQUESTS, "0 lost"
        assert all(r["text"] == WORDS for r in results), "each answer complete and not duplicated"
        executed = Counter(r["executor"] for r in results)
        assert sum(executed.values()) == N_REQUESTS and a.status()["stats"]["failed"] == 0
        # the joined executor claims in its own chain what it answered (propagation is the ledger's business)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(paid(n, n.peer_id)[0] < executed.get(n.peer_id, 0) for n in extra):
            time.sleep(1)
        for n in extra:
            count, amount, total = paid(n, n.peer_id)
            assert count >= executed.get(n.peer_id, 0), (n.name, count, executed)  # every answer paid
            assert amount <= total  # never more than the vouchers promise
    finally:
        stop_network(nodes + extra)
