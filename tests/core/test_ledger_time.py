"""Time rules of the ledger (issue 18): monotone chains, genesis ``created_ms``, ticket issue
times, the premature predicate, and the bound on how early a future-dated Withdraw takes effect.

Deterministic identities; core never reads a clock: ``now_ms`` is always an argument here.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.ledger import (
    MAX_CLOCK_SKEW_MS, AddResult, AddStatus, Block, Claim, DuelTicket, Genesis, Ledger, LedgerParams, Reason,
    Receipt, Stake, Ticket, Transfer, Unstake, Verdict, Void, Vote, Withdraw, build_block, is_premature,
)
from wwwserve_p2p.errors import InvalidBlock, LedgerError
from wwwserve_p2p.identity import Identity

IDS = [Identity(hashlib.sha256(b"wwwserve-ledger-time-%d" % i).digest()) for i in range(6)]
P = [i.peer_id for i in IDS]
ALLOC = 100_000
UNBONDING = 60_000
PARAMS = LedgerParams(unbonding_ms=UNBONDING)
G = Genesis("time-net", PARAMS, tuple((p, ALLOC) for p in P))
NID = G.network_id
DIGEST = "ab" * 32
NOW = 1_800_000_000_000          # "now" on the test's honest clock (ms since the epoch)


def blk(i: int, height: int, prev: str, time_ms: int, entries, genesis: Genesis = G) -> Block:
    return build_block(genesis.network_id, P[i], height, prev, time_ms, entries, IDS[i].sign)


def ticket(req: int, exe: int, rid: str = "r", *, issued: int = 0, expires: int = 10**13,
           network: str = NID) -> Ticket:
    return Ticket(network, rid, P[req], P[exe], 5_000, expires, issued_ms=issued).signed(IDS[req].sign)


def assert_rejected(led: Ledger, block: Block, reason: str) -> None:
    probe = copy.deepcopy(led)
    before = (probe.state_hash(), probe.height(block.author), probe.pending_count())
    res = probe.add_block(block)
    assert (res.status, res.reason) == ("rejected", reason)
    assert (probe.state_hash(), probe.height(block.author), probe.pending_count()) == before


# ---------------------------------------------------------------------------- result kinds

def test_status_and_reason_are_str_enums_equal_to_their_old_strings():
    assert AddStatus.APPLIED == "applied" and isinstance(AddStatus.APPLIED, str)
    assert Reason.MALFORMED == "malformed_entry" and f"{Reason.TIME_BACKWARDS}" == "time_backwards"
    assert {"wrong_network": 1}[Reason.WRONG_NETWORK] == 1
    r = Ledger(G).add_block(blk(0, 1, G.hash, 5, [Stake(1)]))
    assert r.status == "applied" and r.status is AddStatus.APPLIED
    assert AddResult("rejected", "height_gap").reason is Reason.HEIGHT_GAP   # old constructor form
    with pytest.raises(InvalidBlock) as ei:
        Ledger(G).check_static(blk(0, 1, G.hash, 5, [Stake(0)]))
    assert ei.value.reason is Reason.MALFORMED


# ---------------------------------------------------------------------------- (a) chain time and genesis

def test_created_ms_absent_keeps_the_network_id():
    assert "created_ms" not in G.to_dict()
    assert Genesis("time-net", PARAMS, G.allocations, created_ms=0).network_id == NID
    dated = Genesis("time-net", PARAMS, G.allocations, created_ms=NOW)
    assert dated.network_id != NID and dated.to_dict()["created_ms"] == NOW
    assert Genesis.from_dict(dated.to_dict()) == dated and Genesis.from_dict(G.to_dict()) == G
    for bad in (-1, True, 1.5):
        with pytest.raises(LedgerError):
            Genesis("n", created_ms=bad)


def test_no_block_before_the_genesis_and_an_expired_1970_ticket_stays_unclaimable():
    g = Genesis("time-net", PARAMS, G.allocations, created_ms=NOW)
    led = Ledger(g)
    old = Ticket(g.network_id, "1970", P[1], P[0], 5_000, 1_000).signed(IDS[1].sign)
    # back-dating the chain into the ticket's window is refused...
    assert_rejected(led, blk(0, 1, g.hash, 500, [Claim(old, DIGEST, 10)], g), Reason.BEFORE_GENESIS)
    assert_rejected(led, blk(0, 1, g.hash, NOW - 1, [Stake(1)], g), Reason.BEFORE_GENESIS)
    # ...and from the genesis on the ticket is expired
    assert_rejected(led, blk(0, 1, g.hash, NOW, [Claim(old, DIGEST, 10)], g), Reason.TICKET_EXPIRED)
    assert led.add_block(blk(0, 1, g.hash, NOW, [Stake(1)], g)).status == "applied"
    # our own blocks are never dated before the genesis, whatever the clock says
    b = led.next_block(P[1], 0, [Stake(1)], IDS[1].sign)
    assert b.time_ms == NOW and led.add_block(b).status == "applied"


def test_time_never_goes_backwards_within_a_chain():
    led = Ledger(G)
    b1 = blk(0, 1, G.hash, NOW, [Stake(1)])
    led.add_block(b1)
    assert_rejected(led, blk(0, 2, b1.hash, NOW - 1, [Stake(1)]), Reason.TIME_BACKWARDS)
    assert led.next_block(P[0], NOW - 10_000, [Stake(1)], IDS[0].sign).time_ms == NOW


# ---------------------------------------------------------------------------- (b) issue times

def test_a_claim_cannot_be_dated_before_its_ticket_was_signed():
    t = ticket(1, 0, issued=NOW, expires=NOW + 30_000)
    assert "issued_ms" in t.body() and t.hash != replace(t, issued_ms=0).hash
    led = Ledger(G)
    assert_rejected(led, blk(0, 1, G.hash, NOW - 1, [Claim(t, DIGEST, 10)]), Reason.BEFORE_ISSUE)
    assert_rejected(led, blk(0, 1, G.hash, NOW + 30_001, [Claim(t, DIGEST, 10)]), Reason.TICKET_EXPIRED)
    assert led.add_block(blk(0, 1, G.hash, NOW, [Claim(t, DIGEST, 10)])).status == "applied"
    # the issue time is signed: changing it breaks the signature
    assert_rejected(Ledger(G), blk(0, 1, G.hash, NOW, [Claim(replace(t, issued_ms=1), DIGEST, 10)]),
                    Reason.TICKET_SIGNATURE)


def test_legacy_ticket_body_and_issue_after_expiry():
    legacy = ticket(1, 0)
    assert "issued_ms" not in legacy.body() and legacy.issued_ms == 0
    assert Ledger(G).add_block(blk(0, 1, G.hash, 0, [Claim(legacy, DIGEST, 1)])).status == "applied"
    inverted = ticket(1, 0, issued=NOW, expires=NOW - 1)
    assert_rejected(Ledger(G), blk(0, 1, G.hash, NOW, [Claim(inverted, DIGEST, 1)]), Reason.MALFORMED)
    with pytest.raises(InvalidBlock) as ei:
        ticket(1, 0, issued=-5).check(NID)
    assert ei.value.reason == Reason.MALFORMED


def test_void_and_verdict_respect_issue_times():
    t = ticket(1, 0, issued=NOW)
    assert_rejected(Ledger(G), blk(1, 1, G.hash, NOW - 1, [Void(t)]), Reason.BEFORE_ISSUE)
    assert Ledger(G).add_block(blk(1, 1, G.hash, NOW, [Void(t)])).status == "applied"
    d = DuelTicket(NID, "d", P[0], (P[1], P[2]), (P[3],), 100, 100, NOW + 10, issued_ms=NOW).signed(IDS[0].sign)
    rec = tuple(Receipt(P[e], d.hash, DIGEST).signed(IDS[e].sign) for e in (1, 2))
    v = Verdict(d, rec, (Vote(P[3], d.hash, "A").signed(IDS[3].sign),))
    assert_rejected(Ledger(G), blk(0, 1, G.hash, NOW - 1, [v]), Reason.BEFORE_ISSUE)
    assert_rejected(Ledger(G), blk(0, 1, G.hash, NOW + 11, [v]), Reason.TICKET_EXPIRED)
    assert Ledger(G).add_block(blk(0, 1, G.hash, NOW + 10, [v])).status == "applied"


def test_validate_own_raises_the_block_time_to_a_ticket_issued_slightly_ahead():
    led = Ledger(G)
    ahead = ticket(1, 0, "ahead", issued=NOW + 1_500, expires=NOW + 60_000)    # requester's clock is ahead
    future = ticket(1, 0, "future", issued=NOW + MAX_CLOCK_SKEW_MS + 1)
    soon = ticket(2, 0, "soon", issued=NOW, expires=NOW + 1_000)               # expires before `ahead` was issued
    ok, bad = led.validate_own(P[0], NOW, [Claim(soon, DIGEST, 1), Claim(ahead, DIGEST, 1),
                                           Claim(future, DIGEST, 1), Stake(5)])
    assert ok == [Claim(soon, DIGEST, 1), Stake(5)]
    assert [(type(e).__name__, r) for e, r in bad] == [("Claim", Reason.BEFORE_ISSUE), ("Claim", Reason.PREMATURE)]
    ok, bad = led.validate_own(P[0], NOW, [Claim(ahead, DIGEST, 1), Stake(5)])
    assert not bad
    b = led.next_block(P[0], NOW, ok, IDS[0].sign)
    assert b.time_ms == NOW + 1_500 == led.block_time(P[0], NOW, ok)
    assert led.add_block(b).status == "applied"


# ---------------------------------------------------------------------------- (c) premature blocks

def test_is_premature_boundary_and_the_ledger_hook():
    b = blk(0, 1, G.hash, NOW + 10 * 365 * 86_400_000, [Stake(1)])   # ten years ahead
    assert Ledger.is_premature(b, NOW) and is_premature(b.header, NOW, 0)
    edge = blk(0, 1, G.hash, NOW + MAX_CLOCK_SKEW_MS, [Stake(1)])
    assert not Ledger.is_premature(edge, NOW) and Ledger.is_premature(edge, NOW - 1)
    led = Ledger(G)
    before = (led.state_hash(), led.pending_count(), led.heads_digest())
    r = led.add_block(b, now_ms=NOW)
    assert (r.status, r.reason, r.applied) == ("premature", Reason.PREMATURE, ())
    assert (led.state_hash(), led.pending_count(), led.heads_digest()) == before
    # without a clock the fold accepts it (a pure function of the block set)
    assert Ledger(G).add_block(b).status == "applied"
    # a premature block that is a second block at an accepted height is still an equivocation
    led.add_block(edge, now_ms=NOW)
    rival = blk(0, 1, G.hash, NOW + 3_600_000, [Stake(2)])
    assert led.add_block(rival, now_ms=NOW).status == "equivocation" and led.cut_height(P[0]) == 1


@settings(max_examples=300, deadline=None, derandomize=True)
@given(t=st.integers(0, 2**62), now=st.integers(0, 2**61), dt=st.integers(0, 2**40), tol=st.integers(0, 10**6))
def test_is_premature_is_monotone_in_now(t, now, dt, tol):
    b = Block(NID, P[0], 1, G.hash, t, ())
    if not Ledger.is_premature(b, now, tol):
        assert not Ledger.is_premature(b, now + dt, tol)     # once due, due forever
    if Ledger.is_premature(b, now + dt, tol):
        assert Ledger.is_premature(b, now, tol)
    assert Ledger.is_premature(b, now, tol) == (t > now + tol)


# ---------------------------------------------------------------------------- (d) maturity bound

def test_a_future_dated_withdraw_is_not_effective_before_maturity_by_honest_clocks():
    """Unstake at NOW; a Withdraw dated NOW + 61 s (past the 60 s unbonding) signed at once.
    The fold accepts it (its time says it matured), but an honest replica holds it while
    its clock reads less than NOW + 61 s - tolerance, and everything after it on that chain."""
    led = Ledger(G)
    b1 = blk(0, 1, G.hash, NOW, [Stake(10_000), Unstake(4_000)])
    assert led.add_block(b1, now_ms=NOW).status == "applied"
    # dated honestly, the withdraw is refused before maturity
    assert_rejected(led, blk(0, 2, b1.hash, NOW + 1_000, [Withdraw(4_000)]), Reason.NOT_MATURED)
    w = blk(0, 2, b1.hash, NOW + UNBONDING + 1_000, [Withdraw(4_000)])
    after = blk(0, 3, w.hash, NOW + UNBONDING + 1_000, [Transfer(P[1], 1)])
    tol = MAX_CLOCK_SKEW_MS
    for clock in (NOW + 1_000, NOW + UNBONDING + 1_000 - tol - 1):
        assert led.add_block(w, now_ms=clock).status == "premature"
        assert led.add_block(after, now_ms=clock).status == "premature"
        assert led.account(P[0]).unbonding == 4_000
    earliest = NOW + UNBONDING + 1_000 - tol
    assert led.add_block(w, now_ms=earliest).status == "applied"
    assert led.add_block(after, now_ms=earliest).status == "applied"
    a = led.account(P[0])
    assert (a.balance, a.stake, a.unbonding) == (ALLOC - 10_000 + 4_000 - 1, 6_000, 0)
    # the bound: effective no earlier than maturity minus the tolerance
    assert earliest >= NOW + UNBONDING - tol
