"""Example-based tests of the pure credit ledger (core/ledger.py, DESIGN §4).

Every rejection is checked by its stable ``Reason`` code and by the state being left untouched.
Identities are deterministic (fixed seeds) so PeerId order, hashes and signatures are the same
on every run. The property-based tests live in test_ledger_properties.py.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import replace

import pytest

from wwwserve_p2p.core.ledger import (
    Block,
    Claim,
    DuelBond,
    DuelRelease,
    DuelTicket,
    EquivocationProof,
    Genesis,
    Ledger,
    LedgerParams,
    Reason,
    Receipt,
    Receive,
    Stake,
    Ticket,
    Transfer,
    Unstake,
    Verdict,
    Void,
    Vote,
    Withdraw,
    build_block,
    settle_duel,
)
from wwwserve_p2p.errors import InvalidBlock, LedgerError
from wwwserve_p2p.identity import Identity

IDS = [Identity(hashlib.sha256(b"wwwserve-ledger-unit-%d" % i).digest()) for i in range(8)]
P = [i.peer_id for i in IDS]
ALLOC = 100_000
UNBONDING = 1_000
PARAMS = LedgerParams(unbonding_ms=UNBONDING, overdraft=0)
G = Genesis("unit-net", PARAMS, tuple((p, ALLOC) for p in P[:6]))
NID = G.network_id
DIGEST = "ab" * 32


def blk(i: int, height: int, prev: str, time_ms: int, entries, *, signer: int | None = None,
        network: str | None = None) -> Block:
    """A block by author ``P[i]`` signed by ``IDS[signer]`` (default: the author)."""
    s = IDS[i if signer is None else signer].sign
    return build_block(NID if network is None else network, P[i], height, prev, time_ms, entries, s)


class Writer:
    """Builds one author's successive valid-looking blocks without a ledger."""

    def __init__(self, i: int, genesis: Genesis = G):
        self.i, self.g = i, genesis
        self.height, self.prev, self.time = 0, genesis.hash, 0

    def peek(self, entries, time_ms: int | None = None) -> Block:
        t = self.time if time_ms is None else time_ms
        return build_block(self.g.network_id, P[self.i], self.height + 1, self.prev, t, entries, IDS[self.i].sign)

    def block(self, entries, time_ms: int | None = None) -> Block:
        b = self.peek(entries, time_ms)
        self.height, self.prev, self.time = b.height, b.hash, b.time_ms
        return b


def ticket(req: int, exe: int, rid: str = "r1", price: int = 5_000, expires: int = 10**9,
           network: str = NID, signer: int | None = None) -> Ticket:
    t = Ticket(network, rid, P[req], P[exe], price, expires)
    return t.signed(IDS[req if signer is None else signer].sign)


def duel(req: int = 0, exes=(1, 2), judges=(3, 4, 5), bond: int = 1_000, jbond: int = 1_000,
         did: str = "d1", signer: int | None = None, named: bool = False) -> DuelTicket:
    """A duel whose panel is ``judges``: drawn from a pool of exactly those (verifiable form,
    every member drawn), or named freely (``named``: the older form, no judge penalties)."""
    if named:
        d = DuelTicket(NID, did, P[req], (P[exes[0]], P[exes[1]]), tuple(P[j] for j in judges), bond, jbond, 10**9)
    else:
        d = DuelTicket(NID, did, P[req], (P[exes[0]], P[exes[1]]), (), bond, jbond, 10**9,
                       pool=tuple(sorted((P[j], 1_000) for j in judges)), judges_k=len(judges))
    return d.signed(IDS[req if signer is None else signer].sign)


def receipts(d: DuelTicket, exes=(1, 2)) -> tuple[Receipt, ...]:
    return tuple(Receipt(P[e], d.hash, DIGEST).signed(IDS[e].sign) for e in exes)


def vote(d: DuelTicket, j: int, choice: str, signer: int | None = None) -> Vote:
    return Vote(P[j], d.hash, choice).signed(IDS[j if signer is None else signer].sign)


def assert_rejected(led: Ledger, block: Block, reason: str) -> None:
    """``block`` is rejected with ``reason`` and changes no state. Checked on a copy of ``led``:
    a validly signed block refused by the chain checks is remembered (a different block at that
    height would then be an equivocation), and the tests go on using ``led``."""
    probe = copy.deepcopy(led)
    before = (probe.state_hash(), probe.height(block.author), probe.pending_count(), probe.accounts())
    res = probe.add_block(block)
    assert (res.status, res.reason) == ("rejected", reason)
    assert (probe.state_hash(), probe.height(block.author), probe.pending_count(), probe.accounts()) == before
    assert probe.cut_height(block.author) == led.cut_height(block.author)


def conserved(led: Ledger) -> bool:
    return led.total_supply() + led.burned() == led.genesis.supply


# ---------------------------------------------------------------------------- genesis and params

def test_genesis_network_id_depends_on_everything():
    assert len(NID) == 32 and G.hash.startswith(NID)
    assert G.supply == 6 * ALLOC
    assert Genesis("unit-net", PARAMS, tuple((p, ALLOC) for p in reversed(P[:6]))).network_id == NID  # sorted
    assert Genesis("unit-net2", PARAMS, G.allocations).network_id != NID
    assert Genesis("unit-net", replace(PARAMS, overdraft=1), G.allocations).network_id != NID
    assert Genesis("unit-net", PARAMS, G.allocations[1:]).network_id != NID
    assert Genesis.from_dict(G.to_dict()) == G


@pytest.mark.parametrize("bad", [
    dict(network=""),
    dict(allocations=((P[0], 1), (P[0], 2))),
    dict(allocations=((P[0], 0),)),
    dict(allocations=(("not-a-peer", 5),)),
])
def test_genesis_rejects_invalid(bad):
    kw = dict(network="n", params=PARAMS, allocations=())
    kw.update(bad)
    with pytest.raises(LedgerError):
        Genesis(**kw)


@pytest.mark.parametrize("bad", [dict(overdraft=-1), dict(max_block_entries=0), dict(max_block_bytes=100),
                                 dict(minority_penalty_pct=101), dict(unbonding_ms=True)])
def test_params_validate(bad):
    with pytest.raises(LedgerError):
        LedgerParams(**bad)


def test_fresh_ledger_holds_genesis():
    led = Ledger(G)
    assert led.total_supply() == G.supply and led.burned() == 0
    assert set(led.accounts()) == set(P[:6])
    a = led.account(P[0])
    assert (a.balance, a.stake, a.unbonding, a.height) == (ALLOC, 0, 0, 0)
    assert (a.in_debt, a.equivocated, a.burned) == (False, False, 0)
    assert led.account(P[7]).balance == 0


# ---------------------------------------------------------------------------- own-chain entries

