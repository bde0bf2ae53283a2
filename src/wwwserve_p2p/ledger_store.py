"""Durable storage of the credit ledger: one SQLite file (WAL, ``synchronous=FULL``) per node.

DESIGN §4 "Persistence": restart resumes with nothing lost. The store keeps

- every block the node accepted or authored (``encode_block`` bytes plus the indexed columns
  author, height, hash): two different blocks at one (author, height) are both kept, they are
  the evidence of an equivocation;
- equivocation proofs;
- the *pending* entries queued for the node's own next block (claims, voids, ...), so a crash
  between earning a credit and writing the block loses nothing;
- a ``meta`` table with the genesis hash: a store never mixes two networks;
- snapshots of settled history and the checkpoints (attestations) collected for them
  (:mod:`~wwwserve_p2p.core.ledger.snapshot`): once one is *adopted*, the blocks at or below
  its cut are deleted (:meth:`LedgerStore.adopt_snapshot`) and :meth:`LedgerStore.load_into`
  starts from it. SQLite reuses the freed pages, so the file stops growing with history.

Every write is one transaction, durable when the call returns (WAL + ``synchronous=FULL``
fsyncs the log on commit); a crash at any moment leaves the state of the last acknowledged
call, never half a call. Every :mod:`sqlite3` failure (disk full, I/O error, corrupt file,
locked, read-only) is raised as :class:`~wwwserve_p2p.errors.StorageError` naming the file.

Thread-safe (one connection, one lock), so trio code calls it through
``trio.to_thread.run_sync``. Blocks are stored as given: validation is the caller's
(:class:`~wwwserve_p2p.core.ledger.Ledger`) job before :meth:`LedgerStore.add_blocks`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Callable, TypeVar

from .core.ledger import Block, Entry, EquivocationProof, Genesis, Ledger
from .errors import InvalidBlock, LedgerError, MalformedMessage, StorageError
from .wire.ledger_codec import decode_block, decode_entry, decode_gossip, encode_block, encode_entry, encode_gossip

__all__ = ["LedgerStore", "SCHEMA_VERSION"]

#: Version of the table layout below, recorded in ``meta``.
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    hash TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS blocks_by_author_height ON blocks (author, height, hash);
CREATE TABLE IF NOT EXISTS proofs (
    a_hash TEXT NOT NULL,
    b_hash TEXT NOT NULL,
    author TEXT NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (a_hash, b_hash)
);
CREATE TABLE IF NOT EXISTS snapshots (
    hash TEXT PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    adopted INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    snapshot_hash TEXT NOT NULL,
    signer TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (snapshot_hash, signer)
);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    data BLOB NOT NULL
);
"""

#: Rows read per lock acquisition while iterating.
_PAGE = 500

T = TypeVar("T")


#: The ``path`` of an in-memory store.
MEMORY = ":memory:"


