"""Ledger objects (:mod:`wwwserve_p2p.core.ledger`) <-> protobuf bytes (``protos/wwwserve/v1/ledger.proto``).

Used by the ledger gossip topic (:func:`encode_gossip`), the ``/wwwserve/ledger-sync/1`` stream
(:class:`SyncRequest`, :class:`SyncResponse`), the ledger store (:func:`encode_block`,
:func:`encode_entry`) and the delegation stream (:func:`encode_ticket`).

Decoders check *structure* only: the bytes parse, every required sub-message and oneof is
present, a duel names exactly two executors, and no string, byte field or list exceeds its
bound (:data:`MAX_STR`, :data:`MAX_SIG`, :data:`MAX_ENTRIES`, ...). Any failure raises
:class:`~wwwserve_p2p.errors.MalformedMessage`, never a protobuf exception. Semantics
(signatures, PeerIds, amounts, hashes, chain links) are
:meth:`wwwserve_p2p.core.ledger.Ledger.check_static`'s job.

Round trips are exact: ``decode_block(encode_block(b)) == b`` and the hashes agree, because
hashes are computed by core from canonical JSON, never from these bytes. Integers travel as
int64: encoding a value outside [-2^63, 2^63) raises :class:`MalformedMessage`.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from .._pb import ledger_pb2 as pb
from ..core.ledger import (
    Block,
    BlockHeader,
    Claim,
    CloseChannel,
    DuelBond,
    DuelRelease,
    DuelTicket,
    Entry,
    EquivocationProof,
    Receipt,
    OpenChannel,
    Receive,
    Stake,
    Ticket,
    Transfer,
    Unstake,
    Verdict,
    Void,
    Vote,
    Withdraw,
)
from ..core.ledger.signed import MAX_POOL
from ..errors import MalformedMessage

__all__ = [
    "MAX_ENTRIES", "MAX_STR", "MAX_SIG", "MAX_JUDGES", "MAX_RECEIPTS", "MAX_VOTES", "MAX_SYNC_HEADS",
    "MAX_SYNC_PROOFS", "MAX_SYNC_BLOCKS", "SYNC_KINDS", "SyncRequest", "SyncResponse",
    "encode_block", "decode_block", "encode_entry", "decode_entry", "encode_ticket", "decode_ticket",
    "encode_gossip", "decode_gossip", "encode_sync_request", "decode_sync_request",
    "encode_sync_response", "decode_sync_response",
]

#: Most entries in one decoded block (core's own cap, ``LedgerParams.max_block_entries``, is lower).
MAX_ENTRIES = 10_000
#: Longest decoded string field, in characters (64 KiB).
MAX_STR = 64 * 1024
#: Longest decoded signature, in bytes (Ed25519 signatures have 64).
MAX_SIG = 1024
#: Most judges in a duel ticket, receipts and votes in a verdict.
MAX_JUDGES = 1024
MAX_RECEIPTS = 16
MAX_VOTES = 1024
#: Most heads, proofs and blocks in one SyncResponse frame.
MAX_SYNC_HEADS = 100_000
MAX_SYNC_PROOFS = 10_000
MAX_SYNC_BLOCKS = 10_000
#: The values of :attr:`SyncRequest.kind`.
SYNC_KINDS = ("heads", "range", "snapshot", "checkpoint")
#: most checkpoints in one sync answer
MAX_SYNC_CHECKPOINTS = 1024

_KIND_TO_PB = {"heads": pb.SyncRequest.HEADS, "range": pb.SyncRequest.RANGE,
               "snapshot": pb.SyncRequest.SNAPSHOT, "checkpoint": pb.SyncRequest.CHECKPOINT}
_PB_TO_KIND = {v: k for k, v in _KIND_TO_PB.items()}


# ---------------------------------------------------------------- sync messages

@dataclass(frozen=True)
class SyncRequest:
    """First (and only) frame a requester sends on ``/wwwserve/ledger-sync/1``.

    ``kind``: ``"heads"`` (one page of chain heads ``(height, tip hash)`` and equivocation
    proofs: those of at most ``limit`` authors whose PeerId sorts after ``after``, 0 = the
    server's default page size; ``author``/``lo``/``hi`` unused) or ``"range"`` (the blocks of
    ``author`` with ``lo <= height <= hi``, inclusive). ``network_id``: the genesis' network id.
    Versions: see ``protos/wwwserve/v1/ledger.proto`` (an old peer ignores ``after``/``limit``).

    :raises ValueError: ``kind`` is not one of :data:`SYNC_KINDS`.
    """

    network_id: str
    kind: str
    author: str = ""
    lo: int = 0
    hi: int = 0
    after: str = ""
    limit: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SYNC_KINDS:
            raise ValueError(f"SyncRequest kind must be one of {SYNC_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class SyncResponse:
    """One answer frame on ``/wwwserve/ledger-sync/1``; the answer ends with ``done=True``.

    ``heads``: rows ``(author, height, tip_hash)``; ``proofs``: equivocation proofs;
    ``blocks``: blocks in ascending height; ``error``: non-empty when the request was refused;
    ``next_after``: a ``heads`` page with more authors after it: ask again with ``after`` =
    this (``""``: the last page, or an old server that does not paginate).
    """

    heads: tuple[tuple[str, int, str], ...] = ()
    proofs: tuple[EquivocationProof, ...] = ()
    blocks: tuple[Block, ...] = ()
    done: bool = False
    error: str = ""
    next_after: str = ""
    #: ``snapshot`` answers: one page of the snapshot's bytes, the page count, its hash and time
    snapshot_page: bytes = b""
    snapshot_pages: int = 0
    snapshot_hash: str = ""
    snapshot_time_ms: int = 0
    #: ``snapshot`` (first page) and ``checkpoint`` answers: attestations
    #: (:class:`~wwwserve_p2p.core.ledger.snapshot.Checkpoint`)
    checkpoints: tuple = ()


# ---------------------------------------------------------------- helpers

def _parse(cls, data: bytes, what: str):
    """Parse ``data`` as protobuf ``cls``. :raises MalformedMessage: not bytes, or undecodable."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage(f"{what} must be bytes, got {type(data).__name__}")
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
        raise MalformedMessage(f"cannot decode {what}: {exc}") from None
    return msg


