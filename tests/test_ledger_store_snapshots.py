"""LedgerStore snapshots: adopting one deletes the blocks at or below its cut, restart loads it."""

from __future__ import annotations

import hashlib

from wwwserve_p2p.core.ledger import Genesis, Ledger, LedgerParams, Stake, Transfer, build_block
from wwwserve_p2p.core.ledger.snapshot import attestation, take_snapshot
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.ledger_store import LedgerStore

IDS = [Identity(hashlib.sha256(b"store-snap-%d" % i).digest()) for i in range(2)]
G = Genesis("store-snap", LedgerParams(), tuple((i.peer_id, 1_000_000) for i in IDS))


def chain(ident, n, t0=0):
    out, prev = [], G.hash
    for h in range(1, n + 1):
        b = build_block(G.network_id, ident.peer_id, h, prev, t0 + 10 * h, [Stake(1), Transfer(IDS[1].peer_id if ident is IDS[0] else IDS[0].peer_id, 1)], ident.sign)
        out.append(b)
        prev = b.hash
    return out


def test_adopt_prunes_blocks_and_restart_loads_the_snapshot(tmp_path):
    blocks = chain(IDS[0], 30) + chain(IDS[1], 20, 5)
    led = Ledger(G)
    for b in blocks:
        led.add_block(b, verified=True)
    path = tmp_path / "ledger.sqlite"
    with LedgerStore.open(path, G) as store:
        store.add_blocks(blocks)
        snap = take_snapshot(led, 150)
        cps = [attestation(snap, i.peer_id, i.sign) for i in IDS]
        store.save_snapshot(snap, cps[:1])
        assert store.adopted_snapshot() is None and store.snapshot(snap.hash).raw == snap.raw
        deleted = store.adopt_snapshot(snap, cps[1:])
        assert deleted == sum(h for h, _ in snap.heads().values())
        assert store.count_blocks() == len(blocks) - deleted
        assert sorted(c.signer for c in store.checkpoints(snap.hash)) == sorted(i.peer_id for i in IDS)
        assert all(c.valid() and c.of(snap) for c in store.checkpoints(snap.hash))
        later = take_snapshot(led, 250)
        store.adopt_snapshot(later)
        assert store.adopted_snapshot().hash == later.hash
        assert store.snapshot(snap.hash) is not None     # the one before is kept for peers mid-sync
    with LedgerStore.open(path, G) as store:
        again = Ledger(G)
        store.load_into(again)
        assert again.base_snapshot.hash == later.hash
        assert again.state_hash() == led.state_hash() and again.heads() == led.heads()
