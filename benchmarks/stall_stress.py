#!/usr/bin/env python3
"""CPU-saturation stress: do delegated streams stall when every core is busy?

Open since issue 2: under CPU saturation, connections between nodes dropped or streams
stalled (each stall costs a ``chunk_timeout``, 10 s). Here: ``--nodes`` real node processes on
127.0.0.1 (node 0 serves only ``front``, the others serve ``m`` with the echo executor at
``--delay`` s per token), one busy-looping process per CPU core (``--hogs``, default = cores),
and ``--requests`` requests for ``m`` streamed through node 0's OpenAI API with the official
``openai`` client at concurrency ``--concurrency``: every one of them is delegated.

A *stall* is a gap of more than ``--stall-s`` (default 2 s) between two consecutive chunks of
one answer, or before its first chunk. Reported: stalls, failed requests, re-dispatches
(node 0's ``redispatched``), connection closes logged by the nodes, gap and latency
percentiles; JSON + Markdown + PNG in ``--out``.

    .venv/bin/python benchmarks/stall_stress.py               # 8 nodes, 240 requests, 2 hogs
    .venv/bin/python benchmarks/stall_stress.py --quick       # 4 nodes, 40 requests
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import openai
from rich.table import Table

from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh

WORDS = " ".join(f"w{i}" for i in range(16))


def spec(name: str, models: list[str], delay: float) -> NodeSpec:
    return NodeSpec(name, {"node": {"network": "stall-stress", "log_level": "INFO"}, "status": {"interval": 1.0},
                           "policy": {"max_delegated": 16},
                           "executor": {"kind": "echo", "models": models, "capacity": 8,
                                        "delay_per_token": delay}})


def one_request(base_url: str, i: int) -> dict:
    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=120)
    t0 = time.perf_counter()
    last = t0
    gaps: list[float] = []
    text = ""
    try:
        stream = client.chat.completions.create(model="m", stream=True, max_tokens=16,
                                                messages=[{"role": "user", "content": WORDS}])
        for ch in stream:
            if ch.choices and ch.choices[0].delta.content:
                now = time.perf_counter()
                gaps.append(now - last)
                last = now
                text += ch.choices[0].delta.content
        ok = text.split() == WORDS.split()
        err = "" if ok else f"wrong answer {text[:60]!r}"
    except openai.APIError as exc:
        ok, err = False, repr(exc)[:200]
    return {"i": i, "ok": ok, "error": err, "gaps_s": gaps, "total_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--requests", type=int, default=240)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--delay", type=float, default=0.02, help="echo executor seconds per token")
    ap.add_argument("--hogs", type=int, default=os.cpu_count() or 2, help="busy-looping processes")
    ap.add_argument("--stall-s", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="results/bench")
    args = ap.parse_args(argv)
    if args.quick:
        args.nodes, args.requests = 4, 40
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # clean up children
    work = Path(tempfile.mkdtemp(prefix="stall-stress-", dir="/tmp"))
    specs = [spec("n0", ["front"], 0.0)] + [spec(f"n{i}", ["m"], args.delay) for i in range(1, args.nodes)]
    nodes = start_network(specs, work)
    hogs: list[subprocess.Popen] = []
    try:
        wait_for_mesh([nodes[0]], timeout=180, expect=len(nodes) - 1)  # the requester sees every executor
        base = nodes[0].api_url + "/v1"
        for i in range(3):  # warm
            one_request(base, -1 - i)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
        time.sleep(1.0)
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda i: one_request(base, i), range(args.requests)))
        wall = time.monotonic() - t0
        st = nodes[0].status()
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        stop_network(nodes)
    closes = 0
    lags: dict[str, list[float]] = {"starved": [], "blocked": []}
    for n in nodes:
        try:
            text = n.log_path.read_text(errors="replace")
        except OSError:
            continue
        closes += len(re.findall(r"connection to \S+ closed \(", text))
        for lag, kind in re.findall(r"event loop lagged ([0-9.]+) s \((starved|blocked)", text):
            lags[kind].append(float(lag))
    gaps = [g for r in results for g in r["gaps_s"]]
    stalls = [(r["i"], g) for r in results for g in r["gaps_s"] if g > args.stall_s]
    failed = [r for r in results if not r["ok"]]
    summary = {"requests": len(results), "failed": len(failed), "stalls": len(stalls),
               "max_gap_s": max(gaps) if gaps else 0.0,
               "gap_p50_ms": harness.percentile(gaps, 50) * 1e3, "gap_p99_ms": harness.percentile(gaps, 99) * 1e3,
               "latency_p50_s": harness.percentile([r["total_s"] for r in results], 50),
               "latency_p99_s": harness.percentile([r["total_s"] for r in results], 99),
               "redispatched": st.get("stats", {}).get("redispatched"), "connection_closes_logged": closes,
               # the nodes' event-loop lags over 1 s (net/libp2p/host.py _lag_monitor; at most one
               # logged per node per 10 s): starved = other processes held the cores
               "loop_lags_starved_logged": len(lags["starved"]), "loop_lags_blocked_logged": len(lags["blocked"]),
               "loop_lag_max_logged_s": max(lags["starved"] + lags["blocked"], default=0.0),
               "wall_s": wall, "hogs": args.hogs, "cores": os.cpu_count(), "nodes": args.nodes}
    con = harness.console()
    t = Table(title=f"{args.nodes} nodes, {args.hogs} busy loops on {os.cpu_count()} cores, "
                    f"{args.requests} delegated streams")
    md = ["| metric | value |", "|---|---:|"]
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in summary.items():
        val = f"{v:.3f}" if isinstance(v, float) else str(v)
        t.add_row(k, val)
        md.append(f"| {k} | {val} |")
    con.print(t)
    for r in failed[:5]:
        con.print(f"[red]request {r['i']}: {r['error']}[/]")

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = sorted(g * 1e3 for g in gaps)
        ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))])
        ax.axvline(args.stall_s * 1e3, color="r", ls="--", label=f"stall threshold {args.stall_s:g} s")
        ax.set_xscale("log")
        ax.set_xlabel("gap between chunks (ms)")
        ax.set_ylabel("CDF")
        ax.legend()
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        return fig

    harness.write_report(Path(args.out), "stall_stress", {"summary": summary, "stalls": stalls,
                                                           "failed": failed}, md,
                         plots={"stall_stress": plot}, con=con)
    return 0 if not stalls and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
