#!/usr/bin/env python3
"""How fast is the credit ledger? Three measurements, each beside a baseline from the same run:

1. **verify + apply** (one core, this process): blocks of delegation claims arrive as wire
   bytes and are decoded, fully checked (block signature, every ticket's signature, chain
   rules) and folded into the state. Baselines: the same blocks applied without checks
   (``verified=True``, the fold alone), and bare Ed25519 verification (the floor: one
   signature per claim). Target: >= 5,000 entries/s.
2. **sync**: a node that holds ``--sync-entries`` claims (restored from its SQLite store) and
   a fresh node, both real libp2p hosts on 127.0.0.1 in this process; the fresh node pulls
   everything over ``/wwwserve/ledger-sync/1`` and persists it. Baseline: the same blocks
   decoded, checked and applied locally (no network, no disk).
3. **convergence after a partition heals**: ``--nodes`` real node processes (default 16) split
   into two halves that refuse each other (``PUT /admin/denied-peers``); each half trades (an
   entry node gets more requests than it can serve and offloads to its half), then the ban is
   lifted and we time until every node reports the same ledger state hash. Repeated
   ``--repeats`` times on the same network. Target: <= 3 s.
4. **catch-up after a restart** (``--restart`` kills, default 20; ``--restart-nodes`` processes):
   a seeded random node is SIGKILLed at a seeded random moment and started again on its data
   dir with a new stake target, so it has a block its peers cannot have yet; we time from the
   restarted process' start until every peer holds its newest block (the one with that stake),
   and report p50/p99 over the kills. Target: <= 5 s.

5. **sync from a snapshot** (``snapshot``, two in-process nodes as in 2): a history of
   ``--sync-entries`` delegated requests paid over payment channels (8 requesters, one
   executor, a Claim per 64 requests); a fresh node syncs it (a) block by block and (b) from
   the attested snapshot of a cut at 90 % of it plus the blocks above (A adopted it: its store
   pruned the blocks below; the checkpoints are signed by every genesis member). Time until the
   fresh node's state hash and heads equal A's, and the SQLite bytes of both stores. Not in
   ``--quick`` (name it in ``--parts``).

0. **entries per delegated request** (``channels``, this process): the same ``--channel-requests``
   delegated requests paid with one Claim per request (the tickets of the session start) and
   with payment channels (real ticket desks: OpenChannel, cumulative vouchers, a Claim per
   ``ledger.claim_every`` requests, CloseChannel after expiry): entries, wire bytes and
   decode + verify + apply time of a fresh replica, per 1,000 requests, and the ratios.
   Target: >= 20x fewer entries.

``--parts`` picks measurements (default all: ``channels,apply,sync,snapshot,heal,restart``).

Writes ``ledger_throughput.json``, ``.md`` (table) and ``.png`` to ``--out``.

    python benchmarks/ledger_throughput.py            # full run (~7-8 min on 2 cores, 4 of them the 20 restarts)
    python benchmarks/ledger_throughput.py --quick    # ~1.5 min: smaller sizes, 6 nodes, 2 restarts
    python benchmarks/ledger_throughput.py --parts restart --restart 20   # only the restart catch-up (~4 min)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import harness
import httpx
import trio
from rich.progress import Progress
from rich.table import Table

from wwwserve_p2p.cli import setup_logging
from wwwserve_p2p.config import ApiSection, LedgerSection, NetSection, NodeConfig, NodeSection, StatusSection
from wwwserve_p2p.core.crypto import verify
from wwwserve_p2p.core.ledger import Claim, Genesis, Ledger, OpenChannel, Stake, Ticket, build_block, channel_id
from wwwserve_p2p.core.ledger.snapshot import attestation, take_snapshot
from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.ledger_store import LedgerStore
from wwwserve_p2p.localnet import (NodeSpec, ledger_states, start_network, stop_network, wait_for_ledger,
                                   wait_for_mesh, write_network_genesis)
from wwwserve_p2p.node import open_node
from wwwserve_p2p.wire import ledger_codec

con = harness.console()
ENTRIES_PER_BLOCK = 1000


def ident(name: str) -> Identity:
    return Identity(hashlib.sha256(f"ledger-bench-{name}".encode()).digest())


def claim_blocks(genesis: Genesis, executor: Identity, requesters: list[Identity], n_entries: int,
                 progress: Progress | None = None) -> list[bytes]:
    """``executor``'s chain of blocks holding ``n_entries`` claims, as wire bytes."""
    led = Ledger(genesis)
    out = []
    task = progress.add_task("signing test blocks", total=n_entries) if progress else None
    for start in range(0, n_entries, ENTRIES_PER_BLOCK):
        entries = []
        for i in range(start, min(n_entries, start + ENTRIES_PER_BLOCK)):
            r = requesters[i % len(requesters)]
            t = Ticket(genesis.network_id, f"req-{i}", r.peer_id, executor.peer_id, 5000, 2**40).signed(r.sign)
            entries.append(Claim(t, hashlib.sha256(str(i).encode()).hexdigest(), 1800))
        blk = led.next_block(executor.peer_id, 1_000 + start, entries, executor.sign)
        assert led.add_block(blk, verified=True).status == "applied"
        out.append(ledger_codec.encode_block(blk))
        if progress:
            progress.update(task, advance=len(entries))
    return out


