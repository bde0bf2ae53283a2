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
