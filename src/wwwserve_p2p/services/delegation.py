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

Two services: :class:`DelegationServer` (executor side: owns the accept decision and the
delegated slots) and :class:`Requester` (our users' requests: owns the in-flight attempts and
performs the actions of the pure :class:`~wwwserve_p2p.core.dispatch.Dispatch` machine).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import trio

from ..config import DelegationSection
from ..core.acceptance import answer_digest, check_duel_ticket
from ..core.dispatch import (
    Candidate,
    Dispatch,
    is_busy_refusal,
    DispatchLimits,
    DispatchView,
    GiveUp,
    OfferView,
    Probe,
    QueueFull,
    RunLocal,
    Variates,
    Wait,
    WaitQueue,
)
from ..core.acceptance import MIN_VALIDITY_MS
from ..core.ledger import DuelBond, DuelTicket, Receipt, Signer, Ticket
from ..core.offers import Lease, OfferBook, OfferLimits
from ..core.reputation import Reputation, first_token_deadline
from ..core.peers import PeerEvent
from ..core.policy import OffloadPolicy, decide_accept, expected_load_after
from ..core.types import ErrorReply, GenerationChunk, GenerationRequest, Offer, PeerStatus, RoutedChunk
from ..errors import (
    StorageError,
    ExecutorError,
    InvalidRequest,
    MalformedMessage,
    ModelNotFound,
    NoExecutorAvailable,
    OverlayError,
    RemoteError,
    RequestTimeout,
    WwwServeError,
)
from ..executors.base import Executor
from ..metrics import NodeMetrics
from ..net.base import Overlay, Stream
from ..wire import codec
from ..wire.framing import FrameReader, frame
from .ledger import LedgerService
from .membership import Membership
from .runtime import Runtime
from .stats import NodeStats
from .tickets import CHANNEL_WAIT_S, TicketDesk

PROTOCOL = "/wwwserve/delegate/1"
log = logging.getLogger("wwwserve_p2p.delegation")

#: Remote error codes after which another executor may succeed.
RETRYABLE_CODES = frozenset({"executor_error", "overloaded", "eof", "bad_ticket"})


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, ModelNotFound):
        return "model_not_found"
    if isinstance(exc, InvalidRequest):
        return "invalid_request"
    return "executor_error"


async def _try_write(stream: Stream, reply) -> bool:
    try:
        await stream.write(frame(codec.encode_reply(reply)))
        return True
    except OverlayError:
        return False


# ------------------------------------------------------------------ executor slots

#: weight of the newest observation in the speed estimates (exponential moving average)
SPEED_EWMA = 0.2


class SlotBook:
    """Who holds our executor's slots, shared by the :class:`DelegationServer` and the
    :class:`Requester` of one node (late binding and acceptance by capacity, issue 12):
    ``local`` = our users' requests started on the executor, ``delegated()`` = slots held for
    peers' accepted offers and their runs, ``users_waiting()`` = our users' requests waiting for
    a slot. Also the executor's speed as its Offers state it: exponential moving averages of the
    time to first token (``ttft_s``) and per output token (``s_per_token``), seconds.
    ``on_free`` callbacks run (synchronously, must not block) whenever a slot is released.

    What an Offer states as its time to first token is :meth:`expected_ttft` for that request:
    everything ahead of its first token, not only the model's speed (issue 15). Under acceptance
    by capacity an executor never accepts with work queued ahead (a slot is free, nothing waits),
    so what is ahead after the commit is measured instead: ``lead_s``, the moving average of
    commit-read-to-first-chunk-written of our delegated runs (ticket checks, the wait for a
    first voucher's OpenChannel block, the executor's own queue, which a shared upstream or
    scoring can fill, and the prefill), and ``size_slope_s``, how much longer it takes per unit of
    prompt size (:func:`prompt_size`) beyond the average prompt, since prefill grows with the
    prompt (an exponentially weighted linear regression of each run's time to first token on its
    prompt size; 0 until prompts of different sizes were seen)."""

    def __init__(self, executor: Executor, delegated: Callable[[], int] = lambda: 0):
        self.executor = executor
        self.delegated = delegated
        self.local = 0
        self.users_waiting: Callable[[], int] = lambda: 0
        self.ttft_s = 0.0
        self.s_per_token = 0.0
        #: s from reading a commit to writing the first chunk (delegated runs; moving average)
        self.lead_s = 0.0
        #: exponentially weighted regression of time to first token on prompt size: means of
        #: size and time, variance of size, covariance (see :meth:`_fit`)
        self._fit_state = (0.0, 0.0, 0.0, 0.0, 0)
        self.on_free: list[Callable[[], None]] = []
        #: prompt sizes (:func:`prompt_size`) of the runs on our executor that have not produced
        #: their first token yet: their prefill is ahead of a new request's (issue 12)
        self.prefilling = 0

    def used(self) -> int:
        """Slots in use or reserved: the larger of our own count and the executor's."""
        ld = self.executor.load()
        return max(self.local + self.delegated(), ld.running + ld.queued)

    def held(self) -> int:
        """Slots reserved but not (yet) visible in the executor's load."""
        ld = self.executor.load()
        return max(0, self.local + self.delegated() - ld.running - ld.queued)

    def free(self) -> int:
        """Slots a new request can start in now (0 while the KV cache is full)."""
        ld = self.executor.load()
        if ld.kv_usage >= 1.0:
            return 0
        return max(0, ld.capacity - self.used())

    def observe(self, ttft_s: float | None, s_per_token: float | None, size: int = 0) -> None:
        """One run's measured time to first token and per output token (None: not measured);
        ``size``: its :func:`prompt_size` (0: unknown)."""
        if ttft_s is not None and ttft_s >= 0:
            self.ttft_s = _ewma(self.ttft_s, ttft_s)
            self._fit(size, ttft_s)
        if s_per_token is not None and s_per_token >= 0:
            self.s_per_token = _ewma(self.s_per_token, s_per_token)

    def observe_lead(self, lead_s: float, size: int = 0) -> None:
        """One delegated run's time from reading the commit to writing its first chunk (s)."""
        if lead_s >= 0 and math.isfinite(lead_s):
            self.lead_s = _ewma(self.lead_s, lead_s)
            self._fit(size, lead_s)

    def _fit(self, size: int, seconds: float) -> None:
        if size <= 0:
            return
        mx, my, vx, cxy, n = self._fit_state
        if n == 0:
            self._fit_state = (float(size), seconds, 0.0, 0.0, 1)
            return
        dx, dy = size - mx, seconds - my
        a = SPEED_EWMA
        self._fit_state = (mx + a * dx, my + a * dy, (1 - a) * (vx + a * dx * dx), (1 - a) * (cxy + a * dx * dy), n + 1)

    @property
    def size_slope_s(self) -> float:
        """s of time to first token per unit of prompt size (>= 0; 0 until sizes varied)."""
        mx, _my, vx, cxy, _n = self._fit_state
        return max(0.0, cxy / vx) if vx > 1e-9 * max(1.0, mx * mx) else 0.0

    def expected_ttft(self, size: int = 0) -> float:
        """What our Offer for a request of prompt size ``size`` states as its time to first
        token (s; 0 = unknown): the larger of our measured time to first token and commit lead
        (moving averages), plus ``size_slope_s`` per unit of prompt size beyond the average
        prompt's (a prompt longer than usual takes longer to prefill; a shorter one is not
        promised less than the average) and per unit of :attr:`prefilling` (prompts ahead)."""
        base = max(self.ttft_s, self.lead_s)
        if base <= 0:
            return 0.0
        # what is ahead: engines prefill prompts oldest first (chunked prefill), so the runs
        # still before their first token delay this one's (issue 12: without it an honest busy
        # executor missed its derived deadline ~1 % of the time and reputation left it out)
        extra = self.size_slope_s * (max(0.0, size - self._fit_state[0]) + self.prefilling)
        return min(1e5, base + extra)

    def freed(self) -> None:
        for fn in list(self.on_free):
            fn()


