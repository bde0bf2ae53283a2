"""Solvency (issue 18, item 1): a Stake or Transfer must be affordable by the credit the author's
own chain proves (genesis allocation + own Claims + own Receives + own Withdraws - own Stakes -
own Transfers >= -overdraft); transferred credit reaches the recipient by its own Receive entry,
counted only while the sender's block is counted."""

from __future__ import annotations

import collections
import copy
import hashlib
import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from wwwserve_p2p.core.ledger import (
    Claim, CloseChannel, DuelBond, DuelRelease, DuelTicket, EquivocationProof, Genesis, Ledger, LedgerParams, OpenChannel,
    Reason, Receipt, Receive, Stake, Ticket, Transfer, Unstake, Verdict, Vote, Withdraw, build_block, channel_id, panel_of,
)
from wwwserve_p2p.identity import Identity

N = 6
IDS = [Identity(hashlib.sha256(b"wwwserve-ledger-solvency-%d" % i).digest()) for i in range(N)]
P = [i.peer_id for i in IDS]
ALLOC = 10_000
PARAMS = LedgerParams(unbonding_ms=100, overdraft=0)
#: P[0..2] allocated, P[3..5] start with nothing
G = Genesis("solvency-net", PARAMS, tuple((p, ALLOC) for p in P[:3]))
NID = G.network_id


def blk(i: int, height: int, prev: str, t: int, entries, g: Genesis = G):
    return build_block(g.network_id, P[i], height, prev, t, entries, IDS[i].sign)


def same_fold(led: Ledger) -> bool:
    return led._fold.snapshot() == led.recompute_fold().snapshot()


def conserved(led: Ledger) -> bool:
    return led.total_supply() + led.burned() == led.genesis.supply


def test_a_key_with_nothing_cannot_stake_or_transfer_on_any_replica():
    mint = blk(4, 1, G.hash, 10, [Transfer(P[5], 10**9)])
    stake = blk(4, 1, G.hash, 10, [Stake(1)])
    for b in (mint, stake):
        for order in ([b], [blk(0, 1, G.hash, 5, [Transfer(P[1], 1)]), b]):
            led = Ledger(G)
            for x in order:
                r = led.add_block(x)
            assert (r.status, r.reason) == ("rejected", Reason.INSUFFICIENT_FUNDS)
            assert led.height(P[4]) == 0 and led.account(P[5]).balance == 0 and conserved(led)
    led = Ledger(G)
    ok, bad = led.validate_own(P[4], 10, [Stake(1), Transfer(P[5], 10**9)])
    assert ok == [] and [r for _, r in bad] == [Reason.INSUFFICIENT_FUNDS] * 2
    assert led.provable(P[4]) == 0 and led.spendable(P[4]) == 0
    # a Receive of the minting block (never accepted anywhere) waits for it: it credits nothing,
    # neither in the fold nor in the recipient's provable credit
    rec = blk(5, 1, G.hash, 20, [Receive(mint, 0)])
    r = led.add_block(rec)
    assert (r.status, r.reason) == ("pending", Reason.MISSING_DEPENDENCY) and led.waiting_count() == 1
    assert led.account(P[5]).balance == 0 and led.spendable(P[5]) == 0 and led.provable(P[5]) == 0


def test_allocated_key_can_spend_exactly_its_allocation_plus_overdraft():
    led = Ledger(G)
    r = copy.deepcopy(led).add_block(blk(0, 1, G.hash, 10, [Stake(ALLOC), Transfer(P[1], 1)]))
    assert (r.status, r.reason) == ("rejected", Reason.INSUFFICIENT_FUNDS)
    assert led.add_block(blk(0, 1, G.hash, 10, [Stake(ALLOC - 1), Transfer(P[1], 1)])).status == "applied"
    assert led.provable(P[0]) == 0 and led.spendable(P[0]) == 0
    g = Genesis("od-net", replace(PARAMS, overdraft=500), ((P[0], 1_000),))
    led = Ledger(g)
    assert led.add_block(blk(3, 1, g.hash, 10, [Stake(500)], g)).status == "applied"    # overdraft only
    r = copy.deepcopy(led).add_block(blk(3, 2, led.blocks(P[3])[0].hash, 10, [Stake(1)], g))
    assert (r.status, r.reason) == ("rejected", Reason.INSUFFICIENT_FUNDS)
    assert led.account(P[3]).in_debt is False and led.account(P[3]).balance == -500


