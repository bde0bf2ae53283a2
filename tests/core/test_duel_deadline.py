"""Duel bonds come back after a deadline even when the requester goes silent (issue 18).

A duel's bonds used to stay locked forever when its requester never wrote a block after the
duel's expiry (an executor's release waited on the requester's chain). Now the winner may claim
both bonds only by :func:`duel_deadline` (expiry + one duel window); a release dated after it
gets its author's own bond back once the other executor's chain has passed the deadline without
a win claim. Each scenario below is delivered in many orders: every replica ends in the same
state, nothing is minted, and the bonds paid never exceed the two locked.
"""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.ledger import (DuelBond, DuelRelease, DuelTicket, Genesis, Ledger, LedgerParams, Reason,
                                      Receipt, Stake, Verdict, Vote, build_block, duel_deadline, panel_of)
from wwwserve_p2p.identity import Identity

IDS = [Identity(hashlib.sha256(b"wwwserve-duel-deadline-%d" % i).digest()) for i in range(6)]
P = [i.peer_id for i in IDS]
ALLOC = 10**9
G = Genesis("duel-deadline", LedgerParams(overdraft=0), tuple((p, ALLOC) for p in P))
NID = G.network_id
BOND = 5_000
ISSUED, EXPIRES = 1_000, 2_000
DUEL = DuelTicket(NID, "deadline-duel", P[0], (P[1], P[2]), (), BOND, 1_000, EXPIRES, issued_ms=ISSUED,
                  pool=tuple(sorted((P[j], 1_000) for j in (3, 4, 5))), judges_k=3).signed(IDS[0].sign)
D = duel_deadline(DUEL)
RECEIPTS = tuple(Receipt(P[e], DUEL.hash, "ab" * 32).signed(IDS[e].sign) for e in (1, 2))


def verdict(side: str) -> Verdict:
    """A verdict of the drawn panel: all for ``side`` ("A" = P[1], "B" = P[2]); "tie": split."""
    panel = panel_of(DUEL, RECEIPTS)
    sides = [side] * len(panel) if side != "tie" else ["A", "B"]   # a split; the third abstains
    return Verdict(DUEL, RECEIPTS, tuple(Vote(j, DUEL.hash, s).signed(IDS[P.index(j)].sign)
                                         for j, s in zip(panel, sides)))


class Chain:
    """Builds one author's blocks in height order."""

    def __init__(self, i: int):
        self.i, self.height, self.prev, self.time = i, 0, G.hash, 0

    def block(self, time_ms: int, *entries):
        self.height += 1
        self.time = time_ms
        b = build_block(NID, P[self.i], self.height, self.prev, time_ms, tuple(entries), IDS[self.i].sign)
        self.prev = b.hash
        return b


def deliver(blocks, order):
    led = Ledger(G)
    for k in order:
        led.add_block(blocks[k])
    return led


def state(led: Ledger):
    return (led.state_hash(), led.accounts(), led.locked(), tuple(led.provable(p) for p in P),
            tuple(led.height(p) for p in P), led.waiting_count())


def assert_order_independent(blocks, rng: random.Random, orders: int = 15) -> Ledger:
    """Every delivery order (``orders`` random ones + in order + reversed) gives one state;
    supply is conserved and at most the two bonds are paid."""
    ref = deliver(blocks, range(len(blocks)))
    want = state(ref)
    idx = list(range(len(blocks)))
    for n in range(orders + 1):
        order = idx[::-1] if n == 0 else rng.sample(idx, len(idx))
        assert state(deliver(blocks, order)) == want, f"order {order} diverged"
    assert ref.total_supply() == len(P) * ALLOC
    gained = sum(ref.provable(p) - ALLOC for p in (P[1], P[2]))
    assert gained <= 0 and ref.locked() >= 0      # the two executors together never gain
    return ref


def bonded():
    x, y, r = Chain(1), Chain(2), Chain(0)
    return x, y, r, [x.block(1_100, DuelBond(DUEL)), y.block(1_100, DuelBond(DUEL))]


def test_silent_requester_no_verdict_both_bonds_come_back():
    x, y, r, blocks = bonded()
    led = deliver(blocks, range(2))
    early = x.block(2_500, DuelRelease(DUEL))     # before the deadline: waits for the requester
    assert led.add_block(early).status == "pending"
    # the honest path: after the deadline each writes its release; the second one to write finds
    # the other past the deadline; an empty block (the service's marker) breaks the wait
    x2, y2, _, blocks = bonded()
    blocks += [x2.block(D + 100, DuelRelease(DUEL)), y2.block(D + 200), y2.block(D + 300, DuelRelease(DUEL))]
    led = assert_order_independent(blocks, random.Random(1))
    assert led.provable(P[1]) == led.provable(P[2]) == ALLOC
    assert led.locked() == 0 and led.height(P[1]) == 2 and led.height(P[2]) == 3 and led.waiting_count() == 0
    assert led.total_supply() == len(P) * ALLOC


