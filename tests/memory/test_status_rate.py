"""Status gossip stays bounded: however often a node's status changes, it publishes on average
at most MAX_PUBLISHES_PER_INTERVAL statuses per interval (so a node receives O(N) status
messages per minute from N peers), and the periodic publishes never stop."""

from __future__ import annotations

import pytest
import trio

from wwwserve_p2p.executors.echo import EchoExecutor
from wwwserve_p2p.services import status as status_service
from wwwserve_p2p.services.status import MAX_PUBLISHES_PER_INTERVAL, PUBLISH_BURST, PublishBudget, status_topic
from wwwserve_p2p.testing.swarm import open_swarm


def test_publish_budget_refills_at_its_rate_and_caps_bursts():
    b = PublishBudget(rate=1.0, burst=3)
    for _ in range(3):
        assert b.wait_time(0.0) == 0.0
        b.take(0.0)
    assert b.wait_time(0.0) == pytest.approx(1.0)
    assert b.wait_time(0.5) == pytest.approx(0.5)
    assert b.wait_time(100.0) == 0.0  # refilled, but never beyond the burst
    for _ in range(3):
        b.take(100.0)
    assert b.wait_time(100.0) > 0
    with pytest.raises(ValueError):
        PublishBudget(rate=0.0, burst=1)


async def _count_status_publishes(node) -> list[float]:
    """Wrap ``node.overlay.publish``; returns the list the status publish times go into."""
    times: list[float] = []
    topic = status_topic(node.network_id)
    publish = node.overlay.publish

    async def counting(t: str, data: bytes) -> None:
        if t == topic:
            times.append(trio.current_time())
        await publish(t, data)

    node.overlay.publish = counting
    return times


async def test_status_changes_every_10ms_stay_within_the_publish_budget(autojump_clock):
    async with open_swarm([EchoExecutor(models=("echo",)) for _ in range(3)]) as swarm:
        node = swarm[0]
        interval = node.config.status.interval
        times = await _count_status_publishes(node)
        window = 60.0
        async with trio.open_nursery() as nursery:

            async def churn() -> None:
                while True:
                    node.status_changed()
                    await trio.sleep(0.01)

            nursery.start_soon(churn)
            t0 = trio.current_time()
            await trio.sleep(window)
            nursery.cancel_scope.cancel()
        bound = window * MAX_PUBLISHES_PER_INTERVAL / interval + PUBLISH_BURST
        assert len(times) <= bound, (len(times), bound)
        assert len(times) >= window / interval  # changes do publish more often than the period ...
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert min(gaps) >= node.config.status.min_publish_gap - 1e-9
        assert max(gaps) <= interval  # ... and the periodic publish is never starved
        assert times[0] - t0 <= interval
        # peers still see it alive
        assert node.peer_id in swarm[1].peers.alive_peers(trio.current_time())


async def test_quiet_node_publishes_once_per_interval(autojump_clock):
    async with open_swarm([EchoExecutor(models=("echo",)) for _ in range(2)]) as swarm:
        node = swarm[0]
        interval = node.config.status.interval
        times = await _count_status_publishes(node)
        await trio.sleep(20 * interval)
        jitter = node.config.status.jitter
        assert 20 / (1 + jitter) - 1 <= len(times) <= 20 / (1 - jitter) + 1


def test_the_service_decodes_each_accepted_status_once(monkeypatch):
    """The validator's decoding is handed to the receive loop (DecodedStatuses)."""
    from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
    from wwwserve_p2p.net.base import GossipMessage
    from wwwserve_p2p.wire import codec

    calls = []
    real = codec.decode_status

    def counting(data, network_id):
        calls.append(1)
        return real(data, network_id)

    monkeypatch.setattr(status_service.codec, "decode_status", counting)

    class Shim:
        network_id = "net"

        class metrics:  # noqa: N801 - the attribute shape make_validator expects
            class gossip_rejected:  # noqa: N801
                @staticmethod
                def labels(*_):
                    raise AssertionError("nothing is rejected here")

    st = PeerStatus(peer_id="12D3KooWpeer", incarnation=1, seq=7, models=("m",),
                    load=LoadSnapshot(capacity=2), accepting=True)
    msg = GossipMessage("/wwwserve/net/status", codec.encode_status(st, "net"), "12D3KooWpeer", "12D3KooWpeer")
    decoded = status_service.DecodedStatuses(max_entries=2)
    validate = status_service.make_validator(Shim.network_id, Shim.metrics, decoded)
    assert validate(msg)
    assert decoded.take(msg, "net") == st
    assert len(calls) == 1
    # not kept (e.g. another overlay, or evicted): decoded again
    assert decoded.take(msg, "net") == st and len(calls) == 2
    for i in range(5):  # bounded
        validate(GossipMessage(msg.topic, msg.data, msg.source, f"fwd{i}"))
    assert len(decoded._entries) == 2
