"""Who may make every node store blocks: members freely, everyone else a few blocks per minute.

Issue 18 §5 "bounded storage": any key can sign blocks, and every node used to store them
forever. A *member* (in our replica) is an account with a genesis allocation, stake,
unbonding, a positive balance, or paid work behind it (``earned`` or ``spent`` > 0). A block of
a non-member is admitted (stored, applied) only

- when it carries a :class:`~wwwserve_p2p.core.ledger.Claim` whose ticket's requester is a
  member or can afford the ticket in our view: how a fresh honest executor earns its way in
  (on a network with an overdraft, a dev network, every requester can afford a first ticket,
  so there claims always pass; with overdraft 0 a key with nothing cannot sign a ticket we
  honour), or
- while its author's token bucket (``per_author_blocks`` / ``per_author_bytes`` per
  ``window_s``) and the bucket shared by all non-members (``total_blocks`` / ``total_bytes``)
  have room.

Beyond that its blocks are dropped: not stored, not applied, counted in
``rejected["non_member_rate"]``; they are pulled again later, when the budget has refilled. So
the disk growth non-members can cause is at most ``total_bytes`` per ``window_s`` per node, and
**at most** ``max_stored_bytes`` **in all** (``STORED_BYTES``, 4 MiB): the bytes of non-member
blocks (and equivocation proofs of non-members) a node holds, stored or in its out-of-order
buffer, counted by :meth:`NonMemberBudget.hold` and recomputed from the store at start; once
full, further non-member blocks are refused (``rejected["non_member_full"]``) until restart
recounts. The buckets are checked *before* a block's signatures are verified (the gossip
validator asks :meth:`NonMemberBudget.has_room` with the block's size), so junk over budget
costs a decode, not a verify, and its forwarder loses gossip score. A local admission rule,
not a fold rule: the fold stays a function of the block set, and a dropped block converges
later like any block not yet received. Pure: ``now_s`` is an argument.
"""

from __future__ import annotations

#: Defaults: per non-member author and for all non-members together, per window.
PER_AUTHOR_BLOCKS = 4
PER_AUTHOR_BYTES = 64 * 1024
TOTAL_BLOCKS = 64
TOTAL_BYTES = 2 * 1024 * 1024
WINDOW_S = 60.0
#: Bytes of non-member blocks and proofs a node holds in all (the lifetime cap on their disk use).
STORED_BYTES = 4 * 1024 * 1024
#: Most non-member authors whose buckets are remembered (the least recently used are forgotten:
#: a forgotten author starts with a full bucket again, still within the shared one).
MAX_TRACKED = 4096


class _Bucket:
    __slots__ = ("blocks", "bytes", "t")

    def __init__(self, blocks: float, nbytes: float, t: float):
        self.blocks, self.bytes, self.t = blocks, nbytes, t


class NonMemberBudget:
    """Token buckets (blocks and bytes) per non-member author and in total, refilled linearly
    over ``window_s`` seconds up to their capacity."""

    def __init__(self, *, per_author_blocks: int = PER_AUTHOR_BLOCKS, per_author_bytes: int = PER_AUTHOR_BYTES,
                 total_blocks: int = TOTAL_BLOCKS, total_bytes: int = TOTAL_BYTES, window_s: float = WINDOW_S,
                 max_stored_bytes: int = STORED_BYTES):
        self.per_author = (per_author_blocks, per_author_bytes)
        self.total_cap = (total_blocks, total_bytes)
        self.window_s = window_s
        self.max_stored_bytes = max_stored_bytes
        #: bytes of non-member blocks/proofs held (see :meth:`hold`)
        self.stored = 0
        self._authors: dict[str, _Bucket] = {}
        self._total: _Bucket | None = None
        self.admitted = 0
        self.dropped = 0
        self.dropped_full = 0

    def full(self, size: int = 0) -> bool:
        """Whether holding ``size`` more bytes would pass :attr:`max_stored_bytes`."""
        return self.stored + size > self.max_stored_bytes

    def hold(self, size: int) -> None:
        """Count ``size`` bytes of a non-member's block or proof now held (stored or buffered)."""
        self.stored += max(0, size)

    def stats(self) -> dict[str, int]:
        """``GET /ledger`` ``non_members``: admitted/dropped counts, bytes held and the cap."""
        return {"admitted": self.admitted, "dropped_rate": self.dropped, "dropped_full": self.dropped_full,
                "stored_bytes": self.stored, "max_stored_bytes": self.max_stored_bytes,
                "tracked_authors": len(self._authors)}

    def _refill(self, b: _Bucket, cap: tuple[int, int], now_s: float) -> None:
        dt = max(0.0, now_s - b.t)
        b.blocks = min(cap[0], b.blocks + cap[0] * dt / self.window_s)
        b.bytes = min(cap[1], b.bytes + cap[1] * dt / self.window_s)
        b.t = now_s

    def allow(self, author: str, size: int, now_s: float) -> bool:
        """Spend one block of ``size`` bytes from ``author``'s and the shared bucket; False (and
        nothing spent) if either lacks room or :meth:`full` (``size`` more would pass the cap)."""
        if self.full(size):
            self.dropped_full += 1
            return False
        if self._total is None:
            self._total = _Bucket(*self.total_cap, now_s)
        b = self._authors.pop(author, None)
        if b is None:
            b = _Bucket(*self.per_author, now_s)
        self._authors[author] = b  # most recently used last
        while len(self._authors) > MAX_TRACKED:
            del self._authors[next(iter(self._authors))]
        self._refill(b, self.per_author, now_s)
        self._refill(self._total, self.total_cap, now_s)
        t = self._total
        if b.blocks < 1 or b.bytes < size or t.blocks < 1 or t.bytes < size:
            self.dropped += 1
            return False
        b.blocks -= 1
        b.bytes -= size
        t.blocks -= 1
        t.bytes -= size
        self.admitted += 1
        return True

    def has_room(self, author: str, now_s: float, size: int = 0) -> bool:
        """Whether one more block of ``author`` of ``size`` bytes (0: any size) could be admitted
        now, spending nothing (pulls skip the author otherwise; the gossip validator drops the
        block before verifying its signatures)."""
        if self.full(size):
            return False
        pa_bytes = self.per_author[1]
        b = self._authors.get(author)
        if b is not None:
            self._refill(b, self.per_author, now_s)
        if self._total is not None:
            self._refill(self._total, self.total_cap, now_s)
        t = self._total
        return ((b.blocks >= 1 and b.bytes >= size) if b is not None else size <= pa_bytes) and \
            ((t.blocks >= 1 and t.bytes >= size) if t is not None else size <= self.total_cap[1])
