"""Workarounds for measured py-libp2p 0.8.1 behaviour (DESIGN §8), and the version guard
that keeps them from running against a py-libp2p they were not written for.

Each helper names the library behaviour it changes and how; the overlay applies them to its
own host only, except the logging fix, which is process-wide (it only reroutes log records).
Each is tested in ``tests/net/test_libp2p_compat.py``.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import time
import types
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from libp2p.abc import INotifee
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import PriorityQueue, RpcQueue

from ...errors import OverlayError
from .streams import best_effort

log = logging.getLogger("wwwserve_p2p.net")

# --------------------------------------------------------------------------------------------
# Version guard
# --------------------------------------------------------------------------------------------

#: py-libp2p releases these patches were written and tested against.
TESTED_LIBP2P_VERSIONS = ("0.8.1",)
#: Set to 1 to run against an untested py-libp2p anyway (a warning is logged).
ALLOW_UNTESTED_ENV = "WWWSERVE_ALLOW_UNTESTED_LIBP2P"


def installed_libp2p_version() -> str:
    """The installed py-libp2p distribution's version (``"unknown"`` if it has no metadata)."""
    try:
        return version("libp2p")
    except PackageNotFoundError:
        return "unknown"


def check_libp2p_version() -> str:
    """Return the installed py-libp2p version if it is a tested one.

    The helpers below reach into py-libp2p internals (private attributes, function globals,
    subclassed methods) that change between releases without notice; against another
    release they could fail silently (e.g. drops no longer counted) rather than loudly.

    :raises OverlayError: another version is installed and ``WWWSERVE_ALLOW_UNTESTED_LIBP2P``
        is not set to ``1`` (with it, a warning is logged instead).
    """
    installed = installed_libp2p_version()
    if installed in TESTED_LIBP2P_VERSIONS:
        return installed
    tested = ", ".join(TESTED_LIBP2P_VERSIONS)
    problem = (f"py-libp2p {installed} is installed, but wwwserve_p2p is tested only with py-libp2p {tested}: "
               "its overlay patches py-libp2p internals (wwwserve_p2p/net/libp2p/compat.py)")
    if os.environ.get(ALLOW_UNTESTED_ENV) == "1":
        log.warning("%s; running anyway because %s=1", problem, ALLOW_UNTESTED_ENV)
        return installed
    raise OverlayError(f"{problem}. Install the tested version (pip install libp2p=={TESTED_LIBP2P_VERSIONS[-1]}) "
                       f"or set {ALLOW_UNTESTED_ENV}=1 to run at your own risk")


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------

#: py-libp2p modules that log through the *root* logger (``logging.warning(...)``): each such
#: call also runs ``logging.basicConfig()`` when root has no handler, installing a stderr
#: handler on the application's root logger.
_ROOT_LOGGING_MODULES = ("libp2p.network.connection.swarm_connection",)


class _ModuleLogger:
    """Stands in for the ``logging`` module inside a py-libp2p module: the level functions
    go to a named logger, everything else (constants, getLogger, ...) to ``logging``."""

    def __init__(self, logger: logging.Logger):
        self._logger = logger
        self.debug = logger.debug
        self.info = logger.info
        self.warning = logger.warning
        self.warn = logger.warning
        self.error = logger.error
        self.exception = logger.exception
        self.critical = logger.critical
        self.log = logger.log

    def __getattr__(self, name: str) -> Any:
        return getattr(logging, name)


class _DropBenignDhtEof(logging.Filter):
    """py-libp2p's KAD server logs a WARNING ("Failed to read DHT message from stream: ")
    each time a client closes its request stream: ``NetStream.read`` raises ``StreamEOF``
    where the varint reader expects ``b""``. Every provide/lookup would log one per peer."""

    def filter(self, record: logging.LogRecord) -> bool:
        from libp2p.network.stream.exceptions import StreamEOF

        if record.msg == "Failed to read DHT message from stream: %s" and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            if isinstance(args[0], StreamEOF):
                return False
        return True


_DHT_EOF_FILTER = _DropBenignDhtEof()

