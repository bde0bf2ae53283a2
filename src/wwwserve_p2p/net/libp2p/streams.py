"""Streams over py-libp2p, and the one place where py-libp2p's exceptions become ours.

- :data:`LIBP2P_ERRORS` / :func:`map_errors`: every call into py-libp2p that can fail for a
  network reason runs inside ``with map_errors(what, SomeOverlayError):``; py-libp2p, trio
  resource and OS errors leave it as that error (a :class:`~wwwserve_p2p.errors.OverlayError`
  family member), the root cause in the message and the original chained as ``__cause__``.
  With ``deadline`` the block is also bounded and a timeout raises the same family.
- :func:`best_effort`: cleanup (close, reset) that must never raise.
- :class:`Libp2pStream`: an ``INetStream`` behind :class:`~wwwserve_p2p.net.base.Stream`.
- :class:`StreamService`: inbound handlers (one task and cancel scope each) and outbound opens.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.stream.exceptions import StreamEOF, StreamReset

from ...errors import DialError, OverlayError, StreamClosed
from ..base import Stream, StreamHandler
from ..config import Libp2pConfig

log = logging.getLogger("wwwserve_p2p.net")

#: What py-libp2p's calls raise for network reasons: its own error root (swarm, security,
#: muxer, stream, pubsub, DHT errors), trio's errors for a closed/broken channel or socket,
#: an internal ``fail_after`` expiring, and OS socket errors (refused, reset, timed out).
LIBP2P_ERRORS: tuple[type[BaseException], ...] = (
    BaseLibp2pError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError)


def root_cause(exc: BaseException) -> str:
    """A short human description of a (chained) exception: each distinct message along the
    ``__cause__`` / ``__context__`` chain, outermost first, at most 6."""
    seen: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 6:
        text = str(cur) or type(cur).__name__
        if text not in seen:
            seen.append(text)
        cur = cur.__cause__ or (cur.__context__ if not cur.__suppress_context__ else None)
    return "; ".join(seen)


@contextmanager
def map_errors(what: str, error: type[OverlayError] = OverlayError, *, deadline: float | None = None,
               also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run the block; turn a py-libp2p failure into ``error(f"{what}: {root cause}")``.

    ``what``: the operation, e.g. ``"cannot connect to /ip4/.../p2p/12D3..."``. ``error``:
    the :class:`OverlayError` subclass to raise (``DialError``, ``StreamClosed``, ...).
    ``deadline``: seconds; if the block runs longer it is cancelled and ``error(f"{what}:
    timed out after N s")`` is raised. ``also``: further exception types to map (e.g.
    ``ValueError`` from a stream's I/O). Our own errors (``WwwServeError``) pass through
    unchanged, and so does anything not listed (a bug should surface as itself).
    """
    caught = LIBP2P_ERRORS + also
    try:
        if deadline is None:
            yield
            return
        with trio.move_on_after(deadline) as scope:
            yield
    except caught as exc:
        raise error(f"{what}: {root_cause(exc)}") from exc
    if scope.cancelled_caught:
        raise error(f"{what}: timed out after {deadline:g} s")


async def best_effort(what: str, fn: Callable[[], Awaitable[Any]], level: int = logging.DEBUG) -> None:
    """Await ``fn()``; log instead of raising. For cleanup on close/abort paths.

    A known py-libp2p failure (:data:`LIBP2P_ERRORS`) is logged at ``level``. The second,
    broad catch stays on purpose: cleanup runs on shutdown and error paths, which must
    complete (``Stream.close``/``reset`` are documented never to raise), so an unexpected
    exception type is logged at WARNING with its traceback instead (and should then get a
    named entry in :data:`LIBP2P_ERRORS`).
    """
    try:
        await fn()
    except LIBP2P_ERRORS as exc:
        log.log(level, "%s: %r", what, exc)
    except Exception as exc:  # must never raise: see the docstring
        log.warning("%s: unexpected %r", what, exc, exc_info=True)


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
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        with map_errors(f"stream {self.protocol} with {self.remote_peer} failed", StreamClosed, also=(ValueError,)):
            try:
                return bytes(await self._s.read(max_bytes))
            except StreamEOF:
                return b""
            except StreamReset as exc:
                raise StreamClosed(f"stream {self.protocol} with {self.remote_peer} was reset") from exc

    async def write(self, data: bytes) -> None:
        with map_errors(f"stream {self.protocol} to {self.remote_peer} is closed", StreamClosed, also=(ValueError,)):
            await self._s.write(bytes(data))

    async def close(self) -> None:
        # NetStream.close() half-closes (yamux FIN; reads stay possible) and releases the
        # stream's resource-manager slot.
        if self._done:
            return
        self._done = True
        await best_effort(f"closing stream {self.protocol} to {self.remote_peer}", self._s.close)

    async def reset(self) -> None:
        self._done = True
        await best_effort(f"resetting stream {self.protocol} to {self.remote_peer}", self._s.reset)


