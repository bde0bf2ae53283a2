"""The credit ledger: signed per-author block chains and a deterministic, order-independent fold.

Rules: DESIGN §4 (after the WWW.Serve paper, Wang et al., CMU 2026, §3.3 "credit"). Pure: no
I/O, no clock; times are the ``time_ms`` the authors wrote into their blocks; signatures are
checked with :mod:`wwwserve_p2p.core.crypto`; signing is a callback the caller passes in.

Data
----
- A network is defined by its :class:`Genesis` (name, :class:`LedgerParams`, allocations per
  PeerId); its *network id* is the hash of the genesis' canonical bytes.
- Each node appends :class:`Block` s to its own chain: ``{network, author, height, prev_hash,
  time_ms, entries, signature}``. Height 1 links to the genesis hash. The block hash is
  SHA-256 of the canonical header (which commits to the entries by their hash); the author
  signs the hash.
- Entries (all amounts integer micro-credits > 0): :class:`Stake`, :class:`Unstake` (moves
  stake to *unbonding*, spendable after ``unbonding_ms``), :class:`Withdraw` (matured
  unbonding back to balance), :class:`Transfer`, :class:`Claim` (an executor's claim backed by
  the requester's signed :class:`Ticket`), :class:`Void` (a requester withdrawing the ticket
  of a failed or cancelled attempt), :class:`Verdict` (duel settlement from a signed
  :class:`DuelTicket`, both executors' :class:`Receipt` s and the judges' :class:`Vote` s) and
  :class:`EquivocationProof`.

Validity depends only on the block, its author's own chain below it, and signatures, never
on other authors' chains, so every replica accepts the same blocks whatever the arrival
order. Cross-chain effects are resolved in the fold, deterministically:

- a :class:`Void` by the ticket's requester wins over any :class:`Claim` of that ticket;
- an equivocating author counts only below the height where it equivocated, and whatever
  stake and unbonding it holds is burned. Equivocation = two different blocks by one author
  at one height, each with a valid signature, whatever their contents (signing twice is the
  offence, as in other slashing schemes): so the verdict does not depend on which of the two
  arrived first, and a compact :class:`EquivocationProof` (two signed headers) proves it.

State = sum of the entries' deltas over every valid block (+ genesis allocations), then the
burns. Balances may go negative: an account whose balance is below ``-overdraft`` is *in
debt* and may neither offload nor be selected (DESIGN §4/§5). Supply is conserved except burns.

Canonical bytes are compact, key-sorted JSON (ASCII); bytes fields are lowercase hex.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Union

from ..errors import InvalidBlock, LedgerError, MalformedMessage
from .crypto import public_bytes_from_peer_id, verify

DOMAIN_BLOCK = "wwwserve/v1/block"
DOMAIN_TICKET = "wwwserve/v1/ticket"
DOMAIN_DUEL = "wwwserve/v1/duel"
DOMAIN_RECEIPT = "wwwserve/v1/receipt"
DOMAIN_VOTE = "wwwserve/v1/vote"

#: Signs ``domain``-separated bytes with the node's key: ``sign(domain, payload) -> 64 bytes``.
Signer = Callable[[str, bytes], bytes]


class Reason:
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


# ---------------------------------------------------------------------------- canonical bytes

def canonical(obj: Any) -> bytes:
    """Canonical bytes of a JSON-able object: compact, key-sorted, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_peer(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidBlock(Reason.MALFORMED, f"{what} is not a PeerId")
    try:
        public_bytes_from_peer_id(value)
    except MalformedMessage:
        raise InvalidBlock(Reason.MALFORMED, f"{what} is not an Ed25519 PeerId: {value[:60]!r}") from None
    return value


def _check_amount(value: Any, what: str = "amount") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value >= 1 << 62:
        raise InvalidBlock(Reason.MALFORMED, f"{what} must be an integer in [1, 2^62), got {value!r}")
    return value


def _check_hex(value: Any, what: str, n: int = 64) -> str:
    if not isinstance(value, str) or len(value) != n or any(c not in "0123456789abcdef" for c in value):
        raise InvalidBlock(Reason.MALFORMED, f"{what} must be {n} lowercase hex digits")
    return value


# ---------------------------------------------------------------------------- network genesis

@dataclass(frozen=True)
class LedgerParams:
    """Network-wide ledger parameters, fixed by the genesis file.

    - ``unbonding_ms``: delay before unstaked credit can be withdrawn (ms of block time).
    - ``overdraft``: how far below zero a balance may go before the account is *in debt*.
    - ``max_block_entries``, ``max_block_bytes``: caps on one block (bytes: canonical form).
    - ``price_base``, ``price_per_token``: the price a requester signs for a delegated request:
      ``price_base + price_per_token * max_tokens``; the executor claims ``price_base +
      price_per_token * completion_tokens`` (never more than the ticket's price).
    - ``minority_penalty_pct``, ``abstain_penalty_pct``: share of a judge's bond lost when it
      votes with the minority or abstains (paper: 20% and 5%); the pool goes to the majority.
    """

    unbonding_ms: int = 600_000
    overdraft: int = 0
    max_block_entries: int = 1000
    max_block_bytes: int = 512 * 1024
    price_base: int = 1_000
    price_per_token: int = 100
    minority_penalty_pct: int = 20
    abstain_penalty_pct: int = 5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise LedgerError(f"ledger parameter {f.name} must be an integer >= 0, got {v!r}")
        if self.max_block_entries < 1 or self.max_block_bytes < 1024:
            raise LedgerError("max_block_entries must be >= 1 and max_block_bytes >= 1024")
        if self.minority_penalty_pct > 100 or self.abstain_penalty_pct > 100:
            raise LedgerError("penalty percentages must be <= 100")

    def price(self, tokens: int) -> int:
        """Price in micro-credits of a request of ``tokens`` completion tokens."""
        return self.price_base + self.price_per_token * max(0, tokens)


@dataclass(frozen=True)
class Genesis:
    """A network's genesis: its name, parameters and initial allocations (PeerId -> micro-credits).

    ``network_id`` (32 hex digits) is the SHA-256 of the canonical bytes, so two networks with
    the same name but different parameters or allocations never mix.

    :raises LedgerError: invalid allocations or parameters.
    """

    network: str
    params: LedgerParams = field(default_factory=LedgerParams)
    allocations: tuple[tuple[str, int], ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.network, str) or not self.network:
            raise LedgerError("genesis needs a non-empty network name")
        seen = set()
        for peer, amount in self.allocations:
            try:
                _check_peer(peer, "allocation PeerId")
                _check_amount(amount, f"allocation of {peer}")
            except InvalidBlock as exc:
                raise LedgerError(f"genesis: {exc}") from None
            if peer in seen:
                raise LedgerError(f"genesis: {peer} is allocated twice")
            seen.add(peer)
        object.__setattr__(self, "allocations", tuple(sorted(self.allocations)))

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "note": self.note,
                "params": {f.name: getattr(self.params, f.name) for f in fields(self.params)},
                "allocations": {p: a for p, a in self.allocations}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Genesis":
        """:raises LedgerError: missing or invalid fields, unknown parameters."""
        if not isinstance(data, Mapping) or "network" not in data:
            raise LedgerError("genesis must be an object with at least a 'network' field")
        unknown = set(data) - {"network", "note", "params", "allocations"}
        if unknown:
            raise LedgerError(f"genesis: unknown fields {sorted(unknown)}")
        params = data.get("params") or {}
        known = {f.name for f in fields(LedgerParams)}
        if not isinstance(params, Mapping) or set(params) - known:
            raise LedgerError(f"genesis: unknown params {sorted(set(params) - known)}; known: {sorted(known)}")
        allocs = data.get("allocations") or {}
        if not isinstance(allocs, Mapping):
            raise LedgerError("genesis: allocations must map PeerId -> micro-credits")
        return cls(network=data["network"], params=LedgerParams(**params),
                   allocations=tuple(allocs.items()), note=str(data.get("note", "")))

    def canonical_bytes(self) -> bytes:
        return canonical({"t": "genesis", **self.to_dict()})

    @property
    def hash(self) -> str:
        """SHA-256 (64 hex) of the canonical bytes; height-1 blocks link to it."""
        return sha256_hex(self.canonical_bytes())

    @property
    def network_id(self) -> str:
        """The network id: the first 32 hex digits of :attr:`hash`."""
        return self.hash[:32]

    @property
    def supply(self) -> int:
        return sum(a for _, a in self.allocations)


# ---------------------------------------------------------------------------- signed objects

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

@dataclass(frozen=True)
class Ticket(_Signed):
    """A requester's signed promise to pay ``executor`` up to ``price`` for ``request_id``.

    ``request_id`` names one delegation attempt (unique per requester). ``expires_ms``: the
    claim must be in a block whose ``time_ms`` is not later. Signed by ``requester``. A ticket
    (by :attr:`hash`) is claimable once: DESIGN §4's "one claim per request_id", keyed by the
    signed ticket so that a requester re-using a request_id for two executors pays both.
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

    def body(self) -> dict[str, Any]:
        return {"t": "ticket", "network": self.network, "request_id": self.request_id,
                "requester": self.requester, "executor": self.executor, "price": self.price,
                "expires_ms": self.expires_ms}

    def check(self, network_id: str) -> None:
        """:raises InvalidBlock: malformed, other network, or bad signature."""
        if self.network != network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, "ticket of another network")
        _check_peer(self.requester, "ticket requester")
        _check_peer(self.executor, "ticket executor")
        _check_amount(self.price, "ticket price")
        if not isinstance(self.request_id, str) or not 0 < len(self.request_id) <= 200:
            raise InvalidBlock(Reason.MALFORMED, "ticket request_id must be 1..200 characters")
        if not isinstance(self.expires_ms, int) or self.expires_ms < 0:
            raise InvalidBlock(Reason.MALFORMED, "ticket expires_ms must be >= 0")
        if not self.signature_ok():
            raise InvalidBlock(Reason.TICKET_SIGNATURE, f"ticket {self.request_id} not signed by its requester")


@dataclass(frozen=True)
class DuelTicket(_Signed):
    """A requester's signed duel: ``executors`` (A, B) answer the same request, ``judges`` vote.

    ``executor_bond``: what the losing executor forfeits to the winner; ``judge_bond``: the base
    of judge penalties. Signed by ``requester``.
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

    def body(self) -> dict[str, Any]:
        return {"t": "duel", "network": self.network, "duel_id": self.duel_id, "requester": self.requester,
                "executors": list(self.executors), "judges": list(self.judges),
                "executor_bond": self.executor_bond, "judge_bond": self.judge_bond, "expires_ms": self.expires_ms}

    def check(self, network_id: str) -> None:
        """:raises InvalidBlock: malformed, other network, or bad signature."""
        if self.network != network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, "duel ticket of another network")
        _check_peer(self.requester, "duel requester")
        if len(self.executors) != 2 or self.executors[0] == self.executors[1]:
            raise InvalidBlock(Reason.MALFORMED, "a duel has two distinct executors")
        for p in (*self.executors, *self.judges):
            _check_peer(p, "duel participant")
        if len(set(self.judges)) != len(self.judges) or set(self.judges) & {*self.executors, self.requester}:
            raise InvalidBlock(Reason.MALFORMED, "judges must be distinct and exclude requester and executors")
        _check_amount(self.executor_bond, "executor_bond")
        _check_amount(self.judge_bond, "judge_bond")
        if not self.signature_ok():
            raise InvalidBlock(Reason.DUEL_SIGNATURE, f"duel {self.duel_id} not signed by its requester")


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