class LedgerStore:
    """The node's ledger file. Open with :meth:`open`; close with :meth:`close` (idempotent),
    or use it as a context manager: ``with LedgerStore.open(path, genesis) as store: ...``.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, genesis: Genesis):
        """Use :meth:`open`."""
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._genesis = genesis
        self._network_id = genesis.network_id
        self._lock = threading.Lock()

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike, genesis: Genesis) -> "LedgerStore":
        """Open (creating it and its parent directory if needed) the store at ``path``.

        Sets WAL journaling and ``synchronous=FULL``; a new file records ``genesis.hash``.
        ``path`` = ``":memory:"`` keeps the ledger in memory (an embedded node that writes
        nothing to disk; lost on exit).

        :raises StorageError: the file cannot be created, opened or read (corrupt, not a
            database, read-only, locked), belongs to another network (another genesis hash),
            or was written by a newer schema version.
        """
        p = Path(path)
        try:
            if str(path) != MEMORY:
                p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"ledger store {p}: cannot create its directory: {exc}") from exc
        try:
            conn = sqlite3.connect(str(p), timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"ledger store {p}: cannot open: {exc}") from exc
        store = cls(conn, p, genesis)
        try:
            store._init()
        except BaseException:
            conn.close()
            raise
        return store

    def _init(self) -> None:
        conn = self._conn
        assert conn is not None

        def init() -> None:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != ("memory" if str(self._path) == MEMORY else "wal"):
                raise StorageError(f"ledger store {self._path}: cannot enable WAL journaling (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=OFF")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    conn.execute(stmt)
                rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if not rows:
                    conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                        ("genesis_hash", self._genesis.hash), ("network_id", self._network_id),
                        ("network", self._genesis.network), ("schema_version", SCHEMA_VERSION)])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if not rows:
                return
            if rows.get("genesis_hash") != self._genesis.hash:
                raise StorageError(
                    f"ledger store {self._path} belongs to network {rows.get('network', '?')!r} "
                    f"(id {rows.get('network_id', '?')}), not to {self._genesis.network!r} "
                    f"(id {self._network_id}); use another data directory or the matching genesis")
            if rows.get("schema_version") != SCHEMA_VERSION:
                raise StorageError(f"ledger store {self._path} has schema version {rows.get('schema_version')!r}; "
                                   f"this version reads {SCHEMA_VERSION!r}")

        self._run("open", init)

    # ------------------------------------------------------------ plumbing

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the lock, mapping sqlite3 errors to StorageError."""
        with self._lock:
            if self._conn is None:
                raise StorageError(f"ledger store {self._path} is closed")
            try:
                return fn()
            except sqlite3.Error as exc:
                raise StorageError(f"ledger store {self._path}: {what} failed: {_describe(exc)}") from exc

    def _write(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in one IMMEDIATE transaction: committed (durably) or rolled back."""
        def txn() -> T:
            conn = self._conn
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
                conn.execute("COMMIT")
                return out
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
        return self._run(what, txn)

    def _read(self, what: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        def q() -> list[tuple[Any, ...]]:
            assert self._conn is not None
            return self._conn.execute(sql, args).fetchall()
        return self._run(what, q)

    def _corrupt(self, what: str, exc: object) -> StorageError:
        return StorageError(f"ledger store {self._path}: corrupt {what}: {exc}")

    # ------------------------------------------------------------ blocks and proofs

    def add_blocks(self, blocks: Iterable[Block], *, drop_pending: Iterable[str] = ()) -> int:
        """Store ``blocks`` in one transaction, durable on return.

        Idempotent: a block already stored (same hash) is skipped; two different blocks at one
        (author, height) are both kept (equivocation evidence). ``drop_pending``: keys of
        pending entries to delete in the same transaction (the entries these blocks include),
        so a crash never leaves an entry both in a block and still pending.

        :returns: the number of blocks newly stored.
        :raises LedgerError: a block of another network (nothing is written).
        :raises StorageError: the write failed (nothing is written).
        """
        rows = []
        for b in blocks:
            if b.network != self._network_id:
                raise LedgerError(f"block {b.author[:16]}/{b.height} is of network {str(b.network)[:40]!r}, "
                                  f"not this store's {self._network_id}")
            rows.append((b.hash, b.author, b.height, encode_block(b)))
        keys = [(k,) for k in drop_pending]
        if not rows and not keys:
            return 0

        def put(conn: sqlite3.Connection) -> int:
            n = 0
            for row in rows:
                n += conn.execute("INSERT OR IGNORE INTO blocks (hash, author, height, data) VALUES (?, ?, ?, ?)",
                                  row).rowcount
            if keys:
                conn.executemany("DELETE FROM pending WHERE key = ?", keys)
            return n
        return self._write("add_blocks", put)

    def add_proof(self, proof: EquivocationProof) -> bool:
        """Store an equivocation proof (durable on return). Signatures are not checked here.

        :returns: True if it was new.
        :raises StorageError: the write failed.
        """
        p = proof.normalized()
        row = (p.a.hash, p.b.hash, p.author, p.height, encode_gossip(p))
        return self._write("add_proof", lambda conn: conn.execute(
            "INSERT OR IGNORE INTO proofs (a_hash, b_hash, author, height, data) VALUES (?, ?, ?, ?, ?)",
            row).rowcount == 1)

    def iter_blocks(self) -> Iterator[Block]:
        """Every stored block, in (author, height, hash) order. Reads in pages, releasing the
        lock between them, so other calls may interleave (blocks added meanwhile may or may not
        appear).

        :raises StorageError: a read failed or a stored block does not decode.
        """
        after: tuple[str, int, str] = ("", -(1 << 62), "")
        while True:
            rows = self._read("iter_blocks",
                              "SELECT author, height, hash, data FROM blocks "
                              "WHERE (author, height, hash) > (?, ?, ?) "
                              "ORDER BY author, height, hash LIMIT ?", (*after, _PAGE))
            for author, height, h, data in rows:
                try:
                    blk = decode_block(data)
                except MalformedMessage as exc:
                    raise self._corrupt(f"block {author}/{height}", exc) from None
                if blk.author != author or blk.height != height:
                    raise self._corrupt(f"block {author}/{height}", "indexed columns disagree with the data")
                yield blk
            if len(rows) < _PAGE:
                return
            after = rows[-1][:3]

    def iter_proofs(self) -> Iterator[EquivocationProof]:
        """Every stored equivocation proof (normalized), by (author, height).

        :raises StorageError: a read failed or a stored proof does not decode.
        """
        rows = self._read("iter_proofs", "SELECT author, height, data FROM proofs ORDER BY author, height, a_hash")
        for author, height, data in rows:
            try:
                p = decode_gossip(data)
            except MalformedMessage as exc:
                raise self._corrupt(f"proof {author}/{height}", exc) from None
            if not isinstance(p, EquivocationProof):
                raise self._corrupt(f"proof {author}/{height}", "not an equivocation proof")
            yield p

    def load_into(self, ledger: Ledger) -> int:
        """Replay the store into ``ledger``: the proofs first (``ledger.add_proof``; one that
        fails its check is skipped), then every block in (author, height) order with
        ``verified=True`` (these blocks were checked before they were stored).

        :returns: the number of blocks replayed (offered to ``ledger``).
        :raises LedgerError: ``ledger`` is of another network.
        :raises StorageError: a read failed or a stored row does not decode.
        """
        if ledger.network_id != self._network_id:
            raise LedgerError(f"ledger of network {ledger.network_id} cannot load store {self._path} "
                              f"of network {self._network_id}")
        snap = self.adopted_snapshot()
        if snap is not None and ledger.base_snapshot is None and not ledger.heads():
            from .core.ledger.snapshot import load_into
            load_into(ledger, snap)
        for p in self.iter_proofs():
            try:
                ledger.add_proof(p)
            except InvalidBlock:
                continue
        n = 0
        for blk in self.iter_blocks():
            ledger.add_block(blk, verified=True)
            n += 1
        return n

    # ------------------------------------------------------------ snapshots

    def save_snapshot(self, snap: Any, checkpoints: Iterable[Any] = ()) -> None:
        """Store ``snap`` (a :class:`~wwwserve_p2p.core.ledger.snapshot.Snapshot`, not adopted)
        and ``checkpoints`` of it (idempotent, durable on return). Keeps at most the 4 newest
        snapshots that are not adopted.

        :raises StorageError: the write failed."""
        checkpoints = list(checkpoints)

        def put(conn: sqlite3.Connection) -> None:
            _insert_snapshot(conn, snap, checkpoints)
            old = [r[0] for r in conn.execute(
                "SELECT hash FROM snapshots WHERE adopted = 0 ORDER BY time_ms DESC LIMIT -1 OFFSET 4")]
            for h in old:
                conn.execute("DELETE FROM snapshots WHERE hash = ?", (h,))
                conn.execute("DELETE FROM checkpoints WHERE snapshot_hash = ?", (h,))
        self._write("save_snapshot", put)

    def add_checkpoints(self, checkpoints: Iterable[Any]) -> int:
        """Store checkpoints (idempotent); returns how many were new.

        :raises StorageError: the write failed."""
        cps = [(c.snapshot_hash, c.signer, _cp_json(c)) for c in checkpoints]
        if not cps:
            return 0
        return self._write("add_checkpoints", lambda conn: sum(conn.execute(
            "INSERT OR IGNORE INTO checkpoints (snapshot_hash, signer, data) VALUES (?, ?, ?)", r).rowcount
            for r in cps))

    def checkpoints(self, snapshot_hash: str) -> list[Any]:
        """The stored checkpoints of ``snapshot_hash``.

        :raises StorageError: a read failed or a row does not decode."""
        rows = self._read("checkpoints", "SELECT data FROM checkpoints WHERE snapshot_hash = ? ORDER BY signer",
                          (snapshot_hash,))
        return [_cp_from_json(r[0], self) for r in rows]

    def snapshot(self, snapshot_hash: str) -> Any:
        """The stored snapshot ``snapshot_hash`` (None: not stored).

        :raises StorageError: a read failed or the row does not parse."""
        rows = self._read("snapshot", "SELECT data FROM snapshots WHERE hash = ?", (snapshot_hash,))
        return self._parse_snapshot(rows[0][0]) if rows else None

    def adopted_snapshot(self) -> Any:
        """The adopted snapshot the replica starts from (None: from genesis).

        :raises StorageError: a read failed or the row does not parse."""
        rows = self._read("adopted_snapshot",
                          "SELECT data FROM snapshots WHERE adopted = 1 ORDER BY time_ms DESC LIMIT 1")
        return self._parse_snapshot(rows[0][0]) if rows else None

    def _parse_snapshot(self, raw: bytes) -> Any:
        from .core.ledger.snapshot import Snapshot
        try:
            return Snapshot.from_bytes(bytes(raw), network=self._network_id)
        except LedgerError as exc:
            raise self._corrupt("snapshot", exc) from None

    def adopt_snapshot(self, snap: Any, checkpoints: Iterable[Any] = ()) -> int:
        """Make ``snap`` the store's base, in one transaction: store it (and ``checkpoints``),
        mark it adopted (older adopted ones and their checkpoints are deleted, the one before
        kept for peers still fetching it), and delete every block at or below its cut
        (``height <= cut`` per author) and the proofs it already carries.

        :returns: the number of blocks deleted.
        :raises StorageError: the write failed (nothing changed)."""
        heads = [(a, h) for a, (h, _t) in snap.heads().items()]
        checkpoints = list(checkpoints)

        def put(conn: sqlite3.Connection) -> int:
            _insert_snapshot(conn, snap, checkpoints)
            old = [r[0] for r in conn.execute(
                "SELECT hash FROM snapshots WHERE adopted IN (1, 2) AND hash != ? ORDER BY time_ms DESC", (snap.hash,))]
            for h in old[1:] + [r[0] for r in conn.execute(
                    "SELECT hash FROM snapshots WHERE adopted = 0 AND time_ms <= ? AND hash != ?",
                    (snap.time_ms, snap.hash))]:
                conn.execute("DELETE FROM snapshots WHERE hash = ?", (h,))
                conn.execute("DELETE FROM checkpoints WHERE snapshot_hash = ?", (h,))
            if old:
                conn.execute("UPDATE snapshots SET adopted = 2 WHERE hash = ?", (old[0],))   # kept, not the base
            conn.execute("UPDATE snapshots SET adopted = 1 WHERE hash = ?", (snap.hash,))
            n = 0
            for a, h in heads:
                n += conn.execute("DELETE FROM blocks WHERE author = ? AND height <= ?", (a, h)).rowcount
            return n
        n = self._write("adopt_snapshot", put)
        # move the WAL into the database and truncate it (best effort: a busy reader defers it),
        # so the files shrink to what is in use instead of waiting for the autocheckpoint
        self._run("wal_checkpoint", lambda: self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
        return n

    def count_blocks(self) -> int:
        """Number of stored blocks (equivocating pairs count twice).

        :raises StorageError: the read failed.
        """
        return int(self._read("count_blocks", "SELECT COUNT(*) FROM blocks")[0][0])

    def heights(self) -> dict[str, int]:
        """author -> highest stored height.

        :raises StorageError: the read failed.
        """
        return {a: int(h) for a, h in self._read("heights", "SELECT author, MAX(height) FROM blocks GROUP BY author")}

    # ------------------------------------------------------------ pending entries

    def save_pending(self, key: str, entry: Entry) -> None:
        """Queue ``entry`` for our next block under ``key`` (e.g. ``"claim:<ticket hash>"``),
        durable on return. Saving an existing key replaces its entry and keeps its position.

        :raises StorageError: the write failed.
        """
        data = encode_entry(entry)
        self._write("save_pending", lambda conn: conn.execute(
            "INSERT INTO pending (key, data) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET data = excluded.data",
            (key, data)))

    def pending(self) -> list[tuple[str, Entry]]:
        """The queued entries, ``[(key, entry)]`` in insertion order.

        :raises StorageError: the read failed or a stored entry does not decode.
        """
        out = []
        for key, data in self._read("pending", "SELECT key, data FROM pending ORDER BY seq"):
            try:
                out.append((key, decode_entry(data)))
            except MalformedMessage as exc:
                raise self._corrupt(f"pending entry {key!r}", exc) from None
        return out

    def drop_pending(self, keys: Iterable[str]) -> None:
        """Delete the queued entries with these keys (unknown keys are ignored), durably.

        :raises StorageError: the write failed.
        """
        rows = [(k,) for k in keys]
        if rows:
            self._write("drop_pending", lambda conn: conn.executemany("DELETE FROM pending WHERE key = ?", rows))

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the file (idempotent); later calls raise StorageError.

        :raises StorageError: closing failed (e.g. the final WAL checkpoint hit an I/O error).
        """
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise StorageError(f"ledger store {self._path}: close failed: {_describe(exc)}") from exc

    def __enter__(self) -> "LedgerStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LedgerStore {self._path} network={self._network_id}{' closed' if self._conn is None else ''}>"


def _insert_snapshot(conn: sqlite3.Connection, snap: Any, checkpoints: list[Any]) -> None:
    """Store ``snap`` (not adopted) and its ``checkpoints``; both idempotent."""
    conn.execute("INSERT OR IGNORE INTO snapshots (hash, time_ms, adopted, data) VALUES (?, ?, 0, ?)",
                 (snap.hash, snap.time_ms, snap.raw))
    conn.executemany("INSERT OR IGNORE INTO checkpoints (snapshot_hash, signer, data) VALUES (?, ?, ?)",
                     [(c.snapshot_hash, c.signer, _cp_json(c)) for c in checkpoints])


def _cp_json(c: Any) -> str:
    return json.dumps({**c.body(), "sig": c.signature.hex()}, sort_keys=True)


def _cp_from_json(text: str, store: "LedgerStore") -> Any:
    from .core.ledger.snapshot import Checkpoint
    try:
        d = json.loads(text)
        return Checkpoint(d["network"], d["time_ms"], d["snapshot_hash"], d["heads_digest"], d["signer"],
                          bytes.fromhex(d["sig"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise store._corrupt("checkpoint", exc) from None


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)
