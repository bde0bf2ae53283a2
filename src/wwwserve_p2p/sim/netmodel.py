"""Network model of the simulator: where nodes are, and what a message between two costs.

Geography (the default, ``kind="geo"``): every node is placed in one of :data:`CITIES` (major
metros that host cloud regions and colocation sites), drawn with the listed weights, with a
per-node access ("last mile") one-way delay drawn uniformly from ``access_ms``. The one-way
delay between nodes a and b is::

    owd(a, b) = great_circle_km(city_a, city_b) * stretch / FIBRE_KM_PER_MS
                + access_a + access_b

- great-circle distance by the haversine formula on a sphere of radius 6,371 km;
- ``FIBRE_KM_PER_MS = 200``: light in silica fibre travels at c / n with refractive index
  n ~ 1.47, i.e. ~204 km per ms (the usual "1 ms of RTT per 100 km" rule);
- ``stretch = 1.5``: fibre routes are longer than the great circle. Singla et al., "The
  Internet at the Speed of Light", HotNets 2014, measured median ping RTTs of ~3.2x the
  c-latency (great circle at the speed of light in vacuum) between end hosts *including*
  access networks; 1.5 x 1.47 = 2.2x plus 2-10 ms of access is the datacenter-to-datacenter
  end of that (e.g. New York - London: 5,570 km -> 84 ms RTT + access; measured public RTTs
  are ~70-80 ms; Frankfurt - London 640 km -> 10 ms + access).

``kind="local"``: every node on one host (the real benchmarks' 127.0.0.1): a fixed one-way
delay ``local_owd_ms`` (default 0.05 ms).

Bandwidth: each node has an uplink of ``uplink_mbps`` (default 1,000 Mbit/s, a datacenter
port); a message of B bytes costs ``8 B / uplink`` of serialisation on its sender. Loss:
each transmission is lost independently with probability ``loss`` (default 0.001); over TCP a
loss costs a retransmission timeout (:data:`MIN_RTO_S` or 2 RTTs if larger), in gossip the copy
is simply missing (GossipSub's IHAVE/IWANT recovers it, :mod:`.gossip`).

All randomness comes from a ``random.Random`` seeded by the caller.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ..errors import ConfigError

#: km of fibre per ms of one-way delay (c / 1.47)
FIBRE_KM_PER_MS = 200.0
EARTH_RADIUS_KM = 6371.0
#: Linux TCP's minimum retransmission timeout (RFC 6298 recommends 1 s; Linux uses 200 ms)
MIN_RTO_S = 0.2

#: (name, latitude, longitude, weight): metros hosting cloud regions / IXPs. Weights are an
#: assumption of where GPU providers sit (North America ~38 %, Europe ~32 %, Asia-Pacific ~25 %,
#: South America / Africa / Middle East ~5 %).
CITIES: tuple[tuple[str, float, float, float], ...] = (
    ("Ashburn", 39.04, -77.49, 8), ("New York", 40.71, -74.01, 5), ("Chicago", 41.88, -87.63, 3),
    ("Dallas", 32.78, -96.80, 3), ("Atlanta", 33.75, -84.39, 2), ("Toronto", 43.65, -79.38, 2),
    ("San Jose", 37.34, -121.89, 6), ("Los Angeles", 34.05, -118.24, 3), ("Seattle", 47.61, -122.33, 3),
    ("Montreal", 45.50, -73.57, 1), ("Phoenix", 33.45, -112.07, 2),
    ("London", 51.51, -0.13, 7), ("Frankfurt", 50.11, 8.68, 7), ("Amsterdam", 52.37, 4.90, 5),
    ("Paris", 48.86, 2.35, 4), ("Stockholm", 59.33, 18.07, 2), ("Dublin", 53.35, -6.26, 2),
    ("Madrid", 40.42, -3.70, 1), ("Milan", 45.46, 9.19, 1), ("Warsaw", 52.23, 21.01, 1),
    ("Helsinki", 60.17, 24.94, 2),
    ("Tokyo", 35.68, 139.69, 6), ("Singapore", 1.35, 103.82, 5), ("Seoul", 37.57, 126.98, 3),
    ("Hong Kong", 22.32, 114.17, 3), ("Mumbai", 19.08, 72.88, 2), ("Sydney", -33.87, 151.21, 2),
    ("Beijing", 39.90, 116.40, 2), ("Shanghai", 31.23, 121.47, 2),
    ("Sao Paulo", -23.55, -46.63, 2), ("Johannesburg", -26.20, 28.05, 1), ("Dubai", 25.20, 55.27, 1),
    ("Tel Aviv", 32.09, 34.78, 1),
)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in km between two (latitude, longitude) points in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class NetConfig:
    """``kind``: ``geo`` or ``local``; ``stretch``: fibre path / great circle; ``access_ms``:
    (lo, hi) one-way access delay per node, ms; ``local_owd_ms``: one-way delay of ``local``;
    ``uplink_mbps``: per-node uplink; ``loss``: per-transmission loss probability in [0, 1)."""

    kind: str = "geo"
    stretch: float = 1.5
    access_ms: tuple[float, float] = (1.0, 5.0)
    local_owd_ms: float = 0.05
    uplink_mbps: float = 1000.0
    loss: float = 0.001

    def __post_init__(self) -> None:
        if self.kind not in ("geo", "local"):
            raise ConfigError(f"net kind must be 'geo' or 'local', got {self.kind!r}")
        if not (self.stretch >= 1 and self.uplink_mbps > 0 and 0 <= self.loss < 1 and self.local_owd_ms >= 0):
            raise ConfigError("need stretch >= 1, uplink_mbps > 0, 0 <= loss < 1, local_owd_ms >= 0")
        lo, hi = self.access_ms
        if not 0 <= lo <= hi:
            raise ConfigError("access_ms must be (lo, hi) with 0 <= lo <= hi")


@dataclass
class NetModel:
    """Placement of ``n`` node slots and their pairwise one-way delays (seconds).

    Slot ``i`` has ``city[i]`` (index into :data:`CITIES`; -1 for ``local``) and
    ``access_s[i]``. :meth:`owd` is O(1) (a city x city matrix). A node that replaces another
    in a slot (churn) keeps the slot's place.
    """

    config: NetConfig
    n: int
    seed: int = 0
    city: list[int] = field(init=False)
    access_s: list[float] = field(init=False)
    _cc: list[list[float]] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(f"netmodel:{self.seed}")
        cfg = self.config
        if cfg.kind == "local":
            self.city = [-1] * self.n
            self.access_s = [cfg.local_owd_ms / 2000.0] * self.n
            self._cc = [[0.0]]
            return
        weights = [c[3] for c in CITIES]
        self.city = rng.choices(range(len(CITIES)), weights=weights, k=self.n)
        lo, hi = cfg.access_ms
        self.access_s = [rng.uniform(lo, hi) / 1000.0 for _ in range(self.n)]
        self._cc = [[great_circle_km(a[1], a[2], b[1], b[2]) * cfg.stretch / FIBRE_KM_PER_MS / 1000.0
                     for b in CITIES] for a in CITIES]

    def owd(self, a: int, b: int) -> float:
        """One-way propagation + access delay from slot ``a`` to slot ``b``, seconds."""
        if a == b:
            return 0.0
        return self._cc[self.city[a]][self.city[b]] + self.access_s[a] + self.access_s[b]

    def rtt(self, a: int, b: int) -> float:
        return 2.0 * self.owd(a, b)

    def tx_s(self, nbytes: int) -> float:
        """Serialisation time of ``nbytes`` on a sender's uplink, seconds."""
        return nbytes * 8.0 / (self.config.uplink_mbps * 1e6)

    def tcp_delay(self, a: int, b: int, nbytes: int, u: float) -> float:
        """Delivery time of one message over an established TCP stream (``u``: a uniform
        variate for the loss draw): owd + serialisation, plus a retransmission timeout
        (max(MIN_RTO_S, 2 RTT)) when the draw says the first transmission was lost."""
        d = self.owd(a, b) + self.tx_s(nbytes)
        if u < self.config.loss:
            d += max(MIN_RTO_S, 2.0 * self.rtt(a, b))
        return d

    def rtt_stats(self, pairs: int = 20000, seed: int = 0) -> dict[str, float]:
        """p50/p90/p99/mean RTT (ms) over random slot pairs (a summary for reports)."""
        rng = random.Random(seed)
        if self.n < 2:
            return {"p50_ms": 0.0, "p90_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0}
        v = sorted(self.rtt(*rng.sample(range(self.n), 2)) * 1000 for _ in range(pairs))
        q = lambda p: v[min(len(v) - 1, int(p * len(v)))]  # noqa: E731
        return {"p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "mean_ms": sum(v) / len(v)}
