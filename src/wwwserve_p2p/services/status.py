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
from typing import TYPE_CHECKING

import trio

from ..core.types import PeerStatus
from ..errors import MalformedMessage, OverlayError
from ..net.base import GossipMessage
from ..wire import codec
from ._validated import Validated

if TYPE_CHECKING:
    from ..node import Node

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


def make_validator(node: "Node", decoded: DecodedStatuses | None = None):
    """Accept a status only if it decodes, is of our network, and its peer_id is the
    (signature-authenticated) gossip source. Accepted statuses go into ``decoded`` (if
    given) for the receive loop."""

    def validate(msg: GossipMessage) -> bool:
        try:
            status = codec.decode_status(msg.data, node.network_id)
        except MalformedMessage as exc:
            node.metrics.gossip_rejected.labels("status", "malformed").inc()
            log.debug("rejected status from %s: %s", msg.source, exc)
            return False
        if status.peer_id != msg.source:
            node.metrics.gossip_rejected.labels("status", "author_mismatch").inc()
            log.warning("status claiming %s published by %s rejected", status.peer_id, msg.source)
            return False
        if decoded is not None:
            decoded.put(msg, status)
        return True

    return validate


async def run_status_service(node: "Node", *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Subscribe, then run the receive, publish and sweep loops until cancelled."""
    topic = status_topic(node.network_id)
    decoded = DecodedStatuses()
    channel = await node.overlay.subscribe(topic, make_validator(node, decoded))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_receive_loop, node, channel, decoded)
        nursery.start_soon(_publish_loop, node, topic)
        nursery.start_soon(_sweep_loop, node)
        task_status.started()


async def _receive_loop(node: "Node", channel, decoded: DecodedStatuses) -> None:
    async for msg in channel:
        try:
            status = decoded.take(msg, node.network_id)
        except MalformedMessage:
            continue
        node.handle_peer_events(node.peers.observe(status, trio.current_time()), status)


async def _publish_loop(node: "Node", topic: str) -> None:
    cfg = node.config.status
    budget = PublishBudget(MAX_PUBLISHES_PER_INTERVAL / cfg.interval, PUBLISH_BURST)
    last = -1e9
    while True:
        now = trio.current_time()
        wait = max(cfg.min_publish_gap - (now - last), budget.wait_time(now))
        if wait > 0:
            await trio.sleep(wait)
        try:
            await node.overlay.publish(topic, codec.encode_status(node.make_status(), node.network_id))
        except OverlayError as exc:
            log.warning("status publish failed: %s", exc)
        last = trio.current_time()
        budget.take(last)
        period = cfg.interval * (1 + cfg.jitter * (2 * node.rng.random() - 1))
        with trio.move_on_after(period):
            await node.wait_status_changed()


async def _sweep_loop(node: "Node") -> None:
    interval = node.config.status.interval / 2
    while True:
        await trio.sleep(interval)
        node.handle_peer_events(node.peers.sweep(trio.current_time()))