def test_unstake_and_withdraw_keep_the_unbonding_rules_and_count_as_provable():
    led = Ledger(G)
    b1 = blk(0, 1, G.hash, 10, [Stake(ALLOC), Unstake(4_000)])
    assert led.add_block(b1).status == "applied" and led.provable(P[0]) == 0
    r = copy.deepcopy(led).add_block(blk(0, 2, b1.hash, 50, [Withdraw(4_000)]))
    assert (r.status, r.reason) == ("rejected", Reason.NOT_MATURED)
    b2 = blk(0, 2, b1.hash, 110, [Withdraw(4_000), Transfer(P[3], 4_000)])
    assert led.add_block(b2).status == "applied" and led.provable(P[0]) == 0


def test_received_credit_is_spendable_only_after_the_receive():
    led = Ledger(G)
    pay = blk(0, 1, G.hash, 10, [Transfer(P[3], 1_000), Transfer(P[4], 50)])
    assert led.add_block(pay).status == "applied"
    assert led.in_flight() == 1_050 and led.account(P[3]).balance == 0 and conserved(led)
    r = copy.deepcopy(led).add_block(blk(3, 1, G.hash, 20, [Stake(1)]))
    assert (r.status, r.reason) == ("rejected", Reason.INSUFFICIENT_FUNDS)
    # static checks of the Receive
    for entry, reason in [
        (Receive(pay, 1), Reason.RECEIVE_INVALID),                      # to P[4], not to P[3]
        (Receive(pay, 2), Reason.RECEIVE_INVALID),                      # no such entry
        (Receive(pay, -1), Reason.RECEIVE_INVALID),
        (Receive(replace(pay, signature=bytes(64)), 0), Reason.RECEIVE_INVALID),
        (Receive(replace(pay, entries=(Transfer(P[3], 10**6), pay.entries[1])), 0), Reason.RECEIVE_INVALID),
        (Receive(blk(0, 1, G.hash, 10, [Stake(1)]), 0), Reason.RECEIVE_INVALID),   # not a transfer
    ]:
        probe = copy.deepcopy(led)
        r = probe.add_block(blk(3, 1, G.hash, 20, [entry]))
        assert (r.status, r.reason) == ("rejected", reason), entry
    other = Genesis("other-net", PARAMS, G.allocations)
    foreign = blk(0, 1, other.hash, 10, [Transfer(P[3], 5)], other)
    r = copy.deepcopy(led).add_block(blk(3, 1, G.hash, 20, [Receive(foreign, 0)]))
    assert (r.status, r.reason) == ("rejected", Reason.WRONG_NETWORK)
    r = copy.deepcopy(led).add_block(blk(3, 1, G.hash, 5, [Receive(pay, 0)]))       # dated before the payment
    assert (r.status, r.reason) == ("rejected", Reason.BEFORE_ISSUE)
    # receive then spend in one block
    r1 = blk(3, 1, G.hash, 20, [Receive(pay, 0), Stake(600), Transfer(P[5], 400)])
    assert led.add_block(r1).status == "applied"
    a3 = led.account(P[3])
    assert (a3.balance, a3.stake, led.provable(P[3]), led.spendable(P[3])) == (0, 600, 0, 0)
    assert led.is_received(P[0], 1, 0, by=P[3]) and not led.is_received(P[0], 1, 1, by=P[3])
    r = copy.deepcopy(led).add_block(blk(3, 2, r1.hash, 30, [Receive(pay, 0)]))
    assert (r.status, r.reason) == ("rejected", Reason.ALREADY_RECEIVED)
    assert led.in_flight() == 450 and conserved(led) and same_fold(led)