#: (logger, message prefix, substrings of which one must occur): records py-libp2p logs at
#: WARNING or ERROR for routine events (a refused dial, a peer going away mid-negotiation, a
#: connection closed under a reader, a remote's odd FIND_NODE key: DESIGN §8 measured the
#: latter at 94 % of a node's log lines). The overlay reports outcomes itself (DialError,
#: "dial ... failed"), so these are demoted to DEBUG.
_ROUTINE_ERRORS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("libp2p.transport.tcp.tcp", "Failed to open TCP stream", ("",)),
    ("libp2p.host.basic_host", "Failed to open stream to peer", ("",)),
    ("libp2p.protocol_muxer.multiselect_client", "MultiselectClient handshake", ("",)),
    ("libp2p.stream_muxer.yamux.yamux", "Error in handle_incoming for peer",
     ("ConnectionClosedError", "ClosedResourceError", "BrokenResourceError")),
    ("libp2p.kad_dht.kad_dht", "FIND_NODE key is not a valid PeerId", ("",)),
    # the relay's hop handler reads on after each RESERVE/CONNECT; a client closing the
    # stream (as the spec has it: one exchange per stream) is logged as three ERRORs
    ("libp2p.relay.circuit_v2.protocol", "Error reading from hop stream", ("",)),
    ("libp2p.relay.circuit_v2.protocol", "Unexpected error handling hop stream", ("stream is reset", "closed")),
    ("libp2p.relay.circuit_v2.protocol", "Error sending status message", ("stream is reset", "closed")),
    ("libp2p.relay.circuit_v2.protocol", "Unexpected error reading from stream", ("",)),
    ("libp2p.relay.circuit_v2.transport", "Failed to fetch stored addresses for peer", ("",)),
    # DCUtR's hole-punch dials fail by design when the NATs do not allow it
    ("libp2p.transport.tcp.tcp", "Unexpected error opening TCP stream", ("",)),
    ("libp2p.relay.circuit_v2.dcutr", "No addresses to try for hole punch", ("",)),
    ("libp2p.relay.circuit_v2.dcutr", "Failed to establish direct connection", ("",)),
    # an AutoNAT client that gave up (its own deadline) closes the stream under the server
    ("libp2p.host.autonat.autonat", "Error handling AutoNAT stream", ("",)),
)


class _DemoteRoutineErrors(logging.Filter):
    """Re-label the records of :data:`_ROUTINE_ERRORS` as DEBUG: kept when the ``libp2p``
    logger is at DEBUG, dropped otherwise."""

    def __init__(self, prefix: str, needles: tuple[str, ...]):
        super().__init__()
        self.prefix = prefix
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG:
            return True
        text = record.getMessage()
        if not text.startswith(self.prefix) or not any(n in text for n in self.needles):
            return True
        if not logging.getLogger("libp2p").isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _install_filters() -> None:
    dht_logger = logging.getLogger("libp2p.kad_dht.kad_dht")
    if _DHT_EOF_FILTER not in dht_logger.filters:
        dht_logger.addFilter(_DHT_EOF_FILTER)
    for name, prefix, needle in _ROUTINE_ERRORS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteRoutineErrors) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DemoteRoutineErrors(prefix, needle))


