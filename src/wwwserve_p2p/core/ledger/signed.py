"""Signed objects that entries carry: :class:`Ticket`, :class:`DuelTicket`, :class:`Receipt`, :class:`Vote`.

Each is a frozen dataclass whose ``body()`` (canonical dict without the signature) is signed
under its domain by the party its ``SIGNER_FIELD`` names.

Issue times: a :class:`Ticket` or :class:`DuelTicket` may carry ``issued_ms`` (the requester's
clock when it signed). It is part of the signed body only when non-zero, so tickets signed
before the field existed keep their hash and signature (``issued_ms == 0``: the legacy form,
whose only lower bound on the claim's date is the genesis' ``created_ms``). A block may not be
dated before the ``issued_ms`` of any ticket it references, and ``issued_ms <= expires_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ...errors import InvalidBlock
from ..crypto import verify
from .codes import (DOMAIN_DUEL, DOMAIN_RECEIPT, DOMAIN_TICKET, DOMAIN_VOTE, Reason, Signer, canonical,
                    check_amount, check_hex, check_peer, check_time, sha256_hex)


class _Signed:
    """Shared behaviour of signed records: ``body()`` (canonical dict without the signature)
    is signed under ``DOMAIN`` by ``signer`` (the field named by ``SIGNER_FIELD``)."""

    DOMAIN = ""
    SIGNER_FIELD = ""
    signature: bytes

    def body(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_canonical(self) -> dict[str, Any]:
        return {**self.body(), "sig": self.signature.hex()}

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical body (cached)."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = sha256_hex(canonical(self.body()))
            object.__setattr__(self, "_hash", h)
        return h

    def signed(self, sign: Signer):
        """A copy signed with ``sign`` (the signer's ``Identity.sign``)."""
        return replace(self, signature=sign(self.DOMAIN, canonical(self.body())))

    def signature_ok(self) -> bool:
        return verify(getattr(self, self.SIGNER_FIELD), self.DOMAIN, canonical(self.body()), self.signature)


def _check_window(issued_ms: Any, expires_ms: int, what: str) -> None:
    check_time(issued_ms, f"{what} issued_ms")
    if issued_ms > expires_ms:
        raise InvalidBlock(Reason.MALFORMED, f"{what} expires ({expires_ms}) before it was issued ({issued_ms})")


@dataclass(frozen=True)
class Ticket(_Signed):
    """A requester's signed promise to pay ``executor`` up to ``price`` for ``request_id``.

    ``request_id`` names one delegation attempt (unique per requester). ``expires_ms``: the
    claim must be in a block whose ``time_ms`` is not later; ``issued_ms`` (0 = unset): nor
    earlier. Signed by ``requester``. A ticket (by :attr:`hash`) is claimable once: DESIGN §4's
    "one claim per request_id", keyed by the signed ticket so that a requester re-using a
    request_id for two executors pays both.

    **Voucher** (``channel`` set: the 64-hex id of the requester's :class:`~.entries.OpenChannel`
    toward ``executor``): a cumulative payment-channel ticket. ``seq`` (>= 1) orders the
    vouchers of one channel; ``total`` is the running total the requester owes on the channel
    *including* this request, whose own maximum is ``price`` (``price <= total``). The executor
    claims the latest voucher now and then (``Claim.amount`` = cumulative claimed, at most
    ``total`` and the channel's deposit), so one entry pays for many requests. A legacy ticket
    (``channel == ""``) has none of these fields in its signed body (same bytes and hash).
    """

    DOMAIN = DOMAIN_TICKET
    SIGNER_FIELD = "requester"

    network: str
    request_id: str
    requester: str
    executor: str
    price: int
    expires_ms: int
    signature: bytes = b""
    issued_ms: int = 0
    channel: str = ""
    seq: int = 0
    total: int = 0

    @property
    def is_voucher(self) -> bool:
        return bool(self.channel)

    def body(self) -> dict[str, Any]:
        out = {"t": "ticket", "network": self.network, "request_id": self.request_id,
               "requester": self.requester, "executor": self.executor, "price": self.price,
               "expires_ms": self.expires_ms}
        if self.issued_ms:
            out["issued_ms"] = self.issued_ms
        if self.channel or self.seq or self.total:
            out.update(channel=self.channel, seq=self.seq, total=self.total)
        return out

    def check(self, network_id: str) -> None:
        """:raises InvalidBlock: malformed, other network, or bad signature."""
        if self.network != network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, "ticket of another network")
        if self.channel or self.seq or self.total:
            check_hex(self.channel, "voucher channel")
            if not isinstance(self.seq, int) or isinstance(self.seq, bool) or not 1 <= self.seq < 1 << 62:
                raise InvalidBlock(Reason.MALFORMED, "voucher seq must be an integer >= 1")
            check_amount(self.total, "voucher total")
            if isinstance(self.price, int) and self.price > self.total:
                raise InvalidBlock(Reason.MALFORMED, "voucher price above its running total")
        check_peer(self.requester, "ticket requester")
        check_peer(self.executor, "ticket executor")
        check_amount(self.price, "ticket price")
        if not isinstance(self.request_id, str) or not 0 < len(self.request_id) <= 200:
            raise InvalidBlock(Reason.MALFORMED, "ticket request_id must be 1..200 characters")
        if not isinstance(self.expires_ms, int) or self.expires_ms < 0:
            raise InvalidBlock(Reason.MALFORMED, "ticket expires_ms must be >= 0")
        _check_window(self.issued_ms, self.expires_ms, f"ticket {self.request_id}")
        if not self.signature_ok():
            raise InvalidBlock(Reason.TICKET_SIGNATURE, f"ticket {self.request_id} not signed by its requester")


