from . import ledger_pb2 as _ledger_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerStatus(_message.Message):
    __slots__ = ("network_id", "peer_id", "incarnation", "seq", "models", "running", "queued", "capacity", "kv_usage", "accepting", "stake", "delegated_running", "max_delegated", "addrs", "api_url", "ledger_digest", "judges")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    KV_USAGE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTING_FIELD_NUMBER: _ClassVar[int]
    STAKE_FIELD_NUMBER: _ClassVar[int]
    DELEGATED_RUNNING_FIELD_NUMBER: _ClassVar[int]
    MAX_DELEGATED_FIELD_NUMBER: _ClassVar[int]
    ADDRS_FIELD_NUMBER: _ClassVar[int]
    API_URL_FIELD_NUMBER: _ClassVar[int]
    LEDGER_DIGEST_FIELD_NUMBER: _ClassVar[int]
    JUDGES_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    peer_id: str
    incarnation: int
    seq: int
    models: _containers.RepeatedScalarFieldContainer[str]
    running: int
    queued: int
    capacity: int
    kv_usage: float
    accepting: bool
    stake: int
    delegated_running: int
    max_delegated: int
    addrs: _containers.RepeatedScalarFieldContainer[str]
    api_url: str
    ledger_digest: str
    judges: bool
    def __init__(self, network_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., incarnation: _Optional[int] = ..., seq: _Optional[int] = ..., models: _Optional[_Iterable[str]] = ..., running: _Optional[int] = ..., queued: _Optional[int] = ..., capacity: _Optional[int] = ..., kv_usage: _Optional[float] = ..., accepting: bool = ..., stake: _Optional[int] = ..., delegated_running: _Optional[int] = ..., max_delegated: _Optional[int] = ..., addrs: _Optional[_Iterable[str]] = ..., api_url: _Optional[str] = ..., ledger_digest: _Optional[str] = ..., judges: bool = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class DelegateRequest(_message.Message):
    __slots__ = ("network_id", "request_id", "model", "prompt", "messages", "max_tokens", "temperature", "top_p", "stop", "has_seed", "seed", "continuation", "route", "timeout_ms", "prompt_ids", "echo", "has_logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    HAS_SEED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_IDS_FIELD_NUMBER: _ClassVar[int]
    ECHO_FIELD_NUMBER: _ClassVar[int]
    HAS_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    TOP_LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_PENALTY_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_PENALTY_FIELD_NUMBER: _ClassVar[int]
    LOGIT_BIAS_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    request_id: str
    model: str
    prompt: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    max_tokens: int
    temperature: float
    top_p: float
    stop: _containers.RepeatedScalarFieldContainer[str]
    has_seed: bool
    seed: int
    continuation: str
    route: _containers.RepeatedScalarFieldContainer[str]
    timeout_ms: int
    prompt_ids: _containers.RepeatedScalarFieldContainer[int]
    echo: bool
    has_logprobs: bool
    top_logprobs: int
    presence_penalty: float
    frequency_penalty: float
    logit_bias: _containers.RepeatedCompositeFieldContainer[LogitBias]
    def __init__(self, network_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., prompt: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., stop: _Optional[_Iterable[str]] = ..., has_seed: bool = ..., seed: _Optional[int] = ..., continuation: _Optional[str] = ..., route: _Optional[_Iterable[str]] = ..., timeout_ms: _Optional[int] = ..., prompt_ids: _Optional[_Iterable[int]] = ..., echo: bool = ..., has_logprobs: bool = ..., top_logprobs: _Optional[int] = ..., presence_penalty: _Optional[float] = ..., frequency_penalty: _Optional[float] = ..., logit_bias: _Optional[_Iterable[_Union[LogitBias, _Mapping]]] = ...) -> None: ...

class LogitBias(_message.Message):
    __slots__ = ("token", "bias")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    BIAS_FIELD_NUMBER: _ClassVar[int]
    token: int
    bias: float
    def __init__(self, token: _Optional[int] = ..., bias: _Optional[float] = ...) -> None: ...

class TokenLogprob(_message.Message):
    __slots__ = ("token", "has_logprob", "logprob", "top")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    HAS_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    token: str
    has_logprob: bool
    logprob: float
    top: _containers.RepeatedCompositeFieldContainer[TopLogprob]
    def __init__(self, token: _Optional[str] = ..., has_logprob: bool = ..., logprob: _Optional[float] = ..., top: _Optional[_Iterable[_Union[TopLogprob, _Mapping]]] = ...) -> None: ...

class TopLogprob(_message.Message):
    __slots__ = ("token", "logprob")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    LOGPROB_FIELD_NUMBER: _ClassVar[int]
    token: str
    logprob: float
    def __init__(self, token: _Optional[str] = ..., logprob: _Optional[float] = ...) -> None: ...

class DelegateDecision(_message.Message):
    __slots__ = ("commit", "ticket", "duel")
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    DUEL_FIELD_NUMBER: _ClassVar[int]
    commit: bool
    ticket: _ledger_pb2.Ticket
    duel: _ledger_pb2.DuelTicket
    def __init__(self, commit: bool = ..., ticket: _Optional[_Union[_ledger_pb2.Ticket, _Mapping]] = ..., duel: _Optional[_Union[_ledger_pb2.DuelTicket, _Mapping]] = ...) -> None: ...

class DelegateResponse(_message.Message):
    __slots__ = ("offer", "chunk", "final", "error", "receipt")
    OFFER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    offer: Offer
    chunk: Chunk
    final: Final
    error: Error
    receipt: _ledger_pb2.Receipt
    def __init__(self, offer: _Optional[_Union[Offer, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ..., final: _Optional[_Union[Final, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., receipt: _Optional[_Union[_ledger_pb2.Receipt, _Mapping]] = ...) -> None: ...

class Offer(_message.Message):
    __slots__ = ("accepted", "reason", "load", "expected_ttft_s", "s_per_token")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_TTFT_S_FIELD_NUMBER: _ClassVar[int]
    S_PER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    load: float
    expected_ttft_s: float
    s_per_token: float
    def __init__(self, accepted: bool = ..., reason: _Optional[str] = ..., load: _Optional[float] = ..., expected_ttft_s: _Optional[float] = ..., s_per_token: _Optional[float] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("text", "logprobs")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    text: str
    logprobs: _containers.RepeatedCompositeFieldContainer[TokenLogprob]
    def __init__(self, text: _Optional[str] = ..., logprobs: _Optional[_Iterable[_Union[TokenLogprob, _Mapping]]] = ...) -> None: ...

class Final(_message.Message):
    __slots__ = ("finish_reason", "prompt_tokens", "completion_tokens", "text", "logprobs", "prompt_tokens_dropped")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    text: str
    logprobs: _containers.RepeatedCompositeFieldContainer[TokenLogprob]
    prompt_tokens_dropped: int
    def __init__(self, finish_reason: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., text: _Optional[str] = ..., logprobs: _Optional[_Iterable[_Union[TokenLogprob, _Mapping]]] = ..., prompt_tokens_dropped: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class JudgeRequest(_message.Message):
    __slots__ = ("duel", "prompt", "first", "second", "first_receipt", "second_receipt", "fee")
    DUEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    SECOND_FIELD_NUMBER: _ClassVar[int]
    FIRST_RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SECOND_RECEIPT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    duel: _ledger_pb2.DuelTicket
    prompt: str
    first: str
    second: str
    first_receipt: _ledger_pb2.Receipt
    second_receipt: _ledger_pb2.Receipt
    fee: _ledger_pb2.Ticket
    def __init__(self, duel: _Optional[_Union[_ledger_pb2.DuelTicket, _Mapping]] = ..., prompt: _Optional[str] = ..., first: _Optional[str] = ..., second: _Optional[str] = ..., first_receipt: _Optional[_Union[_ledger_pb2.Receipt, _Mapping]] = ..., second_receipt: _Optional[_Union[_ledger_pb2.Receipt, _Mapping]] = ..., fee: _Optional[_Union[_ledger_pb2.Ticket, _Mapping]] = ...) -> None: ...

class JudgeResponse(_message.Message):
    __slots__ = ("vote", "error")
    VOTE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    vote: _ledger_pb2.Vote
    error: Error
    def __init__(self, vote: _Optional[_Union[_ledger_pb2.Vote, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