def test_a_late_verdict_of_a_silent_requester_changes_nothing_after_the_deadline():
    """The requester was silent since before the expiry, then publishes a decisive verdict dated
    inside the duel's window after both executors took their bonds back: every order agrees
    (each got its own bond; the winner's claim window had passed)."""
    for side in ("A", "B", "tie"):
        x, y, r, blocks = bonded()
        blocks += [x.block(D + 100, DuelRelease(DUEL)), y.block(D + 200), y.block(D + 300, DuelRelease(DUEL)),
                   r.block(EXPIRES - 100, verdict(side))]
        led = assert_order_independent(blocks, random.Random(side))
        assert led.provable(P[1]) == led.provable(P[2]) == ALLOC and led.locked() == 0
        assert led.height(P[0]) == 1 and led.total_supply() == len(P) * ALLOC


def test_the_winner_claims_both_bonds_by_the_deadline_and_the_loser_cannot_release():
    x, y, r, blocks = bonded()
    blocks += [r.block(1_500, verdict("A")), x.block(D, DuelRelease(DUEL))]
    lose_early = y.block(2_100, DuelRelease(DUEL))
    led = assert_order_independent(blocks, random.Random(2))
    assert led.provable(P[1]) == ALLOC + BOND and led.provable(P[2]) == ALLOC - BOND and led.locked() == 0
    assert led.add_block(lose_early).reason == Reason.DUEL_RELEASE
    y2 = Chain(2)
    y2.height, y2.prev = 1, blocks[1].hash
    lose_late = y2.block(D + 500, DuelRelease(DUEL))     # after the deadline: the win was claimed
    assert deliver(blocks, range(len(blocks))).add_block(lose_late).reason == Reason.DUEL_RELEASE
    # and in any order with the loser's late attempt in the set
    led = assert_order_independent([*blocks, lose_late], random.Random(3))
    assert led.provable(P[1]) == ALLOC + BOND and led.height(P[2]) == 1


def test_a_winner_that_does_not_claim_by_the_deadline_gets_only_its_own_bond():
    x, y, r, blocks = bonded()
    blocks += [r.block(1_500, verdict("A")), x.block(D + 50, Stake(1)),   # the winner passes D, no claim
               y.block(D + 100, DuelRelease(DUEL)), x.block(D + 200, DuelRelease(DUEL))]
    led = assert_order_independent(blocks, random.Random(4))
    assert led.provable(P[1]) == ALLOC - 1 and led.provable(P[2]) == ALLOC and led.locked() == 0
    assert led.account(P[1]).duels_won == 1          # the verdict still counts for statistics
    # the loser's late release waits while the winner's chain has not passed the deadline
    x2, y2, r2, b2 = bonded()
    led = deliver([*b2, r2.block(1_500, verdict("A"))], range(3))
    assert led.add_block(y2.block(D + 100, DuelRelease(DUEL))).status == "pending"
    assert led.add_block(x2.block(D - 10, Stake(1))).status == "applied"
    assert led.height(P[2]) == 1                       # still waiting: D - 10 is not past D
    assert led.add_block(x2.block(D + 1)).status == "applied"
    assert led.height(P[2]) == 2 and led.provable(P[2]) == ALLOC


@settings(max_examples=15, deadline=None)
@given(side=st.sampled_from(["A", "B", "tie", None]), v_time=st.integers(ISSUED, EXPIRES),
       t1=st.integers(ISSUED + 200, D + 2_000), t2=st.integers(ISSUED + 200, D + 2_000),
       m1=st.booleans(), m2=st.booleans(), req_after=st.booleans(), seed=st.integers(0, 2**16))
def test_any_release_times_any_order_same_state_nothing_minted(side, v_time, t1, t2, m1, m2, req_after, seed):
    """Releases at any times before/after the deadline, optional empty marker blocks after it,
    a verdict of any side (or none), the requester past the expiry or silent: any delivery
    order gives one state, supply is conserved and the executors never gain together."""
    x, y, r, blocks = bonded()
    if side is not None:
        blocks.append(r.block(v_time, verdict(side)))
    if req_after:
        blocks.append(r.block(EXPIRES + 1, Stake(1)))
    for ch, t, marker in ((x, t1, m1), (y, t2, m2)):
        if marker:
            blocks.append(ch.block(D + 1))
        blocks.append(ch.block(max(t, ch.time), DuelRelease(DUEL)))
    led = assert_order_independent(blocks, random.Random(seed), orders=4)
    assert led.total_supply() == len(P) * ALLOC
    paid = sum(led.provable(p) - ALLOC for p in (P[1], P[2])) + 2 * BOND
    assert 0 <= paid <= 2 * BOND
