"""The :class:`Ledger` replica: accepted chains, pending out-of-order blocks, proofs, the fold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidBlock
from .blocks import MAX_CLOCK_SKEW_MS, Block, build_block, is_premature
from .codes import AddStatus, ForkSeen, MissingDependency, Reason, Signer, canonical, check_hex, check_peer, sha256_hex
from .entries import ENTRY_TYPES, Entry, Unstake, Withdraw
from .fold import Account, Chain, ChainScratch, Fold
from .genesis import Genesis
from .pending import MAX_PENDING_BYTES, MAX_PENDING_BYTES_PER_AUTHOR, MAX_PENDING_BLOCKS, PendingBuffer
from .proofs import BlockHeader, EquivocationProof

_KNOWN_ENTRY = frozenset(ENTRY_TYPES)


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Ledger.add_block` did. ``status`` (:class:`AddStatus`, compares equal to its
    string): ``applied`` (with ``applied`` blocks, the given one and any pending successors it
    unlocked), ``duplicate``, ``pending`` (a gap below it: pull ``author`` from ``have + 1``),
    ``rejected`` (``reason``), ``equivocation`` (``proof`` is new and should be gossiped),
    ``premature`` (dated beyond the ``now_ms`` given + tolerance: nothing stored, offer it
    again later)."""

    status: AddStatus
    reason: str = ""
    applied: tuple[Block, ...] = ()
    proof: EquivocationProof | None = None
    have: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", AddStatus(self.status))
        if self.reason and not isinstance(self.reason, Reason) and self.reason in Reason._value2member_map_:
            object.__setattr__(self, "reason", Reason(self.reason))


