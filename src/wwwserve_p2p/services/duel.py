"""Duels and judging (DESIGN §6): the requester's side of a duel and the ``/wwwserve/judge/1`` server.

A duel starts in :meth:`~wwwserve_p2p.services.delegation.Requester._probe_and_commit`: two executors
accepted and both commits carry the requester's signed
:class:`~wwwserve_p2p.core.ledger.DuelTicket` (executors A and B, judges, bonds). The first
(A) streams to the user through the requester; :meth:`DuelService.run`, started beside it,
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

Verifiable panels (issue 18, :mod:`wwwserve_p2p.core.ledger.duels`): the requester does not
name judges. Its duel ticket commits to a stake *pool* (alive peers that judge, not in debt,
by stake in its view, the requester and both duelists excluded) and a number of seats; once
both receipts are in, the panel is drawn from the pool with a seed of the duel hash and both
receipt signatures, and every replica recomputes it from the verdict. A judge votes only if
it is drawn, the pool agrees with its own view (:func:`~wwwserve_p2p.core.ledger.pool_problem`,
:data:`POOL_TOLERANCE_PCT`), and the request carries a fee voucher on a payment channel toward
it (locked credit) of at least its largest possible penalty: a farming requester can then never
make an honest judge lose credit. The requester caps the judge bond accordingly.

Bonds (issue 18): each executor locks its bond in its own chain when it answers
(:class:`~wwwserve_p2p.core.ledger.DuelBond`, from its provable credit; the delegation server
submits it with the receipt), and the verdict counts only once both bonds are counted. The
requester asks the judges only after both bonds are accepted in its replica (else the duel is
abandoned), and a judge votes only when it sees both bonds in its own (waiting briefly for
them). Afterwards :meth:`DuelService.release_bonds` (a ledger tick hook) takes our share back
(:class:`~wwwserve_p2p.core.ledger.DuelRelease`): both bonds if we won, ours on a tie or an
unsettled duel once it is final, nothing if we lost; so the winner's gain is credit it can
spend and the loser's bond is gone whatever it unstakes or withdraws.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..config import DuelSection
from ..core.acceptance import check_judge_request, side_of, verify_receipt
from ..core.ledger import (DuelBond, DuelRelease, DuelTicket, Reason, Receipt, Signer, Verdict, Vote, duel_deadline,
                           eligible_pool, max_judge_penalty, panel_of, pool_problem)
from ..core.types import ErrorReply, GenerationRequest
from ..errors import MalformedMessage, OverlayError, RequestTimeout, StorageError, WwwServeError
from ..metrics import NodeMetrics
from ..net.base import Overlay, Stream
from ..wire import codec
from ..wire.codec import JudgeRequest
from ..wire.framing import FrameReader, frame
from .delegation import DelegationAttempt
from .ledger import LedgerService
from .membership import Membership
from .runtime import Runtime
from .tickets import TicketDesk

JUDGE_PROTOCOL = "/wwwserve/judge/1"
#: How far (percent of the stake in a judge's own pool) a duel's committed pool may differ from
#: the judge's view, by inflated and by omitted stake each (views differ while blocks travel).
POOL_TOLERANCE_PCT = 20
#: Duels whose bond we locked and have not released yet that we track (oldest dropped beyond).
MAX_OPEN_BONDS = 4096
#: Longest a judge waits (s) to see both executors' bonds in its own ledger view.
JUDGE_BOND_WAIT_S = 20.0
log = logging.getLogger("wwwserve_p2p.duel")


def prompt_text(request: GenerationRequest) -> str:
    """The request as a judge reads it: the prompt, or the chat messages one per line as
    ``role: content``."""
    if request.prompt:
        return request.prompt
    return "\n".join(f"{m.role}: {m.content}" for m in request.messages)


@dataclass
class DuelRun:
    """One duel in progress on the requester: filled by the requester (A's side, which streams
    to the user) and :meth:`DuelService.run` (B's side and the judging)."""

    duel: DuelTicket
    request: GenerationRequest
    a: DelegationAttempt
    b: DelegationAttempt
    a_text: str | None = None
    a_done: trio.Event = field(default_factory=trio.Event)
    #: set when the duel gave up before A finished: A's stream is then closed by its owner
    gave_up: bool = False

    def a_finished(self, text: str | None) -> None:
        """A's answer reached the user completely (``text``), or A failed (None)."""
        self.a_text = text
        self.a_done.set()


async def _answer(attempt: DelegationAttempt) -> str:
    parts: list[str] = []
    async for chunk in attempt.chunks():
        parts.append(chunk.text)
    return "".join(parts)


class DuelService:
    """Duels as requester (judges chosen by stake, the verdict queued into our chain) and the
    ``/wwwserve/judge/1`` server. Owns our judging method (``judge``, None = we do not judge),
    the judging slots and the counts of duels we ran (``stats``: started, settled, abandoned).

    ``max_frame``: bytes per frame; ``exploration_share``: as in executor selection."""

    def __init__(self, me: str, network_id: str, overlay: Overlay, membership: Membership, ledger: LedgerService,
                 tickets: TicketDesk, sign: Signer, runtime: Runtime, rng: random.Random, config: DuelSection,
                 metrics: NodeMetrics, *, max_frame: int, exploration_share: float, judge: Any = None):
        self.me, self.network_id, self.overlay, self.membership = me, network_id, overlay, membership
        self.ledger, self.tickets, self._sign, self.runtime, self.rng = ledger, tickets, sign, runtime, rng
        self.config, self.metrics, self.max_frame, self.exploration_share = config, metrics, max_frame, exploration_share
        #: our judging method (:class:`wwwserve_p2p.judging.Judge`), None if we do not judge
        self.judge = judge
        self.slots = trio.Semaphore(config.max_judging)
        #: duels we ran as requester: started, settled, abandoned
        self.stats: Counter[str] = Counter()
        #: called with the PeerId of the executor that lost a duel we settled (the majority of
        #: the drawn panel voted for the other answer; nothing on a tie): local reputation
        #: (issue 15 item 7) deprioritises it for a decaying period (the node wires the Requester)
        self.on_lost: list[Callable[[str], None]] = []
        #: duels we bonded as executor and have not released: duel hash -> ticket (from our chain)
        self._bonds: dict[str, DuelTicket] = {}
        self._bonds_scanned = 0
        #: requester -> the lock its judge requests take in turn (fee accept, vote, claim)
        self._fee_locks: dict[str, trio.Lock] = {}
        #: judge -> the lock our requests to it take in turn (fee voucher signed, sent, answered)
        self._judge_locks: dict[str, trio.Lock] = {}

    # ------------------------------------------------------------ bonds
    def bonds_locked(self, duel: DuelTicket) -> bool:
        """Both executors' :class:`DuelBond` of ``duel`` are accepted in our replica."""
        led = self.ledger.ledger
        return all(led.has_duel_bond(e, duel.hash) for e in duel.executors)

    async def wait_bonds(self, duel: DuelTicket, timeout: float) -> bool:
        """Wait up to ``timeout`` s for :meth:`bonds_locked` (polled every 0.2 s)."""
        with trio.move_on_after(timeout):
            while not self.bonds_locked(duel):
                await trio.sleep(0.2)
            return True
        return False

    def release_bonds(self) -> None:
        """Ledger tick hook: queue a :class:`DuelRelease` for each duel we bonded whose outcome
        lets us take credit back now (we won, a tie, or unsettled once final); forget those we
        lost or released. Learns our bonds from our own chain (so a restart loses none)."""
        led = self.ledger.ledger
        h = led.height(self.me)
        if h > self._bonds_scanned:
            for blk in led.blocks(self.me, self._bonds_scanned + 1, h):
                for e in blk.entries:
                    if type(e) is DuelBond:
                        self._bonds[e.duel.hash] = e.duel
                    elif type(e) is DuelRelease:
                        self._bonds.pop(e.duel.hash, None)
            self._bonds_scanned = h
            while len(self._bonds) > MAX_OPEN_BONDS:
                self._bonds.pop(next(iter(self._bonds)))
        now = self.runtime.clock.wall_ms()
        for dh, duel in list(self._bonds.items()):
            ok, bad = led.validate_own(self.me, now, [DuelRelease(duel)])
            deadline = duel_deadline(duel)
            if ok:
                self.ledger.submit(f"duel_release:{dh}", ok[0])
            elif bad and bad[0][1] == Reason.DUEL_RELEASE:
                # lost (forfeit), or released already; before the deadline a loser keeps it: if
                # the winner does not claim by then, the loser takes its own bond back
                if now > deadline:
                    log.info("duel %s: our bond is forfeit or already released", duel.duel_id)
                    del self._bonds[dh]
            elif now > deadline:
                # the release waits for the other executor's chain to pass the deadline; the
                # other waits for ours: a block of ours dated after it (empty if need be)
                self.ledger.mark_after(deadline)

    # ------------------------------------------------------------ as requester
    def judge_stakes(self) -> dict[str, int]:
        """PeerId -> selectable stake in our view of every alive peer that judges and is not in
        debt, ourselves included when we judge: what a duel's judge pool is drawn from."""
        out = {e.status.peer_id: self.ledger.stake_of(e.status.peer_id) for e in self.membership.alive_entries()
               if e.status.judges and not self.ledger.in_debt(e.status.peer_id)}
        if self.judge is not None and not self.ledger.in_debt(self.me):
            out[self.me] = self.ledger.stake_of(self.me)
        return out

    def choose_judges(self, exclude: set[str]) -> list[str]:
        """The PeerIds of the judge pool a duel of ours would commit to now (staked judging
        peers, the largest :data:`~wwwserve_p2p.core.ledger.duels.MAX_POOL`), never one of
        ``exclude`` (the requester and the duelists)."""
        return [p for p, _ in eligible_pool(self.judge_stakes(), exclude | {self.me})]

    def judge_bond(self) -> int:
        """The judge bond our duels carry: ``duel.judge_bond``, capped so that a judge's largest
        penalty never exceeds the fee we pay it (``duel.judge_fee``); judges refuse more."""
        params = self.ledger.ledger.params
        pct = max(params.minority_penalty_pct, params.abstain_penalty_pct)
        cap = self.config.judge_fee * 100 // pct if pct else self.config.judge_bond
        return max(1, min(self.config.judge_bond, cap))

    def make_duel(self, request: GenerationRequest, a: str, b: str) -> DuelTicket | None:
        """Our signed duel ticket for ``request`` answered by ``a`` (streams to the user) and
        ``b``, committing to the judge pool of now (the judges are drawn from it once both
        receipts are in); None (no duel) when no staked judge is available."""
        pool = eligible_pool(self.judge_stakes(), {self.me, a, b})
        if not pool:
            self.metrics.duels.labels("skipped").inc()
            log.info("no judge available: %s goes to %s alone", request.request_id, a)
            return None
        cfg = self.config
        now = self.runtime.clock.wall_ms()
        return DuelTicket(self.network_id, f"{request.request_id}/duel/{self.tickets.incarnation}", self.me, (a, b),
                          (), cfg.executor_bond, self.judge_bond(), now + int(cfg.duel_ttl * 1000),
                          issued_ms=self.tickets.issued_ms(now), pool=pool,
                          judges_k=min(cfg.judges_k, len(pool))).signed(self._sign)

    def start(self, request: GenerationRequest, a: DelegationAttempt, b: DelegationAttempt) -> DuelRun:
        """Run the duel of the committed attempts ``a`` (streams to the user) and ``b`` in the
        background; the caller reports A's answer with :meth:`DuelRun.a_finished`."""
        assert a.duel is not None
        run = DuelRun(a.duel, request, a, b)
        self.stats["started"] += 1
        self.runtime.spawn(self.run, run)
        return run

    async def run(self, run: DuelRun) -> None:
        """Finish a duel after both commits (never raises).

        Reads B's answer and receipt, waits for A's answer (streamed to the user by the
        requester) and receipt, asks the judges, and queues the Verdict. A duel with a
        failed duelist or a receipt that does not match is abandoned: nothing is settled.
        """
        cfg = self.config
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
                    self.tickets.void(run.b.ticket, "duel partner did not finish")
                await run.b.aclose(abort=b_text is None)
                if run.a_done.is_set():
                    await run.a.aclose(abort=a_receipt is None)
                else:  # A is still streaming to the user: the requester closes it
                    run.gave_up = True
        if not why:
            why = (verify_receipt(duel, a_receipt, a_exec, run.a_text or "")
                   or verify_receipt(duel, b_receipt, b_exec, b_text or ""))
        if why:
            log.warning("duel %s abandoned: %s", duel.duel_id, why)
            self.metrics.duels.labels("abandoned").inc()
            self.stats["abandoned"] += 1
            return
        assert a_receipt is not None and b_receipt is not None and run.a_text is not None and b_text is not None
        # the duel counts only with both bonds locked (issue 18): judges check them too
        if not await self.wait_bonds(duel, cfg.answer_timeout):
            log.warning("duel %s abandoned: the executors' bonds were not locked within %s s", duel.duel_id,
                        cfg.answer_timeout)
            self.metrics.duels.labels("abandoned").inc()
            self.stats["abandoned"] += 1
            return
        votes = await self.ask_judges(duel, prompt_text(run.request), {a_exec: (run.a_text, a_receipt),
                                                                        b_exec: (b_text, b_receipt)},
                                      panel_of(duel, (a_receipt, b_receipt)))
        verdict = Verdict(duel, (a_receipt, b_receipt), tuple(votes))
        try:
            self.ledger.submit(f"verdict:{duel.hash}", verdict)
        except StorageError as exc:
            log.error("verdict of duel %s queued but not persisted: %s", duel.duel_id, exc)
        self.metrics.duels.labels("settled").inc()
        self.stats["settled"] += 1
        counts = {c: sum(1 for v in votes if v.choice == c) for c in ("A", "B", "abstain")}
        log.info("duel %s between %s (A) and %s (B): votes %s", duel.duel_id, a_exec, b_exec, counts)
        side = verdict.tally()[0]
        if side in ("A", "B"):
            loser = b_exec if side == "A" else a_exec
            for fn in list(self.on_lost):
                fn(loser)

    async def ask_judges(self, duel: DuelTicket, prompt: str, answers: dict[str, tuple[str, Receipt]],
                         judges: tuple[str, ...] | None = None) -> list[Vote]:
        """Ask every judge of ``duel`` in parallel; returns the valid votes that came back in time.

        ``answers``: executor PeerId -> (answer text, its receipt); ``judges``: the panel (drawn,
        :func:`~wwwserve_p2p.core.ledger.panel_of`; default ``duel.judges``). Each judge sees the
        answers in an order drawn from the node's seeded RNG; its fee ticket is voided if it does
        not vote.
        """
        cfg = self.config
        panel = tuple(duel.judges) if judges is None else tuple(judges)
        votes: list[Vote] = []

        async def ask(judge: str, swap: bool) -> None:
            # one judge's fee vouchers go out, and are answered, in the order they are signed: its
            # desk claims the best voucher it holds, so a later one overtaking an earlier one would
            # leave that fee unclaimable (bounded: one lock per judge being asked)
            lock = self._judge_locks.setdefault(judge, trio.Lock())
            try:
                async with lock:
                    await ask_locked(judge, swap)
            finally:
                if not lock.locked() and not lock.statistics().tasks_waiting:
                    self._judge_locks.pop(judge, None)

        async def ask_locked(judge: str, swap: bool) -> None:
            a, b = duel.executors
            first, second = (b, a) if swap else (a, b)
            fee = self.tickets.make_fee(judge, duel, cfg.judge_fee) if cfg.judge_fee > 0 else None
            req = JudgeRequest(duel, prompt, answers[first][0], answers[second][0], answers[first][1],
                               answers[second][1], fee)
            vote: Vote | None = None
            stream: Stream | None = None
            try:
                with trio.fail_after(cfg.judge_timeout):
                    stream = await self.overlay.open_stream(judge, JUDGE_PROTOCOL)
                    await stream.write(frame(codec.encode_judge_request(req)))
                    data = await FrameReader(stream, self.max_frame).read_frame(cfg.judge_timeout)
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
                self.tickets.void(fee, "judge did not vote")

        async with trio.open_nursery() as nursery:
            for j in panel:
                nursery.start_soon(ask, j, self.rng.random() < 0.5)
        return sorted(votes, key=lambda v: panel.index(v.judge))

    # ------------------------------------------------------------ as judge
    def check_request(self, req: JudgeRequest, requester: str, *, accept_fee: bool = True) -> str:
        """Why we refuse to judge ``req`` sent by ``requester`` ("" if we judge it).
        ``accept_fee=False``: every check but the fee voucher's acceptance by the ticket desk
        (:meth:`accept_fee`), which the caller does last."""
        if self.judge is None:
            return "this node does not judge (duel.judge = none)"
        duel = req.duel
        try:
            panel = panel_of(duel, (req.first_receipt, req.second_receipt))
        except ValueError:
            panel = ()
        problem = check_judge_request(
            duel, ((req.first, req.first_receipt), (req.second, req.second_receipt)),
            network_id=self.network_id, requester=requester, me=self.me, max_bond=self.config.max_bond,
            now_ms=self.runtime.clock.wall_ms(), requester_in_debt=self.ledger.in_debt(requester), judges=panel)
        if problem:
            return problem
        if duel.pool:
            problem = pool_problem(duel.pool, self.judge_stakes(), {requester, *duel.executors},
                                   tolerance_pct=POOL_TOLERANCE_PCT)
            if problem:
                return problem
        # the fee must be locked toward us (a payment-channel voucher) and cover our largest
        # possible penalty: a duel can then never cost us credit, whoever the other judges are
        need = max_judge_penalty(duel.judge_bond, self.ledger.ledger.params) if duel.pool else 0
        if req.fee is None:
            return "a judge fee voucher is required (credit locked toward the judge)"
        if req.fee.price < need:
            return f"judge fee {req.fee.price} below our largest possible penalty {need} micro-credits"
        return self.accept_fee(req, requester) if accept_fee else ""

    def accept_fee(self, req: JudgeRequest, requester: str) -> str:
        """The ticket desk's acceptance of ``req``'s fee voucher (locked toward us)."""
        assert req.fee is not None
        need = max_judge_penalty(req.duel.judge_bond, self.ledger.ledger.params) if req.duel.pool else 0
        return self.tickets.accept(req.fee, requester, max(1, need))

    async def decide_vote(self, req: JudgeRequest) -> str:
        """Our vote on a duel (``"A"``, ``"B"`` or ``"abstain"``): our judge method sees the prompt
        and the two answers in the order the requester drew for us, never who wrote them.

        :raises WwwServeError: the judge method failed.
        """
        judgement = await self.judge.judge(req.prompt, req.first, req.second)
        return side_of(req.duel, req.first_receipt, req.second_receipt, judgement.choice)

    async def serve_stream(self, stream: Stream) -> None:
        """Handle one ``/wwwserve/judge/1`` stream: check the request, judge, sign, claim the fee."""
        cfg = self.config
        try:
            data = await FrameReader(stream, self.max_frame).read_frame(cfg.judge_timeout, may_have_processed=False)
            if data is None:
                return
            req = codec.decode_judge_request(data)
        except MalformedMessage as exc:
            self.metrics.judged.labels("refused").inc()
            await _reply(stream, ErrorReply("malformed", str(exc)))
            return
        except (RequestTimeout, OverlayError):
            return
        # then both executors' bonds (issue 18), before the fee voucher is accepted: the desk
        # claims the best voucher it holds, so accept, vote and claim stay together
        problem = self.check_request(req, stream.remote_peer, accept_fee=False)
        if not problem and not await self.wait_bonds(req.duel, min(JUDGE_BOND_WAIT_S, cfg.judge_timeout / 4)):
            problem = "the duel's executors have not locked their bonds in our ledger view"
        if problem:
            await self._refuse(stream, req, problem)
            return
        # one requester's fee vouchers are accepted, voted on and claimed in order: the desk
        # claims the best voucher it holds, so a later voucher accepted before an earlier vote's
        # claim would leave that fee unclaimable (bounded: one lock per requester being judged)
        requester = stream.remote_peer
        lock = self._fee_locks.setdefault(requester, trio.Lock())
        try:
            async with lock:
                problem = self.accept_fee(req, requester)
                if problem:
                    await self._refuse(stream, req, problem)
                    return
                try:
                    async with self.slots:
                        with trio.fail_after(cfg.judge_timeout):
                            choice = await self.decide_vote(req)
                except (trio.TooSlowError, WwwServeError) as exc:
                    self.metrics.judged.labels("refused").inc()
                    await _reply(stream, ErrorReply("judge_failed", str(exc) or "judging timed out"))
                    return
                vote = Vote(self.me, req.duel.hash, choice).signed(self._sign)
                self.metrics.judged.labels(choice).inc()
                if await _reply(stream, vote) and req.fee is not None:
                    self.tickets.claim(req.fee, req.fee.price, hashlib.sha256(vote.hash.encode()).hexdigest())
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._fee_locks.pop(requester, None)
        with trio.CancelScope(shield=True):
            await stream.close()

    async def _refuse(self, stream: Stream, req: JudgeRequest, problem: str) -> None:
        self.metrics.judged.labels("refused").inc()
        log.warning("refusing to judge duel %s for %s: %s", req.duel.duel_id, stream.remote_peer, problem)
        await _reply(stream, ErrorReply("refused", problem))

    # ------------------------------------------------------------ reporting
    def summary(self, duel_rate: float) -> dict[str, Any]:
        """Duels we ran as requester, and every executor's settled duels and win rate in our
        ledger view (``win_rate``: ties count half)."""
        ledger = self.ledger.ledger
        accounts = ledger.accounts().values()
        return {
            "duel_rate": duel_rate, "judge": getattr(self.judge, "name", None),
            "as_requester": {k: self.stats.get(k, 0) for k in ("started", "settled", "abandoned")},
            "settled_in_ledger": ledger.duels_settled,
            "executors": [{"peer_id": a.peer_id, "duels": a.duels, "won": a.duels_won, "lost": a.duels_lost,
                           "tied": a.duels_tied, "win_rate": a.to_dict()["win_rate"]}
                          for a in accounts if a.duels],
            "judges": [{"peer_id": a.peer_id, "majority": a.judge_majority, "minority": a.judge_minority,
                        "abstained": a.judge_abstained}
                       for a in accounts if a.judge_majority or a.judge_minority or a.judge_abstained],
        }


async def _reply(stream: Stream, reply: Vote | ErrorReply) -> bool:
    try:
        await stream.write(frame(codec.encode_judge_response(reply)))
        return True
    except OverlayError:
        return False


__all__ = ["JUDGE_PROTOCOL", "DuelRun", "DuelService", "prompt_text"]
