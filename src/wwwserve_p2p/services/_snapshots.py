"""Checkpoints of settled ledger history for the ledger service (issue 18 item 5).

What a node does (rules and bounds: :mod:`wwwserve_p2p.core.ledger.snapshot`):

- every ``ledger.checkpoint_interval`` s it takes the snapshot of its replica at the settled
  cut ``T = floor((now - checkpoint_settle) / interval) * interval`` (every honest node picks
  the same ``T``), signs a :class:`Checkpoint` of it and stores both;
- it asks the alive peers for their checkpoints of ``T`` (sync kind ``checkpoint``); once
  signers holding more than 2/3 of the stake at the cut (and more than 2/3 of the stake in its
  own view) attested the same hash, it **adopts** the snapshot: the store deletes the blocks at
  or below the cut (one transaction) and the replica is re-based in place on it (blocks above
  the cut, proofs and pending blocks kept), so disk and memory hold the active window only;
- it serves its adopted snapshot in pages of half a frame (sync kind ``snapshot``), with the
  checkpoints it holds for it;
- a node that holds no block of any other author yet (a fresh node), or that found a peer
  no longer holding blocks it lacks (behind), asks a peer whose ``heads`` answer names an
  adopted snapshot for it, checks its hash and attestation (> 2/3 of the stake in
  the snapshot; other peers serving checkpoints of a *different* snapshot of the same ``T``
  make it refuse), loads it and then pulls only the blocks above the cut with the usual sync.

Everything keyed by remote input is bounded: pages per snapshot (:data:`MAX_PAGES`), bytes
(``MAX_SNAPSHOT_BYTES``), checkpoints per snapshot (``MAX_CHECKPOINTS``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
import zlib
from typing import TYPE_CHECKING, Any

import trio

from ..core.ledger.snapshot import (MAX_CHECKPOINTS, MAX_SNAPSHOT_BYTES, Checkpoint, Snapshot, attestation,
                                    is_attested, load_into, rebase, settled_time, take_snapshot)
from ..errors import LedgerError, MalformedMessage, OverlayError, RequestTimeout, StorageError
from ..wire import ledger_codec as lc
from ..wire.framing import frame

if TYPE_CHECKING:
    from ..net.base import Stream
    from .ledger import LedgerService

log = logging.getLogger("wwwserve.ledger.snapshots")

#: most pages of one snapshot we fetch
MAX_PAGES = 4096
#: peers asked for checkpoints per round, and for a conflicting snapshot by a fresh node
ASK_PEERS = 16
CONFLICT_PEERS = 2
#: snapshot catch-up attempts of a fresh node (then it syncs block by block)
CATCH_UP_TRIES = 3


class SnapshotKeeper:
    """The checkpoint and snapshot part of a :class:`~.ledger.LedgerService` (same ledger,
    store and overlay). ``stats()`` is ``GET /ledger``'s ``snapshots``."""

    def __init__(self, service: "LedgerService"):
        self.s = service
        cfg = service.config
        self.interval_ms = int(float(getattr(cfg, "checkpoint_interval", 0.0)) * 1000)
        self.settle_ms = int(float(getattr(cfg, "checkpoint_settle", 900.0)) * 1000)
        self.catch_up_enabled = bool(getattr(cfg, "snapshot_sync", True))
        #: our snapshot of the latest cut we computed, and the checkpoints we hold of it
        self.current: Snapshot | None = None
        self.cps: dict[str, Checkpoint] = {}
        self.adopted: Snapshot | None = None
        self._tries = 0
        #: a peer answered a range pull from above what we asked: it pruned history we lack
        #: (we were away while the network adopted a snapshot): catch up from its snapshot
        self.behind = False
        self._behind_tries = 0
        # our own randomness (jitter, peer order): the service's rng drives selection, untouched
        self.rng = random.Random(zlib.crc32(service.me.encode()))
        self.counts = {"taken": 0, "adoptions": 0, "loaded": 0, "served_pages": 0, "refused": 0,
                       "pruned_blocks": 0}

    # ------------------------------------------------------------ views
    def stats(self) -> dict[str, Any]:
        a = self.adopted
        return {"interval_s": self.interval_ms / 1000, "settle_s": self.settle_ms / 1000,
                "adopted": None if a is None else {"time_ms": a.time_ms, "hash": a.hash, "bytes": len(a.raw)},
                "current": None if self.current is None else {
                    "time_ms": self.current.time_ms, "hash": self.current.hash,
                    "attested_by": sorted(self.cps)},
                **self.counts}

    def restored(self) -> None:
        """After the store was loaded: remember the adopted snapshot it started from."""
        self.adopted = self.s.ledger.base_snapshot

    # ------------------------------------------------------------ checkpoint rounds
    async def run(self) -> None:
        if self.interval_ms <= 0:
            return
        period = max(0.5, min(self.interval_ms / 4000, 10.0))
        while True:
            await trio.sleep(period * (0.9 + 0.2 * self.rng.random()))
            try:
                await self.round()
            except (LedgerError, StorageError) as exc:
                log.error("checkpoint round failed: %s", exc)

    async def round(self) -> bool:
        """One checkpoint round (see the module docstring); True if a snapshot was adopted."""
        led = self.s.ledger
        t = settled_time(self.s.runtime.clock.wall_ms(), self.interval_ms, self.settle_ms)
        base = self.adopted.time_ms if self.adopted is not None else -1
        if t <= base or t <= 0:
            return False
        if self.current is None or self.current.time_ms != t:
            snap = take_snapshot(led, t)
            if not snap.data["heads"]:
                return False   # nothing settled yet
            own = attestation(snap, self.s.me, self.s._sign_fn)
            self.current, self.cps = snap, {self.s.me: own}
            self.counts["taken"] += 1
            await self.s._blocking(self.s.store.save_snapshot, snap, [own])
        snap = self.current
        peers = list(self.s._alive_peers())
        self.rng.shuffle(peers)
        for peer in peers[:ASK_PEERS]:
            if self._attested(snap):
                break
            try:
                with trio.fail_after(15):
                    got = await self.s._call(peer, lc.SyncRequest(led.network_id, "checkpoint", lo=t))
            except (OverlayError, MalformedMessage, RequestTimeout, trio.TooSlowError) as exc:
                log.debug("checkpoints of %s: %s", peer, exc)
                continue
            self._collect(snap, [c for r in got for c in r.checkpoints])
        if not self._attested(snap):
            return False
        await self.adopt(snap)
        return True

    def _collect(self, snap: Snapshot, cps: list[Checkpoint]) -> None:
        for c in cps[:MAX_CHECKPOINTS]:
            if len(self.cps) >= MAX_CHECKPOINTS:
                break
            if c.signer not in self.cps and c.of(snap) and c.valid():
                self.cps[c.signer] = c

    def _view_stake(self) -> dict[str, int]:
        return {p: a.selectable_stake for p, a in self.s.ledger.accounts().items() if a.selectable_stake > 0}

    def _attested(self, snap: Snapshot) -> bool:
        return is_attested(snap, self.cps.values(), self.s.ledger.genesis, view_stake=self._view_stake())

    async def adopt(self, snap: Snapshot) -> None:
        """Make ``snap`` our base: store (blocks at or below the cut deleted) and replica."""
        led = self.s.ledger
        rebase(led, snap)   # raises LedgerError (nothing changed) if it is not our history
        n = await self.s._blocking(self.s.store.adopt_snapshot, snap, list(self.cps.values()))
        self.adopted = snap
        self.counts["adoptions"] += 1
        self.counts["pruned_blocks"] += n
        log.info("adopted snapshot %s at T=%d attested by %d members: %d stored blocks pruned, %d held",
                 snap.hash[:16], snap.time_ms, len(self.cps), n, led.summary(accounts=False)["blocks_held"])
        self.s._on_change()

    # ------------------------------------------------------------ serving
    async def serve(self, stream: "Stream", req: lc.SyncRequest) -> None:
        """Answer a ``snapshot`` or ``checkpoint`` sync request on ``stream``."""
        if req.kind == "checkpoint":
            snap = self.current if self.current is not None and self.current.time_ms == req.lo else None
            if snap is None and self.adopted is not None and self.adopted.time_ms == req.lo:
                snap = self.adopted
            if snap is None:
                resp = lc.SyncResponse(error="no_checkpoint", done=True)
            else:
                cps = tuple(self.cps.values()) if snap is self.current else \
                    tuple(await self.s._blocking(self.s.store.checkpoints, snap.hash))
                resp = lc.SyncResponse(checkpoints=cps[:MAX_CHECKPOINTS], snapshot_hash=snap.hash,
                                       snapshot_time_ms=snap.time_ms, done=True)
            await stream.write(frame(lc.encode_sync_response(resp)))
            return
        snap = self.adopted
        if req.after and (snap is None or snap.hash != req.after):
            snap = await self.s._blocking(self.s.store.snapshot, req.after)
        if snap is None:
            await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(error="no_snapshot", done=True))))
            return
        pages = snap.pages(self.page_bytes())
        if req.lo >= len(pages):
            await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(error="no_such_page", done=True))))
            return
        cps: tuple = ()
        if req.lo == 0:
            cps = tuple(await self.s._blocking(self.s.store.checkpoints, snap.hash))[:MAX_CHECKPOINTS]
        self.counts["served_pages"] += 1
        await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(
            snapshot_page=pages[req.lo], snapshot_pages=len(pages), snapshot_hash=snap.hash,
            snapshot_time_ms=snap.time_ms, checkpoints=cps, done=True))))

    def annotate(self, resp: lc.SyncResponse) -> lc.SyncResponse:
        """A ``heads`` answer names our adopted snapshot (hash and time), so a peer that is
        fresh or behind knows to ask for it (and others do not spend a round trip)."""
        a = self.adopted
        return resp if a is None else replace(resp, snapshot_hash=a.hash, snapshot_time_ms=a.time_ms)

    def page_bytes(self) -> int:
        """Snapshot bytes per answer frame: half the frame cap (room for checkpoints)."""
        return max(1024, self.s.max_frame // 2)

    # ------------------------------------------------------------ catching up
    def fresh(self) -> bool:
        """We hold no block of any other author and no snapshot: a node that just joined."""
        led = self.s.ledger
        return led.base_snapshot is None and not (led.heads().keys() - {self.s.me})

    def note_behind(self, peer_id: str, author: str, asked: int, got: int) -> None:
        """A range pull of ``author`` from ``asked`` got blocks from ``got`` > ``asked`` only:
        ``peer_id`` pruned the heights between (they are settled in its snapshot)."""
        if not self.behind:
            log.info("%s holds %s only from height %d (we asked from %d): settled history we lack, "
                     "catching up from its snapshot", peer_id, author[:16], got, asked)
        self.behind = True

    async def maybe_catch_up(self, peer_id: str) -> bool:
        """If :meth:`fresh` (or :attr:`behind`), load ``peer_id``'s adopted snapshot when it is
        attested (and, when behind, newer than ours); True if loaded. Never raises for a bad or
        missing snapshot (counted in ``refused``)."""
        if not self.catch_up_enabled:
            return False
        if self.fresh():
            if self._tries >= CATCH_UP_TRIES:
                return False
            self._tries += 1
        elif self.behind:
            if self._behind_tries >= 2 * CATCH_UP_TRIES:
                return False
            self._behind_tries += 1
        else:
            return False
        try:
            snap, cps = await self.fetch(peer_id)
        except (OverlayError, MalformedMessage, RequestTimeout, trio.TooSlowError, LedgerError) as exc:
            if "no_snapshot" not in str(exc):
                self.counts["refused"] += 1
            log.info("no snapshot from %s (%s): syncing block by block", peer_id, exc)
            return False
        if snap is None:
            return False
        base = self.s.ledger.base_snapshot
        if not self.fresh() and not (self.behind and (base is None or snap.time_ms > base.time_ms) and any(
                h > self.s.ledger.height(a) for a, (h, _t) in snap.heads().items())):
            return False
        others = [p for p in self.s._alive_peers() if p != peer_id][:CONFLICT_PEERS]
        for p in others:
            try:
                with trio.fail_after(15):
                    got = await self.s._call(p, lc.SyncRequest(self.s.ledger.network_id, "checkpoint", lo=snap.time_ms))
            except (OverlayError, MalformedMessage, RequestTimeout, trio.TooSlowError):
                continue
            theirs = [c for r in got for c in r.checkpoints]
            if any(c.time_ms == snap.time_ms and c.snapshot_hash != snap.hash and c.valid() for c in theirs):
                self.counts["refused"] += 1
                log.warning("peer %s attests another snapshot of T=%d than %s: not loading it", p, snap.time_ms,
                            peer_id)
                return False
            cps.extend(c for c in theirs if c.of(snap))
        if not (self.fresh() or self.behind):
            return False
        base = self.s.ledger.base_snapshot
        if base is not None and base.time_ms >= snap.time_ms:
            self.behind = False   # another sync worker loaded it (or a newer one) meanwhile
            return False
        try:
            load_into(self.s.ledger, snap)
        except LedgerError as exc:
            self.counts["refused"] += 1
            log.warning("cannot load snapshot %s of %s: %s", snap.hash[:16], peer_id, exc)
            return False
        self.behind = False
        self.cps = {c.signer: c for c in cps if c.of(snap)}
        await self.s._blocking(self.s.store.adopt_snapshot, snap, list(self.cps.values()))
        self.adopted = snap
        self.counts["loaded"] += 1
        log.info("caught up from snapshot %s (T=%d, %d bytes, %d authors) of %s", snap.hash[:16], snap.time_ms,
                 len(snap.raw), len(snap.data["heads"]), peer_id)
        self.s._on_change()
        return True

    async def fetch(self, peer_id: str) -> tuple[Snapshot | None, list[Checkpoint]]:
        """``peer_id``'s adopted snapshot and its checkpoints, checked: bytes hash to the named
        hash and the checkpoints attest it by > 2/3 of the stake at the cut.

        :raises LedgerError: malformed, wrong hash, or not attested.
        :raises OverlayError, MalformedMessage, RequestTimeout, trio.TooSlowError: the peer failed."""
        net = self.s.ledger.network_id
        with trio.fail_after(60):
            first = (await self.s._call(peer_id, lc.SyncRequest(net, "snapshot", lo=0)))[0]
        if not first.snapshot_hash or first.snapshot_pages < 1 or first.snapshot_pages > MAX_PAGES:
            raise LedgerError(f"bad snapshot answer ({first.snapshot_pages} pages)")
        parts = [first.snapshot_page]
        cps = list(first.checkpoints)
        size = len(first.snapshot_page)
        for k in range(1, first.snapshot_pages):
            with trio.fail_after(60):
                r = (await self.s._call(peer_id, lc.SyncRequest(net, "snapshot", lo=k, after=first.snapshot_hash)))[0]
            if r.snapshot_hash != first.snapshot_hash:
                raise LedgerError("the peer's snapshot changed while we fetched it")
            size += len(r.snapshot_page)
            if size > MAX_SNAPSHOT_BYTES:
                raise LedgerError("snapshot too large")
            parts.append(r.snapshot_page)
        snap = Snapshot.from_bytes(b"".join(parts), network=net)
        if snap.hash != first.snapshot_hash:
            raise LedgerError("snapshot bytes do not hash to the hash the peer named")
        if not is_attested(snap, cps, self.s.ledger.genesis):
            raise LedgerError(f"snapshot {snap.hash[:16]} not attested by > 2/3 of the stake at its cut "
                              f"({len(cps)} checkpoints)")
        return snap, cps
