"""The bounded queue of *premature* blocks: dated beyond our clock + tolerance, held until due.

DESIGN §4 / issue 18 "time rules": a node never applies a block whose ``time_ms`` is beyond its
own clock + :data:`~wwwserve_p2p.core.ledger.MAX_CLOCK_SKEW_MS`
(:func:`~wwwserve_p2p.core.ledger.is_premature`); it holds it here and offers it to the ledger
again once its clock reaches ``time_ms - tolerance``. Which blocks are held is a local decision,
never part of the fold: a dropped block is simply gossiped or pulled again later.

Bounds (a liar dating blocks years ahead must not grow our memory): at most ``max_per_author``
blocks and ``max_bytes_per_author`` bytes per author, ``max_blocks`` and ``max_bytes`` in total
(sizes are :meth:`Block.canonical_size`). While a cap is exceeded the *farthest-dated* block is
dropped (of the author over its cap, else of everyone; ties: the greater height, then the
greater hash), so blocks about to become due, and the low end of a held run, survive a flood of
far-future ones. Pure data structure, no clock: ``now_ms`` is
an argument.
"""

from __future__ import annotations

import heapq

from ..core.ledger import MAX_CLOCK_SKEW_MS, Block, is_premature

#: Defaults of the caps.
MAX_HELD_PER_AUTHOR = 64
MAX_HELD_BYTES_PER_AUTHOR = 1 << 20
MAX_HELD_BLOCKS = 4096
MAX_HELD_BYTES = 16 << 20


class HeldBlocks:
    """Premature blocks by hash, with a due-time heap and a farthest-first eviction heap."""

    def __init__(self, *, max_per_author: int = MAX_HELD_PER_AUTHOR,
                 max_bytes_per_author: int = MAX_HELD_BYTES_PER_AUTHOR, max_blocks: int = MAX_HELD_BLOCKS,
                 max_bytes: int = MAX_HELD_BYTES, tolerance_ms: int = MAX_CLOCK_SKEW_MS):
        self.max_per_author = max_per_author
        self.max_bytes_per_author = max_bytes_per_author
        self.max_blocks = max_blocks
        self.max_bytes = max_bytes
        self.tolerance_ms = tolerance_ms
        self._blocks: dict[str, tuple[Block, int]] = {}          # hash -> (block, size)
        self._by_author: dict[str, dict[str, tuple[int, int]]] = {}  # author -> hash -> (time, height)
        self._author_bytes: dict[str, int] = {}
        self._due: list[tuple[int, str]] = []                     # (time_ms, hash), lazy deletion
        self._far: list[tuple[int, int, str]] = []                # (-time, -height, flipped hash), lazy
        self.bytes = 0
        self.evicted = 0   # dropped by the caps (the offered block included)

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_hash: str) -> bool:
        return block_hash in self._blocks

    def authors(self) -> int:
        return len(self._by_author)

    def offer(self, block: Block) -> bool:
        """Hold ``block`` (a duplicate is a no-op). False if the caps left no room for it."""
        h = block.hash
        if h in self._blocks:
            return True
        size = block.canonical_size()
        if (size > self.max_bytes_per_author or size > self.max_bytes or self.max_blocks < 1
                or self.max_per_author < 1):
            self.evicted += 1
            return False
        a = block.author
        self._blocks[h] = (block, size)
        self._by_author.setdefault(a, {})[h] = (block.time_ms, block.height)
        self._author_bytes[a] = self._author_bytes.get(a, 0) + size
        self.bytes += size
        heapq.heappush(self._due, (block.time_ms, h))
        heapq.heappush(self._far, (-block.time_ms, -block.height, _neg(h)))
        kept = True
        while True:
            mine = self._by_author.get(a)
            if mine and (len(mine) > self.max_per_author or self._author_bytes[a] > self.max_bytes_per_author):
                victim = max(mine, key=lambda x: (*mine[x], x))
            elif len(self._blocks) > self.max_blocks or self.bytes > self.max_bytes:
                victim = self._farthest()
            else:
                break
            if victim == h:
                kept = False
            self._remove(victim)
            self.evicted += 1
        self._compact()
        return kept

    def pop_due(self, now_ms: int) -> list[Block]:
        """Remove and return every held block no longer premature at ``now_ms``, in (author,
        height) order so that a held run of one chain applies in one pass."""
        out = []
        while self._due:
            t, h = self._due[0]
            if h not in self._blocks or self._blocks[h][0].time_ms != t:
                heapq.heappop(self._due)
                continue
            blk = self._blocks[h][0]
            if is_premature(blk, now_ms, self.tolerance_ms):
                break
            heapq.heappop(self._due)
            self._remove(h)
            out.append(blk)
        self._compact()
        return sorted(out, key=lambda b: (b.author, b.height, b.hash))

    def next_due_ms(self) -> int | None:
        """The clock reading (ms) at which the earliest held block becomes due, or None."""
        while self._due and self._due[0][1] not in self._blocks:
            heapq.heappop(self._due)
        return self._due[0][0] - self.tolerance_ms if self._due else None

    def _farthest(self) -> str:
        while True:
            h = _neg(self._far[0][2])
            if h in self._blocks:
                return h
            heapq.heappop(self._far)

    def _remove(self, h: str) -> None:
        blk, size = self._blocks.pop(h)
        a = blk.author
        mine = self._by_author[a]
        del mine[h]
        self._author_bytes[a] -= size
        if not mine:
            del self._by_author[a]
            del self._author_bytes[a]
        self.bytes -= size

    def _compact(self) -> None:
        """Rebuild the lazy heaps when stale entries dominate (keeps memory O(held))."""
        n = len(self._blocks)
        if len(self._due) > 2 * n + 64:
            self._due = [(b.time_ms, h) for h, (b, _) in self._blocks.items()]
            heapq.heapify(self._due)
        if len(self._far) > 2 * n + 64:
            self._far = [(-b.time_ms, -b.height, _neg(h)) for h, (b, _) in self._blocks.items()]
            heapq.heapify(self._far)


_FLIP = str.maketrans("0123456789abcdef", "fedcba9876543210")


def _neg(h: str) -> str:
    """Hex hash with every digit complemented: reverses the order of equal-length hex strings
    (so the min-heap ``_far`` pops the largest hash first among equal times). An involution."""
    return h.translate(_FLIP)
