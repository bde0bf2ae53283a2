"""Snapshots of settled history (core/ledger/snapshot.py, issue 18 item 5).

A random history of every entry kind that touches cross-chain state (stakes, unbonding,
transfers and receives, payment channels with voucher claims, voids and closes, legacy claims,
forks and equivocation proofs) is written by honest-looking authors. Properties:

- a replica loaded from the snapshot at any cut ``T`` and then given every block (in any
  order) equals the replica that folded everything: state hash, accounts, heads, digest,
  provable and spendable credit, and the snapshot both take at any later cut (same bytes);
- the snapshot is a function of the block set (any delivery order: same hash);
- :func:`prune` gives the same replica as loading; an attestation by more than 2/3 of the
  stake at the cut is accepted, by 2/3 or less refused; a proof below a cut burns but does not
  reopen settled history.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.ledger import (Claim, CloseChannel, EquivocationProof, Genesis, Ledger, LedgerParams,
                                      OpenChannel, Reason, Receive, Stake, Ticket, Transfer, Unstake, Void,
                                      Withdraw, build_block, channel_id)
from wwwserve_p2p.core.ledger.snapshot import (Checkpoint, Snapshot, attestation, is_attested, load_snapshot,
                                               prune, settled_time, take_snapshot)
from wwwserve_p2p.errors import LedgerError
from wwwserve_p2p.identity import Identity

N = 5
IDS = [Identity(hashlib.sha256(b"wwwserve-snapshot-%d" % i).digest()) for i in range(N)]
P = [i.peer_id for i in IDS]
PARAMS = LedgerParams(unbonding_ms=300, overdraft=0)
G = Genesis("snap-net", PARAMS, tuple((P[i], 100_000) for i in range(N - 1)))   # P[4] starts with nothing
NID = G.network_id
DIGEST = "5e" * 32
FAST = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def history(seed: int, n_blocks: int, fork_rate: float = 0.0) -> list:
    """Blocks in creation order. Authors write entries their own (complete) replica accepts."""
    rnd = random.Random(seed)
    writer = Ledger(G)
    universe = []
    heads = [(0, G.hash, 0) for _ in range(N)]
    seqs: dict[tuple[int, str], tuple[int, int]] = {}
    now = 0
    forked: set[int] = set()
    legacy: list[Ticket] = []
    vouchers: list[Ticket] = []
    for step in range(n_blocks):
        i = rnd.randrange(N)
        if i in forked:
            continue
        now += rnd.randrange(0, 60)
        h, prev, t0 = heads[i]
        t = max(now, t0)
        entries = []
        for _ in range(rnd.randint(1, 4)):
            kind = rnd.choice(["stake", "unstake", "withdraw", "transfer", "receive", "receive", "open", "open",
                               "vclaim", "vclaim", "vclaim", "void", "close", "close", "legacy", "lclaim"])
            x = rnd.getrandbits(16)
            other = (i + 1 + x % (N - 1)) % N
            if kind == "stake":
                entries.append(Stake(1 + x % 5_000))
            elif kind == "unstake":
                entries.append(Unstake(1 + x % 3_000))
            elif kind == "withdraw":
                entries.append(Withdraw(1 + x % 3_000))
            elif kind == "transfer":
                entries.append(Transfer(P[other], 1 + x % 4_000))
            elif kind == "open":
                entries.append(OpenChannel(P[other], 1 + x % 20_000, t + rnd.choice([200, 400, 2_000]), step * 8 + len(entries)))
            elif kind == "vclaim":   # the latest voucher some requester signed on a channel toward i
                chans = [(r, cid, info) for r in range(N) for cid, info in writer.channels_of(P[r]).items()
                         if info.executor == P[i] and t <= info.expires_ms]
                if chans:
                    r, cid, info = chans[x % len(chans)]
                    seq, total = seqs.get((i, cid), (0, 0))
                    total = min(info.deposit, total + 1 + x % 500)
                    seqs[(i, cid)] = (seq + 1, total)
                    v = Ticket(NID, f"v{step}-{seq}", P[r], P[i], max(1, min(total, 1 + x % 100)), info.expires_ms,
                               issued_ms=max(0, t - 5), channel=cid, seq=seq + 1, total=total).signed(IDS[r].sign)
                    vouchers.append(v)
                    entries.append(Claim(v, DIGEST, total))
            elif kind == "void":
                mine = [v for v in vouchers if v.requester == P[i] and v.issued_ms <= t]
                if mine:
                    entries.append(Void(mine[x % len(mine)]))
            elif kind == "legacy":
                legacy.append(Ticket(NID, f"l{step}", P[i], P[other], 1 + x % 300, t + 500,
                                     issued_ms=t).signed(IDS[i].sign))
            elif kind == "lclaim":
                mine = [tk for tk in legacy if tk.executor == P[i] and tk.issued_ms <= t <= tk.expires_ms]
                if mine:
                    entries.append(Claim(mine[x % len(mine)], DIGEST, 1))
            elif kind == "close":
                mine = [(cid, info) for cid, info in writer.channels_of(P[i]).items()
                        if not writer.channel_closed(P[i], cid)]
                if mine:
                    cid, info = mine[x % len(mine)]
                    tip = writer.blocks(info.executor, writer.height(info.executor))
                    if tip and tip[-1].time_ms > info.expires_ms:
                        entries.append(CloseChannel(cid, tip[-1].height, tip[-1].hash))
            else:   # receive a transfer to i in an accepted block
                offers = [(b, k) for b in universe if writer.height(b.author) >= b.height
                          and writer.blocks(b.author, b.height, b.height)[0].hash == b.hash and b.time_ms <= t
                          for k, e in enumerate(b.entries) if type(e) is Transfer and e.to == P[i]
                          and not writer.is_received(b.author, b.height, k, P[i])]
                if offers:
                    b, k = offers[x % len(offers)]
                    entries.append(Receive(b, k))
        ok, _bad = writer.validate_own(P[i], t, entries)
        if not ok:
            continue
        b = build_block(NID, P[i], h + 1, prev, writer.block_time(P[i], t, ok), ok, IDS[i].sign)
        r = writer.add_block(b)
        if r.status != "applied":
            continue
        universe.append(b)
        heads[i] = (h + 1, b.hash, b.time_ms)
        if fork_rate and rnd.random() < fork_rate and h >= 1:   # sign a second block at the tip
            alt = build_block(NID, P[i], h + 1, prev, b.time_ms, (*ok, Stake(1)), IDS[i].sign)
            universe.append(alt)
            writer.add_block(alt)
            forked.add(i)
    return universe


def replica(blocks, seed: int) -> Ledger:
    led = Ledger(G)
    order = list(blocks)
    random.Random(seed).shuffle(order)
    for b in order:
        led.add_block(b, verified=True)
    return led


def observable(led: Ledger):
    return (led.state_hash(), led.heads_digest(), led.heads(), led.accounts(),
            {p: (led.provable(p), led.spendable(p), led.cut_height(p), led.matured_unbonding(p, 10**12),
                 led.channels_of(p)) for p in P},
            led.total_supply(), led.locked(), led.in_flight(), led.burned())


def times(blocks):
    return sorted({b.time_ms for b in blocks})


@settings(max_examples=30, **FAST)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(10, 90), fork_rate=st.sampled_from([0.0, 0.0, 0.03]),
       data=st.data())
def test_loaded_from_a_snapshot_plus_blocks_above_equals_folding_everything(seed, n, fork_rate, data):
    blocks = history(seed, n, fork_rate)
    if not blocks:
        return
    full = replica(blocks, seed)
    ts = times(blocks)
    t1 = data.draw(st.sampled_from([0, *ts]))
    t2 = data.draw(st.sampled_from([t for t in [*ts, ts[-1] + 1] if t >= t1]))
    snap = take_snapshot(full, t1)
    # the snapshot is a function of the block set: another delivery order, the same bytes
    assert take_snapshot(replica(blocks, seed + 1), t1).raw == snap.raw
    again = Snapshot.from_bytes(snap.raw, network=NID)
    assert again.hash == snap.hash
    loaded = load_snapshot(G, again)
    order = list(blocks)
    random.Random(seed + 2).shuffle(order)
    for b in order:
        r = loaded.add_block(b, verified=True)
        assert r.status != "applied" or b.height > loaded.base_height(b.author)
    assert observable(loaded) == observable(full)
    assert loaded._fold.snapshot() == loaded.recompute_fold().snapshot()
    s_full, s_loaded = take_snapshot(full, t2), take_snapshot(loaded, t2)
    assert s_full.raw == s_loaded.raw
    pruned = prune(full, snap)
    assert observable(pruned) == observable(full)
    assert take_snapshot(pruned, t2).raw == s_full.raw
    twice = prune(pruned, s_full)                     # a second cut on a pruned replica
    assert observable(twice) == observable(full)
    # what is held: only blocks above the cut
    for a, (h, _tip) in snap.heads().items():
        assert all(b.height > h for b in pruned.blocks(a))
        assert pruned.base_height(a) == h


def test_a_long_history_is_held_as_a_small_snapshot_plus_the_blocks_above():
    blocks = history(7, 400)
    full = replica(blocks, 0)
    t = times(blocks)[len(blocks) * 3 // 4]
    snap = take_snapshot(full, t)
    pruned = prune(full, snap)
    held = sum(len(pruned.blocks(a)) for a in pruned.heads())
    assert held < len(blocks) // 2
    assert observable(pruned) == observable(full)
    size_blocks = sum(b.canonical_size() for b in blocks)
    assert len(snap.raw) < size_blocks


def _stake_world():
    """Four authors staking 40/30/20/10 % of the stake."""
    blocks = []
    for i, amt in enumerate([40_000, 30_000, 20_000, 10_000]):
        blocks.append(build_block(NID, P[i], 1, G.hash, 10 + i, [Stake(amt)], IDS[i].sign))
    return blocks


def test_attestation_needs_more_than_two_thirds_of_the_stake_at_the_cut():
    led = replica(_stake_world(), 0)
    snap = take_snapshot(led, 100)
    cps = [attestation(snap, P[i], IDS[i].sign) for i in range(4)]
    assert is_attested(snap, cps[:3], G)                      # 90 %
    assert is_attested(snap, [cps[0], cps[1]], G)             # 70 %
    assert not is_attested(snap, [cps[0], cps[3]], G)         # 50 %
    assert is_attested(snap, [cps[0], cps[2], cps[3]], G)     # 70 %
    assert not is_attested(snap, [cps[1], cps[2], cps[3]], G)  # 60 %
    assert not is_attested(snap, [cps[0], cps[0], cps[0], cps[3]], G)   # a signer counts once: 50 %
    forged = Checkpoint(NID, snap.time_ms, snap.hash, snap.heads_digest, P[1], cps[0].signature)
    assert not is_attested(snap, [cps[0], forged, cps[3]], G)    # a bad signature counts nothing
    other = take_snapshot(led, 11)                                # another cut: not these signatures
    assert not is_attested(other, cps, G)
    assert is_attested(other, [attestation(other, P[i], IDS[i].sign) for i in range(3)], G)
    # a node that follows the network also wants > 2/3 of its own view's stake
    assert not is_attested(snap, cps[:3], G, view_stake={P[3]: 10**9, P[0]: 1})
    # exactly 2/3 is not enough
    two = replica([build_block(NID, P[0], 1, G.hash, 10, [Stake(20_000)], IDS[0].sign),
                   build_block(NID, P[1], 1, G.hash, 10, [Stake(10_000)], IDS[1].sign)], 0)
    s2 = take_snapshot(two, 100)
    assert not is_attested(s2, [attestation(s2, P[0], IDS[0].sign)], G)
    assert is_attested(s2, [attestation(s2, P[i], IDS[i].sign) for i in (0, 1)], G)


def test_a_proof_below_the_cut_burns_but_settled_history_stays():
    a = IDS[0]
    b1 = build_block(NID, P[0], 1, G.hash, 10, [Stake(1_000)], a.sign)
    b2 = build_block(NID, P[0], 2, b1.hash, 20, [Transfer(P[1], 500)], a.sign)
    b3 = build_block(NID, P[0], 3, b2.hash, 30, [Stake(10)], a.sign)
    fork2 = build_block(NID, P[0], 2, b1.hash, 20, [Transfer(P[2], 500)], a.sign)
    rcv = build_block(NID, P[1], 1, G.hash, 25, [Receive(b2, 0)], IDS[1].sign)
    led = replica([b1, b2, b3, rcv], 0)
    snap = take_snapshot(led, 25)
    assert snap.heads()[P[0]][0] == 2
    pruned = prune(led, snap)
    loaded = load_snapshot(G, snap)
    loaded.add_block(b3, verified=True)
    proof = EquivocationProof(b2.header, fork2.header)
    for r in (pruned, loaded):
        assert r.add_proof(proof)
        acc = r.account(P[0])
        assert acc.equivocated and acc.stake == 0 and acc.balance == 0 and acc.height == 2   # cut clamped at the base
        assert r.account(P[1]).balance == 100_000 + 500     # the settled receive stands
        assert r.add_block(b3, verified=True).reason == Reason.EQUIVOCATED
        assert r.add_block(fork2, verified=True).status == "rejected"
    assert observable(pruned) == observable(loaded)


def test_snapshot_parsing_refuses_junk():
    led = replica(_stake_world(), 0)
    snap = take_snapshot(led, 100)
    with pytest.raises(LedgerError):
        Snapshot.from_bytes(snap.raw + b" ")
    with pytest.raises(LedgerError):
        Snapshot.from_bytes(snap.raw, network="00" * 32)
    with pytest.raises(LedgerError):
        Snapshot.from_bytes(snap.raw, max_bytes=10)
    with pytest.raises(LedgerError):
        Snapshot.from_bytes(b'{"version":1}')
    with pytest.raises(LedgerError):
        take_snapshot(load_snapshot(G, snap), 50)    # below its own base
    assert settled_time(10_000_000, 600_000, 600_000) == 9_000_000
    assert settled_time(10, 600_000, 600_000) == 0
    assert b"".join(snap.pages(100)) == snap.raw and all(len(p) <= 100 for p in snap.pages(100))


def test_rebase_in_place_keeps_references_and_pending_blocks():
    from wwwserve_p2p.core.ledger.snapshot import load_into, rebase
    blocks = history(3, 120)
    full = replica(blocks, 0)
    want = observable(full)
    same = full                                   # what the services hold
    t = times(blocks)[len(blocks) // 2]
    snap = take_snapshot(full, t)
    # a gap block waiting in the pending buffer survives the re-base
    a = IDS[4]
    h = full.height(P[4])
    gap = build_block(NID, P[4], h + 2, "00" * 32, 10**9, [Stake(1)], a.sign)
    assert full.add_block(gap, verified=True).status == "pending"
    rebase(full, snap)
    assert same is full and full.base_snapshot is snap and observable(full) == want
    assert full.pending_count() == 1
    fresh = Ledger(G)
    mine = [b for b in blocks if b.author == P[0]]
    for b in mine:                       # a node's own chain, then it catches up
        fresh.add_block(b, verified=True)
    load_into(fresh, snap)
    with pytest.raises(LedgerError):
        load_into(fresh, snap)
    assert fresh.height(P[0]) >= snap.heads()[P[0]][0]
    for b in blocks:
        fresh.add_block(b, verified=True)
    assert observable(fresh) == want