# ---------------------------------------------------------------------------- entries

@dataclass(frozen=True)
class Stake:
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "stake", "amount": self.amount}


@dataclass(frozen=True)
class Unstake:
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "unstake", "amount": self.amount}


@dataclass(frozen=True)
class Withdraw:
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "withdraw", "amount": self.amount}


@dataclass(frozen=True)
class Transfer:
    to: str
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "transfer", "to": self.to, "amount": self.amount}


@dataclass(frozen=True)
class Claim:
    """The executor's claim: ``amount`` (<= ``ticket.price``) for serving the ticket's request;
    ``response_digest`` is SHA-256 (hex) of the full response text."""

    ticket: Ticket
    response_digest: str
    amount: int

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "claim", "ticket": self.ticket.to_canonical(), "response_digest": self.response_digest,
                "amount": self.amount}


@dataclass(frozen=True)
class Void:
    """The requester withdraws ``ticket`` (its attempt failed or was cancelled): never claimable."""

    ticket: Ticket

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "void", "ticket": self.ticket.to_canonical()}


@dataclass(frozen=True)
class Verdict:
    """Settlement of a duel, authored by its requester; see :func:`settle_duel`."""

    duel: DuelTicket
    receipts: tuple[Receipt, ...]
    votes: tuple[Vote, ...]

    def to_canonical(self) -> dict[str, Any]:
        return {"t": "verdict", "duel": self.duel.to_canonical(),
                "receipts": [r.to_canonical() for r in self.receipts],
                "votes": [v.to_canonical() for v in self.votes]}


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
class EquivocationProof:
    """Two validly signed headers by one author at one height with different hashes."""

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

    def normalized(self) -> "EquivocationProof":
        """The same proof with headers in hash order (so equal proofs compare equal)."""
        return self if self.a.hash < self.b.hash else EquivocationProof(self.b, self.a)