def test_stake_unstake_withdraw_with_maturity():
    led, w = Ledger(G), Writer(0)
    assert led.add_block(w.block([Stake(5_000)], 100)).status == "applied"
    assert led.add_block(w.block([Unstake(2_000)], 200)).status == "applied"
    a = led.account(P[0])
    assert (a.balance, a.stake, a.unbonding) == (ALLOC - 5_000, 3_000, 2_000)
    assert led.matured_unbonding(P[0], 200 + UNBONDING - 1) == 0
    assert led.matured_unbonding(P[0], 200 + UNBONDING) == 2_000
    # one ms before maturity: refused
    assert_rejected(led, w.peek([Withdraw(1)], 200 + UNBONDING - 1), Reason.NOT_MATURED)
    # at maturity, more than matured: refused; exactly the matured amount: accepted
    assert_rejected(led, w.peek([Withdraw(2_001)], 200 + UNBONDING), Reason.NOT_MATURED)
    assert led.add_block(w.block([Withdraw(1_500)], 200 + UNBONDING)).status == "applied"
    assert led.add_block(w.block([Withdraw(500)], 200 + UNBONDING)).status == "applied"
    assert_rejected(led, w.peek([Withdraw(1)], 10**6), Reason.NOT_MATURED)  # all withdrawn
    a = led.account(P[0])
    assert (a.balance, a.stake, a.unbonding, a.height) == (ALLOC - 3_000, 3_000, 0, 4)
    assert conserved(led) and led.total_supply() == G.supply


def test_unstake_beyond_stake_rejected_also_within_one_block():
    led, w = Ledger(G), Writer(0)
    assert_rejected(led, w.peek([Unstake(1)], 0), Reason.UNSTAKE_EXCEEDS_STAKE)
    assert_rejected(led, w.peek([Stake(100), Unstake(60), Unstake(41)], 0), Reason.UNSTAKE_EXCEEDS_STAKE)
    assert led.add_block(w.block([Stake(100), Unstake(60), Unstake(40)], 0)).status == "applied"
    assert_rejected(led, w.peek([Unstake(1)], 0), Reason.UNSTAKE_EXCEEDS_STAKE)


def test_withdraw_of_unbonding_created_in_same_block_is_not_matured():
    g0 = replace(G, params=replace(PARAMS, unbonding_ms=0))
    led, w = Ledger(g0), Writer(0, g0)
    # with a zero delay, unstaked credit matures at once, even inside the same block
    assert led.add_block(w.block([Stake(10), Unstake(10), Withdraw(10)], 5)).status == "applied"
    led2, w2 = Ledger(G), Writer(0)
    assert_rejected(led2, w2.peek([Stake(10), Unstake(10), Withdraw(10)], 5), Reason.NOT_MATURED)


def test_transfer_and_self_transfer():
    led, w = Ledger(G), Writer(0)
    b = w.block([Transfer(P[1], 700), Transfer(P[7], 300)])
    assert led.add_block(b).status == "applied"
    # debited at once, in flight until each recipient's own chain receives it (Receive)
    balances = [led.account(P[i]).balance for i in (0, 1, 7)]
    assert balances == [ALLOC - 1_000, ALLOC, 0] and led.in_flight() == 1_000 and conserved(led)
    assert led.add_block(Writer(1).block([Receive(b, 0)])).status == "applied"
    assert led.add_block(Writer(7).block([Receive(b, 1)])).status == "applied"
    balances = [led.account(P[i]).balance for i in (0, 1, 7)]
    assert balances == [ALLOC - 1_000, ALLOC + 700, 300] and led.in_flight() == 0 and conserved(led)
    assert P[7] in led.accounts()
    assert_rejected(led, w.peek([Transfer(P[0], 1)]), Reason.SELF_TRANSFER)


@pytest.mark.parametrize("entry", [Stake(0), Stake(-5), Stake(True), Unstake(1 << 62), Transfer("nobody", 5),
                                   Withdraw(1.5)])
def test_malformed_entries(entry):
    assert_rejected(Ledger(G), Writer(0).peek([entry]), Reason.MALFORMED)


def test_malformed_claim_digest():
    t = ticket(1, 0)
    assert_rejected(Ledger(G), Writer(0).peek([Claim(t, "XYZ", 10)]), Reason.MALFORMED)


# ---------------------------------------------------------------------------- block-level rejections

def test_forged_and_foreign_signatures():
    led = Ledger(G)
    good = Writer(0).peek([Stake(1)])
    assert_rejected(led, replace(good, signature=bytes(64)), Reason.BAD_SIGNATURE)
    flipped = good.signature[:-1] + bytes([good.signature[-1] ^ 1])
    assert_rejected(led, replace(good, signature=flipped), Reason.BAD_SIGNATURE)
    assert_rejected(led, blk(0, 1, G.hash, 0, [Stake(1)], signer=1), Reason.BAD_SIGNATURE)  # another key
    # entries changed after signing: the signature no longer covers them
    assert_rejected(led, replace(good, entries=(Stake(2),)), Reason.BAD_SIGNATURE)
    assert_rejected(led, replace(good, time_ms=1), Reason.BAD_SIGNATURE)
    assert_rejected(led, replace(good, author="not-a-peer-id"), Reason.BAD_AUTHOR)
    assert led.add_block(good).status == "applied"


def test_wrong_network_block():
    other = Genesis("other-net", PARAMS, G.allocations)
    foreign = Writer(0, other).peek([Stake(1)])
    assert foreign.network == other.network_id != NID
    assert_rejected(Ledger(G), foreign, Reason.WRONG_NETWORK)
    # the same block is fine on its own network
    assert Ledger(other).add_block(foreign).status == "applied"
    # a ticket of another network inside a block of this one
    t = ticket(1, 0, network=other.network_id)
    assert_rejected(Ledger(G), Writer(0).peek([Claim(t, DIGEST, 10)]), Reason.WRONG_NETWORK)


def test_wrong_prev_hash_and_time_backwards():
    led, w = Ledger(G), Writer(0)
    assert_rejected(led, blk(0, 1, "00" * 32, 0, [Stake(1)]), Reason.WRONG_PREV_HASH)
    b1 = w.block([Stake(1)], 1_000)
    led.add_block(b1)
    assert_rejected(led, blk(0, 2, G.hash, 1_000, [Stake(1)]), Reason.WRONG_PREV_HASH)
    assert_rejected(led, w.peek([Stake(1)], 999), Reason.TIME_BACKWARDS)
    assert led.add_block(w.block([Stake(1)], 1_000)).status == "applied"  # equal time is fine


def test_height_gap_pending_then_unlocked():
    led, w = Ledger(G), Writer(0)
    b1, b2, b3 = (w.block([Transfer(P[1], k)], 10 * k) for k in (1, 2, 3))
    r = led.add_block(b3)
    assert (r.status, r.have) == ("pending", 0) and led.pending_count() == 1
    assert led.add_block(b3).status == "duplicate" and led.pending_count() == 1
    assert led.add_block(b2).status == "pending" and led.pending_count() == 2
    assert led.account(P[1]).balance == ALLOC  # nothing applied yet
    r = led.add_block(b1)
    assert r.status == "applied" and r.applied == (b1, b2, b3) and r.have == 3
    assert led.pending_count() == 0 and led.account(P[0]).balance == ALLOC - 6 and led.in_flight() == 6
    assert [b.height for b in led.blocks(P[0])] == [1, 2, 3] and led.blocks(P[0], 2, 2) == [b2]
    assert led.heads() == {P[0]: (3, b3.hash)}
    # the recipient is credited by its own Receive of each transfer
    assert led.add_block(Writer(1).block([Receive(b, 0) for b in (b1, b2, b3)], 30)).status == "applied"
    assert led.account(P[1]).balance == ALLOC + 6 and led.in_flight() == 0
    for b in (b1, b2, b3):
        assert led.add_block(b).status == "duplicate"
    assert led.account(P[1]).balance == ALLOC + 6


