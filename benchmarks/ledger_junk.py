"""The ledger-junk attacker of ``benchmarks/adversaries.py --attack ledger_junk`` (issue 18 §5).

An attacker host joins the ledger gossip topic of a network and publishes ``count`` junk
messages, each from a freshly generated Ed25519 key (the pubsub message *and* the ledger
block are signed by that key, so each passes the author and signature checks of a node that
checks them), and serves ``/wwwserve/ledger-sync/1`` with the heads and blocks of all its
keys (an honest node that sees a gap pulls from the neighbour that forwarded the block).

Junk kinds (shares of ``count``, see :data:`MIX`):

- ``valid``: height 1, one ``Void`` of a ticket the key signed itself (valid for a key with
  nothing: it is stored and applied wherever it is admitted);
- ``claim``: height 1, a legacy ``Claim`` of a ticket signed by a second fresh key (which, once
  applied, gives the author a positive fold balance and "paid work": the membership shortcut);
- ``gap``: the tip (height 3) of a 3-block chain, a gap below it (pending buffer, a pull from us);
- ``heavy``: height 1, ~200 KB: the same self-signed ``Void`` repeated (one signature for the
  attacker, one verify per copy for a node that checks them all before the chain check
  refuses the duplicates);
- ``equivocation``: two different height-1 blocks of one key (counted as 2 messages);
- ``malformed``: random bytes; ``oversized``: 300 KiB of random bytes (over the 256 KiB gossip cap).

Everything is generated before the first publish (so the rate is the publish rate). Blocking
helpers (no trio) are importable for tests.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from wwwserve_p2p.config import load_genesis
from wwwserve_p2p.core.ledger import Block, Genesis, Ledger, Ticket, Void, build_block
from wwwserve_p2p.core.ledger.entries import Claim
from wwwserve_p2p.core.crypto import message as signed_message
from wwwserve_p2p.core.crypto import peer_id_from_public_bytes
from wwwserve_p2p.identity import Identity


class Key:
    """A fresh Ed25519 key with its PeerId, cached (``Identity`` re-derives both per call)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.private = Ed25519PrivateKey.generate()
        self.public_bytes = self.private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                     serialization.PublicFormat.Raw)
        self.peer_id = peer_id_from_public_bytes(self.public_bytes)

    def sign(self, domain: str, payload: bytes) -> bytes:
        return self.private.sign(signed_message(domain, payload))

MIX = (("valid", 0.60), ("claim", 0.10), ("gap", 0.10), ("heavy", 0.02), ("equivocation", 0.08),
       ("malformed", 0.08), ("oversized", 0.02))
HEAVY_BYTES = 200_000
OVERSIZED_BYTES = 300 * 1024
GAP_HEIGHT = 3
#: Messages (and bytes) per RPC the attacker sends.
BATCH = 32
BATCH_BYTES = 800_000


