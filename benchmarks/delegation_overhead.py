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
    sudo .venv/bin/python benchmarks/delegation_overhead.py --wan   # 0/50/150 ms RTT in the lab

Every run also measures a **bare py-libp2p stream round trip** between two plain py-libp2p
hosts (Noise + yamux, none of our patches) in the same run: a new stream on a warm
connection, 16 bytes out and back; the hop's added latency is reported as a ratio of it.

``--wan`` (root; benchmarks/netlab.py): node A and node B in two network namespaces joined
by a link of ``--rtts`` ms RTT (user-space delay emulation), B a ``wwwserve node`` process
serving the null model; A offloads to it. Reported per RTT: time to the first token through
the overlay on a warm connection, minus the executor's own (added latency), beside the bare
new-stream and warm-stream round trips over the same link.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
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
from wwwserve_p2p.errors import NoExecutorAvailable
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


# ------------------------------------------------------------------------------------------
# bare py-libp2p stream round trips (the same-run floor)

BARE_PROTOCOL = "/bench/echo/1"


def _bare_host(seed: bytes):
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as x25519
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE
    from libp2p.security.noise.transport import Transport as Noise
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX
    from libp2p.stream_muxer.yamux.yamux import Yamux

    kp = create_new_key_pair(hashlib.sha256(seed).digest())
    return new_host(key_pair=kp, sec_opt={NOISE: Noise(kp, noise_privkey=x25519().private_key)},
                    muxer_opt={YAMUX: Yamux})


async def bare_echo_server(ip: str, port: int, ready=None) -> None:
    """A plain py-libp2p host answering BARE_PROTOCOL (echoes every read until EOF)."""
    from multiaddr import Multiaddr

    host = _bare_host(b"bare-server")

    async def handler(stream):
        try:
            while True:
                data = await stream.read(64)
                if not data:
                    break
                await stream.write(data)
        except Exception:  # the client reset or went away: nothing to answer
            pass
        finally:
            await stream.close()

    host.set_stream_handler(BARE_PROTOCOL, handler)
    async with host.run([Multiaddr(f"/ip4/{ip}/tcp/{port}")]):
        addr = f"/ip4/{ip}/tcp/{port}/p2p/{host.get_id().to_base58()}"
        if ready is not None:
            ready(addr)
        else:
            print(addr, flush=True)
        await trio.sleep_forever()


