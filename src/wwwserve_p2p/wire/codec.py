"""Domain objects <-> protobuf bytes. The only module (with _pb/) that touches protobuf.

Decoding validates: any failure raises :class:`~wwwserve_p2p.errors.MalformedMessage` with a
reason, never a protobuf exception. Size caps are enforced by the caller's framing/gossip
layer; field-level bounds (string lengths, list lengths, numeric ranges) are enforced here.
"""

from __future__ import annotations

import math

from .._pb import overlay_pb2 as pb
from dataclasses import dataclass

from ..core.ledger import DuelTicket, Receipt, Ticket, Vote
from ..core.types import (
    ChatMessage,
    ErrorReply,
    GenerationChunk,
    GenerationRequest,
    LoadSnapshot,
    Offer,
    PeerStatus,
    TokenLogprob,
    Usage,
)
from ..errors import MalformedMessage
from .ledger_codec import (
    _duel,
    _parse,
    _put_duel,
    _put_receipt,
    _put_ticket,
    _put_vote,
    _receipt,
    _ticket,
    _vote,
    decode_ticket,
    encode_ticket,
)

#: Bounds on decoded fields.
MAX_MODELS = 64
MAX_NAME = 256
MAX_ADDRS = 16
MAX_ADDR = 512
MAX_MESSAGES = 256
MAX_TEXT = 512 * 1024
MAX_STOP = 8
MAX_ROUTE = 32
MAX_TOKENS = 1 << 20
MAX_PROMPT_IDS = 1 << 16
MAX_TOP_LOGPROBS = 20
MAX_LOGIT_BIAS = 300
MAX_TOKEN_ID = (1 << 31) - 1
#: logprob entries in one chunk / final frame (a final frame of an echoed prompt holds one
#: per prompt token)
MAX_LOGPROB_ENTRIES = MAX_PROMPT_IDS + 1024