def _ewma(old: float, sample: float) -> float:
    return sample if old == 0 else (1 - SPEED_EWMA) * old + SPEED_EWMA * sample


def prompt_size(request: GenerationRequest) -> int:
    """A request's prompt size for speed estimates: characters of its prompt text plus 4 per
    prompt token id (only ratios between requests matter; >= 1)."""
    return max(1, len(request.prompt_text()) + 4 * len(request.prompt_ids))


class _SpeedMeter:
    """Measures one run: call :meth:`chunk` per chunk, then :meth:`report` (``size``: the
    request's :func:`prompt_size`). With ``book``, the run counts in ``book.prefilling`` until
    its first token or :meth:`close` (call it in a ``finally``)."""

    def __init__(self, size: int = 0, book: SlotBook | None = None) -> None:
        self.size = size
        self.t0 = trio.current_time()
        self.first: float | None = None
        self.n = 0
        self._book = book
        if book is not None:
            book.prefilling += size

    def chunk(self, text: str) -> None:
        if text:
            self.n += 1
            if self.first is None:
                self.first = trio.current_time()
                self.close()

    def close(self) -> None:
        """The run no longer prefills (its first token came, or it ended without one)."""
        if self._book is not None:
            self._book.prefilling -= self.size
            self._book = None

    def report(self, book: SlotBook, tokens: int | None) -> None:
        if self.first is None:
            return
        n = tokens if tokens else self.n
        per = (trio.current_time() - self.first) / (n - 1) if n > 1 else None
        book.observe(self.first - self.t0, per, self.size)


# ------------------------------------------------------------------ executor side