#: Inbound stream limits (issue 15): concurrent streams per (peer, protocol), per protocol
#: and in all; seconds an inbound stream's read may wait for data before the stream is
#: closed as idle. py-libp2p 0.8.1's resource manager (``libp2p.rcmgr``) counts streams per
#: peer but has no per-protocol scope, its ``max_streams`` semaphore also gates our *own*
#: outbound opens, and it never sheds an idle stream, so the limits live here.
MAX_INBOUND_PER_PEER_PROTOCOL = 32
MAX_INBOUND_PER_PROTOCOL = 256
MAX_INBOUND_STREAMS = 1024
INBOUND_IDLE_TIMEOUT = 30.0


class IdleClosingStream(Libp2pStream):
    """An inbound stream whose every read waits at most ``idle_timeout`` seconds for data;
    then it raises :class:`StreamClosed` (the handler ends, the stream is reset)."""

    def __init__(self, net_stream: Any, remote_peer: str, protocol: str, idle_timeout: float,
                 on_idle: Callable[[], None]):
        super().__init__(net_stream, remote_peer, protocol)
        self._idle_timeout = idle_timeout
        self._on_idle = on_idle

    async def read(self, max_bytes: int = 65536) -> bytes:
        with trio.move_on_after(self._idle_timeout) as scope:
            return await super().read(max_bytes)
        if scope.cancelled_caught:
            self._on_idle()
        raise StreamClosed(f"inbound {self.protocol} from {self.remote_peer} idle for {self._idle_timeout:g} s; "
                           "closed")


