"""The real :class:`~wwwserve_p2p.net.base.Overlay`: py-libp2p 0.8.1 (TCP, Noise, yamux,
GossipSub, Kademlia).

Use::

    async with open_libp2p_overlay(identity, Libp2pConfig(bootstrap=(...,))) as overlay:
        msgs = await overlay.subscribe("wwwserve/<net>/status", validator)
        await overlay.publish("wwwserve/<net>/status", b"...")

What this module changes in py-libp2p's defaults, and why (DESIGN §3, §8):

- Security: only Noise is offered and accepted (py-libp2p's default set also has TLS,
  SECIO and plaintext); the only muxer is yamux.
- Dialing: the fixed 250 ms "happy eyeballs" wait of every dial is removed for our swarm
  (see :func:`._libp2p_compat.remove_dial_delay`); an explicit :meth:`Libp2pOverlay.connect`
  or :meth:`~Libp2pOverlay.open_stream` first clears the peer from py-libp2p's 60 s
  negative dial cache, so a restarted peer can be dialed again at once. Every dial is bounded
  by ``dial_timeout`` and raises :class:`~wwwserve_p2p.errors.DialError`.
- GossipSub (meshsub 1.1 and 1.0): heartbeat ``heartbeat_interval`` (library default 120 s),
  adaptive gossip off (it silently stretches the heartbeat to 30-60 s), the library's spam
  protection off (10 msg/s per topic counting our OWN publishes, excess dropped silently) and
  replaced by a per-source-peer token bucket in our validator, strict signing, a size cap
  on publish (raises) and on receive (reject), per-peer outbound queues raised from 32
  (silent drops) to ``gossip_outbound_queue`` with drops counted, no 32-slot subscription
  channels (delivery goes to our own ``subscription_buffer``-slot channels; overflow is
  counted), py-libp2p's validation cache disabled (it would let a replayed message skip the
  validator's freshness check after the seen-cache TTL), our own publishes never delivered
  back to us, the equivocation check keeps digests instead of up to ~1000 full messages,
  and an exception while processing one inbound message no longer escapes into the service.
- Per-message cost (measured with benchmarks/gossip_latency.py): py-libp2p rebuilds our
  address list (~40 us) for every pubsub RPC it sends, to attach our signed peer record; here
  the list is memoised for 1 s. PeerIds are base58-encoded once (~7 us each in py-libp2p),
  and the :class:`GossipMessage` a topic validator saw is the object delivered to the
  subscriber (so a service can keep what it decoded instead of decoding twice).
- Kademlia: server mode, strict record validation; provider lookups are done here (the
  library's ``find_providers`` returns only the local cache once it holds any entry, which
  includes ourselves, and may return duplicates); ``connect`` adds the peer to the routing
  table (py-libp2p's does not).
- Listening: py-libp2p binds with SO_REUSEPORT, so a second node on a fixed port would
  share it with the first (the kernel splits connections between them); we probe the port
  first and refuse. Addresses on 0.0.0.0 are advertised as the interfaces' addresses.
- Peerstore: ``host.connect`` sets a peer's TTL to 120 s (per peer; an expired peer loses
  all its addresses); explicitly dialed peers keep theirs for 24 h, provider records 1 h.
- Lifecycle: leaving the context closes the listeners first (so the port is released even
  if the rest times out), then all connections at once (py-libp2p closes them one by one
  with a 100 ms sleep each), then the host, bounded by ``shutdown_timeout``; py-libp2p's
  ``host.run()`` alone leaves the listener open.
- Logging: py-libp2p loggers are set to ``libp2p_log_level`` and propagate to the
  application's handlers; the one module that logs to the root logger is rerouted. Our own
  log lines go to ``logging.getLogger("wwwserve_p2p.net")``.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio
from multiaddr import Multiaddr

from ..errors import DialError, OverlayError, StreamClosed
from ..identity import Identity
from ._libp2p_compat import (
    ConnectionLogger,
    OverlayGossipSub,
    OverlayPubsub,
    cache_addrs,
    configure_libp2p_logging,
    remove_dial_delay,
)
from ._ratelimit import TokenBuckets
from .config import MAX_GOSSIP_BYTES_LIMIT, Libp2pConfig
from .base import GossipMessage, Overlay, Stream, StreamHandler, Validator

log = logging.getLogger("wwwserve_p2p.net")

#: Peerstore TTL for addresses we were given explicitly (bootstrap, connect) and learned
#: from provider records, seconds.
_EXPLICIT_ADDR_TTL = 24 * 3600
_PROVIDER_ADDR_TTL = 3600


# --------------------------------------------------------------------------------------------


@dataclass
class _Subscription:
    send: trio.MemorySendChannel[GossipMessage]
    validator: Validator | None


class _OwnPublish:
    """Set (through a context variable) while :meth:`Libp2pOverlay.publish` runs, so the
    validator wrapper can report that our own validator rejected our own message."""

    __slots__ = ("rejected",)

    def __init__(self) -> None:
        self.rejected: str | None = None


def _libp2p_stream_errors() -> tuple[type[BaseException], ...]:
    from libp2p.io.exceptions import IOException
    from libp2p.stream_muxer.exceptions import MuxedConnUnavailable, MuxedStreamError

    return (IOException, MuxedStreamError, MuxedConnUnavailable, trio.BrokenResourceError,
            trio.ClosedResourceError, ConnectionError, ValueError)


class Libp2pStream(Stream):
    """A libp2p stream (``INetStream``) behind the :class:`Stream` interface.

    ``read`` returns ``b""`` at a clean end of stream (the remote closed its side; py-libp2p
    also reports a locally closed connection this way) and raises
    :class:`~wwwserve_p2p.errors.StreamClosed` on a reset; any other libp2p I/O error also
    becomes ``StreamClosed``.
    """

    def __init__(self, net_stream: Any, remote_peer: str, protocol: str):
        self._s = net_stream
        self.remote_peer = remote_peer
        self.protocol = protocol
        self._done = False

    async def read(self, max_bytes: int = 65536) -> bytes:
        from libp2p.network.stream.exceptions import StreamEOF, StreamReset

        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        try:
            return bytes(await self._s.read(max_bytes))
        except StreamEOF:
            return b""
        except StreamReset as exc:
            raise StreamClosed(f"stream {self.protocol} with {self.remote_peer} was reset") from exc
        except _libp2p_stream_errors() as exc:
            raise StreamClosed(f"stream {self.protocol} with {self.remote_peer} failed: {exc!r}") from exc

    async def write(self, data: bytes) -> None:
        try:
            await self._s.write(bytes(data))
        except _libp2p_stream_errors() as exc:
            raise StreamClosed(f"stream {self.protocol} to {self.remote_peer} is closed: {exc!r}") from exc

    async def close(self) -> None:
        # NetStream.close() half-closes (yamux FIN; reads stay possible) and releases the
        # stream's resource-manager slot.
        if self._done:
            return
        self._done = True
        try:
            await self._s.close()
        except Exception as exc:
            log.debug("closing stream %s to %s: %r", self.protocol, self.remote_peer, exc)

    async def reset(self) -> None:
        self._done = True
        try:
            await self._s.reset()
        except Exception as exc:
            log.debug("resetting stream %s to %s: %r", self.protocol, self.remote_peer, exc)


# --------------------------------------------------------------------------------------------


class Libp2pOverlay(Overlay):
    """The overlay of one node over py-libp2p. Build it with :func:`open_libp2p_overlay`."""

    def __init__(self, identity: Identity, config: Libp2pConfig):
        from libp2p import new_host
        from libp2p.crypto.ed25519 import create_new_key_pair
        from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
        from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
        from libp2p.network.config import ConnectionConfig, RetryConfig
        from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11
        from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
        from libp2p.security.noise.transport import Transport as NoiseTransport
        from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
        from libp2p.stream_muxer.yamux.yamux import Yamux

        self._config = config
        self._identity = identity
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
        self._swarm = self._host.get_network()
        self._swarm.retry_config = RetryConfig(max_retries=config.dial_retries, initial_delay=0.05, max_delay=1.0)
        if not remove_dial_delay(self._swarm):
            log.warning("could not remove py-libp2p's 250 ms dial delay (library changed?)")
        self._swarm.register_notifee(ConnectionLogger(self._on_connection_event))
        self._my_id = self._host.get_id()
        self._my_id_bytes = self._my_id.to_bytes()
        self._peer_id_str = self._my_id.to_base58()
        if self._peer_id_str != identity.peer_id:
            raise OverlayError("libp2p derived a different PeerId from the identity key")

        self._router = OverlayGossipSub(
            protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=config.gossip_degree,
            degree_low=config.gossip_degree_low,
            degree_high=config.gossip_degree_high,
            heartbeat_interval=config.heartbeat_interval,  # type: ignore[arg-type]  # float works
            adaptive_gossip_enabled=False,
            spam_protection_enabled=False,
        )
        self._pubsub = OverlayPubsub(
            self._host,
            self._router,
            strict_signing=True,
            seen_ttl=config.gossip_seen_ttl,
            validation_cache_ttl=0,
            validation_cache_size=1,
            deliver=self._deliver,
            on_bad_message=self._on_bad_message,
            outbound_queue_size=config.gossip_outbound_queue,
            on_queue_drop=self._on_queue_drop,
        )
        self._dht = KadDHT(self._host, DHTMode.SERVER, strict_validation=True, enable_random_walk=False)
        self._buckets = TokenBuckets(config.gossip_rate_per_peer, config.gossip_burst_per_peer)
        self._subs: dict[str, _Subscription] = {}
        self._handlers: dict[str, StreamHandler] = {}
        self._handler_scopes: set[trio.CancelScope] = set()
        self._tasks: trio.Nursery | None = None
        self._open = False
        self._closed = False
        self._last_refresh = -math.inf
        self._stats: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._failing: set[Any] = set()
        self._peer_ids: dict[bytes, str] = {}  # PeerId bytes -> base58, bounded by _b58
        self._validated: dict[tuple[bytes, bytes], GossipMessage] = {}  # (from, seqno) -> validator's view

    # ---------------------------------------------------------------- lifecycle

    async def _run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        from libp2p.tools.anyio_service import background_trio_service

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
            await stack.enter_async_context(background_trio_service(self._pubsub))
            await stack.enter_async_context(background_trio_service(self._router))
            await stack.enter_async_context(background_trio_service(self._dht))
            await self._pubsub.wait_until_ready()
            tasks = await stack.enter_async_context(trio.open_nursery())
            self._tasks = tasks
            self._open = True
            log.info("libp2p overlay %s listening on %s (%.0f ms)", self._peer_id_str,
                     ", ".join(self.addrs()), (trio.current_time() - t0) * 1000)
            await self._bootstrap()
            tasks.start_soon(self._maintenance_loop)
            task_status.started()
            await trio.sleep_forever()

    async def _close(self) -> None:
        """Graceful shutdown, bounded by ``shutdown_timeout``; the caller cancels the rest."""
        if self._closed:
            return
        self._closed = True
        self._open = False
        with trio.move_on_after(self._config.shutdown_timeout) as deadline:
            # Release the port first: whatever happens below, nobody can connect any more.
            for listener in list(self._swarm.listeners.values()):
                try:
                    await listener.close()
                except Exception as exc:
                    log.debug("closing listener: %r", exc)
            for scope in list(self._handler_scopes):
                scope.cancel()
            if self._tasks is not None:
                self._tasks.cancel_scope.cancel()
            for sub in self._subs.values():
                sub.send.close()
            for service in (self._dht, self._router, self._pubsub):
                manager = getattr(service, "_manager", None)
                if manager is not None and manager.is_running:
                    manager.cancel()
            # py-libp2p closes connections one by one with a 100 ms sleep each; do it at once.
            conns = [c for cs in list(self._swarm.connections.values()) for c in list(cs)]
            async with trio.open_nursery() as nursery:
                for conn in conns:
                    nursery.start_soon(_close_quietly, conn)
            try:
                await self._host.close()
            except Exception as exc:
                log.warning("error while closing the libp2p host: %r", exc)
        if deadline.cancelled_caught:
            log.warning("libp2p overlay %s: graceful shutdown took over %.1f s; cancelling the rest",
                        self._peer_id_str, self._config.shutdown_timeout)
        log.info("libp2p overlay %s closed", self._peer_id_str)

    def _on_connection_event(self, what: str, pid: Any) -> None:
        self._stats[f"connections_{what}"] += 1
        log.debug("peer %s %s (%d connected)", pid, what, len(self._host.get_connected_peers()))

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

    def peer_addrs(self, peer_id: str) -> list[str]:
        """Known multiaddrs of ``peer_id``, each ending in ``/p2p/<peer_id>`` (may be empty)."""
        try:
            pid = _parse_peer_id(peer_id)
            addrs = self._host.get_peerstore().addrs(pid)
        except Exception:
            return []
        out = []
        for a in addrs:
            text = str(a)
            out.append(text if "/p2p/" in text else f"{text}/p2p/{peer_id}")
        return out

    async def connect(self, multiaddr: str) -> str:
        """Dial ``multiaddr`` (ending in ``/p2p/<PeerId>``) and return the PeerId.

        Clears the peer from py-libp2p's negative dial cache first, keeps its address in the
        peerstore, and adds it to the DHT routing table. Bounded by ``dial_timeout``.

        :raises DialError: malformed address, ourselves, unreachable, refused, timed out, or
            the security handshake failed (e.g. the peer does not speak Noise).
        """
        self._check_open()
        return await self._connect(multiaddr, quiet=False)

    async def _connect(self, multiaddr: str, quiet: bool) -> str:
        from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

        try:
            info = info_from_p2p_addr(Multiaddr(multiaddr))
        except Exception as exc:
            raise DialError(f"not a dialable multiaddr ending in /p2p/<PeerId>: {multiaddr!r} ({exc})") from None
        pid = info.peer_id
        if pid == self._my_id:
            raise DialError("refusing to dial ourselves")
        self._host.get_peerstore().add_addrs(pid, info.addrs, _EXPLICIT_ADDR_TTL)
        await self._dial(pid, what=multiaddr, addr_ttl=_EXPLICIT_ADDR_TTL, quiet=quiet)
        try:
            await self._dht.routing_table.add_peer(PeerInfo(pid, info.addrs), skip_server_mode_check=True)
        except Exception as exc:
            log.debug("could not add %s to the routing table: %r", pid, exc)
        return pid.to_base58()

    async def _dial(self, pid: Any, what: str, addr_ttl: int = _PROVIDER_ADDR_TTL, quiet: bool = False) -> None:
        """Ensure a connection to ``pid`` (bypassing the negative cache); raise DialError.

        py-libp2p's ``host.connect`` resets the peer's peerstore TTL to 120 s (one TTL per
        peer, not per address; an expired peer loses its addresses), so ``addr_ttl`` is
        restored afterwards.
        """
        if self._host.get_network().get_connections(pid):
            return
        self._swarm.unblock_peer(pid)
        t0 = trio.current_time()
        error: BaseException | None = None
        with trio.move_on_after(self._config.dial_timeout) as scope:
            try:
                await self._host.connect(_peer_info(self._host, pid))
            except Exception as exc:
                error = exc
        if scope.cancelled_caught:
            error = TimeoutError(f"no connection within {self._config.dial_timeout:g} s")
        if error is not None:
            self._stats["dial_failures"] += 1
            reason = _root_cause(error)
            repeated = pid in self._failing  # say it once per peer until it answers again
            if len(self._failing) >= 4096:
                self._failing.clear()
            self._failing.add(pid)
            log.log(logging.DEBUG if quiet or repeated else logging.INFO, "dial %s failed: %s", what, reason)
            raise DialError(f"cannot connect to {what}: {reason}") from error
        self._failing.discard(pid)
        self._stats["dials"] += 1
        self._host.get_peerstore().add_addrs(pid, [], addr_ttl)
        log.info("connected to %s (%.1f ms)", pid.to_base58(), (trio.current_time() - t0) * 1000)

    # ---------------------------------------------------------------- gossip

    async def subscribe(self, topic: str, validator: Validator | None = None) -> trio.abc.ReceiveChannel[GossipMessage]:
        """Subscribe to ``topic``; see :meth:`Overlay.subscribe`.

        Subscribing again to a topic replaces the previous subscription (its channel ends).
        Closing the returned channel unsubscribes. At most ``subscription_buffer`` messages
        wait in the channel; more are dropped and counted in :meth:`statistics`.
        """
        self._check_open()
        if not isinstance(topic, str) or not topic:
            raise OverlayError("a topic is a non-empty string")
        send, recv = trio.open_memory_channel[GossipMessage](self._config.subscription_buffer)
        old = self._subs.get(topic)
        self._subs[topic] = _Subscription(send, validator)
        if old is not None:
            old.send.close()
            return recv
        self._pubsub.set_topic_validator(topic, self._make_validator(topic), False)
        try:
            await self._pubsub.subscribe(topic)
        except Exception as exc:
            self._subs.pop(topic, None)
            self._pubsub.remove_topic_validator(topic)
            raise OverlayError(f"subscribing to {topic!r} failed: {exc!r}") from exc
        log.debug("subscribed to %s", topic)
        return recv

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish ``data`` on ``topic``, signed with our key; see :meth:`Overlay.publish`.

        :raises OverlayError: ``data`` is over ``gossip_max_bytes``, our own validator for
            ``topic`` rejected it, or the overlay is closed.
        """
        self._check_open()
        data = bytes(data)
        cap = self._config.gossip_max_bytes
        if len(data) > cap:
            raise OverlayError(f"gossip message on {topic!r} has {len(data)} bytes, over the cap of {cap} "
                               "(Libp2pConfig.gossip_max_bytes); send bulk data over a stream")
        box = _OwnPublish()
        token = _OWN_PUBLISH.set(box)
        try:
            await self._pubsub.publish(topic, data)
        except Exception as exc:
            raise OverlayError(f"publishing on {topic!r} failed: {exc!r}") from exc
        finally:
            _OWN_PUBLISH.reset(token)
        if box.rejected is not None:
            raise OverlayError(f"our own validator for {topic!r} rejected the message ({box.rejected}); not sent")
        self._stats["gossip_published"] += 1

    def _make_validator(self, topic: str) -> Callable[[Any, Any], bool]:
        def validate(forwarder: Any, msg: Any) -> bool:
            reason = self._check_message(topic, forwarder, msg)
            if reason is None:
                return True
            if msg.from_id == self._my_id_bytes:
                box = _OWN_PUBLISH.get()
                if box is not None:
                    box.rejected = reason
            else:
                self._rejected[reason] += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("rejected gossip on %s from %s: %s", topic, self._b58(msg.from_id), reason)
            return False

        return validate

    def _b58(self, peer_id_bytes: bytes) -> str:
        """Base58 text of a PeerId (memoised: ~12 us each in py-libp2p)."""
        text = self._peer_ids.get(peer_id_bytes)
        if text is None:
            if len(self._peer_ids) >= 4096:
                self._peer_ids.clear()
            text = self._peer_ids[peer_id_bytes] = _b58(peer_id_bytes)
        return text

    def _check_message(self, topic: str, forwarder: Any, msg: Any) -> str | None:
        """None if ``msg`` is acceptable on ``topic``, else the reason (a statistics key).

        The :class:`GossipMessage` shown to the topic validator is kept (under the message's
        author and seqno) and is the very object :meth:`_deliver` hands to the subscriber,
        so a service may keep what its validator derived from it (e.g. the decoded status).
        """
        if len(msg.topicIDs) != 1:
            return "malformed"
        if len(msg.data) > self._config.gossip_max_bytes:
            return "oversize"
        own = msg.from_id == self._my_id_bytes
        if not own and not self._buckets.allow(msg.from_id, trio.current_time()):
            return "rate_limited"
        sub = self._subs.get(topic)
        if sub is None or sub.validator is None:
            return None
        return self._run_validator(sub, topic, forwarder, msg)

    def _run_validator(self, sub: _Subscription, topic: str, forwarder: Any, msg: Any) -> str | None:
        assert sub.validator is not None
        try:
            source = self._b58(msg.from_id)
            received_from = forwarder.to_base58() if forwarder is not None else source
            gm = GossipMessage(topic, msg.data, source, received_from)
            ok = sub.validator(gm)
        except Exception as exc:
            self._warn_once(f"validator:{topic}", "gossip validator for %s raised %r; message rejected", topic, exc)
            return "validator_error"
        if not ok:
            return "validator"
        if len(self._validated) >= 1024:  # validated but never delivered (dropped later): forget
            self._validated.clear()
        self._validated[(msg.from_id, msg.seqno)] = gm
        return None

    def _deliver(self, msg: Any, forwarder: Any) -> None:
        """Called by py-libp2p (synchronously) for each new valid message on our topics."""
        validated = self._validated.pop((msg.from_id, msg.seqno), None)
        if msg.from_id == self._my_id_bytes:
            return  # our own publish: never delivered back
        for topic in msg.topicIDs:
            sub = self._subs.get(topic)
            if sub is None:
                continue
            try:
                if validated is not None and validated.topic == topic:
                    gm = validated
                else:
                    source = self._b58(msg.from_id)
                    received_from = forwarder.to_base58() if forwarder is not None else source
                    gm = GossipMessage(topic, msg.data, source, received_from)
                sub.send.send_nowait(gm)
                self._stats["gossip_delivered"] += 1
            except trio.WouldBlock:
                self._stats["gossip_dropped_subscriber_full"] += 1
                self._warn_once(f"sub-full:{topic}", "subscriber of %s is not keeping up (%d buffered); "
                                "dropping messages", topic, self._config.subscription_buffer)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                if self._subs.get(topic) is sub:
                    self._subs.pop(topic, None)
                    if self._tasks is not None and self._open:
                        self._tasks.start_soon(self._unsubscribe, topic)
            except Exception as exc:  # a malformed from_id
                self._rejected["malformed"] += 1
                log.debug("undeliverable gossip on %s: %r", topic, exc)

    async def _unsubscribe(self, topic: str) -> None:
        if topic in self._subs:
            return  # re-subscribed meanwhile
        self._pubsub.remove_topic_validator(topic)
        try:
            await self._pubsub.unsubscribe(topic)
            log.debug("unsubscribed from %s (channel closed)", topic)
        except Exception as exc:
            log.debug("unsubscribing from %s: %r", topic, exc)

    def _on_bad_message(self, peer: Any, exc: BaseException) -> None:
        self._rejected["malformed"] += 1
        log.debug("bad pubsub input from %s: %r", peer, exc)

    def _on_queue_drop(self, rpc: Any) -> None:
        self._stats["gossip_dropped_outbound_queue"] += 1
        self._warn_once("queue", "a gossip outbound queue is full (%d RPCs); dropping (a slow neighbour?)",
                        self._config.gossip_outbound_queue)

    def _warn_once(self, key: str, fmt: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(fmt, *args)
        else:
            log.debug(fmt, *args)

    # ---------------------------------------------------------------- streams

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol``; see :meth:`Overlay.set_stream_handler`.

        Each inbound stream runs in its own task (py-libp2p's per-stream task). A handler
        that raises is logged and its stream reset; one that returns has its stream closed.
        All handlers are cancelled when the overlay closes.
        """
        from libp2p.custom_types import TProtocol

        if not isinstance(protocol, str) or not protocol.startswith("/"):
            raise OverlayError(f"a protocol id starts with '/': {protocol!r}")
        self._handlers[protocol] = handler

        async def libp2p_handler(net_stream: Any) -> None:
            remote = net_stream.muxed_conn.peer_id.to_base58()
            stream = Libp2pStream(net_stream, remote, protocol)
            current = self._handlers.get(protocol)
            if current is None or not self._open:
                await stream.reset()
                return
            self._stats["streams_inbound"] += 1
            with trio.CancelScope() as scope:
                self._handler_scopes.add(scope)
                try:
                    await current(stream)
                except Exception as exc:
                    log.warning("handler for %s from %s raised %r; resetting the stream", protocol, remote, exc,
                                exc_info=log.isEnabledFor(logging.DEBUG))
                    with trio.CancelScope(shield=True):
                        await stream.reset()
                    return
                finally:
                    self._handler_scopes.discard(scope)
            if scope.cancelled_caught:
                with trio.CancelScope(shield=True):
                    await stream.reset()
            else:
                await stream.close()

        self._host.set_stream_handler(TProtocol(protocol), libp2p_handler)

    async def open_stream(self, peer_id: str, protocol: str) -> Stream:
        """Open a stream to ``peer_id`` for ``protocol``; see :meth:`Overlay.open_stream`.

        Dials if not connected (known addresses: peerstore, DHT provider records; the
        negative dial cache is bypassed). Dial plus protocol negotiation are bounded by
        ``dial_timeout``.

        :raises DialError: bad PeerId, ourselves, unreachable, timed out, or the peer does not
            speak ``protocol``.
        """
        from libp2p.custom_types import TProtocol

        self._check_open()
        try:
            pid = _parse_peer_id(peer_id)
        except Exception:
            raise DialError(f"not a PeerId: {peer_id!r}") from None
        if pid == self._my_id:
            raise DialError("refusing to open a stream to ourselves")
        with trio.move_on_after(self._config.dial_timeout) as scope:
            if not self._swarm.get_connections(pid):
                await self._dial(pid, what=peer_id)
            try:
                net_stream = await self._host.new_stream(pid, [TProtocol(protocol)])
            except Exception as exc:
                raise DialError(f"cannot open {protocol} to {peer_id}: {_root_cause(exc)}") from exc
        if scope.cancelled_caught:
            raise DialError(f"cannot open {protocol} to {peer_id}: timed out after {self._config.dial_timeout:g} s")
        self._stats["streams_outbound"] += 1
        return Libp2pStream(net_stream, peer_id, protocol)

    # ---------------------------------------------------------------- DHT

    async def provide(self, key: str) -> None:
        """Announce a provider record for ``key`` on the DHT (also kept locally, republished
        by py-libp2p every 22 h). Bounded by ``dht_timeout``; a lookup that reaches no peer is
        logged, not raised (the record is announced again on the next call)."""
        self._check_open()
        with trio.move_on_after(self._config.dht_timeout):
            ok = await self._dht.provider_store.provide(_dht_key(key))
            if ok:
                log.debug("providing %s", key)
                return
        log.info("provide(%s): no DHT peer accepted the record yet", key)

    async def find_providers(self, key: str, limit: int = 20) -> list[str]:
        """PeerIds providing ``key``: the local provider store plus an iterative Kademlia
        lookup (GET_PROVIDERS on the closest peers, following closer peers), de-duplicated,
        never ourselves, at most ``limit``. Their addresses go into the peerstore so
        :meth:`open_stream` can dial them. Bounded by ``dht_timeout`` (returns what it found)."""
        self._check_open()
        if limit < 1:
            return []
        found: dict[str, Any] = {}
        dkey = _dht_key(key)

        def add(infos: list[Any]) -> None:
            for info in infos:
                if info.peer_id == self._my_id:
                    continue
                text = info.peer_id.to_base58()
                if text not in found and len(found) < limit:
                    found[text] = info
                    if info.addrs:
                        self._host.get_peerstore().add_addrs(info.peer_id, info.addrs, _PROVIDER_ADDR_TTL)

        store = self._dht.provider_store
        add(store.get_providers(dkey))
        with trio.move_on_after(self._config.dht_timeout):
            await self._provider_lookup(dkey, limit, add, found)
        return list(found)

    async def _provider_lookup(self, dkey: bytes, limit: int, add: Callable[[list[Any]], None],
                               found: dict[str, Any]) -> None:
        from libp2p.kad_dht.common import ALPHA
        from libp2p.kad_dht.utils import sort_peer_ids_by_distance

        store = self._dht.provider_store
        queried: set[Any] = {self._my_id}
        candidates = [p for p in await self._dht.peer_routing.find_closest_peers_network(dkey) if p not in queried]
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

    async def _refresh_routing_table(self) -> None:
        self._last_refresh = trio.current_time()
        with trio.move_on_after(self._config.dht_timeout):
            try:
                await self._dht.refresh_routing_table()
            except Exception as exc:
                log.debug("routing table refresh failed: %r", exc)
        log.debug("routing table: %d peers", self._dht.get_routing_table_size())

    # ---------------------------------------------------------------- bootstrap and upkeep

    async def _bootstrap(self) -> None:
        """Dial every bootstrap address concurrently (failures logged), then refresh the
        routing table in the background."""
        addrs = [a for a in self._config.bootstrap if not a.endswith(f"/p2p/{self._peer_id_str}")]
        if not addrs:
            return
        connected: list[str] = []

        async def dial(addr: str) -> None:
            try:
                connected.append(await self.connect(addr))
            except DialError as exc:
                log.warning("bootstrap peer unreachable: %s", exc)

        async with trio.open_nursery() as nursery:
            for addr in addrs:
                nursery.start_soon(dial, addr)
        log.info("bootstrap: connected to %d of %d peers", len(connected), len(addrs))
        if connected and self._tasks is not None:
            self._tasks.start_soon(self._refresh_routing_table)

    async def _maintenance_loop(self) -> None:
        """Every ``discovery_interval``: re-dial bootstrap peers we are not connected to; refresh
        the routing table when it is small or ``dht_refresh_interval`` has passed."""
        from libp2p.peer.peerinfo import info_from_p2p_addr

        while True:
            await trio.sleep(self._config.discovery_interval)
            connected = set(self.connected_peers())
            for addr in self._config.bootstrap:
                try:
                    pid = info_from_p2p_addr(Multiaddr(addr)).peer_id
                except Exception:
                    continue
                if pid == self._my_id or pid.to_base58() in connected:
                    continue
                try:
                    await self._connect(addr, quiet=True)
                    log.info("reconnected to bootstrap peer %s", pid.to_base58())
                except DialError:
                    pass
            small = self._dht.get_routing_table_size() < self._config.gossip_degree_high
            due = trio.current_time() - self._last_refresh >= self._config.dht_refresh_interval
            if self._host.get_connected_peers() and (small or due):
                await self._refresh_routing_table()

    # ---------------------------------------------------------------- statistics

    def statistics(self) -> dict[str, Any]:
        """A snapshot: ``connected_peers`` (count), ``mesh`` ({topic: mesh size}),
        ``topic_peers`` ({topic: peers known to subscribe}), ``routing_table`` (size),
        ``gossip_published`` / ``gossip_delivered`` (counts), ``gossip_received`` (messages
        received from neighbours on our topics, duplicates included), ``gossip_rejected``
        ({reason: count}; reasons: oversize, rate_limited, validator, validator_error,
        malformed), ``gossip_dropped`` ({subscriber_full, outbound_queue}), ``streams_inbound``
        / ``streams_outbound``, ``dials`` / ``dial_failures``."""
        mesh = {t: len(peers) for t, peers in self._router.mesh.items()}
        topic_peers = {t: len(self._pubsub.peer_topics.get(t, ())) for t in self._subs}
        try:
            rt = self._dht.get_routing_table_size()
        except Exception:
            rt = 0
        return {
            "peer_id": self._peer_id_str,
            "connected_peers": len(self._host.get_connected_peers()),
            "mesh": mesh,
            "topic_peers": topic_peers,
            "routing_table": rt,
            "gossip_published": self._stats["gossip_published"],
            "gossip_received": self._pubsub.inbound_messages,
            "gossip_delivered": self._stats["gossip_delivered"],
            "gossip_rejected": dict(self._rejected),
            "gossip_dropped": {
                "subscriber_full": self._stats["gossip_dropped_subscriber_full"],
                "outbound_queue": self._stats["gossip_dropped_outbound_queue"],
            },
            "streams_inbound": self._stats["streams_inbound"],
            "streams_outbound": self._stats["streams_outbound"],
            "dials": self._stats["dials"],
            "dial_failures": self._stats["dial_failures"],
        }


# --------------------------------------------------------------------------------------------

_OWN_PUBLISH: contextvars.ContextVar[_OwnPublish | None] = contextvars.ContextVar("wwwserve_own_publish", default=None)


def _b58(peer_id_bytes: bytes) -> str:
    from libp2p.peer.id import ID

    return ID(peer_id_bytes).to_base58()


def _parse_peer_id(text: str) -> Any:
    from libp2p.peer.id import ID

    return ID.from_base58(text)


def _peer_info(host: Any, pid: Any) -> Any:
    from libp2p.peer.peerinfo import PeerInfo

    try:
        addrs = host.get_peerstore().addrs(pid)
    except Exception:
        addrs = []
    return PeerInfo(pid, addrs)


def _dht_key(key: str) -> bytes:
    """Provider-record key bytes: UTF-8 of ``key`` (py-libp2p's ``KadDHT.provide(str)`` would
    instead guess between CID, hex and UTF-8, so ``"beef"`` and ``b"\\xbe\\xef"`` collide)."""
    if not isinstance(key, str) or not key:
        raise OverlayError("a DHT key is a non-empty string, e.g. /wwwserve/model/<name>")
    return key.encode("utf-8")


def _root_cause(exc: BaseException) -> str:
    """A short human description of a (chained) libp2p exception."""
    seen = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 6:
        text = str(cur) or type(cur).__name__
        if text not in seen:
            seen.append(text)
        cur = cur.__cause__ or (cur.__context__ if not cur.__suppress_context__ else None)
    return "; ".join(seen)


async def _close_quietly(conn: Any) -> None:
    try:
        await conn.close()
    except Exception as exc:
        log.debug("closing connection: %r", exc)


def _port_taken(maddr: Multiaddr) -> bool:
    """True if something already listens on ``maddr``'s fixed TCP port.

    py-libp2p binds its listeners with SO_REUSEPORT (for hole punching), so a second node on
    the same port binds successfully and the kernel then splits incoming connections between
    the two processes. A probe bind *without* SO_REUSEPORT fails if anyone listens there.
    """
    import errno
    import socket

    try:
        port = int(maddr.value_for_protocol("tcp"))
    except Exception:
        return False
    if port == 0:
        return False
    for proto, family in (("ip4", socket.AF_INET), ("ip6", socket.AF_INET6)):
        try:
            host = maddr.value_for_protocol(proto)
        except Exception:
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
    from libp2p.utils.address_validation import expand_wildcard_address

    out: list[Any] = []
    for addr in candidates:
        text = str(addr)
        if text.startswith(("/ip4/0.0.0.0/", "/ip6/::/")):
            try:
                out.extend(expand_wildcard_address(addr))
                continue
            except Exception:
                pass
        out.append(addr)
    return out


@asynccontextmanager
async def open_libp2p_overlay(identity: Identity, config: Libp2pConfig | None = None) -> AsyncIterator[Libp2pOverlay]:
    """Run a libp2p overlay for ``identity`` until the context exits.

    On entry: listens on ``config.listen``, starts GossipSub and the Kademlia DHT, dials the
    bootstrap peers (unreachable ones are logged), and starts discovery in the background.
    On exit: closes the listeners and the host (bounded by ``shutdown_timeout``) and cancels
    every task, including running stream handlers. An exception from the body propagates as
    itself (not wrapped in an ExceptionGroup).

    :raises OverlayError: no listen address could be bound (e.g. the port is in use).
    """
    config = config or Libp2pConfig()
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


__all__ = ["Libp2pConfig", "Libp2pOverlay", "Libp2pStream", "MAX_GOSSIP_BYTES_LIMIT", "open_libp2p_overlay"]
