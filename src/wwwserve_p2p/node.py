"""Composition root: :func:`open_node` wires identity, overlay, executor, services and API.

Typical use, inside a trio program::

    config = load_config("node.toml")
    async with open_node(config) as node:      # executor built from [executor]
        print(node.peer_id, node.api_url)
        await trio.sleep_forever()

Or embed the node in your own server and call :meth:`Node.generate` directly.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from .config import NodeConfig
from .core.ledger import DuelTicket, Genesis, Ledger, Ticket, Void
from .core.peers import PeerEvent, PeerState, PeerTable
from .core.policy import Route, decide_accept, decide_route
from .core.selection import order_candidates, select_candidates
from .core.stats import percentile
from .core.types import GenerationRequest, ModelCard, PeerStatus, RoutedChunk, Usage
from .errors import (
    MalformedMessage,
    ModelNotFound,
    NoExecutorAvailable,
    OverlayError,
    RemoteError,
    InvalidBlock,
    RequestTimeout,
    StorageError,
)
from .executors.base import Executor
from .identity import Identity
from .ledger_store import LedgerStore
from .metrics import NodeMetrics
from .net.base import Overlay
from .net.filter import FilteredOverlay
from .services.delegation import (
    PROTOCOL as DELEGATE_PROTOCOL,
    DelegationAttempt,
    continuation_request,
    probe_and_commit,
    serve_delegate_stream,
)
from .services.discovery import run_discovery_service
from .services.duel import JUDGE_PROTOCOL, DuelRun, run_duel, serve_judge_stream, side_of
from .services.ledger import LedgerService
from .services.status import run_status_service

log = logging.getLogger("wwwserve_p2p.node")

#: Remote error codes after which another executor may succeed.
_RETRYABLE_CODES = {"executor_error", "overloaded", "eof", "bad_ticket"}


@dataclass
class NodeStats:
    """Counters for ``/status`` and the demo's table. Latencies in seconds."""

    served_local: int = 0
    offloaded: int = 0
    accepted_for_others: int = 0
    failed: int = 0
    redispatched: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=10000))
    ttfts: deque = field(default_factory=lambda: deque(maxlen=10000))
    peer_service_times: deque = field(default_factory=lambda: deque(maxlen=10000))

    def record_served_for_peer(self, seconds: float) -> None:
        self.peer_service_times.append(seconds)

    def summary(self) -> dict[str, Any]:
        lat = list(self.latencies)
        svc = list(self.peer_service_times)
        return {
            "served_local": self.served_local, "offloaded": self.offloaded,
            "accepted_for_others": self.accepted_for_others, "failed": self.failed,
            "redispatched": self.redispatched,
            "latency_p50_s": _r(percentile(lat, 50)), "latency_p95_s": _r(percentile(lat, 95)),
            "ttft_p50_s": _r(percentile(list(self.ttfts), 50)),
            "peer_service_p50_s": _r(percentile(svc, 50)), "peer_service_p95_s": _r(percentile(svc, 95)),
        }


def _r(x: float) -> float | None:
    return None if x != x else round(x, 4)