def channel_blocks(genesis: Genesis, executor: Identity, requesters: list[Identity], n_requests: int,
                   per_block: int = 1000, claim_every: int = 64) -> list[bytes]:
    """A history of ``n_requests`` delegated requests paid over one channel per requester: the
    requesters' OpenChannel blocks, then one executor block per ``per_block`` requests holding a
    Claim of each requester's running total every ``claim_every`` of its requests (wire bytes)."""
    led = Ledger(genesis)
    out = []
    price, t = 1800, 1_000
    chans = {}
    for r in requesters:
        blk = led.next_block(r.peer_id, t, [OpenChannel(executor.peer_id, 10**11, 2**40, 1)], r.sign)
        assert led.add_block(blk, verified=True).status == "applied"
        out.append(ledger_codec.encode_block(blk))
        chans[r.peer_id] = [channel_id(genesis.network_id, r.peer_id, 1), 0, 0, 0]
    served = 0
    while served < n_requests:
        t += 1_000
        n = min(per_block, n_requests - served)
        entries = []
        for k, r in enumerate(requesters):
            c = chans[r.peer_id]   # cid, seq, requests served, requests claimed
            c[2] += n // len(requesters) + (1 if k < n % len(requesters) else 0)
            while c[2] - c[3] >= claim_every:
                c[3] += claim_every
                c[1] += 1
                total = c[3] * price
                v = Ticket(genesis.network_id, f"v-{k}-{c[1]}", r.peer_id, executor.peer_id, price, 2**40,
                           issued_ms=t, channel=c[0], seq=c[1], total=total).signed(r.sign)
                entries.append(Claim(v, hashlib.sha256(v.hash.encode()).hexdigest(), total))
        served += n
        blk = led.next_block(executor.peer_id, t, entries or [Stake(1)], executor.sign)
        assert led.add_block(blk, verified=True).status == "applied", blk.height
        out.append(ledger_codec.encode_block(blk))
    return out


def genesis_for(ids: list[Identity]) -> Genesis:
    return Genesis("ledger-bench", allocations=tuple((i.peer_id, 10**12) for i in ids))


# ---------------------------------------------------------------------------- 1. verify + apply

def bench_apply(wire: list[bytes], genesis: Genesis, verified: bool) -> float:
    """Entries/s: decode every block from bytes and add it (with or without checks)."""
    led = Ledger(genesis)
    blocks = [ledger_codec.decode_block(b) for b in wire] if verified else None
    t0 = time.perf_counter()
    n = 0
    for i, data in enumerate(wire):
        blk = blocks[i] if blocks is not None else ledger_codec.decode_block(data)
        res = led.add_block(blk, verified=verified)
        assert res.status == "applied", res
        n += len(blk.entries)
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------- 0. entries per delegated request

class _BenchClock:
    """A settable wall clock (ms) for the ticket desks."""

    def __init__(self, ms: int):
        self.ms = ms

    def wall_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.ms / 1000


