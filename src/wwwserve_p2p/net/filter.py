"""A deny-list in front of any :class:`~wwwserve_p2p.net.base.Overlay`.

Operators ban misbehaving peers (``net.deny_peers`` in the config, or ``PUT
/admin/denied-peers`` at run time); tests and the partition experiments use the same switch
to split a network of real processes into groups that cannot reach each other. A denied
peer's streams are refused in both directions, gossip authored or forwarded by it is
rejected before our validators run (so we never relay it), and dials to it fail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import trio

from ..errors import DialError
from .base import GossipMessage, Overlay, Stream, StreamHandler, Validator

log = logging.getLogger("wwwserve_p2p.net")


class FilteredOverlay(Overlay):
    """Wraps ``inner``; ``denied`` is the set of refused PeerIds (change it with :meth:`deny`)."""

    def __init__(self, inner: Overlay, denied: Iterable[str] = ()):
        self.inner = inner
        self.denied: frozenset[str] = frozenset(denied)

    def deny(self, peers: Iterable[str]) -> None:
        """Replace the deny-list (an empty list lifts every ban)."""
        new = frozenset(peers)
        if new != self.denied:
            log.warning("deny-list now %d peers (%s)", len(new), ", ".join(sorted(p[-8:] for p in new)) or "none")
        self.denied = new

    @property
    def peer_id(self) -> str:
        return self.inner.peer_id

    def addrs(self) -> list[str]:
        return self.inner.addrs()

    def peer_addrs(self, peer_id: str) -> list[str]:
        return self.inner.peer_addrs(peer_id)

    async def connect(self, multiaddr: str) -> str:
        pid = multiaddr.rsplit("/p2p/", 1)[-1]
        if pid in self.denied:
            raise DialError(f"{pid} is on the deny-list")
        return await self.inner.connect(multiaddr)

    def connection_kinds(self) -> dict[str, str]:
        return {p: k for p, k in self.inner.connection_kinds().items() if p not in self.denied}

    def reachability(self) -> dict[str, object]:
        return self.inner.reachability()

    def connected_peers(self) -> list[str]:
        return [p for p in self.inner.connected_peers() if p not in self.denied]

    async def subscribe(self, topic: str, validator: Validator | None = None) -> trio.abc.ReceiveChannel[GossipMessage]:
        def filtered(msg: GossipMessage) -> bool:
            if msg.source in self.denied or msg.received_from in self.denied:
                return False
            return validator(msg) if validator is not None else True

        return await self.inner.subscribe(topic, filtered)

    async def publish(self, topic: str, data: bytes) -> None:
        await self.inner.publish(topic, data)

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        async def filtered(stream: Stream) -> None:
            if stream.remote_peer in self.denied:
                await stream.reset()
                return
            await handler(stream)

        self.inner.set_stream_handler(protocol, filtered)

    async def open_stream(self, peer_id: str, protocol: str) -> Stream:
        if peer_id in self.denied:
            raise DialError(f"{peer_id} is on the deny-list")
        return await self.inner.open_stream(peer_id, protocol)

    async def provide(self, key: str) -> None:
        await self.inner.provide(key)

    async def find_providers(self, key: str, limit: int = 20) -> list[str]:
        return [p for p in await self.inner.find_providers(key, limit) if p not in self.denied]