def test_receive_before_its_transfer_arrives_and_order_independence():
    pay = blk(0, 1, G.hash, 10, [Transfer(P[3], 1_000)])
    rec = blk(3, 1, G.hash, 20, [Receive(pay, 0), Transfer(P[4], 300)])
    fwd = blk(4, 1, G.hash, 30, [Receive(rec, 1), Stake(300)])
    states = set()
    for perm in ([pay, rec, fwd], [fwd, rec, pay], [rec, fwd, pay], [fwd, pay, rec]):
        led = Ledger(G)
        for b in perm:
            assert led.add_block(b).status in ("applied", "pending")   # pending: waits for the transfer
            assert conserved(led) and same_fold(led)
        assert led.waiting_count() == 0 and led.height(P[4]) == 1
        assert led.account(P[3]).balance == 700 and led.account(P[4]).stake == 300 and led.in_flight() == 0
        states.add(led.state_hash())
    assert len(states) == 1


def test_a_receive_of_a_cut_block_counts_zero_and_the_cut_is_incremental():
    pay = blk(0, 1, G.hash, 10, [Transfer(P[3], 1_000)])
    fork = blk(0, 1, G.hash, 10, [Transfer(P[4], 1_000)])          # the same credit, twice
    rec3 = blk(3, 1, G.hash, 20, [Receive(pay, 0), Stake(1_000)])
    rec4 = blk(4, 1, G.hash, 20, [Receive(fork, 0)])
    led = Ledger(G)
    for b in (pay, rec3):
        assert led.add_block(b).status == "applied"
    assert led.account(P[3]).selectable_stake == 1_000
    # a Receive of the other fork proves the equivocation itself: recorded, then the fork (valid
    # on the sender's chain below the cut) counts as its dependency, so the receiving block is
    # accepted exactly as on a replica that saw the proof first
    r = led.add_block(rec4)
    assert r.status == "applied" and led.cut_height(P[0]) == 1 and led.height(P[4]) == 1
    assert led.add_block(fork).reason == Reason.EQUIVOCATED
    assert same_fold(led) and conserved(led)
    a3 = led.account(P[3])
    # the sender's block is cut: its transfer and the Receives of it count zero in the fold; the
    # equivocator's whole balance is burned (its forks cannot spend the same credit twice)
    assert (a3.balance, a3.stake, a3.in_debt, a3.selectable_stake) == (-1_000, 1_000, True, 0)
    assert led.account(P[4]).balance == 0 and led.spendable(P[3]) == 0 and led.in_flight() == 0
    a0 = led.account(P[0])
    assert a0.balance == 0 and a0.burned == ALLOC and a0.equivocated
    assert spendable_supply(led) <= G.supply
    # replicas that saw the proof first, or got the blocks in any other order, agree
    for order in ((rec4, rec3, pay, fork), (fork, rec4, pay, rec3), (rec3, rec4, fork, pay)):
        fresh = Ledger(G)
        fresh.add_proof(r.proof or EquivocationProof(pay.header, fork.header))
        for b in order:
            fresh.add_block(b)
        assert fresh.state_hash() == led.state_hash() and fresh.accounts() == led.accounts()
        assert fresh._fold.snapshot() == led._fold.snapshot()
    # the recipient's own cut returns received credit to flight
    led2 = Ledger(G)
    for b in (pay, rec3):
        led2.add_block(b)
    led2.add_proof(EquivocationProof(rec3.header, blk(3, 1, G.hash, 20, [Receive(pay, 0)]).header))
    assert led2.in_flight() == 1_000 and led2.account(P[3]).balance == 0 and same_fold(led2) and conserved(led2)
    assert led2.provable(P[3]) == 0


