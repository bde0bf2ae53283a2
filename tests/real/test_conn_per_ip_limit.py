"""Issue 15 item 3: the per-IP inbound connection cap (net.max_inbound_per_ip,
``net/libp2p/conn_limits.py``) on real py-libp2p hosts in one process. Loopback is exempt by
default, so the target here clears ``inbound_per_ip_exempt`` to count 127.0.0.1.

Every wait polls under ``trio.fail_after`` with generous deadlines; no fixed sleep precedes an
assertion.
"""

from __future__ import annotations

import socket

import pytest
import trio

from wwwserve_p2p.errors import OverlayError
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.net.libp2p import Libp2pConfig, open_libp2p_overlay
from wwwserve_p2p.testing.waits import wait_until

pytestmark = pytest.mark.real

CAP = 3



def refused(o) -> int:
    return o.statistics()["connections_refused"].get("per_ip", 0)


def pending(o) -> int:
    return o.statistics()["connections_refused"].get("pending_handshakes", 0)


class Client:
    """A client overlay (fresh identity) in its own task: dials ``addr`` and stays open until
    :meth:`close` (py-libp2p hosts are nursery-scoped, so each lives in a task of its own)."""

    def __init__(self, nursery: trio.Nursery, addr: str):
        self.connected: bool | None = None
        self._dialed = trio.Event()
        self._close = trio.Event()
        self.closed = trio.Event()
        nursery.start_soon(self._run, addr)

    async def _run(self, addr: str) -> None:
        try:
            async with open_libp2p_overlay(Identity.generate(), Libp2pConfig(dial_timeout=20.0, dial_retries=0)) as o:
                try:
                    await o.connect(addr)
                    self.connected = True
                except OverlayError:
                    self.connected = False
                self._dialed.set()
                await self._close.wait()
        finally:
            self._dialed.set()
            self.closed.set()

    async def dialed(self) -> bool | None:
        with trio.fail_after(60):
            await self._dialed.wait()
        return self.connected

    async def close(self) -> None:
        self._close.set()
        with trio.fail_after(60):
            await self.closed.wait()


async def test_one_ip_holds_at_most_the_cap_handshaking_or_connected() -> None:
    cfg = Libp2pConfig(max_inbound_per_ip=CAP, inbound_per_ip_exempt=())
    async with open_libp2p_overlay(Identity.generate(), cfg) as target, trio.open_nursery() as nursery:
        addr = target.addrs()[0]
        host, port = addr.split("/")[2], int(addr.split("/")[4])
        full = f"{addr}/p2p/{target.peer_id}"
        clients: list[Client] = []
        try:
            # raw sockets that never handshake count too: CAP of them block the next libp2p dial
            raws = [socket.create_connection((host, port), timeout=10) for _ in range(CAP)]
            await wait_until(lambda: pending(target) == CAP, what="the raw sockets admitted as handshakes")
            c = Client(nursery, full)
            clients.append(c)
            assert await c.dialed() is False and refused(target) >= 1
            for s in raws:
                s.close()
            await wait_until(lambda: pending(target) == 0, what="the raw sockets' handshakes released")
            # libp2p connections: CAP are admitted, the next ones are refused and counted
            results = []
            for _ in range(CAP + 2):
                c = Client(nursery, full)
                clients.append(c)
                results.append(await c.dialed())
            assert results == [True] * CAP + [False, False]
            await wait_until(lambda: len(target.connected_peers()) == CAP, what="CAP connected peers")
            assert refused(target) >= 3
            # a connection that closes frees its slot
            await clients[1].close()
            await wait_until(lambda: len(target.connected_peers()) == CAP - 1, what="a client gone")
            c = Client(nursery, full)
            clients.append(c)
            assert await c.dialed() is True
        finally:
            for c in clients:
                c._close.set()


async def test_loopback_is_exempt_by_default_and_zero_turns_the_cap_off() -> None:
    for cfg in (Libp2pConfig(max_inbound_per_ip=1), Libp2pConfig(max_inbound_per_ip=0, inbound_per_ip_exempt=())):
        async with open_libp2p_overlay(Identity.generate(), cfg) as target, trio.open_nursery() as nursery:
            full = f"{target.addrs()[0]}/p2p/{target.peer_id}"
            clients = [Client(nursery, full) for _ in range(3)]
            try:
                assert [await c.dialed() for c in clients] == [True] * 3
                assert refused(target) == 0
            finally:
                for c in clients:
                    c._close.set()


async def test_an_inbound_slot_comes_back_when_its_connection_closes() -> None:
    """py-libp2p 0.8.1 gave an inbound slot (250 in a node's life) back only when the swarm
    ended: after that many inbound connections a node refused every new one (seen in the churn
    soak: restarted nodes could not reach the bootstrap node again). With 2 slots, 4 clients
    that connect and leave one after another must all get in."""
    async with open_libp2p_overlay(Identity.generate(), Libp2pConfig()) as target, trio.open_nursery() as nursery:
        target._swarm._inbound_limiter.total_tokens = 2
        full = f"{target.addrs()[0]}/p2p/{target.peer_id}"
        got = []
        for _ in range(4):
            c = Client(nursery, full)
            got.append(await c.dialed())
            await c.close()
            await wait_until(lambda: not target.connected_peers(), what="the client's connection closed")
            await wait_until(lambda: target._swarm._inbound_limiter.borrowed_tokens == 0, what="the slot back")
        assert got == [True] * 4
