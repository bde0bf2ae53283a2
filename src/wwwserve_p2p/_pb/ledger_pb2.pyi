from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Ticket(_message.Message):
    __slots__ = ("network", "request_id", "requester", "executor", "price", "expires_ms", "signature", "issued_ms", "channel", "seq", "total")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_MS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    network: str
    request_id: str
    requester: str
    executor: str
    price: int
    expires_ms: int
    signature: bytes
    issued_ms: int
    channel: str
    seq: int
    total: int
    def __init__(self, network: _Optional[str] = ..., request_id: _Optional[str] = ..., requester: _Optional[str] = ..., executor: _Optional[str] = ..., price: _Optional[int] = ..., expires_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., issued_ms: _Optional[int] = ..., channel: _Optional[str] = ..., seq: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class DuelTicket(_message.Message):
    __slots__ = ("network", "duel_id", "requester", "executors", "judges", "executor_bond", "judge_bond", "expires_ms", "signature", "issued_ms", "pool", "judges_k")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    DUEL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_BOND_FIELD_NUMBER: _ClassVar[int]
    JUDGE_BOND_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_MS_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    JUDGES_K_FIELD_NUMBER: _ClassVar[int]
    network: str
    duel_id: str
    requester: str
    executors: _containers.RepeatedScalarFieldContainer[str]
    judges: _containers.RepeatedScalarFieldContainer[str]
    executor_bond: int
    judge_bond: int
    expires_ms: int
    signature: bytes
    issued_ms: int
    pool: _containers.RepeatedCompositeFieldContainer[JudgePoolEntry]
    judges_k: int
    def __init__(self, network: _Optional[str] = ..., duel_id: _Optional[str] = ..., requester: _Optional[str] = ..., executors: _Optional[_Iterable[str]] = ..., judges: _Optional[_Iterable[str]] = ..., executor_bond: _Optional[int] = ..., judge_bond: _Optional[int] = ..., expires_ms: _Optional[int] = ..., signature: _Optional[bytes] = ..., issued_ms: _Optional[int] = ..., pool: _Optional[_Iterable[_Union[JudgePoolEntry, _Mapping]]] = ..., judges_k: _Optional[int] = ...) -> None: ...

class JudgePoolEntry(_message.Message):
    __slots__ = ("peer", "stake")
    PEER_FIELD_NUMBER: _ClassVar[int]
    STAKE_FIELD_NUMBER: _ClassVar[int]
    peer: str
    stake: int
    def __init__(self, peer: _Optional[str] = ..., stake: _Optional[int] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("executor", "duel_hash", "response_digest", "signature")
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    DUEL_HASH_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    executor: str
    duel_hash: str
    response_digest: str
    signature: bytes
    def __init__(self, executor: _Optional[str] = ..., duel_hash: _Optional[str] = ..., response_digest: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Vote(_message.Message):
    __slots__ = ("judge", "duel_hash", "choice", "signature")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    DUEL_HASH_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    judge: str
    duel_hash: str
    choice: str
    signature: bytes
    def __init__(self, judge: _Optional[str] = ..., duel_hash: _Optional[str] = ..., choice: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class BlockHeader(_message.Message):
    __slots__ = ("network", "author", "height", "prev_hash", "time_ms", "entries_hash", "signature")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    network: str
    author: str
    height: int
    prev_hash: str
    time_ms: int
    entries_hash: str
    signature: bytes
    def __init__(self, network: _Optional[str] = ..., author: _Optional[str] = ..., height: _Optional[int] = ..., prev_hash: _Optional[str] = ..., time_ms: _Optional[int] = ..., entries_hash: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class EquivocationProof(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: BlockHeader
    b: BlockHeader
    def __init__(self, a: _Optional[_Union[BlockHeader, _Mapping]] = ..., b: _Optional[_Union[BlockHeader, _Mapping]] = ...) -> None: ...

class Stake(_message.Message):
    __slots__ = ("amount",)
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    amount: int
    def __init__(self, amount: _Optional[int] = ...) -> None: ...

class Unstake(_message.Message):
    __slots__ = ("amount",)
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    amount: int
    def __init__(self, amount: _Optional[int] = ...) -> None: ...

class Withdraw(_message.Message):
    __slots__ = ("amount",)
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    amount: int
    def __init__(self, amount: _Optional[int] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("to", "amount")
    TO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    to: str
    amount: int
    def __init__(self, to: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...

class Claim(_message.Message):
    __slots__ = ("ticket", "response_digest", "amount")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ticket: Ticket
    response_digest: str
    amount: int
    def __init__(self, ticket: _Optional[_Union[Ticket, _Mapping]] = ..., response_digest: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...

class Void(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: Ticket
    def __init__(self, ticket: _Optional[_Union[Ticket, _Mapping]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("duel", "receipts", "votes")
    DUEL_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    duel: DuelTicket
    receipts: _containers.RepeatedCompositeFieldContainer[Receipt]
    votes: _containers.RepeatedCompositeFieldContainer[Vote]
    def __init__(self, duel: _Optional[_Union[DuelTicket, _Mapping]] = ..., receipts: _Optional[_Iterable[_Union[Receipt, _Mapping]]] = ..., votes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ...) -> None: ...

class Receive(_message.Message):
    __slots__ = ("block", "index")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    block: Block
    index: int
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ..., index: _Optional[int] = ...) -> None: ...

class OpenChannel(_message.Message):
    __slots__ = ("executor", "deposit", "expires_ms", "nonce")
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    executor: str
    deposit: int
    expires_ms: int
    nonce: int
    def __init__(self, executor: _Optional[str] = ..., deposit: _Optional[int] = ..., expires_ms: _Optional[int] = ..., nonce: _Optional[int] = ...) -> None: ...

class CloseChannel(_message.Message):
    __slots__ = ("channel", "witness_height", "witness_hash")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    WITNESS_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WITNESS_HASH_FIELD_NUMBER: _ClassVar[int]
    channel: str
    witness_height: int
    witness_hash: str
    def __init__(self, channel: _Optional[str] = ..., witness_height: _Optional[int] = ..., witness_hash: _Optional[str] = ...) -> None: ...

class DuelBond(_message.Message):
    __slots__ = ("duel",)
    DUEL_FIELD_NUMBER: _ClassVar[int]
    duel: DuelTicket
    def __init__(self, duel: _Optional[_Union[DuelTicket, _Mapping]] = ...) -> None: ...

class DuelRelease(_message.Message):
    __slots__ = ("duel",)
    DUEL_FIELD_NUMBER: _ClassVar[int]
    duel: DuelTicket
    def __init__(self, duel: _Optional[_Union[DuelTicket, _Mapping]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("stake", "unstake", "withdraw", "transfer", "claim", "void", "verdict", "equivocation", "receive", "open_channel", "close_channel", "duel_bond", "duel_release")
    STAKE_FIELD_NUMBER: _ClassVar[int]
    UNSTAKE_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    VOID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    EQUIVOCATION_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_FIELD_NUMBER: _ClassVar[int]
    OPEN_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CLOSE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DUEL_BOND_FIELD_NUMBER: _ClassVar[int]
    DUEL_RELEASE_FIELD_NUMBER: _ClassVar[int]
    stake: Stake
    unstake: Unstake
    withdraw: Withdraw
    transfer: Transfer
    claim: Claim
    void: Void
    verdict: Verdict
    equivocation: EquivocationProof
    receive: Receive
    open_channel: OpenChannel
    close_channel: CloseChannel
    duel_bond: DuelBond
    duel_release: DuelRelease
    def __init__(self, stake: _Optional[_Union[Stake, _Mapping]] = ..., unstake: _Optional[_Union[Unstake, _Mapping]] = ..., withdraw: _Optional[_Union[Withdraw, _Mapping]] = ..., transfer: _Optional[_Union[Transfer, _Mapping]] = ..., claim: _Optional[_Union[Claim, _Mapping]] = ..., void: _Optional[_Union[Void, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ..., equivocation: _Optional[_Union[EquivocationProof, _Mapping]] = ..., receive: _Optional[_Union[Receive, _Mapping]] = ..., open_channel: _Optional[_Union[OpenChannel, _Mapping]] = ..., close_channel: _Optional[_Union[CloseChannel, _Mapping]] = ..., duel_bond: _Optional[_Union[DuelBond, _Mapping]] = ..., duel_release: _Optional[_Union[DuelRelease, _Mapping]] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("network", "author", "height", "prev_hash", "time_ms", "entries", "signature")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    network: str
    author: str
    height: int
    prev_hash: str
    time_ms: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    signature: bytes
    def __init__(self, network: _Optional[str] = ..., author: _Optional[str] = ..., height: _Optional[int] = ..., prev_hash: _Optional[str] = ..., time_ms: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., signature: _Optional[bytes] = ...) -> None: ...

class LedgerGossip(_message.Message):
    __slots__ = ("block", "proof")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    block: Block
    proof: EquivocationProof
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ..., proof: _Optional[_Union[EquivocationProof, _Mapping]] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("network_id", "kind", "author", "lo", "hi", "after", "limit")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[SyncRequest.Kind]
        HEADS: _ClassVar[SyncRequest.Kind]
        RANGE: _ClassVar[SyncRequest.Kind]
        SNAPSHOT: _ClassVar[SyncRequest.Kind]
        CHECKPOINT: _ClassVar[SyncRequest.Kind]
    KIND_UNSPECIFIED: SyncRequest.Kind
    HEADS: SyncRequest.Kind
    RANGE: SyncRequest.Kind
    SNAPSHOT: SyncRequest.Kind
    CHECKPOINT: SyncRequest.Kind
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    kind: SyncRequest.Kind
    author: str
    lo: int
    hi: int
    after: str
    limit: int
    def __init__(self, network_id: _Optional[str] = ..., kind: _Optional[_Union[SyncRequest.Kind, str]] = ..., author: _Optional[str] = ..., lo: _Optional[int] = ..., hi: _Optional[int] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Head(_message.Message):
    __slots__ = ("author", "height", "tip_hash")
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIP_HASH_FIELD_NUMBER: _ClassVar[int]
    author: str
    height: int
    tip_hash: str
    def __init__(self, author: _Optional[str] = ..., height: _Optional[int] = ..., tip_hash: _Optional[str] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("heads", "proofs", "blocks", "done", "error", "next_after", "snapshot_page", "snapshot_pages", "snapshot_hash", "snapshot_time_ms", "checkpoints")
    HEADS_FIELD_NUMBER: _ClassVar[int]
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_PAGE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_PAGES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_HASH_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    heads: _containers.RepeatedCompositeFieldContainer[Head]
    proofs: _containers.RepeatedCompositeFieldContainer[EquivocationProof]
    blocks: _containers.RepeatedCompositeFieldContainer[Block]
    done: bool
    error: str
    next_after: str
    snapshot_page: bytes
    snapshot_pages: int
    snapshot_hash: str
    snapshot_time_ms: int
    checkpoints: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    def __init__(self, heads: _Optional[_Iterable[_Union[Head, _Mapping]]] = ..., proofs: _Optional[_Iterable[_Union[EquivocationProof, _Mapping]]] = ..., blocks: _Optional[_Iterable[_Union[Block, _Mapping]]] = ..., done: bool = ..., error: _Optional[str] = ..., next_after: _Optional[str] = ..., snapshot_page: _Optional[bytes] = ..., snapshot_pages: _Optional[int] = ..., snapshot_hash: _Optional[str] = ..., snapshot_time_ms: _Optional[int] = ..., checkpoints: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("network", "time_ms", "snapshot_hash", "heads_digest", "signer", "signature")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_HASH_FIELD_NUMBER: _ClassVar[int]
    HEADS_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    network: str
    time_ms: int
    snapshot_hash: str
    heads_digest: str
    signer: str
    signature: bytes
    def __init__(self, network: _Optional[str] = ..., time_ms: _Optional[int] = ..., snapshot_hash: _Optional[str] = ..., heads_digest: _Optional[str] = ..., signer: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...