def test_height_gap_beyond_max_pending_rejected():
    led, w = Ledger(G, max_pending=2), Writer(0)
    bs = [w.block([Stake(k)], k) for k in range(1, 6)]
    assert led.add_block(bs[2]).status == "pending"
    assert led.add_block(bs[3]).status == "pending"
    r = led.add_block(bs[4])
    assert (r.status, r.reason) == ("rejected", Reason.HEIGHT_GAP) and led.pending_count() == 2
    assert led.add_block(bs[0]).status == "applied"  # in-order blocks are never refused for the cap
    r = led.add_block(bs[1])
    assert r.status == "applied" and [b.height for b in r.applied] == [2, 3, 4]
    assert led.pending_count() == 0 and led.add_block(bs[4]).status == "applied"


def test_pending_block_that_does_not_link_is_dropped_on_unlock():
    led, w = Ledger(G), Writer(0)
    b1 = w.block([Stake(1)], 10)
    stray2 = blk(0, 2, "11" * 32, 10, [Stake(2)])   # height 2 but links elsewhere
    assert led.add_block(stray2).status == "pending"
    r = led.add_block(b1)
    assert r.status == "applied" and r.applied == (b1,) and led.pending_count() == 0 and led.height(P[0]) == 1
    # the stray block was signed at height 2: any other block of P[0] at height 2 is an equivocation
    r = led.add_block(w.block([Stake(3)], 20))
    assert r.status == "equivocation" and led.cut_height(P[0]) == 2 and led.height(P[0]) == 1


def test_oversized_and_too_many_entries():
    small = Genesis("small", replace(PARAMS, max_block_entries=3, max_block_bytes=1024), G.allocations)
    led, w = Ledger(small), Writer(0, small)
    assert_rejected(led, w.peek([Stake(1)] * 4), Reason.TOO_MANY_ENTRIES)
    fat = [Claim(ticket(k, 0, rid=c * 200, network=small.network_id), DIGEST, 1)
           for k, c in ((1, "x"), (2, "y"), (3, "z"))]
    assert w.peek(fat).canonical_size() > 1024
    assert_rejected(led, w.peek(fat), Reason.OVERSIZED)
    assert led.add_block(w.block([Stake(1)] * 3)).status == "applied"


# ---------------------------------------------------------------------------- claims and voids

def test_claim_moves_credit_once():
    led, w = Ledger(G), Writer(0)
    t = ticket(1, 0, price=5_000)
    assert led.add_block(w.block([Claim(t, DIGEST, 4_000)])).status == "applied"
    assert (led.account(P[0]).balance, led.account(P[1]).balance) == (ALLOC + 4_000, ALLOC - 4_000)
    assert led.is_claimed(t.hash) and not led.is_voided(t.hash)
    assert (led.account(P[0]).earned, led.account(P[1]).spent) == (4_000, 4_000)
    # claimed again in a later block (even with another amount / digest): refused
    assert_rejected(led, w.peek([Claim(t, DIGEST, 4_000)]), Reason.TICKET_CLAIMED)
    assert_rejected(led, w.peek([Claim(t, "cd" * 32, 1)]), Reason.TICKET_CLAIMED)
    # twice in one block: refused
    t2 = ticket(1, 0, rid="r2")
    assert_rejected(led, w.peek([Claim(t2, DIGEST, 1), Claim(t2, DIGEST, 2)]), Reason.TICKET_CLAIMED)
    assert (led.account(P[0]).balance, led.account(P[1]).balance) == (ALLOC + 4_000, ALLOC - 4_000)


def test_claim_rejections():
    led, w = Ledger(G), Writer(0)
    # someone else's ticket (names executor 2), even a valid one
    assert_rejected(led, w.peek([Claim(ticket(1, 2), DIGEST, 10)]), Reason.NOT_TICKET_EXECUTOR)
    # ticket signed by the executor instead of the requester, and a tampered price
    assert_rejected(led, w.peek([Claim(ticket(1, 0, signer=0), DIGEST, 10)]), Reason.TICKET_SIGNATURE)
    tampered = replace(ticket(1, 0, price=100), price=10_000)
    assert_rejected(led, w.peek([Claim(tampered, DIGEST, 5_000)]), Reason.TICKET_SIGNATURE)
    # amount above price; exactly the price is fine
    assert_rejected(led, w.peek([Claim(ticket(1, 0, price=100), DIGEST, 101)]), Reason.AMOUNT_EXCEEDS_PRICE)
    # expiry is compared with the block's time
    t = ticket(1, 0, rid="exp", price=100, expires=500)
    assert_rejected(led, w.peek([Claim(t, DIGEST, 100)], 501), Reason.TICKET_EXPIRED)
    assert led.add_block(w.block([Claim(t, DIGEST, 100)], 500)).status == "applied"
    assert led.account(P[0]).balance == ALLOC + 100


def test_void_only_by_requester_and_once():
    led = Ledger(G)
    t = ticket(1, 0)
    assert_rejected(led, Writer(0).peek([Void(t)]), Reason.NOT_TICKET_REQUESTER)   # the executor
    assert_rejected(led, Writer(2).peek([Void(t)]), Reason.NOT_TICKET_REQUESTER)   # a bystander
    assert_rejected(led, Writer(1).peek([Void(ticket(1, 0, signer=2))]), Reason.TICKET_SIGNATURE)
    w1 = Writer(1)
    assert led.add_block(w1.block([Void(t)])).status == "applied"
    assert led.is_voided(t.hash) and not led.is_claimed(t.hash)
    assert (led.account(P[0]).balance, led.account(P[1]).balance) == (ALLOC, ALLOC)
    assert_rejected(led, w1.peek([Void(t)]), Reason.TICKET_CLAIMED)
    assert_rejected(Ledger(G), Writer(1).peek([Void(t), Void(t)]), Reason.TICKET_CLAIMED)


def test_void_wins_over_claim_in_either_order():
    t = ticket(1, 0, price=3_000)
    claim = Writer(0).block([Claim(t, DIGEST, 3_000)])
    void = Writer(1).block([Void(t)])
    only_claim = Ledger(G)
    only_claim.add_block(claim)
    assert only_claim.account(P[0]).balance == ALLOC + 3_000
    states = []
    for order in ((claim, void), (void, claim)):
        led = Ledger(G)
        for b in order:
            assert led.add_block(b).status == "applied"
        assert led.is_claimed(t.hash) and led.is_voided(t.hash)
        assert (led.account(P[0]).balance, led.account(P[1]).balance) == (ALLOC, ALLOC)
        assert (led.account(P[0]).earned, led.account(P[1]).spent) == (0, 0)
        assert conserved(led) and led.burned() == 0
        states.append((led.state_hash(), led.accounts()))
    assert states[0] == states[1]


def test_void_cut_by_equivocation_lets_the_claim_count_again():
    t = ticket(1, 0, price=3_000)
    claim = Writer(0).block([Claim(t, DIGEST, 3_000)])
    void = Writer(1).block([Void(t)])
    fork = Writer(1).block([Stake(1)])           # requester 1 signs another height-1 block
    led = Ledger(G)
    for b in (claim, void):
        led.add_block(b)
    assert led.account(P[0]).balance == ALLOC
    r = led.add_block(fork)
    assert r.status == "equivocation" and r.proof is not None and led.cut_height(P[1]) == 1
    # the claim is paid again; the equivocator's remaining balance is burned (issue 18)
    assert (led.account(P[0]).balance, led.account(P[1]).balance) == (ALLOC + 3_000, 0)
    assert led.account(P[1]).burned == ALLOC - 3_000
    assert not led.is_voided(t.hash) and conserved(led)


