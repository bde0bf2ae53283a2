"""More attackers for ``benchmarks/adversaries.py`` (issue 15 item 9), each run in the
attacker's own process (``adversaries.py --child <name> <json>``):

- :func:`gossip_junk_attack`: junk on our gossip topics, published into the target: random bytes
  on the status and the ledger topic (valid pubsub signatures of fresh keys), 300 KiB messages
  (over the gossip size cap), status messages whose pubsub signature is wrong, statuses whose
  author is an honest peer (signed by another key) and statuses of another network.
- :func:`equivocation_attack`: a ledger *member* (it has credit in the genesis) stakes, then
  signs two different blocks at one height and publishes both; it also publishes forged blocks
  (an honest peer's chain signed with its key, and a block of its own chain whose previous hash
  is wrong). The honest nodes must detect the equivocation, burn its stake and stay equal.
- :func:`connection_flood_attack`: many raw TCP connections to the target's libp2p port that
  never finish a handshake, plus many full libp2p connections (Noise, yamux) from fresh
  identities, all held idle.

Each returns a JSON-able dict of what the attacker did (the honest side is measured by
``adversaries.py``'s monitors).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import trio

from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
from wwwserve_p2p.wire import codec

#: gossip_junk kinds, in send order (cycled)
GOSSIP_KINDS = ("malformed_status", "malformed_ledger", "bad_signature", "forged_author", "wrong_network",
                "oversized")
OVERSIZED = 300 * 1024
BATCH = 32


class _Key:
    """A ledger_junk-style key (``private``, ``public_bytes``, ``peer_id``, ``sign``) from an
    :class:`Identity` (fresh when none)."""

    def __init__(self, ident: Identity | None = None):
        self.ident = ident or Identity.generate()
        self.private = self.ident._key
        self.public_bytes = self.ident.public_bytes
        self.peer_id = self.ident.peer_id

    def sign(self, domain: str, payload: bytes) -> bytes:
        return self.ident.sign(domain, payload)


async def _joined(atk: Any, topics: list[str], timeout: float = 60.0) -> None:
    for t in topics:
        await atk.subscribe(t)
    with trio.fail_after(timeout):
        while not all(atk._gossip.router.mesh.get(t) for t in topics):  # grafted by the target
            await trio.sleep(0.1)


async def _send_all(atk: Any, target_peer: str, msgs: list[Any], rate: float) -> tuple[int, float]:
    """Send ``msgs`` (pubsub Messages) to ``target_peer`` straight over the router (no local
    validation), in batches, at ``rate`` per s; returns (sent, seconds)."""
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2

    router = atk._gossip.router
    peer = ID.from_base58(target_peer)
    t0 = trio.current_time()
    batch: list[Any] = []
    size = 0
    sent = 0
    for i, m in enumerate(msgs):
        if batch and (len(batch) >= BATCH or size + len(m.data) > 800_000):
            router.send_rpc(peer, rpc_pb2.RPC(publish=batch))
            batch, size = [], 0
        batch.append(m)
        size += len(m.data) + 200
        sent += 1
        ahead = t0 + (i + 1) / rate - trio.current_time()
        if ahead > 0:
            router.send_rpc(peer, rpc_pb2.RPC(publish=batch))
            batch, size = [], 0
            await trio.sleep(ahead)
    if batch:
        router.send_rpc(peer, rpc_pb2.RPC(publish=batch))
    return sent, trio.current_time() - t0


async def gossip_junk_attack(target: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params``: network_id, count, rate, honest (PeerIds), drain (s held afterwards)."""
    from ledger_junk import _pubsub_message

    from wwwserve_p2p.services.ledger import ledger_topic

    net = params["network_id"]
    status_t, ledger_t = f"/wwwserve/{net}/status", ledger_topic(net)
    honest = params["honest"]
    rng = random.Random(15)
    noise = os.urandom(OVERSIZED)
    msgs, kinds = [], {k: 0 for k in GOSSIP_KINDS}
    for i in range(int(params["count"])):
        kind = GOSSIP_KINDS[i % len(GOSSIP_KINDS)]
        key = _Key()
        if kind == "malformed_status":
            m = _pubsub_message(status_t, key, os.urandom(rng.randint(16, 2000)), i + 1)
        elif kind == "malformed_ledger":
            m = _pubsub_message(ledger_t, key, os.urandom(rng.randint(16, 2000)), i + 1)
        elif kind == "oversized":
            m = _pubsub_message(status_t, key, noise, i + 1)
        else:
            author = honest[i % len(honest)] if kind == "forged_author" else key.peer_id
            st = PeerStatus(author, 1, 10**6 + i, () if kind == "forged_author" else ("m",), LoadSnapshot(0, 0, 8),
                            kind != "forged_author", stake=10**12, max_delegated=8)
            data = codec.encode_status(st, "0" * 32 if kind == "wrong_network" else net)
            m = _pubsub_message(status_t, key, data, i + 1)
            if kind == "bad_signature":
                m.signature = bytes(b ^ 0x5A for b in m.signature)
        msgs.append(m)
        kinds[kind] += 1
    cfg = Libp2pConfig(bootstrap=(target.multiaddr,), gossip_outbound_queue=1 << 20)
    async with open_libp2p_overlay(Identity.generate(), cfg) as atk:
        await _joined(atk, [status_t, ledger_t])
        sent, secs = await _send_all(atk, target.peer_id, msgs, float(params["rate"]))
        await trio.sleep(float(params.get("drain", 5.0)))
        st = atk.statistics()
        mesh_after = {t: st["mesh"].get(t, 0) for t in (status_t, ledger_t)}
    return {"sent": sent, "seconds": round(secs, 2), "kinds": kinds, "attacker_mesh_after": mesh_after}


