"""Automatic ``Receive`` of transfers to this node (issue 14: joining without a genesis allocation).

A :class:`~wwwserve_p2p.core.ledger.Transfer` debits its sender at once, but credits the
recipient only when the recipient's *own* chain holds a :class:`~wwwserve_p2p.core.ledger.Receive`
carrying the sender's signed block. Without this hook a node funded by ``wwwserve transfer``
never saw the credit. :func:`receives_for` lists the Receive entries a node should queue for
the blocks it just accepted (and, at start, for every block it holds): one per Transfer to it
that its chain has not received yet, keyed ``receive:<sender>:<height>:<index>`` so that a
re-submission is a no-op. The ledger service queues them like any other own entry; the
ledger's rules (received once per (sender, height, index), self-verifying block) decide.

Kept separate from :mod:`.ledger` (owned by the ledger work of issue 18): the service calls
it from two places (``accept_blocks``, ``restore``).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.ledger import Block, Ledger, Receive, Transfer


def receives_for(me: str, blocks: Iterable[Block], ledger: Ledger) -> list[tuple[str, Receive]]:
    """``(queue key, Receive)`` for every Transfer to ``me`` in ``blocks`` that ``me``'s chain
    in ``ledger`` has not received."""
    out: list[tuple[str, Receive]] = []
    for b in blocks:
        if b.author == me:
            continue
        for i, e in enumerate(b.entries):
            if type(e) is Transfer and e.to == me and not ledger.is_received(b.author, b.height, i, me):
                out.append((f"receive:{b.author}:{b.height}:{i}", Receive(b, i)))
    return out


def all_blocks(ledger: Ledger) -> list[Block]:
    """Every accepted block of every chain (for the scan at start)."""
    return [b for author in ledger.heads() for b in ledger.blocks(author)]
