"""Composition root: :func:`open_node` wires identity, overlay, executor, services and API.

Typical use, inside a trio program::

    config = NodeConfig.embedded()               # no HTTP server, nothing on disk
    async with open_node(config, EchoExecutor()) as node:
        async for rc in node.generate(GenerationRequest("r1", "echo", prompt="hi")):
            print(rc.chunk.text, end="")

What each part owns (DESIGN §2): :class:`~wwwserve_p2p.services.membership.Membership` the
peer table; :class:`~wwwserve_p2p.services.status.StatusService` our status gossip;
:class:`~wwwserve_p2p.services.ledger.LedgerService` the ledger replica and its replication;
:class:`~wwwserve_p2p.services.tickets.TicketDesk` payment tickets;
:class:`~wwwserve_p2p.services.delegation.DelegationServer` peers' requests;
:class:`~wwwserve_p2p.services.delegation.Requester` our users' requests (through the pure
:class:`~wwwserve_p2p.core.dispatch.Dispatch`); :class:`~wwwserve_p2p.services.duel.DuelService`
duels and judging. The :class:`Node` only builds them, connects their narrow dependencies,
runs their loops and offers the views the HTTP API shows.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from .config import NodeConfig
from .core.dispatch import DispatchLimits
from .core.ledger import Genesis, Ledger
from .core.peers import PeerTable
from .core.policy import OffloadPolicy, stake_target
from .core.types import GenerationRequest, ModelCard, RoutedChunk
from .errors import ModelNotFound
from .executors.base import Executor
from .identity import Identity
from .ledger_store import LedgerStore
from .metrics import MeteredExecutor, NodeMetrics
from .net.base import Overlay
from .net.filter import FilteredOverlay
from .services.delegation import PROTOCOL as DELEGATE_PROTOCOL
from .services.delegation import DelegationServer, Requester
from .services.discovery import run_discovery_service
from .services.duel import JUDGE_PROTOCOL, DuelService
from .services.ledger import LedgerService
from .services.membership import Membership
from .services.runtime import Runtime
from .services.stats import NodeStats
from .services.status import LocalState, StatusService
from .services.tickets import TicketDesk

log = logging.getLogger("wwwserve_p2p.node")


class Node:
    """A running node. Create it with :func:`open_node`; do not construct directly.

    For embedders: :attr:`peer_id`, :attr:`network_id`, :meth:`generate`, :meth:`model_cards`,
    :attr:`ledger`, :attr:`api_url` and :meth:`set_policy`. The services are attributes
    (``membership``, ``status_service``, ``ledger_service``, ``tickets``, ``delegation``,
    ``requester``, ``duels``) for tools and tests that need more."""

    def __init__(self, config: NodeConfig, identity: Identity, overlay: Overlay, executor: Executor,
                 genesis: Genesis, store: LedgerStore, runtime: Runtime):
        self.config = config
        self.genesis = genesis
        self.identity = identity
        self.overlay = overlay
        self.executor = executor
        self.runtime = runtime
        self.metrics = NodeMetrics()
        self.stats = NodeStats()
        self.api_url = ""
        #: False until open_node has started every service (``GET /health`` answers 503 before)
        self.ready = False
        me, sign, cfg = identity.peer_id, identity.sign, config
        self.rng = rng = random.Random(cfg.node.seed)
        # A restart must announce a larger incarnation: wall-clock milliseconds at start.
        self.incarnation = incarnation = runtime.clock.wall_ms()
        self._policy = cfg.policy
        self.membership = Membership(me, cfg.status.peer_table(), overlay, runtime)
        self.ledger_service = LedgerService(
            Ledger(genesis), store, me=me, sign=sign, overlay=overlay, runtime=runtime, config=cfg.ledger,
            max_frame=cfg.delegation.max_frame, rng=rng, alive_peers=self.membership.alive_peers,
            stake_target=self._stake_target, incarnation=incarnation, on_change=self.ledger_changed)
        self.tickets = TicketDesk(me, genesis.network_id, sign, runtime.clock, lambda: self.ledger,
                                  self.ledger_service.submit, self.metrics, incarnation=incarnation,
                                  ticket_ttl_s=cfg.ledger.ticket_ttl, targets=self.membership.alive_peers,
                                  claim_every=cfg.ledger.claim_every, claim_interval_s=cfg.ledger.claim_interval)
        # payment channels: the desk opens, claims and closes them on the ledger's tick, and
        # answers "can this requester pay us" from its channels (issue 18)
        self.ledger_service.tick_hooks.append(self.tickets.tick)
        self.ledger_service.pays_us = self.tickets.can_pay_us
        self.tickets.pull = self.ledger_service.request_pull
        # executor metrics (tokens, TTFT, TPOT) by origin: peers' work and our users' work
        self.delegation = DelegationServer(
            me, genesis.network_id, MeteredExecutor(executor, self.metrics, "peer"), cfg.policy, cfg.delegation, self.tickets, self.ledger_service, sign,
            runtime, rng, self.metrics, self.stats, max_bond=cfg.duel.max_bond, on_change=self.status_changed)
        self.duels = DuelService(
            me, genesis.network_id, overlay, self.membership, self.ledger_service, self.tickets, sign, runtime, rng,
            cfg.duel, self.metrics, max_frame=cfg.delegation.max_frame,
            exploration_share=cfg.policy.exploration_share, judge=_make_judge(cfg, executor))
        self.requester = Requester(
            me, genesis.network_id, overlay, MeteredExecutor(executor, self.metrics, "local"), self.membership, self.ledger_service, self.tickets, runtime,
            rng, cfg.policy, DispatchLimits(cfg.delegation.max_attempts, cfg.delegation.max_retries,
                                            cfg.delegation.retry_delay, cfg.duel.duel_rate),
            cfg.delegation, cfg.duel.probe_grace, self.metrics, self.stats, self.duels,
            slots=self.delegation.slots)
        self.duels.on_lost.append(self.requester.duel_lost)  # a lost duel feeds local reputation
        self.ledger_service.tick_hooks.append(self.duels.release_bonds)  # duel bonds back (issue 18)
        local = LocalState(
            models=executor.models, load=executor.load, accepting=self.delegation.accepting,
            stake=lambda: self.ledger_service.stake_of(me), delegated_running=lambda: self.delegation.running,
            max_delegated=cfg.policy.max_delegated, addrs=overlay.addrs, api_url=lambda: self.api_url,
            ledger_digest=lambda: self.ledger.heads_digest(), judges=lambda: self.duels.judge is not None)
        self.status_service = StatusService(me, incarnation, genesis.network_id, overlay, self.membership, local,
                                            cfg.status, rng, self.metrics)
        self.membership.set_standing(self.ledger_service.is_member)  # known peers vs. the newcomer pool
        self.membership.subscribe(self.ledger_service.on_peer_events)
        self.membership.subscribe(self.requester.on_peer_events)
        overlay.set_stream_handler(DELEGATE_PROTOCOL, self.delegation.serve_stream)
        self.metrics.watch_defenses(self.defenses)  # issue 15: the flood counters in /metrics
        overlay.set_stream_handler(JUDGE_PROTOCOL, self.duels.serve_stream)

    # ------------------------------------------------------------ identity and state
    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    @property
    def network_id(self) -> str:
        """The network id: hash of the genesis (see :class:`~wwwserve_p2p.core.ledger.Genesis`)."""
        return self.genesis.network_id

    @property
    def ledger(self) -> Ledger:
        """This node's ledger replica (read it; entries go through ``ledger_service.submit``)."""
        return self.ledger_service.ledger

    @property
    def peers(self) -> PeerTable:
        """The peer table (owned by :attr:`membership`)."""
        return self.membership.table

    @property
    def delegated_running(self) -> int:
        """Delegated requests we execute or have offered to execute now."""
        return self.delegation.running

    @property
    def policy(self) -> OffloadPolicy:
        return self._policy

    def set_policy(self, policy: OffloadPolicy) -> None:
        """Change our offload/accept/stake policy while running (DESIGN §5: each provider sets
        its own); takes effect with the next decision."""
        self._policy = policy
        self.config = replace(self.config, policy=policy)
        self.delegation.policy = policy
        self.requester.policy = policy
        self.status_changed()

    def status_changed(self) -> None:
        """Ask the status service to publish soon (rate-limited by status.min_publish_gap)."""
        self.status_service.changed()

    def _stake_target(self, elapsed_s: float) -> int:
        stake = max(0, self.ledger.account(self.peer_id).stake)
        return stake_target(self._policy, self.executor.load(), stake, elapsed_s)

    def ledger_changed(self) -> None:
        """Refresh the ledger gauges of :attr:`metrics` (called after blocks were applied)."""
        self.metrics.update_ledger(self.ledger, self.peer_id)

    # ------------------------------------------------------------ serving
    def model_cards(self) -> list[ModelCard]:
        """Models served locally and by known live peers."""
        local = set(self.executor.models())
        net = self.membership.network_models()
        return [ModelCard(m, m in local, tuple(net.get(m, ()))) for m in sorted(local | set(net))]

    def generate(self, request: GenerationRequest) -> AsyncIterator[RoutedChunk]:
        """Serve ``request``: locally or offloaded per policy, with failover. An async generator
        of :class:`RoutedChunk`; see :class:`wwwserve_p2p.api.node_protocol.ServingNode`.

        On an executor failure mid-answer the request is re-dispatched with the text already
        delivered as ``continuation`` (or run locally), so the user gets one complete answer.

        :raises ModelNotFound: nobody serves ``request.model`` (raised at once).
        :raises NoExecutorAvailable: no executor could be found within the retry budget.
        :raises RemoteError, RequestTimeout: the last attempt failed and none remain.
        """
        if request.model not in self.executor.models() and request.model not in self.membership.network_models():
            raise ModelNotFound(request.model, [c.id for c in self.model_cards()])
        return self.requester.generate(request)

    # ------------------------------------------------------------ views for the HTTP API
    def status(self) -> dict[str, Any]:
        """JSON-serialisable status for ``GET /status``."""
        load = self.executor.load()
        pol = self._policy
        return {
            "peer_id": self.peer_id, "network_id": self.network_id, "addrs": self.overlay.addrs(),
            "api_url": self.api_url, "models": list(self.executor.models()), "executor": self.executor.kind,
            "load": {"load": round(load.load, 3), "running": load.running, "queued": load.queued,
                     "capacity": load.capacity, "kv_usage": load.kv_usage},
            "delegated_running": self.delegation.running,
            "policy": {k: getattr(pol, k) for k in ("target_load", "offload_frequency", "queue_frequency",
                                                     "accept_frequency", "max_delegated", "participate", "stake")},
            "connected_peers": len(self.overlay.connected_peers()),
            "defenses": self.defenses(),
            "peers": self._peer_rows(),
            "reach": self.overlay.reachability(),
            "stats": self.stats.summary(),
            "duels": self.duels.summary(self.config.duel.duel_rate),
            "ledger": {**self.ledger.account(self.peer_id).to_dict(), **self.ledger.summary(),
                       "queued_entries": self.ledger_service.queued()},
        }

    def _peer_rows(self) -> list[dict[str, Any]]:
        """The peer table, each row with ``connection``: direct, hole-punched, relayed or none."""
        kinds = self.overlay.connection_kinds()
        rows = self.membership.view(self.ledger_service.stake_of)
        for row in rows:
            row["connection"] = kinds.get(row["peer_id"], "none")
        return rows

    def defenses(self) -> dict[str, Any]:
        """Issue 15's counters: membership (peer table, newcomers, refused statuses, gated dials,
        pings) and the overlay's flood counters (``statistics()``: oversize, rate_limited,
        dropped, refused streams) where the overlay has them."""
        out: dict[str, Any] = {"membership": self.membership.defense_stats(),
                               "offers": {**self.delegation.offers.view(self.runtime.clock.monotonic()),
                                          "advertised_ttft_s": round(self.delegation.slots.ttft_s, 4)},
                               "reputation": self.requester.reputation.view(self.runtime.clock.monotonic()),
                               "silent_held": self.delegation.silent_held}
        stats = getattr(self.overlay, "statistics", None) or getattr(getattr(self.overlay, "inner", None),
                                                                        "statistics", None)
        if callable(stats):
            s = stats()
            out["overlay"] = {k: s[k] for k in ("gossip_received", "gossip_delivered", "gossip_rejected",
                                                "gossip_dropped", "streams_refused", "streams_idle_closed",
                                                "streams_open",
                                                "connected_peers", "routing_table", "connections_refused")
                              if k in s}
        try:  # trio tasks alive in this node (the churn soak's bounded-tasks figure)
            out["tasks_living"] = trio.lowlevel.current_statistics().tasks_living
        except RuntimeError:  # called outside the trio run
            pass
        return out

    def ledger_summary(self) -> dict[str, Any]:
        """``GET /ledger``: network, block counts, supply, burns, the state hash and our payment
        channels (``channels``: as requester ``out``, toward us ``in``, counters)."""
        return {**self.ledger_service.summary(), "channels": self.tickets.channels_view()}

    def ledger_accounts(self) -> dict[str, Any]:
        """``GET /ledger/accounts``: every account in our view (micro-credits)."""
        return self.ledger_service.accounts_view()

    def ledger_blocks(self, author: str, lo: int = 1, hi: int | None = None, limit: int = 100) -> dict[str, Any]:
        """``GET /ledger/blocks``: ``author``'s blocks (canonical JSON), or every chain head."""
        return self.ledger_service.blocks_view(author, lo, hi, limit)

    def transfer(self, to: str, amount: int) -> dict[str, Any]:
        """Queue a ``Transfer`` of ``amount`` micro-credits from us to ``to`` (``POST
        /admin/transfer``, ``wwwserve transfer``): sealed into our next block; ``to``'s node
        credits it with its own ``Receive`` when the block reaches it. Returns
        ``{"key", "from", "to", "amount", "spendable_after"}``.

        :raises InvalidRequest: ``to`` is not a PeerId or is us, ``amount`` not > 0, or more
            than we can spend (``Ledger.spendable`` minus transfers still queued).
        """
        from .core.ledger import Transfer
        from .errors import InvalidRequest
        from .core.crypto import public_bytes_from_peer_id
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise InvalidRequest(f"amount must be a positive integer of micro-credits, got {amount!r}")
        try:
            public_bytes_from_peer_id(to)
        except Exception:
            raise InvalidRequest(f"not an Ed25519 PeerId: {str(to)[:60]!r}") from None
        if to == self.peer_id:
            raise InvalidRequest("cannot transfer to ourselves")
        queued = self.ledger_service.queued_transfers()
        spendable = self.ledger.spendable(self.peer_id) - queued
        if amount > spendable:
            raise InvalidRequest(f"insufficient funds: {amount / 1e6:g} credits asked, {max(0, spendable) / 1e6:g} "
                                 "spendable (balance not staked, provable from our chain, minus queued transfers)")
        key = f"transfer:{self.runtime.clock.wall_ms()}:{self.rng.getrandbits(32):08x}"
        self.ledger_service.submit(key, Transfer(to, amount))
        return {"key": key, "from": self.peer_id, "to": to, "amount": amount, "unit": "micro-credits",
                "spendable_after": spendable - amount}

    def deny_peers(self, peers: list[str]) -> list[str]:
        """Replace the deny-list (``PUT /admin/denied-peers``): refused peers are also marked
        offline, so their in-flight work is re-dispatched. Returns the new list."""
        if isinstance(self.overlay, FilteredOverlay):
            lifted = self.overlay.denied - set(peers)
            self.overlay.deny(peers)
            for p in peers:
                self.membership.mark_unreachable(p)
            for p in sorted(lifted):  # a healed partition: compare ledgers at once
                self.ledger_service.request_pull(p)
        return sorted(peers)

    # ------------------------------------------------------------ loops
    async def _gauge_loop(self) -> None:
        last_busy = None
        while True:
            load = self.executor.load()
            self.metrics.load.set(load.load)
            self.metrics.running.set(load.running)
            self.metrics.queued.set(load.queued)
            for state, n in self.membership.counts().items():
                self.metrics.peers.labels(state).set(n)
            busy = load.load >= self._policy.target_load
            if busy != last_busy:  # crossing the target load is a significant change
                self.status_changed()
                last_busy = busy
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
    runtime: Runtime | None = None,
) -> AsyncIterator[Node]:
    """Start a node and keep it running until the context exits.

    - ``executor``: defaults to one built from ``config.executor`` (closed on exit). One passed
      in is started (:meth:`Executor.start`) and left open for the caller.
    - ``overlay``: defaults to the real libp2p overlay from ``config.net``; tests pass an
      in-memory one (:class:`wwwserve_p2p.testing.memory.MemoryNetwork`).
    - ``identity``: defaults to ``<data_dir>/identity.key`` (created on first run); with
      ``node.data_dir = ""`` a fresh in-memory identity.
    - ``genesis``: defaults to :meth:`NodeConfig.genesis` (``ledger.genesis`` or the dev genesis).
      The ledger lives in ``ledger.db`` (default ``<data_dir>/ledger.sqlite``; in memory when
      ``data_dir`` is ``""`` and ``ledger.db`` is unset).
    - ``runtime``: clock and blocking-work runner (default: the OS clock, worker threads);
      MockClock tests pass ``Runtime(VirtualClock(), run_inline)``.
    - The HTTP API runs only with ``api.enabled`` (the node's URL is then :attr:`Node.api_url`).

    :raises ConfigError: invalid configuration. :raises OverlayError: cannot listen.
    :raises StorageError: the ledger database cannot be opened (or belongs to another network).
    """
    data_dir = config.node.data_dir
    identity = identity or (Identity.load_or_create(data_dir) if data_dir else Identity.generate())
    runtime = runtime or Runtime()
    async with AsyncExitStack() as stack:
        if executor is None:
            from .executors import create_executor
            opts = dict(config.executor)
            executor = create_executor(opts.pop("kind"), opts)
            stack.push_async_callback(executor.aclose)
        await executor.start()
        if overlay is None:
            from .net.libp2p import open_libp2p_overlay
            overlay = await stack.enter_async_context(open_libp2p_overlay(identity, config.net))
        overlay = FilteredOverlay(overlay, config.net.deny_peers)
        genesis = genesis or config.genesis()
        db = config.ledger.db or (str(Path(data_dir) / "ledger.sqlite") if data_dir else ":memory:")
        store = LedgerStore.open(db, genesis)
        stack.callback(store.close)
        node = Node(config, identity, overlay, executor, genesis, store, runtime)
        restored = await runtime.run_blocking(node.ledger_service.restore)
        node.ledger_changed()
        acc = node.ledger.account(node.peer_id)
        log.info("ledger of network %s (%s): %d blocks restored, balance %d, stake %d", genesis.network,
                 genesis.network_id, restored, acc.balance, acc.stake)
        async with trio.open_nursery() as nursery:
            runtime.nursery = nursery
            try:
                if config.api.enabled:
                    from .api.server import serve_api
                    host, port = await nursery.start(partial(serve_api, node, config.api.host, config.api.port,
                                                             max_tokens_cap=config.api.max_tokens_cap,
                                                             admin=config.api.admin))
                    node.api_url = config.api.public_url or f"http://{host}:{port}"
                await nursery.start(node.ledger_service.run)
                await nursery.start(node.status_service.run)
                nursery.start_soon(run_discovery_service, overlay, node.membership, executor, node.network_id,
                                   config.net.discovery_interval)
                nursery.start_soon(node._gauge_loop)
                log.info("node %s up: models %s, overlay %s, API %s", node.peer_id, list(executor.models()),
                         overlay.addrs(), node.api_url or "disabled")
                node.ready = True
                yield node
            finally:
                nursery.cancel_scope.cancel()
        runtime.nursery = None
