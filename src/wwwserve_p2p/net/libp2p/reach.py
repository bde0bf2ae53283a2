"""Reachability: circuit relay v2 (hop and client), AutoNAT, DCUtR hole punching.

py-libp2p 0.8.1 ships the pieces (``libp2p.relay.circuit_v2``, ``libp2p.host.autonat``) but
does not wire them into the swarm: ``Swarm.dial_peer`` drops every ``/p2p-circuit``
address, nothing reserves a slot when the node is private, and nothing advertises one.
:class:`Reach` does that for one overlay:

- *Relay (hop)*, ``net.relay_service``: serves ``/libp2p/circuit/relay/0.2.0/hop`` with the
  reservation and circuit limits of the config (reservations in all, circuits per
  reservation, bytes and seconds per circuit, reservation TTL).
- *AutoNAT*: every node answers dial-back requests (``net.autonat_server``). py-libp2p's
  server "dials back" with ``host.connect``, which returns the connection the request came in
  on, so it reports every requester as reachable; our server opens a fresh TCP connection to
  the requester's address instead (:class:`_DialBackAutoNAT`). A node with
  ``net.reachability = "auto"`` asks the AutoNAT servers it is connected to until one answers.
- *Reservations*: a private node keeps ``net.relay_count`` reservations on relays (the
  configured ``net.relays`` first, then any connected peer that speaks the hop protocol),
  refreshes them at half their TTL, and replaces a relay that disconnects. Its advertised
  addresses (identify, DHT provider records, our signed status) become
  ``<relay addr>/p2p/<relay>/p2p-circuit/p2p/<us>``.
- *Dialing*: a peer without a direct address that answers, is dialed through a circuit
  (its advertised circuit addresses, then every relay we know).
- *DCUtR*: py-libp2p's ``DCUtRProtocol`` upgrades relayed connections (it dials from the
  listen port, as TCP hole punching needs, and closes the relayed leg after a grace period).
- :meth:`Reach.connection_kind`: ``direct``, ``hole-punched`` (direct, after being
  relayed) or ``relayed``, per peer.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from typing import Any

import trio
from libp2p.host.autonat.autonat import AUTONAT_PROTOCOL_ID, AutoNATService, AutoNATStatus, _addr_ip
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from multiaddr import Multiaddr

from ...errors import DialError
from ..config import Libp2pConfig

log = logging.getLogger("wwwserve_p2p.net")

#: How long a peer counts as "was relayed" after its relayed connection closed, s.
_RELAYED_MEMORY_S = 120.0
#: Bound on the per-peer memo sets (keyed by remote input).
_MAX_TRACKED = 4096
#: A relay whose reservation failed is not asked again for this long, s.
_RELAY_BACKOFF_S = 10.0


def is_circuit(addr: Any) -> bool:
    """True for a ``/p2p-circuit`` multiaddr (text or Multiaddr)."""
    return "/p2p-circuit" in str(addr)


def _is_loopback(addr: Any) -> bool:
    text = str(addr)
    return text.startswith("/ip4/127.") or text.startswith("/ip6/::1/")


def conn_is_relayed(conn: Any) -> bool:
    """True if a py-libp2p swarm connection runs over a circuit."""
    try:
        return any(is_circuit(a) for a in conn.get_transport_addresses() or [])
    except Exception:  # a connection half torn down; treat as direct (the swarm drops it soon)
        return False


class _DialBackAutoNAT(AutoNATService):
    """AutoNAT v1 server that really dials back: a fresh TCP connection to each candidate
    address (3 s each), closed at once. py-libp2p's ``_try_dial`` calls ``host.connect``,
    which returns the existing connection (the one carrying the request) and so reports
    every requester reachable."""

    async def _try_dial(self, peer_id: ID, addrs: list[bytes]) -> bytes | None:
        for raw in addrs:
            try:
                maddr = Multiaddr(raw)
                ip = _addr_ip(maddr)
                port = int(maddr.value_for_protocol("tcp"))
            except Exception:
                continue
            if ip is None:
                continue
            with trio.move_on_after(3.0):
                try:
                    stream = await trio.open_tcp_stream(ip, port)
                except OSError:
                    continue
                await stream.aclose()
                return bytes(raw)
        return None


class _CircuitTable(dict):  # type: ignore[type-arg]
    """``CircuitV2Protocol._active_relays`` that the library's per-circuit cleanup never finds.

    py-libp2p keys active circuits by *peer* (``_active_relays[source]`` and
    ``_active_relays[destination]``), and when either direction of a circuit ends it closes
    the streams stored under that peer: with two circuits to one destination (a public node
    and a NATed node both reaching a third), the end of one closes the other. Here that
    lookup always misses and :class:`_Relay` closes only its own circuit's streams."""

    def __contains__(self, key: object) -> bool:
        return False


