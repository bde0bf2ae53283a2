"""Duel bonds survive a snapshot (issue 18): a replica loaded from a snapshot cut after both
bonds and the verdict, plus the blocks above (the winner's release, the loser's attempt), equals
one that folded everything; a snapshot carries the duel locks and the chains' bond facts."""

from __future__ import annotations

import hashlib

from wwwserve_p2p.core.ledger import (DuelBond, DuelRelease, DuelTicket, Genesis, Ledger, LedgerParams, Reason,
                                      Receipt, Verdict, Vote, build_block, panel_of)
from wwwserve_p2p.core.ledger.snapshot import Snapshot, load_snapshot, take_snapshot
from wwwserve_p2p.identity import Identity

IDS = [Identity(hashlib.sha256(b"wwwserve-duel-bond-snapshot-%d" % i).digest()) for i in range(6)]
P = [i.peer_id for i in IDS]
G = Genesis("duel-bond-snap", LedgerParams(overdraft=0), tuple((p, 10**9) for p in P))
NID = G.network_id


def test_duel_locks_survive_a_snapshot():
    d = DuelTicket(NID, "snap-duel", P[0], (P[1], P[2]), (), 5_000, 1_000, 10**6,
                   pool=tuple(sorted((P[j], 1_000) for j in (3, 4, 5))), judges_k=2).signed(IDS[0].sign)
    rs = tuple(Receipt(P[e], d.hash, "ab" * 32).signed(IDS[e].sign) for e in (1, 2))
    votes = tuple(Vote(j, d.hash, "A").signed(IDS[P.index(j)].sign) for j in panel_of(d, rs))
    b1 = build_block(NID, P[1], 1, G.hash, 100, (DuelBond(d),), IDS[1].sign)
    b2 = build_block(NID, P[2], 1, G.hash, 100, (DuelBond(d),), IDS[2].sign)
    v = build_block(NID, P[0], 1, G.hash, 200, (Verdict(d, rs, votes),), IDS[0].sign)
    rel = build_block(NID, P[1], 2, b1.hash, 2_000, (DuelRelease(d),), IDS[1].sign)
    full = Ledger(G)
    for b in (b1, b2, v):
        assert full.add_block(b).status == "applied"
    snap = Snapshot.from_bytes(take_snapshot(full, 1_000).to_bytes(), network=NID)
    loaded = load_snapshot(G, snap)
    assert loaded.state_hash() == full.state_hash() and loaded.locked() == full.locked() == 10_000
    assert loaded.has_duel_bond(P[2], d.hash) and loaded.account(P[1]).duels_won == 1
    for led in (full, loaded):
        assert led.add_block(rel).status == "applied"
        lose = build_block(NID, P[2], 2, b2.hash, 2_000, (DuelRelease(d),), IDS[2].sign)
        assert led.add_block(lose).reason == Reason.DUEL_RELEASE
    assert loaded.state_hash() == full.state_hash() and loaded.provable(P[1]) == full.provable(P[1]) == 10**9 + 5_000
    assert loaded.accounts() == full.accounts()
    assert loaded.locked() == full.locked() == 0
