"""Pure acceptance rules of the delegation and duel protocols (DESIGN §4, §6).

What an executor checks before it serves a peer's request (the requester's signed ticket and
duel ticket), what a judge checks before it votes, how a duel receipt is verified, and the
bounded cache of tickets already used. Every rule returns the reason for a refusal as a
string (``""`` = accepted), so services can log it and send it to the peer. Times are
wall-clock milliseconds passed in as ``now_ms``; nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

from ..errors import InvalidBlock
from .ledger import MAX_CLOCK_SKEW_MS, DuelTicket, Receipt, Ticket

#: A ticket or duel ticket must stay valid at least this long after we accept it (ms), so
#: the claim or verdict can still be sealed and gossiped in time.
MIN_VALIDITY_MS = 60_000


def answer_digest(text: str) -> str:
    """SHA-256 (hex) of an answer's UTF-8 text: what claims and duel receipts commit to."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def signed_by_requester(obj: Ticket | DuelTicket, network_id: str, requester: str, what: str) -> str:
    """Why ``obj`` (a ticket or duel ticket) is not a valid one of ``network_id`` signed by
    ``requester`` ("" if it is)."""
    try:
        obj.check(network_id)
    except InvalidBlock as exc:
        return f"invalid {what}: {exc}"
    if obj.requester != requester:
        return f"the {what} names another requester"
    return ""


def check_ticket(ticket: Ticket | None, *, network_id: str, requester: str, executor: str, min_price: int,
                 now_ms: int, used: Callable[[str], bool]) -> str:
    """Why the executor ``executor`` refuses ``ticket`` from ``requester`` ("" if acceptable).

    ``min_price``: micro-credits the work may cost (the ticket must promise at least that);
    ``used(ticket_hash)``: whether the ticket was already accepted, claimed or voided."""
    if ticket is None:
        return "a ticket is required (upgrade the requester)"
    problem = signed_by_requester(ticket, network_id, requester, "ticket")
    if problem:
        return problem
    if ticket.executor != executor:
        return "the ticket names another executor"
    if ticket.price < min_price:
        return f"ticket price {ticket.price} below {min_price}"
    if ticket.expires_ms < now_ms + MIN_VALIDITY_MS:
        return "the ticket expires too soon"
    if ticket.issued_ms > now_ms + MAX_CLOCK_SKEW_MS:
        return "the ticket is dated in the future (our claim could not be sealed)"
    if used(ticket.hash):
        return "ticket already used"
    return ""


def can_afford(balance: int, amount: int, overdraft: int, equivocated: bool = False) -> bool:
    """Whether an account with ``balance`` micro-credits (in our ledger view) can promise
    ``amount`` more without going below ``-overdraft``: executors honour a requester's ticket
    only then, and a node offloads only then (issue: a key with nothing must not be served)."""
    return not equivocated and balance - amount >= -overdraft


def check_duel_ticket(duel: DuelTicket, *, network_id: str, requester: str, me: str, max_bond: int,
                      now_ms: int) -> str:
    """Why we, executor ``me``, refuse to answer in ``duel`` ("" if we accept the risk of
    ``duel.executor_bond`` micro-credits, at most ``max_bond``)."""
    problem = signed_by_requester(duel, network_id, requester, "duel ticket")
    if problem:
        return problem
    if me not in duel.executors:
        return "the duel ticket does not name us as an executor"
    if duel.executor_bond > max_bond:
        return f"duel bond {duel.executor_bond} above our duel.max_bond {max_bond}"
    if duel.expires_ms < now_ms + MIN_VALIDITY_MS:
        return "the duel ticket expires too soon"
    return ""


def verify_receipt(duel: DuelTicket, receipt: Receipt | None, executor: str, text: str) -> str:
    """Why ``receipt`` does not prove that ``executor`` answered ``duel`` with ``text`` ("" if it does)."""
    if receipt is None:
        return "no receipt"
    if receipt.executor != executor or receipt.duel_hash != duel.hash:
        return "receipt for another executor or duel"
    if receipt.response_digest != answer_digest(text):
        return "receipt digest does not match the answer received"
    if not receipt.valid():
        return "receipt signature invalid"
    return ""


def check_judge_request(duel: DuelTicket, answers: tuple[tuple[str, Receipt], tuple[str, Receipt]], *,
                        network_id: str, requester: str, me: str, max_bond: int, now_ms: int,
                        requester_in_debt: bool, judges: tuple[str, ...] | None = None) -> str:
    """Why judge ``me`` refuses to judge ``duel`` for ``requester`` ("" if it judges it).

    ``answers``: (text, receipt) of the first and second answer as the judge sees them;
    ``judges``: the duel's panel (a verifiable duel's drawn panel, see
    :func:`~.ledger.panel_of`; default ``duel.judges``). The fee ticket, if any, is checked
    separately with :func:`check_ticket`."""
    problem = signed_by_requester(duel, network_id, requester, "duel ticket")
    if problem:
        return problem
    if requester_in_debt:
        return "requester in debt"
    if me not in (duel.judges if judges is None else judges):
        return "we are not a judge of this duel"
    if duel.judge_bond > max_bond:
        return f"judge bond {duel.judge_bond} above our duel.max_bond {max_bond}"
    if duel.expires_ms < now_ms:
        return "the duel ticket expired"
    if {rc.executor for _, rc in answers} != set(duel.executors):
        return "the receipts are not from the duel's two executors"
    for text, rc in answers:
        problem = verify_receipt(duel, rc, rc.executor, text)
        if problem:
            return f"answer of {rc.executor}: {problem}"
    return ""


def side_of(duel: DuelTicket, first: Receipt, second: Receipt, judgement: str) -> str:
    """Map a judge method's ``"first"``/``"second"``/``"abstain"`` to the duel side
    ``"A"``/``"B"``/``"abstain"``, through the receipts of the answers as the judge saw them."""
    if judgement == "abstain":
        return "abstain"
    rc = first if judgement == "first" else second
    return "A" if rc.executor == duel.executors[0] else "B"


class UsedTickets:
    """Bounded insertion-ordered set of ticket hashes we accepted (oldest forgotten first).

    Bounded because its keys come from remote input; a forgotten ticket is still refused when
    the ledger shows it claimed or voided."""

    def __init__(self, limit: int = 100_000):
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, ticket_hash: object) -> bool:
        return ticket_hash in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, ticket_hash: str) -> None:
        self._seen[ticket_hash] = None
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)
