"""The overlay object and its lifecycle: building the py-libp2p host (Noise, yamux, TCP),
running its services, and closing it; :func:`open_libp2p_overlay`.

:class:`Libp2pOverlay` implements :class:`~wwwserve_p2p.net.base.Overlay` by composing one
helper per job: :class:`~.dialing.Dialer`, :class:`~.streams.StreamService`,
:class:`~.gossip.Gossip`, :class:`~.dht.Dht`.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.address_validation import expand_wildcard_address
from multiaddr import Multiaddr

from ...errors import DialError, OverlayError
from ...identity import Identity
from ..base import GossipMessage, Overlay, Stream, StreamHandler, Validator
from ..config import Libp2pConfig
from .compat import (ConnectionLogger, cache_addrs, check_libp2p_version, configure_libp2p_logging,
                     disable_auto_connector, fast_negotiation, protect_peerstore, remove_dial_delay)
from .conn_limits import PerIpInboundLimit, release_inbound_slots_on_close
from .dht import Dht
from .dialing import Dialer, cross_dial_losers, parse_peer_id, repair_pubsub_after_close
from .gossip import Gossip
from .reach import Reach, conn_is_relayed
from .streams import StreamService, best_effort

log = logging.getLogger("wwwserve_p2p.net")

#: Seconds between a second connection to a peer coming up and the cross-dial tie-break.
TIE_BREAK_SETTLE_S = 1.0
#: A peer that dials us again within this many seconds after we closed its duplicate does
#: not see the connection we kept (half-open): then that one is closed instead.
HALF_OPEN_REDIAL_S = 30.0


class Libp2pOverlay(Overlay):
    """The overlay of one node over py-libp2p. Build it with :func:`open_libp2p_overlay`."""

    def __init__(self, identity: Identity, config: Libp2pConfig):
        self._config = config
        key_pair = create_new_key_pair(identity.private_bytes)
        self._listen = [Multiaddr(a) for a in config.listen]
        announce = [Multiaddr(a) for a in config.announce] or None
        self._host = new_host(
            key_pair=key_pair,
            sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)},
            muxer_opt={YAMUX_PROTOCOL_ID: Yamux},
            listen_addrs=self._listen,
            connection_config=ConnectionConfig(
                dial_timeout=config.dial_timeout,
                outbound_upgrade_timeout=config.dial_timeout,
                inbound_upgrade_timeout=max(config.dial_timeout, 10.0),
            ),
            announce_addrs=announce,
            addrs_factory=None if announce else _expand_wildcards,
        )
        cache_addrs(self._host)
        if config.fast_negotiation and not fast_negotiation(self._host):
            log.warning("could not install the fast stream negotiation (library changed?)")
        self._stats: Counter[str] = Counter()
        self._reach = Reach(self._host, config, self._stats)
        direct_addrs = self._host.get_addrs
        self._reach.direct_addrs = direct_addrs
        self._host.get_addrs = lambda: self._reach.advertised(direct_addrs())  # identify, DHT records, status
        self._conn_opened: dict[int, float] = {}
        self._conn_close_reason: dict[int, str] = {}  # id(conn) -> why we closed it; popped at its close
        self._backlog_logged = -1e9
        self._tie_broken: dict[Any, float] = {}  # peer -> when we last closed a duplicate to it
        if not protect_peerstore(self._host):  # never evict our own entry (issue 15)
            log.warning("could not protect the peerstore's own entry (library changed?)")
        self._swarm = self._host.get_network()
        if not disable_auto_connector(self._swarm):  # it dials peerstore junk (issue 15)
            log.warning("could not disable py-libp2p's auto-connector (library changed?)")
        self._ip_limit = None  # per-IP inbound connection cap (issue 15; py-libp2p has none: conn_limits.py)
        if config.max_inbound_per_ip:
            self._ip_limit = PerIpInboundLimit(self._swarm, config.max_inbound_per_ip, config.inbound_per_ip_exempt)
            if not self._ip_limit.install():
                log.warning("could not install the per-IP inbound connection limit (library changed?)")
                self._ip_limit = None
        if not release_inbound_slots_on_close(self._swarm, self._stats):  # py-libp2p leaked one per inbound conn
            log.warning("could not fix py-libp2p's inbound slot leak (library changed?)")
        self._swarm.retry_config = RetryConfig(max_retries=config.dial_retries, initial_delay=0.05, max_delay=1.0)
        if not remove_dial_delay(self._swarm):
            log.warning("could not remove py-libp2p's 250 ms dial delay (library changed?)")
        self._swarm.register_notifee(ConnectionLogger(self._on_connection_event))
        self._my_id = self._host.get_id()
        self._peer_id_str = self._my_id.to_base58()
        if self._peer_id_str != identity.peer_id:
            raise OverlayError("libp2p derived a different PeerId from the identity key")

        self._tasks: trio.Nursery | None = None
        self._open = False
        self._closed = False
        self._gossip = Gossip(self._host, config, self._stats, self._spawn)
        self._dht = Dht(self._host, config)
        self._dialer = Dialer(self._host, config, self._stats, self._dht.kad.routing_table,
                              circuit=self._reach.dial_circuit)
        self._streams = StreamService(self._host, config, self._stats, self._dialer.dial, lambda: self._open)

    # ---------------------------------------------------------------- lifecycle

    async def _run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        t0 = trio.current_time()
        busy = [m for m in self._listen if _port_taken(m)]
        if len(busy) == len(self._listen):
            raise OverlayError(f"cannot listen on {', '.join(map(str, busy))}: address already in use")
        for m in busy:
            log.warning("not listening on %s: address already in use", m)
        listen = [m for m in self._listen if m not in busy]
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self._host.run(listen))
            failed = [str(m) for m in listen if str(m) not in self._swarm.listeners]
            if len(failed) == len(listen):
                raise OverlayError(f"could not listen on any of {', '.join(failed)}")
            for text in failed:
                log.warning("could not listen on %s", text)
            for service in (*self._gossip.services, self._dht.kad, *self._reach.services):
                await stack.enter_async_context(background_trio_service(service))
            await self._gossip.pubsub.wait_until_ready()
            tasks = await stack.enter_async_context(trio.open_nursery())
            self._tasks = tasks
            self._open = True
            log.info("libp2p overlay %s listening on %s (%.0f ms)", self._peer_id_str,
                     ", ".join(self.addrs()), (trio.current_time() - t0) * 1000)
            await self._dht.bootstrap(self._dialer, self._spawn)
            tasks.start_soon(self._dht.maintenance_loop, self._dialer)
            tasks.start_soon(self._reach.run, lambda addr: self._dialer.connect(addr, quiet=True))
            tasks.start_soon(self._lag_monitor)
            task_status.started()
            await trio.sleep_forever()

    async def _lag_monitor(self, period: float = 0.25) -> None:
        """Measure how late the trio event loop wakes a ``period``-second sleep (issue 13).

        A stream deadline (probe 2 s, dial 5 s, chunk 10 s) expires whenever the loop runs
        that late, so a lag names the cause of a "stall": ``starved`` when this process used
        under half the lagged time in CPU (other processes held the cores), ``blocked`` when
        it used more (a synchronous call in this process held the loop). Counted in
        ``loop_lag_max_ms``, ``loop_lags_over_1s``, ``loop_lags_starved`` / ``_blocked``;
        one WARNING per lag over 1 s, at most one per 10 s.
        """
        logged = -1e9
        n = 0
        while True:
            t0, c0 = trio.current_time(), time.process_time()
            await trio.sleep(period)
            n += 1
            if n % 20 == 0:
                self._check_backlogs()
            lag = trio.current_time() - t0 - period
            cpu = time.process_time() - c0
            self._stats["loop_lag_max_ms"] = max(self._stats["loop_lag_max_ms"], int(lag * 1000))
            if lag <= 1.0:
                continue
            kind = "blocked" if cpu > (lag + period) / 2 else "starved"
            self._stats["loop_lags_over_1s"] += 1
            self._stats[f"loop_lags_{kind}"] += 1
            if trio.current_time() - logged >= 10.0:
                logged = trio.current_time()
                log.warning("event loop lagged %.1f s (%s: this process used %.2f s of CPU in those %.1f s); "
                            "stream deadlines may expire", lag, kind, cpu, lag + period)

    def _check_backlogs(self) -> None:
        """Sample yamux's outbound-stream backlog (256 slots per connection; a slot is held
        by each outbound stream until it is closed or reset locally, and ``open_stream``
        waits for a free one): ``yamux_backlog_min_free`` and ``yamux_open_streams_max``
        over our connections; a WARNING (one per 60 s) when a connection has under 32 free."""
        low_free, most_open, worst = 256, 0, None
        for pid, conns in list(self._swarm.connections.items()):
            for conn in list(conns):
                muxed = getattr(conn, "muxed_conn", None)
                sem = getattr(muxed, "stream_backlog_semaphore", None)
                if sem is None:
                    continue
                free = sem.value
                most_open = max(most_open, len(getattr(muxed, "streams", ())))
                if free < low_free:
                    low_free, worst = free, pid
        self._stats["yamux_backlog_min_free"] = low_free
        self._stats["yamux_open_streams_max"] = most_open
        now = trio.current_time()
        if low_free < 32 and now - self._backlog_logged >= 60.0:
            self._backlog_logged = now
            log.warning("yamux backlog: the connection to %s has %d of 256 outbound-stream slots free (streams not "
                        "closed hold them); new streams to it wait", worst, low_free)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn(*args)`` in the overlay's task nursery while it runs (else nothing)."""
        if self._tasks is not None and self._open:
            self._tasks.start_soon(fn, *args)

    async def _close(self) -> None:
        """Graceful shutdown, bounded by ``shutdown_timeout``; the caller cancels the rest."""
        if self._closed:
            return
        self._closed = True
        self._open = False
        with trio.move_on_after(self._config.shutdown_timeout) as deadline:
            # Release the port first: whatever happens below, nobody can connect any more.
            for listener in list(self._swarm.listeners.values()):
                await best_effort("closing listener", listener.close)
            self._streams.cancel_handlers()
            if self._tasks is not None:
                self._tasks.cancel_scope.cancel()
            self._gossip.close_subscriptions()
            for service in (*reversed(self._reach.services), self._dht.kad, *reversed(self._gossip.services)):
                manager = getattr(service, "_manager", None)
                if manager is not None and manager.is_running:
                    manager.cancel()
            # py-libp2p closes connections one by one with a 100 ms sleep each; do it at once.
            conns = [c for cs in list(self._swarm.connections.values()) for c in list(cs)]
            async with trio.open_nursery() as nursery:
                for conn in conns:
                    nursery.start_soon(best_effort, "closing connection", conn.close)
            await best_effort("closing the libp2p host", self._host.close, logging.WARNING)
        if deadline.cancelled_caught:
            log.warning("libp2p overlay %s: graceful shutdown took over %.1f s; cancelling the rest",
                        self._peer_id_str, self._config.shutdown_timeout)
        log.info("libp2p overlay %s closed", self._peer_id_str)

    def _on_connection_event(self, what: str, conn: Any) -> None:
        pid = conn.muxed_conn.peer_id
        self._stats[f"connections_{what}"] += 1
        self._reach.note_connection(what, conn)
        kind = "relayed" if conn_is_relayed(conn) else "direct"
        if what == "connected":
            if len(self._conn_opened) > 65536:
                self._conn_opened.clear()
            self._conn_opened[id(conn)] = trio.current_time()
            log.debug("peer %s connected (%s; %d connected)", pid, kind, len(self._host.get_connected_peers()))
            if len(self._swarm.get_connections(pid)) > 1:
                self._spawn(self._tie_break, pid)
            return
        opened = self._conn_opened.pop(id(conn), None)
        age = f"{trio.current_time() - opened:.1f} s" if opened is not None else "?"
        reason = self._close_reason(conn)
        left = len(self._swarm.get_connections(pid))
        if left and self._open and repair_pubsub_after_close(self._gossip.pubsub, pid, conn):
            self._stats["pubsub_streams_moved"] += 1
        log.log(logging.INFO if self._open else logging.DEBUG,
                "connection to %s closed (%s, after %s, %s; %d other connection(s) to it left)",
                pid, kind, age, reason, left)
        self._stats[f"closed_{reason.split(':')[0]}"] += 1

    async def _tie_break(self, pid: Any) -> None:
        """Simultaneous dials left several connections to ``pid``: close all but the one
        both ends keep (:func:`.dialing.cross_dial_losers`); counted in ``cross_dial_closed``.
        py-libp2p pubsub's stream on a closed one moves to the kept one (``_on_connection_event``).
        Decided after ``TIE_BREAK_SETTLE_S``, so that both ends see both connections (a
        connection still being upgraded at one end exists only at the other)."""
        await trio.sleep(TIE_BREAK_SETTLE_S)
        conns = list(self._swarm.get_connections(pid))
        losers = cross_dial_losers(conns, self._my_id, pid, conn_is_relayed)
        if not losers:
            return
        now = trio.current_time()
        last = self._tie_broken.get(pid)
        if last is not None and now - last < HALF_OPEN_REDIAL_S:
            # It dialed again right after we closed its duplicate: it does not see the
            # connection we kept (py-libp2p dropped it at its end, ours still looks open;
            # streams we open on it are lost). Keep its new connection, close ours.
            self._tie_broken.pop(pid, None)
            kept = [c for c in conns if c not in losers]
            self._stats["half_open_closed"] += len(kept)
            log.info("connection to %s looks dead at its end (it dialed again %.1f s after we closed its duplicate); "
                     "closing ours, keeping its new one", pid, now - last)
            for conn in kept:
                self._note_close(conn, "local: half-open (the peer dialed again)")
                await best_effort("closing a half-open connection", conn.close)
            return
        if len(self._tie_broken) > 4096:
            self._tie_broken.clear()
        self._tie_broken[pid] = now
        for conn in losers:
            self._stats["cross_dial_closed"] += 1
            log.debug("closing a duplicate connection to %s (simultaneous dials; keeping the one dialed by the "
                      "smaller PeerId)", pid)
            self._note_close(conn, "local: duplicate (simultaneous dials)")
            await best_effort("closing a duplicate connection", conn.close)

    def _note_close(self, conn: Any, reason: str) -> None:
        if len(self._conn_close_reason) > 4096:
            self._conn_close_reason.clear()
        self._conn_close_reason[id(conn)] = reason

    def _close_reason(self, conn: Any) -> str:
        """Why a connection closed, as far as py-libp2p lets us tell: ``local`` (we are
        shutting down), ``muxer-error`` (yamux recorded an error), else ``remote`` (EOF or
        reset from the peer or the network)."""
        if not self._open:
            return "local: overlay closing"
        mine = self._conn_close_reason.pop(id(conn), None)
        if mine is not None:
            return mine
        muxed = getattr(conn, "muxed_conn", None)
        err = getattr(muxed, "_close_error", None) or getattr(muxed, "close_reason", None)
        if err:
            return f"muxer-error: {err!r}"[:200]
        return "remote: EOF, reset or network"

    def _check_open(self) -> None:
        if not self._open:
            raise OverlayError("the libp2p overlay is closed" if self._closed else "the libp2p overlay is not running")

    # ---------------------------------------------------------------- identity and peers

    @property
    def peer_id(self) -> str:
        return self._peer_id_str

    def addrs(self) -> list[str]:
        return [str(a) for a in self._host.get_addrs()]

    def connected_peers(self) -> list[str]:
        return sorted(p.to_base58() for p in self._host.get_connected_peers())

    def connection_kinds(self) -> dict[str, str]:
        """For each connected peer: ``direct``, ``hole-punched`` (direct after being relayed:
        DCUtR or a direct dial that replaced the circuit) or ``relayed``."""
        out = {}
        for pid in list(self._host.get_connected_peers()):
            kind = self._reach.connection_kind(pid)
            if kind is not None:
                out[pid.to_base58()] = kind
        return out

    def reachability(self) -> dict[str, Any]:
        """``reachability`` (public / private / unknown), ``relays`` we hold reservations on,
        ``relay_service`` (whether we relay for others) and reservations served."""
        return self._reach.statistics()

    def peer_addrs(self, peer_id: str) -> list[str]:
        """Known multiaddrs of ``peer_id``, each ending in ``/p2p/<peer_id>`` (may be empty)."""
        return self._dialer.peer_addrs(peer_id)

    async def connect(self, multiaddr: str) -> str:
        """Dial ``multiaddr`` (ending in ``/p2p/<PeerId>``) and return the PeerId.

        Clears the peer from py-libp2p's negative dial cache first, keeps its address in the
        peerstore, and adds it to the DHT routing table. Bounded by ``dial_timeout``.

        :raises DialError: malformed address, ourselves, unreachable, refused, timed out, or
            the security handshake failed (e.g. the peer does not speak Noise).
        """
        self._check_open()
        return await self._dialer.connect(multiaddr)

    # ---------------------------------------------------------------- gossip

    async def subscribe(self, topic: str, validator: Validator | None = None) -> trio.abc.ReceiveChannel[GossipMessage]:
        """Subscribe to ``topic``; see :meth:`Overlay.subscribe`.

        Subscribing again to a topic replaces the previous subscription (its channel ends).
        Closing the returned channel unsubscribes. At most ``subscription_buffer`` messages
        wait in the channel; more are dropped and counted in :meth:`statistics`.

        :raises OverlayError: empty topic, the overlay is closed, or py-libp2p failed.
        """
        self._check_open()
        return await self._gossip.subscribe(topic, validator)

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish ``data`` on ``topic``, signed with our key; see :meth:`Overlay.publish`.

        :raises OverlayError: ``data`` is over ``gossip_max_bytes``, our own validator for
            ``topic`` rejected it, or the overlay is closed.
        """
        self._check_open()
        await self._gossip.publish(topic, data)

    # ---------------------------------------------------------------- streams

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol``; see :meth:`Overlay.set_stream_handler`.

        Each inbound stream runs in its own task (py-libp2p's per-stream task). A handler
        that raises is logged and its stream reset; one that returns has its stream closed.
        All handlers are cancelled when the overlay closes.

        :raises OverlayError: ``protocol`` does not start with ``/``.
        """
        self._streams.set_handler(protocol, handler)

    async def open_stream(self, peer_id: str, protocol: str) -> Stream:
        """Open a stream to ``peer_id`` for ``protocol``; see :meth:`Overlay.open_stream`.

        Dials if not connected (known addresses: peerstore, DHT provider records; the
        negative dial cache is bypassed). Dial plus protocol negotiation are bounded by
        ``dial_timeout``.

        :raises DialError: bad PeerId, ourselves, unreachable, timed out, or the peer does not
            speak ``protocol``.
        """
        self._check_open()
        pid = parse_peer_id(peer_id)
        if pid == self._my_id:
            raise DialError("refusing to open a stream to ourselves")
        return await self._streams.open(pid, peer_id, protocol)

    # ---------------------------------------------------------------- DHT

    async def provide(self, key: str) -> None:
        """Announce a provider record for ``key`` on the DHT (also kept locally, republished
        by py-libp2p every 22 h). Bounded by ``dht_timeout``; a lookup that reaches no peer is
        logged, not raised (the record is announced again on the next call).

        :raises OverlayError: ``key`` is empty, or the overlay is closed."""
        self._check_open()
        await self._dht.provide(key)

    async def find_providers(self, key: str, limit: int = 20) -> list[str]:
        """PeerIds providing ``key``: the local provider store plus an iterative Kademlia
        lookup (GET_PROVIDERS on the closest peers, following closer peers), de-duplicated,
        never ourselves, at most ``limit``. Their addresses go into the peerstore so
        :meth:`open_stream` can dial them. Bounded by ``dht_timeout`` (returns what it found).

        :raises OverlayError: ``key`` is empty, or the overlay is closed."""
        self._check_open()
        return await self._dht.find_providers(key, limit)

    # ---------------------------------------------------------------- statistics

    def statistics(self) -> dict[str, Any]:
        """A snapshot: ``connected_peers`` (count), ``mesh`` ({topic: mesh size}),
        ``topic_peers`` ({topic: peers known to subscribe}), ``routing_table`` (size),
        ``gossip_published`` / ``gossip_delivered`` (counts), ``gossip_received`` (messages
        received from neighbours on our topics, duplicates included), ``gossip_rejected``
        ({reason: count}; reasons: oversize, rate_limited, validator, validator_error,
        malformed), ``gossip_dropped`` ({subscriber_full, outbound_queue}), ``streams_inbound``
        / ``streams_outbound``, ``dials`` / ``dial_failures``."""
        gossip = self._gossip.statistics()
        return {
            "peer_id": self._peer_id_str,
            "connected_peers": len(self._host.get_connected_peers()),
            "mesh": gossip.pop("mesh"),
            "topic_peers": gossip.pop("topic_peers"),
            "routing_table": self._dht.routing_table_size(),
            **gossip,
            "streams_inbound": self._stats["streams_inbound"],
            "streams_outbound": self._stats["streams_outbound"],
            "streams_refused": dict(self._streams.refused),  # {peer_protocol, protocol, total}: limits
            "streams_idle_closed": self._stats["streams_idle_closed"],
            "streams_open": self._streams.open_inbound(),
            "dials": self._stats["dials"],
            "dial_failures": self._stats["dial_failures"],
            "connections": dict(Counter(self.connection_kinds().values())),
            "connections_total": sum(len(c) for c in list(self._swarm.connections.values())),
            "connections_refused": self._ip_limit.statistics() if self._ip_limit else {},  # {per_ip, ...}
            **self._reach.statistics(),
            **{k: self._stats[k] for k in ("circuit_dials", "circuit_dial_failures", "reservations",
                                            "relays_lost", "hole_punched", "cross_dial_closed",
                                            "pubsub_streams_moved", "half_open_closed", "loop_lag_max_ms", "loop_lags_over_1s",
                                            "loop_lags_starved", "loop_lags_blocked", "yamux_backlog_min_free",
                                            "yamux_open_streams_max")},
        }