def _build(fn, obj, what: str):
    """Run an encoder, turning protobuf's type/range errors into MalformedMessage."""
    try:
        return fn(obj)
    except MalformedMessage:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise MalformedMessage(f"cannot encode {what}: {exc}") from None


def _too_long(what: str, limit: int, unit: str = "characters") -> MalformedMessage:
    return MalformedMessage(f"{what} is longer than {limit} {unit}")


def _s(value: str, what: str) -> str:
    if len(value) > MAX_STR:
        raise _too_long(what, MAX_STR)
    return value


def _sig(value: bytes, what: str) -> bytes:
    if len(value) > MAX_SIG:
        raise _too_long(f"{what} signature", MAX_SIG, "bytes")
    return value


# ---------------------------------------------------------------- encoders (domain -> pb)

def _put_ticket(m, t: Ticket) -> None:
    m.network = t.network
    m.request_id = t.request_id
    m.requester = t.requester
    m.executor = t.executor
    m.price = t.price
    m.expires_ms = t.expires_ms
    m.signature = t.signature
    m.issued_ms = t.issued_ms
    if t.channel or t.seq or t.total:
        m.channel = t.channel
        m.seq = t.seq
        m.total = t.total


def _put_duel(m, d: DuelTicket) -> None:
    m.network = d.network
    m.duel_id = d.duel_id
    m.requester = d.requester
    m.executors.extend(d.executors)
    m.judges.extend(d.judges)
    m.executor_bond = d.executor_bond
    m.judge_bond = d.judge_bond
    m.expires_ms = d.expires_ms
    m.signature = d.signature
    m.issued_ms = d.issued_ms
    for peer, stake in d.pool:
        e = m.pool.add()
        e.peer, e.stake = peer, stake
    m.judges_k = d.judges_k


