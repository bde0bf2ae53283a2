"""Issue 15 on real py-libp2p hosts in one process (127.0.0.1): the peerstore overflow that
evicted the node's own entry, stream limits, and the DHT across hosts not directly connected.

Every wait polls under ``trio.fail_after``; no fixed sleep precedes an assertion.
"""

from __future__ import annotations

import os

import pytest
import trio
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from wwwserve_p2p.identity import Identity
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
from wwwserve_p2p.testing.waits import wait_until

pytestmark = pytest.mark.real

TOPIC = "wwwserve/test/hardening"



def fresh_ids(n: int) -> list[ID]:
    """PeerIds of fresh identities (identity-multihash ids of random Ed25519-sized keys)."""
    return [ID(b"\x00\x24\x08\x01\x12\x20" + os.urandom(32)) for _ in range(n)]


async def test_peerstore_overflow_keeps_our_own_entry_and_publishing_works() -> None:
    """1,500 addresses of fresh identities (what dialling forged statuses' addresses did) pushed
    py-libp2p's peerstore over its 1,000-peer cap, which evicted our own entry: every publish
    then failed with PeerStoreError. With the fix the store stays bounded and we publish."""
    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig()) as a:
        async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(a.addrs()[0],))) as b:
            await wait_until(lambda: len(a.connected_peers()) == 1, what="connection")
            got = await b.subscribe(TOPIC)
            await a.subscribe(TOPIC)
            await wait_until(lambda: a.statistics()["topic_peers"].get(TOPIC, 0) == 1, what="b's subscription")
            store = a._host.get_peerstore()
            me, peer_b = a._host.get_id(), b._host.get_id()
            for i, pid in enumerate(fresh_ids(1500)):
                store.add_addrs(pid, [Multiaddr(f"/ip4/10.{i // 250}.{i % 250}.1/tcp/4001")], 3600)
            assert len(store.peer_ids()) <= store.max_peers
            assert me in store.peer_ids() and store.privkey(me) is not None
            assert peer_b in store.peer_ids()  # connected peers are never evicted either
            with trio.fail_after(10):
                while True:
                    await a.publish(TOPIC, b"still here")
                    with trio.move_on_after(0.5):
                        msg = await got.receive()
                        break
            assert msg.data == b"still here" and msg.source == a.peer_id


async def test_inbound_stream_limits_refuse_beyond_limit_and_idle_streams_close() -> None:
    """Idle streams from one peer: beyond the per-peer limit they are reset at once, the rest
    are closed after the idle deadline; a legit stream from another peer is served throughout."""
    from wwwserve_p2p.errors import OverlayError
    from wwwserve_p2p.net.base import Stream

    proto = "/wwwserve/test-idle/1"

    async def handler(stream: Stream) -> None:
        while data := await stream.read():  # waits for a request that never comes
            await stream.write(data)

    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig()) as a:
        a._streams.per_peer_protocol, a._streams.idle_timeout = 8, 4.0
        a.set_stream_handler(proto, handler)
        boot = Libp2pConfig(bootstrap=(a.addrs()[0],))
        async with open_libp2p_overlay(Identity.generate(), boot) as attacker, \
                open_libp2p_overlay(Identity.generate(), boot) as honest:
            streams, ended = [], []
            for _ in range(20):
                try:
                    streams.append(await attacker.open_stream(a.peer_id, proto))
                except OverlayError:  # refused while negotiating: reset by the server at once
                    ended.append("refused at open")

            async def watch(s: Stream) -> None:
                try:
                    ended.append("eof" if await s.read() == b"" else "data")
                except OverlayError:
                    ended.append("reset")

            async with trio.open_nursery() as nursery:
                for s in streams:
                    nursery.start_soon(watch, s)
                await wait_until(lambda: a.statistics()["streams_refused"].get("peer_protocol", 0) >= 1,
                                 what="streams refused")
                assert a.statistics()["streams_open"]["total"] <= 8
                legit = await honest.open_stream(a.peer_id, proto)  # another peer is not affected
                await legit.write(b"ping")
                assert await legit.read() == b"ping"
                await legit.close()
                await wait_until(lambda: len(ended) == 20, timeout=15, what="idle streams closed")
            st = a.statistics()
            assert st["streams_idle_closed"] >= 8 and st["streams_open"]["total"] == 0
            assert st["streams_idle_closed"] + st["streams_refused"]["peer_protocol"] == 20


@pytest.mark.slow
async def test_dht_provider_found_across_a_line_of_eight_hosts() -> None:
    """Eight hosts in a line (each bootstraps only from the one before). The last finds the
    provider record of a key only the first provides, 7 hops away: the lookups for the key
    reach it because FIND_NODE for our record keys is answered now (the keys were 55+ bytes
    of UTF-8, which py-libp2p's KAD server refused as "not a valid PeerId")."""
    from contextlib import AsyncExitStack

    from wwwserve_p2p.net.libp2p.dht import dht_key

    key = "/wwwserve/0123456789abcdef0123456789abcdef/model/served-only-by-the-first"
    assert len(key.encode()) > 50
    async with AsyncExitStack() as stack:
        line = [await stack.enter_async_context(open_libp2p_overlay(Identity.generate(), Libp2pConfig()))]
        for _ in range(7):
            cfg = Libp2pConfig(bootstrap=(line[-1].addrs()[0],), dht_timeout=10.0)
            line.append(await stack.enter_async_context(open_libp2p_overlay(Identity.generate(), cfg)))
        first, last = line[0], line[-1]
        assert first.peer_id not in last.connected_peers()
        await wait_until(lambda: all(o.statistics()["routing_table"] >= 1 for o in line), what="routing tables")
        found: list[str] = []
        stored_far: list[object] = []
        neighbours = set(first.connected_peers())
        with trio.fail_after(150):
            while not stored_far or first.peer_id not in found:
                # FIND_NODE lookups for the key, then ADD_PROVIDER to the closest hosts found: with
                # the lookups refused, only hosts already in our routing table got the record
                await first.provide(key)
                stored_far = [o for o in line[1:] if o.peer_id not in neighbours
                              and o._dht.kad.provider_store.get_providers(dht_key(key))]
                found = await last.find_providers(key)
        assert found == [first.peer_id]  # de-duplicated, never ourselves


async def test_find_node_for_a_record_key_is_answered() -> None:
    """The cause of "FIND_NODE key is not a valid PeerId": provide/find_providers look up the
    peers closest to the *record key*, and py-libp2p's KAD server refuses FIND_NODE for keys
    that are neither a multihash nor <= 50 bytes (ours were 55+ bytes of UTF-8). A-B-C in a
    line: A's lookup for our (now multihash) key learns C from B's answer."""
    from wwwserve_p2p.net.libp2p.dht import dht_key

    key = "/wwwserve/0123456789abcdef0123456789abcdef/model/served-only-by-the-first"
    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig()) as c:
        async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(c.addrs()[0],))) as b:
            async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(bootstrap=(b.addrs()[0],))) as a:
                await wait_until(lambda: b._dht.kad.routing_table.peer_in_table(c._host.get_id()),
                                 what="C in B's routing table")
                routing = a._dht.kad.peer_routing
                with trio.fail_after(20):
                    while c._host.get_id() not in await routing._query_peer_for_closest(b._host.get_id(),
                                                                                        dht_key(key)):
                        await trio.sleep(0.2)
