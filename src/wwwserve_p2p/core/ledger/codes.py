"""Stable result codes, signing domains and canonical bytes of the ledger (pure helpers).

- :class:`Reason`: rejection codes (``InvalidBlock.reason``, metrics labels, logs); a
  :class:`~enum.StrEnum`, so ``reason == "wrong_network"`` and ``{reason: n}`` keyed by the
  plain string keep working.
- :class:`AddStatus`: what :meth:`Ledger.add_block` did (``res.status == "applied"`` works).
- :func:`canonical`: compact, key-sorted ASCII JSON; :func:`sha256_hex`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from ...errors import InvalidBlock, MalformedMessage
from ..crypto import public_bytes_from_peer_id

DOMAIN_BLOCK = "wwwserve/v1/block"
DOMAIN_TICKET = "wwwserve/v1/ticket"
DOMAIN_DUEL = "wwwserve/v1/duel"
DOMAIN_RECEIPT = "wwwserve/v1/receipt"
DOMAIN_VOTE = "wwwserve/v1/vote"

#: Signs ``domain``-separated bytes with the node's key: ``sign(domain, payload) -> 64 bytes``.
Signer = Callable[[str, bytes], bytes]


class Reason(StrEnum):
    """Stable rejection codes (``InvalidBlock.reason``, metrics labels, logs)."""

    WRONG_NETWORK = "wrong_network"
    BAD_AUTHOR = "bad_author"
    BAD_SIGNATURE = "bad_signature"
    OVERSIZED = "oversized"
    TOO_MANY_ENTRIES = "too_many_entries"
    MALFORMED = "malformed_entry"
    HEIGHT_GAP = "height_gap"
    WRONG_PREV_HASH = "wrong_prev_hash"
    TIME_BACKWARDS = "time_backwards"
    #: the block is dated before the genesis' ``created_ms``
    BEFORE_GENESIS = "time_before_genesis"
    #: the block is dated before the ``issued_ms`` of a ticket / duel ticket it references
    BEFORE_ISSUE = "time_before_issue"
    #: dated beyond the local clock + tolerance (held, not refused, by services; see
    #: :func:`is_premature`); in ``validate_own``: an entry issued that far in the future
    PREMATURE = "premature"
    EQUIVOCATED = "author_equivocated"
    TICKET_SIGNATURE = "ticket_signature"
    NOT_TICKET_EXECUTOR = "not_ticket_executor"
    NOT_TICKET_REQUESTER = "not_ticket_requester"
    TICKET_CLAIMED = "ticket_already_claimed"
    TICKET_EXPIRED = "ticket_expired"
    AMOUNT_EXCEEDS_PRICE = "amount_exceeds_price"
    UNSTAKE_EXCEEDS_STAKE = "unstake_exceeds_stake"
    NOT_MATURED = "unstake_not_matured"
    DUEL_SIGNATURE = "duel_signature"
    NOT_DUEL_REQUESTER = "not_duel_requester"
    DUEL_SETTLED = "duel_already_settled"
    RECEIPT_INVALID = "receipt_invalid"
    VOTE_INVALID = "vote_invalid"
    SELF_TRANSFER = "self_transfer"
    PROOF_INVALID = "proof_invalid"
    #: a Stake or Transfer would take the author's chain-provable credit below ``-overdraft``
    INSUFFICIENT_FUNDS = "insufficient_funds"
    #: a Receive whose carried block or referenced entry is not a signed Transfer to its author
    RECEIVE_INVALID = "receive_invalid"
    #: a Receive of a (sender, height, index) this chain already received
    ALREADY_RECEIVED = "already_received"
    #: an entry references another author's block (a Receive's transfer, a voucher's channel,
    #: a close's witness) this replica has not accepted: the block waits for it (not refused)
    MISSING_DEPENDENCY = "missing_dependency"
    #: a Receive of a block whose height in the sender's accepted chain holds another block
    RECEIVE_OF_FORK = "receive_of_fork"
    #: a voucher's channel was not opened by its requester toward this executor, or closed
    CHANNEL_UNKNOWN = "channel_unknown"
    #: an OpenChannel whose channel id this chain already opened
    CHANNEL_EXISTS = "channel_exists"
    #: a voucher claim not newer (seq) or smaller (amount) than this chain's last on the channel,
    #: or above the deposit
    CHANNEL_CLAIM = "channel_claim_invalid"
    #: a CloseChannel before the executor's chain passed the channel's expiry, or closed twice
    CHANNEL_CLOSE = "channel_close_invalid"
    #: the block references (or is) settled history below a snapshot's cut that the snapshot
    #: did not keep (see :mod:`.snapshot`)
    PRUNED = "pruned_history"
    #: a valid block with a Withdraw of unbonding whose Unstake this replica first saw less than
    #: ``unbonding_ms - tolerance`` ago by its own clock: held (status pending), not refused
    UNBONDING_HOLD = "unbonding_hold"
    #: a DuelBond by a key that is not one of the duel's executors, or bonded twice
    DUEL_BOND = "duel_bond_invalid"
    #: a DuelRelease without this chain's bond, released twice, or by the duel's loser
    DUEL_RELEASE = "duel_release_invalid"


class MissingDependency(InvalidBlock):
    """Raised by a chain check when an entry needs a block of ``author`` (at ``height``, 0 =
    unknown) that the replica has not accepted; the replica parks the block until it has.
    ``also``: further authors whose chain growth may settle it too (the block is offered again
    when any of them grows)."""

    def __init__(self, author: str, height: int = 0, detail: str = "", also: tuple[str, ...] = ()):
        super().__init__(Reason.MISSING_DEPENDENCY, detail or f"needs a block of {author[:16]} at {height}")
        self.author = author
        self.height = height
        self.also = also


class ForkSeen(MissingDependency):
    """A Receive carries a block of ``author`` other than the one accepted at its height: the
    two signed headers ``a``, ``b`` prove an equivocation; the replica records the proof and
    offers the receiving block again (it is then valid if the carried block is a valid fork)."""

    def __init__(self, author: str, height: int, a: Any, b: Any):
        super().__init__(author, height, f"received block {height} of {author[:16]} is a fork")
        self.a = a
        self.b = b


class AddStatus(StrEnum):
    """Outcome kinds of :meth:`Ledger.add_block` (see :class:`AddResult`)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PENDING = "pending"
    REJECTED = "rejected"
    EQUIVOCATION = "equivocation"
    #: dated beyond ``now_ms + tolerance_ms`` (only when ``add_block`` is given ``now_ms``):
    #: nothing was stored; offer it again when its time has come
    PREMATURE = "premature"


