#!/usr/bin/env python3
"""Providers behind NAT, measured in the WAN/NAT lab (benchmarks/netlab.py; root only).

Topology: a relay (``examples/relay_node.py --relay-only``), a public node P, and two
providers N1 (serves ``m``) and N2, each behind its own endpoint-independent NAT; every link
``--rtt-ms`` (default 50 ms), so the relayed path N2 -> relay -> N1 is two links long.
Run twice in one invocation, identical but for ``net.hole_punch``:

- ``relayed``: DCUtR off, N2's requests to N1 go through the relay's circuit;
- ``hole-punched``: DCUtR on, the relayed connection is upgraded to a direct one.

Measured per run: **time to join** of N1 (process start until P has it alive and a request
from P for ``m`` was served by N1, i.e. until it is selectable), its phases (ready, AutoNAT
verdict + reservation, selectable), and **TTFT** of ``--requests`` streamed requests from N2
to N1 through N2's OpenAI API (official ``openai`` client, run inside N2's namespace), with
the connection kind N2 reports for N1. JSON + Markdown + PNG in ``--out``.

    sudo .venv/bin/python benchmarks/nat_reach.py [--rtt-ms 50] [--requests 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import harness
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netlab  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CLIENT = r"""
import json, sys, time, openai
c = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=60)
out = []
for i in range(int(sys.argv[3])):
    t0 = time.perf_counter(); first = None
    raw = c.chat.completions.with_raw_response.create(model=sys.argv[2], stream=True, max_tokens=4,
            messages=[{"role": "user", "content": "one two three four"}])
    for ch in raw.parse():
        if first is None and ch.choices and ch.choices[0].delta.content:
            first = time.perf_counter() - t0
    out.append({"ttft_ms": 1e3 * (first or 0), "total_ms": 1e3 * (time.perf_counter() - t0),
                "executor": raw.headers.get("x-wwwserve-executor")})
