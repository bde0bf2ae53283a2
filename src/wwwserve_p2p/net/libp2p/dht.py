"""Kademlia for the overlay: provider records, provider lookups, routing-table upkeep, and
the bootstrap / re-dial loop that keeps a node attached to the network."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from typing import Any

import trio
from libp2p.kad_dht.common import ALPHA
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.kad_dht.utils import sort_peer_ids_by_distance

from ...errors import DialError, OverlayError
from ..config import Libp2pConfig
from .dialing import PROVIDER_ADDR_TTL, Dialer, parse_p2p_addr
from .streams import LIBP2P_ERRORS

log = logging.getLogger("wwwserve_p2p.net")


def dht_key(key: str) -> bytes:
    """Provider-record key bytes: the SHA-256 multihash (``0x12 0x20`` + digest, 34 bytes) of
    the UTF-8 of ``key``.

    Why a multihash (issue 15): py-libp2p's KAD server answers FIND_NODE only for keys that
    decode as a multihash or are at most 50 bytes long ("FIND_NODE key is not a valid
    PeerId" otherwise, and the stream is reset). ``provide`` and ``find_providers`` start with
    FIND_NODE lookups *for the record key itself*; our keys
    (``/wwwserve/<network id>/model/<name>``, 55+ bytes of UTF-8) were refused by every peer,
    so no record was ever stored anywhere but locally. A SHA-256 multihash is what libp2p
    content keys (CIDs) are, fits ADD_PROVIDER's 80-byte limit, and spreads keys uniformly
    over the Kademlia space. (Passing ``str`` to ``KadDHT.provide`` would instead guess
    between CID, hex and UTF-8, so ``"beef"`` and ``b"\\xbe\\xef"`` would collide.)

    :raises OverlayError: ``key`` is not a non-empty string.
    """
    if not isinstance(key, str) or not key:
        raise OverlayError("a DHT key is a non-empty string, e.g. /wwwserve/model/<name>")
    return b"\x12\x20" + hashlib.sha256(key.encode("utf-8")).digest()


class Dht:
    """A server-mode, strictly validating KadDHT on ``host`` (random walk off; the
    maintenance loop refreshes instead). :attr:`kad` is the py-libp2p service to run."""

    def __init__(self, host: Any, config: Libp2pConfig):
        self._host = host
        self._config = config
        self._my_id = host.get_id()
        self.kad = KadDHT(host, DHTMode.SERVER, strict_validation=True, enable_random_walk=False)
        self._last_refresh = -math.inf

    def routing_table_size(self) -> int:
        return self.kad.get_routing_table_size()

    async def provide(self, key: str) -> None:
        """See :meth:`Libp2pOverlay.provide`."""
        with trio.move_on_after(self._config.dht_timeout):
            ok = await self.kad.provider_store.provide(dht_key(key))
            if ok:
                log.debug("providing %s", key)
                return
        log.info("provide(%s): no DHT peer accepted the record yet", key)

    async def find_providers(self, key: str, limit: int = 20) -> list[str]:
        """See :meth:`Libp2pOverlay.find_providers`."""
        if limit < 1:
            return []
        found: dict[str, Any] = {}
        dkey = dht_key(key)

        def add(infos: list[Any]) -> None:
            for info in infos:
                if info.peer_id == self._my_id:
                    continue
                text = info.peer_id.to_base58()
                if text not in found and len(found) < limit:
                    found[text] = info
                    if info.addrs:
                        self._host.get_peerstore().add_addrs(info.peer_id, info.addrs, PROVIDER_ADDR_TTL)

        add(self.kad.provider_store.get_providers(dkey))
        with trio.move_on_after(self._config.dht_timeout):
            await self._provider_lookup(dkey, limit, add, found)
        return list(found)

    async def _provider_lookup(self, dkey: bytes, limit: int, add: Callable[[list[Any]], None],
                               found: dict[str, Any]) -> None:
        """Iterative GET_PROVIDERS: ask the ``ALPHA`` closest unqueried peers at a time,
        following the closer peers they return, until ``limit`` providers are found."""
        store = self.kad.provider_store
        queried: set[Any] = {self._my_id}
        candidates = [p for p in await self.kad.peer_routing.find_closest_peers_network(dkey) if p not in queried]
        while candidates and len(found) < limit:
            batch, candidates = candidates[:ALPHA], candidates[ALPHA:]
            closer: list[Any] = []

            async def ask(peer: Any) -> None:
                queried.add(peer)
                providers, nearer = await store._get_providers_from_peer_with_closers(peer, dkey)
                add(providers)
                closer.extend(nearer)

            async with trio.open_nursery() as nursery:
                for peer in batch:
                    if peer not in queried:
                        nursery.start_soon(ask, peer)
            fresh = {p for p in closer if p not in queried and p not in candidates}
            if fresh:
                candidates = sort_peer_ids_by_distance(dkey, [*candidates, *fresh])

    async def refresh_routing_table(self) -> None:
        """Refresh the routing table, bounded by ``dht_timeout``; failures are logged."""
        self._last_refresh = trio.current_time()
        with trio.move_on_after(self._config.dht_timeout):
            try:
                await self.kad.refresh_routing_table()
            except LIBP2P_ERRORS as exc:
                log.debug("routing table refresh failed: %r", exc)
        log.debug("routing table: %d peers", self.routing_table_size())

    # ---------------------------------------------------------------- bootstrap and upkeep

    async def bootstrap(self, dialer: Dialer, spawn: Callable[..., None]) -> None:
        """Dial every bootstrap address concurrently (failures logged), then refresh the
        routing table in the background (through ``spawn``)."""
        me = self._my_id.to_base58()
        addrs = [a for a in self._config.bootstrap if not a.endswith(f"/p2p/{me}")]
        if not addrs:
            return
        connected: list[str] = []

        async def dial(addr: str) -> None:
            try:
                connected.append(await dialer.connect(addr))
            except DialError as exc:
                log.warning("bootstrap peer unreachable: %s", exc)

        async with trio.open_nursery() as nursery:
            for addr in addrs:
                nursery.start_soon(dial, addr)
        log.info("bootstrap: connected to %d of %d peers", len(connected), len(addrs))
        if connected:
            spawn(self.refresh_routing_table)

    async def maintenance_loop(self, dialer: Dialer) -> None:
        """Every ``discovery_interval``: re-dial bootstrap peers we are not connected to; refresh
        the routing table when it is small or ``dht_refresh_interval`` has passed."""
        while True:
            await trio.sleep(self._config.discovery_interval)
            connected = set(self._host.get_connected_peers())
            for addr in self._config.bootstrap:
                try:
                    pid = parse_p2p_addr(addr).peer_id
                except DialError:
                    continue
                if pid == self._my_id or pid in connected:
                    continue
                try:
                    await dialer.connect(addr, quiet=True)
                    log.info("reconnected to bootstrap peer %s", pid.to_base58())
                except DialError:
                    pass
            small = self.routing_table_size() < self._config.gossip_degree_high
            due = trio.current_time() - self._last_refresh >= self._config.dht_refresh_interval
            if self._host.get_connected_peers() and (small or due):
                await self.refresh_routing_table()
