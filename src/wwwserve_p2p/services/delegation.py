"""The ``/wwwserve/delegate/1`` stream protocol, both sides.

Exchange (each arrow one length-prefixed protobuf frame, see :mod:`wwwserve_p2p.wire`)::

    requester                          executor
      DelegateRequest  ------------->
                       <-------------  Offer{accepted, reason, load}     (the probe answer)
      DelegateDecision{commit} ----->                                   (only if accepted)
                       <-------------  Chunk* then Final | Error

A requester probes ``k + probe_extra`` stake-selected candidates in parallel, commits to
the first that accepts and sends ``commit=false`` to the rest. In a duel (DESIGN §6) it
commits to the first two, both commits carrying the signed
:class:`~wwwserve_p2p.core.ledger.DuelTicket`, and each executor sends its signed
:class:`~wwwserve_p2p.core.ledger.Receipt` (``sha256`` of its answer) in one more frame after
the final one (see :mod:`wwwserve_p2p.services.duel`). The commit carries the
requester's signed :class:`~wwwserve_p2p.core.ledger.Ticket`; the executor checks it (and
that the requester is not in debt), serves, and after the final frame queues a
:class:`~wwwserve_p2p.core.ledger.Claim` for its next block. A requester whose attempt fails
or is cancelled voids the ticket instead, so it is never claimable. After the commit the
requester keeps its side open; closing or resetting it cancels the remote generation. An
accepted-but-uncommitted offer holds a delegated slot for at most ``commit_timeout``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import trio

from ..core.ledger import Claim, DuelTicket, Receipt, Ticket
from ..core.types import ErrorReply, GenerationChunk, GenerationRequest, Offer
from ..errors import (
    ExecutorError,
    InvalidRequest,
    MalformedMessage,
    ModelNotFound,
    OverlayError,
    RemoteError,
    RequestTimeout,
    StorageError,
    WwwServeError,
)
from ..net.base import Stream
from ..wire import codec
from ..wire.framing import FrameReader, frame

if TYPE_CHECKING:
    from ..node import Node

PROTOCOL = "/wwwserve/delegate/1"
log = logging.getLogger("wwwserve_p2p.delegation")


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ModelNotFound):
        return "model_not_found"
    if isinstance(exc, InvalidRequest):
        return "invalid_request"
    return "executor_error"


# ------------------------------------------------------------------ executor side

async def serve_delegate_stream(node: "Node", stream: Stream) -> None:
    """Handle one inbound delegation stream (registered as the protocol handler)."""
    cfg = node.config.delegation
    reader = FrameReader(stream, cfg.max_frame)
    try:
        data = await reader.read_frame(cfg.probe_timeout)
        if data is None:
            return
        request, network_id, timeout_ms = codec.decode_request(data)
    except MalformedMessage as exc:
        node.metrics.delegated.labels("malformed").inc()
        log.warning("malformed delegation request from %s: %s", stream.remote_peer, exc)
        await _try_write(stream, ErrorReply("malformed", str(exc)))
        return
    except (RequestTimeout, OverlayError):
        return
    if network_id != node.network_id:
        await _try_write(stream, ErrorReply("wrong_network", f"this node is on network {node.network_id}"))
        return

    accepted, reason = node.decide_accept(request.model, stream.remote_peer)
    load = node.executor.load().load
    if not await _try_write(stream, Offer(accepted, reason, load)):
        return
    if not accepted:
        node.metrics.delegated.labels("rejected").inc()
        return
    node.delegated_running += 1  # the slot is held from the offer on
    try:
        ticket: Ticket | None = None
        duel: DuelTicket | None = None
        try:
            decision = await reader.read_frame(cfg.commit_timeout)
            commit, ticket, duel = codec.decode_decision(decision) if decision is not None else (False, None, None)
        except (MalformedMessage, RequestTimeout, OverlayError):
            commit = False
        if not commit:
            node.metrics.delegated.labels("withdrawn").inc()
            return
        problem = node.check_ticket(ticket, stream.remote_peer, node.ledger.params.price(request.max_tokens))
        if not problem and duel is not None:
            problem = node.check_duel(duel, stream.remote_peer)
        if problem or ticket is None:
            node.metrics.delegated.labels("bad_ticket").inc()
            log.warning("refusing %s from %s: %s", request.request_id, stream.remote_peer, problem)
            await _try_write(stream, ErrorReply("bad_ticket", problem))
            return
        node.metrics.delegated.labels("accepted").inc()
        node.stats.accepted_for_others += 1
        log.info("executing %s for %s (model %s)", request.request_id, stream.remote_peer, request.model)
        served = await _execute_for_peer(node, stream, reader, request)
        if served is not None:
            _claim(node, ticket, *served)
            if duel is not None:  # our consent to the duel: the bond is at risk from here on
                receipt = Receipt(node.peer_id, duel.hash, answer_digest(served[0])).signed(node.identity.sign)
                await _try_write(stream, receipt)
    finally:
        node.delegated_running -= 1
        node.status_changed()


def _claim(node: "Node", ticket: Ticket, text: str, completion_tokens: int) -> None:
    """Queue the claim for a request we served completely (price per DESIGN §4 / LedgerParams)."""
    claim_ticket(node, ticket, min(ticket.price, node.ledger.params.price(completion_tokens)), answer_digest(text))


def answer_digest(text: str) -> str:
    """SHA-256 (hex) of an answer's UTF-8 text: what claims and duel receipts commit to."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def claim_ticket(node: "Node", ticket: Ticket, amount: int, response_digest: str) -> None:
    """Queue a :class:`Claim` of ``amount`` micro-credits on ``ticket`` for our next block."""
    node.metrics.ledger_earned.inc()
    try:
        node.ledger_service.submit(f"claim:{ticket.hash}", Claim(ticket, response_digest, amount))
    except StorageError as exc:
        log.error("claim for %s queued but not persisted: %s", ticket.request_id, exc)


