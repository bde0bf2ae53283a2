#!/usr/bin/env python3
"""Adversaries against a small network of real ``wwwserve node`` processes (issue 15).

Network: node ``a`` serves only ``front``; ``b``, ``c``, ``d`` serve ``m`` (echo executor), so
every user request for ``m`` sent to ``a`` is offloaded over the overlay and needs ``a``'s
peer table. The attacker is a py-libp2p host in this process that bootstraps from the target
(``a``) and joins the status topic. Attacks (``--attack``):

- ``status_flood``: ``--rate`` PeerStatus messages per second for ``--duration`` s, each
  signed by a freshly generated Ed25519 key (so each passes signature and author checks)
  and advertising one of ``--sinks`` attacker-chosen addresses (TCP sinks in this process
  that count every connection attempt: the reflection amplifier).
- ``forged_statuses``: ``--forged`` statuses from fresh keys, each advertising its own
  distinct address (what overflowed py-libp2p's 1,000-entry peerstore).
- ``idle_streams``: ``--streams`` ``/wwwserve/judge/1`` streams opened to the target from 5
  connections and left idle.
- ``slot_squat`` (issue 15 item 4): ``--sybils`` free identities (no ledger account, no payment
  channel) each keep ``--squat-streams`` delegation probes open at every executor (``b``, ``c``,
  ``d``) for ``--duration`` s: each probe asks for ``m``, and an accepted offer is held and never
  decided (no commit, no withdrawal) until the executor ends it; a refused probe is retried after
  ``--squat-backoff`` s. Reported: probes, offers accepted/held (most held at once), refusal reasons, and the
  legit requests' success and latency (they are all delegated).
- ``silent_executor`` (issue 15 item 7): 5 nodes, ``a`` (front) and ``b``, ``c``, ``d``, ``s``
  serving ``m`` (echo, ``--silent-ttft`` s per token, so that is each one's time to first token);
  ``s`` runs with ``delegation.misbehave = "silent"`` (accepts delegated work, never answers).
  Each executor first measures its own speed on 2 local requests (what its Offers advertise),
  then ``a`` gets ``--silent-rate`` legit requests/s for ``--silent-duration`` s (4 tokens, 120 s
  client timeout). Run twice: ``baseline`` (``s`` honest) and ``attack``. Reported: legit
  success, p50/p99/max latency of both, the p99 added, ``s``'s advertised TTFT, and from the node
  logs the commits per executor, the first timeout ``a`` recorded against ``s`` and the share of
  ``s`` among the commits after it.
- ``ledger_junk`` (issue 18 §5): ``--junk`` junk ledger blocks over ``--junk-seconds``, each
  from a fresh key (valid, "paid" legacy claims, gap tips, ~200 KB duplicate-entry blocks,
  equivocations, malformed, oversized; see ``ledger_junk.py``), published on the ledger topic
  into ``a`` of a 3-node network with a genesis (overdraft 0), while the attacker also serves
  ``/wwwserve/ledger-sync/1`` with all its chains. Run twice: ``baseline`` (the attacker
  connects and publishes nothing, same length) and ``attack``; per honest node: RSS growth,
  CPU share (of one core) from 10 s after the first junk to the end, disk growth of the
  ledger store, blocks/authors stored from non-members, and legit request success.

- ``gossip_junk``: ``--gossip-junk`` junk messages at ``--rate``/s on our status and ledger
  topics into ``a`` (random bytes, 300 KiB messages, wrong pubsub signatures, statuses whose
  author is an honest peer, statuses of another network; ``adversary_kinds.py``).
- ``equivocation``: a ledger member (100 credits in the genesis) stakes 50, then publishes a
  block of an honest peer's chain signed with its own key, a block with a wrong previous hash
  and two different blocks at height 2. Reported besides the phases: per honest node whether it
  lists the attacker as an equivocator, the attacker's stake, and whether all state hashes agree.
- ``lying_executor``: the ``silent_executor`` layout with ``s`` on ``delegation.misbehave =
  "decline"`` (its status always announces spare slots, it accepts every probe and refuses every
  commit as "overloaded"); baseline and attack runs, same report.
- ``connection_flood``: ``--flood-tcp`` raw TCP connections to ``a``'s libp2p port that never
  handshake plus ``--flood-hosts`` full libp2p connections from fresh identities, held
  ``--hold`` s.

During each attack (and ``--settle`` s before and after) this script sends one legitimate
request to ``a`` every 0.25 s through the OpenAI API (``m``, 4 tokens, 10 s timeout) and polls
every honest node's ``/status`` every 0.5 s. Reported per phase (before, during, after): legit
request success and p50/p99 latency; per honest view: largest peer table, honest peers not
*alive* (samples), newcomers; dials to attacker addresses (total, most to one address in any
60 s window); node RSS. JSON + Markdown + PNG under ``--out``.

    python benchmarks/adversaries.py                          # every attack, full size (~3 min)
    python benchmarks/adversaries.py --attack status_flood --quick
    python benchmarks/adversaries.py --attack ledger_junk --out results/ledger_junk
    # the same against the code before issue 15:
    cd /work/before && PYTHONPATH=/work/before/src /work/main/.venv/bin/python \\
        /work/main/benchmarks/adversaries.py --out /tmp/adv-before
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import harness
import httpx
import trio

from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
from wwwserve_p2p.wire import codec

ATTACKS = ("status_flood", "forged_statuses", "idle_streams", "ledger_junk")
NETWORK = "wwwserve-adversaries"
ATTACKS = (*ATTACKS, "slot_squat")  # issue 15 item 4: offers cost something
ATTACKS = (*ATTACKS, "silent_executor")  # issue 15 item 7: local reputation
# issue 15 item 9, the rest of the suite (attackers in adversary_kinds.py)
ATTACKS = (*ATTACKS, "gossip_junk", "equivocation", "lying_executor", "connection_flood")


def spec(name: str, models: list[str]) -> NodeSpec:
    return NodeSpec(name, {"node": {"network": NETWORK, "log_level": "INFO"},
                           "status": {"interval": 1.0},
                           "executor": {"kind": "echo", "models": models, "capacity": 8, "delay_per_token": 0.0}})


# ---------------------------------------------------------------------------- observers

class Sinks:
    """TCP listeners on 127.0.0.1 that accept and close every connection, counting them
    (timestamps per port)."""

    def __init__(self, n: int):
        self.socks = []
        self.hits: dict[int, list[float]] = {}
        self._stop = False
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(512)
            s.settimeout(0.2)
            self.socks.append(s)
            self.hits[s.getsockname()[1]] = []
        self.threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in self.socks]
        for t in self.threads:
            t.start()

    @property
    def ports(self) -> list[int]:
        return list(self.hits)

    def _serve(self, s: socket.socket) -> None:
        port = s.getsockname()[1]
        while not self._stop:
            try:
                c, _ = s.accept()
            except (TimeoutError, OSError):
                continue
            self.hits[port].append(time.monotonic())
            c.close()

    def close(self) -> None:
        self._stop = True
        for t in self.threads:
            t.join(1)
        for s in self.socks:
            s.close()

    def summary(self) -> dict[str, Any]:
        def worst_minute(ts: list[float]) -> int:
            best, j = 0, 0
            for i, t in enumerate(ts):
                while ts[j] < t - 60:
                    j += 1
                best = max(best, i - j + 1)
            return best

        return {"dials_total": sum(len(v) for v in self.hits.values()),
                "dials_max_per_address_per_minute": max((worst_minute(v) for v in self.hits.values()), default=0),
                "addresses": len(self.hits)}


class Monitor:
    """Polls /status of the honest nodes and sends legit requests to ``a``, in threads."""

    def __init__(self, nodes: list[Any]):
        self.nodes = nodes
        self.phase = "before"
        self.requests: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.defenses: dict[str, Any] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._requests, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def _requests(self) -> None:
        a = self.nodes[0]
        with httpx.Client(timeout=10) as c:
            i = 0
            while not self._stop.is_set():
                t0 = time.monotonic()
                phase = self.phase
                try:
                    r = c.post(a.api_url + "/v1/chat/completions",
                               json={"model": "m", "max_tokens": 4,
                                     "messages": [{"role": "user", "content": f"legit request {i} ok"}]})
                    ok, code = r.status_code == 200, r.status_code
                except httpx.HTTPError as exc:
                    ok, code = False, type(exc).__name__
                self.requests.append({"phase": phase, "t": t0, "ok": ok, "code": code,
                                      "latency": time.monotonic() - t0})
                i += 1
                self._stop.wait(max(0.0, 0.25 - (time.monotonic() - t0)))

    def _poll(self) -> None:
        honest = {n.peer_id for n in self.nodes}
        with httpx.Client(timeout=5) as c:
            while not self._stop.is_set():
                t0 = time.monotonic()
                for n in self.nodes:
                    try:
                        st = c.get(n.api_url + "/status").json()
                    except (httpx.HTTPError, ValueError):
                        self.samples.append({"phase": self.phase, "t": t0, "node": n.name, "error": True})
                        continue
                    peers = st.get("peers", [])
                    self.defenses[n.name] = st.get("defenses", {})
                    not_alive = [p["peer_id"] for p in peers if p["peer_id"] in honest and p["state"] != "alive"]
                    missing = len(honest - {n.peer_id} - {p["peer_id"] for p in peers})
                    self.samples.append({"phase": self.phase, "t": t0, "node": n.name, "table": len(peers),
                                         "newcomers": sum(1 for p in peers if p.get("newcomer")),
                                         "honest_not_alive": len(not_alive) + missing,
                                         "rss_mib": harness.proc_rss_mib(n.proc.pid),
                                         "cpu_s": harness.proc_cpu_seconds(n.proc.pid), "fds": _fds(n.proc.pid),
                                         "connected": st.get("defenses", {}).get("overlay", {}).get("connected_peers")})
                self._stop.wait(max(0.0, 0.5 - (time.monotonic() - t0)))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for phase in ("before", "during", "after"):
            reqs = [r for r in self.requests if r["phase"] == phase]
            lat = [r["latency"] for r in reqs if r["ok"]]
            samples = [s for s in self.samples if s["phase"] == phase and not s.get("error")]
            codes: dict[str, int] = {}
            for r in reqs:
                if not r["ok"]:
                    codes[str(r["code"])] = codes.get(str(r["code"]), 0) + 1
            out[phase] = {
                "requests": len(reqs), "ok": sum(r["ok"] for r in reqs),
                "success": round(sum(r["ok"] for r in reqs) / len(reqs), 4) if reqs else None,
                "failures": codes,
                **({f"latency_{k}_s": round(v, 4) for k, v in harness.percentiles(lat).items()} if lat else {}),
                "max_table": max((s["table"] for s in samples), default=0),
                "max_newcomers": max((s["newcomers"] for s in samples), default=0),
                "honest_not_alive_samples": sum(1 for s in samples if s["honest_not_alive"] > 0),
                "samples": len(samples),
                "status_errors": sum(1 for s in self.samples if s["phase"] == phase and s.get("error")),
                "max_rss_mib": round(max((s["rss_mib"] for s in samples), default=0.0), 1),
                "max_fds": max((s.get("fds") or 0 for s in samples), default=0),
                "max_connected": max((s.get("connected") or 0 for s in samples), default=0),
                "max_cpu_share": _cpu_share(samples),
            }
        out["defenses_at_end"] = self.defenses
        return out


def _fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _cpu_share(samples: list[dict[str, Any]]) -> float | None:
    """Largest CPU share (of one core) of one honest node over a phase's samples."""
    best = None
    for node in {s["node"] for s in samples}:
        rows = [s for s in samples if s["node"] == node and s.get("cpu_s") == s.get("cpu_s")]
        if len(rows) >= 2 and rows[-1]["t"] > rows[0]["t"]:
            share = (rows[-1]["cpu_s"] - rows[0]["cpu_s"]) / (rows[-1]["t"] - rows[0]["t"])
            best = share if best is None else max(best, share)
    return None if best is None else round(best, 3)


