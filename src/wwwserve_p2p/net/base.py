"""The Overlay interface: what services need from a peer-to-peer network.

Two implementations: :mod:`wwwserve_p2p.net.libp2p` (real py-libp2p: TCP, Noise,
yamux, GossipSub, Kademlia) and :mod:`wwwserve_p2p.testing.memory` (in-process, for
deterministic multi-node tests under trio's MockClock). Nothing here imports libp2p.

PeerIds and multiaddrs are plain strings (base58 PeerId, e.g. ``"12D3KooW..."``; multiaddr
text, e.g. ``"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW..."``). Payloads are bytes; protobuf
lives in :mod:`wwwserve_p2p.wire`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio


@dataclass(frozen=True, slots=True)
class GossipMessage:
    """A message delivered on a topic.

    ``source`` is the PeerId of the author, authenticated by the overlay (libp2p's strict
    message signing: the signature over the message was checked against ``source``'s key).
    ``received_from`` is the neighbour that forwarded it.
    """

    topic: str
    data: bytes
    source: str
    received_from: str


#: A topic validator: runs on every message before it is delivered or forwarded. Returns
#: True to accept. Must be cheap and must not raise (an exception counts as reject).
Validator = Callable[[GossipMessage], bool]


class Stream(ABC):
    """A bidirectional byte stream to one peer, for one protocol."""

    remote_peer: str
    protocol: str

    @abstractmethod
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Return up to ``max_bytes`` bytes (at least 1), or ``b""`` at end of stream.

        :raises StreamClosed: the stream was reset.
        """

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Write all of ``data``.

        :raises StreamClosed: the stream was closed or reset by the remote side.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close our writing side (the remote reads EOF); idempotent, never raises."""

    @abstractmethod
    async def reset(self) -> None:
        """Abort the stream in both directions; idempotent, never raises."""


StreamHandler = Callable[[Stream], Awaitable[None]]


class Overlay(ABC):
    """A node's handle on the peer-to-peer network."""

    @property
    @abstractmethod
    def peer_id(self) -> str:
        """This node's PeerId."""

    @abstractmethod
    def addrs(self) -> list[str]:
        """Multiaddrs others can dial, each ending in ``/p2p/<peer_id>``."""

    @abstractmethod
    async def connect(self, multiaddr: str) -> str:
        """Dial ``multiaddr`` (must end in ``/p2p/<PeerId>``) and return the PeerId.

        Also adds the peer to the DHT routing table.

        :raises DialError: unreachable, refused, or security negotiation failed.
        """

    @abstractmethod
    def connected_peers(self) -> list[str]:
        """PeerIds with an open connection."""

    @abstractmethod
    async def subscribe(
        self, topic: str, validator: Validator | None = None
    ) -> trio.abc.ReceiveChannel[GossipMessage]:
        """Subscribe to ``topic``; messages that pass ``validator`` arrive on the channel.

        Our own publishes are not delivered back. The overlay enforces its own per-peer
        rate limit and size cap before ``validator`` runs.
        """

    @abstractmethod
    async def publish(self, topic: str, data: bytes) -> None:
        """Publish ``data`` on ``topic`` (signed with this node's key).

        :raises OverlayError: ``data`` exceeds the overlay's gossip size cap.
        """

    @abstractmethod
    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol``: each inbound stream runs ``handler(stream)`` in its own task.

        The overlay closes the stream after the handler returns and resets it if the
        handler raises.
        """

    @abstractmethod
    async def open_stream(self, peer_id: str, protocol: str) -> Stream:
        """Open a stream to ``peer_id`` for ``protocol``, dialing if needed.

        :raises DialError: the peer cannot be reached or does not speak ``protocol``.
        """

    @abstractmethod
    async def provide(self, key: str) -> None:
        """Announce a provider record for ``key`` (e.g. ``/wwwserve/model/<name>``)."""

    @abstractmethod
    async def find_providers(self, key: str, limit: int = 20) -> list[str]:
        """PeerIds (de-duplicated, never ourselves) holding a provider record for ``key``.

        Their addresses become dialable by :meth:`open_stream`/:meth:`connect`.
        """

    def peer_addrs(self, peer_id: str) -> list[str]:
        """Known multiaddrs of ``peer_id`` (may be empty)."""
        return []

    def connection_kinds(self) -> dict[str, str]:
        """PeerId -> how we are connected: ``direct``, ``hole-punched`` or ``relayed``
        (connected peers only; an overlay without relays reports ``direct``)."""
        return {p: "direct" for p in self.connected_peers()}

    def reachability(self) -> dict[str, object]:
        """``reachability`` (``public`` / ``private`` / ``unknown``) and ``relays`` (PeerIds
        we hold relay reservations on)."""
        return {"reachability": "unknown", "relays": []}
