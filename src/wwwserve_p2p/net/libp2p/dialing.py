"""Dialing peers: explicit connects, dials that bypass py-libp2p's negative cache, peer
addresses in the peerstore, PeerId parsing."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import multiaddr.exceptions
import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from multiaddr import Multiaddr

from ...errors import DialError
from ..config import Libp2pConfig
from .streams import LIBP2P_ERRORS, map_errors

log = logging.getLogger("wwwserve_p2p.net")

#: Peerstore TTL for addresses we were given explicitly (bootstrap, connect) and learned
#: from provider records, seconds.
EXPLICIT_ADDR_TTL = 24 * 3600
PROVIDER_ADDR_TTL = 3600

#: What parsing a multiaddr or PeerId text raises (multiaddr's ParseError and py-libp2p's
#: InvalidAddrError are ValueErrors; base58 raises ValueError; a non-string, TypeError).
BAD_ADDRESS = (ValueError, TypeError, multiaddr.exceptions.Error)

#: Peers whose dial failure was already logged at INFO are remembered up to this many.
_MAX_FAILING = 4096


def parse_peer_id(text: str) -> ID:
    """PeerId from base58 text. :raises DialError: not a PeerId."""
    try:
        return ID.from_base58(text)
    except BAD_ADDRESS:
        raise DialError(f"not a PeerId: {text!r}") from None


def parse_p2p_addr(text: str) -> PeerInfo:
    """PeerInfo from a multiaddr ending in ``/p2p/<PeerId>``. :raises DialError: otherwise."""
    try:
        return info_from_p2p_addr(Multiaddr(text))
    except BAD_ADDRESS as exc:
        raise DialError(f"not a dialable multiaddr ending in /p2p/<PeerId>: {text!r} ({exc})") from None


class Dialer:
    """Connects ``host`` to peers, each dial bounded by ``config.dial_timeout``.

    ``routing_table``: the DHT's, to which explicitly connected peers are added. ``stats``
    counts ``dials`` and ``dial_failures``.
    """

    def __init__(self, host: Any, config: Libp2pConfig, stats: Counter[str], routing_table: Any,
                 circuit: Callable[[ID, list[Any]], Awaitable[None]] | None = None):
        self._circuit = circuit
        self._host = host
        self._swarm = host.get_network()
        self._config = config
        self._stats = stats
        self._routing_table = routing_table
        self._my_id = host.get_id()
        self._failing: set[ID] = set()
        self._in_flight: dict[ID, trio.Event] = {}  # bounded by the tasks dialing

    async def connect(self, multiaddr: str, quiet: bool = False) -> str:
        """See :meth:`Libp2pOverlay.connect`; ``quiet`` logs a failure at DEBUG only."""
        info = parse_p2p_addr(multiaddr)
        pid = info.peer_id
        if pid == self._my_id:
            raise DialError("refusing to dial ourselves")
        self._host.get_peerstore().add_addrs(pid, info.addrs, EXPLICIT_ADDR_TTL)
        await self.dial(pid, what=multiaddr, addr_ttl=EXPLICIT_ADDR_TTL, quiet=quiet)
        try:
            await self._routing_table.add_peer(PeerInfo(pid, info.addrs), skip_server_mode_check=True)
        except LIBP2P_ERRORS as exc:
            log.debug("could not add %s to the routing table: %r", pid, exc)
        return pid.to_base58()

    async def dial(self, pid: ID, what: str, addr_ttl: int = PROVIDER_ADDR_TTL, quiet: bool = False) -> None:
        """Ensure a connection to ``pid`` (bypassing the negative cache); raise DialError.

        py-libp2p's ``host.connect`` resets the peer's peerstore TTL to 120 s (one TTL per
        peer, not per address; an expired peer loses its addresses), so ``addr_ttl`` is
        restored afterwards.
        """
        if self._swarm.get_connections(pid):
            return
        pending = self._in_flight.get(pid)
        if pending is not None:  # another task is dialing it: share that attempt
            await pending.wait()
            if self._swarm.get_connections(pid):
                return
            raise DialError(f"cannot connect to {what}: a concurrent dial failed")
        event = self._in_flight[pid] = trio.Event()
        try:
            await self._dial_once(pid, what, addr_ttl, quiet)
        finally:
            event.set()
            del self._in_flight[pid]

    async def _dial_once(self, pid: ID, what: str, addr_ttl: int, quiet: bool) -> None:
        self._swarm.unblock_peer(pid)
        t0 = trio.current_time()
        try:
            addrs = self.known_addrs(pid)
            direct = [a for a in addrs if "/p2p-circuit" not in str(a)]
            try:
                if not direct and self._circuit is not None:
                    raise DialError(f"cannot connect to {what}: no direct address")
                with map_errors(f"cannot connect to {what}", DialError, deadline=self._config.dial_timeout):
                    await self._host.connect(PeerInfo(pid, direct or addrs))
            except DialError as direct_exc:
                if self._circuit is None:
                    raise
                # behind a NAT, or a peer that is: through a relay (circuit relay v2)
                try:
                    await self._circuit(pid, addrs)
                except DialError as relay_exc:
                    raise DialError(f"{direct_exc}; {relay_exc}") from None
        except DialError as exc:
            self._stats["dial_failures"] += 1
            repeated = pid in self._failing  # say it once per peer until it answers again
            if len(self._failing) >= _MAX_FAILING:
                self._failing.clear()
            self._failing.add(pid)
            log.log(logging.DEBUG if quiet or repeated else logging.INFO, "dial failed: %s", exc)
            raise
        self._failing.discard(pid)
        self._stats["dials"] += 1
        self._host.get_peerstore().add_addrs(pid, [], addr_ttl)
        log.info("connected to %s (%.1f ms)", pid.to_base58(), (trio.current_time() - t0) * 1000)

    def known_addrs(self, pid: ID) -> list[Any]:
        """The peerstore's multiaddrs of ``pid`` (empty if unknown or expired)."""
        try:
            return list(self._host.get_peerstore().addrs(pid))
        except KeyError:  # PeerStoreError: unknown or expired peer
            return []

    def peer_addrs(self, peer_id: str) -> list[str]:
        """See :meth:`Libp2pOverlay.peer_addrs`."""
        try:
            pid = parse_peer_id(peer_id)
        except DialError:
            return []
        out = []
        for a in self.known_addrs(pid):
            text = str(a)
            out.append(text if "/p2p/" in text else f"{text}/p2p/{peer_id}")
        return out