# ---------------------------------------------------------------------------- attacker

def _pubsub_signer():
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import PUBSUB_SIGNING_PREFIX

    def forged(topic: str, data_for: Any, seqno: int, key: Any = None) -> Any:
        kp, pid = key if key is not None else fresh_key()
        msg = rpc_pb2.Message(data=data_for(pid.to_base58()), topicIDs=[topic], from_id=pid.to_bytes(),
                              seqno=seqno.to_bytes(8, "big"))
        msg.signature = kp.private_key.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
        msg.key = kp.public_key.serialize()
        return msg

    def fresh_key() -> Any:
        kp = create_new_key_pair()
        return kp, ID.from_pubkey(kp.public_key)

    forged.fresh_key = fresh_key  # type: ignore[attr-defined]
    return forged


async def gossip_attack(target: Any, network_id: str, count: int, rate: float, addr_for: Any,
                       drain: float = 10.0) -> dict[str, Any]:
    """Publish ``count`` forged statuses at ``rate``/s into ``target``; returns counts."""
    topic = f"/wwwserve/{network_id}/status"
    forged = _pubsub_signer()
    keys = [forged.fresh_key() for _ in range(count)]  # before the attack: fresh keys cost ~1 ms each
    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(target.multiaddr,))) as atk:
        await atk.subscribe(topic)
        with trio.fail_after(30):
            while not atk._gossip.router.mesh.get(topic):  # grafted by the target: messages reach it
                await trio.sleep(0.1)
        router, me = atk._gossip.router, atk._host.get_id()
        t0 = trio.current_time()
        sent = 0
        for i in range(count):
            def data_for(pid: str, i: int = i) -> bytes:
                st = PeerStatus(pid, 1, 1, ("m",), LoadSnapshot(0, 0, 8), True, stake=10**12, max_delegated=8,
                                addrs=(f"{addr_for(i)}/p2p/{pid}",))
                return codec.encode_status(st, network_id)

            msg = forged(topic, data_for, i + 1, keys[i])
            await router.publish(me, msg)
            sent += 1
            ahead = t0 + (i + 1) / rate - trio.current_time()
            if ahead > 0:
                await trio.sleep(ahead)
        # hold the connection while the target works through what is queued for it (py-libp2p
        # processes a few dozen such messages per second per node on a loaded 2-core host)
        await trio.sleep(drain)
        st = atk.statistics()
        return {"sent": sent, "seconds": round(trio.current_time() - t0, 2),
                "attacker_dropped": st["gossip_dropped"], "attacker_mesh": st["mesh"].get(topic, 0)}