def _check_str(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise MalformedMessage(f"{what} is longer than {limit} characters")
    return value


def _check_list(values, limit: int, item_limit: int, what: str) -> tuple[str, ...]:
    if len(values) > limit:
        raise MalformedMessage(f"{what} has more than {limit} entries")
    return tuple(_check_str(v, item_limit, what) for v in values)


def _finite(x: float, lo: float, hi: float, what: str) -> float:
    if not math.isfinite(x) or not lo <= x <= hi:
        raise MalformedMessage(f"{what}={x} outside [{lo}, {hi}]")
    return float(x)


# ---------------------------------------------------------------- status

def encode_status(status: PeerStatus, network_id: str) -> bytes:
    """Serialise a PeerStatus for the status topic."""
    m = pb.PeerStatus(
        network_id=network_id, peer_id=status.peer_id, incarnation=status.incarnation,
        seq=status.seq, models=list(status.models), running=status.load.running,
        queued=status.load.queued, capacity=status.load.capacity, kv_usage=status.load.kv_usage,
        accepting=status.accepting, stake=status.stake,
        delegated_running=status.delegated_running, max_delegated=status.max_delegated,
        addrs=list(status.addrs), api_url=status.api_url, ledger_digest=status.ledger_digest,
        judges=status.judges)
    return m.SerializeToString()


def decode_status(data: bytes, network_id: str) -> PeerStatus:
    """Parse and validate a status message.

    :raises MalformedMessage: undecodable, another network, empty peer id, capacity 0,
        kv_usage outside [0, 1], or a field over its bound.
    """
    m = _parse(pb.PeerStatus, data, "PeerStatus")
    if m.network_id != network_id:
        raise MalformedMessage(f"status of another network ({m.network_id!r})")
    if not m.peer_id:
        raise MalformedMessage("status without peer_id")
    if m.capacity < 1:
        raise MalformedMessage("status capacity must be >= 1")
    return PeerStatus(
        peer_id=_check_str(m.peer_id, MAX_NAME, "peer_id"), incarnation=m.incarnation,
        seq=m.seq, models=_check_list(m.models, MAX_MODELS, MAX_NAME, "models"),
        load=LoadSnapshot(running=m.running, queued=m.queued, capacity=m.capacity,
                          kv_usage=_finite(m.kv_usage, 0.0, 1.0, "kv_usage")),
        accepting=m.accepting, stake=m.stake, delegated_running=m.delegated_running,
        max_delegated=m.max_delegated, addrs=_check_list(m.addrs, MAX_ADDRS, MAX_ADDR, "addrs"),
        api_url=_check_str(m.api_url, MAX_ADDR, "api_url"),
        ledger_digest=_check_str(m.ledger_digest, 64, "ledger_digest"), judges=m.judges)


# ---------------------------------------------------------------- delegate request

def encode_request(req: GenerationRequest, network_id: str, timeout_ms: int) -> bytes:
    """Serialise the first frame of a delegation stream."""
    m = pb.DelegateRequest(
        network_id=network_id, request_id=req.request_id, model=req.model, prompt=req.prompt,
        messages=[pb.ChatMessage(role=x.role, content=x.content) for x in req.messages],
        max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
        stop=list(req.stop), has_seed=req.seed is not None, seed=req.seed or 0,
        continuation=req.continuation, route=list(req.route), timeout_ms=timeout_ms,
        prompt_ids=list(req.prompt_ids), echo=req.echo, has_logprobs=req.logprobs is not None,
        top_logprobs=req.logprobs or 0, presence_penalty=req.presence_penalty,
        frequency_penalty=req.frequency_penalty,
        logit_bias=[pb.LogitBias(token=t, bias=b) for t, b in req.logit_bias])
    return m.SerializeToString()


def decode_request(data: bytes) -> tuple[GenerationRequest, str, int]:
    """Parse a delegation request: (request, network_id, timeout_ms).

    :raises MalformedMessage: undecodable or out-of-bounds fields.
    """
    m = _parse(pb.DelegateRequest, data, "DelegateRequest")
    if not m.request_id or not m.model:
        raise MalformedMessage("request_id and model are required")
    if len(m.messages) > MAX_MESSAGES:
        raise MalformedMessage(f"more than {MAX_MESSAGES} messages")
    if not (0 if m.echo else 1) <= m.max_tokens <= MAX_TOKENS:
        raise MalformedMessage(f"max_tokens={m.max_tokens} out of range")
    if len(m.prompt_ids) > MAX_PROMPT_IDS or any(t > MAX_TOKEN_ID for t in m.prompt_ids):
        raise MalformedMessage(f"prompt_ids: more than {MAX_PROMPT_IDS} ids or an id out of range")
    if m.top_logprobs > MAX_TOP_LOGPROBS:
        raise MalformedMessage(f"top_logprobs={m.top_logprobs} above {MAX_TOP_LOGPROBS}")
    if len(m.logit_bias) > MAX_LOGIT_BIAS or any(b.token > MAX_TOKEN_ID for b in m.logit_bias):
        raise MalformedMessage(f"logit_bias: more than {MAX_LOGIT_BIAS} entries or an id out of range")
    req = GenerationRequest(
        request_id=_check_str(m.request_id, MAX_NAME, "request_id"),
        model=_check_str(m.model, MAX_NAME, "model"),
        prompt=_check_str(m.prompt, MAX_TEXT, "prompt"),
        messages=tuple(ChatMessage(_check_str(x.role, 32, "role"), _check_str(x.content, MAX_TEXT, "content"))
                       for x in m.messages),
        max_tokens=m.max_tokens, temperature=_finite(m.temperature, 0.0, 2.0, "temperature"),
        top_p=_finite(m.top_p, 0.0, 1.0, "top_p"),
        stop=_check_list(m.stop, MAX_STOP, MAX_NAME, "stop"),
        seed=m.seed if m.has_seed else None,
        continuation=_check_str(m.continuation, MAX_TEXT, "continuation"),
        route=_check_list(m.route, MAX_ROUTE, MAX_NAME, "route"),
        prompt_ids=tuple(m.prompt_ids), echo=m.echo,
        logprobs=m.top_logprobs if m.has_logprobs else None,
        presence_penalty=_finite(m.presence_penalty, -2.0, 2.0, "presence_penalty"),
        frequency_penalty=_finite(m.frequency_penalty, -2.0, 2.0, "frequency_penalty"),
        logit_bias=tuple((b.token, _finite(b.bias, -100.0, 100.0, "logit_bias"))
                         for b in m.logit_bias))
    return req, m.network_id, m.timeout_ms


def encode_decision(commit: bool, ticket: Ticket | None = None, duel: DuelTicket | None = None) -> bytes:
    """Serialise the requester's go/no-go frame; with ``commit``, normally the signed
    :class:`~wwwserve_p2p.core.ledger.Ticket` the executor will claim, and in a duel the
    signed :class:`~wwwserve_p2p.core.ledger.DuelTicket`.

    :raises MalformedMessage: the ticket cannot be encoded.
    """
    m = pb.DelegateDecision(commit=commit)
    if ticket is not None:
        m.ticket.ParseFromString(encode_ticket(ticket))
    if duel is not None:
        _put_duel(m.duel, duel)
    return m.SerializeToString()


def decode_decision(data: bytes) -> tuple[bool, Ticket | None, DuelTicket | None]:
    """Parse a decision frame: ``(commit, ticket, duel)``; ``ticket``/``duel`` are None when
    absent. Both are checked for structure only (signatures: their ``check`` methods).

    :raises MalformedMessage: undecodable, or a field over its bound.
    """
    m = _parse(pb.DelegateDecision, data, "DelegateDecision")
    ticket = decode_ticket(m.ticket.SerializeToString()) if m.HasField("ticket") else None
    duel = _duel(m.duel) if m.HasField("duel") else None
    return m.commit, ticket, duel


# ---------------------------------------------------------------- delegate responses

DelegateReply = Offer | GenerationChunk | ErrorReply | Receipt


def encode_reply(reply: DelegateReply) -> bytes:
    """Serialise an executor->requester frame: an Offer, a chunk (final if it has a
    finish_reason), an ErrorReply, or (after the final chunk of a duel) a signed Receipt."""
    if isinstance(reply, Receipt):
        m = pb.DelegateResponse()
        _put_receipt(m.receipt, reply)
    elif isinstance(reply, Offer):
        m = pb.DelegateResponse(offer=pb.Offer(accepted=reply.accepted, reason=reply.reason, load=reply.load,
                                               expected_ttft_s=reply.expected_ttft_s, s_per_token=reply.s_per_token))
    elif isinstance(reply, ErrorReply):
        m = pb.DelegateResponse(error=pb.Error(code=reply.code, message=reply.message))
    elif reply.finish_reason is not None:
        u = reply.usage or Usage()
        m = pb.DelegateResponse(final=pb.Final(
            finish_reason=reply.finish_reason, prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens, text=reply.text,
            logprobs=_put_logprobs(reply.logprobs), prompt_tokens_dropped=u.prompt_tokens_dropped))
    else:
        m = pb.DelegateResponse(chunk=pb.Chunk(text=reply.text, logprobs=_put_logprobs(reply.logprobs)))
    return m.SerializeToString()


def _put_logprobs(entries: tuple[TokenLogprob, ...]) -> list:
    return [pb.TokenLogprob(token=e.token, has_logprob=e.logprob is not None, logprob=e.logprob or 0.0,
                            top=[pb.TopLogprob(token=t, logprob=lp) for t, lp in e.top])
            for e in entries]


def _logprobs(entries) -> tuple[TokenLogprob, ...]:
    if len(entries) > MAX_LOGPROB_ENTRIES:
        raise MalformedMessage(f"more than {MAX_LOGPROB_ENTRIES} logprob entries in one frame")
    out = []
    for e in entries:
        if len(e.top) > MAX_TOP_LOGPROBS:
            raise MalformedMessage(f"more than {MAX_TOP_LOGPROBS} top logprobs for one token")
        out.append(TokenLogprob(
            _check_str(e.token, MAX_NAME, "token"),
            _finite(e.logprob, -math.inf, 0.0, "logprob") if e.has_logprob else None,
            tuple((_check_str(t.token, MAX_NAME, "token"), _finite(t.logprob, -math.inf, 0.0, "logprob"))
                  for t in e.top)))
    return tuple(out)


def decode_reply(data: bytes) -> DelegateReply:
    """:raises MalformedMessage: undecodable, empty, or an unknown finish reason."""
    m = _parse(pb.DelegateResponse, data, "DelegateResponse")
    kind = m.WhichOneof("kind")
    if kind == "offer":
        return Offer(m.offer.accepted, _check_str(m.offer.reason, MAX_NAME, "reason"),
                     _finite(m.offer.load, 0.0, 1e6, "load"),
                     _finite(m.offer.expected_ttft_s, 0.0, 1e6, "expected_ttft_s"),
                     _finite(m.offer.s_per_token, 0.0, 1e3, "s_per_token"))
    if kind == "chunk":
        return GenerationChunk(_check_str(m.chunk.text, MAX_TEXT, "chunk"),
                               logprobs=_logprobs(m.chunk.logprobs))
    if kind == "final":
        f = m.final
        if f.finish_reason not in ("stop", "length"):
            raise MalformedMessage(f"unknown finish_reason {f.finish_reason!r}")
        return GenerationChunk(_check_str(f.text, MAX_TEXT, "chunk"), f.finish_reason,
                               Usage(f.prompt_tokens, f.completion_tokens, f.prompt_tokens_dropped),
                               _logprobs(f.logprobs))
    if kind == "error":
        return ErrorReply(_check_str(m.error.code, MAX_NAME, "code"),
                          _check_str(m.error.message, 4096, "message"))
    if kind == "receipt":
        return _receipt(m.receipt)
    raise MalformedMessage("empty DelegateResponse")


# ---------------------------------------------------------------- judge protocol

@dataclass(frozen=True)
class JudgeRequest:
    """A duel's requester asking one judge (``/wwwserve/judge/1``): ``first``/``second`` are the
    two answers in the order this judge sees them, each with its executor's signed receipt;
    ``fee`` is the judge's ticket, claimable once it voted."""

    duel: DuelTicket
    prompt: str
    first: str
    second: str
    first_receipt: Receipt
    second_receipt: Receipt
    fee: Ticket | None = None


def encode_judge_request(r: JudgeRequest) -> bytes:
    m = pb.JudgeRequest(prompt=r.prompt, first=r.first, second=r.second)
    _put_duel(m.duel, r.duel)
    _put_receipt(m.first_receipt, r.first_receipt)
    _put_receipt(m.second_receipt, r.second_receipt)
    if r.fee is not None:
        _put_ticket(m.fee, r.fee)
    return m.SerializeToString()


def decode_judge_request(data: bytes) -> JudgeRequest:
    """:raises MalformedMessage: undecodable, a missing duel ticket or receipt, a field over its bound."""
    m = _parse(pb.JudgeRequest, data, "JudgeRequest")
    for f in ("duel", "first_receipt", "second_receipt"):
        if not m.HasField(f):
            raise MalformedMessage(f"JudgeRequest without {f}")
    return JudgeRequest(_duel(m.duel), _check_str(m.prompt, MAX_TEXT, "prompt"),
                        _check_str(m.first, MAX_TEXT, "first answer"), _check_str(m.second, MAX_TEXT, "second answer"),
                        _receipt(m.first_receipt), _receipt(m.second_receipt),
                        _ticket(m.fee, "judge fee") if m.HasField("fee") else None)


def encode_judge_response(reply: Vote | ErrorReply) -> bytes:
    m = pb.JudgeResponse()
    if isinstance(reply, Vote):
        _put_vote(m.vote, reply)
    else:
        m.error.code, m.error.message = reply.code, reply.message
    return m.SerializeToString()


def decode_judge_response(data: bytes) -> Vote | ErrorReply:
    """:raises MalformedMessage: undecodable or empty."""
    m = _parse(pb.JudgeResponse, data, "JudgeResponse")
    kind = m.WhichOneof("kind")
    if kind == "vote":
        return _vote(m.vote)
    if kind == "error":
        return ErrorReply(_check_str(m.error.code, MAX_NAME, "code"), _check_str(m.error.message, 4096, "message"))
    raise MalformedMessage("empty JudgeResponse")