def _put_receipt(m, r: Receipt) -> None:
    m.executor = r.executor
    m.duel_hash = r.duel_hash
    m.response_digest = r.response_digest
    m.signature = r.signature


def _put_vote(m, v: Vote) -> None:
    m.judge = v.judge
    m.duel_hash = v.duel_hash
    m.choice = v.choice
    m.signature = v.signature


def _put_header(m, h: BlockHeader) -> None:
    m.network = h.network
    m.author = h.author
    m.height = h.height
    m.prev_hash = h.prev_hash
    m.time_ms = h.time_ms
    m.entries_hash = h.entries_hash
    m.signature = h.signature


def _put_proof(m, p: EquivocationProof) -> None:
    if not isinstance(p.a, BlockHeader) or not isinstance(p.b, BlockHeader):
        raise MalformedMessage("an EquivocationProof holds two BlockHeaders")
    _put_header(m.a, p.a)
    _put_header(m.b, p.b)


def _put_entry(m, e: Entry) -> None:
    t = type(e)
    if t is Claim:
        c = m.claim
        _put_ticket(c.ticket, e.ticket)
        c.response_digest = e.response_digest
        c.amount = e.amount
    elif t is Stake:
        m.stake.amount = e.amount
    elif t is Unstake:
        m.unstake.amount = e.amount
    elif t is Withdraw:
        m.withdraw.amount = e.amount
    elif t is Transfer:
        m.transfer.to = e.to
        m.transfer.amount = e.amount
    elif t is Void:
        _put_ticket(m.void.ticket, e.ticket)
    elif t is Verdict:
        v = m.verdict
        _put_duel(v.duel, e.duel)
        for r in e.receipts:
            _put_receipt(v.receipts.add(), r)
        for x in e.votes:
            _put_vote(v.votes.add(), x)
    elif t is EquivocationProof:
        _put_proof(m.equivocation, e)
    elif t is OpenChannel:
        o = m.open_channel
        o.executor = e.executor
        o.deposit = e.deposit
        o.expires_ms = e.expires_ms
        o.nonce = e.nonce
    elif t is CloseChannel:
        c = m.close_channel
        c.channel = e.channel
        c.witness_height = e.witness_height
        c.witness_hash = e.witness_hash
    elif t is DuelBond:
        _put_duel(m.duel_bond.duel, e.duel)
    elif t is DuelRelease:
        _put_duel(m.duel_release.duel, e.duel)
    elif t is Receive:
        if not isinstance(e.block, Block):
            raise MalformedMessage("a Receive carries a Block")
        _put_block(m.receive.block, e.block)
        m.receive.block.SetInParent()
        m.receive.index = e.index
    else:
        raise MalformedMessage(f"not a ledger entry: {t.__name__}")
    # the oneof must be set even when every field of the entry is a default (e.g. Stake(0))
    if m.WhichOneof("kind") is None:
        getattr(m, _ONEOF_NAME[t]).SetInParent()


_ONEOF_NAME = {Stake: "stake", Unstake: "unstake", Withdraw: "withdraw", Transfer: "transfer",
               Claim: "claim", Void: "void", Verdict: "verdict", EquivocationProof: "equivocation",
               Receive: "receive", OpenChannel: "open_channel", CloseChannel: "close_channel",
               DuelBond: "duel_bond", DuelRelease: "duel_release"}


def _put_block(m, b: Block) -> None:
    if len(b.entries) > MAX_ENTRIES:
        raise MalformedMessage(f"block has {len(b.entries)} entries, more than {MAX_ENTRIES}")
    m.network = b.network
    m.author = b.author
    m.height = b.height
    m.prev_hash = b.prev_hash
    m.time_ms = b.time_ms
    m.signature = b.signature
    add = m.entries.add
    for e in b.entries:
        _put_entry(add(), e)


