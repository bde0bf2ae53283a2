"""One connection per peer pair: the cross-dial tie-break (issue 13).

Simultaneous dials A->B and B->A leave two connections; both ends close the same one (kept:
the one dialed by the smaller PeerId), and py-libp2p pubsub's stream on the closed one moves
to the kept one, so gossip keeps flowing both ways. The real test uses two py-libp2p
overlays in one process on 127.0.0.1; every wait polls under ``trio.fail_after``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import SimpleNamespace

import pytest
import trio
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from wwwserve_p2p.identity import Identity
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
from wwwserve_p2p.net.libp2p.dialing import cross_dial_losers, parse_peer_id
from wwwserve_p2p.testing.waits import wait_until

TOPIC = "wwwserve/test/crossdial"


def conn(initiator: bool | None, closed: bool = False) -> SimpleNamespace:
    return SimpleNamespace(muxed_conn=SimpleNamespace(is_initiator=initiator, is_closed=closed))


def ids() -> tuple[ID, ID]:
    a, b = (parse_peer_id(Identity.generate().peer_id) for _ in range(2))
    return (a, b) if a.to_bytes() < b.to_bytes() else (b, a)


def test_both_ends_close_the_same_connection() -> None:
    small, big = ids()
    # the same two connections seen from each end: X dialed by small, Y dialed by big
    x_at_small, y_at_small = conn(True), conn(False)
    x_at_big, y_at_big = conn(False), conn(True)
    assert cross_dial_losers([y_at_small, x_at_small], small, big) == [y_at_small]
    assert cross_dial_losers([x_at_big, y_at_big], big, small) == [y_at_big]


def test_nothing_closed_when_unsure() -> None:
    small, big = ids()
    assert cross_dial_losers([conn(True)], small, big) == []  # one connection
    assert cross_dial_losers([conn(True), conn(False, closed=True)], small, big) == []  # one live
    assert cross_dial_losers([conn(True), conn(None)], small, big) == []  # unknown direction
    assert cross_dial_losers([conn(False), conn(False)], small, big) == []  # none dialed by the smaller
    relayed = conn(False)
    assert cross_dial_losers([conn(True), relayed], small, big, lambda c: c is relayed) == []  # circuit + direct
    two = [conn(True), conn(True), conn(False)]  # the oldest one dialed by the smaller stays
    assert cross_dial_losers(two, small, big) == two[1:]



@pytest.mark.real
async def test_cross_dial_leaves_one_connection_and_gossip_flows_both_ways() -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_libp2p_overlay(Identity.generate(), Libp2pConfig()))
        b = await stack.enter_async_context(open_libp2p_overlay(Identity.generate(), Libp2pConfig()))
        pa, pb = parse_peer_id(a.peer_id), parse_peer_id(b.peer_id)
        if pa.to_bytes() < pb.to_bytes():  # let B be the smaller PeerId
            a, b, pa, pb = b, a, pb, pa
        ra = await a.subscribe(TOPIC)
        rb = await b.subscribe(TOPIC)
        await a.connect(b.addrs()[0])  # A (the larger PeerId) -> B through the overlay
        await wait_until(lambda: a.statistics()["mesh"].get(TOPIC) == 1 and b.statistics()["mesh"].get(TOPIC) == 1,
                         what="a gossip mesh over the first connection")
        first = a._swarm.get_connections(pb)[0]
        # B -> A as a second, independent connection (what simultaneous dials leave behind;
        # py-libp2p's dial_addr does not reuse the existing one). The rule keeps this one
        # (B is smaller), so the first connection, which carries both pubsub streams, goes.
        await b._swarm.dial_addr(Multiaddr(a.addrs()[0].rsplit("/p2p/", 1)[0]), pa)

        def one_each() -> bool:
            return len(a._swarm.get_connections(pb)) == 1 and len(b._swarm.get_connections(pa)) == 1

        await wait_until(one_each, what="one connection per end after the tie-break")
        kept = a._swarm.get_connections(pb)[0]
        assert kept is not first and not kept.muxed_conn.is_initiator  # the one B (smaller) dialed
        assert b._swarm.get_connections(pa)[0].muxed_conn.is_initiator
        assert a.statistics()["cross_dial_closed"] + b.statistics()["cross_dial_closed"] >= 1
        # each end's pubsub stream lived on the closed connection and moved
        await wait_until(lambda: a.statistics()["pubsub_streams_moved"] == 1 == b.statistics()["pubsub_streams_moved"],
                         what="both pubsub streams moved")
        # gossip both ways on the surviving connection (the mesh re-forms at a heartbeat)
        await wait_until(lambda: a.statistics()["mesh"].get(TOPIC) == 1 and b.statistics()["mesh"].get(TOPIC) == 1,
                         what="the gossip mesh after the tie-break")
        for sender, receiver, text in ((a, rb, b"from-a"), (b, ra, b"from-b")):
            got = None
            with trio.fail_after(60):
                while got is None:  # the mesh may still be re-grafting: publish until it arrives
                    await sender.publish(TOPIC, text)
                    with trio.move_on_after(1.0):
                        got = await receiver.receive()
            assert got.data == text
        assert len(a._swarm.get_connections(pb)) == 1 and len(b._swarm.get_connections(pa)) == 1