# ---------------------------------------------------------------------------- duels

def test_settle_duel_majority_wins_bond_and_pays_judges():
    d = duel(bond=1_000, jbond=1_000, judges=(3, 4, 5))
    out = settle_duel(d, [vote(d, 3, "A"), vote(d, 4, "A"), vote(d, 5, "B")], PARAMS, receipts(d))
    # loser B: -bond from stake; winner A: +bond balance; minority judge 5: -20% of judge bond
    # from stake, shared by judges 3 and 4 (100 each)
    assert out == {P[1]: (1_000, 0), P[2]: (0, -1_000), P[5]: (0, -200), P[3]: (100, 0), P[4]: (100, 0)}
    assert sum(a + b for a, b in out.values()) == 0
    out_b = settle_duel(d, [vote(d, 3, "B"), vote(d, 4, "abstain")], PARAMS, receipts(d))
    assert out_b == {P[2]: (1_000, 0), P[1]: (0, -1_000), P[4]: (0, -50), P[3]: (50, 0)}


def test_settle_duel_tie_and_no_votes_move_nothing():
    d = duel()
    rs = receipts(d)
    assert settle_duel(d, [vote(d, 3, "A"), vote(d, 4, "B")], PARAMS, rs) == {}
    assert settle_duel(d, [vote(d, 3, "A"), vote(d, 4, "B"), vote(d, 5, "abstain")], PARAMS, rs) == {}
    assert settle_duel(d, [vote(d, 3, "abstain")], PARAMS, rs) == {}
    assert settle_duel(d, [], PARAMS, rs) == {}


def test_settle_duel_pool_remainder_goes_to_first_majority_judge_by_peer_id():
    ids = [Identity(hashlib.sha256(b"wwwserve-duel-%d" % i).digest()) for i in range(8)]
    p = [i.peer_id for i in ids]
    d = DuelTicket(NID, "pool", p[0], (p[1], p[2]), (), 7, 1_001, 10**9,
                   pool=tuple(sorted((q, 5) for q in p[3:8])), judges_k=5).signed(ids[0].sign)
    choices = {3: "B", 4: "B", 5: "B", 6: "A", 7: "abstain"}
    votes = [Vote(p[j], d.hash, c).signed(ids[j].sign) for j, c in choices.items()]
    rs = [Receipt(p[e], d.hash, DIGEST).signed(ids[e].sign) for e in (1, 2)]
    out = settle_duel(d, votes, PARAMS, rs)
    # minority: 1001*20//100 = 200; abstain: 1001*5//100 = 50; pool 250 over 3 = 83 rem 1
    majority = sorted(p[j] for j in (3, 4, 5))
    assert out[majority[0]] == (84, 0) and out[majority[1]] == (83, 0) and out[majority[2]] == (83, 0)
    assert out[p[6]] == (0, -200) and out[p[7]] == (0, -50)
    assert out[p[2]] == (7, 0) and out[p[1]] == (0, -7)
    assert len(out) == 7 and sum(a + b for a, b in out.values()) == 0


def test_settle_duel_zero_penalties_move_only_the_bond():
    d = duel()
    params = replace(PARAMS, minority_penalty_pct=0, abstain_penalty_pct=0)
    out = settle_duel(d, [vote(d, 3, "A"), vote(d, 4, "B"), vote(d, 5, "A")], params, receipts(d))
    assert out == {P[1]: (1_000, 0), P[2]: (0, -1_000)}


def test_settle_duel_ignores_invalid_votes():
    d = duel(judges=(3, 4, 5))
    other = duel(did="other")
    valid = [vote(d, 3, "A")]
    ignored = [
        vote(d, 6, "B"),                        # not a judge
        vote(d, 4, "B", signer=6),              # forged signature
        vote(other, 4, "B"),                    # another duel
        Vote(P[4], d.hash, "C").signed(IDS[4].sign),  # not a choice
    ]
    again = [vote(d, 3, "B"), vote(d, 3, "B")]  # judge 3 again: only its first vote counts
    rs = receipts(d)
    assert settle_duel(d, ignored, PARAMS, rs) == {}
    assert settle_duel(d, valid + ignored + again, PARAMS, rs) == settle_duel(d, valid, PARAMS, rs)
    assert settle_duel(d, valid, PARAMS, rs) == {P[1]: (1_000, 0), P[2]: (0, -1_000)}
    assert settle_duel(d, again + valid, PARAMS, rs) == {P[2]: (1_000, 0), P[1]: (0, -1_000)}


def test_verdict_applies_settlement():
    """Issue 18: a verdict counts once both executors locked their bond (DuelBond, from their
    provable credit); the winner takes both bonds back with a DuelRelease (provable, spendable),
    the loser cannot release, and its bond is gone from what it can stake, transfer or withdraw."""
    led = Ledger(G)
    ws = {i: Writer(i) for i in (1, 2)}
    for i in (1, 2):
        led.add_block(ws[i].block([Stake(5_000)]))
    d = duel(jbond=1_000)
    votes = (vote(d, 3, "B"), vote(d, 4, "B"), vote(d, 5, "A"))
    w0 = Writer(0)
    assert led.add_block(ws[1].block([DuelBond(d)])).status == "applied"
    # one bond only: the verdict is accepted but counts nothing yet
    assert led.add_block(w0.block([Verdict(d, receipts(d), votes)])).status == "applied"
    assert led.account(P[5]).stake == 0 and led.account(P[2]).duels_won == 0 and conserved(led)
    assert led.add_block(ws[2].block([DuelBond(d)])).status == "applied"
    expect = settle_duel(d, votes, PARAMS, receipts(d))
    assert expect[P[2]] == (1_000, 0) and expect[P[1]] == (0, -1_000)
    # both bonds locked: the verdict counts; the bonds stay locked until the winner releases
    assert (led.account(P[1]).balance, led.account(P[1]).stake) == (ALLOC - 5_000 - 1_000, 5_000)
    assert (led.account(P[2]).balance, led.account(P[2]).stake) == (ALLOC - 5_000 - 1_000, 5_000)
    assert led.account(P[5]).stake == -200 and led.account(P[3]).balance == ALLOC + 100
    assert led.account(P[2]).duels_won == 1 and led.account(P[1]).duels_lost == 1
    assert led.account(P[0]).balance == ALLOC and conserved(led) and led.locked() == 2_000
    assert led.provable(P[1]) == led.provable(P[2]) == ALLOC - 6_000
    assert_rejected(led, ws[1].peek([DuelRelease(d)]), Reason.DUEL_RELEASE)            # the loser
    assert_rejected(led, ws[1].peek([DuelBond(d)]), Reason.DUEL_BOND)                  # bonded twice
    assert_rejected(led, Writer(3).peek([DuelBond(d)]), Reason.DUEL_BOND)              # not an executor
    assert led.add_block(ws[2].block([DuelRelease(d)])).status == "applied"
    assert (led.account(P[2]).balance, led.provable(P[2])) == (ALLOC - 5_000 + 1_000, ALLOC - 5_000 + 1_000)
    assert led.spendable(P[2]) == ALLOC - 4_000 and led.locked() == 0 and conserved(led)
    assert_rejected(led, ws[2].peek([DuelRelease(d)]), Reason.DUEL_RELEASE)            # released twice
    # the loser cannot get its bond out by unstaking and withdrawing everything it can
    assert led.add_block(ws[1].block([Unstake(5_000)])).status == "applied"
    w = ws[1].block([Withdraw(5_000)], time_ms=ws[1].time + PARAMS.unbonding_ms)
    assert led.add_block(w).status == "applied"
    assert_rejected(led, ws[1].peek([Transfer(P[0], ALLOC - 1_000 + 1)]), Reason.INSUFFICIENT_FUNDS)
    assert led.add_block(ws[1].block([Transfer(P[0], ALLOC - 1_000)])).status == "applied"
    assert led.provable(P[1]) == 0 and led.account(P[1]).balance == 0 and conserved(led)
    assert_rejected(led, w0.peek([Verdict(d, receipts(d), votes)]), Reason.DUEL_SETTLED)
    assert_rejected(Ledger(G), Writer(0).peek([Verdict(d, receipts(d), votes)] * 2), Reason.DUEL_SETTLED)


