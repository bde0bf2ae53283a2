"""The ticket desk: makes, accepts, voids and claims payment tickets (DESIGN §4).

A requester signs a :class:`~wwwserve_p2p.core.ledger.Ticket` for each committed attempt; an
executor (or judge) accepts it once, serves, and claims it in its next block; a failed or
cancelled attempt's ticket is voided by its requester and never paid. The desk owns the
bounded cache of tickets it accepted; the rules themselves are
:mod:`wwwserve_p2p.core.acceptance`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.acceptance import UsedTickets, can_afford, check_ticket
from ..core.ledger import MAX_CLOCK_SKEW_MS, Claim, DuelTicket, Entry, Ledger, Signer, Ticket, Void
from ..core.types import GenerationRequest
from ..errors import StorageError
from ..metrics import NodeMetrics
from .runtime import Clock

log = logging.getLogger("wwwserve_p2p.tickets")


class TicketDesk:
    """Tickets of node ``me`` on ``network_id``.

    ``ledger()``: our replica now; ``submit(key, entry)``: queue an entry for our next block
    (:meth:`LedgerService.submit`); ``incarnation``: distinguishes our request ids across
    restarts; ``ticket_ttl_s``: how long our tickets stay claimable."""

    def __init__(self, me: str, network_id: str, sign: Signer, clock: Clock, ledger: Callable[[], Ledger],
                 submit: Callable[[str, Entry], None], metrics: NodeMetrics, *, incarnation: int,
                 ticket_ttl_s: float, used_limit: int = 100_000):
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

    # ------------------------------------------------------------ as requester
    def make(self, executor: str, request: GenerationRequest, attempt: int) -> Ticket:
        """Our signed ticket promising ``executor`` up to the price of ``request.max_tokens``."""
        price = self._ledger().params.price(request.max_tokens)
        now = self._clock.wall_ms()
        return Ticket(self.network_id, f"{request.request_id}/{attempt}/{self.incarnation}", self.me, executor,
                      price, now + self.ticket_ttl_ms, issued_ms=self.issued_ms(now)).signed(self._sign)

    @staticmethod
    def issued_ms(now_ms: int) -> int:
        """The ``issued_ms`` we write into a ticket signed at ``now_ms``: earlier by the clock
        skew the ledger tolerates, so an executor whose clock is behind ours can still date its
        claim after it (a claim can never be dated before the ticket existed, minus that skew)."""
        return max(1, now_ms - MAX_CLOCK_SKEW_MS)

    def make_fee(self, judge: str, duel: DuelTicket, fee: int) -> Ticket:
        """Our signed ticket paying ``judge`` ``fee`` micro-credits for voting on ``duel``."""
        return Ticket(self.network_id, f"{duel.duel_id}/judge", self.me, judge, fee, duel.expires_ms,
                      issued_ms=duel.issued_ms).signed(self._sign)

    def void(self, ticket: Ticket, why: str) -> None:
        """Withdraw the ticket of a failed or cancelled attempt (never claimable afterwards)."""
        log.info("voiding ticket %s to %s (%s)", ticket.request_id, ticket.executor, why)
        self._metrics.ledger_voided.inc()
        try:
            self._submit(f"void:{ticket.hash}", Void(ticket))
        except StorageError as exc:
            log.error("void of %s queued but not persisted: %s", ticket.request_id, exc)

    # ------------------------------------------------------------ as executor / judge
    def accept(self, ticket: Ticket | None, requester: str, min_price: int) -> str:
        """Why we refuse ``ticket`` from ``requester`` promising at least ``min_price``
        micro-credits ("" if acceptable; the ticket is then remembered as used)."""
        ledger = self._ledger()

        def used(h: str) -> bool:
            return h in self._used or ledger.is_claimed(h) or ledger.is_voided(h)

        problem = check_ticket(ticket, network_id=self.network_id, requester=requester, executor=self.me,
                               min_price=min_price, now_ms=self._clock.wall_ms(), used=used)
        if not problem and ticket is not None:
            acc = ledger.account(requester)
            if not can_afford(acc.balance, ticket.price, ledger.params.overdraft, acc.equivocated):
                problem = (f"the requester cannot afford the ticket (balance {acc.balance}, price {ticket.price}, "
                           f"overdraft {ledger.params.overdraft} micro-credits)")
        if not problem and ticket is not None:
            self._used.add(ticket.hash)
        return problem

    def claim(self, ticket: Ticket, amount: int, response_digest: str) -> None:
        """Queue a :class:`Claim` of ``amount`` micro-credits on ``ticket`` for our next block."""
        self._metrics.ledger_earned.inc()
        try:
            self._submit(f"claim:{ticket.hash}", Claim(ticket, response_digest, amount))
        except StorageError as exc:
            log.error("claim for %s queued but not persisted: %s", ticket.request_id, exc)