@dataclass
class Junk:
    """What the attacker sends and serves: ``messages`` = ``(kind, key, payload)`` in send
    order; ``chains`` = author -> its blocks by height (what our sync server answers)."""

    network_id: str
    messages: list[tuple[str, Key, bytes]] = field(default_factory=list)
    chains: dict[str, list[Block]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _ticket(led: Ledger, requester: Key, executor: str, now_ms: int, rid: str) -> Ticket:
    return Ticket(led.network_id, rid, requester.peer_id, executor, 1000, now_ms + 3_600_000,
                  issued_ms=now_ms).signed(requester.sign)


def make_junk(genesis: Genesis, count: int, now_ms: int, seed: int = 0) -> Junk:
    """Generate ``count`` junk messages for ``genesis``'s network (see the module doc)."""
    from wwwserve_p2p.wire import ledger_codec as lc

    led = Ledger(genesis)
    rng = random.Random(seed)
    out = Junk(led.network_id)
    kinds = [k for k, share in MIX for _ in range(int(round(share * 1000)))]
    noise = os.urandom(OVERSIZED_BYTES)
    heavy_void: list[Void] = []
    while len(out.messages) < count:
        kind = kinds[len(out.messages) % len(kinds)]
        key = Key()
        me = key.peer_id
        if kind in ("malformed", "oversized"):
            n = rng.randint(16, 4000) if kind == "malformed" else OVERSIZED_BYTES
            start = rng.randrange(0, OVERSIZED_BYTES - n + 1)
            out.messages.append((kind, key, noise[start:start + n]))
        elif kind == "claim":
            payer = Key()
            t = _ticket(led, payer, me, now_ms, f"junk-{len(out.messages)}")
            blk = led.next_block(me, now_ms, [Claim(t, "ab" * 32, 1000)], key.sign)
            out.chains[me] = [blk]
            out.messages.append((kind, key, lc.encode_gossip(blk)))
        elif kind == "heavy":
            v = Void(_ticket(led, key, me, now_ms, "heavy"))
            if not heavy_void:
                heavy_void.append(v)
            one = len(lc.encode_gossip(led.next_block(me, now_ms, [v], key.sign)))
            blk = led.next_block(me, now_ms, [v] * max(1, HEAVY_BYTES // max(1, one - 100)), key.sign)
            out.chains[me] = [blk]
            out.messages.append((kind, key, lc.encode_gossip(blk)))
        elif kind == "gap":
            chain: list[Block] = []
            prev = led.next_block(me, now_ms, [], key.sign).prev_hash  # the genesis hash
            for h in range(1, GAP_HEIGHT + 1):
                v = Void(_ticket(led, key, me, now_ms, f"gap-{h}"))
                b = build_block(led.network_id, me, h, prev, now_ms, [v], key.sign)
                chain.append(b)
                prev = b.hash
            out.chains[me] = chain
            out.messages.append((kind, key, lc.encode_gossip(chain[-1])))
        elif kind == "equivocation":
            a = led.next_block(me, now_ms, [Void(_ticket(led, key, me, now_ms, "eq-a"))], key.sign)
            b = led.next_block(me, now_ms, [Void(_ticket(led, key, me, now_ms, "eq-b"))], key.sign)
            out.chains[me] = [a]
            out.messages.append((kind, key, lc.encode_gossip(a)))
            out.messages.append((kind, key, lc.encode_gossip(b)))
        else:
            blk = led.next_block(me, now_ms, [Void(_ticket(led, key, me, now_ms, "v"))], key.sign)
            out.chains[me] = [blk]
            out.messages.append((kind, key, lc.encode_gossip(blk)))
        out.counts[kind] = out.counts.get(kind, 0) + 1
    del out.messages[count:]
    return out


def _pubsub_message(topic: str, key: Key, data: bytes, seqno: int) -> Any:
    """A py-libp2p pubsub message from ``key`` (from, seqno, signature, key), strict-signed."""
    from libp2p.crypto.ed25519 import Ed25519PublicKey
    from libp2p.peer.id import ID
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import PUBSUB_SIGNING_PREFIX

    pub = Ed25519PublicKey.from_bytes(key.public_bytes)
    msg = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=ID.from_pubkey(pub).to_bytes(),
                          seqno=seqno.to_bytes(8, "big"))
    msg.signature = key.private.sign(PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
    msg.key = pub.serialize()
    return msg


class _Target:
    def __init__(self, d: dict[str, str]):
        self.multiaddr, self.peer_id = d["multiaddr"], d["peer_id"]


async def ledger_junk_attack(target: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Publish ``params['count']`` junk messages into ``target`` at ``params['rate']``/s (at
    least ``params['duration']`` s in all, so ``count=0`` is the same run without junk), serve
    sync, then hold the connection ``params['drain']`` s. Returns counts and wall times.
    ``target`` None: generate first, print ``ready``, then read the target's JSON
    (``{"multiaddr", "peer_id"}``) from one stdin line."""
    from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
    from wwwserve_p2p.services.ledger import SYNC_PROTOCOL, ledger_topic
    from wwwserve_p2p.wire import ledger_codec as lc
    from wwwserve_p2p.wire.framing import FrameReader, frame

    genesis = load_genesis(params["genesis"])
    count, rate = int(params["count"]), float(params["rate"])
    junk = make_junk(genesis, count, int(time.time() * 1000))
    if target is None:  # generated while the network starts: the target comes on stdin
        import json
        import sys
        print("ready", flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        target = _Target(json.loads(line))
    topic = ledger_topic(junk.network_id)
    authors = sorted(junk.chains)
    served = {"heads": 0, "range": 0, "blocks": 0}

    async def serve_sync(stream: Any) -> None:
        try:
            req = lc.decode_sync_request(await FrameReader(stream, 64 * 1024).read_frame(5.0) or b"")
            if req.kind == "heads":
                import bisect
                i = bisect.bisect_right(authors, req.after)
                page = authors[i:i + min(req.limit or 2048, 2048)]
                rows = tuple((a, len(junk.chains[a]), junk.chains[a][-1].hash) for a in page)
                nxt = page[-1] if page and i + len(page) < len(authors) else ""
                served["heads"] += 1
                await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(heads=rows, done=True,
                                                                                 next_after=nxt))))
            else:
                blocks = tuple(b for b in junk.chains.get(req.author, []) if req.lo <= b.height <= req.hi)
                served["range"] += 1
                served["blocks"] += len(blocks)
                await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(blocks=blocks, done=True))))
        except Exception:  # noqa: BLE001 - an attacker's server: any failure ends this stream
            pass
        finally:
            try:
                await stream.close()
            except Exception:  # noqa: BLE001
                pass

    # a deep outbound queue: the junk goes out as fast as the target reads it (py-libp2p's
    # default drops what a slow reader has not taken)
    config = Libp2pConfig(bootstrap=(target.multiaddr,), gossip_outbound_queue=1 << 20)
    async with open_libp2p_overlay(Identity.generate(), config) as atk:
        atk.set_stream_handler(SYNC_PROTOCOL, serve_sync)
        await atk.subscribe(topic)
        with trio.fail_after(60):
            while not atk._gossip.router.mesh.get(topic):  # grafted by the target: messages reach it
                await trio.sleep(0.1)
        from libp2p.peer.id import ID
        from libp2p.pubsub.pb import rpc_pb2

        router = atk._gossip.router
        peer = ID.from_base58(target.peer_id)
        queue = router.pubsub.peer_queues.get(peer)
        t0 = trio.current_time()
        start_wall = time.time()
        sent = 0
        batch: list[Any] = []
        size = 0

        def flush() -> None:
            nonlocal batch, size
            if batch:  # many messages per RPC, as a real flooder would (py-libp2p frames <= 1 MiB)
                router.send_rpc(peer, rpc_pb2.RPC(publish=batch))
            batch, size = [], 0

        for i, (_kind, key, data) in enumerate(junk.messages):
            if batch and (len(batch) >= BATCH or size + len(data) > BATCH_BYTES):
                flush()
            batch.append(_pubsub_message(topic, key, data, i + 1))
            size += len(data) + 200
            sent += 1
            ahead = t0 + (i + 1) / rate - trio.current_time()
            if ahead > 0:
                flush()
                await trio.sleep(ahead)
            elif i % 64 == 0:
                await trio.sleep(0)
        flush()
        with trio.move_on_after(float(params.get("drain_timeout", 120.0))):
            # until the target has read it all (or dropped us)
            while queue is not None and len(queue) > 0 and peer in router.pubsub.peers:
                await trio.sleep(0.1)
        publish_s = trio.current_time() - t0
        await trio.sleep(max(0.0, t0 + float(params.get("duration", 0.0)) - trio.current_time()))
        await trio.sleep(float(params.get("drain", 5.0)))
        st = atk.statistics()
        return {"sent": sent, "publish_seconds": round(publish_s, 2), "publish_start_wall": start_wall,
                "end_wall": time.time(), "kinds": junk.counts,
                "authors": len(authors), "served": served, "attacker_dropped": st["gossip_dropped"],
                "unsent_rpcs": len(queue) if queue is not None else None,
                "target_connected": peer in router.pubsub.peers}