def test_an_unsettled_or_tied_duel_returns_each_bond_once_final():
    """No verdict by the duel's expiry (or a tie): each executor takes its own bond back, but only
    once the requester's chain (and the other executor's, unless it bonded) is past the expiry;
    before that the release waits (a verdict or a bond may still come)."""
    d = DuelTicket(NID, "d-tie", P[0], (P[1], P[2]), (), 1_000, 1_000, 100,
                   pool=tuple(sorted((P[j], 1_000) for j in (3, 4, 5))), judges_k=3).signed(IDS[0].sign)
    led = Ledger(G)
    w1, w0, w2 = Writer(1), Writer(0), Writer(2)
    assert led.add_block(w1.block([DuelBond(d)], 50)).status == "applied"
    early = w1.block([DuelRelease(d)], 60)
    assert led.add_block(early).status == "pending"                       # waits for the requester
    assert led.add_block(w0.block([Stake(1)], 101)).status == "applied"   # requester past expiry
    assert led.height(P[1]) == 1                                          # now waits for the other executor
    assert led.add_block(w2.block([Stake(1)], 101)).status == "applied"   # never bonded, past expiry
    assert led.height(P[1]) == 2 and led.provable(P[1]) == ALLOC and led.locked() == 0 and conserved(led)
    # a tie: both bonded, the panel split
    d2 = DuelTicket(NID, "d-tie2", P[0], (P[1], P[2]), (), 1_000, 1_000, 10**9,
                    pool=tuple(sorted((P[j], 1_000) for j in (3, 4))), judges_k=2).signed(IDS[0].sign)
    led = Ledger(G)
    w1, w0, w2 = Writer(1), Writer(0), Writer(2)
    for w, x in ((w1, 1), (w2, 2)):
        assert led.add_block(w.block([DuelBond(d2)], 10)).status == "applied"
    tie = Verdict(d2, receipts(d2), (vote(d2, 3, "A"), vote(d2, 4, "B")))
    assert led.add_block(w0.block([tie], 20)).status == "applied"
    assert led.account(P[1]).duels_tied == 1 and led.locked() == 2_000
    assert led.add_block(w1.block([DuelRelease(d2)], 30)).status == "pending"   # a tie is final only after expiry
    assert led.add_block(w0.block([Stake(1)], 10**9 + 1)).status == "applied"
    assert led.provable(P[1]) == ALLOC and led.account(P[1]).balance == ALLOC
    assert led.locked() == 1_000 and conserved(led)


def test_verdict_rejections():
    led = Ledger(G)
    d = duel()
    rs = receipts(d)
    votes = (vote(d, 3, "A"),)
    w0 = Writer(0)

    def rej(entry, reason, author: Writer = w0):
        assert_rejected(led, author.peek([entry]), reason)

    rej(Verdict(d, rs, votes), Reason.NOT_DUEL_REQUESTER, Writer(3))
    rej(Verdict(duel(signer=1), rs, votes), Reason.DUEL_SIGNATURE)
    rej(Verdict(d, rs[:1], votes), Reason.RECEIPT_INVALID)                         # a receipt missing
    rej(Verdict(d, (rs[0], rs[0]), votes), Reason.RECEIPT_INVALID)                 # one executor twice
    forged = Receipt(P[2], d.hash, DIGEST).signed(IDS[1].sign)
    rej(Verdict(d, (rs[0], forged), votes), Reason.RECEIPT_INVALID)
    other = duel(did="other")
    rej(Verdict(d, (rs[0], receipts(other)[1]), votes), Reason.RECEIPT_INVALID)     # receipt of another duel
    rej(Verdict(d, rs, (vote(d, 6, "A"),)), Reason.VOTE_INVALID)                   # not a judge
    rej(Verdict(d, rs, (vote(d, 3, "A"), vote(d, 3, "A"))), Reason.VOTE_INVALID)    # repeated
    rej(Verdict(d, rs, (vote(d, 3, "A"), vote(d, 3, "B"))), Reason.VOTE_INVALID)    # changed its mind
    rej(Verdict(d, rs, (vote(d, 3, "A", signer=4),)), Reason.VOTE_INVALID)          # forged
    rej(Verdict(d, rs, (vote(other, 3, "A"),)), Reason.VOTE_INVALID)                # vote on another duel
    bad_duel = DuelTicket(NID, "bad", P[0], (P[1], P[2]), (P[1],), 1, 1, 10**9).signed(IDS[0].sign)
    rej(Verdict(bad_duel, receipts(bad_duel), ()), Reason.MALFORMED)               # executor as judge
    assert led.add_block(w0.block([Verdict(d, rs, votes)])).status == "applied"


# ---------------------------------------------------------------------------- equivocation

def _forked_chain():
    w = Writer(0)
    b1 = w.block([Stake(5_000)], 10)
    b2 = w.block([Unstake(2_000), Transfer(P[1], 100)], 20)
    b3 = w.block([Transfer(P[1], 1_000)], 30)
    alt2 = blk(0, 2, b1.hash, 20, [Transfer(P[2], 100)])
    return b1, b2, b3, alt2


def test_equivocation_cuts_chain_and_burns_stake():
    b1, b2, b3, alt2 = _forked_chain()
    led = Ledger(G)
    for b in (b1, b2, b3):
        assert led.add_block(b).status == "applied"
    assert led.account(P[0]).unbonding == 2_000
    r = led.add_block(alt2)
    assert (r.status, r.reason) == ("equivocation", Reason.EQUIVOCATED) and r.proof is not None
    assert r.proof.author == P[0] and r.proof.height == 2 and led.cut_height(P[0]) == 2
    a = led.account(P[0])
    # only block 1 counts: 5000 staked, all of it burned; transfers of blocks 2 and 3 undone
    # stake and (issue 18) the remaining balance are burned
    assert (a.balance, a.stake, a.unbonding, a.height, a.equivocated, a.burned) == (0, 0, 0, 1, True, ALLOC)
    assert a.selectable_stake == 0
    assert led.account(P[1]).balance == ALLOC and led.account(P[2]).balance == ALLOC
    assert led.burned() == ALLOC and conserved(led)
    assert led.proofs() == [r.proof]
    for b in (b2, b3, alt2, Writer(0).peek([Stake(1)])):
        if b.height >= 2:
            assert_rejected(led, b, Reason.EQUIVOCATED)
    assert led.add_block(b1).status == "duplicate"
    # a replica that learns the proof first, then gets the blocks, ends in the same state
    other = Ledger(G)
    assert other.add_proof(r.proof) is True and other.add_proof(r.proof) is False
    for b in (b3, alt2, b2, b1):
        other.add_block(b)
    assert other.state_hash() == led.state_hash() and other.accounts() == led.accounts()


