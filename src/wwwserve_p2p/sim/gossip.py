"""GossipSub at the message level: mesh, forwarding, IHAVE/IWANT recovery, per-node CPU.

The model of one topic (the ``status`` topic of DESIGN §3), with GossipSub v1.1's parameters
(Vyzovitis et al., "GossipSub: Attack-Resilient Message Propagation in the Filecoin and ETH2.0
Networks", 2020; the libp2p gossipsub spec): every node keeps ``D`` mesh peers (bounds
``D_lo``/``D_hi``); it forwards the first copy of each message to all its mesh peers except the
one it came from (the publisher sends to all of its mesh peers; no flood publishing, as in
py-libp2p); duplicates are counted and dropped. Every ``heartbeat`` seconds a node sends IHAVE
with the ids of the messages it received in the last ``history_gossip`` heartbeats to
``D_lazy`` connected non-mesh peers; a peer missing one answers IWANT and gets the message.

- The mesh is a random D-regular graph (``networkx.random_regular_graph``; a complete graph
  when N <= D + 1), which is what GossipSub's GRAFT/PRUNE converges to on a well-connected
  network; each node also holds ``extra_conns`` random non-mesh connections (the DHT's), the
  IHAVE targets.
- Each transmission takes the :class:`~.netmodel.NetModel` one-way delay plus serialisation,
  and is lost with the model's loss probability (no retransmission: gossip repairs it).
- CPU: each node processes its work (``cpu_recv_s`` per copy received, ``cpu_send_s`` per copy
  sent, ``cpu_deliver_s`` per first copy: decode + validate + signature check) one item at a
  time, FIFO; each node has its own core, unless ``host_cores`` is set (the benchmark's N
  processes on one host): then every cost is stretched by the host's contention
  (:func:`run_stream`). This is what dominates the real 127.0.0.1 benchmark (py-libp2p spends
  ~3 ms of CPU per copy, see ``benchmarks/gossip_latency.py``'s "CPU ms/delivery").

:func:`run_stream` publishes ``messages`` messages at an aggregate rate from seeded random
publishers and returns per-message first/last receipt latencies, the delivery ratio, and copies
and control messages per node — the same statistics ``benchmarks/gossip_latency.py`` reports.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass

from ..errors import ConfigError
from .netmodel import NetModel


@dataclass(frozen=True)
class GossipParams:
    """GossipSub parameters (seconds, counts, bytes) and the CPU cost model (seconds)."""

    D: int = 6
    D_lo: int = 4
    D_hi: int = 12
    D_lazy: int = 6
    heartbeat: float = 1.0
    history_gossip: int = 3
    extra_conns: int = 8
    msg_bytes: int = 1024
    ihave_id_bytes: int = 48
    cpu_recv_s: float = 0.0
    cpu_send_s: float = 0.0
    cpu_deliver_s: float = 0.0
    host_cores: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.D_lo <= self.D <= self.D_hi:
            raise ConfigError("gossip: need 1 <= D_lo <= D <= D_hi")
        if self.heartbeat <= 0 or self.history_gossip < 0 or self.D_lazy < 0 or self.extra_conns < 0:
            raise ConfigError("gossip: need heartbeat > 0 and non-negative counts")
        if self.host_cores is not None and self.host_cores < 1:
            raise ConfigError("gossip: host_cores must be >= 1 or None")


def build_mesh(n: int, params: GossipParams, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """(mesh adjacency, non-mesh connections) of ``n`` nodes: a random ``D``-regular graph
    (complete when ``n <= D + 1``; ``D`` lowered by one when ``n * D`` is odd) and up to
    ``extra_conns`` random non-mesh peers per node (symmetric)."""
    import networkx as nx

    if n < 2:
        return [[] for _ in range(n)], [[] for _ in range(n)]
    if n <= params.D + 1:
        mesh = [[j for j in range(n) if j != i] for i in range(n)]
    else:
        d = params.D if (n * params.D) % 2 == 0 else params.D - 1
        g = nx.random_regular_graph(d, n, seed=seed)
        mesh = [sorted(g.neighbors(i)) for i in range(n)]
    rng = random.Random(f"conns:{seed}")
    extra: list[set[int]] = [set() for _ in range(n)]
    meshset = [set(m) for m in mesh]
    want = min(params.extra_conns, max(0, n - 1 - params.D))
    for i in range(n):
        tries = 0
        while len(extra[i]) < want and tries < 4 * want + 8:
            tries += 1
            j = rng.randrange(n)
            if j == i or j in meshset[i] or j in extra[i] or len(extra[j]) >= 2 * want:
                continue
            extra[i].add(j)
            extra[j].add(i)
    return mesh, [sorted(e) for e in extra]


def mesh_hops(mesh: list[list[int]], src: int) -> list[int]:
    """BFS hop count from ``src`` to every node over the mesh (-1 = unreachable)."""
    hops = [-1] * len(mesh)
    hops[src] = 0
    q = deque([src])
    while q:
        v = q.popleft()
        for w in mesh[v]:
            if hops[w] < 0:
                hops[w] = hops[v] + 1
                q.append(w)
    return hops


def run_stream(net: NetModel, params: GossipParams, messages: int, rate: float, seed: int,
               mesh: tuple[list[list[int]], list[list[int]]] | None = None,
               t_end_extra: float = 6.0, background_util: float = 0.0) -> dict:
    """Publish ``messages`` messages at ``rate`` per second (spacing 1/rate, publishers drawn
    at random with ``seed``) on the ``net.n`` nodes and simulate their dissemination.

    With ``params.host_cores`` set (N processes on one host), CPU contention is modelled as a
    slowdown of every CPU cost by ``1 / (1 - rho)`` (the M/M/1 waiting-time factor), where
    ``rho`` = (the stream's CPU demand, counted by a first pass without contention, +
    ``background_util`` cores of other load) / ``host_cores``, capped at 0.95.

    Returns a dict: ``delivery`` (receipts / (messages x (N-1)) by the end), ``first_ms`` and
    ``last_ms`` (per message: earliest/latest receipt after publish; messages that did not
    reach everyone count their last receiver), ``dups_per_delivery``, ``copies_recv_per_msg``
    and ``copies_sent_per_msg`` (per node per message), ``ihave_per_node_per_s``,
    ``iwant_per_node_per_s``, ``mean_hops``, ``max_hops``, ``recovered_by_gossip``,
    ``cpu_s_per_delivery`` and ``rho``/``slowdown`` (1.0 without host sharing).
    """
    n = net.n
    if n < 2 or messages < 1 or rate <= 0:
        raise ConfigError("run_stream: need >= 2 nodes, >= 1 message and rate > 0")
    m_ = mesh or build_mesh(n, params, seed)
    res = _stream(net, params, messages, rate, seed, m_, t_end_extra, 1.0)
    res["rho"], res["slowdown"] = 0.0, 1.0
    if params.host_cores:
        dur = messages / rate
        demand = res["cpu_s_total"] / dur + background_util
        rho = min(0.95, demand / params.host_cores)
        slow = 1.0 / (1.0 - rho)
        res = _stream(net, params, messages, rate, seed, m_, t_end_extra, slow)
        res["rho"], res["slowdown"] = rho, slow
    return res


def _stream(net: NetModel, params: GossipParams, messages: int, rate: float, seed: int,
            mesh: tuple[list[list[int]], list[list[int]]], t_end_extra: float, slow: float) -> dict:
    n = net.n
    rng = random.Random(f"gossip:{seed}")
    meshadj, extra = mesh
    busy = [0.0] * n
    c_send, c_recv, c_deliver = params.cpu_send_s * slow, params.cpu_recv_s * slow, params.cpu_deliver_s * slow
    cpu_total = 0.0
    size = params.msg_bytes
    loss = net.config.loss
    hbp = params.heartbeat
    hb_next = [rng.random() * hbp for _ in range(n)]
    have: list[dict[int, float]] = [dict() for _ in range(n)]  # node -> msg -> receipt time
    recent: list[deque] = [deque() for _ in range(n)]  # (time, msg) for IHAVE windows
    pub_time = [0.0] * messages
    heap: list = []
    seq = 0
    recv = [0] * n
    sent = [0] * n
    ihave = iwant = recovered = 0
    for m in range(messages):
        t = m / rate
        pub_time[m] = t
        src = rng.randrange(n)
        seq += 1
        heapq.heappush(heap, (t, seq, 0, src, -1, m))
    # event kinds: 0 publish, 1 copy arrives, 2 heartbeat (IHAVE), 3 IHAVE arrives, 4 IWANT arrives
    t_stop = messages / rate + t_end_extra
    hb_window = params.history_gossip * hbp
    use_gossip = params.D_lazy > 0

    def cpu(v: int, t: float, cost: float) -> float:
        nonlocal cpu_total
        start = t if t > busy[v] else busy[v]
        busy[v] = end = start + cost
        cpu_total += cost
        return end

    def forward(v: int, m: int, t: float, exclude: int) -> None:
        nonlocal seq
        for w in meshadj[v]:
            if w == exclude:
                continue
            t_sent = cpu(v, t, c_send)
            sent[v] += 1
            if rng.random() < loss:
                continue
            seq += 1
            heapq.heappush(heap, (t_sent + net.owd(v, w) + net.tx_s(size), seq, 1, w, v, m))

    def received(v: int, m: int, t: float) -> None:
        nonlocal seq
        have[v][m] = t
        if not use_gossip or not extra[v]:
            return
        recent[v].append((t, m))
        while hb_next[v] <= t:
            hb_next[v] += hbp
        while hb_next[v] <= t + hb_window and hb_next[v] <= t_stop:
            seq += 1
            heapq.heappush(heap, (hb_next[v], seq, 2, v, -1, -1))
            hb_next[v] += hbp

    while heap:
        t, _, kind, v, frm, m = heapq.heappop(heap)
        if t > t_stop:
            break
        if kind == 0:
            t_done = cpu(v, t, c_deliver)  # encode + sign
            received(v, m, t)
            forward(v, m, t_done, -1)
        elif kind == 1:
            recv[v] += 1
            t_in = cpu(v, t, c_recv)
            if m in have[v]:
                continue
            t_ok = cpu(v, t_in, c_deliver)
            received(v, m, t_ok)
            if frm < -1:
                recovered += 1
            forward(v, m, t_ok, frm)
        elif kind == 2:
            rq = recent[v]
            while rq and rq[0][0] < t - hb_window:
                rq.popleft()
            ids = tuple(mm for tr, mm in rq if tr <= t)
            if not ids:
                continue
            for w in rng.sample(extra[v], min(params.D_lazy, len(extra[v]))):
                ihave += 1
                if rng.random() < loss:
                    continue
                seq += 1
                heapq.heappush(heap, (t + net.owd(v, w), seq, 3, w, v, ids))
        elif kind == 3:
            hv = have[v]
            missing = tuple(mm for mm in m if mm not in hv)
            if missing:
                iwant += 1
                seq += 1
                heapq.heappush(heap, (t + net.owd(v, frm), seq, 4, frm, v, missing))
        elif kind == 4:
            for mm in m:
                t_sent = cpu(v, t, c_send)
                sent[v] += 1
                seq += 1
                # frm = -2 - v marks a copy obtained by IWANT (counted as a gossip recovery)
                heapq.heappush(heap, (t_sent + net.owd(v, frm) + net.tx_s(size), seq, 1, frm, -2 - v, mm))
    firsts, lasts = [], []
    delivered = 0
    for m in range(messages):
        times = [have[v][m] - pub_time[m] for v in range(n) if m in have[v] and have[v][m] > pub_time[m]]
        delivered += len(times)
        if times:
            firsts.append(min(times) * 1000)
            lasts.append(max(times) * 1000)
    total_recv = sum(recv)
    hops = [h for h in mesh_hops(meshadj, 0) if h > 0]
    dur = messages / rate
    return {
        "nodes": n, "messages": messages, "rate": rate,
        "delivery": delivered / (messages * (n - 1)),
        "first_ms": _pcts(firsts), "last_ms": _pcts(lasts),
        "dups_per_delivery": (total_recv - delivered) / max(1, delivered),
        "copies_recv_per_msg": total_recv / messages / n,
        "copies_sent_per_msg": sum(sent) / messages / n,
        "ihave_per_node_per_s": ihave / n / dur, "iwant_per_node_per_s": iwant / n / dur,
        "recovered_by_gossip": recovered,
        "mean_hops": sum(hops) / max(1, len(hops)), "max_hops": max(hops, default=0),
        "cpu_s_total": cpu_total, "cpu_s_per_delivery": cpu_total / max(1, delivered),
    }


def _pcts(v: list[float]) -> dict[str, float]:
    if not v:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    s = sorted(v)

    def q(p: float) -> float:  # linear interpolation (numpy's default)
        x = p * (len(s) - 1)
        lo = int(x)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (x - lo)

    return {"p50": q(0.5), "p95": q(0.95), "p99": q(0.99), "mean": sum(s) / len(s)}
