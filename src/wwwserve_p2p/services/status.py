"""Peer-status gossip: publish our status, fold peers' statuses into the peer table, sweep
silent peers (DESIGN §3). Thin: decisions live in :mod:`wwwserve_p2p.core.peers`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from ..errors import MalformedMessage, OverlayError
from ..net.base import GossipMessage
from ..wire import codec

if TYPE_CHECKING:
    from ..node import Node

log = logging.getLogger("wwwserve_p2p.status")


def status_topic(network_id: str) -> str:
    return f"/wwwserve/{network_id}/status"


def make_validator(node: "Node"):
    """Accept a status only if it decodes, is of our network, and its peer_id is the
    (signature-authenticated) gossip source."""

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
        return True

    return validate


async def run_status_service(node: "Node", *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Subscribe, then run the receive, publish and sweep loops until cancelled."""
    topic = status_topic(node.network_id)
    channel = await node.overlay.subscribe(topic, make_validator(node))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_receive_loop, node, channel)
        nursery.start_soon(_publish_loop, node, topic)
        nursery.start_soon(_sweep_loop, node)
        task_status.started()


async def _receive_loop(node: "Node", channel) -> None:
    async for msg in channel:
        try:
            status = codec.decode_status(msg.data, node.network_id)
        except MalformedMessage:
            continue
        node.handle_peer_events(node.peers.observe(status, trio.current_time()), status)


async def _publish_loop(node: "Node", topic: str) -> None:
    cfg = node.config.status
    last = -1e9
    while True:
        gap = trio.current_time() - last
        if gap < cfg.min_publish_gap:
            await trio.sleep(cfg.min_publish_gap - gap)
        try:
            await node.overlay.publish(topic, codec.encode_status(node.make_status(), node.network_id))
        except OverlayError as exc:
            log.warning("status publish failed: %s", exc)
        last = trio.current_time()
        period = cfg.interval * (1 + cfg.jitter * (2 * node.rng.random() - 1))
        with trio.move_on_after(period):
            await node.wait_status_changed()


async def _sweep_loop(node: "Node") -> None:
    interval = node.config.status.interval / 2
    while True:
        await trio.sleep(interval)
        node.handle_peer_events(node.peers.sweep(trio.current_time()))