# ---------------------------------------------------------------- decoders (pb -> domain)

def _ticket(m, what: str = "ticket") -> Ticket:
    s = m.signature
    if len(s) > MAX_SIG:
        raise _too_long(f"{what} signature", MAX_SIG, "bytes")
    network, request_id, requester, executor = m.network, m.request_id, m.requester, m.executor
    if len(network) > MAX_STR or len(request_id) > MAX_STR or len(requester) > MAX_STR or len(executor) > MAX_STR:
        raise _too_long(f"a {what} field", MAX_STR)
    if len(m.channel) > MAX_STR:
        raise _too_long(f"a {what} field", MAX_STR)
    return Ticket(network, request_id, requester, executor, m.price, m.expires_ms, s, m.issued_ms,
                  m.channel, m.seq, m.total)


def _duel(m) -> DuelTicket:
    if len(m.executors) != 2:
        raise MalformedMessage(f"a duel ticket names exactly 2 executors, got {len(m.executors)}")
    if len(m.judges) > MAX_JUDGES:
        raise MalformedMessage(f"a duel ticket names more than {MAX_JUDGES} judges")
    return DuelTicket(_s(m.network, "duel network"), _s(m.duel_id, "duel_id"), _s(m.requester, "duel requester"),
                      (_s(m.executors[0], "duel executor"), _s(m.executors[1], "duel executor")),
                      tuple(_s(j, "duel judge") for j in m.judges),
                      m.executor_bond, m.judge_bond, m.expires_ms, _sig(m.signature, "duel"), m.issued_ms,
                      _pool(m.pool), m.judges_k)


def _pool(entries) -> tuple[tuple[str, int], ...]:
    if len(entries) > MAX_POOL:
        raise MalformedMessage(f"a duel's judge pool has more than {MAX_POOL} entries")
    return tuple((_s(e.peer, "judge pool member"), e.stake) for e in entries)


def _header(m, what: str) -> BlockHeader:
    return BlockHeader(_s(m.network, f"{what} network"), _s(m.author, f"{what} author"), m.height,
                       _s(m.prev_hash, f"{what} prev_hash"), m.time_ms,
                       _s(m.entries_hash, f"{what} entries_hash"), _sig(m.signature, what))


def _proof(m) -> EquivocationProof:
    if not m.HasField("a") or not m.HasField("b"):
        raise MalformedMessage("an equivocation proof needs both headers a and b")
    return EquivocationProof(_header(m.a, "proof header a"), _header(m.b, "proof header b"))


def _verdict(m) -> Verdict:
    if not m.HasField("duel"):
        raise MalformedMessage("verdict without duel ticket")
    if len(m.receipts) > MAX_RECEIPTS:
        raise MalformedMessage(f"verdict has more than {MAX_RECEIPTS} receipts")
    if len(m.votes) > MAX_VOTES:
        raise MalformedMessage(f"verdict has more than {MAX_VOTES} votes")
    return Verdict(_duel(m.duel), tuple(_receipt(r) for r in m.receipts), tuple(_vote(v) for v in m.votes))


def _receipt(r) -> Receipt:
    return Receipt(_s(r.executor, "receipt executor"), _s(r.duel_hash, "receipt duel_hash"),
                   _s(r.response_digest, "receipt response_digest"), _sig(r.signature, "receipt"))


def _vote(v) -> Vote:
    return Vote(_s(v.judge, "vote judge"), _s(v.duel_hash, "vote duel_hash"), _s(v.choice, "vote choice"),
                _sig(v.signature, "vote"))


def _claim(c) -> Claim:
    if not c.HasField("ticket"):
        raise MalformedMessage("claim without ticket")
    d = c.response_digest
    if len(d) > MAX_STR:
        raise _too_long("claim response_digest", MAX_STR)
    return Claim(_ticket(c.ticket, "claim ticket"), d, c.amount)