async def equivocation_attack(target: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params``: genesis (path), key_dir (the member's identity), honest (PeerIds), drain.
    Publishes: Stake (height 1); a forged block of an honest peer; a block of ours with a wrong
    previous hash; then two different blocks at height 2 (Transfers to two honest peers)."""
    from ledger_junk import _pubsub_message

    from wwwserve_p2p.config import load_genesis
    from wwwserve_p2p.core.ledger import Ledger, Stake, Transfer, build_block
    from wwwserve_p2p.services.ledger import SYNC_PROTOCOL, ledger_topic
    from wwwserve_p2p.wire import ledger_codec as lc
    from wwwserve_p2p.wire.framing import FrameReader, frame

    genesis = load_genesis(params["genesis"])
    key = _Key(Identity.load_or_create(params["key_dir"]))
    me, honest = key.peer_id, params["honest"]
    led = Ledger(genesis)
    now = int(time.time() * 1000)
    b1 = led.next_block(me, now, [Stake(50_000_000)], key.sign)
    led.add_block(b1, now_ms=now)
    b2a = led.next_block(me, now + 1000, [Transfer(honest[1], 10_000_000)], key.sign)
    b2b = led.next_block(me, now + 1000, [Transfer(honest[2], 10_000_000)], key.sign)
    assert b2a.height == b2b.height == 2 and b2a.hash != b2b.hash
    forged_other = build_block(led.network_id, honest[1], 1, b1.prev_hash, now, [Transfer(me, 50_000_000)], key.sign)
    bad_prev = build_block(led.network_id, me, 3, "00" * 32, now + 2000, [Transfer(honest[1], 1)], key.sign)
    topic = ledger_topic(led.network_id)
    chain = [b1, b2a]

    async def serve_sync(stream: Any) -> None:  # our chain (with the first fork) for honest pulls
        try:
            req = lc.decode_sync_request(await FrameReader(stream, 64 * 1024).read_frame(5.0) or b"")
            if req.kind == "heads":
                await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(
                    heads=((me, len(chain), chain[-1].hash),), done=True, next_after=""))))
            else:
                blocks = tuple(b for b in chain if req.lo <= b.height <= req.hi) if req.author == me else ()
                await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(blocks=blocks, done=True))))
        except Exception:  # noqa: BLE001 - an attacker's server: any failure ends this stream
            pass
        finally:
            try:
                await stream.close()
            except Exception:  # noqa: BLE001
                pass

    sent: list[str] = []
    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(target.multiaddr,))) as atk:
        atk.set_stream_handler(SYNC_PROTOCOL, serve_sync)
        await _joined(atk, [topic])
        seq = 1

        async def pub(name: str, blk: Any) -> None:
            nonlocal seq
            await _send_all(atk, target.peer_id, [_pubsub_message(topic, key, lc.encode_gossip(blk), seq)], 100.0)
            seq += 1
            sent.append(name)

        await pub("stake_h1", b1)
        await trio.sleep(float(params.get("gap", 6.0)))  # the stake is accepted everywhere first
        await pub("forged_author_block", forged_other)
        await pub("wrong_prev_hash_h3", bad_prev)
        t_eq = time.time()
        await pub("fork_h2_a", b2a)
        await trio.sleep(0.5)
        await pub("fork_h2_b", b2b)
        await trio.sleep(float(params.get("drain", 8.0)))
    return {"attacker": me, "sent": sent, "equivocation_wall": t_eq, "fork_hashes": [b2a.hash, b2b.hash]}


async def connection_flood_attack(target: Any, params: dict[str, Any]) -> dict[str, Any]:
    """``params``: tcp (raw connections), hosts (libp2p connections), hold (s)."""
    port = int(target.multiaddr.split("/tcp/")[1].split("/")[0])
    socks: list[Any] = []
    tcp_err: dict[str, int] = {}
    t0 = trio.current_time()
    for _ in range(int(params["tcp"])):
        try:
            socks.append(await trio.open_tcp_stream("127.0.0.1", port))
        except OSError as exc:
            k = type(exc).__name__
            tcp_err[k] = tcp_err.get(k, 0) + 1
    tcp_open_s = trio.current_time() - t0
    connected = [0]
    host_err: dict[str, int] = {}
    closed_by_target = [0]

    async def host(k: int, ready: trio.Event) -> None:
        try:
            async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(target.multiaddr,))) as o:
                with trio.move_on_after(60):
                    while target.peer_id not in o.connected_peers():
                        await trio.sleep(0.2)
                if target.peer_id in o.connected_peers():
                    connected[0] += 1
                ready.set()
                await trio.sleep(float(params["hold"]))
                if target.peer_id not in o.connected_peers():
                    closed_by_target[0] += 1
        except Exception as exc:  # noqa: BLE001 - count and go on
            ready.set()
            k2 = f"{type(exc).__name__}: {exc}"[:80]
            host_err[k2] = host_err.get(k2, 0) + 1

    async with trio.open_nursery() as n:
        for k in range(int(params["hosts"])):
            ev = trio.Event()
            n.start_soon(host, k, ev)
            with trio.move_on_after(5):
                await ev.wait()
        # hold the raw sockets as long as the hosts
    still = 0
    for s in socks:  # a socket the target closed reads EOF at once
        with trio.move_on_after(0.01) as cs:
            try:
                data = await s.receive_some(1)
            except Exception:  # noqa: BLE001
                data = b""
        if cs.cancelled_caught or data:
            still += 1
        await s.aclose()
    return {"tcp_requested": int(params["tcp"]), "tcp_opened": len(socks), "tcp_errors": tcp_err,
            "tcp_open_seconds": round(tcp_open_s, 2), "tcp_still_open_after_hold": still,
            "hosts_requested": int(params["hosts"]), "hosts_connected": connected[0],
            "hosts_closed_by_target": closed_by_target[0], "host_errors": host_err,
            "seconds": round(trio.current_time() - t0, 1)}
