"""Sync messages of snapshots and checkpoints (ledger.proto SNAPSHOT / CHECKPOINT kinds)."""

from __future__ import annotations

import hashlib

import pytest

from wwwserve_p2p.core.ledger import Genesis, Ledger, LedgerParams, Stake, build_block
from wwwserve_p2p.core.ledger.snapshot import attestation, is_attested, take_snapshot
from wwwserve_p2p.errors import MalformedMessage
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.wire import ledger_codec as lc

IDS = [Identity(hashlib.sha256(b"snapshot-codec-%d" % i).digest()) for i in range(3)]
G = Genesis("snap-codec", LedgerParams(), tuple((i.peer_id, 10_000) for i in IDS))


def test_snapshot_pages_and_checkpoints_round_trip():
    led = Ledger(G)
    for i, ident in enumerate(IDS):
        led.add_block(build_block(G.network_id, ident.peer_id, 1, G.hash, 5 + i, [Stake(1_000)], ident.sign))
    snap = take_snapshot(led, 100)
    cps = tuple(attestation(snap, i.peer_id, i.sign) for i in IDS)
    pages = snap.pages(64)
    got = []
    for k, page in enumerate(pages):
        r = lc.SyncResponse(snapshot_page=page, snapshot_pages=len(pages), snapshot_hash=snap.hash,
                            snapshot_time_ms=snap.time_ms, checkpoints=cps if k == 0 else (), done=True)
        back = lc.decode_sync_response(lc.encode_sync_response(r))
        assert back == r
        got.append(back)
    assert b"".join(r.snapshot_page for r in got) == snap.raw
    assert is_attested(snap, got[0].checkpoints, G)
    for kind in ("snapshot", "checkpoint"):
        q = lc.SyncRequest(G.network_id, kind, lo=3, after=snap.hash)
        assert lc.decode_sync_request(lc.encode_sync_request(q)) == q
    with pytest.raises(MalformedMessage):
        lc.encode_sync_response(lc.SyncResponse(checkpoints=cps * 400))