# ------------------------------------------------------------------ one connection per peer pair


def dialed_by(conn: Any, my_id: ID, peer: ID) -> ID | None:
    """Who dialed ``conn`` (a py-libp2p ``SwarmConn`` to ``peer``): ``my_id`` when we
    initiated it, ``peer`` when they did, None when the library does not say."""
    initiator = getattr(getattr(conn, "muxed_conn", None), "is_initiator", None)
    if not isinstance(initiator, bool):
        return None
    return my_id if initiator else peer


def cross_dial_losers(conns: list[Any], my_id: ID, peer: ID,
                      relayed: Callable[[Any], bool] = lambda c: False) -> list[Any]:
    """The connections to ``peer`` to close so that one remains (deterministic tie-break).

    Simultaneous dials (A->B while B->A: membership, discovery and the DHT dial on their
    own) leave two connections per pair. Both ends apply the same rule, so they agree
    without talking: keep the oldest connection dialed by the *smaller* PeerId (byte order
    of the multihash), close the others. Nothing is closed when fewer than two
    connections are up, when any is relayed (a circuit next to a direct connection is the
    relay/DCUtR upgrade path, handled by :mod:`.reach`), when the direction of one is
    unknown, or when no connection was dialed by the smaller PeerId (then a single dial
    raced itself: that is :meth:`Dialer.dial`'s job, and closing by age could disagree
    between the ends). ``conns`` in the swarm's order (oldest first).
    """
    live = [c for c in conns if not getattr(getattr(c, "muxed_conn", None), "is_closed", False)]
    if len(live) < 2 or any(relayed(c) for c in live):
        return []
    who = [dialed_by(c, my_id, peer) for c in live]
    if any(w is None for w in who):
        return []
    smaller = min(my_id, peer, key=lambda p: p.to_bytes())
    keep = next((c for c, w in zip(live, who) if w == smaller), None)
    if keep is None:
        return []
    return [c for c in live if c is not keep]


def repair_pubsub_after_close(pubsub: Any, peer: ID, closed_conn: Any) -> bool:
    """Move py-libp2p pubsub's outbound stream to ``peer`` off a connection that closed
    while another connection to ``peer`` stays up. Returns True when it did.

    py-libp2p 0.8.1 keeps one outbound pubsub stream per peer (``pubsub.peers``). When the
    connection it lives on closes and another remains, its dead-peer queue leaves the
    peer alone (it still has a connection), so nothing notices until the next write
    fails; ``_handle_dead_peer`` then also forgets every subscription the peer announced,
    and the peer, whose own stream to us is fine, never announces them again. Here the
    stale stream is dropped at once (router state and the send queue with it, the peer's
    subscriptions kept) and a new stream is opened on the surviving connection, which
    sends our hello (our subscriptions) again. The gossipsub mesh re-forms at the next
    heartbeat.
    """
    muxed = getattr(closed_conn, "muxed_conn", None)
    peers = getattr(pubsub, "peers", None)
    stream = peers.get(peer) if isinstance(peers, dict) else None
    if muxed is None or stream is None or getattr(stream, "muxed_conn", None) is not muxed:
        return False
    retry = getattr(pubsub, "_schedule_peer_stream_retry", None)
    if retry is None:  # library changed: let py-libp2p's own path handle it
        log.warning("cannot move the pubsub stream to %s off a closed connection (library changed?)", peer)
        return False
    del peers[peer]
    queue = getattr(pubsub, "peer_queues", {}).pop(peer, None)
    if queue is not None:
        queue.close()
    try:
        pubsub.router.remove_peer(peer)
    except Exception as exc:  # the router's cleanup of a peer it may not know
        log.debug("pubsub router remove_peer(%s): %r", peer, exc)
    retry(peer)
    return True