async def _execute_for_peer(node: "Node", stream: Stream, reader: FrameReader,
                            request: GenerationRequest) -> tuple[str, int] | None:
    """Run ``request`` and stream it back. Returns (full text, completion tokens) when the final
    frame was written, None otherwise."""
    start = trio.current_time()
    served: tuple[str, int] | None = None
    async with trio.open_nursery() as nursery:

        async def watch_requester() -> None:
            # After commit the requester sends nothing; EOF or reset means it gave up.
            try:
                why = f"read {await stream.read(1)!r}"
            except OverlayError as exc:
                why = str(exc)
            log.info("requester of %s went away (%s); cancelling", request.request_id, why)
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_requester)
        try:
            gen = node.executor.generate(request)
            parts: list[str] = []
            try:
                async for chunk in gen:
                    if chunk.is_final and chunk.usage:
                        node.metrics.tokens.inc(chunk.usage.completion_tokens)
                    await stream.write(frame(codec.encode_reply(chunk)))
                    parts.append(chunk.text)
                    if chunk.is_final:
                        served = ("".join(parts), chunk.usage.completion_tokens if chunk.usage else len(parts))
            finally:
                await gen.aclose()
        except OverlayError as exc:
            log.warning("stream to %s broke while serving %s: %s", stream.remote_peer, request.request_id, exc)
        except (ExecutorError, WwwServeError) as exc:
            await _try_write(stream, ErrorReply(_error_code(exc), str(exc)))
        nursery.cancel_scope.cancel()
    node.stats.record_served_for_peer(trio.current_time() - start)
    return served


async def _try_write(stream: Stream, reply) -> bool:
    try:
        await stream.write(frame(codec.encode_reply(reply)))
        return True
    except OverlayError:
        return False


# ------------------------------------------------------------------ requester side

@dataclass
class _Probe:
    peer_id: str
    stream: Stream
    reader: FrameReader