async def idle_streams_attack(target: Any, n: int, hold: float) -> dict[str, Any]:
    """Open ``n`` idle /wwwserve/judge/1 streams to ``target`` from 5 connections; hold them
    ``hold`` s and count how many are still open (not reset/closed by the target)."""
    from wwwserve_p2p.errors import OverlayError

    per = n // 5
    opened, refused, errors = [], 0, []
    async with trio.open_nursery() as nursery:
        async def one_conn(k: int) -> None:
            nonlocal refused
            async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(target.multiaddr,))) as o:
                mine = []
                for _ in range(per):
                    try:
                        mine.append(await o.open_stream(target.peer_id, "/wwwserve/judge/1"))
                    except OverlayError as exc:
                        refused += 1
                        if len(errors) < 3:
                            errors.append(str(exc)[:200])
                opened.extend(mine)
                await trio.sleep(hold)
                alive = 0
                for s in mine:
                    try:
                        with trio.move_on_after(0.05) as cs:
                            data = await s.read(1)
                        if cs.cancelled_caught:
                            alive += 1  # no EOF, no reset: still open
                        elif data:
                            alive += 1
                    except OverlayError:
                        pass
                results.append(alive)

        results: list[int] = []
        for k in range(5):
            nursery.start_soon(one_conn, k)
    # client-side view only (a reset is seen only by a read that reaches it; under load a 50 ms
    # probe misses many): the target's own counters (defenses_at_end: streams_refused,
    # streams_idle_closed, streams_open) are the authoritative numbers
    return {"requested": per * 5, "opened": len(opened), "refused_at_open": refused,
            "client_probe_no_reset_after_hold": sum(results), "hold_s": hold, "refusal_examples": errors}