@dataclass(frozen=True)
class DuelTicket(_Signed):
    """A requester's signed duel: ``executors`` (A, B) answer the same request, ``judges`` vote.

    ``executor_bond``: what the losing executor forfeits to the winner; ``judge_bond``: the base
    of judge penalties; the verdict's block must be dated in ``[issued_ms, expires_ms]``
    (``issued_ms`` 0 = unset). Signed by ``requester``.
    """

    DOMAIN = DOMAIN_DUEL
    SIGNER_FIELD = "requester"

    network: str
    duel_id: str
    requester: str
    executors: tuple[str, str]
    judges: tuple[str, ...]
    executor_bond: int
    judge_bond: int
    expires_ms: int
    signature: bytes = b""
    issued_ms: int = 0
    #: verifiable panel (issue 18): ``(PeerId, stake)`` pairs in PeerId order the judges are
    #: drawn from (see :mod:`.duels`), and how many; ``()`` = older form, ``judges`` named
    pool: tuple[tuple[str, int], ...] = ()
    judges_k: int = 0

    def body(self) -> dict[str, Any]:
        out = {"t": "duel", "network": self.network, "duel_id": self.duel_id, "requester": self.requester,
               "executors": list(self.executors), "judges": list(self.judges),
               "executor_bond": self.executor_bond, "judge_bond": self.judge_bond, "expires_ms": self.expires_ms}
        if self.issued_ms:
            out["issued_ms"] = self.issued_ms
        if self.pool or self.judges_k:
            out["pool"] = [[p, s] for p, s in self.pool]
            out["judges_k"] = self.judges_k
        return out

    def check(self, network_id: str) -> None:
        """:raises InvalidBlock: malformed, other network, or bad signature."""
        if self.network != network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, "duel ticket of another network")
        check_peer(self.requester, "duel requester")
        if len(self.executors) != 2 or self.executors[0] == self.executors[1]:
            raise InvalidBlock(Reason.MALFORMED, "a duel has two distinct executors")
        for p in (*self.executors, *self.judges):
            check_peer(p, "duel participant")
        if len(set(self.judges)) != len(self.judges) or set(self.judges) & {*self.executors, self.requester}:
            raise InvalidBlock(Reason.MALFORMED, "judges must be distinct and exclude requester and executors")
        check_amount(self.executor_bond, "executor_bond")
        check_amount(self.judge_bond, "judge_bond")
        if self.pool or self.judges_k:
            self._check_pool()
        check_time(self.expires_ms, f"duel {str(self.duel_id)[:60]} expires_ms")
        _check_window(self.issued_ms, self.expires_ms, f"duel {str(self.duel_id)[:60]}")
        if not self.signature_ok():
            raise InvalidBlock(Reason.DUEL_SIGNATURE, f"duel {self.duel_id} not signed by its requester")


    def _check_pool(self) -> None:
        """The verifiable form: no named judges, 1..:data:`MAX_PANEL` seats, 1..:data:`MAX_POOL`
        pool entries of positive stake in strictly increasing PeerId order, requester and
        executors not in it."""
        k, pool = self.judges_k, self.pool
        if self.judges:
            raise InvalidBlock(Reason.MALFORMED, "a duel with a judge pool names no judges (they are drawn)")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_PANEL:
            raise InvalidBlock(Reason.MALFORMED, f"judges_k must be 1..{MAX_PANEL}")
        if not isinstance(pool, tuple) or not 1 <= len(pool) <= MAX_POOL:
            raise InvalidBlock(Reason.MALFORMED, f"a judge pool has 1..{MAX_POOL} entries")
        prev = ""
        for entry in pool:
            if not isinstance(entry, tuple) or len(entry) != 2:
                raise InvalidBlock(Reason.MALFORMED, "a judge pool entry is (PeerId, stake)")
            peer, stake = entry
            check_peer(peer, "judge pool member")
            check_amount(stake, "judge pool stake")
            if peer <= prev:
                raise InvalidBlock(Reason.MALFORMED, "judge pool entries must be distinct, in PeerId order")
            prev = peer
        if {p for p, _ in pool} & {*self.executors, self.requester}:
            raise InvalidBlock(Reason.MALFORMED, "the judge pool must exclude requester and executors")


#: Largest stake pool a duel ticket may commit to, and largest panel (see :mod:`.duels`).
MAX_POOL = 64
MAX_PANEL = 16


@dataclass(frozen=True)
class Receipt(_Signed):
    """An executor's signed consent to a duel: it answered ``duel_hash`` with ``response_digest``."""

    DOMAIN = DOMAIN_RECEIPT
    SIGNER_FIELD = "executor"

    executor: str
    duel_hash: str
    response_digest: str
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        return {"t": "receipt", "executor": self.executor, "duel_hash": self.duel_hash,
                "response_digest": self.response_digest}

    def valid(self) -> bool:
        return self.signature_ok()


VOTE_CHOICES = ("A", "B", "abstain")


@dataclass(frozen=True)
class Vote(_Signed):
    """A judge's signed vote on ``duel_hash``: ``"A"``, ``"B"`` or ``"abstain"`` (an acceptance
    without a verdict also counts as abstain: it is the judge's consent to the penalties)."""

    DOMAIN = DOMAIN_VOTE
    SIGNER_FIELD = "judge"

    judge: str
    duel_hash: str
    choice: str
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        return {"t": "vote", "judge": self.judge, "duel_hash": self.duel_hash, "choice": self.choice}

    def valid(self) -> bool:
        return self.choice in VOTE_CHOICES and self.signature_ok()