class DelegationServer:
    """Serves peers' delegation streams: decides on probes, checks tickets and duel tickets,
    runs the work, claims the ticket. Owns the count of delegated slots held (``running``).

    ``max_bond``: the largest duel bond we risk as an executor; ``on_change()``: our status
    changed (a slot was freed)."""

    def __init__(self, me: str, network_id: str, executor: Executor, policy: OffloadPolicy,
                 config: DelegationSection, tickets: TicketDesk, ledger: LedgerService, sign: Signer,
                 runtime: Runtime, rng: random.Random, metrics: NodeMetrics, stats: NodeStats, *,
                 max_bond: int, on_change: Callable[[], None] = lambda: None):
        self.me, self.network_id, self.executor, self.policy, self.config = me, network_id, executor, policy, config
        self.tickets, self.ledger, self._sign, self.runtime, self.rng = tickets, ledger, sign, runtime, rng
        self.metrics, self.stats, self.max_bond, self._on_change = metrics, stats, max_bond, on_change
        #: delegated requests we are committed to (executing or about to)
        self.running = 0
        #: offers we accepted whose requester has not decided yet, as short leases (issue 15: per
        #: requester limits, a small share for requesters without locked credit toward us, strikes
        #: for leases left to expire; see :mod:`~wwwserve_p2p.core.offers`). They hold no slot: a
        #: requester chooses among several acceptors, so most offers are withdrawn, and a commit
        #: that finds no slot left is refused ("overloaded": the requester decides again)
        self.offers = OfferBook(OfferLimits.for_slots(policy.max_delegated, config.commit_timeout))
        #: our executor's slots, shared with the node's Requester
        self.slots = SlotBook(executor, lambda: self.running)
        #: delegated requests committed to us that we never answered (``misbehave = "silent"``)
        self.silent_held = 0
        if config.misbehave:
            log.warning("delegation.misbehave = %r: this node deliberately misbehaves as an executor "
                        "(adversary experiments only)", config.misbehave)

    def accepting(self) -> bool:
        """Whether our status says we take delegated work now (acceptance by capacity: see
        :func:`~wwwserve_p2p.core.policy.decide_accept`)."""
        load = self.executor.load()
        if self.config.misbehave == "decline":  # adversary experiments: always claims spare slots
            return self.policy.participate
        return self.policy.participate and self.running < self.policy.max_delegated \
            and not self._offer_book().full() and self.slots.users_waiting() == 0 \
            and load.queued == 0 and self.slots.free() > 0 \
            and expected_load_after(load, self.slots.held()) <= self.policy.accept_load

    @property
    def pending(self) -> int:
        """Offers open now (accepted, the requester has not decided yet)."""
        return self.offers.open

    def _offer_book(self) -> OfferBook:
        """The offer book, its limits following the current policy's ``max_delegated``."""
        want = OfferLimits.for_slots(self.policy.max_delegated, self.config.commit_timeout)
        if want != self.offers.limits:
            self.offers.limits = want
        return self.offers

    def funded(self, requester: str, amount: int) -> bool:
        """Whether ``requester`` has locked credit toward us: a payment channel open toward us in
        our ledger view, not closed, valid for a while yet, with ``amount`` micro-credits of room
        (deposit minus what we claimed on it; the commit's voucher check is the exact one)."""
        led = self.ledger.ledger
        now = self.runtime.clock.wall_ms()
        for cid, info in led.channels_of(requester).items():
            if info.executor != self.me or info.expires_ms < now + MIN_VALIDITY_MS or led.channel_closed(requester, cid):
                continue
            if info.deposit - led.channel_claimed(self.me, cid)[1] >= amount:
                return True
        return False

    def decide(self, model: str, requester: str = "", max_tokens: int = 1) -> tuple[bool, str]:
        """Policy decision on a delegation probe for ``model`` from ``requester`` (who must be
        able to pay for ``max_tokens``, and within its share of our open offers)."""
        price = self.ledger.ledger.params.price(max_tokens)
        if requester and self.ledger.in_debt(requester):
            return False, "requester in debt"
        if requester and not self.ledger.can_afford(requester, price):
            return False, "requester cannot afford the ticket"
        if self.config.misbehave == "decline" and model in self.executor.models():
            return True, ""  # adversary experiments: accepts every probe (and declines the commit)
        why = self._offer_book().check(requester, bool(requester) and self.funded(requester, price),
                                       self.runtime.clock.monotonic())
        if why:
            self.offers.note_refusal(why)
            return False, why
        return decide_accept(self.executor.load(), self.running, model in self.executor.models(),
                             self.policy, self.rng.random(), held=self.slots.held(),
                             users_waiting=self.slots.users_waiting())

    async def serve_stream(self, stream: Stream) -> None:
        """Handle one inbound delegation stream (registered as the protocol handler)."""
        cfg = self.config
        reader = FrameReader(stream, cfg.max_frame)
        try:
            data = await reader.read_frame(cfg.probe_timeout, may_have_processed=False)
            if data is None:
                return
            request, network_id, _timeout_ms = codec.decode_request(data)
        except MalformedMessage as exc:
            self.metrics.delegated.labels("malformed").inc()
            log.warning("malformed delegation request from %s: %s", stream.remote_peer, exc)
            await _try_write(stream, ErrorReply("malformed", str(exc)))
            return
        except (RequestTimeout, OverlayError):
            return
        if network_id != self.network_id:
            await _try_write(stream, ErrorReply("wrong_network", f"this node is on network {self.network_id}"))
            return
        accepted, reason = self.decide(request.model, stream.remote_peer, request.max_tokens)
        if accepted and request.model in self.executor.models():
            problem = self.executor.unsupported(request)  # a parameter our executor cannot honour
            if problem is not None:
                accepted, reason = False, f"cannot honour {getattr(problem, 'param', None)}: {problem}"[:200]
        lease: Lease | None = None
        if accepted:
            got = self.offers.grant(stream.remote_peer, self.funded(
                stream.remote_peer, self.ledger.ledger.params.price(request.max_tokens)), self.runtime.clock.monotonic())
            if isinstance(got, str):
                accepted, reason = False, got
            else:
                lease = got
        held = ["pending" if accepted else ""]  # -> "running" on commit, "" when withdrawn
        try:
            # the time to first token we state is what is ahead of this request's first token
            offer = Offer(accepted, reason, self.executor.load().load,
                          self.slots.expected_ttft(prompt_size(request)), self.slots.s_per_token)
            if not await _try_write(stream, offer):
                return
            if not accepted:
                self.metrics.delegated.labels("rejected").inc()
                return
            await self._serve_committed(stream, reader, request, held, lease)
        finally:
            if lease is not None:  # the requester went away before deciding
                self.offers.end(lease, "withdrawn", self.runtime.clock.monotonic())
            if held[0] == "running":
                self.running -= 1
            if accepted:
                self._on_change()
                self.slots.freed()

    async def _serve_committed(self, stream: Stream, reader: FrameReader, request: GenerationRequest,
                               held: list[str] | None = None, lease: Lease | None = None) -> None:
        held = held if held is not None else [""]
        ticket: Ticket | None = None
        duel: DuelTicket | None = None
        outcome = "withdrawn"
        try:  # the offer's lease: a decision within commit_timeout, else it expires (a strike)
            decision = await reader.read_frame(self.config.commit_timeout, may_have_processed=False)
            commit, ticket, duel = codec.decode_decision(decision) if decision is not None else (False, None, None)
            outcome = "committed" if commit else "withdrawn"
        except (MalformedMessage, RequestTimeout):
            commit, outcome = False, "expired"
        except OverlayError:
            commit = False
        committed_at = trio.current_time()  # what is ahead of the first token starts here
        if lease is not None:
            self.offers.end(lease, outcome, self.runtime.clock.monotonic())
        held[0] = ""
        if not commit:
            self.metrics.delegated.labels("withdrawn").inc()
            return
        if self.running >= self.policy.max_delegated or self.slots.free() <= 0 or self.config.misbehave == "decline":
            # our slots filled while the requester chose: refuse before we take its ticket
            self.metrics.delegated.labels("overloaded").inc()
            await _try_write(stream, ErrorReply("overloaded", "no slot left for this commit"))
            return
        self.running += 1
        held[0] = "running"
        await self.tickets.await_channel(ticket)  # a first voucher may precede its OpenChannel block
        problem = self.tickets.accept(ticket, stream.remote_peer, self.ledger.ledger.params.price(request.max_tokens))
        if not problem and duel is not None:
            problem = check_duel_ticket(duel, network_id=self.network_id, requester=stream.remote_peer, me=self.me,
                                        max_bond=self.max_bond, now_ms=self.runtime.clock.wall_ms())
            if not problem and self.ledger.ledger.spendable(self.me) < duel.executor_bond:
                problem = f"we cannot lock the duel bond of {duel.executor_bond} micro-credits"
        if problem or ticket is None:
            self.metrics.delegated.labels("bad_ticket").inc()
            log.warning("refusing %s from %s: %s", request.request_id, stream.remote_peer, problem)
            await _try_write(stream, ErrorReply("bad_ticket", problem))
            return
        self.metrics.delegated.labels("accepted").inc()
        self.stats.accepted_for_others += 1
        log.info("executing %s for %s (model %s)", request.request_id, stream.remote_peer, request.model)
        if self.config.misbehave == "silent":  # adversary experiments: accept, never answer
            self.silent_held += 1
            try:
                await stream.read(1)  # until the requester gives up
            except OverlayError:
                pass
            return
        served = await self._execute(stream, request, committed_at)
        if served is not None:
            text, tokens = served
            self.tickets.claim(ticket, min(ticket.price, self.ledger.ledger.params.price(tokens)), answer_digest(text))
            if duel is not None:  # our consent to the duel: the bond is at risk from here on
                receipt = Receipt(self.me, duel.hash, answer_digest(text)).signed(self._sign)
                try:  # locked in our chain (issue 18): the verdict counts only with both bonds
                    self.ledger.submit(f"duel_bond:{duel.hash}", DuelBond(duel))
                except StorageError as exc:
                    log.error("duel bond of %s queued but not persisted: %s", duel.duel_id, exc)
                await _try_write(stream, receipt)

    async def _execute(self, stream: Stream, request: GenerationRequest,
                       committed_at: float | None = None) -> tuple[str, int] | None:
        """Run ``request`` and stream it back. Returns (full text, completion tokens) when the final
        frame was written, None otherwise. ``committed_at`` (trio clock): when we read the commit;
        the lead to our first chunk is measured from it (:meth:`SlotBook.observe_lead`)."""
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
            meter = _SpeedMeter(prompt_size(request), self.slots)
            try:
                parts: list[str] = []
                async with aclosing(self.executor.generate(request)) as gen:
                    async for chunk in gen:
                        # tokens are counted by the node's MeteredExecutor (origin=peer)
                        meter.chunk(chunk.text)
                        await stream.write(frame(codec.encode_reply(chunk)))
                        if not parts and committed_at is not None:
                            self.slots.observe_lead(trio.current_time() - committed_at, meter.size)
                        parts.append(chunk.text)
                        if chunk.is_final:
                            served = ("".join(parts), chunk.usage.completion_tokens if chunk.usage else len(parts))
                            meter.report(self.slots, served[1])
            except OverlayError as exc:
                log.warning("stream to %s broke while serving %s: %s", stream.remote_peer, request.request_id, exc)
            except (ExecutorError, WwwServeError) as exc:
                await _try_write(stream, ErrorReply(_error_code(exc), str(exc)))
            finally:
                meter.close()
            nursery.cancel_scope.cancel()
        self.stats.record_served_for_peer(trio.current_time() - start)
        return served