Entry = Union[Stake, Unstake, Withdraw, Transfer, Claim, Void, Verdict, EquivocationProof]


def entries_hash(entries: Iterable[Entry]) -> str:
    return sha256_hex(canonical([e.to_canonical() for e in entries]))


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
    out = replace(blk, signature=sig)
    return out


# ---------------------------------------------------------------------------- duel settlement

def tally_duel(duel: DuelTicket, votes: Iterable[Vote]) -> tuple[str, dict[str, str]]:
    """Outcome of a duel: (``"A"``, ``"B"`` or ``"tie"``, the counted votes judge -> choice).

    Counts each listed judge's first valid vote on this duel (unlisted, repeated, badly signed
    or other-duel votes are ignored); more A than B votes: A wins, more B: B, equal: tie.
    """
    dh = duel.hash
    judges = set(duel.judges)
    chosen: dict[str, str] = {}
    for v in votes:
        if v.judge in judges and v.duel_hash == dh and v.judge not in chosen and v.valid():
            chosen[v.judge] = v.choice
    a = sum(1 for c in chosen.values() if c == "A")
    b = sum(1 for c in chosen.values() if c == "B")
    return ("A" if a > b else "B" if b > a else "tie"), chosen


def settle_duel(duel: DuelTicket, votes: Iterable[Vote], params: LedgerParams) -> dict[str, tuple[int, int]]:
    """Credit movements of a settled duel: PeerId -> (balance delta, stake delta).

    Counts each listed judge's valid vote once (A, B or abstain; unlisted or badly signed votes
    are ignored: a judge that never accepted is not counted). More A than B votes: executor A
    wins; more B: B wins; equal: nothing moves. The loser's stake loses ``executor_bond``, which
    the winner receives. Judges who voted for the loser lose ``minority_penalty_pct`` % of
    ``judge_bond`` from their stake, abstaining judges ``abstain_penalty_pct`` %; the pool is
    split equally among the majority judges (the remainder to the first by PeerId).
    Source: DESIGN §6 after the paper's judge incentives. Sums to zero.
    """
    win_side, chosen = tally_duel(duel, votes)
    if win_side == "tie":
        return {}
    winner, loser = duel.executors if win_side == "A" else duel.executors[::-1]
    out: dict[str, list[int]] = {}

    def add(peer: str, dbal: int, dstake: int) -> None:
        cur = out.setdefault(peer, [0, 0])
        cur[0] += dbal
        cur[1] += dstake

    add(loser, 0, -duel.executor_bond)
    add(winner, duel.executor_bond, 0)
    majority = sorted(j for j, c in chosen.items() if c == win_side)
    pool = 0
    for j, c in sorted(chosen.items()):
        pct = 0 if c == win_side else (params.abstain_penalty_pct if c == "abstain" else params.minority_penalty_pct)
        penalty = duel.judge_bond * pct // 100
        if penalty:
            add(j, 0, -penalty)
            pool += penalty
    if pool:
        share, rest = divmod(pool, len(majority))
        for i, j in enumerate(majority):
            add(j, share + (rest if i == 0 else 0), 0)
    return {p: (d[0], d[1]) for p, d in out.items() if d != [0, 0]}