class Node:
    """A running node. Create it with :func:`open_node`; do not construct directly."""

    def __init__(self, config: NodeConfig, identity: Identity, overlay: Overlay, executor: Executor,
                 genesis: Genesis | None = None):
        self.config = config
        self.genesis = genesis or config.genesis()
        self.identity = identity
        self.overlay = overlay
        self.executor = executor
        self.metrics = NodeMetrics()
        self.stats = NodeStats()
        self.peers = PeerTable(config.status.peer_table(), identity.peer_id)
        self.rng = random.Random(config.node.seed)
        # A restart must announce a larger incarnation: wall-clock milliseconds at start.
        self.incarnation = time.time_ns() // 1_000_000
        self.seq = 0
        self.delegated_running = 0
        self.api_url = ""
        self._changed = trio.Event()
        self._inflight: dict[str, set[DelegationAttempt]] = {}
        self._nursery: trio.Nursery | None = None
        #: set by open_node; the replica is ``ledger_service.ledger``
        self.ledger_service: LedgerService | None = None
        self._fallback_ledger = Ledger(self.genesis)
        self._tickets_seen: dict[str, None] = {}
        #: our judging method (:class:`wwwserve_p2p.judging.Judge`), None if we do not judge
        self.judge: Any = None
        self.judging_slots = trio.Semaphore(config.duel.max_judging)
        #: duels we ran as requester: started, settled, abandoned
        self.duel_stats: Counter[str] = Counter()

    # ------------------------------------------------------------ identity / status
    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    @property
    def network_id(self) -> str:
        """The network id: hash of the genesis (see :class:`~wwwserve_p2p.core.ledger.Genesis`)."""
        return self.genesis.network_id

    @property
    def ledger(self) -> Ledger:
        """This node's ledger replica."""
        return self.ledger_service.ledger if self.ledger_service else self._fallback_ledger

    def ledger_changed(self) -> None:
        """Called by the ledger service after blocks were applied: refresh gauges."""
        self.metrics.update_ledger(self.ledger, self.peer_id)

    def in_debt(self, peer_id: str) -> bool:
        """Whether ``peer_id`` is in debt (or equivocated) in our view: it may neither offload
        nor be selected, and we do not serve its requests."""
        acc = self.ledger.account(peer_id)
        return acc.in_debt or acc.equivocated

    def make_ticket(self, executor: str, request: GenerationRequest, attempt: int) -> Ticket:
        """Our signed ticket promising ``executor`` up to the price of ``request.max_tokens``."""
        params = self.ledger.params
        expires = time.time_ns() // 1_000_000 + int(self.config.ledger.ticket_ttl * 1000)
        return Ticket(self.network_id, f"{request.request_id}/{attempt}/{self.incarnation}", self.peer_id,
                      executor, params.price(request.max_tokens), expires).signed(self.identity.sign)

    def check_ticket(self, ticket: Ticket | None, requester: str, min_price: int) -> str:
        """Why we refuse ``ticket`` from ``requester`` promising at least ``min_price``
        micro-credits ("" if acceptable; the ticket is then remembered as used)."""
        if ticket is None:
            return "a ticket is required (upgrade the requester)"
        problem = self.signed_by_requester(ticket, requester, "ticket")
        if problem:
            return problem
        if ticket.executor != self.peer_id:
            return "the ticket names another executor"
        if ticket.price < min_price:
            return f"ticket price {ticket.price} below {min_price}"
        if ticket.expires_ms < time.time_ns() // 1_000_000 + 60_000:
            return "the ticket expires too soon"
        if ticket.hash in self._tickets_seen or self.ledger.is_claimed(ticket.hash) \
                or self.ledger.is_voided(ticket.hash):
            return "ticket already used"
        self._tickets_seen[ticket.hash] = None
        while len(self._tickets_seen) > 100_000:
            self._tickets_seen.pop(next(iter(self._tickets_seen)))
        return ""

    def signed_by_requester(self, obj: Ticket | DuelTicket, requester: str, what: str) -> str:
        """Why ``obj`` (a ticket or duel ticket) is not a valid one of this network signed by
        ``requester`` ("" if it is)."""
        try:
            obj.check(self.network_id)
        except InvalidBlock as exc:
            return f"invalid {what}: {exc}"
        if obj.requester != requester:
            return f"the {what} names another requester"
        return ""

    # ------------------------------------------------------------ duels (DESIGN §6)
    def check_duel(self, duel: DuelTicket, requester: str) -> str:
        """Why we, as an executor, refuse to answer in ``duel`` ("" if we accept the risk)."""
        problem = self.signed_by_requester(duel, requester, "duel ticket")
        if problem:
            return problem
        if self.peer_id not in duel.executors:
            return "the duel ticket does not name us as an executor"
        if duel.executor_bond > self.config.duel.max_bond:
            return f"duel bond {duel.executor_bond} above our duel.max_bond {self.config.duel.max_bond}"
        if duel.expires_ms < time.time_ns() // 1_000_000 + 60_000:
            return "the duel ticket expires too soon"
        return ""

    def choose_judges(self, exclude: set[str]) -> list[str]:
        """Up to ``duel.judges_k`` judges, stake-weighted among alive peers that judge and are
        not in debt, never one of ``exclude`` (the requester and the duelists)."""
        now = trio.current_time()
        eligible = [e.status.peer_id for e in self.peers
                    if e.status.judges and e.status.peer_id not in exclude and e.state is PeerState.ALIVE
                    and self.peers.state_at(e, now) is PeerState.ALIVE and not self.in_debt(e.status.peer_id)]
        stakes = {p: self.ledger.account(p).selectable_stake for p in eligible}
        return select_candidates(stakes, self.config.duel.judges_k, self.rng.getrandbits(64),
                                 self.config.policy.exploration_share)

    def make_duel(self, request: GenerationRequest, a: str, b: str) -> DuelTicket | None:
        """Our signed duel ticket for ``request`` answered by ``a`` (streams to the user) and
        ``b``, with judges chosen now; None (no duel) when no judge is available."""
        judges = self.choose_judges({self.peer_id, a, b})
        if not judges:
            self.metrics.duels.labels("skipped").inc()
            log.info("no judge available: %s goes to %s alone", request.request_id, a)
            return None
        cfg = self.config.duel
        expires = time.time_ns() // 1_000_000 + int(cfg.duel_ttl * 1000)
        return DuelTicket(self.network_id, f"{request.request_id}/duel/{self.incarnation}", self.peer_id, (a, b),
                          tuple(judges), cfg.executor_bond, cfg.judge_bond, expires).signed(self.identity.sign)

    def make_fee_ticket(self, judge: str, duel: DuelTicket) -> Ticket:
        """Our signed ticket paying ``judge`` its ``duel.judge_fee`` for voting on ``duel``."""
        return Ticket(self.network_id, f"{duel.duel_id}/judge", self.peer_id, judge, self.config.duel.judge_fee,
                      duel.expires_ms).signed(self.identity.sign)

    async def decide_vote(self, req: Any) -> str:
        """Our vote on a duel (``"A"``, ``"B"`` or ``"abstain"``): our judge method sees the prompt
        and the two answers in the order the requester drew for us, never who wrote them.

        :raises WwwServeError: the judge method failed.
        """
        judgement = await self.judge.judge(req.prompt, req.first, req.second)
        return side_of(req, judgement.choice)

    def void_ticket(self, ticket: Ticket, why: str) -> None:
        """Withdraw the ticket of a failed or cancelled attempt (never claimable afterwards)."""
        if self.ledger_service is not None:
            log.info("voiding ticket %s to %s (%s)", ticket.request_id, ticket.executor, why)
            self.metrics.ledger_voided.inc()
            try:
                self.ledger_service.submit(f"void:{ticket.hash}", Void(ticket))
            except StorageError as exc:
                log.error("void of %s queued but not persisted: %s", ticket.request_id, exc)

    def make_status(self) -> PeerStatus:
        """Our current status (increments the sequence number)."""
        self.seq += 1
        load = self.executor.load()
        pol = self.config.policy
        accepting = pol.participate and self.delegated_running < pol.max_delegated and load.idle_slots > 0
        return PeerStatus(
            peer_id=self.peer_id, incarnation=self.incarnation, seq=self.seq,
            models=tuple(self.executor.models()), load=load, accepting=accepting,
            stake=self.ledger.account(self.peer_id).selectable_stake,
            delegated_running=self.delegated_running, max_delegated=pol.max_delegated,
            addrs=tuple(self.overlay.addrs()), api_url=self.api_url, ledger_digest=self.ledger.heads_digest(),
            judges=self.judge is not None)

    def status_changed(self) -> None:
        """Ask the status service to publish soon (rate-limited by status.min_publish_gap)."""
        self._changed.set()

    async def wait_status_changed(self) -> None:
        await self._changed.wait()
        self._changed = trio.Event()

    def decide_accept(self, model: str, requester: str = "") -> tuple[bool, str]:
        """Policy decision on a delegation probe for ``model`` from ``requester``."""
        if requester and self.in_debt(requester):
            return False, "requester in debt"
        return decide_accept(self.executor.load(), self.delegated_running, model in self.executor.models(),
                             self.config.policy, self.rng.random())

    # ------------------------------------------------------------ membership
    def handle_peer_events(self, events: list[PeerEvent], status: PeerStatus | None = None) -> None:
        """React to membership changes: log, dial newcomers, fail over from offline peers."""
        if status is not None and status.ledger_digest and self.ledger_service is not None \
                and status.ledger_digest != self.ledger.heads_digest():
            self.ledger_service.request_pull(status.peer_id, cooldown=True)
        for ev in events:
            log.info("peer %s %s", ev.peer_id, ev.kind)
            if ev.kind in ("joined", "rejoined", "recovered") and self.ledger_service is not None:
                self.ledger_service.request_pull(ev.peer_id)  # catch up after a restart or partition
            if ev.kind in ("joined", "rejoined") and status is not None and self._nursery is not None:
                if ev.peer_id not in self.overlay.connected_peers() and status.addrs:
                    self._nursery.start_soon(self._dial, status.addrs)
            if ev.kind in ("offline", "forgotten") and self._nursery is not None:
                # reset its in-flight streams: their readers fail and generate() re-dispatches
                for attempt in list(self._inflight.get(ev.peer_id, ())):
                    self._nursery.start_soon(partial(attempt.aclose, abort=True))

    async def _dial(self, addrs: tuple[str, ...]) -> None:
        for a in addrs:
            try:
                await self.overlay.connect(a)
                return
            except OverlayError as exc:
                log.debug("dial %s failed: %s", a, exc)

    def peer_unreachable(self, peer_id: str) -> None:
        """A stream to ``peer_id`` could not be opened: stop selecting it until it speaks again."""
        self.handle_peer_events(self.peers.mark_offline(peer_id))

    # ------------------------------------------------------------ serving
    def model_cards(self) -> list[ModelCard]:
        local = set(self.executor.models())
        net = self.peers.network_models(trio.current_time())
        return [ModelCard(m, m in local, tuple(net.get(m, ()))) for m in sorted(local | set(net))]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[RoutedChunk]:
        """Serve ``request``: locally or offloaded per policy, with failover. An async generator
        of :class:`RoutedChunk`; see :class:`wwwserve_p2p.api.node_protocol.ServingNode`.

        On an executor failure mid-answer the request is re-dispatched with the text already
        delivered as ``continuation`` (or run locally), so the user gets one complete answer.

        :raises ModelNotFound: nobody serves ``request.model``.
        :raises NoExecutorAvailable: no executor could be found within the retry budget.
        :raises RemoteError, RequestTimeout: the last attempt failed and none remain.
        """
        if request.model not in self.executor.models() and \
                request.model not in self.peers.network_models(trio.current_time()):
            raise ModelNotFound(request.model, [c.id for c in self.model_cards()])
        t0 = trio.current_time()
        first_route: str | None = None
        req = request
        delivered, nchunks, extra_tokens = "", 0, 0
        last_exc: Exception | None = None
        ok = False
        try:
            for attempt_no in range(self.config.delegation.max_attempts):
                remote = await self._choose(req, attempt_no=attempt_no)
                executor_id = remote.peer_id if remote else self.peer_id
                if first_route is None:
                    first_route = "offloaded" if remote else "local"
                    if remote:
                        self.stats.offloaded += 1
                    else:
                        self.stats.served_local += 1
                duel_run: DuelRun | None = None
                if remote:
                    self._inflight.setdefault(remote.peer_id, set()).add(remote)
                    if remote.partner is not None and remote.duel is not None and self._nursery is not None:
                        duel_run = DuelRun(remote.duel, req, remote, remote.partner)
                        self.duel_stats["started"] += 1
                        self._nursery.start_soon(run_duel, self, duel_run)
                finished = False
                prev_route = req.route
                try:
                    source = remote.chunks() if remote else self.executor.generate(req)
                    async with aclosing(source) as chunks:
                        async for chunk in chunks:
                            if chunk.is_final and (extra_tokens or delivered):
                                u = chunk.usage or Usage()
                                chunk = type(chunk)(chunk.text, chunk.finish_reason,
                                                    Usage(u.prompt_tokens, u.completion_tokens + extra_tokens))
                            if nchunks == 0 and chunk.text:
                                self.stats.ttfts.append(trio.current_time() - t0)
                                self.metrics.ttft.labels(first_route).observe(trio.current_time() - t0)
                            if chunk.is_final:
                                # bookkeeping before the yield: a consumer may close us right after it
                                finished = ok = True
                                self._record_success(first_route, t0)
                                if duel_run is not None:
                                    duel_run.a_finished(delivered + chunk.text)
                                yield RoutedChunk(chunk, executor_id)
                                return
                            yield RoutedChunk(chunk, executor_id)
                            delivered += chunk.text
                            nchunks += 1
                    raise MalformedMessage("executor stream ended without a final chunk")
                except (RemoteError, RequestTimeout, MalformedMessage, OverlayError) as exc:
                    if remote is None or (isinstance(exc, RemoteError) and exc.code not in _RETRYABLE_CODES):
                        raise
                    last_exc = exc
                    log.warning("executor %s failed on %s after %d chunks (%s); re-dispatching",
                                remote.peer_id, req.request_id, nchunks, exc)
                    self.stats.redispatched += 1
                    self.metrics.redispatches.inc()
                    extra_tokens = nchunks
                    # continuation and budget from the original request; the route keeps every failed peer
                    req = continuation_request(request, delivered, nchunks, remote.peer_id)
                    req = replace(req, route=tuple(dict.fromkeys(req.route + prev_route)))
                finally:
                    if remote:
                        self._inflight.get(remote.peer_id, set()).discard(remote)
                        if not finished:
                            self.void_ticket(remote.ticket, "attempt failed or cancelled")
                        if duel_run is not None and not finished:
                            duel_run.a_finished(None)
                        # a finished duelist's receipt is still to come, unless the duel gave up
                        if duel_run is None or not finished or duel_run.gave_up:
                            with trio.CancelScope(shield=True):
                                await remote.aclose(abort=not finished)
            raise NoExecutorAvailable(f"{request.request_id}: all {self.config.delegation.max_attempts} "
                                      f"attempts failed; last error: {last_exc}")
        finally:
            if not ok:
                self.stats.failed += 1
                self.metrics.requests.labels(first_route or "none", "error").inc()

    def _record_success(self, route: str, t0: float) -> None:
        dt = trio.current_time() - t0
        self.stats.latencies.append(dt)
        self.metrics.latency.labels(route).observe(dt)
        self.metrics.requests.labels(route, "ok").inc()

    async def _choose(self, req: GenerationRequest, *, attempt_no: int) -> DelegationAttempt | None:
        """Decide where ``req`` runs: None = locally, else a committed remote attempt.

        :raises NoExecutorAvailable: the model is not local and no peer accepted in time.
        """
        pol = self.config.policy
        dcfg = self.config.delegation
        after_failure = attempt_no > 0
        serves = req.model in self.executor.models()
        exclude = set(req.route) | {self.peer_id}
        if self.in_debt(self.peer_id):
            if serves:
                return None
            raise NoExecutorAvailable(f"{req.request_id}: this node is in debt and may not offload "
                                      f"(balance {self.ledger.account(self.peer_id).balance} micro-credits)")
        for _ in range(dcfg.max_retries + 1):
            cands = [c for c in self.peers.candidates(req.model, trio.current_time(), exclude)
                     if not self.in_debt(c.peer_id)]
            if after_failure or not serves:
                route = Route.OFFLOAD if cands else (Route.LOCAL if serves else Route.RETRY)
            else:
                route = decide_route(self.executor.load().load, pol, bool(cands),
                                     self.rng.random(), self.rng.random())
            if route in (Route.LOCAL, Route.QUEUE):
                return None
            if route is Route.OFFLOAD:
                stakes = {c.peer_id: self.ledger.account(c.peer_id).selectable_stake for c in cands}
                loads = {c.peer_id: c.load.load for c in cands}
                order = order_candidates(pol.selection, stakes, loads, 1 + pol.probe_extra,
                                         self.rng.getrandbits(64), pol.exploration_share)
                duel = None
                if attempt_no == 0 and len(order) >= 2 and self.rng.random() < self.config.duel.duel_rate:
                    duel = partial(self.make_duel, req)
                attempt = await probe_and_commit(self, req, order,
                                                 partial(self.make_ticket, request=req, attempt=attempt_no), duel)
                if attempt is not None:
                    log.info("request %s offloaded to %s", req.request_id, attempt.peer_id)
                    return attempt
                if serves:
                    return None  # nobody took it: queue locally
                exclude |= set(order) if len(order) < len(cands) else set()
            await trio.sleep(dcfg.retry_delay)
        if serves:
            return None
        raise NoExecutorAvailable(f"no peer accepted {req.request_id} for model {req.model!r}")

    # ------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        """JSON-serialisable status for ``GET /status``."""
        now = trio.current_time()
        load = self.executor.load()
        peers = []
        for e in self.peers:
            st = e.state if e.state is not PeerState.ALIVE else self.peers.state_at(e, now)
            peers.append({"peer_id": e.status.peer_id, "models": list(e.status.models), "state": st.value,
                          "load": round(e.status.load.load, 3), "accepting": e.status.accepting,
                          "stake": self.ledger.account(e.status.peer_id).selectable_stake,
                          "api_url": e.status.api_url,
                          "last_seen_s_ago": round(now - e.last_seen, 3)})
        return {
            "peer_id": self.peer_id, "network_id": self.network_id, "addrs": self.overlay.addrs(),
            "api_url": self.api_url, "models": list(self.executor.models()), "executor": self.executor.kind,
            "load": {"load": round(load.load, 3), "running": load.running, "queued": load.queued,
                     "capacity": load.capacity, "kv_usage": load.kv_usage},
            "delegated_running": self.delegated_running, "policy": _policy_dict(self.config.policy),
            "connected_peers": len(self.overlay.connected_peers()),
            "peers": sorted(peers, key=lambda p: p["peer_id"]),
            "stats": self.stats.summary(),
            "duels": self.duel_summary(),
            "ledger": {**self.ledger.account(self.peer_id).to_dict(), **self.ledger.summary(),
                       "queued_entries": self.ledger_service.queued() if self.ledger_service else 0},
        }

    def duel_summary(self) -> dict[str, Any]:
        """Duels we ran as requester, and every executor's settled duels and win rate in our
        ledger view (``win_rate``: ties count half)."""
        accounts = self.ledger.accounts().values()
        return {
            "duel_rate": self.config.duel.duel_rate, "judge": getattr(self.judge, "name", None),
            "as_requester": {k: self.duel_stats.get(k, 0) for k in ("started", "settled", "abandoned")},
            "settled_in_ledger": self.ledger.duels_settled,
            "executors": [{"peer_id": a.peer_id, "duels": a.duels, "won": a.duels_won, "lost": a.duels_lost,
                           "tied": a.duels_tied, "win_rate": a.to_dict()["win_rate"]}
                          for a in accounts if a.duels],
            "judges": [{"peer_id": a.peer_id, "majority": a.judge_majority, "minority": a.judge_minority,
                        "abstained": a.judge_abstained}
                       for a in accounts if a.judge_majority or a.judge_minority or a.judge_abstained],
        }

    def deny_peers(self, peers: list[str]) -> list[str]:
        """Replace the deny-list (``PUT /admin/denied-peers``): refused peers are also marked
        offline, so their in-flight work is re-dispatched. Returns the new list."""
        if isinstance(self.overlay, FilteredOverlay):
            lifted = self.overlay.denied - set(peers)
            self.overlay.deny(peers)
            for p in peers:
                self.peer_unreachable(p)
            if self.ledger_service is not None:
                for p in sorted(lifted):  # a healed partition: compare ledgers at once
                    self.ledger_service.request_pull(p)
        return sorted(peers)

    def ledger_summary(self) -> dict[str, Any]:
        """``GET /ledger``: network, block counts, supply, burns and the state hash."""
        return {**self.ledger.summary(), "me": self.ledger.account(self.peer_id).to_dict(),
                "queued_entries": self.ledger_service.queued() if self.ledger_service else 0,
                "blocks_produced": self.ledger_service.blocks_produced if self.ledger_service else 0,
                "rejected": dict(self.ledger_service.rejected) if self.ledger_service else {}}

    def ledger_accounts(self) -> dict[str, Any]:
        """``GET /ledger/accounts``: every account in our view (micro-credits); ``debt`` is how far
        the balance is below zero."""
        rows = [{**a.to_dict(), "debt": max(0, -a.balance)} for a in self.ledger.accounts().values()]
        return {"network_id": self.network_id, "state_hash": self.ledger.state_hash(),
                "unit": "micro-credits", "accounts": rows}

    def ledger_blocks(self, author: str, lo: int = 1, hi: int | None = None, limit: int = 100) -> dict[str, Any]:
        """``GET /ledger/blocks``: ``author``'s blocks with ``lo <= height <= hi`` (at most ``limit``),
        as canonical JSON with their hashes; without ``author``, the chain heads."""
        if not author:
            return {"heads": [{"author": a, "height": h, "hash": t} for a, (h, t) in sorted(self.ledger.heads().items())]}
        hi = lo + limit - 1 if hi is None else min(hi, lo + limit - 1)
        blocks = self.ledger.blocks(author, lo, hi)
        return {"author": author, "height": self.ledger.height(author),
                "blocks": [{"hash": b.hash, **b.header.to_canonical(),
                            "entries": [e.to_canonical() for e in b.entries]} for b in blocks]}

    def _update_gauges(self) -> None:
        load = self.executor.load()
        self.metrics.load.set(load.load)
        self.metrics.running.set(load.running)
        self.metrics.queued.set(load.queued)
        for state, n in self.peers.counts(trio.current_time()).items():
            self.metrics.peers.labels(state).set(n)