# --------------------------------------------------------------------------------------------


def _port_taken(maddr: Multiaddr) -> bool:
    """True if something already listens on ``maddr``'s fixed TCP port.

    py-libp2p binds its listeners with SO_REUSEPORT (for hole punching), so a second node on
    the same port binds successfully and the kernel then splits incoming connections between
    the two processes. A probe bind *without* SO_REUSEPORT fails if anyone listens there.
    """
    try:
        port = int(maddr.value_for_protocol("tcp"))
    except (LookupError, ValueError, TypeError):  # no /tcp/ (ProtocolLookupError) or no number
        return False
    if port == 0:
        return False
    for proto, family in (("ip4", socket.AF_INET), ("ip6", socket.AF_INET6)):
        try:
            host = maddr.value_for_protocol(proto)
        except LookupError:
            continue
        if not host:
            continue
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
                probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _expand_wildcards(candidates: list[Any]) -> list[Any]:
    """Advertise each interface's address instead of 0.0.0.0 / ::."""
    out: list[Any] = []
    for addr in candidates:
        text = str(addr)
        if text.startswith(("/ip4/0.0.0.0/", "/ip6/::/")):
            try:
                out.extend(expand_wildcard_address(addr))
                continue
            except (OSError, ValueError) as exc:  # interface enumeration failed: advertise as is
                log.debug("could not expand %s: %r", text, exc)
        out.append(addr)
    return out


