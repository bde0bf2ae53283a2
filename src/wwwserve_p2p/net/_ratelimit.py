"""Per-key token buckets (pure; no libp2p, no clock: ``now`` is an argument).

Used by the libp2p overlay to limit inbound gossip per source peer, replacing py-libp2p's
own "spam protection" (which counts our own publishes and drops silently).
"""

from __future__ import annotations

from collections.abc import Hashable


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens/s refill, at most ``burst`` tokens.

    A new key starts full. To bound memory, when more than ``max_keys`` keys are tracked the
    buckets that are full again (idle keys) are forgotten; if none is, the oldest half goes.
    """

    __slots__ = ("rate", "burst", "max_keys", "_buckets")

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000):
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate must be > 0, burst >= 1, max_keys >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, last)

    def allow(self, key: Hashable, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket at time ``now`` (seconds); False if empty."""
        entry = self._buckets.get(key)
        if entry is None:
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            tokens = float(self.burst)
        else:
            tokens, last = entry
            tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return True
        self._buckets[key] = (tokens, now)
        return False

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + max(0.0, now - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            for k in list(self._buckets)[: len(self._buckets) // 2 + 1]:
                del self._buckets[k]
