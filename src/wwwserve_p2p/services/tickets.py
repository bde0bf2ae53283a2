"""The ticket desk: payment channels and their vouchers (DESIGN §4, issue 18).

A requester pays executors through **payment channels**: it locks credit toward an executor
with an :class:`~wwwserve_p2p.core.ledger.OpenChannel` entry in its own chain (solvency-checked,
so a key with nothing locks nothing), and with each committed attempt signs a **voucher**: a
:class:`~wwwserve_p2p.core.ledger.Ticket` naming the channel with a sequence number and the
running total owed (this attempt's maximum price included). The executor accepts a voucher only
if the channel is open toward it in its own replica and the total stays within the deposit, so
credit can never be promised beyond what is locked; it serves, and claims the *latest* total
now and then (one :class:`~wwwserve_p2p.core.ledger.Claim` per ``claim_every`` requests or
``claim_interval_s``, and before the channel expires), not once per request. After the channel
expires the requester closes it (:class:`~wwwserve_p2p.core.ledger.CloseChannel`, witnessed by
an executor block dated after the expiry) and the unpaid remainder is provable credit again.

Fair exchange: a failed or cancelled attempt is *voided*: the requester's next vouchers on the
channel do not include it, and a :class:`~wwwserve_p2p.core.ledger.Void` of that voucher caps a
claim of that very voucher at the total before it. A completed attempt is *settled* at its
actual price (``price_base + price_per_token * completion_tokens``): later totals carry the
actual cost, not the maximum.

Restarts: a requester never reuses a channel of an earlier incarnation (the voucher sequence is
not persisted); it opens new ones (nonce from the incarnation) and closes the old ones when
they expire. An executor loses at most its unclaimed vouchers (< ``claim_every`` requests).

Legacy tickets (no channel) are still made when no channel is ready (the executor refuses
them) and still accepted in the ledger, but a legacy claim is never provable credit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import trio

from ..core.acceptance import MIN_VALIDITY_MS, UsedTickets, can_afford, check_ticket
from ..core.ledger import (MAX_CLOCK_SKEW_MS, Claim, CloseChannel, DuelTicket, Entry, Ledger, OpenChannel, Signer,
                           Ticket, Void, channel_id)
from ..core.types import GenerationRequest
from ..errors import StorageError
from ..metrics import NodeMetrics
from .runtime import Clock

log = logging.getLogger("wwwserve_p2p.tickets")

#: Open a channel toward an executor with room for this many maximum-price requests (the
#: deposit is also capped by a quarter of what we can spend).
CHANNEL_REQUESTS = 256
#: Open a fresh channel when the usable room of the current one falls below this share.
REFILL_SHARE = 0.25
#: A channel we opened but have not sealed yet carries vouchers for at most this long (ms).
QUEUED_USE_MS = 10_000
#: How long (s) an executor waits for the OpenChannel block of a voucher it does not know yet.
CHANNEL_WAIT_S = 5.0
#: Most channels toward us tracked (remote-keyed; each is backed by a real deposit).
MAX_IN_CHANNELS = 10_000
#: Most distinct sequence numbers remembered per channel toward us.
MAX_SEQS = 65_536


@dataclass
class _Out:
    """A channel we opened (this incarnation): the last voucher we signed on it."""

    cid: str
    executor: str
    deposit: int
    expires_ms: int
    seq: int = 0
    total: int = 0
    accepted_at: int = 0     # wall ms when our replica first showed it accepted (0: not yet)
    created_ms: int = 0


@dataclass
class _In:
    """A channel toward us: the best voucher (highest seq) we accepted and what we served."""

    cid: str
    requester: str
    deposit: int
    expires_ms: int
    best: Ticket | None = None
    seqs: set[int] = field(default_factory=set)
    served: int = 0          # micro-credits of the attempts we completed (actual prices)
    digest: str = ""
    unclaimed: int = 0       # completed attempts not yet in a submitted claim
    claimed_seq: int = 0     # the last claim we submitted
    claimed_amount: int = 0
    last_claim_ms: int = 0


class TicketDesk:
    """Tickets, vouchers and channels of node ``me`` on ``network_id``.

    ``ledger()``: our replica now; ``submit(key, entry)``: queue an entry for our next block
    (:meth:`LedgerService.submit`); ``incarnation``: distinguishes our request ids and channel
    nonces across restarts; ``ticket_ttl_s``: how long our channels (and legacy tickets) stay
    claimable; ``targets()``: peers we may delegate to (channels are opened toward them ahead of
    the first request); ``claim_every`` / ``claim_interval_s``: how often an executor claims."""

    def __init__(self, me: str, network_id: str, sign: Signer, clock: Clock, ledger: Callable[[], Ledger],
                 submit: Callable[[str, Entry], None], metrics: NodeMetrics, *, incarnation: int,
                 ticket_ttl_s: float, used_limit: int = 100_000, targets: Callable[[], Iterable[str]] = lambda: (),
                 claim_every: int = 64, claim_interval_s: float = 10.0, channel_requests: int = CHANNEL_REQUESTS,
                 typical_tokens: int = 256):
        self.me = me
        self.network_id = network_id
        self._sign = sign
        self._clock = clock
        self._ledger = ledger
        self._submit = submit
        self._metrics = metrics
        self.incarnation = incarnation
        self.ticket_ttl_ms = int(ticket_ttl_s * 1000)
        self._used = UsedTickets(used_limit)
        self.targets = targets
        self.claim_every = max(1, claim_every)
        self.claim_interval_ms = int(claim_interval_s * 1000)
        self.channel_requests = max(1, channel_requests)
        self.typical_tokens = typical_tokens
        #: ``pull(peer)``: ask the ledger service to pull ``peer``'s chain soon
        self.pull: Callable[[str], None] = lambda peer: None
        self._out: dict[str, list[_Out]] = {}        # executor -> our channels toward it
        self._out_by_cid: dict[str, _Out] = {}
        self._opening: dict[str, int] = {}           # executor -> deposit queued (not sealed yet)
        self._nonce = 0
        self._in: dict[str, _In] = {}                # cid -> channel toward us
        self._closing: set[str] = set()
        #: counters (``/status``-style): vouchers made, legacy tickets made, claims submitted
        self.counts = {"vouchers": 0, "legacy": 0, "claims": 0, "opened": 0, "closed": 0, "settled": 0}

    # ------------------------------------------------------------ as requester
    def make(self, executor: str, request: GenerationRequest, attempt: int) -> Ticket:
        """Our signed voucher promising ``executor`` up to the price of ``request.max_tokens`` on a
        channel toward it; a legacy ticket (which executors refuse) when no channel is ready, and
        a channel is then opened for the next attempt."""
        return self._voucher(executor, f"{request.request_id}/{attempt}/{self.incarnation}",
                             self._ledger().params.price(request.max_tokens))

    def make_fee(self, judge: str, duel: DuelTicket, fee: int) -> Ticket:
        """Our signed voucher paying ``judge`` ``fee`` micro-credits for voting on ``duel``."""
        return self._voucher(judge, f"{duel.duel_id}/judge", fee, issued_ms=duel.issued_ms)

    def ready(self, executor: str, price: int) -> bool:
        """Whether a channel toward ``executor`` can carry a voucher of ``price`` now."""
        return self._usable(executor, price, self._clock.wall_ms()) is not None

    def _voucher(self, executor: str, request_id: str, price: int, issued_ms: int = 0) -> Ticket:
        now = self._clock.wall_ms()
        issued = issued_ms or self.issued_ms(now)
        ch = self._usable(executor, price, now)
        if ch is None and self._open_toward(executor, now, need=price):
            ch = self._usable(executor, price, now)
        if ch is None:
            self.counts["legacy"] += 1
            return Ticket(self.network_id, request_id, self.me, executor, price, now + self.ticket_ttl_ms,
                          issued_ms=issued).signed(self._sign)
        ch.seq += 1
        ch.total += price
        self.counts["vouchers"] += 1
        if ch.deposit - ch.total < REFILL_SHARE * ch.deposit:
            self._open_toward(executor, now)       # the next channel, before this one runs dry
        return Ticket(self.network_id, request_id, self.me, executor, price, ch.expires_ms, issued_ms=issued,
                      channel=ch.cid, seq=ch.seq, total=ch.total).signed(self._sign)

    def _usable(self, executor: str, price: int, now: int) -> _Out | None:
        """Our channel toward ``executor`` with the most room for ``price`` (accepted in our
        replica, or opened by us moments ago and still queued: the executor waits for the
        block, see :meth:`await_channel`)."""
        led = self._ledger()
        best: _Out | None = None
        for ch in self._out.get(executor, ()):
            if not ch.accepted_at:
                if led.channel(self.me, ch.cid) is None:
                    if now - ch.created_ms > QUEUED_USE_MS:
                        continue
                else:
                    ch.accepted_at = now
            if ch.expires_ms < now + 2 * MIN_VALIDITY_MS:
                continue
            if ch.total + price <= ch.deposit and (best is None or ch.deposit - ch.total > best.deposit - best.total):
                best = ch
        return best

    @staticmethod
    def issued_ms(now_ms: int) -> int:
        """The ``issued_ms`` we write into a ticket signed at ``now_ms``: earlier by the clock
        skew the ledger tolerates, so an executor whose clock is behind ours can still date its
        claim after it (a claim can never be dated before the ticket existed, minus that skew)."""
        return max(1, now_ms - MAX_CLOCK_SKEW_MS)

    def deposit_for(self, need: int = 0) -> int:
        """The deposit we would lock in a new channel now: ``channel_requests`` typical prices,
        at most a quarter of what we can spend; if that is below ``need`` (default: two typical
        prices), ``need`` itself when we can spend it (0: we cannot afford the channel)."""
        led = self._ledger()
        price = led.params.price(self.typical_tokens)
        need = need or 2 * price
        free = led.spendable(self.me) + led.params.overdraft - sum(self._opening.values())
        deposit = min(self.channel_requests * price, free // 4)
        if deposit >= need:
            return deposit
        return need if free >= need else 0

    def _open_toward(self, executor: str, now: int, need: int = 0) -> bool:
        """Queue an OpenChannel toward ``executor`` (unless one is queued or we cannot afford it)."""
        if executor == self.me or executor in self._opening:
            return False
        deposit = self.deposit_for(need)
        if not deposit:
            return False
        self._nonce += 1
        nonce = self.incarnation * 1000 + self._nonce
        cid = channel_id(self.network_id, self.me, nonce)
        expires = now + self.ticket_ttl_ms
        try:
            self._submit(f"open:{cid}", OpenChannel(executor, deposit, expires, nonce))
        except StorageError as exc:
            log.error("channel toward %s queued but not persisted: %s", executor, exc)
        ch = _Out(cid, executor, deposit, expires, created_ms=now)
        self._out.setdefault(executor, []).append(ch)
        self._out_by_cid[cid] = ch
        self._opening[executor] = deposit
        self.counts["opened"] += 1
        log.info("opening a channel of %d micro-credits toward %s", deposit, executor)
        return True

    def settle(self, ticket: Ticket, tokens: int | None) -> None:
        """Attempt of ``ticket`` completed with ``tokens`` completion tokens: later vouchers on its
        channel carry its actual price instead of its maximum."""
        ch = self._out_by_cid.get(ticket.channel) if ticket.channel else None
        if ch is None or tokens is None:
            return
        actual = min(ticket.price, self._ledger().params.price(tokens))
        ch.total = max(0, ch.total - (ticket.price - actual))
        self.counts["settled"] += 1

    def void(self, ticket: Ticket, why: str) -> None:
        """Withdraw the ticket of a failed or cancelled attempt: never paid (a voucher: our later
        vouchers exclude it, and a claim of this one is capped at the total before it)."""
        log.info("voiding ticket %s to %s (%s)", ticket.request_id, ticket.executor, why)
        self._metrics.ledger_voided.inc()
        ch = self._out_by_cid.get(ticket.channel) if ticket.channel else None
        if ch is not None:
            ch.total = max(0, ch.total - ticket.price)
        try:
            self._submit(f"void:{ticket.hash}", Void(ticket))
        except StorageError as exc:
            log.error("void of %s queued but not persisted: %s", ticket.request_id, exc)

    # ------------------------------------------------------------ as executor / judge
    def accept(self, ticket: Ticket | None, requester: str, min_price: int) -> str:
        """Why we refuse ``ticket`` from ``requester`` promising at least ``min_price``
        micro-credits ("" if acceptable; the voucher is then remembered as used).

        A voucher is accepted only on a channel open toward us in our replica, not closed,
        whose deposit covers the voucher's running total (so nothing beyond the lock is ever
        promised), with a sequence number not seen before. Legacy tickets are refused."""
        ledger = self._ledger()
        now = self._clock.wall_ms()

        def used(h: str) -> bool:
            return h in self._used or ledger.is_claimed(h) or ledger.is_voided(h)

        problem = check_ticket(ticket, network_id=self.network_id, requester=requester, executor=self.me,
                               min_price=min_price, now_ms=now, used=used)
        if problem or ticket is None:
            return problem
        acc = ledger.account(requester)
        if acc.equivocated:
            return "the requester equivocated"
        if not ticket.channel:
            return ("a payment-channel voucher is required (a ticket not backed by a locked deposit "
                    "cannot be claimed as provable credit)")
        info = ledger.channel(requester, ticket.channel)
        if info is None:
            return "unknown payment channel (its OpenChannel is not in our ledger view yet)"
        if info.executor != self.me or ledger.channel_closed(requester, ticket.channel):
            return "the payment channel is not open toward us"
        if ticket.total > info.deposit:
            return (f"the voucher's running total {ticket.total} exceeds the channel deposit {info.deposit} "
                    "micro-credits")
        if ticket.expires_ms > info.expires_ms:
            return "the voucher outlives its channel"
        inn = self._in.get(ticket.channel)
        if inn is None:
            if len(self._in) >= MAX_IN_CHANNELS:
                self._forget_expired(now, force=True)
            inn = self._in[ticket.channel] = _In(ticket.channel, requester, info.deposit, info.expires_ms)
            seq, amount = ledger.channel_claimed(self.me, ticket.channel)
            inn.claimed_seq, inn.claimed_amount, inn.served = seq, amount, amount
        if ticket.seq in inn.seqs:
            # (a voucher below our last claimed seq is fine: concurrent attempts' vouchers arrive
            # out of order, and a later voucher's total includes it)
            return f"voucher sequence {ticket.seq} already used on this channel"
        if len(inn.seqs) >= MAX_SEQS:
            inn.seqs = {s for s in inn.seqs if s > inn.claimed_seq}
            if len(inn.seqs) >= MAX_SEQS:
                return "too many vouchers on this channel"
        inn.seqs.add(ticket.seq)
        if inn.best is None or ticket.seq > inn.best.seq:
            inn.best = ticket
        self._used.add(ticket.hash)
        return ""

    async def await_channel(self, ticket: Ticket | None, timeout_s: float = CHANNEL_WAIT_S) -> bool:
        """Wait (at most ``timeout_s``) until the channel of voucher ``ticket`` is in our replica,
        pulling the requester's chain meanwhile (a requester's first voucher toward us may
        arrive before its OpenChannel block). True if it is there (or nothing to wait for)."""
        if ticket is None or not ticket.channel:
            return True
        led = self._ledger
        if led().channel(ticket.requester, ticket.channel) is not None:
            return True
        self.pull(ticket.requester)
        with trio.move_on_after(timeout_s):
            while led().channel(ticket.requester, ticket.channel) is None:
                await trio.sleep(0.05)
            return True
        return False

    def can_pay_us(self, requester: str, amount: int) -> bool:
        """Whether ``requester`` can pay us ``amount`` (a probe's early check; :meth:`accept`
        decides): a channel toward us in our view with that much room (deposit minus our best
        voucher's total), or, with no channel toward us yet, a balance that covers it (it can
        open one)."""
        led = self._ledger()
        now = self._clock.wall_ms()
        acc = led.account(requester)
        toward_us = False
        for cid, info in led.channels_of(requester).items():
            if info.executor != self.me or info.expires_ms < now + MIN_VALIDITY_MS or led.channel_closed(requester, cid):
                continue
            toward_us = True
            inn = self._in.get(cid)
            used = inn.best.total if inn is not None and inn.best is not None else led.channel_claimed(self.me, cid)[1]
            if info.deposit - used >= amount:
                return True
        return not toward_us and can_afford(acc.balance, amount, led.params.overdraft, acc.equivocated)

    def claim(self, ticket: Ticket, amount: int, response_digest: str) -> None:
        """We completed the attempt of ``ticket``, worth ``amount`` micro-credits: on a voucher it is
        added to the channel's served total (claimed every ``claim_every`` attempts, or by
        :meth:`tick`); a legacy ticket is claimed at once."""
        self._metrics.ledger_earned.inc()
        if not ticket.channel:
            self._queue_claim(f"claim:{ticket.hash}", Claim(ticket, response_digest, amount))
            return
        inn = self._in.get(ticket.channel)
        if inn is None:
            return
        inn.served += amount
        inn.digest = response_digest
        inn.unclaimed += 1
        if inn.unclaimed >= self.claim_every:
            self._flush(inn, self._clock.wall_ms())

    def _flush(self, inn: _In, now: int) -> bool:
        """Submit a claim of ``inn``'s latest total (what we served, within the best voucher)."""
        best = inn.best
        if best is None or best.seq <= inn.claimed_seq:
            return False
        amount = min(inn.served, best.total, inn.deposit)
        if amount <= 0 or amount < inn.claimed_amount:
            return False     # the requester voided work we count as served: wait for a later voucher
        if amount == inn.claimed_amount and inn.unclaimed == 0:
            return False
        if self._queue_claim(f"claim:{inn.cid}:{best.seq}", Claim(best, inn.digest or "0" * 64, amount)):
            inn.claimed_seq, inn.claimed_amount, inn.unclaimed, inn.last_claim_ms = best.seq, amount, 0, now
            self.counts["claims"] += 1
            return True
        return False

    def _queue_claim(self, key: str, claim: Claim) -> bool:
        try:
            self._submit(key, claim)
        except StorageError as exc:
            log.error("claim %s queued but not persisted: %s", key, exc)
        return True

    def flush_all(self) -> int:
        """Claim every channel with unclaimed work now (shutdown, tests). Returns claims queued."""
        now = self._clock.wall_ms()
        return sum(self._flush(inn, now) for inn in list(self._in.values()))

    def _forget_expired(self, now: int, force: bool = False) -> None:
        gone = [c for c, inn in self._in.items() if inn.expires_ms < now and (force or not inn.unclaimed)]
        for c in gone:
            del self._in[c]

    # ------------------------------------------------------------ periodic work
    def tick(self) -> None:
        """Periodic (the ledger service calls it every ``stake_interval``): claim channels whose
        unclaimed work is old or whose expiry is near; open channels toward our targets; close
        our expired channels once the executor's chain passed the expiry."""
        now = self._clock.wall_ms()
        led = self._ledger()
        for inn in list(self._in.values()):
            if inn.unclaimed and (now - inn.last_claim_ms >= self.claim_interval_ms
                                  or inn.expires_ms - now <= MIN_VALIDITY_MS // 2):
                self._flush(inn, now)
        self._forget_expired(now)
        # channels whose OpenChannel is sealed no longer count as queued deposits; one our own
        # ledger refused (we could not afford it after all) is forgotten after a while
        for ex in list(self._opening):
            chs = self._out.get(ex, [])
            for c in [c for c in chs if led.channel(self.me, c.cid) is None and now - c.created_ms > 30_000]:
                chs.remove(c)
                self._out_by_cid.pop(c.cid, None)
            if all(led.channel(self.me, c.cid) is not None for c in chs):
                del self._opening[ex]
        for ex in sorted(set(self.targets())):
            if ex != self.me and self._usable(ex, 1, now) is None and ex not in self._opening:
                self._open_toward(ex, now)
        self._close_expired(now, led)

    def _close_expired(self, now: int, led: Ledger) -> None:
        for cid, info in led.channels_of(self.me).items():
            if cid in self._closing or info.expires_ms >= now or led.channel_closed(self.me, cid):
                continue
            tip = led.blocks(info.executor, led.height(info.executor))
            if not tip or tip[-1].time_ms <= info.expires_ms:
                continue   # the executor's chain has not passed the expiry yet
            try:
                self._submit(f"close:{cid}", CloseChannel(cid, tip[-1].height, tip[-1].hash))
            except StorageError as exc:
                log.error("close of channel %s queued but not persisted: %s", cid[:16], exc)
            self._closing.add(cid)
            self.counts["closed"] += 1
            ch = self._out_by_cid.pop(cid, None)
            if ch is not None:
                self._out[ch.executor] = [c for c in self._out.get(ch.executor, ()) if c.cid != cid]

    # ------------------------------------------------------------ views
    def channels_view(self) -> dict[str, object]:
        """Our channels as requester (this incarnation) and toward us (``/ledger``)."""
        return {"out": [{"channel": c.cid, "executor": c.executor, "deposit": c.deposit, "seq": c.seq,
                         "total": c.total, "expires_ms": c.expires_ms, "accepted": bool(c.accepted_at)}
                        for chs in self._out.values() for c in chs],
                "in": [{"channel": i.cid, "requester": i.requester, "deposit": i.deposit,
                        "best_seq": i.best.seq if i.best else 0, "served": i.served, "claimed": i.claimed_amount,
                        "unclaimed": i.unclaimed} for i in self._in.values()],
                **self.counts}


__all__ = ["TicketDesk", "can_afford"]
