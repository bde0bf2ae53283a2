"""Duels and judging (DESIGN §6): the requester's side of a duel and the ``/wwwserve/judge/1`` server.

A duel starts in :func:`~wwwserve_p2p.services.delegation.probe_and_commit`: two executors
accepted and both commits carry the requester's signed
:class:`~wwwserve_p2p.core.ledger.DuelTicket` (executors A and B, judges, bonds). The first
(A) streams to the user through :meth:`Node.generate`; :func:`run_duel`, started beside it,
reads B's whole answer, waits for A's, collects both signed receipts, asks every judge, and
queues the :class:`~wwwserve_p2p.core.ledger.Verdict` into the requester's next block, where
every replica settles it the same way (:func:`~wwwserve_p2p.core.ledger.settle_duel`).

Judge exchange (one length-prefixed protobuf frame each way)::

    requester                           judge
      JudgeRequest{duel, prompt, first, second, receipts, fee}  ---->
                      <----  JudgeResponse{vote | error}

The two answers come in an order drawn per judge (position bias is real), each with the
receipt of its executor, so the judge can check that the answer is what the executor signed
and map "first"/"second" back to A/B; the judge method itself never learns who wrote what.
The vote is signed over the duel's hash; the judge then claims its fee ticket. A judge that
does not answer within ``duel.judge_timeout`` is not counted (its fee ticket is voided).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from ..core.ledger import DuelTicket, Receipt, Verdict, Vote
from ..core.types import ErrorReply, GenerationRequest
from ..errors import MalformedMessage, OverlayError, RequestTimeout, StorageError, WwwServeError
from ..net.base import Stream
from ..wire import codec
from ..wire.codec import JudgeRequest
from ..wire.framing import FrameReader, frame
from .delegation import DelegationAttempt, answer_digest, claim_ticket

if TYPE_CHECKING:
    from ..node import Node

JUDGE_PROTOCOL = "/wwwserve/judge/1"
log = logging.getLogger("wwwserve_p2p.duel")


def prompt_text(request: GenerationRequest) -> str:
    """The request as a judge reads it: the prompt, or the chat messages one per line as
    ``role: content``."""
    if request.prompt:
        return request.prompt
    return "\n".join(f"{m.role}: {m.content}" for m in request.messages)


@dataclass
class DuelRun:
    """One duel in progress on the requester: filled by :meth:`Node.generate` (A's side) and
    :func:`run_duel` (B's side and the judging)."""

    duel: DuelTicket
    request: GenerationRequest
    a: DelegationAttempt
    b: DelegationAttempt
    a_text: str | None = None
    a_done: trio.Event = field(default_factory=trio.Event)
    #: set when :func:`run_duel` gave up before A finished: A's stream is then closed by its owner
    gave_up: bool = False

    def a_finished(self, text: str | None) -> None:
        """A's answer reached the user completely (``text``), or A failed (None)."""
        self.a_text = text
        self.a_done.set()


def verify_receipt(duel: DuelTicket, receipt: Receipt | None, executor: str, text: str) -> str:
    """Why ``receipt`` does not prove that ``executor`` answered ``duel`` with ``text`` ("" if it does)."""
    if receipt is None:
        return "no receipt"
    if receipt.executor != executor or receipt.duel_hash != duel.hash:
        return "receipt for another executor or duel"
    if receipt.response_digest != answer_digest(text):
        return "receipt digest does not match the answer received"
    if not receipt.valid():
        return "receipt signature invalid"
    return ""


async def _answer(attempt: DelegationAttempt) -> str:
    parts: list[str] = []
    async for chunk in attempt.chunks():
        parts.append(chunk.text)
    return "".join(parts)


async def run_duel(node: "Node", run: DuelRun) -> None:
    """Finish a duel after both commits (runs in the node's nursery; never raises).

    Reads B's answer and receipt, waits for A's answer (streamed to the user by
    :meth:`Node.generate`) and receipt, asks the judges, and queues the Verdict. A duel with a
    failed duelist or a receipt that does not match is abandoned: nothing is settled.
    """
    cfg = node.config.duel
    duel = run.duel
    a_exec, b_exec = duel.executors
    b_text: str | None = None
    b_receipt = a_receipt = None
    why = ""
    try:
        with trio.move_on_after(cfg.answer_timeout) as scope:
            try:
                b_text = await _answer(run.b)
                b_receipt = await run.b.receipt(cfg.answer_timeout)
            except (WwwServeError, trio.TooSlowError) as exc:
                why = f"executor B {b_exec} failed: {exc}"
            await run.a_done.wait()
            if run.a_text is None:
                why = why or f"executor A {a_exec} failed"
            elif not why:
                try:
                    a_receipt = await run.a.receipt(cfg.answer_timeout)
                except WwwServeError as exc:
                    why = f"executor A {a_exec} sent no receipt: {exc}"
        if scope.cancelled_caught:
            why = why or f"answers not complete within {cfg.answer_timeout} s"
    finally:
        with trio.CancelScope(shield=True):
            if b_text is None:  # B never finished: its ticket must not be claimable
                node.void_ticket(run.b.ticket, "duel partner did not finish")
            await run.b.aclose(abort=b_text is None)
            if run.a_done.is_set():
                await run.a.aclose(abort=a_receipt is None)
            else:  # A is still streaming to the user: Node.generate closes it
                run.gave_up = True
    if not why:
        why = (verify_receipt(duel, a_receipt, a_exec, run.a_text or "")
               or verify_receipt(duel, b_receipt, b_exec, b_text or ""))
    if why:
        log.warning("duel %s abandoned: %s", duel.duel_id, why)
        node.metrics.duels.labels("abandoned").inc()
        node.duel_stats["abandoned"] += 1
        return
    assert a_receipt is not None and b_receipt is not None and run.a_text is not None and b_text is not None
    votes = await ask_judges(node, duel, prompt_text(run.request), {a_exec: (run.a_text, a_receipt),
                                                                     b_exec: (b_text, b_receipt)})
    verdict = Verdict(duel, (a_receipt, b_receipt), tuple(votes))
    try:
        node.ledger_service.submit(f"verdict:{duel.hash}", verdict)
    except StorageError as exc:
        log.error("verdict of duel %s queued but not persisted: %s", duel.duel_id, exc)
    node.metrics.duels.labels("settled").inc()
    node.duel_stats["settled"] += 1
    counts = {c: sum(1 for v in votes if v.choice == c) for c in ("A", "B", "abstain")}
    log.info("duel %s between %s (A) and %s (B): votes %s", duel.duel_id, a_exec, b_exec, counts)


async def ask_judges(node: "Node", duel: DuelTicket, prompt: str,
                     answers: dict[str, tuple[str, Receipt]]) -> list[Vote]:
    """Ask every judge of ``duel`` in parallel; returns the valid votes that came back in time.

    ``answers``: executor PeerId -> (answer text, its receipt). Each judge sees the answers in
    an order drawn from the node's seeded RNG; its fee ticket is voided if it does not vote.
    """
    cfg = node.config.duel
    votes: list[Vote] = []

    async def ask(judge: str, swap: bool) -> None:
        a, b = duel.executors
        first, second = (b, a) if swap else (a, b)
        fee = node.make_fee_ticket(judge, duel) if cfg.judge_fee > 0 else None
        req = JudgeRequest(duel, prompt, answers[first][0], answers[second][0], answers[first][1],
                           answers[second][1], fee)
        vote: Vote | None = None
        stream: Stream | None = None
        try:
            with trio.fail_after(cfg.judge_timeout):
                stream = await node.overlay.open_stream(judge, JUDGE_PROTOCOL)
                await stream.write(frame(codec.encode_judge_request(req)))
                data = await FrameReader(stream, node.config.delegation.max_frame).read_frame(cfg.judge_timeout)
                reply = codec.decode_judge_response(data) if data is not None else ErrorReply("eof", "closed")
            if isinstance(reply, ErrorReply):
                log.info("judge %s refused duel %s: %s: %s", judge, duel.duel_id, reply.code, reply.message)
            elif reply.judge != judge or reply.duel_hash != duel.hash or not reply.valid():
                log.warning("judge %s sent an invalid vote on duel %s", judge, duel.duel_id)
            else:
                vote = reply
        except (WwwServeError, trio.TooSlowError) as exc:
            log.info("judge %s did not vote on duel %s: %s", judge, duel.duel_id, exc or "timeout")
        finally:
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await stream.close()
        if vote is not None:
            votes.append(vote)
        elif fee is not None:
            node.void_ticket(fee, "judge did not vote")

    async with trio.open_nursery() as nursery:
        for j in duel.judges:
            nursery.start_soon(ask, j, node.rng.random() < 0.5)
    return sorted(votes, key=lambda v: duel.judges.index(v.judge))


# ------------------------------------------------------------------ judge side

async def serve_judge_stream(node: "Node", stream: Stream) -> None:
    """Handle one ``/wwwserve/judge/1`` stream: check the request, judge, sign, claim the fee."""
    cfg = node.config.duel
    try:
        data = await FrameReader(stream, node.config.delegation.max_frame).read_frame(cfg.judge_timeout)
        if data is None:
            return
        req = codec.decode_judge_request(data)
    except MalformedMessage as exc:
        node.metrics.judged.labels("refused").inc()
        await _reply(stream, ErrorReply("malformed", str(exc)))
        return
    except (RequestTimeout, OverlayError):
        return
    problem = check_judge_request(node, req, stream.remote_peer)
    if problem:
        node.metrics.judged.labels("refused").inc()
        log.warning("refusing to judge duel %s for %s: %s", req.duel.duel_id, stream.remote_peer, problem)
        await _reply(stream, ErrorReply("refused", problem))
        return
    try:
        async with node.judging_slots:
            with trio.fail_after(cfg.judge_timeout):
                choice = await node.decide_vote(req)
    except (trio.TooSlowError, WwwServeError) as exc:
        node.metrics.judged.labels("refused").inc()
        await _reply(stream, ErrorReply("judge_failed", str(exc) or "judging timed out"))
        return
    vote = Vote(node.peer_id, req.duel.hash, choice).signed(node.identity.sign)
    node.metrics.judged.labels(choice).inc()
    if await _reply(stream, vote) and req.fee is not None:
        claim_ticket(node, req.fee, req.fee.price, hashlib.sha256(vote.hash.encode()).hexdigest())
    with trio.CancelScope(shield=True):
        await stream.close()


def check_judge_request(node: "Node", req: JudgeRequest, requester: str) -> str:
    """Why we refuse to judge ``req`` sent by ``requester`` ("" if we judge it)."""
    duel = req.duel
    if node.judge is None:
        return "this node does not judge (duel.judge = none)"
    problem = node.signed_by_requester(duel, requester, "duel ticket")
    if problem:
        return problem
    if node.in_debt(requester):
        return "requester in debt"
    if node.peer_id not in duel.judges:
        return "we are not a judge of this duel"
    if duel.judge_bond > node.config.duel.max_bond:
        return f"judge bond {duel.judge_bond} above our duel.max_bond {node.config.duel.max_bond}"
    if duel.expires_ms < time.time_ns() // 1_000_000:
        return "the duel ticket expired"
    pair = {req.first_receipt.executor, req.second_receipt.executor}
    if pair != set(duel.executors):
        return "the receipts are not from the duel's two executors"
    for text, rc in ((req.first, req.first_receipt), (req.second, req.second_receipt)):
        problem = verify_receipt(duel, rc, rc.executor, text)
        if problem:
            return f"answer of {rc.executor}: {problem}"
    if req.fee is not None:
        return node.check_ticket(req.fee, requester, req.fee.price)
    return ""


async def _reply(stream: Stream, reply: Vote | ErrorReply) -> bool:
    try:
        await stream.write(frame(codec.encode_judge_response(reply)))
        return True
    except OverlayError:
        return False


def side_of(req: JudgeRequest, judgement: str) -> str:
    """Map a judge method's ``"first"``/``"second"``/``"abstain"`` to the duel side A/B."""
    if judgement == "abstain":
        return "abstain"
    rc = req.first_receipt if judgement == "first" else req.second_receipt
    return "A" if rc.executor == req.duel.executors[0] else "B"


__all__ = ["JUDGE_PROTOCOL", "DuelRun", "answer_digest", "ask_judges", "check_judge_request", "prompt_text",
           "run_duel", "serve_judge_stream", "side_of", "verify_receipt"]