def configure_libp2p_logging(level: str) -> None:
    """Make py-libp2p log like a well-behaved library. Idempotent.

    ``import libp2p`` sets the ``libp2p`` logger to WARNING with ``propagate=False`` and no
    handler (so its warnings go to Python's last-resort stderr printer), some modules pin
    their own logger's level (e.g. ``libp2p.network.auto_connector`` at INFO), and one module
    logs to the root logger. Here: the ``libp2p`` logger gets ``level`` and propagates to
    whatever the application configured (no handler is added anywhere), every ``libp2p.*``
    logger created so far inherits that level, the root-logging module is rerouted to its
    own named logger, one benign per-request DHT warning is filtered out and a few ERRORs
    logged for routine events are demoted to DEBUG (:data:`_ROUTINE_ERRORS`). If
    ``LIBP2P_DEBUG`` is set, py-libp2p's own debug logging setup is left alone.
    """
    for name in _ROOT_LOGGING_MODULES:
        module = __import__(name, fromlist=["logging"])
        if getattr(module, "logging", None) is logging:
            module.logging = _ModuleLogger(logging.getLogger(name))  # type: ignore[attr-defined]
    _install_filters()
    if os.environ.get("LIBP2P_DEBUG"):
        return
    root = logging.getLogger("libp2p")
    root.setLevel(level)
    root.propagate = True
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith("libp2p.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)


# --------------------------------------------------------------------------------------------
# Dialing
# --------------------------------------------------------------------------------------------


def remove_dial_delay(swarm: Any) -> bool:
    """Remove the fixed 250 ms wait from every dial of ``swarm`` (this instance only).

    ``Swarm.dial_peer`` starts a dial per address and then waits
    ``_HAPPY_EYEBALLS_DELAY`` (0.25 s) for it to *fail* before starting the next; a dial that
    succeeds never sets that event, so even a single-address dial returns 250 ms late. We bind
    to this swarm a copy of ``dial_peer`` whose globals see the delay as 0 (all addresses are
    then dialed at once; with TCP only there is one per peer). The module constant is left
    untouched, so other hosts in the process (e.g. a bare py-libp2p baseline in a benchmark)
    keep the library behaviour. Returns False (and changes nothing) if the library no longer
    has that constant.
    """
    from libp2p.network import swarm as swarm_module

    fn = getattr(type(swarm), "dial_peer", None)
    if not hasattr(swarm_module, "_HAPPY_EYEBALLS_DELAY") or not isinstance(fn, types.FunctionType):
        return False
    if fn.__globals__ is not swarm_module.__dict__:
        return False
    fn_globals = dict(fn.__globals__)
    fn_globals["_HAPPY_EYEBALLS_DELAY"] = 0.0
    clone = types.FunctionType(fn.__code__, fn_globals, fn.__name__, fn.__defaults__, fn.__closure__)
    clone.__kwdefaults__ = fn.__kwdefaults__
    clone.__qualname__ = fn.__qualname__
    swarm.dial_peer = types.MethodType(clone, swarm)
    return True


# --------------------------------------------------------------------------------------------
# Stream negotiation: fewer round trips
# --------------------------------------------------------------------------------------------

#: Protocols whose outbound streams skip waiting for the protocol acknowledgement
#: (:class:`FastMultiselectClient`); their first read checks it instead.
LAZY_PROTOCOL_PREFIXES = ("/wwwserve/",)


class FastMultiselectClient:
    """py-libp2p's ``MultiselectClient`` for one proposed protocol, without its round trips.

    py-libp2p writes the multistream header, waits for the peer's, then writes the protocol
    and waits for the acknowledgement: two round trips before the first byte of a new stream
    (measured: a bare new-stream request/response costs ~3.5 RTT over a 50 ms link). For our
    own protocols (:data:`LAZY_PROTOCOL_PREFIXES`; py-libp2p's own protocols keep the
    library's client) header and protocol go out in one write (multistream-select allows it),
    saving one round trip, and the
    stream is handed back at once (once the peer announced the protocol through identify; an
    unknown protocol is still refused at open) and the peer's header and acknowledgement are
    checked by the stream's first read, so the request travels with the negotiation (go-libp2p's "lazy"
    negotiation): a new stream's request/response then takes one round trip. A peer that
    refuses the protocol makes that first read raise ``MultiselectClientError`` (mapped to
    ``StreamClosed`` by :mod:`.streams`). Several protocols, or a write failure, fall back
    to the library's client.
    """

    def __init__(self, inner: Any, host: Any = None, lazy_prefixes: tuple[str, ...] = LAZY_PROTOCOL_PREFIXES):
        self._inner = inner
        self._host = host
        self._lazy = lazy_prefixes

    def _announced(self, stream: Any, proto: str) -> bool:
        """True if the peer announced ``proto`` (identify): then an unsupported-protocol
        answer is not expected and the acknowledgement can be checked lazily."""
        if self._host is None:
            return False
        try:
            return proto in self._host.get_peerstore().get_protocols(stream.muxed_conn.peer_id)
        except Exception:  # no identify yet, or no peer id on the stream: negotiate eagerly
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def select_one_of(self, protocols: Any, communicator: Any, negotiate_timeout: int = 5) -> Any:
        import trio
        from libp2p.protocol_muxer.exceptions import MultiselectClientError, MultiselectCommunicatorError
        from libp2p.protocol_muxer.multiselect_client import MULTISELECT_PROTOCOL_ID, is_valid_handshake
        from libp2p.utils import encode_delim

        protocols = list(protocols)
        stream = getattr(communicator, "read_writer", None)
        if len(protocols) != 1 or stream is None or not str(protocols[0]).startswith(self._lazy):
            # only our own protocols: with the pipelined negotiation on py-libp2p's (meshsub,
            # identify, kad), gossip over a 50 ms / 0.5 % loss link fell from 100 % delivery and
            # 1.2 s last-receipt p99 to 98.9 % and 8.7 s (benchmarks/gossip_latency.py --wan, 8
            # nodes, same run); not understood yet, so the library's client does those
            return await self._inner.select_one_of(protocols, communicator, negotiate_timeout)
        proto = protocols[0]
        try:
            await stream.write(encode_delim(MULTISELECT_PROTOCOL_ID.encode()) + encode_delim(str(proto).encode()))
        except Exception as exc:  # IOException family, ValueError on a closed stream: say it the library's way
            raise MultiselectClientError(f"protocol write failed: {exc!r}, protocol={proto}") from exc

        async def check() -> None:
            with trio.move_on_after(negotiate_timeout) as scope:
                try:
                    header = await communicator.read()
                    answer = await communicator.read()
                except MultiselectCommunicatorError as exc:
                    raise MultiselectClientError(f"negotiation of {proto} failed: {exc}") from exc
            if scope.cancelled_caught:
                raise MultiselectClientError(f"negotiation of {proto} timed out after {negotiate_timeout}s")
            if not is_valid_handshake(header):
                raise MultiselectClientError(f"multiselect protocol ID mismatch: got {header!r}")
            if answer != str(proto):
                raise MultiselectClientError(f"peer does not support {proto} (answered {answer!r})")

        if (not str(proto).startswith(self._lazy) or not callable(getattr(stream, "read", None))
                or not self._announced(stream, str(proto))):
            await check()
            return proto
        original = stream.read
        pending = [True]

        async def read(*args: Any, **kwargs: Any) -> Any:
            if pending[0]:
                pending[0] = False
                stream.read = original  # the check's own reads go to the stream
                await check()
            return await original(*args, **kwargs)

        stream.read = read
        return proto


def fast_negotiation(host: Any) -> bool:
    """Install :class:`FastMultiselectClient` on ``host`` (this host only). False (nothing
    changed) if the host has no ``multiselect_client``."""
    inner = getattr(host, "multiselect_client", None)
    if inner is None or not callable(getattr(inner, "select_one_of", None)):
        return False
    host.multiselect_client = FastMultiselectClient(inner, host)
    return True


# --------------------------------------------------------------------------------------------
# Per-message work: our address list
# --------------------------------------------------------------------------------------------


def cache_addrs(host: Any, ttl: float = 1.0) -> None:
    """Memoise ``host.get_addrs()`` for ``ttl`` seconds (per set of listeners).

    py-libp2p rebuilds the host's address list (listener addresses, observed addresses, the
    address factory, ``/p2p/`` suffixes: ~50 us) each time it attaches our signed peer
    record to a pubsub RPC, i.e. for every message it publishes or forwards.
    """
    original = host.get_addrs
    network = host.get_network()
    cache: list[Any] = [None, -1.0, None]  # key, expiry, addrs

    def get_addrs() -> list[Any]:
        key = tuple(network.listeners)
        now = time.monotonic()
        if cache[0] != key or now >= cache[1]:
            cache[0], cache[1], cache[2] = key, now + ttl, original()
        return list(cache[2])

    host.get_addrs = get_addrs


def disable_auto_connector(swarm: Any) -> bool:
    """Keep py-libp2p's ``AutoConnector`` of ``swarm`` from ever starting.

    py-libp2p 0.8.1 starts it with every swarm: while the swarm has fewer than
    ``low_watermark`` (100) connections (every small network) it dials up to 150 peers taken
    from the *peerstore* every 30 s, every few seconds below ``min_connections`` (50), and
    again on each disconnect. The peerstore holds every address anyone made us store
    (forged statuses, DHT records), so it dialled attacker-chosen addresses over and over:
    the reflection amplifier of issue 15. The overlay keeps its own connections (bootstrap
    re-dials, membership's gated dials). Returns False if the swarm has no auto-connector.
    """
    connector = getattr(swarm, "auto_connector", None)
    if connector is None or not hasattr(connector, "start"):
        return False

    async def start() -> None:
        connector._started = False

    connector.start = start
    connector._started = False
    return True


def protect_peerstore(host: Any) -> bool:
    """Make ``host``'s peerstore evict only peers that are neither us nor connected.

    py-libp2p 0.8.1's ``PeerStore.add_addrs`` calls ``_enforce_peer_limit`` once the store
    holds more than ``max_peers`` (1000) peers, which evicts entries *without addresses
    first*: our own entry (it holds our key pair but no addresses) goes first, after which
    every publish fails with ``PeerStoreError`` (issue 15: ~1,200 forged statuses silenced a
    network for good), and connected peers whose addresses expired go next. Bound to this
    store only: the limit still holds, but ``host.get_id()`` and connected peers are never
    evicted; among the others, addressless and expired ones first, then the longest-unseen.
    Returns False (and changes nothing) if the store no longer has that method.
    """
    store = host.get_peerstore()
    if not callable(getattr(store, "_enforce_peer_limit", None)) or not hasattr(store, "peer_data_map"):
        return False
    me = host.get_id()
    network = host.get_network()

    def enforce_peer_limit() -> None:
        data = store.peer_data_map
        excess = len(data) - store.max_peers
        if excess <= 0:
            return
        connected = set(network.connections)
        victims = [(not pd.get_addrs(), pd.is_expired(), -getattr(pd, "last_identified", 0), pid)
                   for pid, pd in data.items() if pid != me and pid not in connected]
        victims.sort(key=lambda v: (v[0], v[1], v[2]), reverse=True)
        for *_, pid in victims[:excess]:
            store.peer_record_map.pop(pid, None)
            data.pop(pid, None)

    store._enforce_peer_limit = enforce_peer_limit
    return True


# --------------------------------------------------------------------------------------------
# Pubsub
# --------------------------------------------------------------------------------------------

#: The neighbour that forwarded the message being processed by the current task.
_FORWARDER: contextvars.ContextVar[ID | None] = contextvars.ContextVar("wwwserve_forwarder", default=None)
#: set per inbound message by OverlayPubsub.push_msg: [True] once its signature check failed
_BAD_SIGNATURE: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("wwwserve_bad_sig", default=None)


def _install_signature_counter() -> None:
    """Wrap py-libp2p's ``signature_validator`` as ``Pubsub.push_msg`` calls it, so that a
    failed check is noted for :class:`OverlayPubsub` (which penalises the forwarder: py-libp2p
    0.8.1 drops a badly signed message without scoring it, so a neighbour could make us verify
    forged signatures for ever without its score moving). Idempotent."""
    import libp2p.pubsub.pubsub as pubsub_mod

    orig = pubsub_mod.signature_validator
    if getattr(orig, "_wwwserve_counting", False):
        return

    def counting(msg: rpc_pb2.Message) -> bool:
        ok = orig(msg)
        if not ok:
            box = _BAD_SIGNATURE.get()
            if box is not None:
                box[0] = True
        return ok

    counting._wwwserve_counting = True  # type: ignore[attr-defined]
    pubsub_mod.signature_validator = counting  # type: ignore[assignment]


#: Most neighbours whose last verified signed peer record is remembered (remote-keyed: bounded).
SENDER_RECORD_CACHE = 4096
#: s a remembered record is trusted without verifying it again (the peerstore keeps it 2 h).
SENDER_RECORD_REUSE_S = 600.0


def _install_sender_record_cache() -> None:
    """Replace py-libp2p 0.8.1's ``maybe_consume_signed_record`` (called on every inbound pubsub
    RPC, in ``pubsub`` and ``gossipsub``) with one that

    - verifies a neighbour's ``senderRecord`` once: py-libp2p resends the same cached envelope
      bytes in every RPC, and parsing plus an Ed25519 check per RPC was ~10 % of an idle
      8-node network's CPU (py-spy); the same bytes from the same peer within
      ``SENDER_RECORD_REUSE_S`` are accepted as already verified;
    - still refuses the RPC when the record is malformed, wrongly signed, names another peer or
      is signed by a key other than the peer's (py-libp2p did not check the signing key);
    - does not drop the RPC when the peerstore merely refuses to store the record because it
      already holds a newer one (a lower ``seq`` after a reconnect): py-libp2p dropped the whole
      RPC then, messages and control included, although those are signed on their own.
    Idempotent."""
    import libp2p.pubsub.gossipsub as gossipsub_mod
    import libp2p.pubsub.pubsub as pubsub_mod
    from libp2p.peer.envelope import consume_envelope

    if getattr(pubsub_mod.maybe_consume_signed_record, "_wwwserve_cached", False):
        return
    seen: dict[ID, tuple[bytes, float]] = {}
    log = logging.getLogger("wwwserve_p2p.net")

    def consume(msg: rpc_pb2.RPC, host: Any, peer_id: ID) -> bool:
        if not msg.HasField("senderRecord"):
            return True
        raw = msg.senderRecord
        now = time.monotonic()
        hit = seen.get(peer_id)
        if hit is not None and hit[0] == raw and now - hit[1] < SENDER_RECORD_REUSE_S:
            return True
        try:
            envelope, record = consume_envelope(raw, "libp2p-peer-record")
        except Exception as exc:  # noqa: BLE001 - any parse or signature failure refuses the RPC
            log.debug("signed peer record from %s refused: %s", peer_id, exc)
            return False
        if record.peer_id != peer_id or ID.from_pubkey(envelope.public_key) != peer_id:
            return False  # (py-libp2p checked the record's peer id, not the key that signed it)
        try:
            host.get_peerstore().consume_peer_record(envelope, 7200)  # False: it holds a newer one
        except Exception as exc:  # noqa: BLE001 - the peerstore's failure is not the RPC's
            log.debug("peerstore did not take %s's record: %s", peer_id, exc)
        if peer_id not in seen and len(seen) >= SENDER_RECORD_CACHE:
            seen.pop(next(iter(seen)))
        seen[peer_id] = (raw, now)
        return True

    consume._wwwserve_cached = True  # type: ignore[attr-defined]
    pubsub_mod.maybe_consume_signed_record = consume  # type: ignore[assignment]
    gossipsub_mod.maybe_consume_signed_record = consume  # type: ignore[assignment]


class _CountingPriorityQueue(PriorityQueue):
    """py-libp2p's per-peer outbound queue, but a full queue is counted (it drops silently)."""

    def __init__(self, max_size: int, on_drop: Callable[[rpc_pb2.RPC], None]):
        super().__init__(max_size)
        self._on_drop = on_drop

    def push(self, rpc: rpc_pb2.RPC, priority: bool = False) -> bool:
        ok = super().push(rpc, priority)
        if not ok:
            self._on_drop(rpc)
        return ok


class _QueueSizingDict(dict):  # type: ignore[type-arg]
    """``Pubsub.peer_queues``: resizes each new per-peer queue as it is registered.

    ``Pubsub._handle_new_peer`` builds ``RpcQueue()`` with the size fixed at import time
    (``OutBoundQueueSize = 32``, bound as a default argument, so patching the constant does
    nothing); an RPC pushed to a full queue is dropped with a debug log only. We swap in an
    empty queue of ``size`` that counts drops, before anything is pushed.
    """

    def __init__(self, size: int, on_drop: Callable[[rpc_pb2.RPC], None]):
        super().__init__()
        self._size = size
        self._on_drop = on_drop

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, RpcQueue) and len(value) == 0:
            value._queue = _CountingPriorityQueue(self._size, self._on_drop)
        super().__setitem__(key, value)


