"""Pure acceptance rules (core/acceptance.py): tickets, duel tickets, judge requests, receipts,
all with ``now_ms`` as an argument, so expiry is tested without any clock."""

from __future__ import annotations

from wwwserve_p2p.core.acceptance import (
    MIN_VALIDITY_MS,
    UsedTickets,
    answer_digest,
    check_duel_ticket,
    check_judge_request,
    check_ticket,
    side_of,
    verify_receipt,
)
from wwwserve_p2p.core.ledger import DuelTicket, Receipt, Ticket
from wwwserve_p2p.identity import Identity

NET = "net1"
NOW = 1_700_000_000_000
REQ, EXA, EXB, JUDGE = (Identity(bytes([i]) * 32) for i in range(1, 5))


def ticket(**kw) -> Ticket:
    base = dict(network=NET, request_id="r/0/1", requester=REQ.peer_id, executor=EXA.peer_id, price=500,
                expires_ms=NOW + 3_600_000)
    base.update(kw)
    return Ticket(**base).signed(REQ.sign)


def check(t, **kw):
    args = dict(network_id=NET, requester=REQ.peer_id, executor=EXA.peer_id, min_price=100, now_ms=NOW,
                used=lambda h: False)
    args.update(kw)
    return check_ticket(t, **args)


def test_ticket_rules():
    assert check(ticket()) == ""
    assert "required" in check(None)
    assert "another executor" in check(ticket(executor=EXB.peer_id))
    assert "below" in check(ticket(price=50))
    assert "another requester" in check(ticket(), requester=EXB.peer_id)
    assert "invalid ticket" in check(ticket(), network_id="other")
    assert "already used" in check(ticket(), used=lambda h: True)


def test_ticket_expiry_moves_with_now_ms():
    t = ticket(expires_ms=NOW + MIN_VALIDITY_MS)
    assert check(t, now_ms=NOW) == ""
    assert "expires too soon" in check(t, now_ms=NOW + 1)


def duel(**kw) -> DuelTicket:
    base = dict(network=NET, duel_id="d1", requester=REQ.peer_id, executors=(EXA.peer_id, EXB.peer_id),
                judges=(JUDGE.peer_id,), executor_bond=20_000, judge_bond=10_000, expires_ms=NOW + 3_600_000)
    base.update(kw)
    return DuelTicket(**base).signed(REQ.sign)


def test_duel_ticket_rules():
    kw = dict(network_id=NET, requester=REQ.peer_id, me=EXA.peer_id, max_bond=50_000, now_ms=NOW)
    assert check_duel_ticket(duel(), **kw) == ""
    assert "does not name us" in check_duel_ticket(duel(), **{**kw, "me": JUDGE.peer_id})
    assert "above our duel.max_bond" in check_duel_ticket(duel(), **{**kw, "max_bond": 1})
    assert "expires too soon" in check_duel_ticket(duel(), **{**kw, "now_ms": NOW + 3_600_000})


def receipts(d: DuelTicket, a="one", b="two"):
    return (Receipt(EXA.peer_id, d.hash, answer_digest(a)).signed(EXA.sign),
            Receipt(EXB.peer_id, d.hash, answer_digest(b)).signed(EXB.sign))


def test_receipts_and_judge_requests():
    d = duel()
    ra, rb = receipts(d)
    assert verify_receipt(d, ra, EXA.peer_id, "one") == ""
    assert "does not match" in verify_receipt(d, ra, EXA.peer_id, "one!")
    assert "another executor" in verify_receipt(d, ra, EXB.peer_id, "one")
    assert verify_receipt(d, None, EXA.peer_id, "one") == "no receipt"
    kw = dict(network_id=NET, requester=REQ.peer_id, me=JUDGE.peer_id, max_bond=50_000, now_ms=NOW,
              requester_in_debt=False)
    answers = (("two", rb), ("one", ra))  # the order this judge sees them
    assert check_judge_request(d, answers, **kw) == ""
    assert "in debt" in check_judge_request(d, answers, **{**kw, "requester_in_debt": True})
    assert "not a judge" in check_judge_request(d, answers, **{**kw, "me": EXA.peer_id})
    assert "expired" in check_judge_request(d, answers, **{**kw, "now_ms": NOW + 3_600_001})
    assert "does not match" in check_judge_request(d, (("two", rb), ("uno", ra)), **kw)
    assert "two executors" in check_judge_request(d, (("one", ra), ("one", ra)), **kw)
    # the judge saw B's answer first: "first" means B
    assert side_of(d, rb, ra, "first") == "B" and side_of(d, rb, ra, "second") == "A"
    assert side_of(d, rb, ra, "abstain") == "abstain"


def test_used_tickets_are_bounded():
    used = UsedTickets(limit=3)
    for i in range(5):
        used.add(f"h{i}")
    assert len(used) == 3 and "h0" not in used and "h4" in used