print(json.dumps(out))
"""


def _cfg(models: list[str], bootstrap: list[str], hole_punch: bool, relays: list[str] | None = None) -> dict:
    net: dict = {"bootstrap": bootstrap, "hole_punch": hole_punch}
    if relays:
        net.update(relays=relays, relay_count=1)
    return {"node": {"network": "nat-bench", "log_level": "INFO"}, "status": {"interval": 1.0}, "net": net,
            "executor": {"kind": "echo", "models": models, "capacity": 8}}


def _until(check, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            if check():
                return time.monotonic()
        except Exception as exc:  # status not up yet, request refused: poll again
            last = exc
        time.sleep(0.25)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s ({last!r})")


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    punch = mode == "hole-punched"
    with netlab.open_lab(2, nated=["eim", "eim"], default=netlab.Link(rtt_ms=args.rtt_ms)) as lab:
        work = lab.workdir / "nodes"
        relay_argv = [sys.executable, str(ROOT / "examples" / "relay_node.py"), "--relay-only", "--json",
                      "--host", "0.0.0.0", "--p2p-port", "4001", "--data-dir", str(work / "relay"),
                      "--network", "nat-bench"]
        relay = netlab.start_lab_node(lab, lab.nodes[0], "relay", {}, work, argv=relay_argv)
        boot = [relay.multiaddr]
        pub, n2 = netlab.start_lab_nodes(lab, [
            (lab.nodes[1], "pub", _cfg(["pub-only"], boot, punch), None),
            (lab.nodes[3], "n2", _cfg(["n2-only"], boot, punch, boot), None)], work)
        _until(lambda: n2.status(lab)["reach"]["relays"] == [relay.peer_id], 60, "n2 reserved")
        t_start = time.monotonic()
        n1 = netlab.start_lab_node(lab, lab.nodes[2], "n1", _cfg(["m"], boot, punch, boot), work)
        t_ready = time.monotonic()
        t_reserved = _until(lambda: n1.status(lab)["reach"]["relays"] == [relay.peer_id], 60, "n1 reserved")

        def pub_selects_n1() -> bool:
            peers = {p["peer_id"]: p for p in pub.status(lab)["peers"]}
            if peers.get(n1.peer_id, {}).get("state") != "alive":
                return False
            r = lab.run(pub.node, [sys.executable, "-c", CLIENT, pub.api_url + "/v1", "m", "1"], timeout=60)
            return r.returncode == 0 and json.loads(r.stdout.splitlines()[-1])[0]["executor"] == n1.peer_id

        t_selectable = _until(pub_selects_n1, 90, "n1 selectable at the public node")
        # N2 -> N1: connect (relayed), let DCUtR act if enabled, then measure
        r = lab.run(n2.node, [sys.executable, "-c", CLIENT, n2.api_url + "/v1", "m", "1"], timeout=90)
        if r.returncode != 0:
            raise RuntimeError(f"n2 -> n1 failed: {r.stderr[-1500:]}\n{n2.log_tail()}")
        want = "hole-punched" if punch else "relayed"

        def kind() -> str:
            return {p["peer_id"]: p["connection"] for p in n2.status(lab)["peers"]}.get(n1.peer_id, "none")

        try:
            _until(lambda: kind() == want, 30, f"n2 -> n1 {want}")
        except RuntimeError:
            pass  # reported below as what it is
        k = kind()
        r = lab.run(n2.node, [sys.executable, "-c", CLIENT, n2.api_url + "/v1", "m", str(args.requests)],
                    timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"n2 -> n1 failed: {r.stderr[-1500:]}")
        samples = json.loads(r.stdout.splitlines()[-1])
        return {"mode": mode, "connection": k, "kind_after": kind(),
                "join_s": {"ready": t_ready - t_start, "reserved": t_reserved - t_start,
                           "selectable": t_selectable - t_start},
                "ttft_ms": [s["ttft_ms"] for s in samples], "total_ms": [s["total_ms"] for s in samples],
                "executors_ok": all(s["executor"] == n1.peer_id for s in samples),
                "emulator_cpu_s": lab.emulator_cpu_s(), "emulator": lab.emulator_stats()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="10 requests per mode")
    ap.add_argument("--out", default="results/bench")
    args = ap.parse_args(argv)
    if args.quick:
        args.requests = 10
    why = netlab.lab_available()
    if why:
        print(f"nat_reach: {why}", file=sys.stderr)
        return 2
    runs = [run_mode(m, args) for m in ("relayed", "hole-punched")]
    res = {"config": {"rtt_ms": args.rtt_ms, "requests": args.requests}, "runs": runs}
    con = harness.console()
    cols = ("mode", "connection N2->N1", "TTFT p50 (ms)", "TTFT p90 (ms)", "total p50 (ms)", "ready (s)",
            "reserved (s)", "selectable (s)")
    t = Table(title=f"NATed executor N1, requester N2 behind another NAT, {args.rtt_ms:g} ms RTT per link")
    for c in cols:
        t.add_column(c, justify="right")
    md = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    for r in runs:
        row = [r["mode"], r["connection"], f"{statistics.median(r['ttft_ms']):.1f}",
               f"{sorted(r['ttft_ms'])[int(0.9 * (len(r['ttft_ms']) - 1))]:.1f}", f"{statistics.median(r['total_ms']):.1f}",
               f"{r['join_s']['ready']:.1f}", f"{r['join_s']['reserved']:.1f}", f"{r['join_s']['selectable']:.1f}"]
        t.add_row(*row)
        md.append("| " + " | ".join(row) + " |")
    con.print(t)

    def plot(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            xs = sorted(r["ttft_ms"])
            ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=f"{r['mode']} ({r['connection']})")
        ax.set_xlabel("TTFT through N2's API (ms)")
        ax.set_ylabel("CDF")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return fig

    harness.write_report(Path(args.out), "nat_reach", res, md, plots={"nat_reach": plot}, con=con)
    return 0


if __name__ == "__main__":
    sys.exit(main())
