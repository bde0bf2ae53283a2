#!/usr/bin/env python3
"""What does one overlay hop cost? The same null request, side by side in one run:

  (a) direct    — the executor's ``generate`` called in-process (the baseline);
  (b) overlay   — ``node.generate`` on node A, which offloads it over real libp2p (TCP, Noise,
                  yamux, the /wwwserve/delegate/1 protocol) to node B, whose executor serves it.

Null request: EchoExecutor, one-word prompt, ``max_tokens=1``, no delay. Both nodes run in
this process on 127.0.0.1, so both ends' CPU cost of the hop is counted (an upper bound).
Reports p50/p99 latency at concurrency 1 and requests/s at concurrency 32, medians over
``--repeats``; writes JSON, a Markdown table and a PNG (latency CDF) to ``--out``.

    python benchmarks/delegation_overhead.py            # full run (~1 min)
    python benchmarks/delegation_overhead.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import time
from contextlib import aclosing
from pathlib import Path

import harness
import trio
from rich.table import Table

from wwwserve_p2p.config import ApiSection, NetSection, NodeConfig, NodeSection, StatusSection
from wwwserve_p2p.core.policy import OffloadPolicy
from wwwserve_p2p.core.types import GenerationRequest
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.node import open_node

_ids = itertools.count()


def null_request() -> GenerationRequest:
    return GenerationRequest(f"b{next(_ids)}", "null", prompt="ping", max_tokens=1, temperature=0.0)


async def run_direct(executor) -> None:
    async with aclosing(executor.generate(null_request())) as gen:
        async for _ in gen:
            pass


async def run_overlay(node) -> None:
    async with aclosing(node.generate(null_request())) as gen:
        async for rc in gen:
            pass
    assert rc.executor != node.peer_id, "the request must be offloaded"


async def latencies(fn, n: int, progress, task) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
        progress.advance(task)
    return out


async def throughput(fn, concurrency: int, total: int, progress, task) -> float:
    remaining = [total]

    async def worker():
        while remaining[0] > 0:
            remaining[0] -= 1
            await fn()
            progress.advance(task)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return total / (time.perf_counter() - t0)


def config(i: int) -> NodeConfig:
    return NodeConfig(node=NodeSection(data_dir="", network="bench", seed=i),
                      net=NetSection(), status=StatusSection(interval=1.0), api=ApiSection(enabled=False),
                      policy=OffloadPolicy(max_delegated=64))


async def bench(args) -> dict:
    a_exec = EchoExecutor(models=("front",), capacity=64)
    b_exec = EchoExecutor(models=("null",), capacity=64)
    ids = [Identity(hashlib.sha256(f"bench-{i}".encode()).digest()) for i in range(2)]
    results = {"direct": {"p50_ms": [], "p99_ms": [], "rps": []}, "overlay": {"p50_ms": [], "p99_ms": [], "rps": []}}
    samples = {"direct": [], "overlay": []}
    async with open_node(config(0), a_exec, identity=ids[0]) as a:
        cfg_b = config(1)
        cfg_b = cfg_b.replace(net=NetSection(bootstrap=(a.overlay.addrs()[0],)))
        async with open_node(cfg_b, b_exec, identity=ids[1]) as b:
            with trio.fail_after(30):
                while b.peer_id not in a.peers.alive_peers(trio.current_time()):
                    await trio.sleep(0.05)
            for _ in range(20):  # warm up both paths (connection, streams, caches)
                await run_overlay(a)
                await run_direct(b_exec)
            per_repeat = 2 * (args.requests + args.throughput_requests)
            with harness.progress_bar() as progress:
                task = progress.add_task("requests", total=per_repeat * args.repeats)
                for _ in range(args.repeats):
                    for name, fn in (("direct", lambda: run_direct(b_exec)), ("overlay", lambda: run_overlay(a))):
                        lat = await latencies(fn, args.requests, progress, task)
                        samples[name] += lat
                        results[name]["p50_ms"].append(harness.percentile(lat, 50) * 1e3)
                        results[name]["p99_ms"].append(harness.percentile(lat, 99) * 1e3)
                        results[name]["rps"].append(await throughput(fn, 32, args.throughput_requests, progress, task))
    summary = {name: harness.medians(r) for name, r in results.items()}
    summary["overhead_p50_ms"] = summary["overlay"]["p50_ms"] - summary["direct"]["p50_ms"]
    return {"summary": summary, "repeats": results, "samples_ms": {k: [x * 1e3 for x in v] for k, v in samples.items()}}


def report(res: dict, args, out: Path) -> None:
    s = res["summary"]
    con = harness.console()
    t = Table(title=f"null request, median of {args.repeats} repeats")
    for c in ("path", "p50 latency (ms), c=1", "p99 latency (ms), c=1", "requests/s, c=32"):
        t.add_column(c, justify="right" if c != "path" else "left")
    md = ["| path | p50 latency (ms), c=1 | p99 latency (ms), c=1 | requests/s, c=32 |", "|---|---:|---:|---:|"]
    for name in ("direct", "overlay"):
        row = [f"{s[name]['p50_ms']:.3f}", f"{s[name]['p99_ms']:.3f}", f"{s[name]['rps']:.0f}"]
        t.add_row(name, *row)
        md.append(f"| {name} | " + " | ".join(row) + " |")
    con.print(t)
    verdict = "meets" if s["overhead_p50_ms"] <= 5.0 else "misses"
    line = f"overlay adds {s['overhead_p50_ms']:.2f} ms at p50 ({verdict} the 5 ms target)"
    con.print(line)
    md.append("")
    md.append(line)

    def cdf(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in ("direct", "overlay"):
            xs = sorted(res["samples_ms"][name])
            ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=name)
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms), concurrency 1")
        ax.set_ylabel("CDF")
        ax.set_title("null request: executor directly vs one overlay hop")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return fig

    harness.write_report(out, "delegation_overhead", res, md, plots={"delegation_overhead": cdf}, con=con)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=300, help="sequential requests per path per repeat")
    p.add_argument("--throughput-requests", type=int, default=600, help="requests per path per repeat at c=32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small run for CI (30 requests, 1 repeat)")
    p.add_argument("--out", default="results/bench", help="output directory")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.throughput_requests, args.repeats = 30, 64, 1
    import logging
    logging.basicConfig(level=logging.WARNING)
    res = trio.run(bench, args)
    report(res, args, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