def canonical(obj: Any) -> bytes:
    """Canonical bytes of a JSON-able object: compact, key-sorted, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_peer(value: Any, what: str) -> str:
    """:raises InvalidBlock: (MALFORMED) ``value`` is not an Ed25519 PeerId string."""
    if not isinstance(value, str):
        raise InvalidBlock(Reason.MALFORMED, f"{what} is not a PeerId")
    try:
        public_bytes_from_peer_id(value)
    except MalformedMessage:
        raise InvalidBlock(Reason.MALFORMED, f"{what} is not an Ed25519 PeerId: {value[:60]!r}") from None
    return value


def check_amount(value: Any, what: str = "amount") -> int:
    """:raises InvalidBlock: (MALFORMED) not an integer in [1, 2^62)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value >= 1 << 62:
        raise InvalidBlock(Reason.MALFORMED, f"{what} must be an integer in [1, 2^62), got {value!r}")
    return value


def check_time(value: Any, what: str) -> int:
    """:raises InvalidBlock: (MALFORMED) not an integer in [0, 2^62) (milliseconds)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= 1 << 62:
        raise InvalidBlock(Reason.MALFORMED, f"{what} must be an integer >= 0 (ms), got {value!r}")
    return value


def check_hex(value: Any, what: str, n: int = 64) -> str:
    """:raises InvalidBlock: (MALFORMED) not ``n`` lowercase hex digits."""
    if not isinstance(value, str) or len(value) != n or any(c not in "0123456789abcdef" for c in value):
        raise InvalidBlock(Reason.MALFORMED, f"{what} must be {n} lowercase hex digits")
    return value


# the names the monolithic module used (kept for callers that reached for them)
_check_peer, _check_amount, _check_hex = check_peer, check_amount, check_hex