def bench_channels(n_requests: int, pairs: int, per_block: int, claim_every: int) -> dict:
    """Ledger cost of ``n_requests`` delegated requests spread over ``pairs`` requester ->
    executor pairs, sealed ``per_block`` requests per block interval, in two ways on the same
    requests: **tickets** (one Claim per request, what main did at session start) and
    **channels** (real :class:`TicketDesk` objects: OpenChannel, cumulative vouchers, a Claim
    per ``claim_every`` requests or at expiry, CloseChannel after it). For each: entries and
    wire bytes per 1,000 requests, and the time a fresh replica takes to decode and fully
    verify + apply every block (per 1,000 requests)."""
    from wwwserve_p2p.core.ledger import MissingDependency  # noqa: F401  (the channel rules need it)
    from wwwserve_p2p.core.types import GenerationRequest
    from wwwserve_p2p.metrics import NodeMetrics
    from wwwserve_p2p.services.tickets import TicketDesk

    reqs = [ident(f"chan-req{i}") for i in range(pairs)]
    exes = [ident(f"chan-exe{i}") for i in range(pairs)]
    genesis = genesis_for([*reqs, *exes])
    price = genesis.params.price
    tokens = 32

    def run(kind: str) -> dict:
        clock = _BenchClock(1_700_000_000_000)
        led = Ledger(genesis)
        queues: dict[str, list] = {i.peer_id: [] for i in (*reqs, *exes)}
        signers = {i.peer_id: i for i in (*reqs, *exes)}
        wire: list[bytes] = []

        def seal_all() -> None:
            for pid, q in queues.items():
                if not q:
                    continue
                ok, bad = led.validate_own(pid, clock.ms, q)
                assert not bad, bad
                blk = led.next_block(pid, clock.ms, ok, signers[pid].sign)
                assert led.add_block(blk, verified=True).status == "applied"
                wire.append(ledger_codec.encode_block(blk))
                q.clear()

        def submitter(pid: str):
            return lambda key, entry: queues[pid].append(entry)

        desks = {}
        for ident_ in (*reqs, *exes):
            pid = ident_.peer_id
            desks[pid] = TicketDesk(pid, genesis.network_id, ident_.sign, clock, lambda: led, submitter(pid),
                                    NodeMetrics(), incarnation=1, ticket_ttl_s=3600.0, claim_every=claim_every)
        for r, e in zip(reqs, exes):
            if kind == "channels":
                desks[r.peer_id]._open_toward(e.peer_id, clock.ms)
        seal_all()
        clock.ms += 1_000
        for i in range(n_requests):
            r, e = reqs[i % pairs], exes[i % pairs]
            req = GenerationRequest(f"b{i}", "m", prompt="x", max_tokens=64)
            if kind == "tickets":
                t = Ticket(genesis.network_id, f"b{i}", r.peer_id, e.peer_id, price(64), clock.ms + 3_600_000,
                           issued_ms=clock.ms - 5_000).signed(r.sign)
                queues[e.peer_id].append(Claim(t, hashlib.sha256(str(i).encode()).hexdigest(), price(tokens)))
            else:
                t = desks[r.peer_id].make(e.peer_id, req, 0)
                assert t.channel, "no channel ready"
                assert desks[e.peer_id].accept(t, r.peer_id, price(64)) == ""
                desks[e.peer_id].claim(t, price(tokens), hashlib.sha256(str(i).encode()).hexdigest())
                desks[r.peer_id].settle(t, tokens)
            if (i + 1) % per_block == 0:
                clock.ms += 1_000
                seal_all()
        if kind == "channels":
            for d in desks.values():
                d.flush_all()
            seal_all()
            # after the channels expire: executors' next blocks are the witnesses, requesters close
            clock.ms += 3_600_000 + 1_000
            for e in exes:
                queues[e.peer_id].append(Stake(1))   # any later block of the executor (not counted below)
            seal_all()
            for r in reqs:
                desks[r.peer_id]._close_expired(clock.ms, led)
            seal_all()
        else:
            seal_all()
        blocks = [ledger_codec.decode_block(w) for w in wire]
        counted = [(b, w) for b, w in zip(blocks, wire)
                   if not (kind == "channels" and all(type(x) is Stake for x in b.entries))]
        entries = sum(len(b.entries) for b, _ in counted)
        nbytes = sum(len(w) for _, w in counted)
        t0 = time.perf_counter()
        fresh = Ledger(genesis)
        for w in wire:
            assert fresh.add_block(ledger_codec.decode_block(w)).status == "applied"
        verify_s = time.perf_counter() - t0
        assert fresh.state_hash() == led.state_hash() and fresh.total_supply() == genesis.supply
        paid = sum(fresh.account(e.peer_id).earned for e in exes)
        k = 1000 / n_requests
        return {"entries_per_1k": entries * k, "bytes_per_1k": nbytes * k, "verify_ms_per_1k": verify_s * 1000 * k,
                "blocks": len(counted), "paid": paid, "locked_after": fresh.locked()}

    out = {"requests": n_requests, "pairs": pairs, "per_block": per_block, "claim_every": claim_every,
           "tickets": run("tickets"), "channels": run("channels")}
    assert out["tickets"]["paid"] == out["channels"]["paid"] == n_requests * price(tokens)
    out["entries_ratio"] = out["tickets"]["entries_per_1k"] / out["channels"]["entries_per_1k"]
    out["bytes_ratio"] = out["tickets"]["bytes_per_1k"] / out["channels"]["bytes_per_1k"]
    out["verify_ratio"] = out["tickets"]["verify_ms_per_1k"] / out["channels"]["verify_ms_per_1k"]
    return out


def bench_ed25519(signer: Identity, n: int) -> float:
    payload = b"x" * 200
    sig = signer.sign("bench", payload)
    t0 = time.perf_counter()
    for _ in range(n):
        assert verify(signer.peer_id, "bench", payload, sig)
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------- 2. sync

def node_config(data_dir: Path, i: int) -> NodeConfig:
    return NodeConfig(node=NodeSection(data_dir=str(data_dir), network="ledger-bench", seed=i, log_level="WARNING"),
                      net=NetSection(listen=("/ip4/127.0.0.1/tcp/0",)), status=StatusSection(interval=1.0),
                      api=ApiSection(enabled=False),
                      ledger=LedgerSection(sync_interval=3600.0, stake_interval=3600.0, checkpoint_interval=0.0),
                      executor={"kind": "echo", "models": ["m"]})


def db_bytes(d: Path) -> int:
    """Bytes of a node's SQLite ledger files (database + WAL + shared memory)."""
    return sum(f.stat().st_size for f in d.glob("ledger.sqlite*"))


def db_live_bytes(path: Path) -> int:
    """Bytes of the SQLite pages in use (file pages minus free pages; freed pages are reused)."""
    import sqlite3
    with sqlite3.connect(str(path)) as c:
        n, free, size = (c.execute(f"PRAGMA {k}").fetchone()[0] for k in ("page_count", "freelist_count", "page_size"))
    return (n - free) * size


