#!/usr/bin/env python3
"""First-token deadlines of honest executors with long prompts, on real node processes (issue 15
item 7).

Network: ``a`` serves only ``front`` (echo); ``b``, ``c``, ``d`` serve ``m`` with the ``paced``
executor (an echo's real tokens released on an emulated RTX 3090 running Llama-3-8B, 4 slots:
the first token comes after the prefill of the prompt, ~0.02 s for 5 words, ~1.3 s for 3,000).
Each executor first measures itself on ``--warm`` local requests of mixed prompt sizes, then the
OpenAI API of ``a`` gets ``--short`` short requests, ``--long`` requests with ``--long-words``
words, and ``--short`` short ones again, one at a time (4 tokens each), all offloaded.

Reported: per phase latency p50/max and the executors that served; from ``a``'s ``/status``:
re-dispatches and the reputation events it recorded (``slow``: a first token later than the
derived deadline), the peers it penalised, and what each executor's offers state for the
long prompt. An honest executor must not be cut off or penalised for a long prefill.

    python benchmarks/deadline_prefill.py --out results/deadline_prefill
    # the code before (deadline from the average advertised speed):
    cd /work/before && PYTHONPATH=/work/before/src /work/main/.venv/bin/python \\
        /work/main/benchmarks/deadline_prefill.py --out /tmp/deadline-before
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import httpx

from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh

NETWORK = "wwwserve-deadline-prefill"


def specs() -> list[NodeSpec]:
    def one(name: str, ex: dict[str, Any]) -> NodeSpec:
        return NodeSpec(name, {"node": {"network": NETWORK, "log_level": "INFO"}, "status": {"interval": 1.0},
                               "executor": ex})
    paced = {"kind": "paced", "gpu": "RTX3090", "model": "llama-3-8b", "capacity": 4,
             "inner": {"kind": "echo", "models": ["m"]}}
    return [one("a", {"kind": "echo", "models": ["front"]}), one("b", paced), one("c", paced), one("d", paced)]


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def ask(c: httpx.Client, url: str, text: str) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        r = c.post(url + "/v1/chat/completions", json={"model": "m", "max_tokens": 4,
                                                       "messages": [{"role": "user", "content": text}]})
        ok, ex = r.status_code == 200, r.headers.get("x-wwwserve-executor", "")
    except httpx.HTTPError as exc:
        ok, ex = False, type(exc).__name__
    return {"ok": ok, "latency": time.monotonic() - t0, "executor": ex}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warm", type=int, default=8)
    ap.add_argument("--short", type=int, default=8)
    ap.add_argument("--long", type=int, default=8)
    ap.add_argument("--long-words", type=int, default=3000)
    ap.add_argument("--out", default="results/deadline_prefill")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="issue-15-deadline-", dir="/tmp"))
    nodes = start_network(specs(), workdir, ready_timeout=120)
    phases: dict[str, list[dict[str, Any]]] = {"short_before": [], "long": [], "short_after": []}
    try:
        wait_for_mesh(nodes, timeout=90)
        names = {n.peer_id: n.name for n in nodes}
        with httpx.Client(timeout=120) as c:
            sizes = [5, 50, 200, 500, 1000, 2000, 20, 3000]
            for n in nodes[1:]:  # each executor measures itself on prompts of mixed sizes
                for i in range(args.warm):
                    ask(c, n.api_url, words(sizes[i % len(sizes)], f"warm{i}-"))
            time.sleep(3)  # a's payment channels toward the executors are sealed
            a = nodes[0].api_url
            for phase, n_req, size in (("short_before", args.short, 5), ("long", args.long, args.long_words),
                                       ("short_after", args.short, 5)):
                for i in range(n_req):
                    r = ask(c, a, words(size, f"{phase}{i}-"))
                    r["executor"] = names.get(r["executor"], r["executor"])
                    phases[phase].append(r)
            st = c.get(a + "/status").json()
            offers = {n.name: c.get(n.api_url + "/status").json().get("defenses", {}).get("offers", {})
                      for n in nodes[1:]}
    finally:
        stop_network(nodes)
    rep = st.get("defenses", {}).get("reputation", {})
    out: dict[str, Any] = {"machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
                           "code": os.environ.get("PYTHONPATH", "main"), "args": vars(args),
                           "redispatched": st.get("stats", {}).get("redispatched"),
                           "failed": st.get("stats", {}).get("failed"),
                           "reputation_events": rep.get("events"), "penalised": rep.get("penalised"),
                           "executor_offers": offers, "phases": {}}
    md = [f"code: {out['code']}; {out['machine']}", "",
          "| phase | ok | p50 s | max s | served by |", "|---|---|---|---|---|"]
    for phase, rows in phases.items():
        lat = [r["latency"] for r in rows if r["ok"]]
        by: dict[str, int] = {}
        for r in rows:
            by[r["executor"]] = by.get(r["executor"], 0) + 1
        p = harness.percentiles(lat) if lat else {}
        out["phases"][phase] = {"requests": len(rows), "ok": sum(r["ok"] for r in rows),
                                "latency_p50_s": round(p.get("p50", 0.0), 3) if lat else None,
                                "latency_max_s": round(max(lat), 3) if lat else None, "served_by": by}
        x = out["phases"][phase]
        md.append(f"| {phase} | {x['ok']}/{x['requests']} | {x['latency_p50_s']} | {x['latency_max_s']} | {by} |")
    md += ["", f"a: re-dispatched {out['redispatched']}, failed {out['failed']}, reputation events "
               f"{out['reputation_events']}, penalised {len(out['penalised'] or {})} peers"]
    print("\n".join(md))
    harness.write_report(args.out, "deadline_prefill", out, md)


if __name__ == "__main__":
    sys.exit(main())