def _void(v) -> Void:
    if not v.HasField("ticket"):
        raise MalformedMessage("void without ticket")
    return Void(_ticket(v.ticket, "void ticket"))


def _duel_of(m, what: str) -> DuelTicket:
    if not m.HasField("duel"):
        raise MalformedMessage(f"{what} without duel ticket")
    return _duel(m.duel)


def _receive(r) -> Receive:
    if not r.HasField("block"):
        raise MalformedMessage("receive without the sender's block")
    return Receive(_block(r.block), r.index)


_DECODE_ENTRY = {
    "open_channel": lambda m: OpenChannel(_s(m.open_channel.executor, "channel executor"), m.open_channel.deposit,
                                          m.open_channel.expires_ms, m.open_channel.nonce),
    "close_channel": lambda m: CloseChannel(_s(m.close_channel.channel, "channel"), m.close_channel.witness_height,
                                            _s(m.close_channel.witness_hash, "close witness_hash")),
    "claim": lambda m: _claim(m.claim),
    "stake": lambda m: Stake(m.stake.amount),
    "unstake": lambda m: Unstake(m.unstake.amount),
    "withdraw": lambda m: Withdraw(m.withdraw.amount),
    "transfer": lambda m: Transfer(_s(m.transfer.to, "transfer recipient"), m.transfer.amount),
    "void": lambda m: _void(m.void),
    "verdict": lambda m: _verdict(m.verdict),
    "equivocation": lambda m: _proof(m.equivocation),
    "receive": lambda m: _receive(m.receive),
    "duel_bond": lambda m: DuelBond(_duel_of(m.duel_bond, "duel bond")),
    "duel_release": lambda m: DuelRelease(_duel_of(m.duel_release, "duel release")),
}


def _entry(m) -> Entry:
    kind = m.WhichOneof("kind")
    if kind is None:
        raise MalformedMessage("ledger entry without a kind (empty or unknown oneof)")
    return _DECODE_ENTRY[kind](m)


def _block(m) -> Block:
    n = len(m.entries)
    if n > MAX_ENTRIES:
        raise MalformedMessage(f"block has {n} entries, more than {MAX_ENTRIES}")
    network, author, prev = m.network, m.author, m.prev_hash
    if len(network) > MAX_STR or len(author) > MAX_STR or len(prev) > MAX_STR:
        raise _too_long("a block header field", MAX_STR)
    dec = _DECODE_ENTRY
    entries = []
    append = entries.append
    for e in m.entries:
        kind = e.WhichOneof("kind")
        if kind is None:
            raise MalformedMessage("ledger entry without a kind (empty or unknown oneof)")
        append(dec[kind](e))
    return Block(network, author, m.height, prev, m.time_ms, tuple(entries), _sig(m.signature, "block"))


# ---------------------------------------------------------------- public API

def encode_block(b: Block) -> bytes:
    """Serialise a :class:`~wwwserve_p2p.core.ledger.Block` (with its entries and signature).

    :raises MalformedMessage: not encodable (more than :data:`MAX_ENTRIES` entries, an unknown
        entry type, an integer outside int64, a non-str/bytes field).
    """
    def build(b: Block) -> bytes:
        m = pb.Block()
        _put_block(m, b)
        return m.SerializeToString()
    return _build(build, b, "Block")


def decode_block(data: bytes) -> Block:
    """Parse a block serialised by :func:`encode_block` (structure only; see module docs).

    :raises MalformedMessage: undecodable, an entry without a kind, a missing ticket/duel/header,
        a duel without exactly two executors, or a field or list over its bound.
    """
    return _block(_parse(pb.Block, data, "Block"))


def encode_entry(e: Entry) -> bytes:
    """Serialise one ledger entry (``Stake`` ... ``EquivocationProof``), e.g. for the pending queue.

    :raises MalformedMessage: not an entry type or not encodable.
    """
    def build(e: Entry) -> bytes:
        m = pb.Entry()
        _put_entry(m, e)
        return m.SerializeToString()
    return _build(build, e, "Entry")