async def bench_snapshot_sync(wire: list[bytes], genesis: Genesis, a: Identity, b: Identity, tmp: Path,
                              signers: list[Identity] | None, cut_frac: float = 0.9) -> dict:
    """Like :func:`bench_sync` for a multi-author history, block by block (``signers`` None)
    or from a snapshot: A's store adopts the snapshot of the cut at ``cut_frac`` of the history,
    attested by ``signers``; B (fresh) loads it from A and pulls the blocks above. Time from B's
    dial until B's heads and state hash equal A's; SQLite bytes of A (before/after the adoption)
    and of B."""
    (tmp / "a").mkdir()
    blocks = [ledger_codec.decode_block(x) for x in wire]
    out: dict = {"requests_blocks": len(blocks), "snapshot": signers is not None}
    with LedgerStore.open(tmp / "a" / "ledger.sqlite", genesis) as store:
        store.add_blocks(blocks)
    out["a_bytes_full"] = db_bytes(tmp / "a")
    out["a_live_bytes_full"] = db_live_bytes(tmp / "a" / "ledger.sqlite")
    if signers is not None:
        led = Ledger(genesis)
        for blk in blocks:
            led.add_block(blk, verified=True)
        times = sorted(blk.time_ms for blk in blocks)
        snap = take_snapshot(led, times[int(len(times) * cut_frac)])
        with LedgerStore.open(tmp / "a" / "ledger.sqlite", genesis) as store:
            out["pruned_blocks"] = store.adopt_snapshot(snap, [attestation(snap, s.peer_id, s.sign) for s in signers])
            out["a_blocks_after"] = store.count_blocks()
        out["snapshot_bytes"] = len(snap.raw)
        out["a_bytes_after"] = db_bytes(tmp / "a")
        out["a_live_bytes_after"] = db_live_bytes(tmp / "a" / "ledger.sqlite")
    async with open_node(node_config(tmp / "a", 0), EchoExecutor(models=["m"]), identity=a, genesis=genesis) as na:
        async with open_node(node_config(tmp / "b", 1), EchoExecutor(models=["m"]), identity=b,
                             genesis=genesis) as nb:
            t0 = time.perf_counter()
            await nb.overlay.connect(na.overlay.addrs()[0])
            with trio.fail_after(600):
                while not (all(nb.ledger.height(x) >= h for x, (h, _t) in na.ledger.heads().items())
                           and nb.ledger.state_hash() == na.ledger.state_hash()):
                    await trio.sleep(0.01)
            out["seconds"] = time.perf_counter() - t0
            out["loaded_snapshot"] = nb.ledger_service.snapshots.counts["loaded"]
            out["b_blocks_held"] = nb.ledger.summary(accounts=False)["blocks_held"]
            out["blocks"] = nb.ledger.summary(accounts=False)["blocks"]
    out["b_bytes"] = db_bytes(tmp / "b")
    out["b_live_bytes"] = db_live_bytes(tmp / "b" / "ledger.sqlite")
    return out


async def bench_sync(wire: list[bytes], genesis: Genesis, a: Identity, b: Identity, tmp: Path) -> dict:
    """Pre-load A's store, start A and B, and time from B's dial until B holds A's whole chain,
    pulled over the real protocol (B starts its pull on its own when A joins) and persisted."""
    (tmp / "a").mkdir()
    with LedgerStore.open(tmp / "a" / "ledger.sqlite", genesis) as store:
        store.add_blocks([ledger_codec.decode_block(x) for x in wire])
    t_restore = time.perf_counter()
    async with open_node(node_config(tmp / "a", 0), EchoExecutor(models=["m"]), identity=a, genesis=genesis) as na:
        restore_s = time.perf_counter() - t_restore
        async with open_node(node_config(tmp / "b", 1), EchoExecutor(models=["m"]), identity=b,
                             genesis=genesis) as nb:
            t0 = time.perf_counter()
            await nb.overlay.connect(na.overlay.addrs()[0])
            # A's height is re-read every turn: A may author a block of its own after it starts
            # (the pre-loaded chain is 10 blocks; a live A can be at 11), and B must hold all of them
            with trio.fail_after(600):
                while (nb.ledger.height(a.peer_id) < na.ledger.height(a.peer_id)
                       or nb.ledger_service.store.heights().get(a.peer_id, 0) < na.ledger.height(a.peer_id)):
                    await trio.sleep(0.01)
            dt = time.perf_counter() - t0
            assert nb.ledger.state_hash() == na.ledger.state_hash(), "replicas differ after sync"
            applied = nb.ledger.height(a.peer_id)
            stored = nb.ledger_service.store.heights().get(a.peer_id, 0)  # A's blocks (B also stores its own)
    entries = sum(len(ledger_codec.decode_block(x).entries) for x in wire)
    return {"entries": entries, "blocks": applied, "stored_blocks": stored, "seconds": dt,
            "entries_per_s": entries / dt, "restore_s": restore_s}


# ---------------------------------------------------------------------------- 3. heal convergence

def heal_specs(n: int) -> list[NodeSpec]:
    return [NodeSpec(f"h{i:02d}", {
        "node": {"network": "ledger-heal", "log_level": "WARNING", "seed": i},
        "status": {"interval": 1.0},
        "ledger": {"block_interval": 0.5, "sync_interval": 1.0, "claim_every": 1},
        "api": {"admin": True},
        "executor": {"kind": "echo", "models": ["m"], "capacity": 1, "delay_per_token": 0.02}}) for i in range(n)]


def _put_deny(node, peers: list[str]) -> None:
    httpx.put(node.api_url + "/admin/denied-peers", json={"peers": peers}, timeout=10).raise_for_status()


def _chat(node, i: int) -> None:
    httpx.post(node.api_url + "/v1/chat/completions", timeout=60, json={
        "model": "m", "messages": [{"role": "user", "content": "a b c d e f g h"}], "max_tokens": 8,
        "seed": i}).raise_for_status()