def test_lower_equivocation_lowers_the_cut():
    b1, b2, b3, alt2 = _forked_chain()
    alt1 = blk(0, 1, G.hash, 10, [Stake(1)])
    led = Ledger(G)
    for b in (b1, b2, b3, alt2):
        led.add_block(b)
    assert led.cut_height(P[0]) == 2
    r = led.add_block(alt1)
    assert r.status == "equivocation" and r.proof is not None and led.cut_height(P[0]) == 1
    a = led.account(P[0])
    assert (a.balance, a.stake, a.height, a.burned) == (0, 0, 0, ALLOC)
    assert led.total_supply() == G.supply - ALLOC
    # a higher proof after a lower one changes nothing
    assert led.add_proof(EquivocationProof(b2.header, alt2.header)) is False


def test_equivocation_between_pending_blocks():
    b1, b2, b3, alt2 = _forked_chain()
    led = Ledger(G)
    assert led.add_block(b2).status == "pending"
    r = led.add_block(alt2)
    assert r.status == "equivocation" and led.cut_height(P[0]) == 2 and led.pending_count() == 0
    assert led.add_block(b1).status == "applied"
    assert_rejected(led, b3, Reason.EQUIVOCATED)
    assert led.pending_count() == 0


def test_proof_drops_pending_blocks_at_and_above_cut():
    b1, b2, b3, alt2 = _forked_chain()
    led = Ledger(G)
    led.add_block(b3)
    assert led.pending_count() == 1
    assert led.add_proof(EquivocationProof(alt2.header, b2.header)) is True
    assert led.pending_count() == 0 and led.cut_height(P[0]) == 2


def test_invalid_equivocation_proofs_raise():
    b1, b2, b3, alt2 = _forked_chain()
    other = Genesis("other-net", PARAMS, G.allocations)
    f1, f2 = Writer(0, other).peek([Stake(1)]), Writer(0, other).peek([Stake(2)])
    c1 = Writer(1).peek([Stake(1)])
    cases = [
        (EquivocationProof(b2.header, b2.header), Reason.PROOF_INVALID),                 # same block
        (EquivocationProof(b1.header, b2.header), Reason.PROOF_INVALID),                 # different heights
        (EquivocationProof(b1.header, c1.header), Reason.PROOF_INVALID),                 # different authors
        (EquivocationProof(b2.header, replace(alt2.header, signature=bytes(64))), Reason.PROOF_INVALID),
        (EquivocationProof(b2.header, replace(alt2.header, time_ms=21)), Reason.PROOF_INVALID),  # altered
        (EquivocationProof(f1.header, f2.header), Reason.WRONG_NETWORK),
    ]
    led = Ledger(G)
    for b in (b1, b2, b3):
        led.add_block(b)
    before = led.state_hash()
    for proof, reason in cases:
        with pytest.raises(InvalidBlock) as ei:
            led.add_proof(proof)
        assert ei.value.reason == reason
        # the same proof as an entry of a block is refused too
        assert_rejected(led, Writer(3).peek([proof]), reason)
    assert led.cut_height(P[0]) is None and led.state_hash() == before and led.proofs() == []


def test_valid_proof_inside_a_block_cuts_the_equivocator():
    b1, b2, b3, alt2 = _forked_chain()
    proof = EquivocationProof(b2.header, alt2.header)
    led = Ledger(G)
    led.add_block(b1)
    assert led.add_block(Writer(3).block([proof])).status == "applied"
    assert led.cut_height(P[0]) == 2
    assert_rejected(led, b2, Reason.EQUIVOCATED)
    assert led.account(P[0]).burned == ALLOC and conserved(led)


# ---------------------------------------------------------------------------- debt

def test_debt_below_overdraft():
    g = Genesis("debt-net", replace(PARAMS, overdraft=500), ((P[0], 1_000), (P[1], 1_000)))
    led = Ledger(g)
    w0 = Writer(0, g)
    w1 = Writer(1, g)
    led.add_block(w1.block([Stake(800)]))                       # requester 1: balance 200, stake 800
    a = led.account(P[1])
    assert not a.in_debt and a.selectable_stake == 800
    t1 = Ticket(g.network_id, "a", P[1], P[0], 700, 10**9).signed(IDS[1].sign)
    t2 = Ticket(g.network_id, "b", P[1], P[0], 700, 10**9).signed(IDS[1].sign)
    led.add_block(w0.block([Claim(t1, DIGEST, 700)]))           # balance -500: at the limit
    a = led.account(P[1])
    assert (a.balance, a.in_debt, a.selectable_stake) == (-500, False, 800)
    led.add_block(w0.block([Claim(t2, DIGEST, 1)]))             # -501: in debt
    a = led.account(P[1])
    assert (a.balance, a.stake, a.in_debt, a.selectable_stake) == (-501, 800, True, 0)
    assert led.account(P[0]).balance == 1_701 and not led.account(P[0]).in_debt
    assert led.total_supply() == g.supply
    # paying the debt back lifts it
    pay = w0.block([Transfer(P[1], 1)])
    led.add_block(pay)
    assert led.account(P[1]).in_debt                               # in flight until received
    assert led.add_block(w1.block([Receive(pay, 0)])).status == "applied"
    assert not led.account(P[1]).in_debt and led.account(P[1]).selectable_stake == 800


def bonded(led: Ledger, *duels: DuelTicket, exes=(1, 2)) -> None:
    """Both executors of ``duels`` lock their bonds (height 1 of each: a verdict counts only then)."""
    for e in exes:
        assert led.add_block(Writer(e).block([DuelBond(d) for d in duels], 5)).status == "applied"


def test_negative_stake_is_not_selectable():
    led = Ledger(G)
    d = duel()
    bonded(led, d)
    led.add_block(Writer(0).block([Verdict(d, receipts(d), (vote(d, 3, "A"), vote(d, 4, "A"), vote(d, 5, "B")))]))
    a = led.account(P[5])  # a minority judge's penalty without stake
    assert a.stake == -200 and a.selectable_stake == 0 and not a.in_debt


# ---------------------------------------------------------------------------- building our own blocks

