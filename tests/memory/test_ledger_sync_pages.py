"""Paginated ``heads`` on ``/wwwserve/ledger-sync/1`` (issue 18 §5): > 20k authors, no network.

Two bare :class:`LedgerService` s on an in-memory overlay (no node, no run loop): the server's
``serve_sync`` is the stream handler, the client calls it as a peer would.
"""

from __future__ import annotations

import random

import trio

import wwwserve_p2p.services.ledger as ledger_service
from wwwserve_p2p.config import LedgerSection
from wwwserve_p2p.core.ledger import Genesis, Ledger, build_block
from wwwserve_p2p.ledger_store import LedgerStore
from wwwserve_p2p.services.ledger import HEADS_PAGE, SYNC_PROTOCOL, LedgerService
from wwwserve_p2p.services.runtime import Runtime, VirtualClock, run_inline
from wwwserve_p2p.testing.memory import MemoryNetwork
from wwwserve_p2p.testing.swarm import swarm_identity
from wwwserve_p2p.wire import ledger_codec as lc
from wwwserve_p2p.wire.framing import FrameReader, frame

MAX_FRAME = 2 * 1024 * 1024
GENESIS = Genesis("sync-pages")


def service(ledger: Ledger, overlay, ident) -> LedgerService:
    return LedgerService(ledger, LedgerStore.open(":memory:", ledger.genesis), me=ident.peer_id, sign=ident.sign,
                         overlay=overlay, runtime=Runtime(VirtualClock(), run_inline), config=LedgerSection(),
                         max_frame=MAX_FRAME, rng=random.Random(0), alive_peers=list, stake_target=lambda s: 0,
                         incarnation=1)


def synthetic_ledger(n_authors: int) -> Ledger:
    """``n_authors`` one-block chains (verified=True: the replica trusts them, no signatures)."""
    led = Ledger(GENESIS)
    nid, g_hash = GENESIS.network_id, GENESIS.hash
    for i in range(n_authors):
        blk = build_block(nid, f"author-{i:06d}", 1, g_hash, 1000, (), lambda d, p: b"s" * 64)
        assert led.add_block(blk, verified=True).status == "applied"
    return led


async def raw_heads(overlay, peer: str, after: str, limit: int) -> tuple[lc.SyncResponse, int]:
    stream = await overlay.open_stream(peer, SYNC_PROTOCOL)
    await stream.write(frame(lc.encode_sync_request(lc.SyncRequest(GENESIS.network_id, "heads", after=after,
                                                                   limit=limit))))
    data = await FrameReader(stream, MAX_FRAME).read_frame(5)
    await stream.close()
    return lc.decode_sync_response(data), len(data)


async def test_heads_of_21k_authors_come_in_pages_under_the_frame_cap():
    n = 21_000
    net = MemoryNetwork()
    server_id, client_id = swarm_identity(5, 0), swarm_identity(5, 1)
    async with net.open_overlay(server_id) as sov, net.open_overlay(client_id) as cov:
        server = service(synthetic_ledger(n), sov, server_id)
        sov.set_stream_handler(SYNC_PROTOCOL, server.serve_sync)
        seen: list[str] = []
        after, pages = "", 0
        while True:
            resp, size = await raw_heads(cov, server_id.peer_id, after, 0)  # 0 = an old client's request
            assert size < MAX_FRAME and len(resp.heads) <= HEADS_PAGE
            seen += [a for a, _, _ in resp.heads]
            pages += 1
            if not resp.next_after:
                break
            assert resp.next_after == seen[-1]
            after = resp.next_after
        assert seen == sorted(server.ledger.heads()) and len(seen) == n
        assert pages == -(-n // HEADS_PAGE)
        # a client's smaller limit is honoured; a larger one is capped
        small, _ = await raw_heads(cov, server_id.peer_id, "", 10)
        assert len(small.heads) == 10 and small.next_after == small.heads[-1][0]
        big, _ = await raw_heads(cov, server_id.peer_id, "", 10**6)
        assert len(big.heads) == HEADS_PAGE
        # the old, unpaginated answer of the same replica would not fit in one frame
        everything = lc.SyncResponse(heads=tuple((a, h, t) for a, (h, t) in sorted(server.ledger.heads().items())),
                                     done=True)
        assert len(lc.encode_sync_response(everything)) > MAX_FRAME // 2


async def test_a_client_pulls_every_chain_across_pages(monkeypatch):
    monkeypatch.setattr(ledger_service, "HEADS_PAGE", 7)
    authors = [swarm_identity(6, i) for i in range(40)]
    # members (allocations), so that the non-member storage budget does not apply
    g = Genesis("sync-pages-members", allocations=tuple((a.peer_id, 1) for a in authors))
    src = Ledger(g)
    for a in authors:
        prev = g.hash
        for h in (1, 2):
            blk = build_block(g.network_id, a.peer_id, h, prev, 1000 + h, (), a.sign)
            assert src.add_block(blk).status == "applied"
            prev = blk.hash
    net = MemoryNetwork()
    server_id, client_id = swarm_identity(6, 100), swarm_identity(6, 101)
    async with net.open_overlay(server_id) as sov, net.open_overlay(client_id) as cov:
        server = service(src, sov, server_id)
        sov.set_stream_handler(SYNC_PROTOCOL, server.serve_sync)
        client = service(Ledger(g), cov, client_id)
        with trio.fail_after(30):
            applied = await client.sync_with(server_id.peer_id)
        assert applied == 80
        assert client.ledger.heads() == src.heads()
        assert client.ledger.state_hash() == src.state_hash()


async def test_an_old_server_answer_without_a_cursor_is_the_only_page():
    """A server that ignores ``after``/``limit`` sends every head and no ``next_after``."""
    resp = lc.decode_sync_response(lc.encode_sync_response(lc.SyncResponse(heads=(("a", 1, "00" * 32),), done=True)))
    assert resp.next_after == ""
    req = lc.decode_sync_request(lc.encode_sync_request(lc.SyncRequest("n", "heads")))
    assert (req.after, req.limit) == ("", 0)