def heal_round(nodes, pool: ThreadPoolExecutor, round_no: int) -> dict:
    half = len(nodes) // 2
    a, b = nodes[:half], nodes[half:]
    ids_a, ids_b = [n.peer_id for n in a], [n.peer_id for n in b]
    list(pool.map(lambda n: _put_deny(n, ids_b if n in a else ids_a), nodes))
    t_split = time.monotonic()
    # wait until each side has dropped the other from its peer table, then trade on both sides
    while time.monotonic() - t_split < 30:
        views = list(pool.map(lambda n: {p["peer_id"] for p in n.status()["peers"] if p["state"] == "alive"}, nodes))
        if all(v <= set(ids_a) for v in views[:half]) and all(v <= set(ids_b) for v in views[half:]):
            break
        time.sleep(0.2)
    reqs = [(a[0], round_no * 1000 + i) for i in range(12)] + [(b[0], round_no * 1000 + 500 + i) for i in range(12)]
    list(pool.map(lambda x: _chat(*x), reqs))
    wait_for_ledger(a, timeout=60)
    wait_for_ledger(b, timeout=60)
    split_states = ledger_states(nodes)
    assert split_states[a[0].name] != split_states[b[0].name], "both halves should hold different states"
    list(pool.map(lambda n: _put_deny(n, []), nodes))
    t_heal = time.monotonic()
    per_node: dict[str, float] = {}
    final = ""
    while time.monotonic() - t_heal < 60:
        states = dict(zip([n.name for n in nodes], pool.map(
            lambda n: httpx.get(n.api_url + "/ledger", timeout=5).json()["state_hash"], nodes)))
        now = time.monotonic() - t_heal
        values = set(states.values())
        if len(values) == 1:
            final = values.pop()
            for n in nodes:
                per_node.setdefault(n.name, now)
            break
        # remember when each node first reached a state that differs from both split states
        for name, st in states.items():
            if st not in split_states.values():
                per_node.setdefault(name, now)
        time.sleep(0.05)
    if not final:
        raise RuntimeError("no convergence within 60 s after heal")
    return {"converged_s": max(per_node.values()), "per_node_s": per_node, "state": final}


# ---------------------------------------------------------------------------- 4. restart catch-up

def restart_specs(n: int) -> list[NodeSpec]:
    return [NodeSpec(f"r{i:02d}", {
        "node": {"network": "ledger-restart", "log_level": "WARNING", "seed": i},
        "status": {"interval": 1.0},
        "policy": {"stake": 1_000_000},
        "ledger": {"block_interval": 0.5, "sync_interval": 1.0, "stake_interval": 0.5},
        "api": {"admin": True},
        "executor": {"kind": "echo", "models": ["m"]}}) for i in range(n)]


def _json(node, path: str, **params):
    return httpx.get(node.api_url + path, params=params or None, timeout=5).json()


def _peer_height(node, author: str) -> int:
    try:
        heads = _json(node, "/ledger/blocks")["heads"]
    except (httpx.HTTPError, ValueError, KeyError):
        return -1
    return next((h["height"] for h in heads if h["author"] == author), 0)


def restart_round(nodes: list, k: int, rng, workdir: Path, pool: ThreadPoolExecutor) -> dict:
    """Kill a random node (not the first: the others' bootstrap) after a random pause, restart it
    with a new stake target and time until every peer holds the block carrying that stake."""
    from wwwserve_p2p.localnet import start_node

    vi = rng.randrange(1, len(nodes))
    victim = nodes[vi]
    time.sleep(rng.uniform(0.0, 1.0))
    victim.kill()
    others = [n for n in nodes if n is not victim]
    stake = 1_000_000 + 1_000 * (k + 1)
    victim.spec.config["policy"]["stake"] = stake
    t0 = time.monotonic()
    node = start_node(victim.spec, workdir, bootstrap=[others[0].multiaddr], ready_timeout=120)
    t_ready = time.monotonic() - t0
    nodes[vi] = node
    t_sealed = height = None
    per_peer: dict[str, float] = {}
    while time.monotonic() - t0 < 120:
        now = time.monotonic() - t0
        if height is None:
            try:
                me = _json(node, "/ledger")
            except (httpx.HTTPError, ValueError):
                me = {}
            if me and me["me"]["stake"] == stake and me["queued_entries"] == 0:
                height, t_sealed = me["me"]["height"], now
        if height is not None:
            seen = list(pool.map(lambda n: _peer_height(n, node.peer_id), others))
            for n, h in zip(others, seen):
                if h >= height:
                    per_peer.setdefault(n.name, time.monotonic() - t0)
            if len(per_peer) == len(others):
                break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"kill {k}: peers did not get {victim.name}'s newest block within 120 s "
                           f"(sealed: {t_sealed}, peers done: {sorted(per_peer)})")
    return {"kill": k, "victim": victim.name, "height": height, "ready_s": t_ready, "sealed_s": t_sealed,
            "catch_up_s": max(per_peer.values()), "per_peer_s": per_peer}