def test_validate_own_splits_good_and_bad():
    led = Ledger(G)
    w0 = Writer(0)
    t_old = ticket(1, 0, rid="old")
    led.add_block(w0.block([Claim(t_old, DIGEST, 10), Stake(50)], 1_000))
    t_ok, t_other = ticket(1, 0, rid="ok", price=300), ticket(1, 2, rid="other")
    t_exp = ticket(1, 0, rid="exp", expires=5)
    candidates = [
        Stake(100),                       # ok: own stake now 150
        Unstake(120),                     # ok: 30 left
        Unstake(31),                      # exceeds
        Withdraw(1),                      # not matured
        Transfer(P[0], 1),                # to oneself
        Transfer(P[1], 25),               # ok
        Claim(t_ok, DIGEST, 300),         # ok
        Claim(t_ok, DIGEST, 1),           # second claim of the same ticket
        Claim(t_old, DIGEST, 10),         # claimed in an earlier block
        Claim(t_other, DIGEST, 1),        # another executor's ticket
        Claim(t_exp, DIGEST, 1),          # expired
        Claim(ticket(1, 0, rid="p", price=5), DIGEST, 6),  # above price
        Void(ticket(1, 0, rid="v")),      # not the requester
        Void(ticket(0, 1, rid="mine")),   # ok
        Stake(0),                         # malformed
    ]
    ok, bad = led.validate_own(P[0], 2_000, candidates)
    assert ok == [candidates[i] for i in (0, 1, 5, 6, 13)]
    assert [(e, r) for e, r in bad] == [
        (candidates[2], Reason.UNSTAKE_EXCEEDS_STAKE), (candidates[3], Reason.NOT_MATURED),
        (candidates[4], Reason.SELF_TRANSFER), (candidates[7], Reason.TICKET_CLAIMED),
        (candidates[8], Reason.TICKET_CLAIMED), (candidates[9], Reason.NOT_TICKET_EXECUTOR),
        (candidates[10], Reason.TICKET_EXPIRED), (candidates[11], Reason.AMOUNT_EXCEEDS_PRICE),
        (candidates[12], Reason.NOT_TICKET_REQUESTER), (candidates[14], Reason.MALFORMED)]
    blk2 = led.next_block(P[0], 2_000, ok, IDS[0].sign)
    assert (blk2.height, blk2.prev_hash, blk2.time_ms) == (2, w0.prev, 2_000)
    r = led.add_block(blk2)
    assert r.status == "applied" and r.applied == (blk2,)
    a = led.account(P[0])
    assert (a.stake, a.unbonding, a.height) == (30, 120, 2)
    assert a.balance == ALLOC + 10 - 50 - 100 - 25 + 300
    assert led.is_claimed(t_ok.hash) and led.total_supply() == G.supply
    # the clock went backwards: next_block keeps the chain's time monotone
    blk3 = led.next_block(P[0], 1, [Transfer(P[1], 1)], IDS[0].sign)
    assert blk3.time_ms == 2_000 and led.add_block(blk3).status == "applied"
    # validate_own never changes the state
    h = led.state_hash()
    led.validate_own(P[0], 3_000, candidates)
    assert led.state_hash() == h


def test_next_block_for_a_new_author_links_to_genesis():
    led = Ledger(G)
    b = led.next_block(P[4], 7, [Stake(1)], IDS[4].sign)
    assert (b.height, b.prev_hash, b.time_ms, b.network) == (1, G.hash, 7, NID)
    assert led.add_block(b).status == "applied" and led.height(P[4]) == 1
    # signed with the wrong key: refused
    assert_rejected(led, led.next_block(P[4], 8, [Stake(1)], IDS[3].sign), Reason.BAD_SIGNATURE)


# ---------------------------------------------------------------------------- regressions

def test_entries_after_a_proof_entry_are_applied_once():
    """Regression: a block [proof of Z's fork, Transfer] applied after Z's forked block used to
    apply the Transfer twice (once by the refold the proof caused, once more after it)."""
    z1a = blk(2, 1, G.hash, 10, [Stake(5)])
    z1b = blk(2, 1, G.hash, 10, [Stake(6)])
    x1 = blk(0, 1, G.hash, 20, [EquivocationProof(z1a.header, z1b.header), Transfer(P[1], 100)])
    first_z, first_x = Ledger(G), Ledger(G)
    for b in (z1a, x1):
        first_z.add_block(b)
    for b in (x1, z1a):
        first_x.add_block(b)
    r1 = blk(1, 1, G.hash, 20, [Receive(x1, 1)])   # the recipient acknowledges the transfer
    for led in (first_z, first_x):
        assert led.add_block(r1).status == "applied"
        assert led.account(P[1]).balance == ALLOC + 100 and led.account(P[0]).balance == ALLOC - 100
        assert led.cut_height(P[2]) == 1 and led.account(P[2]).balance == 0 and led.account(P[2]).burned == ALLOC
        assert led.total_supply() == G.supply - ALLOC and conserved(led)
    assert first_z.state_hash() == first_x.state_hash() and first_z.accounts() == first_x.accounts()


def test_self_incriminating_proof_cuts_the_block_that_carries_it():
    a1 = blk(0, 1, G.hash, 10, [Stake(500)])
    a2 = blk(0, 2, a1.hash, 20, [Transfer(P[1], 10)])
    b2 = blk(0, 2, a1.hash, 20, [Transfer(P[1], 20)])
    a3 = blk(0, 3, a2.hash, 30, [EquivocationProof(a2.header, b2.header), Transfer(P[1], 1_000)])
    x, y = Ledger(G), Ledger(G)
    for b in (a1, a2, a3):
        x.add_block(b)
    for b in (a1, b2, a2, a3):
        y.add_block(b)
    for led in (x, y):
        assert led.cut_height(P[0]) == 2 and led.height(P[0]) == 1
        assert led.account(P[1]).balance == ALLOC and led.account(P[0]).burned == ALLOC and conserved(led)
    assert x.state_hash() == y.state_hash()


def test_fork_detection_does_not_depend_on_arrival_order():
    """Regression: a validly signed block refused by the chain checks (here: time going back)
    and a valid block at the same height are an equivocation whichever arrives first."""
    w = Writer(3)
    a1 = w.block([Stake(5)], 10)
    a2 = w.block([Stake(5)], 20)
    b2 = blk(3, 2, a1.hash, 5, [Stake(7)])     # signed by 3 at height 2, time before a1
    x, y = Ledger(G), Ledger(G)
    assert [x.add_block(b).status for b in (a1, a2, b2)] == ["applied", "applied", "equivocation"]
    rs = [y.add_block(b) for b in (a1, b2, a2)]
    assert [(r.status, r.reason) for r in rs] == [("applied", ""), ("rejected", Reason.TIME_BACKWARDS),
                                                  ("equivocation", Reason.EQUIVOCATED)]
    assert y.cut_height(P[3]) == x.cut_height(P[3]) == 2
    assert y.state_hash() == x.state_hash() and y.accounts() == x.accounts()
    # two refused blocks at one height are an equivocation too
    z = Ledger(G)
    z.add_block(a1)
    b2_other = blk(3, 2, a1.hash, 6, [Stake(7)])
    assert z.add_block(b2).status == "rejected"
    assert z.add_block(b2).status == "rejected"                  # the same block again: no offence
    assert z.cut_height(P[3]) is None
    assert z.add_block(b2_other).status == "equivocation" and z.cut_height(P[3]) == 2


def test_refused_pending_block_then_rival():
    w = Writer(3)
    a1, a2 = w.block([Stake(5)], 10), w.block([Stake(5)], 20)
    b2 = blk(3, 2, a1.hash, 5, [Stake(7)])
    x = Ledger(G)
    assert x.add_block(b2).status == "pending"
    assert x.add_block(a1).status == "applied"       # unlocks b2, which is refused
    assert x.height(P[3]) == 1 and x.pending_count() == 0
    assert x.add_block(a2).status == "equivocation" and x.cut_height(P[3]) == 2
    y = Ledger(G)
    for b in (a2, b2):
        y.add_block(b)
    y.add_block(a1)
    assert y.cut_height(P[3]) == 2 and y.state_hash() == x.state_hash()


