"""The bounded buffer of out-of-order blocks (a gap below them), by count and by bytes.

Which blocks a replica keeps while it waits for their predecessors is a local decision, not
part of the fold: a dropped block is simply pulled again later. The rule is deterministic:
while a cap is exceeded, drop the *highest* pending block (farthest from being applicable) of
the author over its byte cap, else of the author holding the most pending bytes (ties: the
smallest PeerId). So one author flooding far-ahead heights evicts its own blocks first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .blocks import Block

#: Defaults: total blocks, bytes per author, bytes in total (canonical sizes).
MAX_PENDING_BLOCKS = 100_000
MAX_PENDING_BYTES_PER_AUTHOR = 1 << 20
MAX_PENDING_BYTES = 64 << 20


class PendingBuffer:
    """``author -> height -> (block, size)``, at most one block per (author, height).

    ``max_blocks``, ``max_bytes_per_author``, ``max_bytes``: the caps (sizes are
    :meth:`Block.canonical_size`).
    """

    def __init__(self, max_blocks: int = MAX_PENDING_BLOCKS,
                 max_bytes_per_author: int = MAX_PENDING_BYTES_PER_AUTHOR, max_bytes: int = MAX_PENDING_BYTES):
        self.max_blocks = max_blocks
        self.max_bytes_per_author = max_bytes_per_author
        self.max_bytes = max_bytes
        self._by_author: dict[str, dict[int, tuple["Block", int]]] = {}
        self._author_bytes: dict[str, int] = {}
        self.count = 0
        self.bytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return self.count

    def get(self, author: str, height: int) -> "Block | None":
        got = self._by_author.get(author, {}).get(height)
        return got[0] if got else None

    def author_bytes(self, author: str) -> int:
        return self._author_bytes.get(author, 0)

    def pop(self, author: str, height: int) -> "Block | None":
        at = self._by_author.get(author)
        got = at.pop(height, None) if at else None
        if got is None:
            return None
        self.count -= 1
        self.bytes -= got[1]
        left = self._author_bytes[author] - got[1]
        if at:
            self._author_bytes[author] = left
        else:
            del self._by_author[author]
            del self._author_bytes[author]
        return got[0]

    def drop_from(self, author: str, height: int) -> int:
        """Drop ``author``'s pending blocks at heights >= ``height``; returns how many."""
        at = self._by_author.get(author, {})
        gone = [h for h in at if h >= height]
        for h in gone:
            self.pop(author, h)
        return len(gone)

    def offer(self, block: "Block") -> bool:
        """Hold ``block``; False if the caps leave no room for it (nothing else changed then,
        unless lower blocks of its author displaced higher ones)."""
        size = block.canonical_size()
        if size > self.max_bytes_per_author or size > self.max_bytes or self.max_blocks < 1:
            return False
        a = block.author
        self._by_author.setdefault(a, {})[block.height] = (block, size)
        self._author_bytes[a] = self._author_bytes.get(a, 0) + size
        self.count += 1
        self.bytes += size
        kept = True
        while True:
            if self._author_bytes.get(a, 0) > self.max_bytes_per_author:
                victim = a
            elif self.count > self.max_blocks or self.bytes > self.max_bytes:
                victim = min(self._author_bytes, key=lambda p: (-self._author_bytes[p], p))
            else:
                break
            h = max(self._by_author[victim])
            if victim == a and h == block.height:
                kept = False
            else:
                self.evicted += 1
            self.pop(victim, h)
        return kept
