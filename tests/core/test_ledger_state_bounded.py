"""Settled state is compacted at snapshot cuts (issue 18, bounded tables).

A steady workload repeated round after round: a transfer A -> B that B receives, and a payment
channel R -> E that E claims on, passes the expiry of and R closes. After each round the
replica takes the snapshot of its settled history and is re-based on it (what an attested
checkpoint does on a node). The received-transfer keys and the closed channels' latest claims
kept in the snapshot stay at what is still open (flat), where they used to grow by one per
round; the loaded replica still refuses a replay of a settled Receive and stays equal to the
replica that folded everything.
"""

from __future__ import annotations

import hashlib

from wwwserve_p2p.core.ledger import (Claim, CloseChannel, Genesis, Ledger, LedgerParams, OpenChannel, Receive,
                                      Ticket, Transfer, channel_id)
from wwwserve_p2p.core.ledger.snapshot import Snapshot, load_snapshot, prune, take_snapshot
from wwwserve_p2p.identity import Identity

IDS = [Identity(hashlib.sha256(b"wwwserve-bounded-%d" % i).digest()) for i in range(4)]
A, B, R, E = (i.peer_id for i in IDS)
SIGN = {i.peer_id: i.sign for i in IDS}
G = Genesis("bounded-net", LedgerParams(overdraft=0), tuple((p, 10**9) for p in (A, B, R, E)))
NID = G.network_id


def write(led: Ledger, author: str, t: int, entries: list):
    ok, bad = led.validate_own(author, t, entries)
    assert not bad, bad
    b = led.next_block(author, t, ok, SIGN[author])
    assert led.add_block(b).status == "applied"
    return b


def round_blocks(led: Ledger, k: int, t: int) -> int:
    """One round starting at time ``t``; returns the time after it."""
    tb = write(led, A, t, [Transfer(B, 1_000 + k)])
    write(led, B, t + 10, [Receive(tb, 0)])
    nonce = k + 1
    cid = channel_id(NID, R, nonce)
    write(led, R, t + 20, [OpenChannel(E, 50_000, t + 100, nonce)])
    v = Ticket(NID, f"v{k}", R, E, 100, t + 100, issued_ms=t + 20, channel=cid, seq=1, total=300).signed(SIGN[R])
    write(led, E, t + 30, [Claim(v, "ab" * 32, 300)])
    w = write(led, E, t + 101, [])                       # the executor's chain passes the expiry
    write(led, R, t + 110, [CloseChannel(cid, w.height, w.hash)])
    return t + 200


def counts(snap: Snapshot) -> tuple[int, int]:
    chains = snap.data["chains"]
    return (sum(len(c["received"]) for c in chains.values()), sum(len(c["chan_claims"]) for c in chains.values()))


def test_received_keys_and_closed_channel_claims_stay_flat_as_history_grows():
    led, full = Ledger(G), Ledger(G)
    t, sizes = 1_000, []
    replay = None
    for k in range(12):
        before = {a: led.height(a) for a in (A, B, R, E)}
        t = round_blocks(led, k, t)
        for a in (A, B, R, E):   # the same blocks, folded from scratch, unpruned
            for b in led.blocks(a, before[a] + 1, led.height(a)):
                full.add_block(b, verified=True)
        assert full.heads() == led.heads() and full.waiting_count() == 0
        if k == 0:
            replay = full.blocks(B, 1, 1)[0].entries[0]   # B's Receive of round 0
        snap = Snapshot.from_bytes(take_snapshot(led, t - 1).to_bytes(), network=NID)
        led = prune(led, snap)
        sizes.append(counts(snap))
        assert led.state_hash() == full.state_hash() and led.accounts() == full.accounts()
        assert led.provable(E) == full.provable(E) and led.provable(R) == full.provable(R)
    # flat: nothing settled is kept (one per round before the compaction: 12 and 12 here)
    assert all(s == (0, 0) for s in sizes), sizes
    assert len(full.blocks(B)) == 12 and sum(len(led.blocks(a)) for a in (A, B, R, E)) == 0
    # a replay of a settled Receive is still refused on the compacted replica (and on the full one)
    for r in (led, full):
        ok, bad = r.validate_own(B, t, [replay])
        assert not ok and bad
    # a later snapshot of the compacted replica is the one the full replica takes
    t = round_blocks(led, 99, t)
    for a in (A, B, R, E):
        for b in led.blocks(a):
            full.add_block(b, verified=True)
    assert take_snapshot(led, t).to_bytes() == take_snapshot(full, t).to_bytes()
    assert load_snapshot(G, take_snapshot(full, t)).state_hash() == full.state_hash()
