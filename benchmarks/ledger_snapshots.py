#!/usr/bin/env python3
"""Snapshots of settled ledger history on real node processes (issue 18 item 5).

Three ``wwwserve node`` processes on 127.0.0.1 (``f`` serves model ``front``; ``e1``, ``e2``
serve ``m``, so every request for ``m`` sent to ``f`` is delegated and paid over payment
channels) get ``--requests`` chat completions through the OpenAI-compatible HTTP API, in
batches of ``--batch``. After each batch we read every node's ledger files (SQLite bytes in
use: pages minus free pages, which SQLite reuses) and ``GET /ledger`` (blocks in the history,
blocks held, adopted snapshot). Then a fourth, fresh node ``late`` joins and we time until its
ledger state hash equals the others'.

Two runs on the same script: ``baseline`` (``ledger.checkpoint_interval = 0``: no snapshots,
every block kept, the late node syncs block by block) and ``snapshots`` (checkpoint every
``--interval`` s of the cut ``--settle`` s back: members sign, adopt once > 2/3 of the stake
attested, prune; the late node loads the attested snapshot, then the blocks above).

Writes ``ledger_snapshots.json``, ``.md`` and ``.png`` to ``--out``.

    python benchmarks/ledger_snapshots.py                  # 3,000 requests per run (~5 min on 2 loaded cores)
    python benchmarks/ledger_snapshots.py --requests 600 --batch 200   # smaller
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness
import httpx

from wwwserve_p2p.cli import setup_logging
from wwwserve_p2p.localnet import (NodeSpec, start_network, start_node, stop_network, wait_for_ledger, wait_for_mesh,
                                   write_network_genesis)

con = harness.console()


def specs(interval: float, settle: float) -> list[NodeSpec]:
    def spec(name: str, models: list[str], seed: int) -> NodeSpec:
        return NodeSpec(name, {
            "node": {"network": "ledger-snapshots", "log_level": "INFO", "seed": seed},
            "status": {"interval": 1.0},
            "ledger": {"block_interval": 0.5, "sync_interval": 2.0, "checkpoint_interval": interval,
                       "checkpoint_settle": settle},
            "executor": {"kind": "echo", "models": models, "capacity": 8}})
    return [spec("f", ["front"], 1), spec("e1", ["m"], 2), spec("e2", ["m"], 3)]


def live_bytes(data_dir: Path) -> int:
    """Bytes of the ledger database in use: its pages (committed WAL frames included, as a
    reader sees them) minus free pages (SQLite reuses those). The WAL file itself is bounded by
    SQLite's autocheckpoint (~4 MB) and reused, so it is left out here (``file_bytes`` has it)."""
    path = data_dir / "ledger.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as c:
        n, free, size = (c.execute(f"PRAGMA {k}").fetchone()[0] for k in ("page_count", "freelist_count", "page_size"))
    return (n - free) * size


def file_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in data_dir.glob("ledger.sqlite*"))


def chat(node, i: int) -> None:
    r = httpx.post(node.api_url + "/v1/chat/completions", timeout=120, json={
        "model": "m", "messages": [{"role": "user", "content": "a b c d e f g h"}], "max_tokens": 8, "seed": i})
    r.raise_for_status()


def ledger(node) -> dict:
    return httpx.get(node.api_url + "/ledger", timeout=30).json()


def sample(nodes, tmp: Path, served: int) -> dict:
    row = {"requests": served, "t": time.monotonic()}
    for n in nodes:
        s = ledger(n)
        snap = s.get("snapshots", {})
        row[n.name] = {"live_bytes": live_bytes(tmp / n.name), "file_bytes": file_bytes(tmp / n.name),
                       "blocks": s["blocks"], "blocks_held": s.get("blocks_held", s["blocks"]),
                       "adopted": (snap.get("adopted") or {}).get("time_ms"), "pruned": snap.get("pruned_blocks", 0)}
    return row