def decode_entry(data: bytes) -> Entry:
    """Parse one entry serialised by :func:`encode_entry`.

    :raises MalformedMessage: undecodable, no kind set, or a field over its bound.
    """
    return _entry(_parse(pb.Entry, data, "Entry"))


def encode_ticket(t: Ticket) -> bytes:
    """Serialise a signed :class:`~wwwserve_p2p.core.ledger.Ticket`.

    :raises MalformedMessage: not encodable (wrong field types, integer outside int64).
    """
    def build(t: Ticket) -> bytes:
        if not isinstance(t, Ticket):
            raise MalformedMessage(f"not a Ticket: {type(t).__name__}")
        m = pb.Ticket()
        _put_ticket(m, t)
        return m.SerializeToString()
    return _build(build, t, "Ticket")


def decode_ticket(data: bytes) -> Ticket:
    """Parse a ticket serialised by :func:`encode_ticket` (signature not checked: ``Ticket.check``).

    :raises MalformedMessage: undecodable or a field over its bound.
    """
    return _ticket(_parse(pb.Ticket, data, "Ticket"))


def encode_gossip(item: Block | EquivocationProof) -> bytes:
    """Serialise a message of the ledger gossip topic: a block or an equivocation proof.

    :raises MalformedMessage: neither a Block nor an EquivocationProof, or not encodable.
    """
    def build(item) -> bytes:
        m = pb.LedgerGossip()
        if isinstance(item, Block):
            _put_block(m.block, item)
            m.block.SetInParent()
        elif isinstance(item, EquivocationProof):
            _put_proof(m.proof, item)
        else:
            raise MalformedMessage(f"ledger gossip carries a Block or an EquivocationProof, not {type(item).__name__}")
        return m.SerializeToString()
    return _build(build, item, "LedgerGossip")


def decode_gossip(data: bytes) -> Block | EquivocationProof:
    """Parse a ledger gossip message.

    :raises MalformedMessage: undecodable, neither kind set, or a malformed block/proof.
    """
    m = _parse(pb.LedgerGossip, data, "LedgerGossip")
    kind = m.WhichOneof("kind")
    if kind == "block":
        return _block(m.block)
    if kind == "proof":
        return _proof(m.proof)
    raise MalformedMessage("ledger gossip without a block or proof")


def encode_sync_request(req: SyncRequest) -> bytes:
    """Serialise a :class:`SyncRequest`.

    :raises MalformedMessage: a field of the wrong type or out of int64 range.
    """
    def build(req: SyncRequest) -> bytes:
        return pb.SyncRequest(network_id=req.network_id, kind=_KIND_TO_PB[req.kind], author=req.author,
                              lo=req.lo, hi=req.hi, after=req.after, limit=req.limit).SerializeToString()
    return _build(build, req, "SyncRequest")


def decode_sync_request(data: bytes) -> SyncRequest:
    """Parse a :class:`SyncRequest`.

    :raises MalformedMessage: undecodable; ``kind`` missing or unknown; a ``"range"`` request
        without author or with ``lo < 0`` or ``hi < lo``; a string over :data:`MAX_STR`.
    """
    m = _parse(pb.SyncRequest, data, "SyncRequest")
    kind = _PB_TO_KIND.get(m.kind)
    if kind is None:
        raise MalformedMessage(f"SyncRequest kind {m.kind} is not heads, range, snapshot or checkpoint")
    if kind in ("snapshot", "checkpoint") and m.lo < 0:
        raise MalformedMessage(f"a {kind} SyncRequest needs lo >= 0")
    if kind == "range":
        if not m.author:
            raise MalformedMessage("a range SyncRequest needs an author")
        if m.lo < 0 or m.hi < m.lo:
            raise MalformedMessage(f"a range SyncRequest needs 0 <= lo <= hi, got lo={m.lo} hi={m.hi}")
    return SyncRequest(_s(m.network_id, "network_id"), kind, _s(m.author, "author"), m.lo, m.hi,
                       _s(m.after, "after"), m.limit)


