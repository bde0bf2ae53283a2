"""Entry types of a block, each carrying its static check, chain check and fold effect.

All amounts are integer micro-credits in ``[1, 2^62)``. An entry may only debit its author,
unless it carries the counterparty's signature authorising it (tickets, duel receipts, votes).
See :mod:`.rules` for the protocol; :data:`ENTRY_TYPES` is the registry of known types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ...errors import InvalidBlock
from .codes import Reason, canonical, check_amount, check_hex, check_peer, sha256_hex
from .duels import settle_tally, tally_duel
from .proofs import EquivocationProof
from .rules import EntryRules
from .signed import DuelTicket, Receipt, Ticket, Vote

if TYPE_CHECKING:
    from .blocks import Block
    from .fold import ChainScratch, Fold
    from .genesis import LedgerParams


def _check_window(block: "Block", e: EntryRules, what: str) -> None:
    issued, expires = e.time_window()
    if expires is not None and block.time_ms > expires:
        raise InvalidBlock(Reason.TICKET_EXPIRED, f"{what} expired")
    if block.time_ms < issued:
        raise InvalidBlock(Reason.BEFORE_ISSUE, f"block time {block.time_ms} < {what}'s issue time {issued}")


@dataclass(frozen=True)
class Stake(EntryRules):
    """Move ``amount`` of the author's balance to its stake."""

    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "stake", "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)

    def check_chain(self, s: "ChainScratch") -> None:
        s.own_stake += self.amount

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.add(fold.balance, author, -sign * self.amount)
        fold.add(fold.stake, author, sign * self.amount)
        fold.mention(author, sign)


@dataclass(frozen=True)
class Unstake(EntryRules):
    """Move ``amount`` of the author's own stake (Stake - Unstake on its chain) to unbonding,
    withdrawable ``unbonding_ms`` after this block's time."""

    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "unstake", "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)

    def check_chain(self, s: "ChainScratch") -> None:
        if self.amount > s.own_stake:
            raise InvalidBlock(Reason.UNSTAKE_EXCEEDS_STAKE, f"unstake {self.amount} > staked {s.own_stake}")
        s.own_stake -= self.amount
        s.unbonds.append((s.time_ms + s.unbonding_ms, self.amount))

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.add(fold.stake, author, -sign * self.amount)
        fold.add(fold.unbonding, author, sign * self.amount)
        fold.mention(author, sign)


@dataclass(frozen=True)
class Withdraw(EntryRules):
    """Move ``amount`` of matured unbonding (by this block's time) back to the balance."""

    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "withdraw", "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)

    def check_chain(self, s: "ChainScratch") -> None:
        matured = s.matured()
        if self.amount > matured:
            raise InvalidBlock(Reason.NOT_MATURED, f"withdraw {self.amount} > matured unbonding {matured}")
        s.withdrawn += self.amount

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.add(fold.unbonding, author, -sign * self.amount)
        fold.add(fold.balance, author, sign * self.amount)
        fold.mention(author, sign)


@dataclass(frozen=True)
class Transfer(EntryRules):
    """Pay ``amount`` of the author's balance to ``to`` (never to itself)."""

    to: str
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "transfer", "to": self.to, "amount": self.amount}

    def check_static(self, block: "Block", network_id: str) -> None:
        check_amount(self.amount)
        check_peer(self.to, "transfer recipient")
        if self.to == block.author:
            raise InvalidBlock(Reason.SELF_TRANSFER, "transfer to oneself")

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.add(fold.balance, author, -sign * self.amount)
        fold.add(fold.balance, self.to, sign * self.amount)
        fold.mention(author, sign)
        fold.mention(self.to, sign)


@dataclass(frozen=True)
class Claim(EntryRules):
    """The executor's claim: ``amount`` (<= ``ticket.price``) for serving the ticket's request;
    ``response_digest`` is SHA-256 (hex) of the full response text. The block must be dated in
    ``[ticket.issued_ms, ticket.expires_ms]``. Paid unless the ticket is voided (void wins)."""

    ticket: Ticket
    response_digest: str
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "claim", "ticket": self.ticket.to_canonical(), "response_digest": self.response_digest,
                "amount": self.amount}

    def time_window(self) -> tuple[int, int | None]:
        return self.ticket.issued_ms, self.ticket.expires_ms

    def check_static(self, block: "Block", network_id: str) -> None:
        t = self.ticket
        t.check(network_id)
        if t.executor != block.author:
            raise InvalidBlock(Reason.NOT_TICKET_EXECUTOR, f"ticket {t.request_id} names another executor")
        check_amount(self.amount, "claim amount")
        check_hex(self.response_digest, "response_digest")
        if self.amount > t.price:
            raise InvalidBlock(Reason.AMOUNT_EXCEEDS_PRICE, f"{self.amount} > {t.price}")
        _check_window(block, self, f"ticket {t.request_id}")

    def check_chain(self, s: "ChainScratch") -> None:
        h = self.ticket.hash
        if h in s.chain.claimed or h in s.claimed:
            raise InvalidBlock(Reason.TICKET_CLAIMED, f"ticket {self.ticket.request_id} already claimed")
        s.claimed.add(h)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.claim(self.ticket.hash, self.ticket.requester, author, self.amount, sign)