def test_credit_cannot_be_laundered_through_a_receive_of_an_uncounted_block():
    """Issue 18 (the laundering hole of the first solvency rule): a Receive was chain-valid for
    any validly signed Transfer to its author, so a throwaway key forwarded credit of a block
    that never counts (its sender could not afford it). Now a Receive waits until the sender's
    block is accepted: the forwarder's block is never accepted, the third party gets nothing,
    in any order; nobody is in debt."""
    mint = blk(4, 1, G.hash, 10, [Transfer(P[5], 5_000)])          # P[4] has nothing: never counted
    launder = blk(5, 1, G.hash, 20, [Receive(mint, 0), Transfer(P[3], 5_000)])
    cash = blk(3, 1, G.hash, 30, [Receive(launder, 1)])
    for order in ((mint, launder, cash), (cash, launder, mint), (launder, cash, mint)):
        led = Ledger(G)
        results = [led.add_block(b) for b in order]
        assert results[order.index(mint)].reason == Reason.INSUFFICIENT_FUNDS
        assert led.height(P[5]) == 0 and led.height(P[3]) == 0 and led.waiting_count() == 2
        a5, a3 = led.account(P[5]), led.account(P[3])
        assert (a5.balance, a5.in_debt, a3.balance) == (0, False, 0) and conserved(led)
        assert led.provable(P[5]) == 0 and led.provable(P[3]) == 0
    # the same with a self-equivocation of the key with nothing: its forks are not valid on its
    # (empty) chain, so a proof does not make them count either
    other = blk(4, 1, G.hash, 10, [Transfer(P[5], 7)])
    led = Ledger(G)
    for b in (launder, cash, mint, other):
        led.add_block(b)
    assert led.cut_height(P[4]) == 1 and led.height(P[5]) == 0 and led.height(P[3]) == 0
    assert led.account(P[3]).balance == 0 and conserved(led)


# ---------------------------------------------------------------------------- state machine

#: what the state machine's runs reached (bonds, releases, verdicts that counted), for the report
SEEN: "collections.Counter[str]" = collections.Counter()

def spendable_supply(led: Ledger) -> int:
    """What accounts could put to use: spendable balance, selectable stake, unbonding."""
    return sum(led.spendable(p) + a.selectable_stake + max(0, a.unbonding) for p, a in led.accounts().items())