def _policy_dict(p) -> dict[str, Any]:
    return {k: getattr(p, k) for k in ("target_load", "offload_frequency", "queue_frequency",
                                        "accept_frequency", "max_delegated", "participate", "stake")}


async def _gauge_loop(node: Node) -> None:
    last_load = None
    while True:
        node._update_gauges()
        busy = node.executor.load().load >= node.config.policy.target_load
        if busy != last_load:  # crossing the target load is a significant change
            node.status_changed()
            last_load = busy
        await trio.sleep(0.5)


def _make_judge(config: NodeConfig, executor: Executor) -> Any:
    """Our judging method from ``duel.judge`` (``auto``: likelihood if the executor can score).

    :raises ConfigError: a method the executor cannot support.
    """
    method = config.duel.judge
    if method == "auto":
        method = "likelihood" if callable(getattr(executor, "score", None)) else "none"
    if method == "none":
        return None
    from .judging import create_judge
    return create_judge(method, executor, margin=config.duel.judge_margin) if method == "likelihood" \
        else create_judge(method, executor)


@asynccontextmanager
async def open_node(
    config: NodeConfig,
    executor: Executor | None = None,
    *,
    overlay: Overlay | None = None,
    identity: Identity | None = None,
    genesis: Genesis | None = None,
) -> AsyncIterator[Node]:
    """Start a node and keep it running until the context exits.

    - ``executor``: defaults to one built from ``config.executor`` (closed on exit; one passed
      in is left open for the caller).
    - ``overlay``: defaults to the real libp2p overlay from ``config.net``; tests pass an
      in-memory one (:class:`wwwserve_p2p.testing.memory.MemoryNetwork`).
    - ``identity``: defaults to ``<data_dir>/identity.key`` (created on first run).
    - ``genesis``: defaults to :meth:`NodeConfig.genesis` (``ledger.genesis`` or the dev genesis).
      The ledger lives in ``ledger.db`` (default ``<data_dir>/ledger.sqlite``).

    :raises ConfigError: invalid configuration. :raises OverlayError: cannot listen.
    :raises StorageError: the ledger database cannot be opened (or belongs to another network).
    """
    identity = identity or Identity.load_or_create(config.node.data_dir)
    async with AsyncExitStack() as stack:
        if executor is None:
            from .executors import create_executor
            opts = dict(config.executor)
            kind = opts.pop("kind")
            executor = create_executor(kind, opts)
            stack.push_async_callback(executor.aclose)
            if hasattr(executor, "start"):
                await executor.start()
        if overlay is None:
            from .net.libp2p import open_libp2p_overlay
            overlay = await stack.enter_async_context(open_libp2p_overlay(identity, config.net))
        overlay = FilteredOverlay(overlay, config.net.deny_peers)
        genesis = genesis or config.genesis()
        node = Node(config, identity, overlay, executor, genesis)
        db = Path(config.ledger.db or Path(config.node.data_dir) / "ledger.sqlite")
        db.parent.mkdir(parents=True, exist_ok=True)
        store = LedgerStore.open(db, genesis)
        stack.callback(store.close)
        node.ledger_service = LedgerService(node, Ledger(genesis), store)
        restored = await node.ledger_service._blocking(node.ledger_service.restore)
        node.ledger_changed()
        log.info("ledger of network %s (%s): %d blocks restored, balance %d, stake %d", genesis.network,
                 genesis.network_id, restored, node.ledger.account(node.peer_id).balance,
                 node.ledger.account(node.peer_id).stake)
        overlay.set_stream_handler(DELEGATE_PROTOCOL, partial(serve_delegate_stream, node))
        overlay.set_stream_handler(JUDGE_PROTOCOL, partial(serve_judge_stream, node))
        node.judge = _make_judge(config, executor)
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            if config.api.enabled:
                from .api.server import serve_api
                host, port = await nursery.start(partial(serve_api, node, config.api.host, config.api.port,
                                                         max_tokens_cap=config.api.max_tokens_cap,
                                                         admin=config.api.admin))
                node.api_url = config.api.public_url or f"http://{host}:{port}"
            await nursery.start(node.ledger_service.run)
            await nursery.start(run_status_service, node)
            nursery.start_soon(run_discovery_service, node)
            nursery.start_soon(_gauge_loop, node)
            log.info("node %s up: models %s, overlay %s, API %s", node.peer_id, list(executor.models()),
                     overlay.addrs(), node.api_url or "disabled")
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