class DelegationAttempt:
    """A committed delegation: iterate :meth:`chunks`, then :meth:`aclose`.

    In a duel, ``duel`` is the signed duel ticket and ``partner`` (on the attempt that streams
    to the user) the other duelist's attempt; after the final chunk, :meth:`receipt` reads the
    executor's signed receipt."""

    def __init__(self, node: "Node", probe: _Probe, ticket: Ticket, duel: DuelTicket | None = None):
        self.node = node
        self.peer_id = probe.peer_id
        self.ticket = ticket
        self.duel = duel
        self.partner: DelegationAttempt | None = None
        self._probe = probe

    async def receipt(self, timeout: float) -> Receipt:
        """The executor's duel receipt, the frame after the final chunk.

        :raises RemoteError, MalformedMessage, RequestTimeout, OverlayError: no receipt came.
        """
        reply = await self._next_reply(timeout, "a duel receipt")
        if not isinstance(reply, Receipt):
            raise MalformedMessage(f"expected a duel receipt, got {type(reply).__name__}")
        return reply

    async def _next_reply(self, timeout: float, what: str):
        """The next frame, decoded; an executor's error frame raises :class:`RemoteError`."""
        data = await self._probe.reader.read_frame(timeout)
        if data is None:
            raise MalformedMessage(f"executor closed the stream before {what}")
        reply = codec.decode_reply(data)
        if isinstance(reply, ErrorReply):
            raise RemoteError(reply.code, reply.message)
        return reply

    async def chunks(self) -> AsyncIterator[GenerationChunk]:
        """Stream the executor's chunks; the last has ``finish_reason`` set.

        :raises RemoteError: the executor reported an error (``code`` says which).
        :raises RequestTimeout: no chunk within the deadline (``may_have_processed=True``).
        :raises MalformedMessage, OverlayError: the stream broke or carried garbage.
        """
        cfg = self.node.config.delegation
        timeout = cfg.first_token_timeout
        while True:
            reply = await self._next_reply(timeout, "the final frame")
            if not isinstance(reply, GenerationChunk):
                raise MalformedMessage(f"unexpected {type(reply).__name__} before the final chunk")
            yield reply
            if reply.is_final:
                return
            timeout = cfg.chunk_timeout

    async def aclose(self, *, abort: bool = False) -> None:
        if abort:
            await self._probe.stream.reset()
        else:
            await self._probe.stream.close()