def bench_restart(n_nodes: int, kills: int, seed: int, progress) -> list[dict]:
    import random

    rng = random.Random(seed)
    rounds: list[dict] = []
    with running_network(restart_specs(n_nodes), "ledger-restart", progress) as (nodes, tmp):
        task = progress.add_task("SIGKILL, restart, catch up", total=kills)
        with ThreadPoolExecutor(max(8, n_nodes)) as pool:
            for k in range(kills):
                rounds.append(restart_round(nodes, k, rng, tmp, pool))
                wait_for_mesh(nodes, timeout=120)
                wait_for_ledger(nodes, timeout=120)
                progress.update(task, advance=1)
    return rounds


@contextmanager
def running_network(specs: list[NodeSpec], network: str, progress):
    """Start ``specs`` as node processes on a fresh network (100 credits each) in a temporary
    folder, wait for the mesh and one ledger state; yields (nodes, folder); stops them on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        write_network_genesis(specs, Path(tmp), network, credits=100)
        task = progress.add_task(f"starting {len(specs)} node processes", total=None)
        nodes = start_network(specs, Path(tmp), ready_timeout=240)
        try:
            wait_for_mesh(nodes, timeout=180)
            wait_for_ledger(nodes, timeout=120)
            progress.update(task, total=1, completed=1)
            yield nodes, Path(tmp)
        finally:
            stop_network(nodes)


# ---------------------------------------------------------------------------- report

def report(res: dict, out: Path) -> None:
    s = res["summary"]
    rows = []
    if "entries_ratio" in s:
        rows.append((f"ledger cost per 1,000 delegated requests ({s['channel_requests']:,} requests, 4 pairs)",
                     f"{s['channels_entries_per_1k']:.1f} entries, {s['channels_bytes_per_1k'] / 1024:.1f} KiB, "
                     f"verify {s['channels_verify_ms_per_1k']:.0f} ms (channels)", ">= 20x fewer entries",
                     f"tickets: {s['tickets_entries_per_1k']:.0f} entries, {s['tickets_bytes_per_1k'] / 1024:.0f} KiB, "
                     f"verify {s['tickets_verify_ms_per_1k']:.0f} ms; ratios: entries {s['entries_ratio']:.1f}x, "
                     f"bytes {s['bytes_ratio']:.1f}x, verify {s['verify_ratio']:.1f}x"))
    if "apply_checked_eps" in s:
        rows.append(("verify + apply (claims, 1 core)", f"{s['apply_checked_eps']:,.0f} entries/s",
                     ">= 5,000 entries/s",
                     f"fold only {s['apply_fold_eps']:,.0f}/s; bare Ed25519 verify {s['ed25519_vps']:,.0f}/s"))
    if "sync_s" in s:
        rows.append((f"sync {s['sync_entries']:,} entries over /wwwserve/ledger-sync/1", f"{s['sync_s']:.2f} s "
                     f"({s['sync_eps']:,.0f} entries/s)", "-", f"local decode+check+apply {s['local_apply_s']:.2f} s; "
                                                               f"restore from SQLite {s['restore_s']:.2f} s"))
    if "chan_sync_snapshot_s" in s:
        rows.append((f"fresh node syncs {s['snapshot_requests']:,} channel-paid requests "
                     f"({s['chan_blocks']:.0f} blocks)",
                     f"from snapshot {s['chan_sync_snapshot_s']:.2f} s, store {s['chan_b_bytes_snapshot'] / 1024:.0f} KiB "
                     f"({s['chan_b_blocks_held']:.0f} blocks held)", "-",
                     f"block by block {s['chan_sync_full_s']:.2f} s, store {s['chan_b_bytes_full'] / 1024:.0f} KiB; "
                     f"snapshot {s['chan_snapshot_bytes'] / 1024:.1f} KiB; serving node's store "
                     f"{s['chan_a_live_bytes_full'] / 1024:.0f} -> {s['chan_a_live_bytes_after'] / 1024:.0f} KiB live "
                     f"after adopting it"))
    if "restart_p50_s" in s:
        rows.append((f"catch-up after SIGKILL + restart, {s['restart_nodes']} processes, {s['restart_kills']} kills",
                     f"p50 {s['restart_p50_s']:.2f} s, p99 {s['restart_p99_s']:.2f} s", "<= 5 s",
                     f"from process start (ready after p50 {s['restart_ready_p50_s']:.2f} s); from ready: "
                     f"p50 {s['restart_after_ready_p50_s']:.2f} s, p99 {s['restart_after_ready_p99_s']:.2f} s; "
                     f"from sealing its new block: p99 {s['restart_after_sealed_p99_s']:.2f} s; "
                     f"max {s['restart_max_s']:.2f} s; {s['restart_over_5s']} over 5 s"))
    if "heal_s" in s:
        rows.append((f"convergence after heal, {s['nodes']} processes", f"{s['heal_s']:.2f} s (median of "
                     f"{len(res['heal_rounds'])})", "<= 3 s", f"rounds: {', '.join(f'{r:.2f}' for r in s['heal_rounds_s'])} s"))
    md = ["| measurement | result | target | baseline / notes |", "|---|---|---|---|"]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    md.append(f"\nHost: {os.cpu_count()} cores; median of {res['options']['repeats']} repeats"
              + (f"; restart percentiles over {s['restart_kills']} seeded kills." if "restart_p50_s" in s else "."))
    t = Table(title="ledger throughput")
    for col in ("measurement", "result", "target", "baseline / notes"):
        t.add_column(col)
    for r in rows:
        t.add_row(*r)
    con.print(t)
    harness.write_report(out, "ledger_throughput", res, md, plots={"ledger_throughput": lambda plt: plot(res, plt)},
                         dpi=110, con=con)


def plot(res: dict, plt):
    s = res["summary"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    if "apply_checked_eps" in s:
        names = ["Ed25519 verify\n(floor)", "verify + apply", "fold only"]
        vals = [s["ed25519_vps"], s["apply_checked_eps"], s["apply_fold_eps"]]
        axes[0].bar(names, vals, color=["#999", "#1f77b4", "#aec7e8"])
        axes[0].axhline(5000, color="red", ls="--", label="target 5,000/s")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("per second (one core)")
        axes[0].set_title("entries verified and applied")
        axes[0].legend()
    else:
        axes[0].axis("off")
    if res.get("restart_rounds"):
        xs = sorted(r["catch_up_s"] for r in res["restart_rounds"])
        axes[2].step(xs, [(k + 1) / len(xs) for k in range(len(xs))], where="post", label="every peer has it")
        ready = sorted(r["ready_s"] for r in res["restart_rounds"])
        axes[2].step(ready, [(k + 1) / len(ready) for k in range(len(ready))], where="post", label="process ready")
        axes[2].axvline(5.0, color="red", ls="--", label="target 5 s")
        axes[2].set_xlabel("seconds after the restarted process started")
        axes[2].set_ylabel("fraction of kills")
        axes[2].set_title(f"restart catch-up, {len(xs)} kills")
        axes[2].legend()
    else:
        axes[2].axis("off")
    if res.get("heal_rounds"):
        for i, r in enumerate(res["heal_rounds"]):
            xs = sorted(r["per_node_s"].values())
            axes[1].step(xs, [(k + 1) / len(xs) for k in range(len(xs))], where="post", label=f"round {i + 1}")
        axes[1].axvline(3.0, color="red", ls="--", label="target 3 s")
        axes[1].set_xlabel("seconds after the partition healed")
        axes[1].set_ylabel("fraction of nodes converged")
        axes[1].set_title(f"convergence, {s['nodes']} processes")
        axes[1].legend()
    else:
        axes[1].axis("off")
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--apply-entries", type=int, default=20_000, help="claims for the verify+apply run (default %(default)s)")
    p.add_argument("--sync-entries", type=int, default=100_000, help="claims to sync (default %(default)s)")
    p.add_argument("--nodes", type=int, default=16, help="processes for the heal measurement (default %(default)s; 0 skips)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (default %(default)s)")
    p.add_argument("--restart", type=int, default=20, help="seeded SIGKILL + restart cycles (default %(default)s; 0 skips)")
    p.add_argument("--restart-nodes", type=int, default=4, help="processes for the restart measurement (default %(default)s)")
    p.add_argument("--seed", type=int, default=18, help="seed of the kills (default %(default)s)")
    p.add_argument("--parts", default="channels,apply,sync,snapshot,heal,restart",
                   help="measurements to run (default %(default)s; --quick leaves out snapshot unless named)")
    p.add_argument("--channel-requests", type=int, default=4000,
                   help="delegated requests for the channels part (default %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="small run for CI: 4k/10k entries, 6 nodes, 1 repeat, 2 restarts")
    p.add_argument("--out", default="results/bench", help="output directory (default %(default)s)")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    if args.quick:
        args.apply_entries, args.sync_entries, args.nodes, args.repeats = 4000, 10_000, 6, 1
        args.channel_requests = 1000
        args.restart = min(args.restart, 2)
    if args.nodes and (args.nodes < 4 or args.nodes % 2):
        p.error("--nodes must be 0 or an even number >= 4")
    parts = set(args.parts.split(","))
    if args.quick and args.parts == p.get_default("parts"):
        parts.discard("snapshot")
    if not parts <= {"channels", "apply", "sync", "snapshot", "heal", "restart"} or args.restart_nodes < 2:
        p.error("--parts is a comma list of channels, apply, sync, snapshot, heal, restart; "
                "--restart-nodes must be >= 2")
    if "heal" not in parts:
        args.nodes = 0
    if "restart" not in parts:
        args.restart = 0
    executor, requesters = ident("executor"), [ident(f"req{i}") for i in range(8)]
    genesis = genesis_for([executor, *requesters])
    res: dict = {"options": vars(args), "host_cores": os.cpu_count()}
    checked, fold, ed, syncs, local, heal, restarts = [], [], [], [], [], [], []
    channels = []
    snapsyncs: list[dict] = []
    with harness.progress_bar(con) as progress:
        if "channels" in parts:
            task = progress.add_task("entries per delegated request", total=args.repeats)
            for _ in range(args.repeats):
                channels.append(bench_channels(args.channel_requests, 4, 20, 64))
                progress.update(task, advance=1)
        if parts & {"apply", "sync"}:
            n_wire = max(args.apply_entries if "apply" in parts else 0, args.sync_entries if "sync" in parts else 0)
            wire = claim_blocks(genesis, executor, requesters, n_wire, progress)
        if "apply" in parts:
            apply_wire = wire[: max(1, args.apply_entries // ENTRIES_PER_BLOCK)]
            task = progress.add_task("verify + apply", total=args.repeats)
            for _ in range(args.repeats):
                checked.append(bench_apply(apply_wire, genesis, verified=False))
                fold.append(bench_apply(apply_wire, genesis, verified=True))
                ed.append(bench_ed25519(executor, 5000))
                progress.update(task, advance=1)
        if "sync" in parts:
            task = progress.add_task("sync over libp2p", total=args.repeats)
            sync_wire = wire[: max(1, args.sync_entries // ENTRIES_PER_BLOCK)]
            for r in range(args.repeats):
                with tempfile.TemporaryDirectory() as tmp:
                    syncs.append(trio.run(bench_sync, sync_wire, genesis, executor, ident(f"fresh{r}"), Path(tmp)))
                t0 = time.perf_counter()
                led = Ledger(genesis)
                for data in sync_wire:
                    led.add_block(ledger_codec.decode_block(data))
                local.append(time.perf_counter() - t0)
                progress.update(task, advance=1)
        if "snapshot" in parts:
            task = progress.add_task("sync from a snapshot", total=args.repeats)
            cwire = channel_blocks(genesis, executor, requesters, args.sync_entries)
            for r in range(args.repeats):
                for signers in (None, [executor, *requesters]):
                    with tempfile.TemporaryDirectory() as tmp:
                        snapsyncs.append(trio.run(bench_snapshot_sync, cwire, genesis, executor,
                                                  ident(f"fresh-s{r}"), Path(tmp), signers))
                progress.update(task, advance=1)
        if args.nodes:
            with running_network(heal_specs(args.nodes), "ledger-heal", progress) as (nodes, _):
                task = progress.add_task("partition, trade, heal", total=args.repeats)
                with ThreadPoolExecutor(max(16, args.nodes)) as pool:
                    for r in range(args.repeats):
                        heal.append(heal_round(nodes, pool, r))
                        progress.update(task, advance=1)
        if args.restart:
            restarts = bench_restart(args.restart_nodes, args.restart, args.seed, progress)
    res["summary"] = {}
    if channels:
        res["channels"] = channels
        med = {f"{k}_{m}": [c[k][m] for c in channels] for k in ("tickets", "channels")
               for m in ("entries_per_1k", "bytes_per_1k", "verify_ms_per_1k")}
        med.update({r: [c[r] for c in channels] for r in ("entries_ratio", "bytes_ratio", "verify_ratio")})
        res["summary"].update(harness.medians(med), channel_requests=args.channel_requests)
    if checked:
        res["apply_checked_eps"], res["apply_fold_eps"], res["ed25519_vps"] = checked, fold, ed
        res["summary"].update(harness.medians({"apply_checked_eps": checked, "apply_fold_eps": fold,
                                               "ed25519_vps": ed}))
    if syncs:
        res["sync"] = syncs
        res["local_apply_s"] = local
        res["summary"].update(sync_entries=syncs[0]["entries"], **harness.medians({
            "sync_s": [x["seconds"] for x in syncs], "sync_eps": [x["entries_per_s"] for x in syncs],
            "local_apply_s": local, "restore_s": [x["restore_s"] for x in syncs]}))
    if snapsyncs:
        res["snapshot_sync"] = snapsyncs
        full = [x for x in snapsyncs if not x["snapshot"]]
        snap = [x for x in snapsyncs if x["snapshot"]]
        res["summary"].update(snapshot_requests=args.sync_entries, **harness.medians({
            "chan_sync_full_s": [x["seconds"] for x in full], "chan_sync_snapshot_s": [x["seconds"] for x in snap],
            "chan_b_bytes_full": [x["b_live_bytes"] for x in full],
            "chan_b_bytes_snapshot": [x["b_live_bytes"] for x in snap],
            "chan_a_live_bytes_full": [x["a_live_bytes_full"] for x in snap],
            "chan_a_live_bytes_after": [x["a_live_bytes_after"] for x in snap],
            "chan_snapshot_bytes": [x["snapshot_bytes"] for x in snap],
            "chan_blocks": [x["blocks"] for x in snap], "chan_b_blocks_held": [x["b_blocks_held"] for x in snap]}))
    res["heal_rounds"] = heal
    if heal:
        res["summary"].update(nodes=args.nodes, heal_s=harness.median([h["converged_s"] for h in heal]),
                              heal_rounds_s=[h["converged_s"] for h in heal])
    res["restart_rounds"] = restarts
    if restarts:
        catch = [r["catch_up_s"] for r in restarts]
        pc = harness.percentiles(catch, (50, 99))
        res["summary"].update(restart_kills=len(restarts), restart_nodes=args.restart_nodes,
                              restart_p50_s=pc["p50"], restart_p99_s=pc["p99"], restart_max_s=max(catch),
                              restart_ready_p50_s=harness.percentile([r["ready_s"] for r in restarts], 50),
                              restart_after_ready_p50_s=harness.percentile(
                                  [r["catch_up_s"] - r["ready_s"] for r in restarts], 50),
                              restart_after_ready_p99_s=harness.percentile(
                                  [r["catch_up_s"] - r["ready_s"] for r in restarts], 99),
                              restart_after_sealed_p99_s=harness.percentile(
                                  [r["catch_up_s"] - r["sealed_s"] for r in restarts], 99),
                              restart_over_5s=sum(1 for c in catch if c > 5.0))
    report(res, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