async def slot_squat_attack(params: dict[str, Any]) -> dict[str, Any]:
    """``sybils`` fresh identities keep ``streams`` probes each open at every executor for
    ``duration`` s, holding every accepted offer without deciding (see the module docstring)."""
    from wwwserve_p2p.core.types import GenerationRequest, Offer
    from wwwserve_p2p.services.delegation import PROTOCOL
    from wwwserve_p2p.wire.framing import FrameReader, frame

    execs = [_Target(e) for e in params["executors"]]
    counts = {"probes": 0, "accepted": 0, "refused": 0, "errors": 0, "held_now": 0, "max_held": 0,
              "ended_by_executor": 0}
    reasons: dict[str, int] = {}
    errors: dict[str, int] = {}
    async def prober(o: Any, t: _Target, k: str, deadline: float) -> None:
        i = 0
        while trio.current_time() < deadline:
            i += 1
            s = None
            try:
                with trio.move_on_after(max(0.1, deadline - trio.current_time())):
                    s = await o.open_stream(t.peer_id, PROTOCOL)
                    req = GenerationRequest(f"squat-{k}-{i}", "m", prompt="squat", max_tokens=4)
                    await s.write(frame(codec.encode_request(req, params["network_id"], 60_000)))
                    data = await FrameReader(s, 1 << 20).read_frame(10.0)
                    counts["probes"] += 1
                    reply = codec.decode_reply(data) if data else None
                    if isinstance(reply, Offer) and reply.accepted:
                        counts["accepted"] += 1
                        counts["held_now"] += 1
                        counts["max_held"] = max(counts["max_held"], counts["held_now"])
                        try:
                            await s.read(1)  # hold the offer: never decide, until the executor ends it
                            counts["ended_by_executor"] += 1
                        finally:
                            counts["held_now"] -= 1
                    else:
                        counts["refused"] += 1
                        why = (reply.reason if isinstance(reply, Offer) else repr(reply))[:90]
                        reasons[why] = reasons.get(why, 0) + 1
                        await trio.sleep(params["backoff"])
            except Exception as exc:  # noqa: BLE001 - reset or refused stream: squat again
                counts["errors"] += 1
                why = f"{type(exc).__name__}: {exc}"[:90]
                errors[why] = errors.get(why, 0) + 1
                await trio.sleep(0.5)
            finally:
                if s is not None:
                    with trio.CancelScope(shield=True):
                        try:
                            await s.reset()
                        except Exception:  # noqa: BLE001
                            pass

    async def sybil(k: int) -> None:
        cfg = Libp2pConfig(bootstrap=tuple(t.multiaddr for t in execs))
        async with open_libp2p_overlay(Identity.generate(), cfg) as o:
            with trio.move_on_after(30):  # connected to every executor before the clock starts
                while not set(t.peer_id for t in execs) <= set(o.connected_peers()):
                    await trio.sleep(0.1)
            deadline = trio.current_time() + params["duration"]
            async with trio.open_nursery() as n:
                for t in execs:
                    for j in range(params["streams"]):
                        n.start_soon(prober, o, t, f"{k}-{t.peer_id[-4:]}-{j}", deadline)

    t0 = trio.current_time()
    async with trio.open_nursery() as n:
        for k in range(params["sybils"]):
            n.start_soon(sybil, k)
    counts.pop("held_now")
    return {**counts, "refusal_reasons": reasons, "errors_by_kind": dict(sorted(errors.items())[:8]), "seconds": round(trio.current_time() - t0, 1),
            "sybils": params["sybils"], "streams_per_executor_per_sybil": params["streams"]}


# ---------------------------------------------------------------------------- main

class _Target:
    def __init__(self, d: dict[str, str]):
        self.multiaddr, self.peer_id = d["multiaddr"], d["peer_id"]