async def probe_and_commit(node: "Node", request: GenerationRequest, candidates: list[str],
                           make_ticket: Callable[[str], Ticket],
                           make_duel: Callable[[str, str], DuelTicket | None] | None = None,
                           ) -> DelegationAttempt | None:
    """Probe ``candidates`` in parallel; commit to the first that accepts, sending it the ticket
    ``make_ticket(peer_id)``.

    With ``make_duel``, wait up to ``duel.probe_grace`` after the first acceptance for a second;
    if one comes and ``make_duel(first, second)`` returns a duel ticket, commit to both with it:
    the first is returned, the second is its ``partner``.

    Returns None when none accepted within ``probe_timeout``. Refusals and failures of
    individual candidates are logged, never raised.
    """
    cfg = node.config.delegation
    want = 2 if make_duel is not None else 1
    payload = frame(codec.encode_request(request, node.network_id, int(cfg.first_token_timeout * 1000)))
    # Probes run in the node's nursery and are never cancelled half-way: cancelling a stream
    # open while its connection is being set up tears that connection down, and with it every
    # other stream to the peer. A probe that is accepted after we decided declines itself.
    results_send, results = trio.open_memory_channel[_Probe | None](len(candidates))
    decided = False

    async def probe(peer_id: str) -> None:
        stream: Stream | None = None
        accepted: _Probe | None = None
        try:
            with trio.fail_after(cfg.probe_timeout + 0.5):
                stream = await node.overlay.open_stream(peer_id, PROTOCOL)
                await stream.write(payload)
                reader = FrameReader(stream, cfg.max_frame)
                data = await reader.read_frame(cfg.probe_timeout)
            reply = codec.decode_reply(data) if data is not None else ErrorReply("eof", "closed")
            if isinstance(reply, Offer) and reply.accepted:
                accepted = _Probe(peer_id, stream, reader)
            else:
                reason = reply.reason if isinstance(reply, Offer) else f"{reply.code}: {reply.message}"
                log.debug("%s refused %s: %s", peer_id, request.request_id, reason)
                await stream.close()
        except (WwwServeError, trio.TooSlowError) as exc:
            log.debug("probe of %s failed: %s", peer_id, exc or "timeout")
            if isinstance(exc, OverlayError):
                node.peer_unreachable(peer_id)
            if stream is not None:
                await stream.reset()
        except trio.Cancelled:  # the node is shutting down
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.reset()
            raise
        finally:
            if accepted is not None and decided:
                with trio.CancelScope(shield=True):
                    await _send_decision(accepted, False)  # too late: we already chose
                accepted = None
            results_send.send_nowait(accepted)

    losers: list[_Probe] = []
    try:
        if node._nursery is not None:
            for pid in candidates:
                node._nursery.start_soon(probe, pid)
        else:  # not running inside open_node (direct use): probe in a nursery of our own
            async with trio.open_nursery() as nursery:
                for pid in candidates:
                    nursery.start_soon(probe, pid)
        winner = await _first_accepted(results, len(candidates), want, cfg.probe_timeout + 0.5,
                                       node.config.duel.probe_grace)
    finally:
        decided = True  # from here on, a probe accepted late declines itself
        while True:  # accepted but not (or no longer) wanted
            try:
                late = results.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if late is not None:
                losers.append(late)
        if node._nursery is not None:
            for p in losers:  # background: declining must not delay the winner's commit
                node._nursery.start_soon(_send_decision, p, False)
            losers.clear()
    duel = make_duel(winner[0].peer_id, winner[1].peer_id) if len(winner) == 2 and make_duel else None
    if len(winner) == 2 and duel is None:
        losers.append(winner.pop())
    for p in losers:
        await _send_decision(p, False)
    if not winner:
        return None
    ticket = make_ticket(winner[0].peer_id)
    if not await _send_decision(winner[0], True, ticket, duel):
        if len(winner) == 2:
            await _send_decision(winner[1], False)
        return None  # never delivered: nothing to void
    attempt = DelegationAttempt(node, winner[0], ticket, duel)
    if duel is not None:
        partner_ticket = make_ticket(winner[1].peer_id)
        if await _send_decision(winner[1], True, partner_ticket, duel):
            attempt.partner = DelegationAttempt(node, winner[1], partner_ticket, duel)
    return attempt


async def _first_accepted(results: trio.MemoryReceiveChannel, n: int, want: int, timeout: float,
                          grace: float) -> list[_Probe]:
    """Up to ``want`` accepted probes from ``results`` (one item per probe: a probe or None),
    waiting at most ``timeout`` for the first and ``grace`` more for the rest."""
    got: list[_Probe] = []
    seen = 0
    with trio.move_on_after(timeout) as scope:
        while seen < n and len(got) < want:
            item = await results.receive()
            seen += 1
            if item is not None:
                got.append(item)
                if len(got) < want:
                    scope.deadline = min(scope.deadline, trio.current_time() + grace)
    return got


async def _send_decision(p: _Probe, commit: bool, ticket: Ticket | None = None,
                         duel: DuelTicket | None = None) -> bool:
    try:
        await p.stream.write(frame(codec.encode_decision(commit, ticket, duel)))
        if not commit:
            await p.stream.close()
        return True
    except OverlayError:
        await p.stream.reset()
        return False


def continuation_request(request: GenerationRequest, delivered: str, delivered_chunks: int, failed_peer: str) -> GenerationRequest:
    """The request to re-dispatch after an executor failed mid-answer.

    ``delivered``: text already streamed to the user (becomes the continuation);
    ``delivered_chunks``: chunks already received, subtracted from ``max_tokens`` (each
    streamed chunk carries at least one token); ``failed_peer`` joins the route so it is
    not chosen again.
    """
    remaining = max(1, request.max_tokens - delivered_chunks)
    return replace(request, continuation=request.continuation + delivered, max_tokens=remaining,
                   route=request.route + (failed_peer,))