# ------------------------------------------------------------------ requester side

@dataclass
class _Probe:
    peer_id: str
    stream: Stream
    reader: FrameReader
    offer: Offer = Offer(True)
    #: s from writing the probe to reading its offer: the path's round trip now, both peers'
    #: event loops included (on a loaded host or a long link this is what a first token also pays)
    rtt_s: float = 0.0


class DelegationAttempt:
    """A committed delegation: iterate :meth:`chunks`, then :meth:`aclose`.

    In a duel, ``duel`` is the signed duel ticket and ``partner`` (on the attempt that streams
    to the user) the other duelist's attempt; after the final chunk, :meth:`receipt` reads the
    executor's signed receipt. Timeouts in seconds from ``config``."""

    def __init__(self, config: DelegationSection, probe: _Probe, ticket: Ticket, duel: DuelTicket | None = None):
        self.config = config
        self.peer_id = probe.peer_id
        self.ticket = ticket
        self.duel = duel
        self.partner: DelegationAttempt | None = None
        #: s to wait for the first chunk after the commit: derived from the executor's advertised
        #: time to first token (issue 15 item 7; see :func:`~wwwserve_p2p.core.reputation.first_token_deadline`)
        self.first_token_s = first_token_deadline(probe.offer.expected_ttft_s, config.first_token_timeout)
        #: the first token missed ``first_token_s`` (shorter than the configured timeout)
        self.missed_deadline = False
        #: when the commit was sent (trio clock): the requester's view of this executor's TTFT
        self.committed_at = trio.current_time()
        #: s, the probe's round trip to this executor (see :meth:`Requester._deadline_for`)
        self.probe_rtt_s = probe.rtt_s
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
        timeout = self.first_token_s
        first = True
        while True:
            try:
                reply = await self._next_reply(timeout, "the final frame")
            except RequestTimeout:
                self.missed_deadline = first and timeout < self.config.first_token_timeout
                raise
            first = False
            if not isinstance(reply, GenerationChunk):
                raise MalformedMessage(f"unexpected {type(reply).__name__} before the final chunk")
            yield reply
            if reply.is_final:
                return
            timeout = self.config.chunk_timeout

    async def aclose(self, *, abort: bool = False) -> None:
        if abort:
            await self._probe.stream.reset()
        else:
            await self._probe.stream.close()


class DuelRunner(Protocol):
    """What the requester needs from the duel service (DESIGN §6)."""

    def make_duel(self, request: GenerationRequest, a: str, b: str) -> DuelTicket | None:
        """A signed duel ticket for ``request`` answered by ``a`` and ``b`` (None: no judges)."""

    def start(self, request: GenerationRequest, a: DelegationAttempt, b: DelegationAttempt) -> "DuelHandle":
        """Run the duel in the background: B's side and the judging."""


class DuelHandle(Protocol):
    gave_up: bool

    def a_finished(self, text: str | None) -> None: ...


#: re-offers of waiting requests in flight at once (each probes 1 + probe_extra peers)
MAX_REOFFERS = 8


@dataclass
class _Waiter:
    """One of our users' requests waiting for a local slot (late binding)."""

    d: Dispatch
    key: str
    done: trio.Event
    #: "local" (a slot was reserved for it) or the committed remote attempt; None while waiting
    result: "DelegationAttempt | str | None" = None


