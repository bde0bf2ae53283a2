"""Ledger replication: our block production, the ``ledger`` gossip topic, ``/wwwserve/ledger-sync/1``.

- **Blocks**: entries we queue (claims for work we served, voids of failed attempts, stake
  changes, equivocation proofs) are sealed into our next block every ``ledger.block_interval``.
  A block is written to SQLite (durable: *acknowledged*) before it is applied and gossiped,
  so a crash can never make us sign two different blocks at one height.
- **Gossip** on ``/wwwserve/<network_id>/ledger``: authors publish their own blocks; anyone
  publishes equivocation proofs. The topic validator decodes and fully checks every message
  (signatures included) before it is forwarded.
- **Sync** (``/wwwserve/ledger-sync/1``, length-prefixed protobuf frames): ``heads`` returns the
  chain tips and proofs of one page of authors in PeerId order (``after``/``limit`` in the
  request, ``next_after`` in the answer; see the proto for old peers); ``range`` streams blocks of one author by height range in
  batches, then ``done``. A node pulls when a gossiped block reveals a gap, every
  ``ledger.sync_interval`` with a random peer, and at once with a peer that (re)joins, so a
  restarted or partitioned node catches up.

Signature checks of pulled batches run on a worker thread; the ledger itself is only touched
on the trio thread.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from ..core.acceptance import can_afford
from ..core.ledger import (AddResult, AddStatus, Block, Claim, Entry, EquivocationProof, Ledger, Receive, Signer,
                           Transfer, is_premature)
from ..core.peers import PeerEvent
from ..core.policy import plan_stake
from ..core.types import PeerStatus
from ..errors import InvalidBlock, MalformedMessage, OverlayError, RequestTimeout, StorageError
from ..net.base import GossipMessage, Overlay, Stream
from ..wire import ledger_codec as lc
from ..wire.framing import FrameReader, frame
from ._admission import NonMemberBudget
from ._held import HeldBlocks
from ._snapshots import SnapshotKeeper
from ._validated import Validated
from .receiving import all_blocks, receives_for
from .runtime import Runtime

if TYPE_CHECKING:
    from ..config import LedgerSection
    from ..ledger_store import LedgerStore

SYNC_PROTOCOL = "/wwwserve/ledger-sync/1"
#: Blocks per sync response frame, and the most blocks one range request returns.
SYNC_BATCH = 64
SYNC_MAX_BLOCKS = 4096
SYNC_READ_TIMEOUT = 5.0
#: Concurrent sync conversations (with different peers).
SYNC_WORKERS = 4
#: Authors per ``heads`` page: the default and the most a server answers (a page with every
#: author a proof is well under the 2 MiB frame; the server also stops at half a frame).
HEADS_PAGE = 2048
#: Gossip-validated blocks whose admission is remembered until they are applied.
_PRE_ADMITTED_MAX = 1024
#: Budgeted bytes per head row and per proof when filling a ``heads`` page.
_HEAD_ROW_BYTES = 160
_PROOF_BYTES = 1536
#: Longest sleep (s) between checks of the premature-block queue (the wall clock may jump).
HOLD_RECHECK_S = 0.5
#: For this long (s) after a peer (re)joined, a status showing another ledger digest is pulled
#: at once (no cooldown), and a failed pull is retried after SYNC_RETRY_S.
JOIN_GRACE_S = 15.0
SYNC_RETRY_S = 0.5
#: After our start, when the first peer is seen: re-gossip our newest block at these delays (s),
#: so peers that missed it (a restart) get it, or see the gap and pull, without waiting for sync.
ANNOUNCE_AT_S = (0.0, 1.0, 2.0, 4.0)

log = logging.getLogger("wwwserve_p2p.ledger")


def ledger_topic(network_id: str) -> str:
    return f"/wwwserve/{network_id}/ledger"


class LedgerService:
    """The node's ledger replica plus its replication machinery. One per node.

    ``ledger`` is the in-memory replica (pure :class:`~wwwserve_p2p.core.ledger.Ledger`);
    ``store`` persists it. Use :meth:`submit` to queue an entry for our next block.

    Dependencies: ``me``/``sign`` (our PeerId and signer), ``overlay``, ``runtime`` (clock,
    blocking-work runner), ``config`` (the ``[ledger]`` section), ``max_frame`` (bytes per sync
    frame), ``rng`` (sync peer choice), ``alive_peers()`` (sync candidates),
    ``stake_target(elapsed_s)`` (the stake policy: micro-credits to hold now), ``incarnation``
    (keys of our stake entries across restarts) and ``on_change()`` (called after blocks were
    applied).
    """

    def __init__(self, ledger: Ledger, store: "LedgerStore", *, me: str, sign: Signer, overlay: Overlay,
                 runtime: Runtime, config: "LedgerSection", max_frame: int, rng: random.Random,
                 alive_peers: Callable[[], list[str]], stake_target: Callable[[float], int],
                 incarnation: int, on_change: Callable[[], None] = lambda: None):
        self.ledger = ledger
        self.store = store
        self.me = me
        self._sign_fn = sign
        self.overlay = overlay
        self.runtime = runtime
        self.config = config
        self.max_frame = max_frame
        self.rng = rng
        self._alive_peers = alive_peers
        self._stake_target = stake_target
        self.incarnation = incarnation
        self._on_change = on_change
        self.topic = ledger_topic(ledger.network_id)
        self._queue: "OrderedDict[str, Entry]" = OrderedDict()
        self._wakeup = trio.Event()
        #: seal a block (empty if nothing is queued) dated after this time (ms) once our clock
        #: is past it and our chain is not (:meth:`mark_after`); None: nothing asked
        self._mark_after: int | None = None
        self._decoded: Validated[Block | EquivocationProof] = Validated(256)
        self._sync_now: trio.MemorySendChannel[str]
        self._sync_rx: trio.MemoryReceiveChannel[str]
        self._sync_now, self._sync_rx = trio.open_memory_channel(256)
        self._pulling: set[str] = set()
        self._last_pull: dict[str, float] = {}
        self._joined_at: dict[str, float] = {}
        self._peer_seen = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.blocks_produced = 0
        self.rejected: dict[str, int] = {}
        self.storage_errors = 0
        self.last_sync_peer = ""
        #: sync conversations that completed / failed (``GET /ledger``: ``sync``)
        self.sync_counts = {"ok": 0, "failed": 0}
        #: blocks dated beyond our clock + tolerance, held until due (bounded; see ``_held``)
        self.premature = HeldBlocks()
        #: the storage budget of authors that are not members (see ``_admission``)
        self.non_members = NonMemberBudget()
        #: block hash -> how the gossip validator admitted it (spent there once, see _admit)
        self._pre_admitted: "OrderedDict[str, str]" = OrderedDict()
        self._allocated = frozenset(p for p, a in ledger.genesis.allocations if a > 0)
        self._heads_cache: tuple[list[str], dict[str, tuple[int, str]], dict[str, EquivocationProof]] = ([], {}, {})
        self._heads_key = ""
        self._premature_added = trio.Event()
        #: ``pays_us(requester, amount)``: the ticket desk's channel check (see :meth:`can_afford`)
        self.pays_us: Callable[[str, int], bool] | None = None
        #: called every ``min(1, stake_interval)`` s and when a peer joins (the desk's claims,
        #: channel opens and closes)
        self.tick_hooks: list[Callable[[], None]] = []
        self._tick_now = trio.Event()
        #: checkpoints, pruning and snapshot catch-up (issue 18; see ``_snapshots``)
        self.snapshots = SnapshotKeeper(self)

    # ------------------------------------------------------------ our own entries
    def submit(self, key: str, entry: Entry) -> None:
        """Queue ``entry`` for our next block under the unique ``key`` (re-submitting a key is a
        no-op). The queue is persisted, so a crash before sealing loses nothing.

        :raises StorageError: the queue could not be persisted (the entry is still queued in memory).
        """
        if key in self._queue:
            return
        self._queue[key] = entry
        self._wakeup.set()
        self.store.save_pending(key, entry)

    def mark_after(self, time_ms: int) -> None:
        """Make our chain carry a block dated after ``time_ms`` (an empty block if nothing else
        is queued by the next seal), once our clock is past it: other chains' entries may wait
        for our chain to pass a deadline (a duel's bond release, issue 18). No-op if it is."""
        if self.ledger.chain_last_time(self.me) > time_ms:
            return
        self._mark_after = time_ms if self._mark_after is None else max(self._mark_after, time_ms)
        self._wakeup.set()

    def _marker_due(self, now: int) -> bool:
        m = self._mark_after
        if m is None:
            return False
        if self.ledger.chain_last_time(self.me) > m:
            self._mark_after = None
            return False
        return now > m

    def queued(self) -> int:
        return len(self._queue)

    def queued_transfers(self) -> int:
        """Micro-credits of our Transfers queued but not sealed yet (issue 14: ``Node.transfer``)."""
        return sum(e.amount for e in self._queue.values() if type(e) is Transfer)

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        """Run blocking work (SQLite, batch signature checks) with the runtime's runner (a
        worker thread in production, inline under MockClock)."""
        return await self.runtime.run_blocking(fn, *args)

    def _sign(self, domain: str, payload: bytes) -> bytes:
        return self._sign_fn(domain, payload)

    # ------------------------------------------------------------ views
    def in_debt(self, peer_id: str) -> bool:
        """Whether ``peer_id`` is in debt (or equivocated) in our view: it may neither offload
        nor be selected, and we do not serve its requests."""
        acc = self.ledger.account(peer_id)
        return acc.in_debt or acc.equivocated

    def can_afford(self, peer_id: str, amount: int) -> bool:
        """Whether ``peer_id`` can pay ``amount`` micro-credits more in our view (never when
        equivocated). Another peer: it has a payment channel open toward us with that much
        room (:attr:`pays_us`, the ticket desk's view; without one, its balance). We: our
        balance covers it (we can lock it in a channel), or one of our channels still has room."""
        acc = self.ledger.account(peer_id)
        if acc.equivocated:
            return False
        if peer_id != self.me:
            if self.pays_us is not None:
                return self.pays_us(peer_id, amount)
            return can_afford(acc.balance, amount, self.ledger.params.overdraft)
        if can_afford(acc.balance, amount, self.ledger.params.overdraft):
            return True
        led = self.ledger
        return any(info.deposit - led.channel_claimed(info.executor, cid)[1] >= amount
                   for cid, info in led.channels_of(self.me).items()
                   if not led.channel_closed(self.me, cid) and info.expires_ms > self.runtime.clock.wall_ms())

    def is_member(self, peer_id: str) -> bool:
        """Whether ``peer_id`` may make us store its blocks freely (or is us): a genesis
        allocation, stake, unbonding, credit provable from its own chain, or credit locked in
        its open payment channels, in our view. A positive fold balance or paid work alone does
        not count: legacy claims are paid in the fold without any lock behind them, so two
        fresh keys could otherwise make each other members with one block (issue 18 §5)."""
        if peer_id == self.me or peer_id in self._allocated:
            return True
        acc = self.ledger.account(peer_id)
        return (acc.stake > 0 or acc.unbonding > 0 or self.ledger.provable(peer_id) > 0
                or self._locked_by(peer_id) > 0)

    def _exempt(self, block: Block) -> bool:
        """A non-member's block that passes without budget: it claims a ticket of a member or
        of a requester who can afford it (how a fresh executor earns its way in), or receives
        a member's transfer. Reads fields only: the signatures are checked afterwards."""
        for e in block.entries:
            if type(e) is Claim:
                t = e.ticket
                if self.is_member(t.requester) or self.can_afford(t.requester, t.price):
                    return True
            elif type(e) is Receive and self.is_member(e.block.author):
                return True
        return False

    def _may_admit(self, block: Block) -> bool:
        """The gossip validator's check, before any signature is verified: would :meth:`_admit`
        take ``block`` now? Spends nothing."""
        return (self.is_member(block.author) or self._exempt(block)
                or self.non_members.has_room(block.author, self.runtime.clock.monotonic(), block.canonical_size()))

    def _admit(self, block: Block) -> str:
        """Store ``block``? ``"member"`` (its author is one), ``"exempt"`` (see :meth:`_exempt`),
        ``"budget"`` (a non-member within its budget: spent now, or already by the gossip
        validator), or ``""`` (refused)."""
        pre = self._pre_admitted.pop(block.hash, None)
        if pre is not None:
            return pre
        if self.is_member(block.author):
            return "member"
        if self._exempt(block):
            return "exempt"
        ok = self.non_members.allow(block.author, block.canonical_size(), self.runtime.clock.monotonic())
        return "budget" if ok else ""

    def _pre_admit(self, block: Block) -> bool:
        """The gossip validator's admission after the signature checks: spend the budget now
        (validations of many messages run before the first reaches :meth:`accept_blocks`) and
        remember it for :meth:`_admit` (bounded: a forgotten one is simply charged again)."""
        if block.hash in self._pre_admitted or self._held(block):
            return True
        kind = self._admit(block)
        if not kind:
            return False
        self._pre_admitted[block.hash] = kind
        while len(self._pre_admitted) > _PRE_ADMITTED_MAX:
            self._pre_admitted.popitem(last=False)
        return True

    def _admit_proof(self, proof: EquivocationProof, *, spend: bool) -> bool:
        """Take an equivocation proof of ``proof.author``? Always for members; a non-member's
        within its budget (a proof of a fresh key burns nothing and would otherwise cost every
        node disk for free); ``spend=False`` only looks."""
        if self.is_member(proof.author):
            return True
        now = self.runtime.clock.monotonic()
        if not spend:
            return self.non_members.has_room(proof.author, now, _PROOF_BYTES)
        return self.non_members.allow(proof.author, _PROOF_BYTES, now)

    def _count_refused(self, size: int) -> None:
        reason = "non_member_full" if self.non_members.full(size) else "non_member_rate"
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def stake_of(self, peer_id: str) -> int:
        """``peer_id``'s selectable stake in our view (micro-credits)."""
        return self.ledger.account(peer_id).selectable_stake

    def summary(self) -> dict[str, Any]:
        """``GET /ledger``: network, block counts, supply, burns, our account and the state hash."""
        return {**self.ledger.summary(), "me": self.ledger.account(self.me).to_dict(),
                "queued_entries": self.queued(), "blocks_produced": self.blocks_produced,
                "rejected": dict(self.rejected), "held_premature": len(self.premature),
                "held_premature_bytes": self.premature.bytes, "non_members": self.non_members.stats(),
                "sync": dict(self.sync_counts), "snapshots": self.snapshots.stats()}

    def accounts_view(self) -> dict[str, Any]:
        """``GET /ledger/accounts``: every account in our view (micro-credits); ``debt`` is how far
        the balance is below zero; ``locked`` is what the account still holds in its open payment
        channels (deposits not yet paid out) plus its duel bonds not yet paid out (``duel_locked``,
        issue 18), so balance + stake + unbonding + locked is all it owns."""
        led = self.ledger
        rows = [{**a.to_dict(), "debt": max(0, -a.balance),
                 "locked": self._locked_by(a.peer_id) + led.duel_locked(a.peer_id),
                 "duel_locked": led.duel_locked(a.peer_id)}
                for a in led.accounts().values()]
        return {"network_id": self.ledger.network_id, "state_hash": self.ledger.state_hash(),
                "unit": "micro-credits", "accounts": rows}

    def _locked_by(self, requester: str) -> int:
        led = self.ledger
        return sum(max(0, info.deposit - led.channel_paid(cid))
                   for cid, info in led.channels_of(requester).items() if not led.channel_closed(requester, cid))

    def blocks_view(self, author: str, lo: int = 1, hi: int | None = None, limit: int = 100) -> dict[str, Any]:
        """``GET /ledger/blocks``: ``author``'s blocks with ``lo <= height <= hi`` (at most ``limit``),
        as canonical JSON with their hashes; without ``author``, the chain heads."""
        if not author:
            return {"heads": [{"author": a, "height": h, "hash": t}
                              for a, (h, t) in sorted(self.ledger.heads().items())]}
        hi = lo + limit - 1 if hi is None else min(hi, lo + limit - 1)
        blocks = self.ledger.blocks(author, lo, hi)
        return {"author": author, "height": self.ledger.height(author),
                "blocks": [{"hash": b.hash, **b.header.to_canonical(),
                            "entries": [e.to_canonical() for e in b.entries]} for b in blocks]}

    # ------------------------------------------------------------ membership
    def on_peer_events(self, events: list[PeerEvent], status: PeerStatus | None) -> None:
        """Membership subscriber: compare ledgers with a peer whose status shows another ledger
        digest, and at once with peers that (re)join or recover (restart, partition)."""
        now = self.runtime.clock.monotonic()
        for ev in events:
            if ev.kind in ("joined", "rejoined", "recovered"):
                self._joined_at[ev.peer_id] = now
                self._peer_seen.set()
                self._tick_now.set()
                self.request_pull(ev.peer_id)
            elif ev.kind == "forgotten":
                self._joined_at.pop(ev.peer_id, None)
                self._last_pull.pop(ev.peer_id, None)
        if status is not None and status.ledger_digest and status.ledger_digest != self.ledger.heads_digest():
            # a peer that just (re)joined (a restart) announces blocks we cannot have: pull at once
            self.request_pull(status.peer_id, cooldown=not self._recently_joined(status.peer_id))

    def _recently_joined(self, peer_id: str) -> bool:
        t = self._joined_at.get(peer_id)
        return t is not None and self.runtime.clock.monotonic() - t < JOIN_GRACE_S

    async def seal(self) -> Block | None:
        """Seal queued entries into our next block now: persist, apply, gossip. Returns it, or None
        when nothing valid was queued. Entries the ledger rejects are dropped with a log line."""
        now = self.runtime.clock.wall_ms()  # one time for the checks and the block (expiry, maturity)
        marker = self._marker_due(now)
        if not self._queue and not marker:
            return None
        keys = list(self._queue)[: self.ledger.params.max_block_entries]
        entries = [self._queue[k] for k in keys]
        me = self.me
        ok, bad = self.ledger.validate_own(me, now, entries)
        for e, reason in bad:
            log.warning("dropping our own %s entry: %s", type(e).__name__, reason)
        if not ok:
            self._forget(keys)
            if not marker:
                return None
            keys = []
        block = self.ledger.next_block(me, now, ok, self._sign)
        if is_premature(block, now, self.premature.tolerance_ms):
            # our previous block (or a ticket) is dated ahead of our clock (it was set back):
            # peers would hold this block; wait until our clock catches up, entries stay queued
            log.warning("not sealing yet: block %d would be dated %d ms ahead of our clock",
                        block.height, block.time_ms - now)
            return None
        try:  # the block and the removal of its entries from the pending table: one transaction
            await self._blocking(partial(self.store.add_blocks, [block], drop_pending=keys))
        except StorageError as exc:
            self.storage_errors += 1
            log.error("cannot persist our block %d (entries stay queued): %s", block.height, exc)
            return None
        res = self.ledger.add_block(block, verified=True)
        if res.status != "applied":
            log.error("our own block %d was not applied: %s %s", block.height, res.status, res.reason)
        for k in keys:  # sealed, or refused by the ledger (logged above)
            self._queue.pop(k, None)
        self.blocks_produced += 1
        log.info("sealed block %d with %d entries (%s)", block.height, len(ok), _kinds(ok))
        await self._publish(block)
        self._on_change()
        return block

    def _forget(self, keys: list[str]) -> None:
        for k in keys:
            self._queue.pop(k, None)
        try:
            self.store.drop_pending(keys)
        except StorageError as exc:
            log.error("cannot drop sealed entries from the pending table: %s", exc)

    async def _publish(self, item: Block | EquivocationProof) -> None:
        try:
            await self.overlay.publish(self.topic, lc.encode_gossip(item))
        except OverlayError as exc:
            log.warning("could not gossip %s: %s (peers will pull it)", type(item).__name__, exc)

    # ------------------------------------------------------------ receiving
    def _validate(self, msg: GossipMessage) -> bool:
        """Gossip validator: decode and fully check before the message is forwarded."""
        try:
            item = lc.decode_gossip(msg.data)
            if isinstance(item, Block):
                if item.author != msg.source:
                    return False  # only authors publish their blocks; others' arrive by sync
                if not self._may_admit(item):
                    # a non-member over its budget: dropped before its signatures are verified,
                    # not forwarded (and the forwarder's gossip score pays for it)
                    self._count_refused(item.canonical_size())
                    return False
                self.ledger.check_static(item)
                if not self._pre_admit(item):
                    # many validations may run before the first is applied: spend here, once
                    self._count_refused(item.canonical_size())
                    return False
                if (is_premature(item, self.runtime.clock.wall_ms(), self.premature.tolerance_ms)
                        and self.ledger.height(item.author) < item.height):
                    # dated in the future: hold it here, and do not forward it (a flood of
                    # far-future blocks stops at the first honest node). Blocks at heights we
                    # already hold go on: they may prove an equivocation.
                    self._hold(item)
                    return False
            else:
                if not self._admit_proof(item, spend=False):
                    self._count_refused(_PROOF_BYTES)
                    return False
                item.check(self.ledger.network_id)
                if not self._admit_proof(item, spend=True):  # spent here once (see _pre_admit)
                    self._count_refused(_PROOF_BYTES)
                    return False
        except (MalformedMessage, InvalidBlock) as exc:
            reason = getattr(exc, "reason", "malformed")
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            log.debug("rejected ledger gossip from %s: %s", msg.source, exc)
            return False
        self._decoded.put(msg, item)
        return True

    async def _on_gossip(self, msg: GossipMessage) -> None:
        item = self._decoded.take(msg, lc.decode_gossip)
        if isinstance(item, EquivocationProof):
            await self.accept_proof(item, prepaid=True)
            return
        res = await self.accept_blocks([item], verified=True)
        if res and res[-1].status == "pending":
            self.request_pull(msg.received_from)

    async def accept_proof(self, proof: EquivocationProof, *, prepaid: bool = False) -> None:
        """Record ``proof`` (a non-member's within its budget; ``prepaid``: the gossip validator
        spent it already), persist it, report the cut."""
        cut = self.ledger.cut_height(proof.author)
        if cut is not None and cut <= proof.height:
            return  # nothing new (no budget spent on a duplicate)
        if not prepaid and not self._admit_proof(proof, spend=True):
            self._count_refused(_PROOF_BYTES)
            return
        member = self.is_member(proof.author)
        try:
            new = self.ledger.add_proof(proof)
        except InvalidBlock as exc:
            log.warning("invalid equivocation proof: %s", exc)
            return
        if new:
            log.warning("peer %s equivocated at height %d: its chain is cut and its stake burned",
                        proof.author, proof.height)
            if not member:
                self.non_members.hold(_PROOF_BYTES)
            await self._persist_proof(proof)
            self._on_change()

    async def _persist_proof(self, proof: EquivocationProof) -> None:
        try:
            await self._blocking(self.store.add_proof, proof)
        except StorageError as exc:
            self.storage_errors += 1
            log.error("cannot persist equivocation proof: %s", exc)

    async def accept_blocks(self, blocks: list[Block], *, verified: bool = False) -> list[AddResult]:
        """Offer blocks from peers (statically checked already if ``verified``): apply, persist what
        was applied, and report equivocations. Returns one result per block."""
        # skip what we already hold before paying for signature checks
        blocks = [b for b in blocks if not self._held(b)]
        if not verified and blocks:
            blocks = await self._blocking(self._check_batch, blocks)
        results = []
        applied: list[Block] = []
        now = self.runtime.clock.wall_ms()
        tolerance = self.premature.tolerance_ms
        for b in blocks:
            admitted = self._admit(b)
            if not admitted:
                # a non-member over its budget: neither stored nor applied (pulled again later)
                self._count_refused(b.canonical_size())
                results.append(AddResult(AddStatus.REJECTED, "non_member_rate", have=self.ledger.height(b.author)))
                continue
            res = self.ledger.add_block(b, verified=True, now_ms=now, tolerance_ms=tolerance)
            results.append(res)
            if admitted == "budget" and res.status in ("applied", "pending"):
                self.non_members.hold(b.canonical_size())  # stored, or held in the gap/dependency buffer
            if res.status == "premature":
                self._hold(b)
            elif res.status == "applied":
                applied.extend(res.applied)
            elif res.status == "equivocation":
                if res.proof is not None:
                    log.warning("caught %s equivocating at height %d", b.author, b.height)
                    await self._persist_proof(res.proof)
                    if admitted == "member":
                        # into our chain only when there is something to burn: a proof of a
                        # non-member would put junk into every honest chain for free
                        self.submit(f"proof:{res.proof.a.hash}:{res.proof.b.hash}", res.proof)
                    else:
                        self.non_members.hold(_PROOF_BYTES)
                    await self._publish(res.proof)
            elif res.status == "rejected":
                self.rejected[res.reason] = self.rejected.get(res.reason, 0) + 1
                log.info("rejected block %s/%d: %s", b.author, b.height, res.reason)
        if applied:
            try:
                await self._blocking(self.store.add_blocks, applied)
            except StorageError as exc:
                # the blocks stay applied in memory; they are re-pulled after a restart
                self.storage_errors += 1
                log.error("cannot persist %d received blocks: %s", len(applied), exc)
            self._receive_transfers(applied)  # issue 14 hook: see services/receiving.py
            self._on_change()
        return results

    def _hold(self, b: Block) -> None:
        """Keep premature ``b`` until due (``rejected["premature_dropped"]`` counts what the caps
        refused)."""
        if b.hash in self.premature:
            return
        if not self.premature.offer(b):
            self.rejected["premature_dropped"] = self.rejected.get("premature_dropped", 0) + 1
        self._premature_added.set()

    async def release_due(self) -> list[AddResult]:
        """Offer every held block that our clock has reached to the ledger (they passed the
        static checks when they arrived). Returns their results."""
        due = self.premature.pop_due(self.runtime.clock.wall_ms())
        if not due:
            return []
        log.info("%d held future-dated blocks are due now", len(due))
        return await self.accept_blocks(due, verified=True)

    async def _premature_loop(self) -> None:
        """Re-check the held blocks at the earliest due time, at least every HOLD_RECHECK_S."""
        while True:
            due_ms = self.premature.next_due_ms()
            if due_ms is None:
                await self._premature_added.wait()
                self._premature_added = trio.Event()
                continue
            delay = (due_ms - self.runtime.clock.wall_ms()) / 1000
            if delay > 0:
                await trio.sleep(min(HOLD_RECHECK_S, delay))
                continue
            await self.release_due()

    async def _unbonding_hold_loop(self) -> None:
        """Offer again, every HOLD_RECHECK_S, the blocks the ledger holds until a Withdraw's
        unbonding has passed since we first saw its Unstake (issue 18: a back-dated Unstake;
        :meth:`Ledger.release_unbonding_holds`)."""
        while True:
            await trio.sleep(HOLD_RECHECK_S)
            due = self.ledger.release_unbonding_holds(self.runtime.clock.wall_ms(), self.premature.tolerance_ms)
            if due:
                log.info("%d blocks held for unbonding are due now", len(due))
                await self.accept_blocks(due, verified=True)

    def _held(self, b: Block) -> bool:
        have = self.ledger.blocks(b.author, b.height, b.height)
        return bool(have) and have[0].hash == b.hash

    def _check_batch(self, blocks: list[Block]) -> list[Block]:
        """Worker thread: drop blocks failing the static checks (signatures); read-only on the ledger."""
        out = []
        for b in blocks:
            try:
                self.ledger.check_static(b)
                out.append(b)
            except InvalidBlock as exc:
                self.rejected[exc.reason] = self.rejected.get(exc.reason, 0) + 1
                log.info("rejected synced block %s/%d: %s", b.author, b.height, exc)
        return out

    # ------------------------------------------------------------ sync: client
    def request_pull(self, peer_id: str, *, cooldown: bool = False) -> None:
        """Ask the sync workers to compare heads with ``peer_id`` soon (deduplicated). With
        ``cooldown`` (a status showed a different ledger digest), not if we synced with it less
        than ``ledger.sync_interval`` ago: blocks still in flight on gossip also differ briefly."""
        if not peer_id or peer_id in self._pulling:
            return
        if cooldown and self.runtime.clock.monotonic() - self._last_pull.get(peer_id, -1e9) < self.config.sync_interval:
            return
        try:
            self._sync_now.send_nowait(peer_id)
            self._pulling.add(peer_id)
        except trio.WouldBlock:
            pass

    async def sync_with(self, peer_id: str) -> int:
        """Compare heads with ``peer_id`` and pull every block we miss. Returns blocks applied.

        :raises OverlayError, MalformedMessage, RequestTimeout: the peer failed us.
        """
        applied = 0
        after = ""
        while True:  # one page of heads at a time (see the proto: an old server sends one page)
            pages = await self._call(peer_id, lc.SyncRequest(self.ledger.network_id, "heads", after=after,
                                                             limit=HEADS_PAGE))
            resp = pages[0] if pages else lc.SyncResponse()
            if resp.snapshot_hash:   # the peer pruned to a snapshot: a fresh or behind node loads it first
                await self.snapshots.maybe_catch_up(peer_id)
            for proof in resp.proofs:
                await self.accept_proof(proof)
            for author, height, _tip in resp.heads:
                applied += await self._pull_author(peer_id, author, height)
            if not resp.next_after or resp.next_after <= after:
                break  # the last page (a cursor that does not advance ends the walk too)
            after = resp.next_after
        if applied:
            log.info("pulled %d blocks from %s", applied, peer_id)
        self.last_sync_peer = peer_id
        return applied

    async def _pull_author(self, peer_id: str, author: str, height: int) -> int:
        """Pull ``author``'s blocks above ours up to ``height`` from ``peer_id``; blocks applied."""
        ours = self.ledger.height(author)
        cut = self.ledger.cut_height(author)
        if height <= ours or (cut is not None and ours + 1 >= cut):
            return 0
        if not self.is_member(author) and not self.non_members.has_room(author, self.runtime.clock.monotonic()):
            return 0  # its budget is spent: do not fetch and verify what we would drop
        applied = 0
        lo = ours + 1
        while lo <= height:
            hi = min(height, lo + SYNC_MAX_BLOCKS - 1)
            got = await self._call(peer_id, lc.SyncRequest(self.ledger.network_id, "range", author, lo, hi))
            blocks = [b for r in got for b in r.blocks]
            if not blocks or blocks[0].height > lo:   # the peer pruned what we lack: settled in its snapshot
                self.snapshots.note_behind(peer_id, author, lo, blocks[0].height if blocks else hi + 1)
            if not blocks:
                break
            results = await self.accept_blocks(blocks)
            applied += sum(len(r.applied) for r in results)
            new_height = self.ledger.height(author)
            if new_height < lo:
                break  # the peer served nothing usable (or it is held as premature)
            lo = new_height + 1
        return applied

    async def _call(self, peer_id: str, req: lc.SyncRequest) -> list[lc.SyncResponse]:
        # no deadline of our own around opening: cancelling py-libp2p's stream negotiation can
        # leave the connection unusable (the sync worker's 60 s bound applies)
        stream = await self.overlay.open_stream(peer_id, SYNC_PROTOCOL)
        out: list[lc.SyncResponse] = []
        try:
            await stream.write(frame(lc.encode_sync_request(req)))
            reader = FrameReader(stream, self.max_frame)
            while True:
                data = await reader.read_frame(SYNC_READ_TIMEOUT)
                if data is None:
                    raise MalformedMessage("sync stream closed before done")
                resp = lc.decode_sync_response(data)
                if resp.error:
                    raise MalformedMessage(f"peer refused sync: {resp.error}")
                out.append(resp)
                if resp.done:
                    break
        finally:
            await stream.close()
        return out

    # ------------------------------------------------------------ sync: server
    async def serve_sync(self, stream: Stream) -> None:
        """Handle one inbound ``/wwwserve/ledger-sync/1`` stream."""
        reader = FrameReader(stream, 64 * 1024)
        try:
            data = await reader.read_frame(SYNC_READ_TIMEOUT)
            if data is None:
                return
            req = lc.decode_sync_request(data)
        except (MalformedMessage, RequestTimeout, OverlayError) as exc:
            log.debug("bad sync request from %s: %s", stream.remote_peer, exc)
            return
        if req.network_id != self.ledger.network_id:
            await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(error="wrong_network", done=True))))
            return
        if req.kind == "heads":
            await stream.write(frame(lc.encode_sync_response(self.snapshots.annotate(self.heads_page(req.after,
                                                                                             req.limit)))))
            return
        if req.kind in ("snapshot", "checkpoint"):
            await self.snapshots.serve(stream, req)
            return
        hi = min(req.hi, req.lo + SYNC_MAX_BLOCKS - 1)
        blocks = self.ledger.blocks(req.author, req.lo, hi)
        budget = self.max_frame // 2
        batch: list[Block] = []
        size = 0
        for b in blocks:
            bsize = b.canonical_size()
            if batch and (len(batch) >= SYNC_BATCH or size + bsize > budget):
                await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(blocks=tuple(batch)))))
                batch, size = [], 0
            batch.append(b)
            size += bsize
        await stream.write(frame(lc.encode_sync_response(lc.SyncResponse(blocks=tuple(batch), done=True))))

    def heads_page(self, after: str = "", limit: int = 0) -> lc.SyncResponse:
        """One ``heads`` answer: the heads and proofs of the authors sorting after ``after``, at
        most ``limit`` of them (0 or more than :data:`HEADS_PAGE`: :data:`HEADS_PAGE`) and at most
        half a frame; ``next_after`` set when more follow."""
        limit = HEADS_PAGE if limit <= 0 else min(limit, HEADS_PAGE)
        authors, heads, proofs = self._heads_index()
        budget = self.max_frame // 2
        rows: list[tuple[str, int, str]] = []
        page_proofs: list[EquivocationProof] = []
        size = 0
        i = bisect.bisect_right(authors, after)
        start = i
        while i < len(authors) and i - start < limit:
            a = authors[i]
            cost = (_HEAD_ROW_BYTES if a in heads else 0) + (_PROOF_BYTES if a in proofs else 0)
            if i > start and size + cost > budget:
                break
            if a in heads:
                rows.append((a, *heads[a]))
            if a in proofs:
                page_proofs.append(proofs[a])
            size += cost
            i += 1
        more = i < len(authors)
        return lc.SyncResponse(heads=tuple(rows), proofs=tuple(page_proofs), done=True,
                               next_after=authors[i - 1] if more and i > start else "")

    def _heads_index(self) -> tuple[list[str], dict[str, tuple[int, str]], dict[str, EquivocationProof]]:
        """(every author with a chain or a proof, sorted; heads; proofs by author), cached until
        the ledger's heads digest changes (a walk over many pages costs one snapshot)."""
        key = self.ledger.heads_digest()
        if self._heads_key != key:
            heads = self.ledger.heads()
            proofs = {p.author: p for p in self.ledger.proofs()}
            self._heads_cache = (sorted(heads.keys() | proofs.keys()), heads, proofs)
            self._heads_key = key
        return self._heads_cache

    # ------------------------------------------------------------ loops
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe, then run the block producer, gossip receiver and sync loop until cancelled."""
        rx = await self.overlay.subscribe(self.topic, self._validate)
        self.overlay.set_stream_handler(SYNC_PROTOCOL, self.serve_sync)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._receive_loop, rx)
            nursery.start_soon(self._announce)
            nursery.start_soon(self._producer_loop)
            nursery.start_soon(self._sync_loop)
            for _ in range(SYNC_WORKERS):
                nursery.start_soon(self._sync_worker)
            nursery.start_soon(self._stake_loop)
            nursery.start_soon(self._tick_loop)
            nursery.start_soon(self._premature_loop)
            nursery.start_soon(self.snapshots.run)
            nursery.start_soon(self._unbonding_hold_loop)
            task_status.started()

    async def _receive_loop(self, rx) -> None:
        async for msg in rx:
            try:
                await self._on_gossip(msg)
            except (MalformedMessage, InvalidBlock) as exc:
                log.debug("ledger gossip from %s dropped: %s", msg.source, exc)

    async def _producer_loop(self) -> None:
        interval = self.config.block_interval
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            await trio.sleep(interval)  # gather entries: at most one block per interval
            await self.seal()
            if self._queue:
                self._wakeup.set()

    async def _sync_loop(self) -> None:
        interval = self.config.sync_interval
        while True:
            await trio.sleep(interval * (0.75 + 0.5 * self.rng.random()))
            peers = sorted(self._alive_peers())
            if peers:
                self.request_pull(self.rng.choice(peers))

    async def _sync_worker(self) -> None:
        async for peer_id in self._sync_rx:
            self._pulling.discard(peer_id)
            self._last_pull[peer_id] = self.runtime.clock.monotonic()
            try:
                with trio.fail_after(60):
                    await self.sync_with(peer_id)
                self.sync_counts["ok"] += 1
            except (OverlayError, MalformedMessage, RequestTimeout, trio.TooSlowError) as exc:
                self.sync_counts["failed"] += 1
                log.debug("ledger sync with %s failed: %s", peer_id, exc)
                if self._recently_joined(peer_id) and self._nursery is not None:
                    self._nursery.start_soon(self._retry_pull, peer_id)

    async def _retry_pull(self, peer_id: str) -> None:
        """A pull from a peer that just (re)joined failed (its new connection may not be up yet):
        try again shortly instead of waiting for the next random sync."""
        await trio.sleep(SYNC_RETRY_S)
        self.request_pull(peer_id)

    async def _announce(self) -> None:
        """Announce our head after a (re)start: once a peer is seen, re-gossip our newest block
        a few times while the gossip mesh forms. A peer missing it applies it, or sees the gap
        and pulls from us at once (and the peers' join handlers pull from us too)."""
        await self._peer_seen.wait()
        t0 = self.runtime.clock.monotonic()
        for at in ANNOUNCE_AT_S:
            await trio.sleep(max(0.0, t0 + at - self.runtime.clock.monotonic()))
            tip = self.ledger.blocks(self.me, self.ledger.height(self.me))
            if tip:
                await self._publish(tip[-1])

    async def _tick_loop(self) -> None:
        """Run :attr:`tick_hooks` every ``min(1, stake_interval)`` s and when a peer joins."""
        interval = min(1.0, self.config.stake_interval)
        while True:
            with trio.move_on_after(interval):
                await self._tick_now.wait()
            self._tick_now = trio.Event()
            for hook in self.tick_hooks:
                try:
                    hook()
                except (StorageError, InvalidBlock) as exc:
                    log.error("ledger tick hook failed: %s", exc)

    async def _stake_loop(self) -> None:
        """Move our stake toward the policy's target (fixed, or the paper's automatic one) and
        withdraw matured unbonding. One change in flight at a time."""
        interval = self.config.stake_interval
        last = self.runtime.clock.monotonic()
        n = 0
        while True:
            await trio.sleep(interval)
            now = self.runtime.clock.monotonic()
            elapsed, last = now - last, now
            if any(k.startswith("stake:") for k in self._queue):
                continue  # the previous change is not sealed yet
            for entry in self.plan_stake(elapsed):
                n += 1
                self.submit(f"stake:{self.incarnation}:{n}", entry)

    def plan_stake(self, elapsed_s: float) -> list[Entry]:
        """Entries that move our stake toward the policy target now (may be empty)."""
        acc = self.ledger.account(self.me)
        matured = self.ledger.matured_unbonding(self.me, self.runtime.clock.wall_ms())
        return plan_stake(acc.balance, acc.stake, acc.equivocated, matured,
                          self._stake_target(elapsed_s) if not acc.equivocated else acc.stake,
                          provable=self.ledger.provable(self.me) + self.ledger.params.overdraft)

    def restore(self) -> int:
        """Load persisted blocks, proofs and queued entries (blocking; call before :meth:`run`).
        Recounts the bytes non-members hold in the store (their lifetime cap, see ``_admission``)."""
        n = self.store.load_into(self.ledger)
        self.snapshots.restored()
        self.non_members.stored = self.non_member_bytes()
        for key, entry in self.store.pending():
            self._queue[key] = entry
        for key, entry in receives_for(self.me, all_blocks(self.ledger), self.ledger):  # issue 14 hook
            if key not in self._queue:  # a transfer to us not received yet (we were down)
                self._queue[key] = entry
                self.store.save_pending(key, entry)
        if self._queue:
            self._wakeup.set()
        return n

    def non_member_bytes(self) -> int:
        """Bytes of the blocks and proofs of non-members in our replica now (a scan: startup
        and tests). Authors that became members since are not counted."""
        led = self.ledger
        total = 0
        for author in led.heads().keys() | {p.author for p in led.proofs()}:
            if self.is_member(author):
                continue
            total += sum(b.canonical_size() for b in led.blocks(author))
            if led.cut_height(author) is not None:
                total += _PROOF_BYTES
        return total

    def _receive_transfers(self, blocks: list[Block]) -> None:
        """Queue a Receive for each Transfer to us in ``blocks`` (issue 14; see :mod:`.receiving`)."""
        for key, entry in receives_for(self.me, blocks, self.ledger):
            if key not in self._queue:
                log.info("received a transfer of %d micro-credits from %s; queueing its Receive",
                         entry.transfer().amount, entry.block.author)
            self.submit(key, entry)


def _kinds(entries: list[Entry]) -> str:
    counts: dict[str, int] = {}
    for e in entries:
        counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