class SolvencyMachine(RuleBasedStateMachine):
    """Any key (allocated or not) signs blocks of arbitrary Stake / Unstake / Withdraw / Transfer
    / Receive / OpenChannel / CloseChannel entries and claims of vouchers signed by any key (every
    key colludes), affordable or not; Receives name transfers of blocks that were accepted
    (what an honest service receives). Duels (issue 18, bonds): any key signs duel tickets
    between any two others; executors bond (affordable or not) and release (won, lost, tied or
    unsettled), requesters settle with any votes of the drawn panel. Replicas get the blocks in
    different orders and subsets."""

    def __init__(self):
        super().__init__()
        self.heads = [(0, G.hash, 0) for _ in range(N)]       # per author: its own view of its chain
        self.writer = Ledger(G)                               # the authors' replica
        self.universe = []
        self.dead: set[int] = set()   # authors that published a refused block (writing again would fork)
        self.rnd = random.Random(0)
        self.seqs: dict[tuple[int, str], int] = {}
        self.duels: list[DuelTicket] = []

    @rule(i=st.integers(0, N - 1), kinds=st.lists(st.tuples(st.sampled_from(
        ["stake", "unstake", "withdraw", "transfer", "transfer", "receive", "receive", "open", "open",
         "vclaim", "vclaim", "vclaim", "close", "duel", "bond", "bond", "verdict", "release", "release"]),
        st.integers(1, 2 * ALLOC), st.integers(0, 2**16)), min_size=1, max_size=4), dt=st.integers(0, 150),
        publish_refused=st.booleans())
    def write(self, i, kinds, dt, publish_refused):
        """Author ``i`` signs its next block. Entries its replica refuses are dropped, unless
        ``publish_refused``: then the block is signed as is and published (every replica refuses
        it with the same reason; that author writes no more, any other block at that height
        would be an equivocation)."""
        if i in self.dead:
            return
        h, prev, t = self.heads[i]
        t += dt
        entries = []
        for kind, amt, x in kinds:
            if kind == "stake":
                entries.append(Stake(amt))
            elif kind == "unstake":
                entries.append(Unstake(amt % 3_000 + 1))
            elif kind == "withdraw":
                entries.append(Withdraw(amt % 3_000 + 1))
            elif kind == "transfer":
                entries.append(Transfer(P[(i + 1 + x % (N - 1)) % N], amt))
            elif kind == "open":       # any key, affordable or not, toward any other key
                entries.append(OpenChannel(P[(i + 1 + x % (N - 1)) % N], amt, t + 400, x))
            elif kind == "vclaim":     # a voucher of ANY requester (colluding: we hold every key)
                j = (i + 1 + x % (N - 1)) % N
                nonces = [e.nonce for b in self.universe if b.author == P[j] for e in b.entries
                          if type(e) is OpenChannel and e.executor == P[i]] or [x]
                cid = channel_id(NID, P[j], nonces[x % len(nonces)])
                seq = self.seqs.get((i, cid), 0) + 1
                self.seqs[(i, cid)] = seq
                total = amt
                v = Ticket(NID, f"v{seq}", P[j], P[i], max(1, total // 4), t + 400, issued_ms=max(1, t - 10),
                           channel=cid, seq=seq, total=total).signed(IDS[j].sign)
                entries.append(Claim(v, "5e" * 32, 1 + (x * 7919) % total))
            elif kind == "duel":       # off-chain: a duel ticket signed by i, any two executors
                rich = [j for j in range(3) if j != i]   # mostly allocated executors (they can bond)
                e1 = rich[x % len(rich)] if x % 4 else (i + 1 + x % (N - 1)) % N
                e2 = next(j for j in ((e1 + 1 + k) % N for k in range(N)) if j not in (i, e1)
                          and (j < 3 or x % 8 == 1))
                pool = tuple(sorted((P[j], 1_000) for j in range(N) if j not in (i, e1, e2)))[:3]
                self.duels.append(DuelTicket(NID, f"duel{len(self.duels)}", P[i], (P[e1], P[e2]), (),
                                             1 + amt % 2_000, 1_000, t + 300, issued_ms=max(0, t - 10),
                                             pool=pool, judges_k=2).signed(IDS[i].sign))
            elif kind in ("bond", "release"):
                mine = [d for d in self.duels if P[i] in d.executors]
                if kind == "release" and x % 4:   # mostly duels we bonded and have not released
                    mine = [d for d in mine if self.writer.has_duel_bond(P[i], d.hash)
                            and not self.writer.duel_released(P[i], d.hash)] or mine
                if mine:
                    d = mine[x % len(mine)]
                    entries.append(DuelBond(d) if kind == "bond" else DuelRelease(d))
            elif kind == "verdict":
                mine = [d for d in self.duels if d.requester == P[i]]
                if mine:
                    d = mine[x % len(mine)]
                    rs = tuple(Receipt(e, d.hash, "7a" * 32).signed(IDS[P.index(e)].sign) for e in d.executors)
                    votes = tuple(Vote(j, d.hash, ("A", "B", "abstain")[(x >> (2 * k)) % 3]).signed(IDS[P.index(j)].sign)
                                  for k, j in enumerate(panel_of(d, rs)) if (x >> (2 * k + 8)) % 4)
                    entries.append(Verdict(d, rs, votes))
            elif kind == "close":
                mine = [(cid, info) for cid, info in self.writer.channels_of(P[i]).items()
                        if not self.writer.channel_closed(P[i], cid)]
                if mine:
                    cid, info = mine[x % len(mine)]
                    tip = self.writer.blocks(info.executor, self.writer.height(info.executor))
                    if tip:
                        entries.append(CloseChannel(cid, tip[-1].height, tip[-1].hash))
            else:
                offers = [(b, k) for b in self.universe if self.writer.height(b.author) >= b.height
                          and self.writer.blocks(b.author, b.height, b.height)[0].hash == b.hash
                          and b.time_ms <= t for k, e in enumerate(b.entries)
                          if type(e) is Transfer and e.to == P[i]]
                if offers:
                    b, k = offers[x % len(offers)]
                    entries.append(Receive(b, k))
        ok, bad = self.writer.validate_own(P[i], t, entries)
        bad = [(e, r) for e, r in bad if r != Reason.MISSING_DEPENDENCY]   # (never sealed: it would wait)
        if bad and publish_refused and not any(type(e) in (OpenChannel, CloseChannel, Claim, DuelBond, DuelRelease, Verdict)
                                               for e in entries):
            b = blk(i, h + 1, prev, t, entries)
            self.universe.append(b)
            r = self.writer.add_block(b)
            assert (r.status, r.reason) == ("rejected", bad[0][1])
            self.dead.add(i)
            return
        if not ok:
            return
        t = self.writer.block_time(P[i], t, ok)   # raised to an entry's issue time (a duel's)
        b = blk(i, h + 1, prev, t, ok)
        self.universe.append(b)
        assert self.writer.add_block(b).status == "applied"
        self.heads[i] = (h + 1, b.hash, t)

    def _seal(self, i: int, entries, dt: int = 1) -> list:
        """Author ``i`` seals what its replica accepts of ``entries`` (the rest is dropped);
        returns the refused (entry, reason) pairs."""
        if i in self.dead:
            return []
        h, prev, t = self.heads[i]
        ok, bad = self.writer.validate_own(P[i], t + dt, entries)
        if ok:
            t = self.writer.block_time(P[i], t + dt, ok)
            b = blk(i, h + 1, prev, t, ok)
            self.universe.append(b)
            assert self.writer.add_block(b).status == "applied"
            self.heads[i] = (h + 1, b.hash, t)
        return bad

    @precondition(lambda self: sum(d.duel_id.startswith("round") for d in self.duels) < 2)
    @rule(r=st.integers(0, N - 1), x=st.integers(0, 2**16), bond=st.integers(1, 3_000), side=st.sampled_from("AB"),
          escape=st.integers(1, 2 * ALLOC))
    def duel_round(self, r, x, bond, side, escape):
        """A whole duel: both executors bond (if they can), the requester settles with a
        decisive panel, the winner releases, the loser tries to release and to move out more
        than its chain proves (both refused)."""
        others = [j for j in range(N) if j != r]
        e1 = others[x % len(others)]
        e2 = [j for j in others if j != e1][(x // 7) % (len(others) - 1)]
        start = max(t for _, _, t in self.heads)
        pool = tuple(sorted((P[j], 1_000) for j in range(N) if j not in (r, e1, e2)))[:3]
        d = DuelTicket(NID, f"round{len(self.duels)}", P[r], (P[e1], P[e2]), (), bond, 1_000, start + 1_000,
                       pool=pool, judges_k=2).signed(IDS[r].sign)
        self.duels.append(d)
        for e in (e1, e2):
            self._seal(e, [DuelBond(d)])
        rs = tuple(Receipt(e, d.hash, "7a" * 32).signed(IDS[P.index(e)].sign) for e in d.executors)
        votes = tuple(Vote(j, d.hash, side).signed(IDS[P.index(j)].sign) for j in panel_of(d, rs))
        self._seal(r, [Verdict(d, rs, votes)])
        winner, loser = (e1, e2) if side == "A" else (e2, e1)
        counted = self.writer.has_duel_bond(P[e1], d.hash) and self.writer.has_duel_bond(P[e2], d.hash) \
            and self.writer.height(P[r]) and d.hash in self.writer._chains[P[r]].verdicts
        before = self.writer.provable(P[winner])
        self._seal(winner, [DuelRelease(d)])
        if counted and winner not in self.dead:
            assert self.writer.provable(P[winner]) == before + 2 * bond     # spendable gain
            SEEN["winner_released"] += 1
        if counted and loser not in self.dead:
            bad = self._seal(loser, [DuelRelease(d)])
            assert bad and bad[0][1] == Reason.DUEL_RELEASE                  # forfeit
            prov = self.writer.provable(P[loser])
            bad = self._seal(loser, [Transfer(P[r], max(prov, 0) + escape)])
            assert bad and bad[0][1] == Reason.INSUFFICIENT_FUNDS            # cannot move the bond out
            SEEN["loser_refused"] += 1

    @invariant()
    def nothing_from_nothing(self):
        led = self.writer
        assert spendable_supply(led) <= G.supply
        assert conserved(led) and same_fold(led) and led.burned() == 0
        for p in P:
            assert led.spendable(p) <= max(0, led.provable(p))
        for i in range(3, N):   # unallocated keys hold only what they were sent and received
            got = sum(e.amount for b in led.blocks(P[i]) for e in b.entries if type(e) is Receive
                      for e in [e.transfer()])
            # + what channels of allocated keys paid it (credit someone really locked)
            got += sum(c.paid() for c in led._fold.channels.values()
                       if c.opens and c.info is not None and c.info.executor == P[i])
            # + what duels moved to it: another executor's locked bond, judge shares (net)
            got += max(0, sum(d.contrib[0].get(P[i], 0) + d.contrib[1].get(P[i], 0) + d.contrib[2].get(P[i], 0)
                              for d in led._fold.duel_locks.values()))
            a = led.account(P[i])
            assert a.balance + a.stake + a.unbonding <= got

    @invariant()
    def duel_bonds_are_real(self):
        """A loser's bond is gone from what it can prove; at most both bonds are paid out of a
        duel; a verdict counts only with both bonds; locked credit is never negative."""
        led = self.writer
        f = led._fold
        assert f.locked >= 0 and all(v >= 0 for v in f.duel_locked.values())
        for dh, d in f.duel_locks.items():
            bonds = sum(d.duel.executor_bond for e in d.duel.executors if d.bonds.get(e, 0) > 0)
            paid = sum(d.payout(e) for e in d.duel.executors if d.releases.get(e, 0) > 0)
            assert paid <= bonds and sum(d.contrib[2].values()) == bonds - paid
            out = d.outcome()
            if out is not None:
                assert all(led.has_duel_bond(e, dh) for e in d.duel.executors)
                if out[0] != "tie":
                    loser = d.duel.executors[1 if out[0] == "A" else 0]
                    winner = d.duel.executors[0 if out[0] == "A" else 1]
                    if led.duel_released(loser, dh):
                        # only after the duel's deadline, when the winner did not claim both
                        # bonds by it (duel_payout): then neither took the other's bond
                        wch = led._chains.get(winner)
                        assert wch is None or dh not in wch.won
                        assert d.payout(winner) <= d.duel.executor_bond
        for d in f.duel_locks.values():
            SEEN["bonds"] += sum(1 for e in d.duel.executors if d.bonds.get(e, 0) > 0)
            SEEN["releases"] += sum(1 for e in d.duel.executors if d.releases.get(e, 0) > 0)
            SEEN["counted_verdicts"] += d.outcome() is not None

    @invariant()
    def any_order_any_duplicates_same_state(self):
        if not self.universe:
            return
        blocks = list(self.universe) + self.rnd.sample(self.universe, min(3, len(self.universe)))
        self.rnd.shuffle(blocks)
        other = Ledger(G)
        for b in blocks:
            other.add_block(b)
        assert other.state_hash() == self.writer.state_hash() and other.accounts() == self.writer.accounts()
        assert other._fold.snapshot() == self.writer._fold.snapshot()
        # a partition: half first, then the rest; each half alone agrees with a fresh replica of it
        half = blocks[: len(blocks) // 2]
        a, b = Ledger(G), Ledger(G)
        for x in half:
            a.add_block(x)
        for x in reversed(half):
            b.add_block(x)
        assert a.state_hash() == b.state_hash() and a._fold.snapshot() == b._fold.snapshot()
        for x in blocks[len(blocks) // 2:]:
            a.add_block(x)
        assert a.state_hash() == self.writer.state_hash()


SolvencyMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                                             derandomize=True, suppress_health_check=[HealthCheck.too_slow])
TestSolvencyMachine = SolvencyMachine.TestCase


def test_plan_stake_never_plans_more_than_the_chain_can_prove():
    from wwwserve_p2p.core.policy import plan_stake
    # a claim voided later leaves the fold balance below provable; a cut receive, provable above it
    assert plan_stake(5_000, 0, False, 0, 10_000, provable=3_000) == [Stake(3_000)]
    assert plan_stake(1_000, 0, False, 0, 10_000, provable=3_000) == [Stake(1_000)]
    assert plan_stake(5_000, 0, False, 200, 10_000, provable=0) == [Withdraw(200), Stake(200)]
    assert plan_stake(5_000, 0, False, 0, 10_000, provable=-10) == []
    assert plan_stake(5_000, 0, False, 0, 10_000) == [Stake(5_000)]     # no bound given: as before
    led = Ledger(G)
    pay = blk(0, 1, G.hash, 10, [Transfer(P[3], 1_000)])
    led.add_block(pay)
    a = led.account(P[3])
    assert plan_stake(a.balance, a.stake, False, 0, 500, provable=led.provable(P[3])) == []
    led.add_block(blk(3, 1, G.hash, 20, [Receive(pay, 0)]))
    a = led.account(P[3])
    plan = plan_stake(a.balance, a.stake, False, 0, 500, provable=led.provable(P[3]))
    assert plan == [Stake(500)] and led.validate_own(P[3], 30, plan)[1] == []
