"""Block headers and equivocation proofs (two validly signed headers of one author at one height)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import InvalidBlock
from ..crypto import verify
from .codes import DOMAIN_BLOCK, Reason, canonical, sha256_hex
from .rules import EntryRules

if TYPE_CHECKING:
    from .blocks import Block


@dataclass(frozen=True)
class BlockHeader:
    """What a block's hash and signature cover: the entries enter through ``entries_hash``."""

    network: str
    author: str
    height: int
    prev_hash: str
    time_ms: int
    entries_hash: str
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        return {"t": "block", "network": self.network, "author": self.author, "height": self.height,
                "prev_hash": self.prev_hash, "time_ms": self.time_ms, "entries_hash": self.entries_hash}

    def to_canonical(self) -> dict[str, Any]:
        return {**self.body(), "sig": self.signature.hex()}

    @property
    def hash(self) -> str:
        return sha256_hex(canonical(self.body()))

    def signature_valid(self) -> bool:
        return verify(self.author, DOMAIN_BLOCK, bytes.fromhex(self.hash), self.signature)


@dataclass(frozen=True)
class EquivocationProof(EntryRules):
    """Two validly signed headers by one author at one height with different hashes.

    As an entry it has no chain rule and no effect on the fold: the replica records the proof
    as soon as it sees it (whether or not the carrying block is ever accepted), and the cut
    and burn follow from the recorded proofs."""

    a: BlockHeader
    b: BlockHeader

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "equivocation", "a": self.a.to_canonical(), "b": self.b.to_canonical()}

    @property
    def author(self) -> str:
        return self.a.author

    @property
    def height(self) -> int:
        return self.a.height

    def check(self, network_id: str) -> None:
        """:raises InvalidBlock: not a proof of equivocation on this network."""
        a, b = self.a, self.b
        if a.network != network_id or b.network != network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, "equivocation proof of another network")
        if a.author != b.author or a.height != b.height or a.hash == b.hash:
            raise InvalidBlock(Reason.PROOF_INVALID, "headers must share author and height and differ")
        if not (a.signature_valid() and b.signature_valid()):
            raise InvalidBlock(Reason.PROOF_INVALID, "a header's signature is invalid")

    def check_static(self, block: "Block", network_id: str) -> None:
        self.check(network_id)

    def normalized(self) -> "EquivocationProof":
        """The same proof with headers in hash order (so equal proofs compare equal)."""
        return self if self.a.hash < self.b.hash else EquivocationProof(self.b, self.a)