class _Relay(CircuitV2Protocol):
    """Circuit relay v2 with per-circuit cleanup (see :class:`_CircuitTable`)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._active_relays = _CircuitTable()

    async def _relay_data(self, src_stream: Any, dst_stream: Any, peer_id: ID, *args: Any, **kwargs: Any) -> None:
        try:
            await super()._relay_data(src_stream, dst_stream, peer_id, *args, **kwargs)
        finally:
            # one direction ended: pass the end on to the other side (half close); a reset
            # or error ends the other direction's read in turn
            with trio.CancelScope(shield=True):
                await self._close_stream(dst_stream)


class _DirectAddrsHost:
    """``host`` with ``get_addrs`` returning our direct addresses (for DCUtR)."""

    def __init__(self, host: Any, reach: Reach):
        object.__setattr__(self, "_host", host)
        object.__setattr__(self, "_reach", reach)

    def get_addrs(self) -> list[Any]:
        return [a for a in self._reach.direct_addrs() if not is_circuit(a)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._host, name, value)


class Reach:
    """Relay, AutoNAT and hole punching for one host; see the module docstring.

    ``services``: py-libp2p services the overlay runs for the host's lifetime.
    :meth:`run` is the maintenance loop (reachability checks, reservations).
    """

    def __init__(self, host: Any, config: Libp2pConfig, stats: Counter[str]):
        self._host = host
        self._swarm = host.get_network()
        self._config = config
        self._stats = stats
        self._me = host.get_id()
        limits = RelayLimits(duration=int(config.relay_circuit_duration), data=int(config.relay_circuit_bytes),
                             max_circuit_conns=config.relay_max_circuits,
                             max_reservations=config.relay_max_reservations,
                             reservation_ttl=int(config.relay_reservation_ttl))
        self.protocol = _Relay(host, limits=limits, allow_hop=config.relay_service)
        roles = RelayRole.STOP | (RelayRole.HOP if config.relay_service else RelayRole.STOP)
        # No CLIENT role: CircuitV2Transport would make a reservation on every relay it dials through.
        self.transport = CircuitV2Transport(host, self.protocol, RelayConfig(roles=roles, limits=limits))
        self.autonat = _DialBackAutoNAT(host, serve=config.autonat_server, confirmations=1)
        self.dcutr: DCUtRProtocol | None = None
        if config.hole_punch:
            # DCUtR takes our listen ports and fallback addresses from host.get_addrs(), which
            # advertises circuit addresses while we are private: give it the direct ones.
            self.dcutr = DCUtRProtocol(_DirectAddrsHost(host, self), dial_timeout=int(max(1, config.dial_timeout)))
            host._dcutr_protocol = self.dcutr  # BasicHost's disconnect hook looks for it there
        self.services: list[Any] = [self.protocol] + ([self.dcutr] if self.dcutr else [])
        self.reachability = {"public": "public", "private": "private"}.get(config.reachability, "unknown")
        #: relay PeerId -> (relay multiaddr without /p2p, expiry on time.monotonic())
        self.reservations: dict[ID, tuple[Multiaddr, float]] = {}
        self._relay_failed: dict[ID, float] = {}
        self._relayed_seen: OrderedDict[ID, float] = OrderedDict()
        self._punched: OrderedDict[ID, None] = OrderedDict()
        self._changed = trio.Event()
        #: the host's own addresses (set by the overlay to py-libp2p's get_addrs before wrapping)
        self.direct_addrs: Any = host.get_addrs

    # ---------------------------------------------------------------- addresses

    def advertised(self, direct: list[Any]) -> list[Any]:
        """What we advertise, from the host's own (direct) addresses: those while public or
        unknown, circuit addresses through our relays while private (direct ones too if we
        hold no reservation yet)."""
        if self.reachability != "private" or not self.reservations:
            return direct
        me = self._me.to_base58()
        return [Multiaddr(f"{addr}/p2p/{rid.to_base58()}/p2p-circuit/p2p/{me}")
                for rid, (addr, _) in self.reservations.items()]

    def _relay_addr(self, rid: ID, hint: Multiaddr | None = None) -> Multiaddr | None:
        """A dialable direct address of relay ``rid`` (not loopback unless only that)."""
        cands = [hint] if hint is not None else []
        try:
            cands += list(self._host.get_peerstore().addrs(rid))
        except KeyError:
            pass
        cands = [Multiaddr(str(a).split("/p2p/")[0]) for a in cands if a is not None and not is_circuit(a)]
        good = [a for a in cands if not _is_loopback(a)]
        return (good or cands or [None])[0]

    # ---------------------------------------------------------------- connection kinds

    def note_connection(self, what: str, conn: Any) -> None:
        """Connection notifee hook: remembers relayed peers, spots hole-punched upgrades."""
        try:
            pid = conn.muxed_conn.peer_id
        except AttributeError:
            return
        relayed = conn_is_relayed(conn)
        if what == "connected":
            self._stats["connections_relayed" if relayed else "connections_direct"] += 1
            if relayed:
                self._remember(self._relayed_seen, pid, time.monotonic())
            elif pid in self._relayed_seen and time.monotonic() - self._relayed_seen[pid] < _RELAYED_MEMORY_S:
                self._remember(self._punched, pid, None)
                self._stats["hole_punched"] += 1
                log.info("direct connection to %s after a relayed one (hole punched / upgraded)", pid)
        elif what == "disconnected":
            if relayed and pid in self._relayed_seen:
                self._relayed_seen[pid] = time.monotonic()
            if pid in self.reservations and not self._swarm.get_connections(pid):
                self._changed.set()
            if not self._swarm.get_connections(pid):
                self._punched.pop(pid, None)

    @staticmethod
    def _remember(memo: OrderedDict[ID, Any], pid: ID, value: Any) -> None:
        memo[pid] = value
        memo.move_to_end(pid)
        while len(memo) > _MAX_TRACKED:
            memo.popitem(last=False)

    def connection_kind(self, pid: ID) -> str | None:
        """``direct``, ``hole-punched`` or ``relayed`` for a connected peer, else None."""
        conns = [c for c in self._swarm.get_connections(pid) if not getattr(c, "is_closed", False)]
        if not conns:
            return None
        if any(not conn_is_relayed(c) for c in conns):
            return "hole-punched" if pid in self._punched else "direct"
        return "relayed"

    # ---------------------------------------------------------------- dialing through relays

    def _known_relays(self) -> list[tuple[ID, Multiaddr]]:
        out: dict[ID, Multiaddr] = {}
        for rid, (addr, _) in self.reservations.items():
            out[rid] = addr
        for text in self._config.relays:
            try:
                info = info_from_p2p_addr(Multiaddr(text))
            except Exception:
                continue
            if info.peer_id != self._me and info.addrs:
                out.setdefault(info.peer_id, Multiaddr(str(info.addrs[0])))
        for pid in self._hop_peers():
            addr = self._relay_addr(pid)
            if addr is not None:
                out.setdefault(pid, addr)
        return list(out.items())

    def _hop_peers(self) -> list[ID]:
        """Connected peers that announced the hop protocol (identify)."""
        store = self._host.get_peerstore()
        out = []
        for pid in list(self._host.get_connected_peers()):
            if pid == self._me:
                continue
            try:
                if HOP_PROTOCOL_ID in store.get_protocols(pid):
                    out.append(pid)
            except Exception:  # unknown to the peerstore yet
                continue
        return out

    async def dial_circuit(self, pid: ID, stored: list[Any]) -> None:
        """Connect to ``pid`` through a relay: its advertised circuit addresses first, then
        every relay we know. Each attempt bounded by ``dial_timeout``.

        :raises DialError: no circuit worked (or we know no relay)."""
        target = pid.to_base58()
        cands: list[str] = []
        for a in stored:
            text = str(a)
            if is_circuit(text):
                cands.append(text if text.endswith(f"/p2p/{target}") else f"{text}/p2p/{target}")
        for rid, addr in self._known_relays():
            if rid != pid:
                cands.append(f"{addr}/p2p/{rid.to_base58()}/p2p-circuit/p2p/{target}")
        tried: set[str] = set()
        errors: list[str] = []
        for text in cands:
            if text in tried or self._swarm.get_connections(pid):
                continue
            tried.add(text)
            try:
                with trio.fail_after(self._config.dial_timeout):
                    await self.transport.dial(Multiaddr(text))
                self._stats["circuit_dials"] += 1
                return
            except Exception as exc:  # py-libp2p raises ConnectionError, SwarmException, ... (undocumented)
                errors.append(f"{text}: {exc!r}"[:300])
        if self._swarm.get_connections(pid):
            return
        self._stats["circuit_dial_failures"] += 1
        raise DialError(f"no relay reaches {target}" + (f" ({'; '.join(errors[:3])})" if errors else
                                                          " (no relay known)"))

    # ---------------------------------------------------------------- maintenance

    async def run(self, connect: Any) -> None:
        """Reachability checks and reservations, forever. ``connect(multiaddr)`` dials a peer."""
        next_check = 0.0
        retry = 1.0
        while True:
            now = time.monotonic()
            if self._config.reachability == "auto" and now >= next_check:
                if self._loopback_only():
                    # a node on 127.0.0.1 only is reachable exactly by the processes on its host
                    self.reachability = "public"
                    return
                determined = await self._check_reachability()
                if determined:
                    next_check, retry = now + self._config.reachability_interval, 1.0
                else:  # no server answered (yet): back off, 1 s doubling to 60 s
                    next_check, retry = now + retry, min(60.0, retry * 2)
            if self.reachability == "private":
                await self._keep_reservations(connect)
            self._changed = trio.Event()
            with trio.move_on_after(1.0):
                await self._changed.wait()

    def _loopback_only(self) -> bool:
        addrs = [a for a in self.direct_addrs() if not is_circuit(a)]
        return bool(addrs) and all(_is_loopback(a) for a in addrs)

    async def _check_reachability(self) -> bool:
        """Ask connected AutoNAT servers; True once one answered."""
        store = self._host.get_peerstore()
        servers = []
        for pid in list(self._host.get_connected_peers()):
            try:
                if AUTONAT_PROTOCOL_ID in store.get_protocols(pid):
                    servers.append(pid)
            except Exception:
                continue
        if not servers:
            return False
        direct = [a.to_bytes() for a in self.direct_addrs() if not is_circuit(a)]
        answered = False
        self.autonat.dial_results.clear()
        for pid in servers[:3]:
            try:
                with trio.move_on_after(5.0):
                    await self.autonat.query_server(pid, addrs=direct, timeout=5.0)
                    answered = True
            except Exception as exc:  # transport failure: ask the next
                log.debug("AutoNAT query to %s failed: %r", pid, exc)
        if not answered:
            return False
        self.autonat.update_status()
        status = self.autonat.get_status()
        new = {AutoNATStatus.PUBLIC: "public", AutoNATStatus.PRIVATE: "private"}.get(status, "unknown")
        if new != self.reachability:
            log.info("reachability: %s (AutoNAT, %d server(s))", new, len(self.autonat.dial_results))
            self.reachability = new
        return new != "unknown"

    async def _keep_reservations(self, connect: Any) -> None:
        now = time.monotonic()
        for rid in list(self.reservations):
            if not self._swarm.get_connections(rid):
                log.warning("lost relay %s; reserving elsewhere", rid)
                self._stats["relays_lost"] += 1
                del self.reservations[rid]
                self._relay_failed[rid] = now
        for rid, (addr, expires) in list(self.reservations.items()):
            if expires - now < self._config.relay_reservation_ttl / 2:
                await self._reserve(rid, addr)
        if len(self.reservations) >= self._config.relay_count:
            return
        for text in self._config.relays:
            if len(self.reservations) >= self._config.relay_count:
                return
            try:
                info = info_from_p2p_addr(Multiaddr(text))
            except Exception:
                continue
            rid = info.peer_id
            if rid in self.reservations or now - self._relay_failed.get(rid, -1e9) < _RELAY_BACKOFF_S:
                continue
            if not self._swarm.get_connections(rid):
                try:
                    await connect(text)
                except DialError as exc:
                    log.info("relay %s unreachable: %s", rid, exc)
                    self._relay_failed[rid] = now
                    continue
            await self._reserve(rid, Multiaddr(str(info.addrs[0])) if info.addrs else None)
        for rid in self._hop_peers():
            if len(self.reservations) >= self._config.relay_count:
                return
            if rid in self.reservations or now - self._relay_failed.get(rid, -1e9) < _RELAY_BACKOFF_S:
                continue
            await self._reserve(rid, None)

    async def _reserve(self, rid: ID, hint: Multiaddr | None) -> bool:
        addr = self._relay_addr(rid, hint)
        if addr is None:
            return False
        stream = None
        ok = False
        try:
            with trio.fail_after(self._config.dial_timeout):
                stream = await self._host.new_stream(rid, [HOP_PROTOCOL_ID])
                ok = await self.transport._make_reservation(stream, rid)
        except Exception as exc:  # py-libp2p's stream/negotiation errors are not one family
            log.info("reservation on relay %s failed: %r", rid, exc)
        finally:
            if stream is not None:
                try:
                    await stream.close()
                except Exception:
                    pass
        if not ok:
            self._relay_failed[rid] = time.monotonic()
            self.reservations.pop(rid, None)
            return False
        expires = float(self.transport._reservations.get(rid, 0))
        ttl = max(10.0, expires - time.time()) if expires else self._config.relay_reservation_ttl
        fresh = rid not in self.reservations
        self.reservations[rid] = (addr, time.monotonic() + ttl)
        if fresh:
            self._stats["reservations"] += 1
            log.info("reserved a slot on relay %s (%s, ttl %.0f s)", rid, addr, ttl)
        return True

    def statistics(self) -> dict[str, Any]:
        """``reachability``, ``relays`` (PeerIds we hold reservations on), hop stats."""
        return {
            "reachability": self.reachability,
            "relays": sorted(r.to_base58() for r in self.reservations),
            "relay_service": self._config.relay_service,
            "relay_reservations_served": len(getattr(self.protocol.resource_manager, "_reservations", {}) or {}),
        }