def child_main(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The attacker, in its own process (so its CPU does not slow this script's monitors)."""
    if name == "ledger_junk":
        import ledger_junk
        return trio.run(ledger_junk.ledger_junk_attack, _Target(params["target"]) if "target" in params else None,
                        params)
    target = _Target(params["target"])
    if name in ("gossip_junk", "equivocation", "connection_flood"):
        import adversary_kinds
        return trio.run(getattr(adversary_kinds, f"{name}_attack"), target, params)
    if name == "slot_squat":
        return trio.run(slot_squat_attack, params)
    if name == "idle_streams":
        return trio.run(idle_streams_attack, target, params["streams"], params["hold"])
    ports = params["ports"]
    if ports:
        def addr_for(i: int) -> str:
            return f"/ip4/127.0.0.1/tcp/{ports[i % len(ports)]}"
    else:
        def addr_for(i: int) -> str:  # a distinct (closed) address per forged status
            return f"/ip4/127.{1 + i // 60000}.{(i // 250) % 240}.{i % 250 + 1}/tcp/9"
    return trio.run(gossip_attack, target, params["network_id"], params["count"], params["rate"], addr_for)


def run_child(name: str, params: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", name, json.dumps(params)], capture_output=True,
                          text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"attacker exited {proc.returncode}", "stderr": proc.stderr[-2000:]}
    return json.loads(lines[-1])


def run_attack(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    specs = [spec("a", ["front"]), spec("b", ["m"]), spec("c", ["m"]), spec("d", ["m"])]
    if name == "equivocation":  # a genesis in which the attacker is a member with 100 credits
        from wwwserve_p2p.localnet import write_network_genesis
        genesis = write_network_genesis([*specs, NodeSpec("attacker", {})], workdir / name, NETWORK)
    nodes = start_network(specs, workdir / name, ready_timeout=120)
    sinks = Sinks(args.sinks)
    mon = Monitor(nodes)
    try:
        wait_for_mesh(nodes, timeout=60)
        network_id = nodes[0].status()["network_id"]
        mon.start()
        time.sleep(args.settle)
        mon.phase = "during"
        t0 = time.monotonic()
        target = {"multiaddr": nodes[0].multiaddr, "peer_id": nodes[0].peer_id}
        if name == "status_flood":
            params = {"count": int(args.rate * args.duration), "rate": args.rate, "ports": sinks.ports}
        elif name == "forged_statuses":
            params = {"count": args.forged, "rate": args.forged_rate, "ports": []}
        elif name == "slot_squat":
            params = {"executors": [{"multiaddr": n.multiaddr, "peer_id": n.peer_id} for n in nodes[1:]],
                      "sybils": args.sybils, "streams": args.squat_streams, "duration": args.duration,
                      "backoff": args.squat_backoff}
        elif name == "gossip_junk":
            params = {"count": args.gossip_junk, "rate": args.rate, "honest": [n.peer_id for n in nodes],
                      "drain": args.settle}
        elif name == "equivocation":
            params = {"genesis": str(genesis), "key_dir": str(workdir / name / "attacker"),
                      "honest": [n.peer_id for n in nodes], "drain": args.settle}
        elif name == "connection_flood":
            params = {"tcp": args.flood_tcp, "hosts": args.flood_hosts, "hold": args.hold}
        else:
            params = {"streams": args.streams, "hold": args.hold}
        res = run_child(name, {"target": target, "network_id": network_id, **params})
        if name == "equivocation":
            ledger_views = _equivocation_views(nodes, res.get("attacker", ""))
        attack_s = time.monotonic() - t0
        mon.phase = "after"
        time.sleep(args.settle)
    finally:
        mon.stop()
        sinks.close()
        logs = {n.name: n.log_path for n in nodes}
        stop_network(nodes)
    out = {"attack": name, "attack_result": res, "attack_seconds": round(attack_s, 1), **mon.summary()}
    if name == "status_flood":
        out["sinks"] = sinks.summary()
    if name == "equivocation":
        out["ledger"] = ledger_views
    out["log_errors"] = {k: sum(1 for line in open(p, errors="replace") if "PeerStoreError" in line)
                         for k, p in logs.items()}
    return out


def _equivocation_views(nodes: list[Any], attacker: str, timeout: float = 60.0) -> dict[str, Any]:
    """Per honest node: attacker listed as equivocator, its account, rejected counts; and
    whether every state hash agrees (waits up to ``timeout`` s for detection and agreement)."""
    deadline = time.monotonic() + timeout
    while True:
        views = {}
        for n in nodes:
            try:
                led = httpx.get(n.api_url + "/ledger", timeout=10).json()
                accs = httpx.get(n.api_url + "/ledger/accounts", timeout=10).json()["accounts"]
            except (httpx.HTTPError, ValueError, KeyError):
                views[n.name] = {"error": "unreachable"}
                continue
            acc = next((a for a in accs if a.get("peer_id") == attacker), {})
            views[n.name] = {"detected": attacker in led.get("equivocators", []), "state_hash": led.get("state_hash"),
                             "attacker_stake": acc.get("stake"), "attacker_balance": acc.get("balance"),
                             "attacker_equivocated": acc.get("equivocated"), "rejected": led.get("rejected"),
                             "burned": led.get("burned")}
        hashes = {v.get("state_hash") for v in views.values()}
        done = all(v.get("detected") for v in views.values()) and len(hashes) == 1
        if done or time.monotonic() > deadline:
            return {"nodes": views, "all_detected": all(v.get("detected") for v in views.values()),
                    "state_hashes_equal": len(hashes) == 1}
        time.sleep(1.0)


# ---------------------------------------------------------------------------- silent executor (issue 15 item 7)

def silent_specs(silent: bool, ttft: float, misbehave: str = "silent") -> list[NodeSpec]:
    def one(name: str, models: list[str], misbehave: str = "") -> NodeSpec:
        cfg: dict[str, Any] = {"node": {"network": NETWORK, "log_level": "INFO"}, "status": {"interval": 1.0},
                               "executor": {"kind": "echo", "models": models, "capacity": 8,
                                            "delay_per_token": ttft}}
        if misbehave:
            cfg["delegation"] = {"misbehave": misbehave}
        return NodeSpec(name, cfg)

    return [one("a", ["front"]), one("b", ["m"]), one("c", ["m"]), one("d", ["m"]),
            one("s", ["m"], misbehave if silent else "")]


def _log_time(line: str) -> float | None:
    import datetime as _dt
    try:
        return _dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def run_silent_once(variant: str, args: argparse.Namespace, workdir: Path, misbehave: str = "silent") -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    nodes = start_network(silent_specs(variant == "attack", args.silent_ttft, misbehave),
                          workdir / f"{misbehave}-{variant}", ready_timeout=120)
    reqs: list[dict[str, Any]] = []
    try:
        wait_for_mesh(nodes, timeout=60)
        with httpx.Client(timeout=60) as c:  # each executor measures its own speed (local runs)
            for n in nodes[1:]:
                for i in range(2):
                    c.post(n.api_url + "/v1/chat/completions",
                           json={"model": "m", "max_tokens": 2, "messages": [{"role": "user", "content": f"warm {i}"}]})
        time.sleep(args.settle)  # a's payment channels toward the executors get sealed
        advertised = nodes[4].status().get("defenses", {}).get("offers", {}).get("advertised_ttft_s")
        a = nodes[0]

        def one(i: int) -> None:
            t0 = time.monotonic()
            try:
                with httpx.Client(timeout=120) as c:
                    r = c.post(a.api_url + "/v1/chat/completions",
                               json={"model": "m", "max_tokens": 4,
                                     "messages": [{"role": "user", "content": f"legit request {i} ok"}]})
                ok, code = r.status_code == 200, r.status_code
                rid = r.json().get("id", "") if ok else ""
            except (httpx.HTTPError, ValueError) as exc:
                ok, code, rid = False, type(exc).__name__, ""
            reqs.append({"t": t0, "ok": ok, "code": code, "latency": time.monotonic() - t0, "id": rid})

        n_req = int(args.silent_rate * args.silent_duration)
        with ThreadPoolExecutor(max_workers=64) as pool:
            t_start = time.monotonic()
            for i in range(n_req):
                pool.submit(one, i)
                ahead = t_start + (i + 1) / args.silent_rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        defenses = {n.name: n.status().get("defenses", {}) for n in (nodes[0], nodes[4])}
    finally:
        logs = {n.name: n.log_path for n in nodes}
        ids = {n.name: n.peer_id for n in nodes}
        stop_network(nodes)
    lat = [r["latency"] for r in reqs if r["ok"]]
    out: dict[str, Any] = {"requests": len(reqs), "ok": sum(r["ok"] for r in reqs),
                           "failures": {str(r["code"]): sum(1 for x in reqs if x["code"] == r["code"])
                                        for r in reqs if not r["ok"]},
                           **({f"latency_{k}_s": round(v, 3) for k, v in harness.percentiles(lat).items()}
                              if lat else {}),
                           "latency_max_s": round(max(lat), 3) if lat else None,
                           "s_advertised_ttft_s": advertised,
                           "reputation_at_a": defenses.get("a", {}).get("reputation"),
                           "s_silent_held": defenses.get("s", {}).get("silent_held")}
    commits: list[tuple[float, str]] = []
    s_rids: set[str] = set()
    for name in ("b", "c", "d", "s"):
        for line in open(logs[name], errors="replace"):
            if " executing " in line and f" for {ids['a']} " in line:
                t = _log_time(line)
                if t is not None:
                    commits.append((t, name))
                if name == "s":
                    s_rids.add(line.split(" executing ", 1)[1].split(" ", 1)[0])
    first_timeout = None
    for line in open(logs["a"], errors="replace"):
        if f"reputation of {ids['s']}: " in line and (misbehave == "decline" or " declined " not in line):
            first_timeout = _log_time(line)
            break
    declines = [t for t in (_log_time(line) for line in open(logs["a"], errors="replace")
                            if f"reputation of {ids['s']}: declined" in line) if t is not None]
    if declines:  # commits s refused (the lying executor): in 10 s bins from the first
        bins = [0] * (int((declines[-1] - declines[0]) // 10) + 1)
        for t in declines:
            bins[int((t - declines[0]) // 10)] += 1
        out["declines_by_s"] = len(declines)
        out["declines_by_s_per_10s"] = bins
    # same-run view: requests whose first attempt went to s against the others
    hit = [r["latency"] for r in reqs if r["ok"] and r["id"] in s_rids]
    clean = sorted(r["latency"] for r in reqs if r["ok"] and r["id"] not in s_rids)
    if clean:
        out["requests_hitting_s"] = len(hit)
        out["hit_latency_max_s"] = round(max(hit), 3) if hit else None
        out["clean_latency_p50_s"] = round(clean[len(clean) // 2], 3)
        out["hit_added_max_s"] = round(max(hit) - clean[len(clean) // 2], 3) if hit else None
    later = [n for t, n in commits if first_timeout is not None and t > first_timeout]
    out["commits"] = {n: sum(1 for _, m in commits if m == n) for n in ("b", "c", "d", "s")}
    out["first_timeout_against_s"] = first_timeout is not None
    out["later_commits"] = len(later)
    out["later_commits_to_s"] = sum(1 for n in later if n == "s")
    out["later_share_of_s"] = round(out["later_commits_to_s"] / len(later), 4) if later else None
    return out


def run_silent_executor(args: argparse.Namespace, workdir: Path, misbehave: str = "silent") -> dict[str, Any]:
    out = {"baseline": run_silent_once("baseline", args, workdir, misbehave),
           "attack": run_silent_once("attack", args, workdir, misbehave)}
    b, a = out["baseline"], out["attack"]
    if "latency_p99_s" in a and "latency_p99_s" in b:
        out["p99_added_s"] = round(a["latency_p99_s"] - b["latency_p99_s"], 3)
        ttft = a.get("s_advertised_ttft_s") or args.silent_ttft
        out["p99_added_over_ttft"] = round(out["p99_added_s"] / ttft, 3) if ttft else None
    return out


def silent_markdown(r: dict[str, Any]) -> list[str]:
    md = ["| variant | ok | p50 s | p99 s | max s | s advertised TTFT s | commits b/c/d/s | later commits | to s |",
          "|---|---|---|---|---|---|---|---|---|"]
    for v in ("baseline", "attack"):
        x = r[v]
        cm = x["commits"]
        md.append(f"| {v} | {x['ok']}/{x['requests']} | {x.get('latency_p50_s', '-')} | {x.get('latency_p99_s', '-')} |"
                  f" {x.get('latency_max_s', '-')} | {x.get('s_advertised_ttft_s')} |"
                  f" {cm['b']}/{cm['c']}/{cm['d']}/{cm['s']} | {x['later_commits']} | {x['later_commits_to_s']}"
                  f" ({x['later_share_of_s']}) |")
    md.append(f"\np99 added by the misbehaving executor s: {r.get('p99_added_s')} s"
              f" = {r.get('p99_added_over_ttft')} x its advertised TTFT")
    a = r["attack"]
    md.append(f"\nattack run, same-run view: {a.get('requests_hitting_s')} requests hit s; the worst of them took"
              f" {a.get('hit_added_max_s')} s more than the median other request ({a.get('clean_latency_p50_s')} s)")
    return md


# ---------------------------------------------------------------------------- ledger junk (issue 18 §5)

JUNK_NETWORK = "wwwserve-ledger-junk"


def junk_specs() -> list[NodeSpec]:
    def one(name: str, models: list[str]) -> NodeSpec:
        return NodeSpec(name, {"node": {"network": JUNK_NETWORK, "log_level": "INFO"},
                               "status": {"interval": 1.0},
                               "ledger": {"block_interval": 0.5, "sync_interval": 1.0},
                               "executor": {"kind": "echo", "models": models, "capacity": 8,
                                            "delay_per_token": 0.0}})
    return [one("a", ["front"]), one("b", ["m"]), one("c", ["m"])]


def ledger_files_bytes(data_dir: Path) -> int:
    """Bytes of a node's ledger store on disk (``ledger.sqlite`` plus its WAL and SHM files)."""
    return sum(p.stat().st_size for p in Path(data_dir).glob("ledger.sqlite*") if p.is_file())


class ResourceSampler:
    """Samples CPU seconds, RSS and ledger-store bytes of each node process every ``every`` s
    (wall-clock timestamps), in a thread."""

    def __init__(self, nodes: list[Any], every: float = 0.5):
        self.nodes, self.every = nodes, every
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            for n in self.nodes:
                self.samples.append({"t": t, "node": n.name, "cpu_s": harness.proc_cpu_seconds(n.proc.pid),
                                     "rss_mib": harness.proc_rss_mib(n.proc.pid),
                                     "disk": ledger_files_bytes(Path(n.config_path).parent)})
            self._stop.wait(self.every)

    def window(self, node: str, t_start: float, t_cpu: float, t_end: float) -> dict[str, Any]:
        """Growth from ``t_start`` (the last sample at or before it) to ``t_end``: RSS (max),
        disk; CPU share of one core over ``[t_cpu, t_end]``."""
        rows = [s for s in self.samples if s["node"] == node]
        base = [s for s in rows if s["t"] <= t_start] or rows[:1]
        b = base[-1]
        during = [s for s in rows if t_start <= s["t"] <= t_end] or [b]
        c0 = [s for s in rows if s["t"] <= t_cpu] or rows[:1]
        c1 = [s for s in rows if s["t"] <= t_end] or rows[-1:]
        dt = c1[-1]["t"] - c0[-1]["t"]
        return {"rss_start_mib": round(b["rss_mib"], 1),
                "rss_growth_mib": round(max(s["rss_mib"] for s in during) - b["rss_mib"], 1),
                "cpu_share_after_10s": round((c1[-1]["cpu_s"] - c0[-1]["cpu_s"]) / dt, 3) if dt > 0 else None,
                "cpu_window_s": round(dt, 1),
                "cpu_s_total": round(c1[-1]["cpu_s"] - b["cpu_s"], 2),
                "total_window_s": round(c1[-1]["t"] - b["t"], 1),
                "disk_growth_bytes": during[-1]["disk"] - b["disk"]}


def _ledger_view(n: Any) -> dict[str, Any]:
    try:
        led = httpx.get(n.api_url + "/ledger", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {"error": "unreachable"}
    keep = ("blocks", "authors", "pending", "pending_bytes", "waiting", "rejected", "non_members", "state_hash")
    return {k: led[k] for k in keep if k in led}


def run_ledger_junk_once(variant: str, count: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One network, one attacker child (``count`` = 0: the baseline), the measurements."""
    from wwwserve_p2p.localnet import write_network_genesis

    specs = junk_specs()
    genesis = write_network_genesis(specs, workdir, JUNK_NETWORK, credits=100.0)
    nodes = start_network(specs, workdir, ready_timeout=120)
    mon = Monitor(nodes)
    sampler = ResourceSampler(nodes)
    try:
        wait_for_mesh(nodes, timeout=90)
        mon.start()
        sampler.start()
        time.sleep(args.settle)
        before = {n.name: _ledger_view(n) for n in nodes}
        mon.phase = "during"
        params = {"target": {"multiaddr": nodes[0].multiaddr, "peer_id": nodes[0].peer_id},
                  "genesis": str(genesis), "count": count, "rate": max(1.0, count / args.junk_seconds),
                  "duration": args.junk_seconds, "drain": args.settle, "drain_timeout": 60.0}
        load = os.getloadavg()[0]
        res = run_child("ledger_junk", params, timeout=1800)  # generating 20k junk is slow on a loaded host
        res["loadavg_1m"] = [round(load, 1), round(os.getloadavg()[0], 1)]
        overlay = {n.name: n.status().get("defenses", {}).get("overlay", {}) for n in nodes}
        mon.phase = "after"
        time.sleep(args.settle)
        after = {n.name: _ledger_view(n) for n in nodes}
    finally:
        mon.stop()
        sampler.stop()
        stop_network(nodes)
    t0 = res.get("publish_start_wall")
    t1 = res.get("end_wall")
    per_node = {}
    if t0 and t1:
        for n in nodes:
            per_node[n.name] = sampler.window(n.name, t0, t0 + 10.0, t1)
    for n in nodes:
        b, a = before.get(n.name, {}), after.get(n.name, {})
        row = per_node.setdefault(n.name, {})
        row["blocks_growth"] = a.get("blocks", 0) - b.get("blocks", 0)
        row["authors_growth"] = a.get("authors", 0) - b.get("authors", 0)
        row["ledger_after"] = a
        ov = overlay.get(n.name, {})
        row["gossip_received"] = ov.get("gossip_received")
        row["gossip_rejected"] = ov.get("gossip_rejected")
    return {"variant": variant, "junk": count, "attack_result": res, "nodes": per_node, **mon.summary()}


def run_ledger_junk(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Baseline and attack runs; ``extra``: per node, the attack's CPU seconds beyond the
    baseline's rate over the same wall time (the work the junk cost, robust to a loaded host:
    a starved node still has to do it, later), per 1,000 junk messages too."""
    out = {"baseline": run_ledger_junk_once("baseline", 0, args, workdir / "junk-baseline"),
           "attack": run_ledger_junk_once("attack", args.junk, args, workdir / "junk-attack")}
    extra = {}
    for name, row in out["attack"]["nodes"].items():
        base = out["baseline"]["nodes"].get(name, {})
        if "cpu_s_total" not in row or not base.get("total_window_s"):
            continue
        rate = base["cpu_s_total"] / base["total_window_s"]
        cpu = row["cpu_s_total"] - rate * row["total_window_s"]
        extra[name] = {"extra_cpu_s": round(cpu, 2), "extra_cpu_s_per_1k_junk": round(cpu * 1000 / max(1, args.junk), 3),
                       "extra_rss_mib": round(row["rss_growth_mib"] - base.get("rss_growth_mib", 0.0), 1),
                       "extra_disk_bytes": row["disk_growth_bytes"] - base.get("disk_growth_bytes", 0)}
    out["extra"] = extra
    return out


def ledger_junk_markdown(r: dict[str, Any]) -> list[str]:
    md = ["| variant | node | RSS growth MiB | CPU share after 10 s | CPU s (window s) | disk growth KiB | blocks + |"
          " authors + | gossip received | rejected |", "|---|---|---|---|---|---|---|---|---|---|"]
    for variant in ("baseline", "attack"):
        v = r[variant]
        for name, row in v["nodes"].items():
            la = row.get("ledger_after", {})
            md.append(f"| {variant} | {name} | {row.get('rss_growth_mib', '-')} | {row.get('cpu_share_after_10s', '-')}"
                      f" | {row.get('cpu_s_total', '-')} ({row.get('total_window_s', '-')}) |"
                      f" {round(row.get('disk_growth_bytes', 0) / 1024, 1)} | {row['blocks_growth']} |"
                      f" {row['authors_growth']} | {row.get('gossip_received', '-')} | {la.get('rejected', {})} |")
    md.append("")
    md.append("| node | extra CPU s (vs baseline rate) | per 1k junk | extra RSS MiB | extra disk KiB |")
    md.append("|---|---|---|---|---|")
    for name, e in r.get("extra", {}).items():
        md.append(f"| {name} | {e['extra_cpu_s']} | {e['extra_cpu_s_per_1k_junk']} | {e['extra_rss_mib']} |"
                  f" {round(e['extra_disk_bytes'] / 1024, 1)} |")
    for variant in ("baseline", "attack"):
        v = r[variant]
        md.append(f"\n{variant}: legit requests during {v['during']['ok']}/{v['during']['requests']}, "
                  f"after {v['after']['ok']}/{v['after']['requests']}; attacker {v['attack_result']}")
    return md


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child_main(sys.argv[2], json.loads(sys.argv[3]))), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attack", choices=(*ATTACKS, "all"), default="all")
    ap.add_argument("--quick", action="store_true", help="small sizes (the tests' run)")
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--forged", type=int, default=2000)
    ap.add_argument("--forged-rate", type=float, default=200.0)
    ap.add_argument("--sinks", type=int, default=4)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=40.0, help="s the idle streams are held")
    ap.add_argument("--settle", type=float, default=8.0, help="s of legit traffic before and after")
    ap.add_argument("--sybils", type=int, default=3, help="slot_squat: free identities")
    ap.add_argument("--squat-streams", type=int, default=8,
                    help="slot_squat: probes each identity keeps open at each executor")
    ap.add_argument("--silent-ttft", type=float, default=1.0,
                    help="silent_executor: s per token of the echo executors (= their time to first token)")
    ap.add_argument("--silent-rate", type=float, default=1.0, help="silent_executor: legit requests per s")
    ap.add_argument("--silent-duration", type=float, default=60.0, help="silent_executor: s of legit load")
    ap.add_argument("--squat-backoff", type=float, default=0.05, help="slot_squat: s before re-probing after a refusal")
    ap.add_argument("--junk", type=int, default=20000, help="ledger_junk: junk messages (fresh keys)")
    ap.add_argument("--junk-seconds", type=float, default=30.0, help="ledger_junk: s the junk is published over")
    ap.add_argument("--gossip-junk", type=int, default=6000, help="gossip_junk: junk messages")
    ap.add_argument("--flood-tcp", type=int, default=500, help="connection_flood: raw TCP connections")
    ap.add_argument("--flood-hosts", type=int, default=40, help="connection_flood: libp2p connections")
    ap.add_argument("--out", default="results/adversaries")
    args = ap.parse_args()
    if args.quick:
        args.rate, args.duration, args.forged, args.streams, args.hold, args.settle = 100.0, 5.0, 300, 100, 8.0, 3.0
        args.junk, args.junk_seconds = 2000, 12.0
        args.silent_duration = 20.0
        args.gossip_junk, args.flood_tcp, args.flood_hosts = 600, 100, 8
    attacks = ATTACKS if args.attack == "all" else (args.attack,)
    workdir = Path(tempfile.mkdtemp(prefix="issue-15-adv-" if attacks != ("ledger_junk",) else "issue-18-junk-",
                                    dir="/tmp"))
    results = {"machine": f"{os.cpu_count()} cores, loaded (shared with other agents)", "args": vars(args),
               "code": os.environ.get("PYTHONPATH", "main"), "attacks": {}}
    for name in attacks:
        print(f"running {name} ...", flush=True)
        if name == "ledger_junk":
            results["attacks"][name] = r = run_ledger_junk(args, workdir)
        elif name == "silent_executor":
            results["attacks"][name] = r = run_silent_executor(args, workdir)
        elif name == "lying_executor":
            results["attacks"][name] = r = run_silent_executor(args, workdir, "decline")
        else:
            results["attacks"][name] = r = run_attack(name, args, workdir)
        print(r, flush=True)
    md = ["| attack | phase | requests ok | p50 s | p99 s | max table | newcomers | honest not alive (samples) | max RSS MiB"
          " | max CPU share | max fds | max connected |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["attacks"].items():
        if name in ("ledger_junk", "silent_executor", "lying_executor"):
            continue
        for ph in ("before", "during", "after"):
            p = r[ph]
            md.append(f"| {name} | {ph} | {p['ok']}/{p['requests']} | {p.get('latency_p50_s', '-')} | "
                      f"{p.get('latency_p99_s', '-')} | {p['max_table']} | {p['max_newcomers']} | "
                      f"{p['honest_not_alive_samples']}/{p['samples']} | {p['max_rss_mib']} |"
                      f" {p.get('max_cpu_share')} | {p.get('max_fds')} | {p.get('max_connected')} |")
        if "sinks" in r:
            md.append(f"\n{name}: dials to attacker addresses {r['sinks']}")
        md.append(f"\n{name}: attack {r['attack_result']}")
    if "ledger_junk" in results["attacks"]:
        md += ["", "ledger_junk (issue 18 §5):", ""] + ledger_junk_markdown(results["attacks"]["ledger_junk"])
    if "silent_executor" in results["attacks"]:
        md += ["", "silent_executor (issue 15 item 7):", ""] + silent_markdown(results["attacks"]["silent_executor"])
    if "lying_executor" in results["attacks"]:
        md += ["", "lying_executor (s: misbehave = decline):", ""] + silent_markdown(results["attacks"]["lying_executor"])
    if "equivocation" in results["attacks"]:
        md += ["", f"equivocation ledger views: {results['attacks']['equivocation'].get('ledger')}"]
    print("\n".join(md))

    def plot(plt: Any) -> Any:
        fig, ax = plt.subplots(figsize=(8, 4))
        for name, r in results["attacks"].items():
            if name in ("ledger_junk", "silent_executor", "lying_executor"):
                continue
            ax.bar([f"{name}\n{ph}" for ph in ("before", "during", "after")],
                   [r[ph].get("latency_p99_s", 0) for ph in ("before", "during", "after")])
        ax.set_ylabel("legit request p99 (s)")
        fig.autofmt_xdate()
        fig.tight_layout()
        return fig

    harness.write_report(args.out, "adversaries", results, md, plots={"adversaries_p99": plot})


if __name__ == "__main__":
    sys.exit(main())