@dataclass(frozen=True)
class Void(EntryRules):
    """The requester withdraws ``ticket`` (its attempt failed or was cancelled): never claimable."""

    ticket: Ticket

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "void", "ticket": self.ticket.to_canonical()}

    def time_window(self) -> tuple[int, int | None]:
        return self.ticket.issued_ms, None

    def check_static(self, block: "Block", network_id: str) -> None:
        self.ticket.check(network_id)
        if self.ticket.requester != block.author:
            raise InvalidBlock(Reason.NOT_TICKET_REQUESTER, "only the requester may void its ticket")
        _check_window(block, self, f"ticket {self.ticket.request_id}")

    def check_chain(self, s: "ChainScratch") -> None:
        h = self.ticket.hash
        if h in s.chain.voided or h in s.voided:
            raise InvalidBlock(Reason.TICKET_CLAIMED, f"ticket {self.ticket.request_id} already voided")
        s.voided.add(h)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        fold.void(self.ticket.hash, author, sign)


@dataclass(frozen=True)
class Verdict(EntryRules):
    """Settlement of a duel, authored by its requester; see :func:`~.duels.settle_duel`. The
    block must be dated in ``[duel.issued_ms, duel.expires_ms]``."""

    duel: DuelTicket
    receipts: tuple[Receipt, ...]
    votes: tuple[Vote, ...]

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "verdict", "duel": self.duel.to_canonical(),
                "receipts": [r.to_canonical() for r in self.receipts],
                "votes": [v.to_canonical() for v in self.votes]}

    def time_window(self) -> tuple[int, int | None]:
        return self.duel.issued_ms, self.duel.expires_ms

    def tally(self) -> tuple[str, dict[str, str]]:
        """:func:`~.duels.tally_duel` of this verdict (cached: it verifies vote signatures)."""
        t = self.__dict__.get("_tally")
        if t is None:
            t = tally_duel(self.duel, self.votes)
            object.__setattr__(self, "_tally", t)
        return t

    def check_static(self, block: "Block", network_id: str) -> None:
        d = self.duel
        d.check(network_id)
        if d.requester != block.author:
            raise InvalidBlock(Reason.NOT_DUEL_REQUESTER, "only the duel's requester settles it")
        if block.time_ms > d.expires_ms:
            raise InvalidBlock(Reason.TICKET_EXPIRED, f"duel {d.duel_id} expired before settlement")
        _check_window(block, self, f"duel {d.duel_id}")
        dh = d.hash
        if {r.executor for r in self.receipts} != set(d.executors) or len(self.receipts) != 2:
            raise InvalidBlock(Reason.RECEIPT_INVALID, "a verdict needs one receipt from each executor")
        for r in self.receipts:
            check_hex(r.response_digest, "receipt response_digest")
            if r.duel_hash != dh or not r.valid():
                raise InvalidBlock(Reason.RECEIPT_INVALID, f"receipt of {r.executor} invalid")
        judges = set(d.judges)
        seen: set[str] = set()
        for v in self.votes:
            if v.judge not in judges or v.judge in seen or v.duel_hash != dh or not v.valid():
                raise InvalidBlock(Reason.VOTE_INVALID, f"vote of {str(v.judge)[:60]} invalid or repeated")
            seen.add(v.judge)

    def check_chain(self, s: "ChainScratch") -> None:
        h = self.duel.hash
        if h in s.chain.settled or h in s.settled:
            raise InvalidBlock(Reason.DUEL_SETTLED, f"duel {self.duel.duel_id} already settled")
        s.settled.add(h)

    def apply(self, author: str, fold: "Fold", params: "LedgerParams", sign: int) -> None:
        side, chosen = self.tally()
        for peer, (dbal, dstake) in settle_tally(self.duel, side, chosen, params).items():
            if dbal:
                fold.add(fold.balance, peer, sign * dbal)
            if dstake:
                fold.add(fold.stake, peer, sign * dstake)
            fold.mention(peer, sign)
        fold.count_duel(self.duel, side, chosen, sign)


Entry = Union[Stake, Unstake, Withdraw, Transfer, Claim, Void, Verdict, EquivocationProof]

#: Every known entry type (the registry the replica dispatches through).
ENTRY_TYPES: tuple[type, ...] = (Stake, Unstake, Withdraw, Transfer, Claim, Void, Verdict, EquivocationProof)


def entries_hash(entries: Iterable[Entry]) -> str:
    return sha256_hex(canonical([e.to_canonical() for e in entries]))