def test_equivocation_does_not_forgive_negative_stake():
    """Regression: a key that lost a penalty without stake (a minority judge: stake -200) and then
    equivocated used to have its -200 'burned', i.e. its debt forgiven and credit minted."""
    d = duel(bond=500)
    v = blk(0, 1, G.hash, 10, [Verdict(d, receipts(d), (vote(d, 3, "A"), vote(d, 4, "A"), vote(d, 5, "B")))])
    e1 = blk(5, 1, G.hash, 10, [Transfer(P[6], 1)])
    e1b = blk(5, 1, G.hash, 10, [Transfer(P[6], 2)])
    led = Ledger(G)
    bonded(led, d)
    for b in (v, e1, e1b):
        led.add_block(b)
    a = led.account(P[5])
    assert a.equivocated and (a.stake, a.unbonding, a.burned, a.selectable_stake) == (-200, 0, ALLOC, 0)
    assert led.burned() == ALLOC and conserved(led)


def test_equivocator_with_stake_and_lost_bond_burns_only_what_it_holds():
    """The loser P[2] bonded 500 at height 1 and staked at height 2; its fork at height 1 cuts
    its bond, so the verdict no longer counts (nothing of its chain does); a fork at height 3
    keeps the bond (locked, lost: it is not P[2]'s any more) and burns what it holds."""
    d = duel(bond=500)
    b1 = blk(2, 1, G.hash, 5, [DuelBond(d)])
    s = blk(2, 2, b1.hash, 10, [Stake(2_000), Unstake(300)])
    a1 = blk(1, 1, G.hash, 5, [DuelBond(d)])
    v = blk(0, 1, G.hash, 10, [Verdict(d, receipts(d), (vote(d, 3, "A"),))])
    fork = blk(2, 1, G.hash, 10, [Stake(1)])
    led = Ledger(G)
    for b in (a1, b1, s, v, fork):
        led.add_block(b)
    a = led.account(P[2])
    assert (a.balance, a.stake, a.unbonding, a.burned, a.duels_lost) == (0, 0, 0, ALLOC, 0)
    assert led.account(P[1]).duels_won == 0 and conserved(led)
    led2 = Ledger(G)
    for b in (a1, b1, s, v, blk(2, 3, s.hash, 20, [Stake(1)]), blk(2, 3, s.hash, 20, [Stake(2)])):
        led2.add_block(b)
    a = led2.account(P[2])    # balance ALLOC - 500 - 2000, stake 1700, unbonding 300 burned
    assert (a.balance, a.stake, a.unbonding, a.burned, a.duels_lost) == (0, 0, 0, ALLOC - 500, 1)
    assert led2.locked() == 1_000 and conserved(led2)


def test_proof_carried_by_a_later_cut_block_counts_on_every_replica():
    """Regression: a proof used to count only if the block carrying it was accepted before its
    author was cut, so replicas holding the same blocks disagreed about Z."""
    z1 = blk(1, 1, G.hash, 10, [Stake(100)])
    z2 = blk(1, 2, z1.hash, 10, [Stake(200)])
    z2b = blk(1, 2, z1.hash, 10, [Stake(300)])
    x1 = blk(0, 1, G.hash, 10, [EquivocationProof(z2.header, z2b.header)])   # X reports Z's fork...
    x1b = blk(0, 1, G.hash, 10, [Stake(1)])                                   # ...and forks itself
    a, b = Ledger(G), Ledger(G)
    for blk_ in (z1, z2, x1, x1b):
        a.add_block(blk_)
    for blk_ in (x1b, z1, z2, x1):
        b.add_block(blk_)
    assert a.cut_height(P[0]) == b.cut_height(P[0]) == 1
    assert a.cut_height(P[1]) == b.cut_height(P[1]) == 2
    assert a.account(P[1]).burned == ALLOC and a.account(P[1]).balance == 0
    assert a.state_hash() == b.state_hash() and a.accounts() == b.accounts()


def test_proof_in_a_pending_block_counts_at_once():
    z1 = blk(1, 1, G.hash, 10, [Stake(100)])
    z1b = blk(1, 1, G.hash, 10, [Stake(200)])
    x2 = blk(0, 2, "22" * 32, 10, [EquivocationProof(z1.header, z1b.header)])
    led = Ledger(G)
    assert led.add_block(z1).status == "applied"
    assert led.add_block(x2).status == "pending"
    assert led.cut_height(P[1]) == 1 and led.account(P[1]).burned == ALLOC and led.height(P[1]) == 0


def test_heads_digest_depends_only_on_the_blocks_held():
    """Regression: the digest used to hash the first proof pair seen, so replicas holding the
    same three blocks at one height (in different orders) had different digests."""
    a, b, c = (blk(0, 1, G.hash, 10, [Stake(k)]) for k in (1, 2, 3))
    x, y = Ledger(G), Ledger(G)
    for blk_ in (a, b, c):
        x.add_block(blk_)
    for blk_ in (a, c, b):
        y.add_block(blk_)
    assert x.state_hash() == y.state_hash()
    assert x.heads_digest() == y.heads_digest()
    assert x.heads_digest() != Ledger(G).heads_digest()
    z = Ledger(G)
    z.add_block(a)
    assert z.heads_digest() not in (x.heads_digest(), Ledger(G).heads_digest())



def test_verdict_after_the_duel_expired_is_rejected():
    d = replace(duel(), expires_ms=500, signature=b"").signed(IDS[0].sign)
    votes = (vote(d, 3, "A"), vote(d, 4, "A"))
    assert_rejected(Ledger(G), Writer(0).peek([Verdict(d, receipts(d), votes)], time_ms=501), Reason.TICKET_EXPIRED)
    led = Ledger(G)
    assert led.add_block(Writer(0).block([Verdict(d, receipts(d), votes)], time_ms=500)).status == "applied"


def test_duel_outcomes_and_win_rates_in_accounts():
    # two settled duels between P[1] (A) and P[2] (B): one won by A, one tie
    d1, d2 = duel(did="w1"), duel(did="w2")
    ledger = Ledger(G)
    bonded(ledger, d1, d2)
    blk_ = Writer(0).block([Verdict(d1, receipts(d1), (vote(d1, 3, "A"), vote(d1, 4, "A"), vote(d1, 5, "B"))),
                            Verdict(d2, receipts(d2), (vote(d2, 3, "A"), vote(d2, 4, "B"), vote(d2, 5, "abstain")))])
    assert ledger.add_block(blk_).status == "applied"
    a, b = ledger.account(P[1]), ledger.account(P[2])
    assert (a.duels_won, a.duels_lost, a.duels_tied, a.win_rate) == (1, 0, 1, 0.75)
    assert (b.duels_won, b.duels_lost, b.duels_tied, b.win_rate) == (0, 1, 1, 0.25)
    j3, j5 = ledger.account(P[3]), ledger.account(P[5])
    assert (j3.judge_majority, j3.judge_minority, j3.judge_abstained) == (1, 0, 0)
    assert (j5.judge_majority, j5.judge_minority, j5.judge_abstained) == (0, 1, 1)
    assert ledger.summary()["duels_settled"] == 2
    assert ledger.account(P[6]).win_rate is None
    assert a.to_dict()["win_rate"] == 0.75
