"""Peer-status gossip: publish our status, fold peers' statuses into the peer table, sweep
silent peers (DESIGN §3). Thin: decisions live in :mod:`wwwserve_p2p.core.peers`.

Load bound: a node publishes its status every ``status.interval`` (jittered) and on
significant change, never closer than ``status.min_publish_gap`` and, through a token
bucket, on average at most :data:`MAX_PUBLISHES_PER_INTERVAL` times per interval (bursts of
:data:`PUBLISH_BURST`). So each node receives at most ``N * MAX_PUBLISHES_PER_INTERVAL /
interval`` status messages per second from N peers (120·N per minute at the default 2 s
interval): O(N) per node, however often loads change.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import trio

from ..config import StatusSection
from ..core.types import LoadSnapshot, PeerStatus
from ..errors import MalformedMessage, OverlayError
from ..metrics import NodeMetrics
from ..net.base import GossipMessage, Overlay
from ..wire import codec
from ._validated import Validated
from .membership import Membership

log = logging.getLogger("wwwserve_p2p.status")

#: Average cap on status publishes per ``status.interval`` (periodic ones included).
MAX_PUBLISHES_PER_INTERVAL = 4.0
#: Publishes that may follow each other at ``min_publish_gap`` before the average applies.
PUBLISH_BURST = 4


def status_topic(network_id: str) -> str:
    return f"/wwwserve/{network_id}/status"


class DecodedStatuses(Validated[PeerStatus]):
    """Statuses the validator decoded, handed to the receive loop (see :class:`Validated`)."""

    def take(self, msg: GossipMessage, network_id: str) -> PeerStatus:  # type: ignore[override]
        """The status in ``msg``: the validator's decoding if kept, else decoded now.

        :raises MalformedMessage: ``msg`` does not decode."""
        return super().take(msg, lambda data: codec.decode_status(data, network_id))


class PublishBudget:
    """Token bucket for status publishes: ``rate`` per second on average, ``burst`` at once.
    Pure; ``now`` is in seconds (trio's clock in the service)."""

    def __init__(self, rate: float, burst: int):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = float(rate), float(burst)
        self._tokens, self._last = float(burst), None

    def _refill(self, now: float) -> None:
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = now

    def wait_time(self, now: float) -> float:
        """Seconds until one publish is allowed (0 if now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        """Spend one publish (may go below zero if forced)."""
        self._refill(now)
        self._tokens -= 1.0


def make_validator(network_id: str, metrics: NodeMetrics, decoded: DecodedStatuses | None = None,
                   admit: Callable[[str, str], bool] | None = None):
    """Accept a status only if it decodes, is of our network, and its peer_id is the
    (signature-authenticated) gossip source, and ``admit(author, forwarder)`` (if given:
    :meth:`Membership.admit_status`, the newcomer budget) allows it. Accepted statuses go
    into ``decoded`` (if given) for the receive loop."""

    def validate(msg: GossipMessage) -> bool:
        try:
            status = codec.decode_status(msg.data, network_id)
        except MalformedMessage as exc:
            metrics.gossip_rejected.labels("status", "malformed").inc()
            log.debug("rejected status from %s: %s", msg.source, exc)
            return False
        if status.peer_id != msg.source:
            metrics.gossip_rejected.labels("status", "author_mismatch").inc()
            log.debug("status claiming %s published by %s rejected", status.peer_id, msg.source)
            return False
        if admit is not None and not admit(status.peer_id, msg.received_from):
            metrics.gossip_rejected.labels("status", "newcomer_rate").inc()
            return False
        if decoded is not None:
            decoded.put(msg, status)
        return True

    return validate


class LocalState:
    """What our status says about us, each read when a status is published: ``models()``,
    ``load()``, ``accepting()`` (we take delegated work now), ``stake()`` (selectable,
    micro-credits), ``delegated_running()``, ``max_delegated``, ``addrs()``, ``api_url()``,
    ``ledger_digest()``, ``judges`` (we judge duels)."""

    def __init__(self, *, models: Callable[[], tuple[str, ...]], load: Callable[[], LoadSnapshot],
                 accepting: Callable[[], bool], stake: Callable[[], int], delegated_running: Callable[[], int],
                 max_delegated: int, addrs: Callable[[], list[str]], api_url: Callable[[], str],
                 ledger_digest: Callable[[], str], judges: Callable[[], bool]):
        self.models, self.load, self.accepting, self.stake = models, load, accepting, stake
        self.delegated_running, self.max_delegated, self.addrs = delegated_running, max_delegated, addrs
        self.api_url, self.ledger_digest, self.judges = api_url, ledger_digest, judges


class StatusService:
    """Publishes our status, folds peers' statuses into :class:`Membership`, sweeps silent
    peers. Owns our status sequence number and the "changed" signal."""

    def __init__(self, me: str, incarnation: int, network_id: str, overlay: Overlay, membership: Membership,
                 local: LocalState, config: StatusSection, rng: random.Random, metrics: NodeMetrics):
        self.me, self.incarnation, self.network_id = me, incarnation, network_id
        self.overlay, self.membership, self.local = overlay, membership, local
        self.config, self.rng, self.metrics = config, rng, metrics
        self.topic = status_topic(network_id)
        self.seq = 0
        self._changed = trio.Event()

    def make_status(self) -> PeerStatus:
        """Our current status (increments the sequence number)."""
        self.seq += 1
        s = self.local
        return PeerStatus(
            peer_id=self.me, incarnation=self.incarnation, seq=self.seq, models=tuple(s.models()), load=s.load(),
            accepting=s.accepting(), stake=s.stake(), delegated_running=s.delegated_running(),
            max_delegated=s.max_delegated, addrs=tuple(s.addrs()), api_url=s.api_url(),
            ledger_digest=s.ledger_digest(), judges=s.judges())

    def changed(self) -> None:
        """Ask for a publish soon (rate-limited by ``status.min_publish_gap`` and the budget)."""
        self._changed.set()

    async def _wait_changed(self) -> None:
        await self._changed.wait()
        self._changed = trio.Event()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Subscribe, then run the receive, publish and sweep loops until cancelled."""
        decoded = DecodedStatuses()
        channel = await self.overlay.subscribe(self.topic, make_validator(self.network_id, self.metrics, decoded,
                                                                         self.membership.admit_status))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive_loop, channel, decoded)
            nursery.start_soon(self._publish_loop)
            nursery.start_soon(self._sweep_loop)
            task_status.started()

    async def _receive_loop(self, channel, decoded: DecodedStatuses) -> None:
        async for msg in channel:
            try:
                status = decoded.take(msg, self.network_id)
            except MalformedMessage:
                continue
            self.membership.observe(status)

    async def _publish_loop(self) -> None:
        cfg = self.config
        budget = PublishBudget(MAX_PUBLISHES_PER_INTERVAL / cfg.interval, PUBLISH_BURST)
        last = -1e9
        while True:
            now = trio.current_time()
            wait = max(cfg.min_publish_gap - (now - last), budget.wait_time(now))
            if wait > 0:
                await trio.sleep(wait)
            try:
                await self.overlay.publish(self.topic, codec.encode_status(self.make_status(), self.network_id))
            except OverlayError as exc:
                log.warning("status publish failed: %s", exc)
            last = trio.current_time()
            budget.take(last)
            period = cfg.interval * (1 + cfg.jitter * (2 * self.rng.random() - 1))
            with trio.move_on_after(period):
                await self._wait_changed()

    async def _sweep_loop(self) -> None:
        while True:
            await trio.sleep(self.config.interval / 2)
            self.membership.sweep()