def run(kind: str, n_requests: int, batch: int, interval: float, settle: float, progress) -> dict:
    sp = specs(interval if kind == "snapshots" else 0.0, settle)
    late_spec = NodeSpec("late", {**{k: dict(v) for k, v in sp[1].config.items()},
                                  "node": {"network": "ledger-snapshots", "log_level": "INFO", "seed": 9}})
    out: dict = {"kind": kind, "samples": []}
    with tempfile.TemporaryDirectory(prefix="issue-18-snap-") as tmpd:
        tmp = Path(tmpd)
        write_network_genesis(sp + [late_spec], tmp, "ledger-snapshots", credits=100, unfunded=("late",))
        nodes = start_network(sp, tmp, ready_timeout=240)
        late = None
        try:
            wait_for_mesh(nodes, timeout=180)
            wait_for_ledger(nodes, timeout=120)
            task = progress.add_task(f"{kind}: requests", total=n_requests)
            served = 0
            t_start = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                while served < n_requests:
                    k = min(batch, n_requests - served)
                    list(pool.map(lambda i: chat(nodes[0], i), range(served, served + k)))
                    served += k
                    progress.update(task, completed=served)
                    out["samples"].append(sample(nodes, tmp, served))
            out["requests_s"] = time.monotonic() - t_start
            wait_for_ledger(nodes, timeout=180)
            if kind == "snapshots":   # until every member adopted a cut after the traffic
                t_end_ms = int(time.time() * 1000)
                deadline = time.monotonic() + 3 * (interval + settle) + 120
                while time.monotonic() < deadline:
                    adopted = [(ledger(n).get("snapshots", {}).get("adopted") or {}).get("time_ms") or 0 for n in nodes]
                    if min(adopted) >= t_end_ms - settle * 1000 - interval * 1000:
                        break
                    time.sleep(1.0)
            out["samples"].append(sample(nodes, tmp, served))
            t0 = time.monotonic()
            late = start_node(late_spec, tmp, bootstrap=[nodes[0].multiaddr], ready_timeout=240)
            out["late_ready_s"] = time.monotonic() - t0
            try:
                out["late_sync_s"] = wait_for_ledger([*nodes, late], timeout=300) + out["late_ready_s"]
            except Exception:
                con.print(f"[red]the late node did not converge; its log:[/red]\n{late.log_tail(60)}")
                raise
            s = ledger(late)
            out["late"] = {"state_hash": s["state_hash"], "blocks": s["blocks"],
                           "blocks_held": s.get("blocks_held"), "loaded": s.get("snapshots", {}).get("loaded"),
                           "live_bytes": live_bytes(tmp / "late"), "file_bytes": file_bytes(tmp / "late")}
            out["state_hashes"] = {n.name: ledger(n)["state_hash"] for n in [*nodes, late]}
        finally:
            stop_network(nodes + ([late] if late is not None else []))
    return out


def report(res: dict, out: Path) -> None:
    md = ["| run | requests | node | history blocks | blocks held | ledger bytes in use (first batch -> last) | "
          "late node: sync s, blocks held, bytes, loaded snapshot | same state hash |", "|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        first, last = r["samples"][0], r["samples"][-1]
        late = r["late"]
        same = len(set(r["state_hashes"].values())) == 1
        for name in ("f", "e1", "e2"):
            md.append(f"| {r['kind']} | {last['requests']} | {name} | {last[name]['blocks']} | {last[name]['blocks_held']} | "
                      f"{first[name]['live_bytes'] / 1024:.0f} -> {last[name]['live_bytes'] / 1024:.0f} KiB | "
                      f"{late['blocks_held']} held, {r['late_sync_s']:.1f} s, {late['live_bytes'] / 1024:.0f} KiB, "
                      f"loaded {late['loaded']} | {same} |")
    md.append(f"\nMachine: shared 2-core host (loaded). Requests per run: {res['options']['requests']} in batches of "
              f"{res['options']['batch']}; snapshots: interval {res['options']['interval']} s, settle "
              f"{res['options']['settle']} s.")
    harness.write_report(out, "ledger_snapshots", res, md, plots={"ledger_snapshots": lambda plt: plot(res, plt)},
                         dpi=110, con=con)


def plot(res: dict, plt):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for r in res["runs"]:
        xs = [s["requests"] for s in r["samples"]]
        for name, ls in (("f", "-"), ("e1", "--")):
            axes[0].plot(xs, [s[name]["live_bytes"] / 1024 for s in r["samples"]], ls, label=f"{r['kind']} {name}")
            axes[1].plot(xs, [s[name]["blocks_held"] for s in r["samples"]], ls, label=f"{r['kind']} {name}")
    axes[0].set_xlabel("requests served")
    axes[0].set_ylabel("ledger SQLite KiB in use")
    axes[1].set_xlabel("requests served")
    axes[1].set_ylabel("blocks held")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--interval", type=float, default=10.0, help="checkpoint interval, s (default %(default)s)")
    p.add_argument("--settle", type=float, default=15.0, help="checkpoint settle, s (default %(default)s)")
    p.add_argument("--runs", default="baseline,snapshots")
    p.add_argument("--out", default="results/ledger_snapshots")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    res: dict = {"options": vars(args), "runs": []}
    with harness.progress_bar(con) as progress:
        for kind in args.runs.split(","):
            res["runs"].append(run(kind, args.requests, args.batch, args.interval, args.settle, progress))
    report(res, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
