"""Blocks: :class:`Block`, :func:`build_block`, and the time predicate :func:`is_premature`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from .codes import DOMAIN_BLOCK, Signer, canonical, sha256_hex
from .entries import Entry
from .proofs import BlockHeader

#: Default tolerance (ms) for :func:`is_premature`: how far beyond its own clock a node accepts
#: a block's ``time_ms``. It bounds how early (by an honest clock) a time-gated entry can take
#: effect: a Withdraw maturing at ``t`` is applied by no honest node before ``t - MAX_CLOCK_SKEW_MS``
#: (minus that node's own clock error).
MAX_CLOCK_SKEW_MS = 5_000


@dataclass(frozen=True)
class Block:
    """One block of ``author``'s chain. Build with :func:`build_block`."""

    network: str
    author: str
    height: int
    prev_hash: str
    time_ms: int
    entries: tuple[Entry, ...]
    signature: bytes = b""

    def _entries_bytes(self) -> bytes:
        b = self.__dict__.get("_eb")
        if b is None:
            b = canonical([e.to_canonical() for e in self.entries])
            object.__setattr__(self, "_eb", b)
        return b

    @property
    def header(self) -> BlockHeader:
        h = self.__dict__.get("_header")
        if h is None:
            h = BlockHeader(self.network, self.author, self.height, self.prev_hash, self.time_ms,
                            sha256_hex(self._entries_bytes()), self.signature)
            object.__setattr__(self, "_header", h)
        return h

    @property
    def hash(self) -> str:
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.header.hash
            object.__setattr__(self, "_hash", h)
        return h

    def canonical_size(self) -> int:
        """Size in bytes of the canonical header (with signature) plus the canonical entries."""
        return len(canonical(self.header.to_canonical())) + len(self._entries_bytes())


def build_block(network: str, author: str, height: int, prev_hash: str, time_ms: int,
                entries: Iterable[Entry], sign: Signer) -> Block:
    """A signed block. ``sign`` must be ``author``'s key (``Identity.sign``)."""
    blk = Block(network, author, height, prev_hash, time_ms, tuple(entries))
    sig = sign(DOMAIN_BLOCK, bytes.fromhex(blk.hash))
    return replace(blk, signature=sig)


def is_premature(block: Block | BlockHeader, now_ms: int, tolerance_ms: int = MAX_CLOCK_SKEW_MS) -> bool:
    """Whether ``block`` is dated beyond ``now_ms + tolerance_ms`` (a local clock reading, ms).

    Pure and monotone: premature at ``now_ms`` implies premature at every earlier ``now_ms``
    (so a held block only ever *becomes* due). Services hold premature blocks until it turns
    False instead of applying them; the fold stays a function of the block set alone.
    """
    return block.time_ms > now_ms + tolerance_ms