def encode_sync_response(resp: SyncResponse) -> bytes:
    """Serialise a :class:`SyncResponse`.

    :raises MalformedMessage: a list over its bound or a field not encodable.
    """
    def build(resp: SyncResponse) -> bytes:
        if (len(resp.heads) > MAX_SYNC_HEADS or len(resp.proofs) > MAX_SYNC_PROOFS
                or len(resp.blocks) > MAX_SYNC_BLOCKS):
            raise MalformedMessage("SyncResponse has too many heads, proofs or blocks for one frame")
        if len(resp.checkpoints) > MAX_SYNC_CHECKPOINTS:
            raise MalformedMessage("SyncResponse has too many checkpoints")
        m = pb.SyncResponse(done=resp.done, error=resp.error, next_after=resp.next_after,
                            snapshot_page=bytes(resp.snapshot_page), snapshot_pages=resp.snapshot_pages,
                            snapshot_hash=resp.snapshot_hash, snapshot_time_ms=resp.snapshot_time_ms)
        for c in resp.checkpoints:
            m.checkpoints.add(network=c.network, time_ms=c.time_ms, snapshot_hash=c.snapshot_hash,
                              heads_digest=c.heads_digest, signer=c.signer, signature=c.signature)
        for author, height, tip in resp.heads:
            h = m.heads.add()
            h.author, h.height, h.tip_hash = author, height, tip
        for p in resp.proofs:
            _put_proof(m.proofs.add(), p)
        for b in resp.blocks:
            _put_block(m.blocks.add(), b)
        return m.SerializeToString()
    return _build(build, resp, "SyncResponse")


def decode_sync_response(data: bytes) -> SyncResponse:
    """Parse a :class:`SyncResponse`.

    :raises MalformedMessage: undecodable, more than :data:`MAX_SYNC_HEADS` heads,
        :data:`MAX_SYNC_PROOFS` proofs or :data:`MAX_SYNC_BLOCKS` blocks, or a malformed item.
    """
    m = _parse(pb.SyncResponse, data, "SyncResponse")
    if len(m.heads) > MAX_SYNC_HEADS:
        raise MalformedMessage(f"SyncResponse has more than {MAX_SYNC_HEADS} heads")
    if len(m.proofs) > MAX_SYNC_PROOFS:
        raise MalformedMessage(f"SyncResponse has more than {MAX_SYNC_PROOFS} proofs")
    if len(m.blocks) > MAX_SYNC_BLOCKS:
        raise MalformedMessage(f"SyncResponse has more than {MAX_SYNC_BLOCKS} blocks")
    if len(m.checkpoints) > MAX_SYNC_CHECKPOINTS:
        raise MalformedMessage(f"SyncResponse has more than {MAX_SYNC_CHECKPOINTS} checkpoints")
    from ..core.ledger.snapshot import Checkpoint
    cps = tuple(Checkpoint(_s(c.network, "checkpoint network"), c.time_ms, _s(c.snapshot_hash, "snapshot_hash"),
                           _s(c.heads_digest, "heads_digest"), _s(c.signer, "checkpoint signer"), bytes(c.signature))
                for c in m.checkpoints)
    heads = tuple((_s(h.author, "head author"), h.height, _s(h.tip_hash, "head tip_hash")) for h in m.heads)
    return SyncResponse(heads, tuple(_proof(p) for p in m.proofs), tuple(_block(b) for b in m.blocks),
                        m.done, _s(m.error, "error"), _s(m.next_after, "next_after"), bytes(m.snapshot_page),
                        m.snapshot_pages, _s(m.snapshot_hash, "snapshot_hash"), m.snapshot_time_ms, cps)

