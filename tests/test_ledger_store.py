"""ledger_store.LedgerStore: persistence across reopen, idempotence, equivocation evidence,
network guard, pending entries, and storage failures -> StorageError without losing anything."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat

import pytest
import trio

from wwwserve_p2p.core.ledger import (
    Claim, EquivocationProof, Genesis, Ledger, Stake, Ticket, Transfer, Unstake, Void, build_block,
)
from wwwserve_p2p.errors import LedgerError, StorageError
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.ledger_store import LedgerStore


def ident(name: str) -> Identity:
    return Identity(hashlib.sha256(name.encode()).digest())


A, B, REQ = ident("store-a"), ident("store-b"), ident("store-req")
GEN = Genesis("store-test", allocations=((A.peer_id, 10**9), (B.peer_id, 10**9), (REQ.peer_id, 10**9)))
NET = GEN.network_id
DIGEST = hashlib.sha256(b"answer").hexdigest()


def chain(ledger: Ledger, who: Identity, n: int, start_ms: int = 1_000) -> list:
    out = []
    for i in range(n):
        blk = ledger.next_block(who.peer_id, start_ms + i, [Stake(10 + i), Transfer(B.peer_id if who is A else A.peer_id, 1)],
                                who.sign)
        assert ledger.add_block(blk).status == "applied"
        out.append(blk)
    return out


def ticket(i: int) -> Ticket:
    return Ticket(NET, f"r{i}", REQ.peer_id, A.peer_id, 9_000, 10**13).signed(REQ.sign)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "ledger.sqlite"


def test_blocks_and_state_survive_reopen(path):
    ledger = Ledger(GEN)
    blocks = chain(ledger, A, 5) + chain(ledger, B, 3)
    with LedgerStore.open(path, GEN) as store:
        assert store.add_blocks(blocks[:4]) == 4
        assert store.add_blocks(blocks[4:]) == 4
    assert path.is_file()
    with LedgerStore.open(path, GEN) as store:
        assert store.count_blocks() == 8
        assert store.heights() == {A.peer_id: 5, B.peer_id: 3}
        assert [(b.author, b.height) for b in store.iter_blocks()] == sorted((b.author, b.height) for b in blocks)
        assert set(store.iter_blocks()) == set(blocks)
        fresh = Ledger(GEN)
        assert store.load_into(fresh) == 8
    assert fresh.state_hash() == ledger.state_hash() and fresh.heads() == ledger.heads()
    # the stored bytes verify from scratch too (not only with verified=True)
    with LedgerStore.open(path, GEN) as store:
        strict = Ledger(GEN)
        assert all(strict.add_block(b).status == "applied" for b in store.iter_blocks())
    assert strict.state_hash() == ledger.state_hash()


def test_add_blocks_is_idempotent(path):
    ledger = Ledger(GEN)
    blocks = chain(ledger, A, 3)
    with LedgerStore.open(path, GEN) as store:
        assert store.add_blocks(blocks) == 3
        assert store.add_blocks(blocks) == 0
        assert store.add_blocks([blocks[1], blocks[1]]) == 0
        assert store.add_blocks([]) == 0
        assert store.count_blocks() == 3


def test_iteration_pages_through_many_blocks(path):
    ledger = Ledger(GEN)
    blocks = [ledger.next_block(A.peer_id, 1, [], A.sign)]
    for _ in range(1_199):
        ledger.add_block(blocks[-1])
        blocks.append(ledger.next_block(A.peer_id, 1, [], A.sign))
    with LedgerStore.open(path, GEN) as store:
        assert store.add_blocks(blocks) == 1_200
        assert [b.height for b in store.iter_blocks()] == list(range(1, 1_201))


def test_equivocating_pair_is_kept_and_replayed_as_a_cut(path):
    ledger = Ledger(GEN)
    good = chain(ledger, A, 3)
    fork = build_block(NET, A.peer_id, 2, good[0].hash, 5_000, [Unstake(1)], A.sign)
    assert fork.hash != good[1].hash
    proof = EquivocationProof(good[1].header, fork.header).normalized()
    with LedgerStore.open(path, GEN) as store:
        assert store.add_blocks(good) == 3
        assert store.add_blocks([fork]) == 1
        assert store.count_blocks() == 4
        assert store.add_proof(proof) is True
        assert store.add_proof(EquivocationProof(fork.header, good[1].header)) is False  # same proof
    with LedgerStore.open(path, GEN) as store:
        assert list(store.iter_proofs()) == [proof]
        heights = [(b.height, b.hash) for b in store.iter_blocks()]
        assert len([h for h, _ in heights if h == 2]) == 2
        replica = Ledger(GEN)
        assert store.load_into(replica) == 4
    assert replica.cut_height(A.peer_id) == 2 and replica.height(A.peer_id) == 1
    assert replica.account(A.peer_id).equivocated
    # without the stored proof the pair itself is the evidence
    path2 = path.with_name("noproof.sqlite")
    with LedgerStore.open(path2, GEN) as store:
        store.add_blocks([*good, fork])
        replica2 = Ledger(GEN)
        store.load_into(replica2)
    assert replica2.cut_height(A.peer_id) == 2 and replica2.state_hash() == replica.state_hash()


def test_store_of_another_network_is_refused(path):
    LedgerStore.open(path, GEN).close()
    other = Genesis("store-test", allocations=((A.peer_id, 1),))  # same name, different genesis
    with pytest.raises(StorageError, match="belongs to network 'store-test'") as info:
        LedgerStore.open(path, other)
    assert str(path) in str(info.value)
    with LedgerStore.open(path, GEN) as store:
        foreign = build_block(other.network_id, A.peer_id, 1, other.hash, 1, [], A.sign)
        with pytest.raises(LedgerError, match="network"):
            store.add_blocks([foreign])
        with pytest.raises(LedgerError, match="network"):
            store.load_into(Ledger(other))
        assert store.count_blocks() == 0


def test_pending_entries_survive_reopen_in_order(path):
    entries = [("claim:1", Claim(ticket(1), DIGEST, 5_000)), ("void:2", Void(ticket(2))), ("stake", Stake(3)),
               ("claim:3", Claim(ticket(3), DIGEST, 6_000))]
    with LedgerStore.open(path, GEN) as store:
        for k, e in entries:
            store.save_pending(k, e)
        store.save_pending("stake", Stake(4))  # replaces, keeps its place
    with LedgerStore.open(path, GEN) as store:
        got = store.pending()
        assert got == [entries[0], entries[1], ("stake", Stake(4)), entries[3]]
        assert got[0][1].ticket.hash == ticket(1).hash
        store.drop_pending(["void:2", "nope"])
    with LedgerStore.open(path, GEN) as store:
        assert [k for k, _ in store.pending()] == ["claim:1", "stake", "claim:3"]
        # a block and the removal of the entries it includes commit together
        ledger = Ledger(GEN)
        blk = ledger.next_block(A.peer_id, 10, [e for k, e in store.pending() if k.startswith("claim")], A.sign)
        assert ledger.add_block(blk).status == "applied"
        assert store.add_blocks([blk], drop_pending=["claim:1", "claim:3"]) == 1
    with LedgerStore.open(path, GEN) as store:
        assert [k for k, _ in store.pending()] == ["stake"] and store.count_blocks() == 1


def test_full_disk_gives_storage_error_and_keeps_everything_acknowledged(path):
    ledger = Ledger(GEN)
    acked = []
    with LedgerStore.open(path, GEN) as store:
        store.save_pending("keep", Stake(1))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 3}")  # the "disk" is nearly full
        with pytest.raises(StorageError, match="full") as info:
            for _ in range(500):
                blk = ledger.next_block(A.peer_id, 1, [Transfer(B.peer_id, 1)] * 30, A.sign)
                ledger.add_block(blk)
                store.add_blocks([blk])
                acked.append(blk)
        assert str(path) in str(info.value)
        assert acked, "the first blocks should have fitted"
        assert store.count_blocks() == len(acked)  # the failed transaction left nothing behind
        with pytest.raises(StorageError):
            store.add_blocks([ledger.next_block(A.peer_id, 1, [Transfer(B.peer_id, 2)] * 30, A.sign)])
        # space comes back: the store keeps working
        store._conn.execute("PRAGMA max_page_count = 1073741823")
        late = ledger.next_block(A.peer_id, 2, [Stake(1)], A.sign)
        assert store.add_blocks([late]) == 1
    with LedgerStore.open(path, GEN) as store:
        stored = list(store.iter_blocks())
        assert stored[: len(acked)] == acked and len(stored) == len(acked) + 1
        assert store.pending() == [("keep", Stake(1))]


def test_corrupt_file_and_unreadable_directory_give_storage_error(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 500)
    with pytest.raises(StorageError, match="junk.sqlite"):
        LedgerStore.open(junk, GEN)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="directory"):
        LedgerStore.open(blocker / "sub" / "ledger.sqlite", GEN)


def test_corrupt_row_gives_storage_error(path):
    ledger = Ledger(GEN)
    with LedgerStore.open(path, GEN) as store:
        store.add_blocks(chain(ledger, A, 2))
        store.save_pending("k", Stake(1))
    con = sqlite3.connect(path)
    con.execute("UPDATE blocks SET data = x'ffff' WHERE height = 2")
    con.execute("UPDATE pending SET data = x'' WHERE key = 'k'")
    con.commit()
    con.close()
    with LedgerStore.open(path, GEN) as store:
        with pytest.raises(StorageError, match="corrupt block"):
            list(store.iter_blocks())
        with pytest.raises(StorageError, match="corrupt pending entry"):
            store.pending()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_store_gives_storage_error(path):
    ledger = Ledger(GEN)
    with LedgerStore.open(path, GEN) as store:
        store.add_blocks(chain(ledger, A, 1))
    for p in path.parent.iterdir():
        p.chmod(stat.S_IRUSR)
    path.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(StorageError, match=str(path.name)):
            store = LedgerStore.open(path, GEN)
            store.add_blocks([ledger.next_block(A.peer_id, 5, [Stake(1)], A.sign)])
    finally:
        path.parent.chmod(stat.S_IRWXU)
        for p in path.parent.iterdir():
            p.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_read_only_connection_gives_storage_error_and_writes_nothing(path):
    ledger = Ledger(GEN)
    with LedgerStore.open(path, GEN) as store:
        store.add_blocks(chain(ledger, A, 1))
        store._conn.execute("PRAGMA query_only = ON")  # what a read-only file or mount looks like to SQLite
        with pytest.raises(StorageError, match="readonly"):
            store.add_blocks([ledger.next_block(A.peer_id, 5, [Stake(1)], A.sign)])
        with pytest.raises(StorageError, match="readonly"):
            store.save_pending("k", Stake(1))
        assert store.count_blocks() == 1 and store.pending() == []


def test_locked_database_gives_storage_error(path):
    with LedgerStore.open(path, GEN) as store:
        store._conn.execute("PRAGMA busy_timeout = 50")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StorageError, match="locked"):
                store.save_pending("k", Stake(1))
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.save_pending("k", Stake(1))
        assert len(store.pending()) == 1


def test_closed_store_raises(path):
    store = LedgerStore.open(path, GEN)
    store.close()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.count_blocks()


async def test_concurrent_use_from_trio_threads(path):
    ledger = Ledger(GEN)
    blocks = chain(ledger, A, 40)
    store = LedgerStore.open(path, GEN)
    try:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i, b in enumerate(blocks):
                    nursery.start_soon(trio.to_thread.run_sync, store.add_blocks, [b])
                    nursery.start_soon(trio.to_thread.run_sync, store.save_pending, f"k{i}", Stake(i + 1))
                    nursery.start_soon(trio.to_thread.run_sync, store.count_blocks)
        assert store.count_blocks() == 40 and len(store.pending()) == 40
    finally:
        store.close()
