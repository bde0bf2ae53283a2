"""Request counters of one node for ``/status`` and the demo's table."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..core.stats import percentile


@dataclass
class NodeStats:
    """Counters shared by the requester (our users' requests) and the delegation server (peers'
    requests). Latencies in seconds, the last 10,000 of each kind."""

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
