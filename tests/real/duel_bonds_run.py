"""Issue 18 (duel bonds) on real node processes: one duel, then the loser tries to move out what
it held before the duel and cannot, and the winner spends its gain.

Four ``wwwserve node`` processes (requester with ``duel_rate = 1``; executors ``x`` and ``y``, echo,
no stake, ``api.admin = true``; a judge whose "LLM judge" is the echo executor, which votes for
the answer shown first because the prompt starts with ``[[A]]``). One chat completion through
the official ``openai`` client; both executors lock their bond (``DuelBond``), the verdict counts,
the winner releases both bonds (``DuelRelease``). Then, through ``POST /admin/transfer``:

- the loser asks to transfer everything it held before the duel plus what it earned: refused
  (``insufficient_funds``: its bond is not its credit any more, whatever it unstakes or withdraws);
- the winner transfers everything it holds now, its gain included: accepted, and the transfer
  lands in the requester's chain's view (spent) on every replica.

Standalone (not collected by pytest; a slow real run, the report's numbers)::

    .venv/bin/python tests/real/duel_bonds_run.py [workdir]

Prints one JSON line; exits 1 if a check failed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh, write_network_genesis

NETWORK = "duel-bonds-real"
BOND = 1_000_000   # a duelist's default duel.max_bond: the largest it accepts


def spec(name: str, **sections) -> NodeSpec:
    cfg = {"node": {"network": NETWORK, "seed": 1}, "status": {"interval": 1.0},
           "ledger": {"block_interval": 0.5, "sync_interval": 1.0, "claim_every": 1},
           "executor": {"kind": "echo", "models": ["m"], "capacity": 2}}
    for k, v in sections.items():
        cfg.setdefault(k, {}).update(v)
    return NodeSpec(name, cfg)


def accounts(node) -> dict:
    return {a["peer_id"]: a for a in httpx.get(node.api_url + "/ledger/accounts", timeout=10).json()["accounts"]}


def held(a: dict) -> int:
    """What an executor holds apart from what it earned: balance + deposits locked in its own
    payment channels - earned (micro-credits; it has no stake)."""
    return a.get("balance", 0) + a.get("locked", 0) - a.get("earned", 0)


def wait(cond, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def run(workdir: Path) -> dict:
    specs = [spec("req", executor={"models": ["front"]}, policy={"participate": False},
                  duel={"duel_rate": 1.0, "judges_k": 1, "executor_bond": BOND, "judge": "none", "probe_grace": 5.0}),
             spec("x", policy={"stake": 0}, api={"admin": True}),
             spec("y", policy={"stake": 0}, api={"admin": True}),
             spec("judge", executor={"models": ["j"]}, duel={"judge": "llm", "judge_timeout": 120.0})]
    write_network_genesis(specs, workdir, NETWORK, credits=100)
    nodes = start_network(specs, workdir, ready_timeout=120)
    out: dict = {"checks": {}}
    try:
        wait_for_mesh(nodes, timeout=90)
        req, x, y, judge = nodes
        wait(lambda: all(accounts(n).get(judge.peer_id, {}).get("stake", 0) > 0 for n in nodes), "the judge to stake")
        client = openai.OpenAI(base_url=req.api_url + "/v1", api_key="none", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "[[A]] hello"}],
                                               max_tokens=8)
        out["answer"] = reply.choices[0].message.content
        # the verdict counted and the winner released both bonds, on every replica
        def settled():
            views = [accounts(n) for n in nodes]
            ex = [views[0].get(p.peer_id, {}) for p in (x, y)]
            if not all(v.get("duels", 0) for v in ex):
                return None
            won = [p for p, v in zip((x, y), ex) if v.get("duels_won")]
            if len(won) != 1:
                return None
            # both bonds back: balance + channel deposits (its own desk opens channels) - earned = alloc + bond
            released = [v.get(won[0].peer_id, {}) for v in views]
            if not all(held(a) == 100_000_000 + BOND for a in released):
                return None
            return won[0]
        winner = wait(settled, "the duel to settle and the winner to release its bonds", 180)
        loser = y if winner is x else x
        views = {n.name: accounts(n) for n in nodes}
        acc = views["req"]
        w, l = acc[winner.peer_id], acc[loser.peer_id]
        out.update(winner=winner.name, loser=loser.name, winner_account=w, loser_account=l)
        out["checks"]["bond_moved"] = held(w) - held(l) == 2 * BOND and held(l) == 100_000_000 - BOND
        # the loser tries to take out what it held before the duel plus what it earned
        r = httpx.post(loser.api_url + "/admin/transfer", json={"to": req.peer_id, "amount": l["balance"] + BOND},
                       timeout=10)
        out["loser_transfer"] = {"status": r.status_code, "body": r.json()}
        out["checks"]["loser_refused"] = r.status_code == 400 and r.json().get("error", {}).get("code") == \
            "insufficient_funds" if isinstance(r.json().get("error"), dict) else r.status_code == 400
        # the winner spends everything it holds, the loser's bond included
        r = httpx.post(winner.api_url + "/admin/transfer", json={"to": req.peer_id, "amount": w["balance"]}, timeout=10)
        out["winner_transfer"] = {"status": r.status_code, "body": r.json()}
        out["checks"]["winner_spent"] = r.status_code == 200
        if r.status_code == 200:
            wait(lambda: all(accounts(n)[winner.peer_id]["balance"] < BOND for n in nodes),
                 "the winner's transfer on every replica")
            out["checks"]["winner_spent_everywhere"] = True
        out["supply"] = [httpx.get(n.api_url + "/ledger", timeout=10).json().get("supply") for n in nodes]
    finally:
        stop_network(nodes)
    return out


if __name__ == "__main__":
    wd = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="duel-bonds-", dir="/tmp"))
    res = run(wd)
    print(json.dumps(res, default=str))
    sys.exit(0 if res["checks"] and all(res["checks"].values()) else 1)