# ---------------------------------------------------------------------------- replicated state

@dataclass(frozen=True)
class Account:
    """One account in a node's view. Amounts in micro-credits; ``height``: the author's last
    block counted; ``in_debt``: balance below ``-overdraft``; ``burned``: stake and unbonding
    destroyed after an equivocation; ``earned``/``spent``: paid claims as executor/requester;
    ``duels_*``: settled duels as an executor; ``judge_*``: counted votes as a judge, by whether
    they sided with the outcome (a vote in a tied duel counts as neither majority nor minority
    unless it abstained)."""

    peer_id: str
    balance: int
    stake: int
    unbonding: int
    height: int
    in_debt: bool
    equivocated: bool
    burned: int
    earned: int = 0
    spent: int = 0
    duels_won: int = 0
    duels_lost: int = 0
    duels_tied: int = 0
    judge_majority: int = 0
    judge_minority: int = 0
    judge_abstained: int = 0

    @property
    def duels(self) -> int:
        """Settled duels this peer answered in."""
        return self.duels_won + self.duels_lost + self.duels_tied

    @property
    def win_rate(self) -> float | None:
        """(won + tied / 2) / duels, ties counting half as in pairwise-comparison win rates;
        None before the first settled duel."""
        return None if not self.duels else (self.duels_won + 0.5 * self.duels_tied) / self.duels

    @property
    def selectable_stake(self) -> int:
        """Stake that counts for executor selection: 0 when in debt or equivocated."""
        return 0 if self.in_debt or self.equivocated else max(0, self.stake)

    def to_dict(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "balance": self.balance, "stake": self.stake,
                "unbonding": self.unbonding, "height": self.height, "in_debt": self.in_debt,
                "equivocated": self.equivocated, "burned": self.burned, "earned": self.earned,
                "spent": self.spent, "duels": self.duels, "duels_won": self.duels_won,
                "duels_lost": self.duels_lost, "duels_tied": self.duels_tied,
                "win_rate": None if self.win_rate is None else round(self.win_rate, 4),
                "judge_majority": self.judge_majority, "judge_minority": self.judge_minority,
                "judge_abstained": self.judge_abstained}


