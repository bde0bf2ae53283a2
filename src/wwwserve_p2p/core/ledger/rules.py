"""The protocol every entry type implements (no ``isinstance`` chains in the replica).

An entry class carries its own three rules:

- ``check_static(block, network_id)``: what needs only the block (shapes, amounts, all
  signatures, the block's time against the entry's ticket window). Raises ``InvalidBlock``.
- ``check_chain(scratch)``: what needs the author's own chain below the block (stake to
  unstake, matured unbonding, tickets already claimed/voided, duels settled). Reads and records
  into a :class:`~.fold.ChainScratch`; raises ``InvalidBlock``. Committing the scratch extends
  the chain; its record is what undoing the block reverses.
- ``apply(author, fold, params, sign)``: the entry's effect on the replicated state
  (:class:`~.fold.Fold`), ``sign=+1`` to apply and ``-1`` to remove it. Effects are additive
  and claim/void are resolved from the set of present claims and voids, so applying and
  removing blocks in any order gives the fold of the remaining set.

``time_window()``: ``(issued_ms, expires_ms or None)`` of the signed object the entry
references (``(0, None)`` for none): the block must be dated inside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blocks import Block
    from .fold import ChainScratch, Fold
    from .genesis import LedgerParams


class EntryRules:
    """Base of every entry type; the defaults are "no constraint, no effect"."""

    __slots__ = ()

    def to_canonical(self) -> dict[str, Any]:
        raise NotImplementedError

    def time_window(self) -> tuple[int, int | None]:
        return 0, None

    def check_static(self, block: "Block", network_id: str) -> None:
        pass

    def check_chain(self, s: "ChainScratch") -> None:
        pass

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        pass