class StreamService:
    """Inbound stream handlers and outbound stream opens of one host.

    ``dial(pid, what)`` ensures a connection (raises ``DialError``); ``is_open()`` says
    whether the overlay still serves; ``stats`` counts ``streams_inbound`` / ``_outbound``,
    ``streams_refused`` and ``streams_idle_closed``.

    Inbound limits: at most ``per_peer_protocol`` concurrent streams of one protocol from
    one peer, ``per_protocol`` of one protocol and ``total`` in all; a stream beyond a limit
    is reset at once (before its handler runs) and counted under its reason in
    :attr:`refused` (``peer_protocol``, ``protocol``, ``total``), with one log line per peer,
    protocol and reason a minute. Each read of an inbound stream waits at most
    ``idle_timeout`` seconds (:class:`IdleClosingStream`).
    """

    def __init__(self, host: Any, config: Libp2pConfig, stats: Counter[str],
                 dial: Callable[[Any, str], Awaitable[None]], is_open: Callable[[], bool], *,
                 per_peer_protocol: int = MAX_INBOUND_PER_PEER_PROTOCOL, per_protocol: int = MAX_INBOUND_PER_PROTOCOL,
                 total: int = MAX_INBOUND_STREAMS, idle_timeout: float = INBOUND_IDLE_TIMEOUT):
        self._host = host
        self._config = config
        self._stats = stats
        self._dial = dial
        self._is_open = is_open
        self._handlers: dict[str, StreamHandler] = {}
        self._scopes: set[trio.CancelScope] = set()
        self.per_peer_protocol, self.per_protocol, self.total = per_peer_protocol, per_protocol, total
        self.idle_timeout = idle_timeout
        self._open_by_peer: Counter[tuple[str, str]] = Counter()
        self._open_by_protocol: Counter[str] = Counter()
        self._open_total = 0
        self.refused: Counter[str] = Counter()
        self._logged: dict[tuple[str, str, str], float] = {}

    def _refusal(self, remote: str, protocol: str) -> str | None:
        if self._open_total >= self.total:
            return "total"
        if self._open_by_protocol[protocol] >= self.per_protocol:
            return "protocol"
        if self._open_by_peer[(remote, protocol)] >= self.per_peer_protocol:
            return "peer_protocol"
        return None

    def _log_refusal(self, remote: str, protocol: str, reason: str) -> None:
        now = trio.current_time()
        key = (remote, protocol, reason)
        if now - self._logged.get(key, -1e9) < 60.0:
            return
        if len(self._logged) >= 4096:
            self._logged.clear()
        self._logged[key] = now
        limit = {"total": self.total, "protocol": self.per_protocol, "peer_protocol": self.per_peer_protocol}[reason]
        log.info("refusing inbound %s streams from %s: %s limit of %d concurrent streams reached", protocol,
                 remote, reason.replace("_", "+"), limit)

    def open_inbound(self) -> dict[str, Any]:
        """Inbound streams open now: ``total`` and ``by_protocol``."""
        return {"total": self._open_total, "by_protocol": {p: n for p, n in self._open_by_protocol.items() if n}}

    def cancel_handlers(self) -> None:
        """Cancel every running inbound handler (their streams are reset)."""
        for scope in list(self._scopes):
            scope.cancel()

    def set_handler(self, protocol: str, handler: StreamHandler) -> None:
        """See :meth:`Libp2pOverlay.set_stream_handler`."""
        if not isinstance(protocol, str) or not protocol.startswith("/"):
            raise OverlayError(f"a protocol id starts with '/': {protocol!r}")
        self._handlers[protocol] = handler

        def on_idle() -> None:
            self._stats["streams_idle_closed"] += 1

        async def libp2p_handler(net_stream: Any) -> None:
            remote = net_stream.muxed_conn.peer_id.to_base58()
            stream = IdleClosingStream(net_stream, remote, protocol, self.idle_timeout, on_idle)
            current = self._handlers.get(protocol)
            if current is None or not self._is_open():
                await stream.reset()
                return
            reason = self._refusal(remote, protocol)
            if reason is not None:
                self.refused[reason] += 1
                self._stats["streams_refused"] += 1
                self._log_refusal(remote, protocol, reason)
                await stream.reset()
                return
            key = (remote, protocol)
            self._open_by_peer[key] += 1
            self._open_by_protocol[protocol] += 1
            self._open_total += 1
            try:
                await self._run_handler(current, stream, protocol, remote)
            finally:
                self._open_total -= 1
                self._open_by_protocol[protocol] -= 1
                self._open_by_peer[key] -= 1
                if self._open_by_peer[key] <= 0:
                    del self._open_by_peer[key]

        self._host.set_stream_handler(TProtocol(protocol), libp2p_handler)

    async def _run_handler(self, current: StreamHandler, stream: Libp2pStream, protocol: str, remote: str) -> None:
        self._stats["streams_inbound"] += 1
        log.debug("inbound %s from %s: handler starts", protocol, remote)
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await current(stream)
            except StreamClosed as exc:  # the remote went away, or the stream idled out
                log.debug("inbound %s from %s ended: %s", protocol, remote, exc)
                with trio.CancelScope(shield=True):
                    await stream.reset()
                return
            except Exception as exc:  # the service's handler: any bug resets only its stream
                log.warning("handler for %s from %s raised %r; resetting the stream", protocol, remote, exc,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                with trio.CancelScope(shield=True):
                    await stream.reset()
                return
            finally:
                self._scopes.discard(scope)
        if scope.cancelled_caught:
            with trio.CancelScope(shield=True):
                await stream.reset()
        else:
            await stream.close()

    async def open(self, pid: Any, peer_id: str, protocol: str) -> Libp2pStream:
        """See :meth:`Libp2pOverlay.open_stream` (``pid`` is ``peer_id`` parsed)."""
        what = f"cannot open {protocol} to {peer_id}"
        with map_errors(what, DialError, deadline=self._config.dial_timeout):
            if not self._host.get_network().get_connections(pid):
                await self._dial(pid, peer_id)
            net_stream = await self._host.new_stream(pid, [TProtocol(protocol)])
        self._stats["streams_outbound"] += 1
        return Libp2pStream(net_stream, peer_id, protocol)