@asynccontextmanager
async def open_libp2p_overlay(identity: Identity, config: Libp2pConfig | None = None) -> AsyncIterator[Libp2pOverlay]:
    """Run a libp2p overlay for ``identity`` until the context exits.

    On entry: checks the installed py-libp2p version (:func:`.compat.check_libp2p_version`),
    listens on ``config.listen``, starts GossipSub and the Kademlia DHT, dials the bootstrap
    peers (unreachable ones are logged), and starts discovery in the background.
    On exit: closes the listeners and the host (bounded by ``shutdown_timeout``) and cancels
    every task, including running stream handlers. An exception from the body propagates as
    itself (not wrapped in an ExceptionGroup).

    :raises OverlayError: no listen address could be bound (e.g. the port is in use), or the
        installed py-libp2p is not a tested version.
    """
    config = config or Libp2pConfig()
    check_libp2p_version()
    level = config.libp2p_log_level.upper()
    configure_libp2p_logging(level)
    overlay = Libp2pOverlay(identity, config)
    configure_libp2p_logging(level)  # again: building the host imports more libp2p modules
    try:
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(overlay._run)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await overlay._close()
                raise
            try:
                yield overlay
            finally:
                with trio.CancelScope(shield=True):
                    await overlay._close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:  # type: ignore[type-arg]
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