class Requester:
    """Serves our users' requests: runs each through a :class:`~wwwserve_p2p.core.dispatch.Dispatch`
    and performs its actions (local generation, probes and commits, failover). Owns the
    in-flight remote attempts (a peer going offline resets its attempts so they re-dispatch) and
    the queue of requests waiting for a local slot, which stay offloadable until they start
    (late binding: re-offered, oldest first, when a peer announces spare capacity and every
    ``policy.reoffer_interval`` s)."""

    def __init__(self, me: str, network_id: str, overlay: Overlay, executor: Executor, membership: Membership,
                 ledger: LedgerService, tickets: TicketDesk, runtime: Runtime, rng: random.Random,
                 policy: OffloadPolicy, limits: DispatchLimits, config: DelegationSection, probe_grace: float,
                 metrics: NodeMetrics, stats: NodeStats, duels: DuelRunner | None = None, *,
                 slots: SlotBook | None = None, max_waiting: int = 4096):
        self.me, self.network_id, self.overlay, self.executor = me, network_id, overlay, executor
        self.membership, self.ledger, self.tickets, self.runtime, self.rng = membership, ledger, tickets, runtime, rng
        self.policy, self.limits, self.config, self.probe_grace = policy, limits, config, probe_grace
        self.metrics, self.stats, self.duels = metrics, stats, duels
        self._inflight: dict[str, set[DelegationAttempt]] = {}
        self.slots = slots if slots is not None else SlotBook(executor)
        self.queue = WaitQueue(max_waiting)
        self.slots.users_waiting = lambda: len(self.queue)
        self.slots.on_free.append(self._pump)
        self._waiters: dict[str, _Waiter] = {}
        self._keys = 0
        self._kick = trio.Event()
        self._loop_started = False
        self._reoffers = 0
        #: late-binding counters: re-offers sent, won by a peer, started locally after waiting
        self.late = {"reoffers": 0, "reoffer_won": 0, "waited_local": 0, "withdrawn": 0}
        #: peer -> (incarnation, seq) of its last status we read, and slots we used of what it
        #: announced since (commits we sent; a refusal uses them all until its next status)
        self._taken: dict[str, tuple[int, int, int]] = {}
        #: local reputation (issue 15 item 7): peers that failed us are left out of our
        #: candidates while others remain, for a decaying period
        self.reputation = Reputation()
        #: model -> largest time to first token (s) advertised in recent offers: the first-token
        #: deadline of an executor that states no speed (bounded: MAX_TTFT_MODELS models)
        self._ttft_seen: dict[str, float] = {}
        #: model -> first-token latencies (s, commit to first chunk) we measured on our last
        #: delegated attempts: a loaded network (slow for everyone) lengthens every deadline
        self._ttft_observed: dict[str, list[float]] = {}

    # ------------------------------------------------------------ membership
    def on_peer_events(self, events: list[PeerEvent], status: PeerStatus | None) -> None:
        """Membership subscriber: reset in-flight streams to peers gone offline (their readers
        fail and the request re-dispatches); a peer announcing spare capacity triggers a
        re-offer of our waiting requests."""
        if not self.runtime.running:
            return
        for ev in events:
            if ev.kind in ("offline", "forgotten"):
                for attempt in list(self._inflight.get(ev.peer_id, ())):
                    self.runtime.spawn(partial(attempt.aclose, abort=True))
        if status is not None and status.accepting and len(self.queue):
            self._kick.set()

    # ------------------------------------------------------------ late binding
    def _spare(self, status: PeerStatus) -> int:
        """Spare slots a peer announced in its last status, minus those we used since."""
        inc, seq, used = self._taken.get(status.peer_id, (-1, -1, 0))
        if (inc, seq) != (status.incarnation, status.seq):
            if len(self._taken) >= 4096 and status.peer_id not in self._taken:
                self._taken.clear()  # bounded: forgetting only costs a probe that may be refused
            self._taken[status.peer_id] = (status.incarnation, status.seq, 0)
            used = 0
        return max(0, _spare(status) - used)

    def _took(self, peer_id: str, n: int) -> None:
        entry = self._taken.get(peer_id)
        if entry is not None:
            self._taken[peer_id] = (entry[0], entry[1], entry[2] + n)

    def _pump(self) -> None:
        """Start the oldest waiting requests in the local slots that are free now."""
        if not len(self.queue):
            return
        for key in self.queue.start_local(self.slots.free()):
            w = self._waiters.get(key)
            if w is None:
                continue
            self.slots.local += 1  # reserved for it until its local run ends
            w.result = "local"
            w.done.set()

    def _ensure_loop(self) -> None:
        if not self._loop_started and self.runtime.running:
            self._loop_started = True
            self.runtime.spawn(self._reoffer_loop)

    async def _reoffer_loop(self) -> None:
        """Re-offer waiting requests on every kick (a peer announced capacity) and tick."""
        while True:
            with trio.move_on_after(self.policy.reoffer_interval):
                await self._kick.wait()
            self._kick = trio.Event()
            self._pump()
            self._reoffer_round()

    def _reoffer_round(self) -> None:
        budget = MAX_REOFFERS - self._reoffers
        if budget <= 0 or not len(self.queue):
            return
        for key in self.queue.to_offer(budget):
            w = self._waiters.get(key)
            action = w.d.reoffer(self._view(w.d.request), self._variates()) if w is not None else None
            if action is None:
                self.queue.offer_done(key)
                continue
            self._reoffers += 1
            self.late["reoffers"] += 1
            self.runtime.spawn(self._reoffer, w, action)

    async def _reoffer(self, w: _Waiter, action: Probe) -> None:
        seq = self.queue.seq(w.key)
        attempt: DelegationAttempt | None = None
        try:
            attempt = await self._probe_and_commit(action, w.d, claim=lambda: self.queue.claim_remote(w.key),
                                                   restore=lambda: self.queue.restore(w.key, seq))
        except Exception as exc:  # must not raise into the node's nursery
            log.warning("re-offer of %s failed: %s", w.key, exc)
        finally:
            self._reoffers -= 1
            self.queue.offer_done(w.key)
        w.d.reoffered(attempt.peer_id if attempt else None)
        if attempt is None:
            return
        if self._waiters.get(w.key) is not w:  # the user went away while we committed
            self.tickets.void(attempt.ticket, "the user went away")
            with trio.CancelScope(shield=True):
                await attempt.aclose(abort=True)
            return
        self.late["reoffer_won"] += 1
        log.info("waiting request %s offloaded late to %s", action.request.request_id, attempt.peer_id)
        w.result = attempt
        w.done.set()

    async def _local_turn(self, d: Dispatch) -> "DelegationAttempt | None":
        """Our executor's turn for ``d``: a slot is reserved at once when one is free and nobody
        waits, else ``d`` waits in the queue, offloadable (unless its policy draw pinned it
        locally), until a local slot or a late offer takes it. Returns the committed remote
        attempt, or None when a local slot is reserved (released by :meth:`_stream_attempt`).

        :raises NoExecutorAvailable: the queue is full."""
        if not len(self.queue) and self.slots.free() > 0:
            self.slots.local += 1
            return None
        self._keys += 1
        key = f"{d.original.request_id}#{self._keys}"
        try:
            self.queue.add(key, d.may_reoffer)
        except QueueFull as exc:
            raise NoExecutorAvailable(f"{d.original.request_id}: {exc}") from exc
        w = _Waiter(d, key, trio.Event())
        self._waiters[key] = w
        try:
            self._ensure_loop()
            self._pump()
            if w.result is None:
                self._kick.set()
                await w.done.wait()
        except BaseException:
            self.queue.cancel(key)
            self._waiters.pop(key, None)
            if isinstance(w.result, DelegationAttempt):
                self.tickets.void(w.result.ticket, "the user went away")
                with trio.CancelScope(shield=True):
                    await w.result.aclose(abort=True)
            elif w.result == "local":
                self.slots.local -= 1
                self.slots.freed()
            raise
        self._waiters.pop(key, None)
        if isinstance(w.result, DelegationAttempt):
            return w.result
        self.late["waited_local"] += 1
        return None

    # ------------------------------------------------------------ serving
    def _view(self, request: GenerationRequest) -> DispatchView:
        acc = self.ledger.ledger.account(self.me)
        peers = self.membership.candidates(request.model)
        # local reputation: penalised peers are left out while an eligible other remains
        out = self.reputation.rank([c.peer_id for c in peers], self.runtime.clock.monotonic(),
                                   exclude=(*request.route, self.me), keep=1 + self.policy.probe_extra)
        cands = tuple(Candidate(c.peer_id, self.ledger.stake_of(c.peer_id), c.load.load, self.ledger.in_debt(c.peer_id),
                                self._spare(c)) for c in peers if c.peer_id not in out)
        price = self.ledger.ledger.params.price(request.max_tokens)
        ld = self.executor.load()
        # our load counts the slots we reserved and the users waiting for one (late binding)
        local_load = max(ld.load, (self.slots.used() + len(self.queue)) / max(1, ld.capacity))
        return DispatchView(cands, local_load, request.model in self.executor.models(),
                            acc.in_debt or not self.ledger.can_afford(self.me, price), acc.balance)

    def _variates(self) -> Variates:
        return Variates(self.rng.random(), self.rng.random(), self.rng.random(), self.rng.getrandbits(64))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[RoutedChunk]:
        """Serve ``request``: locally or offloaded per policy, with failover (an async generator
        of :class:`RoutedChunk`). See :meth:`wwwserve_p2p.node.Node.generate`."""
        t0 = trio.current_time()
        d = Dispatch(request, self.me, self.policy, self.limits)
        ok = False
        try:
            while True:
                action = d.next(self._view(d.request), self._variates())
                remote: DelegationAttempt | None = None
                if isinstance(action, GiveUp):
                    raise NoExecutorAvailable(action.message)
                if isinstance(action, Wait):
                    await trio.sleep(action.seconds)
                    continue
                if isinstance(action, Probe):
                    remote = await self._probe_and_commit(action, d)
                    if remote is None:
                        after = d.probed(None, action.request.model in self.executor.models())
                        if isinstance(after, Wait):
                            await trio.sleep(after.seconds)
                            continue
                        action = after  # RunLocal: nobody took it, queue locally
                    else:
                        d.probed(remote.peer_id, True)
                        log.info("request %s offloaded to %s", action.request.request_id, remote.peer_id)
                if remote is None:  # RunLocal: a free local slot, or wait for one (still offloadable)
                    remote = await self._local_turn(d)
                if d.first_route is None:
                    if remote:
                        self.stats.offloaded += 1
                    else:
                        self.stats.served_local += 1
                    self.metrics.queue_time.labels(self.metrics.model_label(request.model)).observe(
                        trio.current_time() - t0)
                d.started(remote is not None)
                slot = [remote is None]  # a local slot is reserved for this attempt until released
                try:
                    async with aclosing(self._stream_attempt(d, action.request, remote, t0, slot)) as attempt:
                        async for rc in attempt:
                            if rc.chunk.is_final:
                                ok = True
                            yield rc
                            if ok:
                                return
                finally:
                    self._release_local(slot)
        finally:
            if not ok:
                self.stats.failed += 1
                self.metrics.requests.labels(d.first_route or "none", "error").inc()

    def _release_local(self, slot: list[bool]) -> None:
        """Release the local slot held in ``slot`` (once)."""
        if slot[0]:
            slot[0] = False
            self.slots.local -= 1
            self.slots.freed()

    async def _stream_attempt(self, d: Dispatch, req: GenerationRequest, remote: DelegationAttempt | None,
                              t0: float, slot: list[bool] | None = None) -> AsyncIterator[RoutedChunk]:
        """Stream one attempt to the user; returns without a final chunk when it failed and the
        dispatch re-dispatches (re-raises when it does not). ``slot``: the local slot this
        attempt holds (released as soon as the executor is done)."""
        executor_id = remote.peer_id if remote else self.me
        route = d.first_route or "local"
        duel_run: DuelHandle | None = None
        if remote:
            self._inflight.setdefault(remote.peer_id, set()).add(remote)
            if remote.partner is not None and self.duels is not None:
                duel_run = self.duels.start(req, remote, remote.partner)
        finished = False
        first_chunk = True
        meter = _SpeedMeter(prompt_size(req), None if remote else self.slots)
        try:
            source = remote.chunks() if remote else self.executor.generate(req)
            async with aclosing(source) as chunks:
                async for chunk in chunks:
                    if not remote:
                        meter.chunk(chunk.text)
                        if chunk.is_final:
                            meter.report(self.slots, chunk.usage.completion_tokens if chunk.usage else None)
                            if slot is not None:
                                self._release_local(slot)
                    if remote and first_chunk:
                        first_chunk = False
                        self._observe_ttft(req.model, trio.current_time() - remote.committed_at)
                    chunk = d.chunk(chunk)
                    if d.chunks_delivered == (0 if chunk.is_final else 1) and chunk.text:
                        self.stats.ttfts.append(trio.current_time() - t0)
                        self.metrics.ttft.labels(route).observe(trio.current_time() - t0)
                    if chunk.is_final:
                        # bookkeeping before the yield: a consumer may close us right after it
                        finished = True
                        if remote:  # later vouchers on the channel carry the actual price
                            self.tickets.settle(remote.ticket, chunk.usage.completion_tokens if chunk.usage else None)
                        self._record_success(route, t0)
                        if duel_run is not None:
                            duel_run.a_finished(d.delivered + chunk.text)
                    yield RoutedChunk(chunk, executor_id)
                    if finished:
                        return
            raise MalformedMessage("executor stream ended without a final chunk")
        except (RemoteError, RequestTimeout, MalformedMessage, OverlayError) as exc:
            if remote:
                self._penalise(remote.peer_id, exc, remote.missed_deadline)
            if remote and isinstance(exc, RemoteError) and exc.code == "overloaded" and d.commit_refused():
                # its slots filled while we chose: decide again (its ticket is voided below)
                self._took(remote.peer_id, 1)
                if d.first_route is None:
                    self.stats.offloaded -= 1
                return
            retryable = not (isinstance(exc, RemoteError) and exc.code not in RETRYABLE_CODES)
            _void, again = d.failed(remote.peer_id if remote else None, str(exc), retryable)
            if not again:
                raise
            log.warning("executor %s failed on %s after %d chunks (%s); re-dispatching",
                        executor_id, req.request_id, d.chunks_delivered, exc)
            self.stats.redispatched += 1
            self.metrics.redispatches.inc()
        finally:
            meter.close()
            if remote:
                self._inflight.get(remote.peer_id, set()).discard(remote)
                if not self._inflight.get(remote.peer_id):
                    self._inflight.pop(remote.peer_id, None)
                if not finished:
                    self.tickets.void(remote.ticket, "attempt failed or cancelled")
                if duel_run is not None and not finished:
                    duel_run.a_finished(None)
                # a finished duelist's receipt is still to come, unless the duel gave up
                if duel_run is None or not finished or duel_run.gave_up:
                    with trio.CancelScope(shield=True):
                        await remote.aclose(abort=not finished)

    def _penalise(self, peer_id: str, exc: BaseException, missed_deadline: bool = False) -> None:
        """Local reputation: what ``peer_id`` did to one of our attempts (``missed_deadline``: a
        first token later than its advertised speed implies, not a hard timeout)."""
        if isinstance(exc, RequestTimeout):
            kind = "slow" if missed_deadline else "timeout"
        elif isinstance(exc, RemoteError):
            kind = {"overloaded": "declined", "executor_error": "error", "eof": "broken"}.get(exc.code)
        else:
            kind = "broken"
        if kind is not None:
            score = self.reputation.record(peer_id, kind, self.runtime.clock.monotonic())
            log.info("reputation of %s: %s (score %.2f)", peer_id, kind, score)

    def duel_lost(self, peer_id: str) -> None:
        """Local reputation: ``peer_id`` lost a duel we settled (its answer was judged worse):
        a ``duel_lost`` penalty, so it is left out of our candidates for a decaying period
        (:class:`~wwwserve_p2p.core.reputation.Reputation`; wired to DuelService.on_lost)."""
        score = self.reputation.record(peer_id, "duel_lost", self.runtime.clock.monotonic())
        log.info("reputation of %s: duel_lost (score %.2f)", peer_id, score)

    def _record_success(self, route: str, t0: float) -> None:
        dt = trio.current_time() - t0
        self.stats.latencies.append(dt)
        self.metrics.latency.labels(route).observe(dt)
        self.metrics.requests.labels(route, "ok").inc()

    # ------------------------------------------------------------ probing
    async def _probe_and_commit(self, action: Probe, d: Dispatch | None = None, *,
                                claim: Callable[[], bool] | None = None,
                                restore: Callable[[], None] | None = None) -> DelegationAttempt | None:
        """Probe ``action.peers`` in parallel and commit to one acceptor, sending it our ticket.

        Proof-of-stake choice: after the first acceptance we wait at most ``policy.offer_window``
        s more for the other probed peers' offers, then ``d.choose`` draws one acceptor with
        probability proportional to stake x latency factor (see :mod:`~wwwserve_p2p.core.dispatch`);
        the others are withdrawn (``commit=false``, no ticket). In a duel, wait up to
        ``probe_grace`` after the first acceptance for a second; if one comes and a duel ticket
        can be made (judges exist), commit to both with it: the first is returned, the second
        is its ``partner``.

        ``claim()`` (late binding) is asked right before the commit: False = the request started
        elsewhere meanwhile, every offer is withdrawn. A commit that cannot be delivered has its
        ticket voided, and ``restore()`` puts the request back in the queue.

        Returns None when none accepted within ``probe_timeout`` (or the claim failed). Refusals
        and failures of individual candidates are logged, never raised.
        """
        cfg = self.config
        request = action.request
        candidates = list(action.peers)
        duel_wanted = action.duel and self.duels is not None
        want = 2 if duel_wanted else len(candidates)
        grace = self.probe_grace if duel_wanted else self.policy.offer_window
        payload = frame(codec.encode_request(request, self.network_id, int(cfg.first_token_timeout * 1000)))
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
                    stream = await self.overlay.open_stream(peer_id, PROTOCOL)
                    await stream.write(payload)
                    sent_at = trio.current_time()
                    reader = FrameReader(stream, cfg.max_frame)
                    data = await reader.read_frame(cfg.probe_timeout, may_have_processed=False)
                    rtt = trio.current_time() - sent_at
                reply = codec.decode_reply(data) if data is not None else ErrorReply("eof", "closed")
                if isinstance(reply, Offer) and reply.accepted:
                    accepted = _Probe(peer_id, stream, reader, reply, rtt)
                else:
                    reason = reply.reason if isinstance(reply, Offer) else f"{reply.code}: {reply.message}"
                    # only its open offers are full (they settle within an offer window): on a first
                    # offload it takes part in the stake draw and keeps its announced spare (issue 12)
                    if not (isinstance(reply, Offer) and is_busy_refusal(reason) and d is not None
                            and d.busy(OfferView(peer_id, self.ledger.stake_of(peer_id), reply.expected_ttft_s,
                                                 reply.s_per_token, reply.load))):
                        self._took(peer_id, 1)  # refused: one slot less than its status announced
                    log.debug("%s refused %s: %s", peer_id, request.request_id, reason)
                    await stream.close()
            except (WwwServeError, trio.TooSlowError) as exc:
                log.debug("probe of %s failed: %s", peer_id, exc or "timeout")
                self._took(peer_id, 1 << 20)
                if isinstance(exc, OverlayError):
                    self.membership.mark_unreachable(peer_id)
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
            if self.runtime.running:
                for pid in candidates:
                    self.runtime.spawn(probe, pid)
            else:  # not running inside open_node (direct use): probe in a nursery of our own
                async with trio.open_nursery() as nursery:
                    for pid in candidates:
                        nursery.start_soon(probe, pid)
            winner = await _first_accepted(results, len(candidates), want, cfg.probe_timeout + 0.5, grace)
        finally:
            decided = True  # from here on, a probe accepted late declines itself
            while True:  # accepted but not (or no longer) wanted
                try:
                    late = results.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if late is not None:
                    losers.append(late)
            if self.runtime.running:
                for p in losers:  # background: declining must not delay the winner's commit
                    self.runtime.spawn(_send_decision, p, False)
                losers.clear()
        if not duel_wanted and winner and (len(winner) > 1 or (d is not None and d.has_busy())):
            # proof of stake among the acceptors (and the busy peers, see Dispatch.busy)
            chosen = d.choose([OfferView(p.peer_id, self.ledger.stake_of(p.peer_id), p.offer.expected_ttft_s,
                                         p.offer.s_per_token, p.offer.load) for p in winner],
                              self.rng.random(), self.rng.random()) if d is not None else winner[0].peer_id
            losers += [p for p in winner if p.peer_id != chosen]
            winner = [p for p in winner if p.peer_id == chosen][:1]
        elif not duel_wanted:
            winner = winner[:1]
        if winner and claim is not None and not claim():  # started elsewhere meanwhile: withdraw
            losers += winner
            winner = []
            self.late["withdrawn"] += 1
        duel = None
        if len(winner) == 2 and self.duels is not None:
            duel = self.duels.make_duel(request, winner[0].peer_id, winner[1].peer_id)
        if len(winner) == 2 and duel is None:
            losers.append(winner.pop())
        for p in losers:
            await _send_decision(p, False)
        if not winner:
            return None
        ticket = self.tickets.make(winner[0].peer_id, request, action.attempt)
        self._took(winner[0].peer_id, 1)
        if not await _send_decision(winner[0], True, ticket, duel):
            if len(winner) == 2:
                await _send_decision(winner[1], False)
            self.tickets.void(ticket, "the commit could not be delivered")  # never claimable
            if restore is not None:
                restore()
                self.slots.freed()
            return None
        attempt = DelegationAttempt(cfg, winner[0], ticket, duel)
        self._deadline_for(attempt, winner[0].offer, request.model, action.attempt)
        if duel is not None:
            partner_ticket = self.tickets.make(winner[1].peer_id, request, action.attempt)
            if await _send_decision(winner[1], True, partner_ticket, duel):
                # the duel partner's answer reaches no user (A streams): nobody waits on its first
                # token, so it gets the full first_token_timeout (a derived deadline abandoned duels
                # of busy honest executors; the duel's answer_timeout still bounds it)
                attempt.partner = DelegationAttempt(cfg, winner[1], partner_ticket, duel)
                attempt.partner.first_token_s = cfg.first_token_timeout
        return attempt


    def _deadline_for(self, attempt: DelegationAttempt, offer: Offer, model: str, n_attempt: int = 0) -> None:
        """Set ``attempt``'s first-token deadline from ``offer``'s expected time to first token,
        which counts what is ahead of this request's first token at the executor (its commit
        lead and this prompt's size, :meth:`SlotBook.expected_ttft`), through
        :func:`~wwwserve_p2p.core.reputation.first_token_deadline` (x 1.5 + 0.25 s, floor 0.5 s;
        an executor that states none gets the slowest figure offered for ``model`` lately; with
        none known, the configured first_token_timeout). It doubles with every earlier attempt
        of the request (a long prompt is slow everywhere: we must not time out every executor),
        the last attempt waits the full first_token_timeout, and a voucher on a channel not yet
        in our replica adds the executor's wait for its OpenChannel block (``CHANNEL_WAIT_S``).

        The probe's round trip (write to offer, :attr:`_Probe.rtt_s`) is added: the commit and
        the first chunk cross the same path, through the same two event loops, so a long link or
        a loaded host (ours or the executor's) is not counted against the executor as slowness.
        An executor that answers probes at once and then stays silent gains nothing from it."""
        seen = self._ttft_seen.get(model, 0.0)
        ttft = offer.expected_ttft_s
        if ttft > 0:
            if model not in self._ttft_seen and len(self._ttft_seen) >= MAX_TTFT_MODELS:
                self._ttft_seen.clear()
            # the slowest lately: a higher value at once, a lower one slowly
            self._ttft_seen[model] = max(ttft, 0.9 * seen + 0.1 * ttft)
        else:
            ttft = seen
        observed = sorted(self._ttft_observed.get(model, ()))
        if len(observed) >= 3:  # what our recent attempts took: nobody is held to less
            ttft = max(ttft, observed[len(observed) // 2])
        ceiling = self.config.first_token_timeout
        deadline = (first_token_deadline(ttft, ceiling) + attempt.probe_rtt_s) * (2 ** min(n_attempt, 16))
        if n_attempt >= self.limits.max_attempts - 1:
            deadline = ceiling
        channel = attempt.ticket.channel
        if channel and self.ledger.ledger.channel(self.me, channel) is None:
            deadline += CHANNEL_WAIT_S
        attempt.first_token_s = min(ceiling, deadline)


    def _observe_ttft(self, model: str, seconds: float) -> None:
        obs = self._ttft_observed.get(model)
        if obs is None:
            if len(self._ttft_observed) >= MAX_TTFT_MODELS:
                self._ttft_observed.clear()
            obs = self._ttft_observed[model] = []
        obs.append(seconds)
        del obs[:-TTFT_OBSERVED]


#: first-token latencies remembered per model (their median lengthens deadlines on a slow network)
TTFT_OBSERVED = 16
#: models whose advertised speeds a requester remembers (first-token deadlines)
MAX_TTFT_MODELS = 256


def _spare(status: PeerStatus) -> int:
    """Delegated requests a peer's last status says it can take now (0: not accepting)."""
    if not status.accepting:
        return 0
    ld = status.load
    return max(1, min(ld.capacity - ld.running - ld.queued, status.max_delegated - status.delegated_running))


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


__all__ = ["PROTOCOL", "RETRYABLE_CODES", "DelegationAttempt", "DelegationServer", "DuelHandle", "DuelRunner",
           "Requester"]
