"""An in-process overlay for deterministic multi-node tests (works under trio's MockClock).

All overlays of one :class:`MemoryNetwork` can reach each other unless a partition says
otherwise. Gossip is delivered to every reachable subscriber (a perfect mesh) after
``latency`` seconds; streams are pairs of bounded memory channels. Closing an overlay (its
context exiting, e.g. because the node's scope was cancelled to simulate a crash) resets
every stream it had open, like a process dying.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..errors import DialError, OverlayError, StreamClosed
from ..identity import Identity
from ..net.base import GossipMessage, Overlay, Stream, StreamHandler, Validator


class _Pipe:
    """One direction of a stream."""

    def __init__(self) -> None:
        self.send, self.recv = trio.open_memory_channel[bytes](64)


class MemoryStream(Stream):
    """One end of an in-memory stream."""

    def __init__(self, remote_peer: str, protocol: str, inbound: _Pipe, outbound: _Pipe, state: dict,
                 on_done=None):
        self._on_done = on_done  # called once this end is closed or reset (the overlay forgets it)
        self.remote_peer = remote_peer
        self.protocol = protocol
        self._in = inbound
        self._out = outbound
        self._state = state  # shared by both ends: {"reset": bool}
        self._buf = b""
        self._closed = False

    async def read(self, max_bytes: int = 65536) -> bytes:
        if self._state["reset"]:
            raise StreamClosed("stream reset")
        if not self._buf:
            try:
                self._buf = await self._in.recv.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                if self._state["reset"]:
                    raise StreamClosed("stream reset") from None
                return b""
        data, self._buf = self._buf[:max_bytes], self._buf[max_bytes:]
        return data

    async def write(self, data: bytes) -> None:
        if self._state["reset"] or self._closed:
            raise StreamClosed("stream closed")
        try:
            await self._out.send.send(bytes(data))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise StreamClosed("stream closed by remote") from None

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.send.close()
        self._done()

    async def reset(self) -> None:
        self._state["reset"] = True
        for ch in (self._out.send, self._in.send, self._in.recv, self._out.recv):
            ch.close()
        self._done()

    def _done(self) -> None:
        if self._on_done is not None:
            self._on_done(self)
            self._on_done = None


class MemoryNetwork:
    """A set of in-memory overlays that can reach each other.

    ``latency``: one-way delay in seconds applied to gossip and to stream opens.
    """

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.overlays: dict[str, MemoryOverlay] = {}
        self.providers: dict[str, set[str]] = {}
        self._blocked: set[frozenset[str]] = set()

    def reachable(self, a: str, b: str) -> bool:
        return b in self.overlays and a in self.overlays and frozenset((a, b)) not in self._blocked

    def partition(self, group_a: list[str], group_b: list[str]) -> None:
        """Make every peer of ``group_a`` unreachable from every peer of ``group_b``."""
        for a in group_a:
            for b in group_b:
                self._blocked.add(frozenset((a, b)))

    def heal(self) -> None:
        self._blocked.clear()

    @asynccontextmanager
    async def open_overlay(self, identity: Identity) -> AsyncIterator["MemoryOverlay"]:
        """Join the network with ``identity`` until the context exits."""
        async with trio.open_nursery() as nursery:
            ov = MemoryOverlay(self, identity.peer_id, nursery)
            self.overlays[ov.peer_id] = ov
            try:
                yield ov
            finally:
                self.overlays.pop(ov.peer_id, None)
                for s in list(ov._streams):
                    await s.reset()
                for ch in ov._subs.values():
                    ch[0].close()
                nursery.cancel_scope.cancel()


class MemoryOverlay(Overlay):
    """In-memory :class:`Overlay`; see module docstring."""

    max_gossip_bytes = 256 * 1024

    def __init__(self, network: MemoryNetwork, peer_id: str, nursery: trio.Nursery):
        self._net = network
        self._peer_id = peer_id
        self._nursery = nursery
        self._subs: dict[str, tuple[trio.MemorySendChannel[GossipMessage], Validator | None]] = {}
        self._handlers: dict[str, StreamHandler] = {}
        self._streams: set[MemoryStream] = set()
        self.published = 0

    @property
    def peer_id(self) -> str:
        return self._peer_id

    def addrs(self) -> list[str]:
        return [f"/memory/{self._peer_id}/p2p/{self._peer_id}"]

    async def connect(self, multiaddr: str) -> str:
        pid = multiaddr.rsplit("/p2p/", 1)[-1]
        if not self._net.reachable(self._peer_id, pid):
            raise DialError(f"cannot reach {pid}")
        return pid

    def connected_peers(self) -> list[str]:
        return sorted(p for p in self._net.overlays if p != self._peer_id and self._net.reachable(self._peer_id, p))

    async def subscribe(self, topic: str, validator: Validator | None = None) -> trio.abc.ReceiveChannel[GossipMessage]:
        send, recv = trio.open_memory_channel[GossipMessage](1000)
        self._subs[topic] = (send, validator)
        return recv

    async def publish(self, topic: str, data: bytes) -> None:
        if len(data) > self.max_gossip_bytes:
            raise OverlayError(f"gossip message of {len(data)} bytes exceeds {self.max_gossip_bytes}")
        self.published += 1
        msg_from = self._peer_id
        for pid, ov in list(self._net.overlays.items()):
            if pid != msg_from and self._net.reachable(msg_from, pid) and topic in ov._subs:
                self._nursery.start_soon(ov._deliver, GossipMessage(topic, bytes(data), msg_from, msg_from))

    async def _deliver(self, msg: GossipMessage) -> None:
        if self._net.latency:
            await trio.sleep(self._net.latency)
        sub = self._subs.get(msg.topic)
        if sub is None:
            return
        send, validator = sub
        try:
            ok = validator is None or validator(msg)
        except Exception:
            ok = False
        if ok:
            try:
                send.send_nowait(msg)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass  # a full subscriber drops, like a gossip queue overflow

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        self._handlers[protocol] = handler

    async def open_stream(self, peer_id: str, protocol: str) -> Stream:
        if self._net.latency:
            await trio.sleep(self._net.latency)
        remote = self._net.overlays.get(peer_id)
        if remote is None or not self._net.reachable(self._peer_id, peer_id):
            raise DialError(f"cannot reach {peer_id}")
        handler = remote._handlers.get(protocol)
        if handler is None:
            raise DialError(f"{peer_id} does not speak {protocol}")
        a_to_b, b_to_a, state = _Pipe(), _Pipe(), {"reset": False}
        ours = MemoryStream(peer_id, protocol, b_to_a, a_to_b, state, on_done=self._streams.discard)
        theirs = MemoryStream(self._peer_id, protocol, a_to_b, b_to_a, state)
        self._streams.add(ours)
        remote._streams.add(theirs)
        remote._nursery.start_soon(remote._run_handler, handler, theirs)
        return ours

    async def _run_handler(self, handler: StreamHandler, stream: MemoryStream) -> None:
        try:
            await handler(stream)
        except Exception:
            await stream.reset()
        else:
            await stream.close()
        finally:
            self._streams.discard(stream)

    async def provide(self, key: str) -> None:
        self._net.providers.setdefault(key, set()).add(self._peer_id)

    async def find_providers(self, key: str, limit: int = 20) -> list[str]:
        found = sorted(p for p in self._net.providers.get(key, ())
                       if p != self._peer_id and self._net.reachable(self._peer_id, p))
        return found[:limit]