class OverlayGossipSub(GossipSub):
    """py-libp2p ``GossipSub`` whose equivocation check keeps digests, not messages.

    ``GossipSub.publish`` remembers every message it forwards under (author, seqno), up to
    ~1000 entries, to spot an author reusing a seqno for different content: with a 256 KiB
    cap that is up to ~256 MiB of payloads. A SHA-256 of (data, topics) detects the same.
    """

    def _check_equivocation(self, msg: rpc_pb2.Message) -> bool:
        key = msg.from_id + msg.seqno
        digest = hashlib.sha256(msg.data)
        for topic in msg.topicIDs:
            digest.update(b"\x00" + topic.encode("utf-8"))
        value = digest.digest()
        seen = self.equivocation_detection.get(key)
        if seen is None:
            self.equivocation_detection[key] = value  # type: ignore[assignment]
            return True
        if seen != value:
            log.debug("equivocation: %s reused seqno %s for different content", ID(msg.from_id), msg.seqno.hex())
            return False
        return True


class OverlayPubsub(Pubsub):
    """py-libp2p ``Pubsub`` with the hooks the overlay needs.

    - ``notify_subscriptions`` (delivery to local subscribers) calls ``deliver(msg,
      forwarder)`` instead of pushing into py-libp2p's 32-slot channels (which drop when full);
      the overlay filters out our own publishes there.
    - an exception while processing one inbound message (e.g. an undecodable key in a signed
      message raises out of ``signature_validator``) is counted and logged instead of
      escaping into the service. The catch is broad on purpose: this code runs inside
      py-libp2p's per-peer reader task, where *any* exception raised by remote input (the
      library does not document them) would end the service for every peer; each one is
      passed to ``on_bad_message`` (the overlay counts it as ``malformed`` and logs it).
    - per-peer outbound queues get ``outbound_queue_size`` slots and count drops.
    - a message whose signature check fails counts as an invalid message of its forwarder in
      the score (P4, like a rejected one) and in ``bad_signatures`` (issue 15: wrong-signature
      junk used to cost us a verification each and its sender nothing); messages dropped by the
      publish score gate (before any check) are counted in ``score_gated``.
    """

    def __init__(
        self,
        *args: Any,
        deliver: Callable[[rpc_pb2.Message, ID | None], None],
        on_bad_message: Callable[[ID, BaseException], None],
        outbound_queue_size: int,
        on_queue_drop: Callable[[rpc_pb2.RPC], None],
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._deliver = deliver
        self._on_bad_message = on_bad_message
        self.peer_queues = _QueueSizingDict(outbound_queue_size, on_queue_drop)
        #: Messages received from neighbours on our topics, duplicates included.
        self.inbound_messages = 0
        #: Inbound messages dropped because their signature was wrong.
        self.bad_signatures = 0
        #: Inbound messages dropped unverified: their forwarder's score is below the publish threshold.
        self.score_gated = 0
        _install_signature_counter()
        _install_sender_record_cache()

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if msg_forwarder != self.my_id:
            self.inbound_messages += 1
        scorer = getattr(self.router, "scorer", None)
        try:
            gated = msg_forwarder != self.my_id and scorer is not None \
                and not scorer.allow_publish(msg_forwarder, list(msg.topicIDs))
        except Exception:  # noqa: BLE001 - as py-libp2p's own gate: a scorer failure lets it through
            gated = False
        if gated:
            self.score_gated += 1  # py-libp2p's own gate would drop it, silently
            return
        token = _FORWARDER.set(msg_forwarder)
        bad = [False]
        sig_token = _BAD_SIGNATURE.set(bad)
        try:
            await super().push_msg(msg_forwarder, msg)
        except Exception as exc:  # broad on purpose: see the class docstring; counted and logged
            if msg_forwarder == self.my_id:
                raise
            self._on_bad_message(msg_forwarder, exc)
        finally:
            _BAD_SIGNATURE.reset(sig_token)
            _FORWARDER.reset(token)
        if bad[0] and msg_forwarder != self.my_id:
            self.bad_signatures += 1
            if scorer is not None:
                for topic in msg.topicIDs:
                    scorer.on_invalid_message(msg_forwarder, topic)

    def notify_subscriptions(self, publish_message: rpc_pb2.Message) -> None:
        self._deliver(publish_message, _FORWARDER.get())

    async def stream_handler(self, stream: Any) -> None:
        try:
            await super().stream_handler(stream)
        except Exception as exc:  # broad on purpose: one peer's input must not end the service
            peer_id = stream.muxed_conn.peer_id
            self._on_bad_message(peer_id, exc)
            await best_effort(f"resetting the pubsub stream of {peer_id}", stream.reset)
            self._handle_dead_peer(peer_id)


class ConnectionLogger(INotifee):
    """Passes connection events of one swarm to ``on_event(what, conn)`` (``what``:
    ``connected`` / ``disconnected``; ``conn``: the py-libp2p swarm connection)."""

    def __init__(self, on_event: Callable[[str, Any], None]):
        self._on_event = on_event

    async def opened_stream(self, network: Any, stream: Any) -> None:
        pass

    async def closed_stream(self, network: Any, stream: Any) -> None:
        pass

    async def connected(self, network: Any, conn: Any) -> None:
        self._peer_event("connected", conn)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._peer_event("disconnected", conn)

    async def listen(self, network: Any, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        pass

    def _peer_event(self, what: str, conn: Any) -> None:
        try:
            self._on_event(what, conn)
        except Exception as exc:  # a swarm notifee callback must never raise into the swarm
            log.debug("connection event %s: %r", what, exc)