class Ledger:
    """A replica of the ledger: accepted chains, pending out-of-order blocks, and the fold.

    Thread-unsafe; one per node. Pending (out-of-order) blocks are held in a
    :class:`~.pending.PendingBuffer` capped at ``max_pending`` blocks, ``max_pending_bytes_per_author``
    and ``max_pending_bytes`` (canonical sizes); beyond the caps the highest blocks are dropped
    (must be re-pulled). Equivocation proofs: one per author (the lowest height).

    **Unbonding measured by our own clock** (issue 18, back-dated Unstake). A chain's time is
    whatever its author writes, bounded below only by its own previous block: an author silent
    since ``T`` could date an Unstake ``T`` and withdraw at ``T + unbonding_ms``, i.e. at once.
    So when :meth:`add_block` is given ``now_ms`` (the node's clock), the replica records when
    it *first accepted* each Unstake (``seen``) and **holds** a block whose Withdraws need
    unbonding that is not matured by ``max(unstake time, seen) + unbonding_ms <= now_ms +
    tolerance_ms`` (status ``pending``, reason ``unbonding_hold``; nothing refused, the block
    stays valid). :meth:`release_unbonding_holds` hands back the blocks that are due, to be
    offered again. Bound: on a replica with an honest clock, a Withdraw takes effect no earlier
    than ``unbonding_ms - tolerance_ms`` after that replica first saw the Unstake, and nobody
    sees an Unstake before its author publishes it, so back-dating gains at most the
    tolerance (as a future date does, :func:`~.blocks.is_premature`). The fold stays a pure
    function of the accepted block set; only *when* a block enters the set depends on the
    clock. Costs: a node that first sees an old Unstake (catching up, or restarting: first
    sight is not persisted, so blocks read from the store count at their own dates) holds the
    Withdraw after it (and that author's later blocks) for up to ``unbonding_ms``; without
    ``now_ms`` (tests, own blocks, restore) nothing is held. Held: one block per author (its
    next), at most ``max_pending`` authors.
    """

    def __init__(self, genesis: Genesis, *, max_pending: int = MAX_PENDING_BLOCKS,
                 max_pending_bytes_per_author: int = MAX_PENDING_BYTES_PER_AUTHOR,
                 max_pending_bytes: int = MAX_PENDING_BYTES):
        self.genesis = genesis
        self.params = genesis.params
        self.network_id = genesis.network_id
        self._genesis_hash = genesis.hash
        self.max_pending = max_pending
        self._chains: dict[str, Chain] = {}
        self._pending = PendingBuffer(max_pending, max_pending_bytes_per_author, max_pending_bytes)
        self._proofs: dict[str, EquivocationProof] = {}   # author -> lowest-height proof
        # signed headers refused by the chain checks: a different block at the same height is
        # still an equivocation, whatever order the two arrive in
        self._refused: dict[tuple[str, int], BlockHeader] = {}
        self._version = 0          # bumped on every accepted block or proof (digest cache)
        self._digest_key: tuple[int] | None = None
        self._digest = ""
        self._fold = Fold(genesis.allocations, self.network_id)
        self._alloc = dict(genesis.allocations)
        # blocks whose entries need another author's block we have not accepted (a Receive's
        # transfer, a voucher's channel, a close's witness): bounded like the pending buffer,
        # retried when that author's chain grows
        self._waiting = PendingBuffer(max_pending, max_pending_bytes_per_author, max_pending_bytes)
        self._waiting_on: dict[str, set[tuple[str, int]]] = {}
        #: the :class:`~.snapshot.Snapshot` this replica was loaded from (None: from genesis);
        #: its heights are settled: never cut, their blocks not held (:mod:`.snapshot`)
        self.base_snapshot: Any = None
        # unbonding by our clock (class docstring): author -> [(height, maturity by first
        # sight, maturity by its own date, amount)] of its accepted Unstakes we saw after their
        # date; the author's next block held for them; the clock of the add_block call in
        # progress (None: no clock, nothing held)
        self._unstakes: dict[str, list[tuple[int, int, int, int]]] = {}
        self._unbonding_held: dict[str, Block] = {}
        self._now: int | None = None
        self._tolerance = MAX_CLOCK_SKEW_MS

    # ------------------------------------------------------------ fold
    @property
    def entries_applied(self) -> int:
        return self._fold.entries_applied

    @property
    def duels_settled(self) -> int:
        return self._fold.duels_settled

    def recompute_fold(self) -> Fold:
        """The fold computed from scratch over the accepted chains (audits and tests: it equals
        the incrementally maintained one, compare :meth:`Fold.snapshot`)."""
        if self.base_snapshot is not None:
            from .snapshot import restore_fold
            fold = restore_fold(self.base_snapshot, self.genesis)
        else:
            fold = Fold(self.genesis.allocations, self.network_id)
        for ch in self._chains.values():
            for blk in ch.blocks:
                fold.apply_block(blk, self.params)
        return fold

    # ------------------------------------------------------------ validation
    def check_static(self, block: Block) -> None:
        """Checks that need nothing but the block (and genesis): network, sizes, time not before
        the genesis' ``created_ms``, entry shapes and ticket windows, all signatures.

        :raises InvalidBlock: with the rejection reason.
        """
        if block.network != self.network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, f"block of network {str(block.network)[:40]!r}")
        try:
            check_peer(block.author, "block author")
        except InvalidBlock:
            raise InvalidBlock(Reason.BAD_AUTHOR, f"author {str(block.author)[:60]!r} is not an Ed25519 PeerId")
        if not isinstance(block.height, int) or block.height < 1:
            raise InvalidBlock(Reason.MALFORMED, "height must be >= 1")
        if not isinstance(block.time_ms, int) or block.time_ms < 0:
            raise InvalidBlock(Reason.MALFORMED, "time_ms must be >= 0")
        if block.time_ms < self.genesis.created_ms:
            raise InvalidBlock(Reason.BEFORE_GENESIS,
                               f"time_ms {block.time_ms} < genesis created_ms {self.genesis.created_ms}")
        check_hex(block.prev_hash, "prev_hash")
        if len(block.entries) > self.params.max_block_entries:
            raise InvalidBlock(Reason.TOO_MANY_ENTRIES, f"{len(block.entries)} > {self.params.max_block_entries}")
        # cheap checks first: a forged or oversized block must not cost one verify per entry
        size = block.canonical_size()
        if size > self.params.max_block_bytes:
            raise InvalidBlock(Reason.OVERSIZED, f"{size} bytes > {self.params.max_block_bytes}")
        if not block.header.signature_valid():
            raise InvalidBlock(Reason.BAD_SIGNATURE, f"block {block.height} not signed by {block.author}")
        for e in block.entries:
            self._check_entry_static(block, e)

    def _check_entry_static(self, block: Block, e: Entry) -> None:
        if type(e) not in _KNOWN_ENTRY:
            raise InvalidBlock(Reason.MALFORMED, f"unknown entry type {type(e).__name__}")
        e.check_static(block, self.network_id)

    def _check_chain(self, block: Block, ch: Chain) -> ChainScratch:
        """Checks against the author's own chain below ``block`` (which must be its successor);
        returns the scratch to :meth:`Chain.commit`."""
        if block.prev_hash != ch.tip_hash(self._genesis_hash):
            raise InvalidBlock(Reason.WRONG_PREV_HASH, f"block {block.height} does not extend {block.author}'s chain")
        if block.time_ms < ch.last_time:
            raise InvalidBlock(Reason.TIME_BACKWARDS, f"time_ms {block.time_ms} < previous {ch.last_time}")
        s = ChainScratch(ch, block.time_ms, self.params.unbonding_ms, self._floor(block.author),
                         network=self.network_id, author=block.author, chains=self._chains,
                         fork_ok=self._fork_ok)
        for e in block.entries:
            e.check_chain(s)
        return s

    def _fork_ok(self, block: Block) -> bool:
        """Whether ``block`` is one of the two headers of its author's recorded proof (the cut
        height) and passes the chain checks on the author's accepted chain below it: what a
        replica that accepted it before the proof arrived had checked too."""
        p = self._proofs.get(block.author)
        if p is None or p.height != block.height or block.hash not in (p.a.hash, p.b.hash):
            return False
        ch = self._chains.get(block.author)
        if (ch.height if ch else 0) != block.height - 1:
            return False
        try:
            self._check_chain(block, ch or Chain())
        except InvalidBlock:
            return False
        return True

    def _floor(self, author: str) -> int:
        """The lowest chain ``funds`` a Stake or Transfer of ``author`` may leave:
        ``-(genesis allocation + overdraft)``."""
        return -(self._alloc.get(author, 0) + self.params.overdraft)

    # ------------------------------------------------------------ adding blocks and proofs
    def cut_height(self, author: str) -> int | None:
        """Height of ``author``'s proven equivocation (its chain counts only below), or None."""
        p = self._proofs.get(author)
        return p.height if p else None

    @staticmethod
    def is_premature(block: Block | BlockHeader, now_ms: int, tolerance_ms: int = MAX_CLOCK_SKEW_MS) -> bool:
        """See :func:`~.blocks.is_premature`: ``block.time_ms > now_ms + tolerance_ms``."""
        return is_premature(block, now_ms, tolerance_ms)

    def add_block(self, block: Block, *, verified: bool = False, now_ms: int | None = None,
                  tolerance_ms: int = MAX_CLOCK_SKEW_MS) -> AddResult:
        """Offer a block. ``verified=True`` skips :meth:`check_static` (blocks read back from our
        own store, already checked once). With ``now_ms`` (the caller's clock), a block that is
        :meth:`is_premature` is neither stored nor applied (status ``premature``); duplicates,
        equivocations and the proofs it carries still count. Never raises for bad input: see
        :class:`AddResult`."""
        self._now, self._tolerance = now_ms, tolerance_ms
        try:
            return self._add_block(block, verified, now_ms, tolerance_ms)
        finally:
            self._now = None

    def _add_block(self, block: Block, verified: bool, now_ms: int | None, tolerance_ms: int) -> AddResult:
        author = block.author
        try:
            if not verified:
                self.check_static(block)
        except InvalidBlock as exc:
            return AddResult(AddStatus.REJECTED, exc.reason)
        if not isinstance(block.height, int) or block.height < 1:
            return AddResult(AddStatus.REJECTED, Reason.MALFORMED)
        # a proof is a self-contained fact: it counts whether or not the block carrying it is
        # ever accepted, so replicas holding the same blocks agree
        for e in block.entries:
            if type(e) is EquivocationProof:
                self.add_proof(e, checked=True)
        cut = self.cut_height(author)
        if cut is not None and block.height >= cut:
            return AddResult(AddStatus.REJECTED, Reason.EQUIVOCATED)
        ch = self._chains.setdefault(author, Chain())
        # same height already accepted or pending?
        if block.height <= ch.height:
            try:
                have = ch.at(block.height)
            except InvalidBlock:   # settled history we no longer hold (a snapshot's base)
                if block.height == ch.base and block.hash == ch.base_hash:
                    return AddResult(AddStatus.DUPLICATE, have=ch.height)
                return AddResult(AddStatus.REJECTED, Reason.PRUNED, have=ch.height)
            if have.hash == block.hash:
                return AddResult(AddStatus.DUPLICATE, have=ch.height)
            return self._equivocation(have.header, block.header)
        other = self._pending.get(author, block.height) or self._waiting.get(author, block.height)
        held = self._unbonding_held.get(author)
        if other is None and held is not None and held.height == block.height:
            other = held
        if other is not None:
            if other.hash == block.hash:
                return AddResult(AddStatus.DUPLICATE, have=ch.height)
            return self._equivocation(other.header, block.header)
        refused = self._refused.get((author, block.height))
        if refused is not None and refused.hash != block.hash:
            return self._equivocation(refused, block.header)
        if now_ms is not None and is_premature(block, now_ms, tolerance_ms):
            return AddResult(AddStatus.PREMATURE, Reason.PREMATURE, have=ch.height)
        if block.height > ch.height + 1:
            if not self._pending.offer(block):
                return AddResult(AddStatus.REJECTED, Reason.HEIGHT_GAP, have=ch.height)
            return AddResult(AddStatus.PENDING, have=ch.height)
        if self._waiting.get(author, block.height) is not None:
            return AddResult(AddStatus.PENDING, Reason.MISSING_DEPENDENCY, have=ch.height)
        try:
            s = self._check_chain(block, ch)
        except MissingDependency as exc:
            self._park(block, exc)
            if self.height(author) >= block.height and self.blocks(author, block.height, block.height)[0] is block:
                return AddResult(AddStatus.APPLIED, applied=(block,), have=self.height(author))
            return AddResult(AddStatus.PENDING, Reason.MISSING_DEPENDENCY, have=ch.height)
        except InvalidBlock as exc:
            self._refuse(block)
            return AddResult(AddStatus.REJECTED, exc.reason, have=ch.height)
        if self._hold_unbonding(block, ch):
            return AddResult(AddStatus.PENDING, Reason.UNBONDING_HOLD, have=ch.height)
        applied = [block]
        self._accept(ch, s, block)
        self._unlock(author, ch, applied)
        self._retry_waiting([author], applied)
        return AddResult(AddStatus.APPLIED, applied=tuple(applied), have=ch.height)

    def _retry_waiting(self, grown: list[str], applied: list[Block]) -> None:
        """Offer again the blocks that waited for the chains (or proofs) of ``grown``."""
        while grown:
            dep = grown.pop()
            for key in sorted(self._waiting_on.pop(dep, ())):
                blk = self._waiting.pop(*key)
                if blk is None:
                    continue
                wch = self._chains.setdefault(blk.author, Chain())
                if blk.height != wch.height + 1 or blk.prev_hash != wch.tip_hash(self._genesis_hash):
                    continue
                try:
                    s = self._check_chain(blk, wch)
                except MissingDependency as exc:
                    self._park(blk, exc)
                    continue
                except InvalidBlock:
                    self._refuse(blk)
                    continue
                if self._hold_unbonding(blk, wch):
                    continue
                self._accept(wch, s, blk)
                applied.append(blk)
                self._unlock(blk.author, wch, applied)
                grown.append(blk.author)

    def _unlock(self, author: str, ch: Chain, applied: list[Block]) -> None:
        """Apply ``author``'s pending successors that now extend its chain."""
        while (blk := self._pending.pop(author, ch.height + 1)) is not None:
            refused = self._refused.get((author, blk.height))
            if refused is not None and refused.hash != blk.hash:
                self._equivocation(refused, blk.header)
                break
            try:
                s = self._check_chain(blk, ch)
            except MissingDependency as exc:
                self._park(blk, exc)
                break
            except InvalidBlock:
                self._refuse(blk)
                break
            if self._hold_unbonding(blk, ch):
                break
            self._accept(ch, s, blk)
            applied.append(blk)

    def _park(self, block: Block, exc: MissingDependency) -> None:
        """Wait for ``exc``'s dependency; a :class:`ForkSeen` also records its proof (which
        offers the block again at once)."""
        self._wait(block, exc.author)
        for dep in getattr(exc, "also", ()):
            if dep != exc.author:   # the first retry pops the block; the other keys go stale
                self._waiting_on.setdefault(dep, set()).add((block.author, block.height))
        if isinstance(exc, ForkSeen):
            self.add_proof(EquivocationProof(exc.a, exc.b), checked=True)

    def _wait(self, block: Block, dep: str) -> None:
        """Park ``block`` until ``dep``'s chain grows (bounded; a dropped block is pulled again)."""
        if self._waiting.offer(block):
            self._waiting_on.setdefault(dep, set()).add((block.author, block.height))
            if len(self._waiting_on) > 4 * self.max_pending:  # stale keys of evicted blocks
                self._waiting_on = {d: {k for k in ks if self._waiting.get(*k) is not None}
                                    for d, ks in self._waiting_on.items()}
                self._waiting_on = {d: ks for d, ks in self._waiting_on.items() if ks}

    def waiting_count(self) -> int:
        """Blocks parked until a block of another author they reference is accepted."""
        return self._waiting.count

    def _accept(self, ch: Chain, s: ChainScratch, block: Block) -> None:
        self._version += 1
        ch.commit(s, block)
        self._fold.apply_block(block, self.params)
        unstaked = [e.amount for e in block.entries if type(e) is Unstake]
        if unstaked and self._now is not None and self._now > block.time_ms:
            # seen after its date: it matures by first sight (our clock), later than by its date
            u, now = self.params.unbonding_ms, self._now
            recs = [r for r in self._unstakes.get(block.author, ()) if r[1] > now]   # matured by sight: drop
            recs.extend((block.height, now + u, block.time_ms + u, a) for a in unstaked)
            self._unstakes[block.author] = recs

    def matured_by_sight(self, author: str, now_ms: int, tolerance_ms: int = MAX_CLOCK_SKEW_MS,
                         time_ms: int | None = None) -> int:
        """Unbonding of ``author``'s accepted chain that this replica lets a Withdraw dated
        ``time_ms`` (default ``now_ms``) take when its clock reads ``now_ms``: the chain's own
        :meth:`matured_unbonding` at ``time_ms`` less the Unstakes matured by their date but not
        by ``first sight + unbonding_ms <= now_ms + tolerance_ms`` (class docstring). Unstakes
        accepted without a clock, or below a snapshot's base, count by their date."""
        ch = self._chains.get(author)
        if ch is None:
            return 0
        t = now_ms if time_ms is None else time_ms
        lim = now_ms + tolerance_ms
        early = sum(a for _, seen_m, own_m, a in self._unstakes.get(author, ()) if own_m <= t and seen_m > lim)
        return max(0, ch.matured(t) - early)

    def _hold_unbonding(self, block: Block, ch: Chain) -> bool:
        """Whether ``block`` (valid on ``ch``) must wait for unbonding by our clock; if so it is
        kept (bounded; a dropped one is pulled again) for :meth:`release_unbonding_holds`."""
        if self._now is None:
            return False
        need = sum(e.amount for e in block.entries if type(e) is Withdraw)
        if not need or need <= self.matured_by_sight(block.author, self._now, self._tolerance, block.time_ms):
            return False
        if block.author in self._unbonding_held or len(self._unbonding_held) < self.max_pending:
            self._unbonding_held[block.author] = block
        return True

    def release_unbonding_holds(self, now_ms: int, tolerance_ms: int = MAX_CLOCK_SKEW_MS) -> list[Block]:
        """Remove and return the held blocks (see the class docstring) that are due at ``now_ms``;
        offer them again with :meth:`add_block` (``verified=True``, the same ``now_ms``)."""
        due = []
        for author, blk in list(self._unbonding_held.items()):
            need = sum(e.amount for e in blk.entries if type(e) is Withdraw)
            ch = self._chains.get(author)
            if (ch is None or blk.height != ch.height + 1
                    or need <= self.matured_by_sight(author, now_ms, tolerance_ms, blk.time_ms)):
                del self._unbonding_held[author]
                if ch is not None and blk.height == ch.height + 1:
                    due.append(blk)
        return sorted(due, key=lambda b: (b.author, b.height))

    def unbonding_held(self) -> int:
        """Blocks held until their Withdraw's unbonding has passed by our clock."""
        return len(self._unbonding_held)

    def _refuse(self, block: Block) -> None:
        if len(self._refused) < self.max_pending:
            self._refused.setdefault((block.author, block.height), block.header)

    def _equivocation(self, have: BlockHeader, other: BlockHeader) -> AddResult:
        proof = EquivocationProof(have, other).normalized()
        new = self.add_proof(proof, checked=True)
        return AddResult(AddStatus.EQUIVOCATION, Reason.EQUIVOCATED, proof=proof if new else None,
                         have=self.height(have.author))

    # kept for callers of the monolithic module's name
    _equivocation_headers = _equivocation

    def add_proof(self, proof: EquivocationProof, *, checked: bool = False) -> bool:
        """Record an equivocation proof; the author's chain is cut at its height: the blocks at
        and above it are removed from the fold one by one (their entries' effects subtracted,
        cross-chain claim/void effects included), never by refolding everything. Returns True
        if it lowered (or set) the author's cut height; only that proof is kept (one per author).

        :raises InvalidBlock: the proof is invalid (unless ``checked``).
        """
        if not checked:
            proof.check(self.network_id)
        proof = proof.normalized()
        author, h = proof.author, proof.height
        cur = self._proofs.get(author)
        if cur is not None and cur.height <= h:
            return False
        self._proofs[author] = proof
        self._version += 1
        self._pending.drop_from(author, h)
        self._waiting.drop_from(author, h)
        held = self._unbonding_held.get(author)
        if held is not None and held.height >= h:
            del self._unbonding_held[author]
        if author in self._unstakes:
            self._unstakes[author] = [u for u in self._unstakes[author] if u[0] < h]
        ch = self._chains.get(author)
        if ch is not None:
            while ch.height >= h and ch.blocks:   # settled history (a snapshot's base) stays
                self._fold.apply_block(ch.pop(), self.params, -1)
        self._retry_waiting([author], [])
        return True

    # ------------------------------------------------------------ building our own blocks
    def chain_last_time(self, author: str) -> int:
        """Time (ms) of ``author``'s accepted tip block (its base time after a snapshot; 0 if none)."""
        ch = self._chains.get(author)
        return ch.last_time if ch is not None else 0

    def block_time(self, author: str, time_ms: int, entries: Iterable[Entry] = ()) -> int:
        """The ``time_ms`` :meth:`next_block` gives ``author``'s next block: ``time_ms`` raised to
        the previous block's time, the genesis' ``created_ms`` and every entry's issue time."""
        ch = self._chains.get(author)
        t = max(time_ms, ch.last_time if ch else 0, self.genesis.created_ms)
        for e in entries:
            t = max(t, e.time_window()[0])
        return t

    def validate_own(self, author: str, time_ms: int, entries: Iterable[Entry], *,
                     tolerance_ms: int = MAX_CLOCK_SKEW_MS) -> tuple[list[Entry], list[tuple[Entry, str]]]:
        """Split candidate entries for ``author``'s next block into (valid, [(rejected, reason)]).

        ``time_ms`` is the caller's clock. Each entry is checked as if appended after the valid
        ones before it, in a block dated :meth:`block_time` of those entries (so a ticket issued
        slightly ahead of our clock raises the block's time instead of failing). An entry whose
        ticket was issued beyond ``time_ms + tolerance_ms`` is refused (``premature``): our chain
        must not be dated into the future; one that would need a time after an earlier valid
        entry's expiry is refused with ``time_before_issue``.
        """
        ch = self._chains.get(author, Chain())
        ok: list[Entry] = []
        bad: list[tuple[Entry, str]] = []
        t = self.block_time(author, time_ms)
        deadline: int | None = None
        for e in entries:
            issued, expires = e.time_window() if type(e) in _KNOWN_ENTRY else (0, None)
            if issued > time_ms + tolerance_ms:
                bad.append((e, Reason.PREMATURE))
                continue
            t_e = max(t, issued)
            if deadline is not None and t_e > deadline:
                bad.append((e, Reason.BEFORE_ISSUE))
                continue
            probe = Block(self.network_id, author, ch.height + 1, ch.tip_hash(self._genesis_hash), t_e, tuple([*ok, e]))
            try:
                self._check_entry_static(probe, e)
                self._check_chain(probe, ch)
            except InvalidBlock as exc:
                bad.append((e, exc.reason))
                continue
            ok.append(e)
            t = t_e
            if expires is not None:
                deadline = expires if deadline is None else min(deadline, expires)
        return ok, bad

    def next_block(self, author: str, time_ms: int, entries: Iterable[Entry], sign: Signer) -> Block:
        """Build and sign ``author``'s next block (not added: pass it to :meth:`add_block`),
        dated :meth:`block_time` (never before the previous block, the genesis or a ticket's
        issue time, whatever the clock says)."""
        entries = tuple(entries)
        ch = self._chains.get(author, Chain())
        return build_block(self.network_id, author, ch.height + 1, ch.tip_hash(self._genesis_hash),
                           self.block_time(author, time_ms, entries), entries, sign)

    # ------------------------------------------------------------ queries
    def height(self, author: str) -> int:
        ch = self._chains.get(author)
        return ch.height if ch else 0

    def heads_digest(self) -> str:
        """SHA-256 (hex) of every chain head and equivocation cut: replicas holding the same blocks
        have the same digest (cheap to compare in status messages)."""
        key = (self._version,)
        if self._digest_key != key:
            heads = sorted((a, h, t) for a, (h, t) in self.heads().items())
            cuts = sorted((a, p.height) for a, p in self._proofs.items())  # not which pair proved it
            self._digest = sha256_hex(canonical({"heads": heads, "cuts": cuts}))
            self._digest_key = key
        return self._digest

    def heads(self) -> dict[str, tuple[int, str]]:
        """author -> (height, tip hash) of every non-empty accepted chain."""
        return {a: (c.height, c.tip_hash(self._genesis_hash)) for a, c in self._chains.items() if c.height}

    def blocks(self, author: str, lo: int = 1, hi: int | None = None) -> list[Block]:
        """Accepted blocks of ``author`` with ``lo <= height <= hi`` (inclusive); only those
        above a snapshot's base (:meth:`base_height`) are held."""
        ch = self._chains.get(author)
        if ch is None:
            return []
        hi = ch.height if hi is None else min(hi, ch.height)
        lo = max(1, lo, ch.base + 1)
        return ch.blocks[lo - ch.base - 1: max(0, hi - ch.base)]

    def base_height(self, author: str) -> int:
        """Height of ``author``'s settled history this replica holds only as a snapshot (0: none)."""
        ch = self._chains.get(author)
        return ch.base if ch else 0

    def proofs(self) -> list[EquivocationProof]:
        return list(self._proofs.values())

    def pending_count(self) -> int:
        return self._pending.count

    def pending_bytes(self) -> int:
        """Canonical bytes held in the out-of-order buffer."""
        return self._pending.bytes

    def matured_unbonding(self, author: str, time_ms: int) -> int:
        """Unbonding of ``author``'s own chain that a Withdraw at ``time_ms`` may take."""
        ch = self._chains.get(author)
        return ch.matured(time_ms) if ch else 0

    def provable(self, author: str) -> int:
        """``author``'s credit provable from its own accepted chain: genesis allocation + Σ own
        Claim + Σ own Receive + Σ own Withdraw − Σ own Stake − Σ own Transfer amounts. A Stake
        or Transfer may not take it below ``-overdraft``."""
        ch = self._chains.get(author)
        return self._alloc.get(author, 0) + (ch.funds if ch else 0)

    def spendable(self, author: str) -> int:
        """What ``author`` can safely Stake or Transfer next: ``max(0, min(fold balance,
        provable))``. The chain rule only needs ``provable`` (+ overdraft), but the fold balance
        can be lower (a claim voided later, a duel lost, a received transfer cut by the sender's
        equivocation), and spending it would put the account in debt."""
        return max(0, min(self._fold.balance.get(author, 0), self.provable(author)))

    def in_flight(self) -> int:
        """Credit of counted Transfers whose Receive is not counted (debited, not yet credited)."""
        return self._fold.in_flight

    def is_received(self, sender: str, height: int, index: int, by: str) -> bool:
        """Whether ``by``'s accepted chain holds a Receive of ``sender``'s transfer at
        ``(height, index)``."""
        ch = self._chains.get(by)
        return ch is not None and (sender, height, index) in ch.received

    def is_claimed(self, ticket_hash: str) -> bool:
        """Whether a counted claim names this ticket or voucher (by hash)."""
        return ticket_hash in self._fold.claims or ticket_hash in self._fold.voucher_claims

    def is_voided(self, ticket_hash: str) -> bool:
        """Whether a counted void names this ticket or voucher (by hash)."""
        return ticket_hash in self._fold.voids or ticket_hash in self._fold.voucher_voids

    def account(self, peer_id: str) -> Account:
        f = self._fold
        bal = f.balance.get(peer_id, 0)
        stake = f.stake.get(peer_id, 0)
        unb = f.unbonding.get(peer_id, 0)
        burned = 0
        eq = peer_id in self._proofs
        if eq:  # burn what it holds, balance included (so a fork cannot spend the same credit
            # twice: what its cut blocks sent comes back to it and is burned); debts stay
            burned = max(0, stake) + max(0, unb) + max(0, bal)
            stake, unb, bal = min(0, stake), min(0, unb), min(0, bal)
        return Account(peer_id, bal, stake, unb, self.height(peer_id), bal < -self.params.overdraft, eq, burned,
                       f.earned.get(peer_id, 0), f.spent.get(peer_id, 0),
                       *f.duel_stats.get(peer_id, (0,) * 6))

    def accounts(self) -> dict[str, Account]:
        """Every account that appears anywhere (genesis, chains, counterparties), by PeerId."""
        peers = self._fold.peers() | set(self._chains) | set(self._proofs)
        return {p: self.account(p) for p in sorted(peers)}

    def total_supply(self) -> int:
        """Balances + stakes + unbonding over all accounts + credit in flight (transferred, not
        yet received): equals genesis supply minus burns."""
        return (sum(a.balance + a.stake + a.unbonding for a in self.accounts().values()) + self._fold.in_flight
                + self._fold.locked)

    def locked(self) -> int:
        """Credit locked in counted, unclosed channels and not yet paid out of them, and in duel
        bonds not yet released (:meth:`duel_locked`)."""
        return self._fold.locked

    def channel(self, requester: str, cid: str):
        """:class:`~.fold.ChannelInfo` of ``requester``'s accepted channel ``cid`` (None: unknown)."""
        ch = self._chains.get(requester)
        return ch.opened.get(cid) if ch is not None else None

    def channels_of(self, requester: str) -> dict:
        """``cid -> ChannelInfo`` of every channel ``requester``'s accepted chain opened."""
        ch = self._chains.get(requester)
        return dict(ch.opened) if ch is not None else {}

    def channel_claimed(self, executor: str, cid: str) -> tuple[int, int]:
        """(seq, cumulative amount) of ``executor``'s latest accepted claim on channel ``cid``."""
        ch = self._chains.get(executor)
        return ch.chan_claims.get(cid, (0, 0)) if ch is not None else (0, 0)

    def has_duel_bond(self, executor: str, duel_hash: str) -> bool:
        """Whether ``executor``'s accepted chain locked its bond for the duel ``duel_hash``
        (a :class:`~.entries.DuelBond`; the duel's verdict counts once both executors have)."""
        ch = self._chains.get(executor)
        return ch is not None and duel_hash in ch.bonded

    def duel_released(self, executor: str, duel_hash: str) -> bool:
        """Whether ``executor``'s accepted chain released its share of the duel's bonds."""
        ch = self._chains.get(executor)
        return ch is not None and duel_hash in ch.released

    def duel_locked(self, peer_id: str) -> int:
        """Duel bonds of ``peer_id`` counted and not yet paid out (part of :meth:`locked`)."""
        return self._fold.duel_locked.get(peer_id, 0)

    def channel_closed(self, requester: str, cid: str) -> bool:
        ch = self._chains.get(requester)
        return ch is not None and cid in ch.closed

    def channel_paid(self, cid: str) -> int:
        """What channel ``cid`` pays its executor in the fold now."""
        c = self._fold.channels.get(cid)
        return c.paid() if c is not None else 0

    def burned(self) -> int:
        return sum(a.burned for a in self.accounts().values())

    def state_hash(self) -> str:
        """SHA-256 (hex) of the canonical account table and cut heights: equal on replicas that
        hold the same valid blocks."""
        rows = [[a.peer_id, a.balance, a.stake, a.unbonding, a.height, a.burned]
                for a in self.accounts().values() if (a.balance, a.stake, a.unbonding, a.height, a.burned) != (0, 0, 0, 0, 0)]
        cuts = sorted((a, p.height) for a, p in self._proofs.items())
        return sha256_hex(canonical({"network": self.network_id, "accounts": rows, "cuts": cuts}))

    def summary(self, accounts: bool = True) -> dict[str, Any]:
        """Counts for status pages; ``accounts=False`` skips the per-account work (supply, hash)."""
        out: dict[str, Any] = {
            "network_id": self.network_id, "network": self.genesis.network, "authors": len(self.heads()),
            "blocks": sum(c.height for c in self._chains.values()), "entries": self.entries_applied,
            "blocks_held": sum(len(c.blocks) for c in self._chains.values()),
            "snapshot": None if self.base_snapshot is None else {"time_ms": self.base_snapshot.time_ms,
                                                               "hash": self.base_snapshot.hash},
            "pending": self._pending.count, "pending_bytes": self._pending.bytes,
            "waiting": self._waiting.count, "channels": len(self._fold.channels),
            "unbonding_held": len(self._unbonding_held),
            "equivocators": sorted(self._proofs), "genesis_supply": self.genesis.supply,
            "duels_settled": self.duels_settled}
        if accounts:
            out.update(supply=self.total_supply(), burned=self.burned(), state_hash=self.state_hash(),
                       in_flight=self._fold.in_flight, locked=self._fold.locked)
        return out