async def bare_round_trips(addr: str, n: int) -> dict[str, list[float]]:
    """``n`` new-stream and ``n`` warm-stream 16-byte round trips (ms) to a bare echo host."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    host = _bare_host(b"bare-client")
    info = info_from_p2p_addr(Multiaddr(addr))
    out: dict[str, list[float]] = {"new_stream": [], "warm_stream": []}
    async with host.run([Multiaddr("/ip4/0.0.0.0/tcp/0")]):
        await host.connect(info)
        for i in range(n + 5):
            t0 = time.perf_counter()
            s = await host.new_stream(info.peer_id, [BARE_PROTOCOL])
            await s.write(b"x" * 16)
            got = b""
            while len(got) < 16:
                chunk = await s.read(64)
                if not chunk:
                    break
                got += chunk
            if i >= 5:
                out["new_stream"].append((time.perf_counter() - t0) * 1e3)
            await s.close()
        s = await host.new_stream(info.peer_id, [BARE_PROTOCOL])
        await s.write(b"y")  # negotiation done and acknowledged by this byte's echo
        await s.read(64)
        for i in range(n):
            t0 = time.perf_counter()
            await s.write(b"x" * 16)
            got = b""
            while len(got) < 16:
                got += await s.read(64)
            out["warm_stream"].append((time.perf_counter() - t0) * 1e3)
        await s.close()
    return out


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
    bare = await _bare_in_process(args.requests)
    summary = {name: harness.medians(r) for name, r in results.items()}
    summary["overhead_p50_ms"] = summary["overlay"]["p50_ms"] - summary["direct"]["p50_ms"]
    summary["bare_new_stream_p50_ms"] = harness.percentile(bare["new_stream"], 50)
    summary["bare_warm_stream_p50_ms"] = harness.percentile(bare["warm_stream"], 50)
    summary["overhead_over_bare_new_stream"] = summary["overhead_p50_ms"] / summary["bare_new_stream_p50_ms"]
    return {"summary": summary, "repeats": results, "bare_ms": bare,
            "samples_ms": {k: [x * 1e3 for x in v] for k, v in samples.items()}}


async def _bare_in_process(n: int) -> dict[str, list[float]]:
    """Bare py-libp2p round trips between two hosts in this process on 127.0.0.1."""
    from wwwserve_p2p.localnet import free_port

    port = free_port()
    async with trio.open_nursery() as nursery:
        ready = trio.Event()
        box: list[str] = []

        def on_ready(addr: str) -> None:
            box.append(addr)
            ready.set()

        nursery.start_soon(bare_echo_server, "127.0.0.1", port, on_ready)
        await ready.wait()
        out = await bare_round_trips(box[0], n)
        nursery.cancel_scope.cancel()
    return out


# ------------------------------------------------------------------------------------------
# --wan: node A and node B in two namespaces of the lab, RTT 0 / 50 / 150 ms


async def ttft(fn_gen) -> tuple[float, float]:
    """(time to the first chunk, time to the end) of one generation, seconds."""
    t0 = time.perf_counter()
    first = None
    async with aclosing(fn_gen()) as gen:
        async for _ in gen:
            if first is None:
                first = time.perf_counter() - t0
    return first if first is not None else time.perf_counter() - t0, time.perf_counter() - t0


async def wan_child(args) -> None:
    """Runs in namespace A: node A offloads to node B (``--peer``); bare round trips to
    ``--bare``; prints one JSON line of samples (ms)."""
    from wwwserve_p2p.net.config import Libp2pConfig

    a_exec = EchoExecutor(models=("front",), capacity=64)
    d_exec = EchoExecutor(models=("null",), capacity=64)
    cfg = NodeConfig(node=NodeSection(data_dir="", network="bench-wan", seed=1),
                     net=Libp2pConfig(listen=("/ip4/0.0.0.0/tcp/4002",), bootstrap=(args.peer,),
                                      fast_negotiation=args.negotiation == "fast"),
                     status=StatusSection(interval=1.0), api=ApiSection(enabled=False),
                     policy=OffloadPolicy(max_delegated=64))
    peer = args.peer.rsplit("/p2p/", 1)[1]
    out: dict = {}
    # one identity per child: B outlives both children of an RTT, and a second node A with the same
    # key and a fresh in-memory ledger would sign another block 1 (B then cuts it as an equivocator)
    key = hashlib.sha256(b"wan-a-" + args.negotiation.encode()).digest()
    async with open_node(cfg, a_exec, identity=Identity(key)) as a:
        with trio.fail_after(60):
            while peer not in a.peers.alive_peers(trio.current_time()):
                await trio.sleep(0.05)
        for _ in range(10):  # warm: connection up, first streams negotiated
            await run_overlay(a)
        over = []
        failures = 0
        while len(over) < args.requests:
            try:
                over.append(await ttft(lambda: a.generate(null_request())))
            except NoExecutorAvailable:  # a probe that timed out on a loaded machine: counted, retried
                failures += 1
                if failures > args.requests:
                    raise
        out["overlay_failures"] = failures
        direct = [await ttft(lambda: d_exec.generate(null_request())) for _ in range(args.requests)]
        out["overlay_ttft_ms"] = [x[0] * 1e3 for x in over]
        out["overlay_total_ms"] = [x[1] * 1e3 for x in over]
        out["direct_ttft_ms"] = [x[0] * 1e3 for x in direct]
    out.update({f"bare_{k}_ms": v for k, v in (await bare_round_trips(args.bare, args.requests)).items()})
    print(json.dumps(out), flush=True)


def bench_wan(args) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import netlab

    why = netlab.lab_available()
    if why:
        raise SystemExit(f"delegation_overhead --wan: {why}")
    res: dict = {"rtts_ms": args.rtts, "runs": {}}
    me = str(Path(__file__).resolve())
    for rtt in args.rtts:
        per: dict[str, list] = {}
        for rep_i in range(args.repeats):
            with netlab.open_lab(2, default=netlab.Link(rtt_ms=rtt)) as lab:
                work = lab.workdir / "nodes"
                b = netlab.start_lab_node(lab, lab.nodes[1], "b", {
                    "node": {"network": "bench-wan", "log_level": "WARNING"}, "status": {"interval": 1.0},
                    "executor": {"kind": "echo", "models": ["null"], "capacity": 64},
                    "policy": {"max_delegated": 64}, "api": {"enabled": False}}, work)
                bare = lab.spawn(lab.nodes[1], [sys.executable, me, "--bare-server", lab.nodes[1].ip],
                                 log=lab.workdir / "bare.log")
                deadline = time.monotonic() + 90
                bare_addr = ""
                while time.monotonic() < deadline and not bare_addr:
                    time.sleep(0.1)
                    text = (lab.workdir / "bare.log").read_text(errors="replace") if (
                        lab.workdir / "bare.log").exists() else ""
                    bare_addr = next((ln for ln in text.splitlines() if ln.startswith("/ip4/")), "")
                if not bare_addr:
                    raise SystemExit("bare echo server did not start: " + (lab.workdir / "bare.log").read_text(
                        errors="replace")[-1500:] if (lab.workdir / "bare.log").exists() else "no log")
                for negotiation in ("fast", "library"):
                    r = lab.run(lab.nodes[0], [sys.executable, me, "--wan-child", "--peer", b.multiaddr, "--bare",
                                               bare_addr, "--requests", str(args.requests), "--negotiation",
                                               negotiation], timeout=600)
                    if r.returncode != 0:
                        raise SystemExit(f"wan child failed (rtt {rtt}):\n{r.stderr[-3000:]}\n{b.log_tail()}")
                    samples = json.loads(r.stdout.strip().splitlines()[-1])
                    if negotiation == "library":  # the same node with py-libp2p's own negotiation
                        samples = {"library_" + k: v for k, v in samples.items() if k.startswith("overlay")}
                    for k, v in samples.items():
                        if not isinstance(v, list):
                            res.setdefault("failures", {}).setdefault(f"{rtt:g}/{k}", []).append(v)
                            continue
                        per.setdefault(k, []).append(v)
                print(f"rtt {rtt:g} ms repeat {rep_i + 1}: overlay ttft p50 "
                      f"{harness.percentile(per['overlay_ttft_ms'][-1], 50):.1f} ms (py-libp2p negotiation "
                      f"{harness.percentile(per['library_overlay_ttft_ms'][-1], 50):.1f} ms), bare new stream p50 "
                      f"{harness.percentile(per['bare_new_stream_ms'][-1], 50):.1f} ms", flush=True)
        summ = {}
        for k, runs in per.items():
            summ[f"{k[:-3]}_p50_ms"] = statistics.median(harness.percentile(v, 50) for v in runs)
        summ["added_ttft_p50_ms"] = summ["overlay_ttft_p50_ms"] - summ["direct_ttft_p50_ms"]
        summ["added_in_rtts"] = summ["added_ttft_p50_ms"] / rtt if rtt else None
        summ["target_ms"] = rtt + 5.0 if rtt else 2 * summ["bare_new_stream_p50_ms"]
        summ["meets_target"] = summ["added_ttft_p50_ms"] <= summ["target_ms"]
        res["runs"][str(rtt)] = {"summary": summ, "samples_ms": per}
    return res


def report_wan(res: dict, args, out: Path) -> None:
    con = harness.console()
    cols = ("RTT (ms)", "overlay TTFT p50", "same, py-libp2p negotiation", "executor TTFT p50", "added p50",
            "added / RTT", "bare new-stream RTT p50", "bare warm-stream RTT p50", "target", "met")
    t = Table(title=f"first token on a warm connection, median of {args.repeats} repeat(s), ms")
    for c in cols:
        t.add_column(c, justify="right")
    md = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    for rtt in args.rtts:
        s = res["runs"][str(rtt)]["summary"]
        row = [f"{rtt:g}", f"{s['overlay_ttft_p50_ms']:.1f}", f"{s.get('library_overlay_ttft_p50_ms', float('nan')):.1f}",
               f"{s['direct_ttft_p50_ms']:.2f}",
               f"{s['added_ttft_p50_ms']:.1f}", "-" if s["added_in_rtts"] is None else f"{s['added_in_rtts']:.2f}",
               f"{s['bare_new_stream_p50_ms']:.1f}", f"{s['bare_warm_stream_p50_ms']:.1f}",
               f"<= {s['target_ms']:.1f}", "yes" if s["meets_target"] else "no"]
        t.add_row(*row)
        md.append("| " + " | ".join(row) + " |")
    con.print(t)

    def bars(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = list(range(len(args.rtts)))
        for off, key, label in ((-0.25, "overlay_ttft_p50_ms", "overlay TTFT"),
                                (0.0, "bare_new_stream_p50_ms", "bare new stream"),
                                (0.25, "bare_warm_stream_p50_ms", "bare warm stream")):
            ax.bar([x + off for x in xs], [res["runs"][str(r)]["summary"][key] for r in args.rtts], 0.25, label=label)
        ax.set_xticks(xs, [f"{r:g} ms" for r in args.rtts])
        ax.set_xlabel("link RTT")
        ax.set_ylabel("p50 (ms)")
        ax.legend()
        ax.grid(True, axis="y", alpha=0.3)
        fig.tight_layout()
        return fig

    harness.write_report(out, "delegation_overhead_wan", res, md, plots={"delegation_overhead_wan": bars}, con=con)


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
    verdict = "meets" if s["overhead_p50_ms"] <= 2 * s["bare_new_stream_p50_ms"] else "misses"
    line = (f"overlay adds {s['overhead_p50_ms']:.2f} ms at p50; a bare py-libp2p new-stream round trip in the "
            f"same run: {s['bare_new_stream_p50_ms']:.2f} ms (warm stream {s['bare_warm_stream_p50_ms']:.2f} ms): "
            f"{s['overhead_over_bare_new_stream']:.2f}x ({verdict} the <= 2x target)")
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
    p.add_argument("--wan", action="store_true", help="A and B in the WAN lab (root; benchmarks/netlab.py)")
    p.add_argument("--rtts", type=float, nargs="+", default=[0.0, 50.0, 150.0], help="--wan link RTTs, ms")
    p.add_argument("--wan-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--peer", help=argparse.SUPPRESS)
    p.add_argument("--bare", help=argparse.SUPPRESS)
    p.add_argument("--bare-server", metavar="IP", help=argparse.SUPPRESS)
    p.add_argument("--negotiation", choices=("fast", "library"), default="fast", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.bare_server:
        trio.run(bare_echo_server, args.bare_server, 4101)
        return 0
    if args.wan_child:
        import logging
        logging.basicConfig(level=logging.WARNING)
        trio.run(wan_child, args)
        return 0
    if args.wan:
        if args.quick:
            args.requests, args.repeats, args.rtts = 30, 1, [0.0, 50.0]
        elif args.requests == 300:
            args.requests = 100
        res = bench_wan(args)
        report_wan(res, args, Path(args.out))
        return 0
    if args.quick:
        args.requests, args.throughput_requests, args.repeats = 30, 64, 1
    import logging
    logging.basicConfig(level=logging.WARNING)
    res = trio.run(bench, args)
    report(res, args, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