@dataclass
class _Chain:
    """One author's accepted chain and the chain-local facts its validity rules need."""

    blocks: list[Block] = field(default_factory=list)
    own_stake: int = 0                      # Stake - Unstake of this chain's own entries
    unbonds: list[tuple[int, int]] = field(default_factory=list)  # (maturity_ms, amount)
    withdrawn: int = 0
    claimed: set[str] = field(default_factory=set)
    voided: set[str] = field(default_factory=set)
    settled: set[str] = field(default_factory=set)

    @property
    def height(self) -> int:
        return len(self.blocks)

    def tip_hash(self, genesis_hash: str) -> str:
        return self.blocks[-1].hash if self.blocks else genesis_hash

    @property
    def last_time(self) -> int:
        return self.blocks[-1].time_ms if self.blocks else 0

    def matured(self, time_ms: int) -> int:
        return sum(a for m, a in self.unbonds if m <= time_ms) - self.withdrawn


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Ledger.add_block` did. ``status``: ``applied`` (with ``applied`` blocks, the
    given one and any pending successors it unlocked), ``duplicate``, ``pending`` (a gap below
    it: pull ``author`` from ``have + 1``), ``rejected`` (``reason``), ``equivocation``
    (``proof`` is new and should be gossiped)."""

    status: str
    reason: str = ""
    applied: tuple[Block, ...] = ()
    proof: EquivocationProof | None = None
    have: int = 0


class Ledger:
    """A replica of the ledger: accepted chains, pending out-of-order blocks, and the fold.

    Thread-unsafe; one per node. ``max_pending``: blocks held while their predecessors are
    missing (beyond it, new out-of-order blocks are refused and must be re-pulled).
    """

    def __init__(self, genesis: Genesis, *, max_pending: int = 100_000):
        self.genesis = genesis
        self.params = genesis.params
        self.network_id = genesis.network_id
        self.max_pending = max_pending
        self._chains: dict[str, _Chain] = {}
        self._pending: dict[str, dict[int, dict[str, Block]]] = {}
        self._n_pending = 0
        self._proofs: dict[str, EquivocationProof] = {}   # author -> lowest-height proof
        # signed headers refused by the chain checks: a different block at the same height is
        # still an equivocation, whatever order the two arrive in
        self._refused: dict[tuple[str, int], BlockHeader] = {}
        self._seen_proofs: set[tuple[str, str]] = set()
        self._version = 0          # bumped on every accepted block or proof (digest cache)
        self._digest_key: tuple[int] | None = None
        self._digest = ""
        self._reset_fold()

    # ------------------------------------------------------------ fold
    def _reset_fold(self) -> None:
        self._balance: dict[str, int] = dict(self.genesis.allocations)
        self._stake: dict[str, int] = {}
        self._unbonding: dict[str, int] = {}
        self._claims: dict[str, tuple[str, str, int]] = {}   # ticket hash -> (requester, executor, amount)
        self._earned: dict[str, int] = {}   # paid claims, by executor
        self._spent: dict[str, int] = {}    # paid claims, by requester
        self._voids: set[str] = set()
        # PeerId -> [won, lost, tied, judge majority, judge minority, judge abstained]
        self._duel_stats: dict[str, list[int]] = {}
        self.duels_settled = 0
        self.entries_applied = 0

    def _add(self, d: dict[str, int], peer: str, delta: int) -> None:
        v = d.get(peer, 0) + delta
        d[peer] = v

    def _apply_entry(self, author: str, e: Entry) -> None:
        bal = self._balance
        if isinstance(e, Claim):
            h = e.ticket.hash
            self._claims[h] = (e.ticket.requester, author, e.amount)
            if h not in self._voids:
                self._pay(e.ticket.requester, author, e.amount)
        elif isinstance(e, Void):
            h = e.ticket.hash
            if h not in self._voids:
                self._voids.add(h)
                c = self._claims.get(h)
                if c is not None:  # undo the claim: the void wins
                    self._pay(c[0], c[1], -c[2])
        elif isinstance(e, Stake):
            self._add(bal, author, -e.amount)
            self._add(self._stake, author, e.amount)
        elif isinstance(e, Unstake):
            self._add(self._stake, author, -e.amount)
            self._add(self._unbonding, author, e.amount)
        elif isinstance(e, Withdraw):
            self._add(self._unbonding, author, -e.amount)
            self._add(bal, author, e.amount)
        elif isinstance(e, Transfer):
            self._add(bal, author, -e.amount)
            self._add(bal, e.to, e.amount)
        elif isinstance(e, Verdict):
            for peer, (dbal, dstake) in settle_duel(e.duel, e.votes, self.params).items():
                if dbal:
                    self._add(bal, peer, dbal)
                if dstake:
                    self._add(self._stake, peer, dstake)
            self._count_duel(e)
        self.entries_applied += 1

    def _count_duel(self, e: Verdict) -> None:
        side, chosen = tally_duel(e.duel, e.votes)
        a, b = e.duel.executors
        self.duels_settled += 1

        def bump(peer: str, i: int) -> None:
            self._duel_stats.setdefault(peer, [0] * 6)[i] += 1

        if side == "tie":
            bump(a, 2)
            bump(b, 2)
        else:
            bump(a if side == "A" else b, 0)
            bump(b if side == "A" else a, 1)
        for judge, choice in chosen.items():
            if choice == "abstain":
                bump(judge, 5)
            elif side != "tie":
                bump(judge, 3 if choice == side else 4)

    def _pay(self, requester: str, executor: str, amount: int) -> None:
        self._add(self._balance, requester, -amount)
        self._add(self._balance, executor, amount)
        self._add(self._spent, requester, amount)
        self._add(self._earned, executor, amount)

    def _refold(self) -> None:
        """Recompute the whole state from the accepted chains (after an equivocation cut)."""
        self._reset_fold()
        for author, ch in self._chains.items():
            for blk in ch.blocks:
                for e in blk.entries:
                    self._apply_entry(author, e)

    # ------------------------------------------------------------ validation
    def check_static(self, block: Block) -> None:
        """Checks that need nothing but the block: network, sizes, entry shapes, all signatures.

        :raises InvalidBlock: with the rejection reason.
        """
        if block.network != self.network_id:
            raise InvalidBlock(Reason.WRONG_NETWORK, f"block of network {str(block.network)[:40]!r}")
        try:
            _check_peer(block.author, "block author")
        except InvalidBlock:
            raise InvalidBlock(Reason.BAD_AUTHOR, f"author {str(block.author)[:60]!r} is not an Ed25519 PeerId")
        if not isinstance(block.height, int) or block.height < 1:
            raise InvalidBlock(Reason.MALFORMED, "height must be >= 1")
        if not isinstance(block.time_ms, int) or block.time_ms < 0:
            raise InvalidBlock(Reason.MALFORMED, "time_ms must be >= 0")
        _check_hex(block.prev_hash, "prev_hash")
        if len(block.entries) > self.params.max_block_entries:
            raise InvalidBlock(Reason.TOO_MANY_ENTRIES, f"{len(block.entries)} > {self.params.max_block_entries}")
        # cheap checks first: a forged or oversized block must not cost one verify per entry
        size = block.canonical_size()
        if size > self.params.max_block_bytes:
            raise InvalidBlock(Reason.OVERSIZED, f"{size} bytes > {self.params.max_block_bytes}")
        if not block.header.signature_valid():
            raise InvalidBlock(Reason.BAD_SIGNATURE, f"block {block.height} not signed by {block.author}")
        for e in block.entries:
            self._check_entry_static(block, e)

    def _check_entry_static(self, block: Block, e: Entry) -> None:
        author = block.author
        if isinstance(e, (Stake, Unstake, Withdraw)):
            _check_amount(e.amount)
        elif isinstance(e, Transfer):
            _check_amount(e.amount)
            _check_peer(e.to, "transfer recipient")
            if e.to == author:
                raise InvalidBlock(Reason.SELF_TRANSFER, "transfer to oneself")
        elif isinstance(e, Claim):
            e.ticket.check(self.network_id)
            if e.ticket.executor != author:
                raise InvalidBlock(Reason.NOT_TICKET_EXECUTOR, f"ticket {e.ticket.request_id} names another executor")
            _check_amount(e.amount, "claim amount")
            _check_hex(e.response_digest, "response_digest")
            if e.amount > e.ticket.price:
                raise InvalidBlock(Reason.AMOUNT_EXCEEDS_PRICE, f"{e.amount} > {e.ticket.price}")
            if block.time_ms > e.ticket.expires_ms:
                raise InvalidBlock(Reason.TICKET_EXPIRED, f"ticket {e.ticket.request_id} expired")
        elif isinstance(e, Void):
            e.ticket.check(self.network_id)
            if e.ticket.requester != author:
                raise InvalidBlock(Reason.NOT_TICKET_REQUESTER, "only the requester may void its ticket")
        elif isinstance(e, Verdict):
            e.duel.check(self.network_id)
            if e.duel.requester != author:
                raise InvalidBlock(Reason.NOT_DUEL_REQUESTER, "only the duel's requester settles it")
            if block.time_ms > e.duel.expires_ms:
                raise InvalidBlock(Reason.TICKET_EXPIRED, f"duel {e.duel.duel_id} expired before settlement")
            dh = e.duel.hash
            if {r.executor for r in e.receipts} != set(e.duel.executors) or len(e.receipts) != 2:
                raise InvalidBlock(Reason.RECEIPT_INVALID, "a verdict needs one receipt from each executor")
            for r in e.receipts:
                _check_hex(r.response_digest, "receipt response_digest")
                if r.duel_hash != dh or not r.valid():
                    raise InvalidBlock(Reason.RECEIPT_INVALID, f"receipt of {r.executor} invalid")
            judges = set(e.duel.judges)
            seen: set[str] = set()
            for v in e.votes:
                if v.judge not in judges or v.judge in seen or v.duel_hash != dh or not v.valid():
                    raise InvalidBlock(Reason.VOTE_INVALID, f"vote of {str(v.judge)[:60]} invalid or repeated")
                seen.add(v.judge)
        elif isinstance(e, EquivocationProof):
            e.check(self.network_id)
        else:
            raise InvalidBlock(Reason.MALFORMED, f"unknown entry type {type(e).__name__}")

    def _check_chain(self, block: Block, ch: _Chain) -> None:
        """Checks against the author's own chain below ``block`` (which must be its successor)."""
        if block.prev_hash != ch.tip_hash(self.genesis.hash):
            raise InvalidBlock(Reason.WRONG_PREV_HASH, f"block {block.height} does not extend {block.author}'s chain")
        if block.time_ms < ch.last_time:
            raise InvalidBlock(Reason.TIME_BACKWARDS, f"time_ms {block.time_ms} < previous {ch.last_time}")
        own_stake, withdrawn = ch.own_stake, ch.withdrawn
        unbonds = list(ch.unbonds)
        seen_tickets: set[str] = set()
        seen_duels: set[str] = set()
        for e in block.entries:
            if isinstance(e, Stake):
                own_stake += e.amount
            elif isinstance(e, Unstake):
                if e.amount > own_stake:
                    raise InvalidBlock(Reason.UNSTAKE_EXCEEDS_STAKE, f"unstake {e.amount} > staked {own_stake}")
                own_stake -= e.amount
                unbonds.append((block.time_ms + self.params.unbonding_ms, e.amount))
            elif isinstance(e, Withdraw):
                matured = sum(a for m, a in unbonds if m <= block.time_ms) - withdrawn
                if e.amount > matured:
                    raise InvalidBlock(Reason.NOT_MATURED, f"withdraw {e.amount} > matured unbonding {matured}")
                withdrawn += e.amount
            elif isinstance(e, (Claim, Void)):
                h = e.ticket.hash
                used = ch.claimed if isinstance(e, Claim) else ch.voided
                if h in used or (h, type(e)) in seen_tickets:
                    raise InvalidBlock(Reason.TICKET_CLAIMED, f"ticket {e.ticket.request_id} already "
                                       f"{'claimed' if isinstance(e, Claim) else 'voided'}")
                seen_tickets.add((h, type(e)))  # type: ignore[arg-type]
            elif isinstance(e, Verdict):
                h = e.duel.hash
                if h in ch.settled or h in seen_duels:
                    raise InvalidBlock(Reason.DUEL_SETTLED, f"duel {e.duel.duel_id} already settled")
                seen_duels.add(h)

    def _extend(self, ch: _Chain, block: Block) -> None:
        for e in block.entries:
            if isinstance(e, Stake):
                ch.own_stake += e.amount
            elif isinstance(e, Unstake):
                ch.own_stake -= e.amount
                ch.unbonds.append((block.time_ms + self.params.unbonding_ms, e.amount))
            elif isinstance(e, Withdraw):
                ch.withdrawn += e.amount
            elif isinstance(e, Claim):
                ch.claimed.add(e.ticket.hash)
            elif isinstance(e, Void):
                ch.voided.add(e.ticket.hash)
            elif isinstance(e, Verdict):
                ch.settled.add(e.duel.hash)
        ch.blocks.append(block)

    # ------------------------------------------------------------ adding blocks and proofs
    def cut_height(self, author: str) -> int | None:
        """Height of ``author``'s proven equivocation (its chain counts only below), or None."""
        p = self._proofs.get(author)
        return p.height if p else None

    def add_block(self, block: Block, *, verified: bool = False) -> AddResult:
        """Offer a block. ``verified=True`` skips :meth:`check_static` (blocks read back from our
        own store, already checked once). Never raises for bad input: see :class:`AddResult`."""
        author = block.author
        try:
            if not verified:
                self.check_static(block)
        except InvalidBlock as exc:
            return AddResult("rejected", exc.reason)
        if not isinstance(block.height, int) or block.height < 1:
            return AddResult("rejected", Reason.MALFORMED)
        # a proof is a self-contained fact: it counts whether or not the block carrying it is
        # ever accepted, so replicas holding the same blocks agree
        for e in block.entries:
            if isinstance(e, EquivocationProof):
                self.add_proof(e, checked=True)
        cut = self.cut_height(author)
        if cut is not None and block.height >= cut:
            return AddResult("rejected", Reason.EQUIVOCATED)
        ch = self._chains.setdefault(author, _Chain())
        # same height already accepted or pending?
        if block.height <= ch.height:
            have = ch.blocks[block.height - 1]
            if have.hash == block.hash:
                return AddResult("duplicate", have=ch.height)
            return self._equivocation(have, block)
        pend = self._pending.setdefault(author, {})
        at = pend.get(block.height, {})
        if block.hash in at:
            return AddResult("duplicate", have=ch.height)
        if at:
            other = next(iter(at.values()))
            return self._equivocation(other, block)
        if block.height > ch.height + 1:
            if self._n_pending >= self.max_pending:
                return AddResult("rejected", Reason.HEIGHT_GAP, have=ch.height)
            pend.setdefault(block.height, {})[block.hash] = block
            self._n_pending += 1
            return AddResult("pending", have=ch.height)
        refused = self._refused.get((author, block.height))
        if refused is not None and refused.hash != block.hash:
            return self._equivocation_headers(refused, block.header)
        try:
            self._check_chain(block, ch)
        except InvalidBlock as exc:
            self._refuse(block)
            return AddResult("rejected", exc.reason, have=ch.height)
        applied = [block]
        self._accept(ch, block)
        # unlock pending successors
        while (nxt := pend.get(ch.height + 1)):
            blk = next(iter(nxt.values()))
            del pend[ch.height + 1]
            self._n_pending -= 1
            refused = self._refused.get((author, blk.height))
            if refused is not None and refused.hash != blk.hash:
                self._equivocation_headers(refused, blk.header)
                break
            try:
                self._check_chain(blk, ch)
            except InvalidBlock:
                self._refuse(blk)
                break
            self._accept(ch, blk)
            applied.append(blk)
        return AddResult("applied", applied=tuple(applied), have=ch.height)

    def _accept(self, ch: _Chain, block: Block) -> None:
        self._version += 1
        self._extend(ch, block)
        for e in block.entries:
            self._apply_entry(block.author, e)

    def _refuse(self, block: Block) -> None:
        if len(self._refused) < self.max_pending:
            self._refused.setdefault((block.author, block.height), block.header)

    def _equivocation(self, have: Block, other: Block) -> AddResult:
        return self._equivocation_headers(have.header, other.header)

    def _equivocation_headers(self, have: BlockHeader, other: BlockHeader) -> AddResult:
        proof = EquivocationProof(have, other).normalized()
        new = self.add_proof(proof, checked=True)
        return AddResult("equivocation", Reason.EQUIVOCATED, proof=proof if new else None,
                         have=self.height(have.author))

    def add_proof(self, proof: EquivocationProof, *, checked: bool = False) -> bool:
        """Record an equivocation proof; the author's chain is cut at its height and the state
        refolded. Returns True if it lowered (or set) the author's cut height.

        :raises InvalidBlock: the proof is invalid (unless ``checked``).
        """
        if not checked:
            proof.check(self.network_id)
        proof = proof.normalized()
        key = (proof.a.hash, proof.b.hash)
        if key in self._seen_proofs:
            return False
        self._seen_proofs.add(key)
        author, h = proof.author, proof.height
        cur = self._proofs.get(author)
        if cur is not None and cur.height <= h:
            return False
        self._proofs[author] = proof
        self._version += 1
        ch = self._chains.get(author)
        pend = self._pending.get(author, {})
        for height in [x for x in pend if x >= h]:
            self._n_pending -= len(pend.pop(height))
        if ch is not None and ch.height >= h:
            kept = ch.blocks[: h - 1]
            new = _Chain()
            for blk in kept:
                self._extend(new, blk)
            self._chains[author] = new
            self._refold()
        return True

    # ------------------------------------------------------------ building our own blocks
    def validate_own(self, author: str, time_ms: int, entries: Iterable[Entry]) -> tuple[list[Entry], list[tuple[Entry, str]]]:
        """Split candidate entries for ``author``'s next block into (valid, [(rejected, reason)]).

        Each entry is checked as if appended after the valid ones before it.
        """
        ch = self._chains.get(author, _Chain())
        ok: list[Entry] = []
        bad: list[tuple[Entry, str]] = []
        for e in entries:
            probe = Block(self.network_id, author, ch.height + 1, ch.tip_hash(self.genesis.hash),
                          max(time_ms, ch.last_time), tuple([*ok, e]))
            try:
                self._check_entry_static(probe, e)
                self._check_chain(probe, ch)
                ok.append(e)
            except InvalidBlock as exc:
                bad.append((e, exc.reason))
        return ok, bad

    def next_block(self, author: str, time_ms: int, entries: Iterable[Entry], sign: Signer) -> Block:
        """Build and sign ``author``'s next block (not added: pass it to :meth:`add_block`).

        ``time_ms`` is raised to the previous block's time if the clock went backwards.
        """
        ch = self._chains.get(author, _Chain())
        return build_block(self.network_id, author, ch.height + 1, ch.tip_hash(self.genesis.hash),
                           max(time_ms, ch.last_time), entries, sign)

    # ------------------------------------------------------------ queries
    def height(self, author: str) -> int:
        ch = self._chains.get(author)
        return ch.height if ch else 0

    def heads_digest(self) -> str:
        """SHA-256 (hex) of every chain head and equivocation cut: replicas holding the same blocks
        have the same digest (cheap to compare in status messages)."""
        key = (self._version,)
        if self._digest_key != key:
            heads = sorted((a, h, t) for a, (h, t) in self.heads().items())
            cuts = sorted((a, p.height) for a, p in self._proofs.items())  # not which pair proved it
            self._digest = sha256_hex(canonical({"heads": heads, "cuts": cuts}))
            self._digest_key = key
        return self._digest

    def heads(self) -> dict[str, tuple[int, str]]:
        """author -> (height, tip hash) of every non-empty accepted chain."""
        return {a: (c.height, c.blocks[-1].hash) for a, c in self._chains.items() if c.blocks}

    def blocks(self, author: str, lo: int = 1, hi: int | None = None) -> list[Block]:
        """Accepted blocks of ``author`` with ``lo <= height <= hi`` (inclusive)."""
        ch = self._chains.get(author)
        if ch is None:
            return []
        hi = ch.height if hi is None else min(hi, ch.height)
        return ch.blocks[max(1, lo) - 1: hi]

    def proofs(self) -> list[EquivocationProof]:
        return list(self._proofs.values())

    def pending_count(self) -> int:
        return self._n_pending

    def matured_unbonding(self, author: str, time_ms: int) -> int:
        """Unbonding of ``author``'s own chain that a Withdraw at ``time_ms`` may take."""
        ch = self._chains.get(author)
        return ch.matured(time_ms) if ch else 0

    def is_claimed(self, ticket_hash: str) -> bool:
        return ticket_hash in self._claims

    def is_voided(self, ticket_hash: str) -> bool:
        return ticket_hash in self._voids

    def account(self, peer_id: str) -> Account:
        bal = self._balance.get(peer_id, 0)
        stake = self._stake.get(peer_id, 0)
        unb = self._unbonding.get(peer_id, 0)
        burned = 0
        eq = peer_id in self._proofs
        if eq:  # burn what it holds; a negative stake (lost bonds) stays as debt
            burned = max(0, stake) + max(0, unb)
            stake, unb = min(0, stake), min(0, unb)
        return Account(peer_id, bal, stake, unb, self.height(peer_id), bal < -self.params.overdraft, eq, burned,
                       self._earned.get(peer_id, 0), self._spent.get(peer_id, 0),
                       *self._duel_stats.get(peer_id, (0,) * 6))

    def accounts(self) -> dict[str, Account]:
        """Every account that appears anywhere (genesis, chains, counterparties), by PeerId."""
        peers = set(self._balance) | set(self._stake) | set(self._unbonding) | set(self._chains) \
            | set(self._proofs) | set(self._duel_stats)
        return {p: self.account(p) for p in sorted(peers)}

    def total_supply(self) -> int:
        """Balances + stakes + unbonding over all accounts (equals genesis supply minus burns)."""
        return sum(a.balance + a.stake + a.unbonding for a in self.accounts().values())

    def burned(self) -> int:
        return sum(a.burned for a in self.accounts().values())

    def state_hash(self) -> str:
        """SHA-256 (hex) of the canonical account table and cut heights: equal on replicas that
        hold the same valid blocks."""
        rows = [[a.peer_id, a.balance, a.stake, a.unbonding, a.height, a.burned]
                for a in self.accounts().values() if (a.balance, a.stake, a.unbonding, a.height, a.burned) != (0, 0, 0, 0, 0)]
        cuts = sorted((a, p.height) for a, p in self._proofs.items())
        return sha256_hex(canonical({"network": self.network_id, "accounts": rows, "cuts": cuts}))

    def summary(self, accounts: bool = True) -> dict[str, Any]:
        """Counts for status pages; ``accounts=False`` skips the per-account work (supply, hash)."""
        out: dict[str, Any] = {
            "network_id": self.network_id, "network": self.genesis.network, "authors": len(self.heads()),
            "blocks": sum(c.height for c in self._chains.values()), "entries": self.entries_applied,
            "pending": self._n_pending, "equivocators": sorted(self._proofs), "genesis_supply": self.genesis.supply,
            "duels_settled": self.duels_settled}
        if accounts:
            out.update(supply=self.total_supply(), burned=self.burned(), state_hash=self.state_hash())
        return out
