"""A discrete-event simulator of a WWW.Serve network of 5 - 10,000 nodes on the real core.

    python -m wwwserve_p2p.sim.network --nodes 10000          # 10 simulated minutes
    python -m wwwserve_p2p.sim.network --quick                # 200 nodes, 2 minutes
    python -m wwwserve_p2p.sim.network --nodes 1000 --strategies single,centralized,wwwserve --out results/sim

What is real (the project's own code, called per simulated node, on the request path):

- :class:`~wwwserve_p2p.core.peers.PeerTable` per node (liveness: suspect / offline by silence),
- :class:`~wwwserve_p2p.core.dispatch.Dispatch` per user request (route, probe order, retries,
  re-dispatch with continuation after an executor is lost),
- :func:`~wwwserve_p2p.core.selection.order_candidates` (stake-weighted Efraimidis-Spirakis
  sampling, ``random``, ``p2c``) through ``Dispatch``,
- :func:`~wwwserve_p2p.core.policy.decide_accept` on the executor side of every probe,
- :class:`~wwwserve_p2p.core.types.PeerStatus` / :class:`LoadSnapshot` as gossiped.

What is modelled (and how; see each module):

- GPUs: :class:`.fluidgpu.FluidGPU`, the event-driven twin of :class:`.executor.SimulatedExecutor`
  (same roofline step times, batching, admission and chunked prefill).
- Network: :class:`.netmodel.NetModel` (geographic one-way delays, uplink bandwidth, loss with
  TCP retransmission timeouts on the request path).
- Status gossip: every node publishes a real ``PeerStatus`` every ``status_interval`` (+-10 %
  jitter) and when its ``accepting`` flag flips (at most every 0.25 s), as
  ``services/status.py`` does. Receivers do not get one event per copy (that would be
  N^2 / interval events): a receiver's peer table is brought up to date *lazily* when it is
  read (a dispatch decision or a sweep): for every peer in its view it observes the newest
  status whose gossip delivery time (``owd + (mean_hops - 1) x (mean owd + hop cost)``, the
  mean mesh hop count of a D=6 GossipSub mesh of this size, :mod:`.gossip`) has passed and
  that the receiver did not miss (each (status, receiver) pair is missed with probability
  ``status_miss``, from the message-level gossip simulation of the same network). The table
  then holds exactly what it would hold had every copy been delivered as an event.
- Views: each node tracks a bounded partial view of ``view`` peers (default
  ``min(N - 1, 16)``, drawn at random per node; a joining node takes over a departed node's
  slot, so views refresh under churn). The real node tracks every peer; at 10,000 nodes that
  is 10^8 table entries and, more to the point, the O(N) status traffic per node that the
  gossip experiment shows breaking long before (see README). ``--view`` changes it.
- Ledger: not folded per node (every node would fold every claim); its cost is accounted per
  request with a parametrised cost model (``--ledger-*``): entries, bytes and signature
  verifications per delegated request, every node replicating every block.

Strategies: ``single`` (no offloading), ``centralized`` (the paper's: keep at the source while
its load < 0.6, else the globally least-loaded node by in-flight requests / batch capacity and
KV usage, with a perfect instant view; requests still cross the network), ``random``, ``p2c``
and ``wwwserve`` (stake). Workload: the ``trace`` setting of ``benchmarks/slo_attainment.py``
(identical A100 / Qwen3-8B nodes, max batch 4, each replaying a window of the Azure LLM
conversation trace at offset i x period / N, thinned to ``--load`` of the calibrated capacity).

Outputs (``--out DIR``): ``sim_network.json``, ``sim_network.md`` and ``sim_network.png``
(attainment vs end-to-end latency threshold per strategy). Deterministic given ``--seed``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import statistics
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.dispatch import Dispatch, DispatchLimits, DispatchView, GiveUp, Probe, RunLocal, Wait
from ..core.dispatch import Candidate, OfferView, Variates, WaitQueue
from ..core.peers import PeerTable, PeerTableConfig
from ..core.policy import OffloadPolicy, decide_accept, expected_load_after
from ..core.types import GenerationRequest, LoadSnapshot, PeerStatus
from ..errors import ConfigError
from .events import EventLoop
from .fluidgpu import FluidGPU, Seq
from .netmodel import NetConfig, NetModel
from .profiles import perf_model

MODEL = "llm"
STRATEGIES = ("single", "centralized", "random", "p2c", "wwwserve")
SELECTION = {"random": "random", "p2c": "p2c", "wwwserve": "stake"}
CENTRAL_KEEP_BELOW = 0.6
#: bytes of a delegation probe / offer / commit message and of one streamed token frame
PROBE_BYTES, OFFER_BYTES, COMMIT_BYTES, TOKEN_BYTES = 600, 120, 400, 60
#: CPU seconds a node spends on one probe (decode, ticket check, decide) before answering
PROBE_CPU_S = 0.0005
#: simulated seconds after the last arrival during which requests still complete (periodic
#: status and sweeps stop at half of it); requests unfinished by then count as failed
DRAIN_S = 40.0
#: peers tracked per node (partial view) unless SimConfig.view says otherwise
DEFAULT_VIEW = 16


@dataclass(frozen=True)
class LedgerCost:
    """Ledger cost per delegated (served-for-a-peer) request, every node replicating every
    block: ``entries`` ledger entries, ``bytes`` gossiped bytes, ``verifies`` claims each node
    verifies and applies, ``verify_us`` CPU per claim verified and applied, microseconds.

    Defaults (before payment channels: one Claim per request): a Claim entry encodes to 328 B
    (``wire.ledger_codec.encode_entry``), plus shares of the 225 B block overhead and the
    ~250 B gossip envelope (420 B); 96 us = the measured 10,400 claims verified (block and
    ticket signatures) and applied per second per core (``benchmarks/ledger_throughput.py``)."""

    entries: float = 1.0
    bytes: float = 420.0
    verifies: float = 1.0
    verify_us: float = 96.0


@dataclass
class SimConfig:
    """One simulated run (times in simulated seconds)."""

    nodes: int = 200
    duration: float = 120.0
    strategy: str = "wwwserve"
    seed: int = 1
    load: float = 0.7
    view: int | None = None
    gpu: str = "A100"
    model: str = "qwen3-8b"
    max_batch: int = 4
    status_interval: float = 2.0
    status_jitter: float = 0.1
    status_miss: float = 0.0
    hop_cost_s: float = 0.002
    mean_hops: float | None = None
    churn_per_min: float = 0.0
    silent_share: float = 0.5
    net: NetConfig = field(default_factory=NetConfig)
    policy: dict[str, Any] = field(default_factory=dict)
    limits: DispatchLimits = field(default_factory=DispatchLimits)
    probe_timeout: float = 2.0
    chunk_timeout: float = 10.0
    observers: int = 50
    stakes: tuple[int, ...] | None = None
    ledger: LedgerCost = field(default_factory=LedgerCost)
    #: per node: list of (arrival, prompt, output) or None for the trace workload
    workload: list[list[tuple[float, int, int]]] | None = None
    trace_path: str | None = None
    capacity_rps: float | None = None

    def __post_init__(self) -> None:
        if self.nodes < 2:
            raise ConfigError("the simulator needs at least 2 nodes")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; one of {STRATEGIES}")
        if self.duration <= 0 or not 0 < self.load <= 2 or self.churn_per_min < 0:
            raise ConfigError("need duration > 0, 0 < load <= 2, churn >= 0")


# ================================================================================ nodes
class Node:
    """One simulated provider in a slot: its GPU, policy, peer table and published statuses."""

    __slots__ = ("slot", "peer_id", "incarnation", "alive", "gpu", "policy", "table", "rng", "seq",
                 "hist", "stake", "delegated", "accepting", "last_pub", "pub_tokens", "t_left",
                 "reqs", "inflight", "served_for_peers", "silent", "local", "queue", "waiters", "keys",
                 "reoffers", "reoffer_armed", "taken", "ttft_s", "s_per_token", "pending")

    def __init__(self, slot: int, peer_id: str, incarnation: int, gpu: FluidGPU, policy: OffloadPolicy,
                 table: PeerTable, rng: random.Random, stake: int):
        self.slot = slot
        self.peer_id = peer_id
        self.incarnation = incarnation
        self.alive = True
        self.gpu = gpu
        self.policy = policy
        self.table = table
        self.rng = rng
        self.seq = 0
        self.hist: deque[tuple[float, PeerStatus]] = deque(maxlen=12)
        self.stake = stake
        self.delegated = 0          # delegated requests we are committed to (executing or about to)
        self.pending = 0            # accepted offers awaiting the requester's choice (hold no slot)
        self.accepting = True
        self.last_pub = -1e9
        self.pub_tokens = 4.0
        self.t_left = math.inf
        self.reqs = 0
        self.inflight: set = set()  # _Req executing here for a peer
        self.served_for_peers = 0
        self.silent = False
        # services/delegation.py's SlotBook / Requester state (late binding, issue 12)
        self.local = 0              # our users' requests holding a local slot
        self.queue = WaitQueue()    # our users' requests waiting for one (core)
        self.waiters: dict[str, _Req] = {}
        self.keys = 0
        self.reoffers = 0
        self.reoffer_armed = False
        self.taken: dict[str, tuple[int, int, int]] = {}
        self.ttft_s = 0.0           # SlotBook speed estimates stated in Offers (EWMA)
        self.s_per_token = 0.0


class _Req:
    """One user request in flight (simulator bookkeeping around a core ``Dispatch``)."""

    __slots__ = ("idx", "src", "arrival", "prompt", "output", "d", "t_first", "t_done", "ok", "route",
                 "executor", "seq", "probe", "attempts", "lost", "key")

    def __init__(self, idx: int, src: Node, arrival: float, prompt: int, output: int):
        self.idx = idx
        self.src = src
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.d: Dispatch | None = None
        self.t_first = -1.0
        self.t_done = -1.0
        self.ok = False
        self.route = ""
        self.executor: Node | None = None
        self.seq: Seq | None = None
        self.probe: dict | None = None
        self.attempts = 0
        self.lost = False
        self.key: str | None = None


# ================================================================================ the simulator
class Simulation:
    """Build with a :class:`SimConfig`, call :meth:`run`, read :meth:`summary`."""

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.loop = EventLoop()
        n = cfg.nodes
        self.net = NetModel(cfg.net, n, cfg.seed)
        self.perf = perf_model(cfg.gpu, cfg.model)
        self.rng = random.Random(f"sim:{cfg.seed}")
        pol: dict[str, Any] = {}
        if cfg.strategy in ("single", "centralized"):
            pol = {"offload_frequency": 0.0, "participate": False}
        else:
            pol = {"selection": SELECTION[cfg.strategy]}
        pol.update(cfg.policy if cfg.strategy in SELECTION else {})
        self.base_policy = OffloadPolicy(**pol)
        self.ptc = PeerTableConfig(cfg.status_interval, 3, 6, max(60.0, 12.0))
        self.view_size = min(n - 1, cfg.view if cfg.view is not None else DEFAULT_VIEW)
        self.nodes: list[Node] = []
        self.by_id: dict[str, Node] = {}
        for i in range(n):
            self._new_node(i, 0)
        # views: view_size random other slots per slot; rev[j] = slots viewing j
        self.views: list[list[int]] = []
        self.rev: list[list[int]] = [[] for _ in range(n)]
        for i in range(n):
            if self.view_size >= n - 1:
                v = [j for j in range(n) if j != i]
            else:
                v = []
                seen = {i}
                r = random.Random(f"view:{cfg.seed}:{i}")
                while len(v) < self.view_size:
                    j = r.randrange(n)
                    if j not in seen:
                        seen.add(j)
                        v.append(j)
            self.views.append(v)
            for j in v:
                self.rev[j].append(i)
        self.view_last: list[list[PeerStatus | None]] = [[None] * len(v) for v in self.views]
        if cfg.mean_hops is not None:
            hops = cfg.mean_hops
        else:  # a D=6 mesh: ~log(N)/log(D-1) hops on average (refined by sim.gossip in reports)
            hops = max(1.0, math.log(max(2, n)) / math.log(5))
        owd_mean = self.net.rtt_stats(2000, cfg.seed)["mean_ms"] / 2000.0
        self.gossip_extra = (hops - 1.0) * (owd_mean + cfg.hop_cost_s) + cfg.hop_cost_s
        #: gossip delivery delay from each view peer (slots keep their place under churn)
        self.view_delay = [[self.net.owd(j, i) + self.gossip_extra for j in v] for i, v in enumerate(self.views)]
        self.mean_hops = hops
        self.limits = cfg.limits
        #: per finished request: end-to-end latency and TTFT (NaN = failed), simulated s
        self.res_e2e = array("d")
        self.res_ttft = array("d")
        self.n_arrived = 0
        self.open_reqs = 0
        self.late = {"reoffers": 0, "reoffer_won": 0, "waited_local": 0, "withdrawn": 0}
        self.stats = {"offloaded": 0, "local": 0, "probes": 0, "probe_refused": 0, "redispatched": 0,
                      "gave_up": 0, "lost_with_source": 0, "publishes": 0, "joins": 0, "leaves": 0,
                      "delegated_done": 0, "commit_refused": 0, "materialize_observes": 0, "decisions": 0}
        # centralized dispatcher state: heap of (load, slot, version)
        self.c_inflight = [0] * n
        self.detect: list[float] = []
        self.detect_offline: list[float] = []
        self.false_suspect = 0
        self.observer_pair_minutes = 0.0
        self._suspected: dict[tuple[int, str], float] = {}
        self.progress = None

    # ------------------------------------------------------------------ node lifecycle
    def _new_node(self, slot: int, incarnation: int) -> Node:
        cfg = self.cfg
        gpu = FluidGPU(self.loop, self.perf, cfg.max_batch)
        stake = cfg.stakes[slot % len(cfg.stakes)] if cfg.stakes else self.base_policy.stake
        pol = self.base_policy if stake == self.base_policy.stake else _replace_policy(self.base_policy, stake)
        pid = f"s{slot:05d}.{incarnation}"
        node = Node(slot, pid, incarnation, gpu, pol, PeerTable(self.ptc, pid),
                    random.Random(f"node:{cfg.seed}:{slot}:{incarnation}"), stake)
        if slot < len(self.nodes):
            self.nodes[slot] = node
        else:
            self.nodes.append(node)
        self.by_id[pid] = node
        return node

    def _publish(self, node: Node) -> None:
        now = self.loop.now
        node.seq += 1
        ld = node.gpu.load()
        st = PeerStatus(node.peer_id, node.incarnation, node.seq, (MODEL,), ld, node.accepting,
                        node.stake if node.policy.participate else 0, node.delegated,
                        node.policy.max_delegated)
        node.hist.append((now, st))
        node.last_pub = now
        self.stats["publishes"] += 1

    def _periodic_publish(self, node: Node) -> None:
        if not node.alive or self.loop.now > self.t_stop_periodic:
            return
        self._publish(node)
        j = self.cfg.status_jitter
        period = self.cfg.status_interval * (1 + j * (2 * node.rng.random() - 1))
        self.loop.after(period, self._periodic_publish, node)

    def _maybe_changed(self, node: Node) -> None:
        """The accepting flag may have flipped: publish soon (min gap 0.25 s), as
        services/status.py does on a significant change."""
        if not node.policy.participate or not node.alive:
            return
        # DelegationServer.accepting (acceptance by capacity)
        g = node.gpu
        acc = (node.delegated < node.policy.max_delegated and node.pending < node.policy.max_delegated
               and not len(node.queue) and not g.queue
               and self._free(node) > 0
               and expected_load_after(g.load(), self._held(node)) <= node.policy.accept_load)
        if acc != node.accepting:
            node.accepting = acc
            gap = self.loop.now - node.last_pub
            if gap >= 0.25:
                self._publish(node)
            else:
                self.loop.after(0.25 - gap, self._deferred_publish, (node, node.seq))

    def _deferred_publish(self, arg) -> None:
        node, seq = arg
        if node.alive and node.seq == seq:
            self._publish(node)

    # ------------------------------------------------------------------ lazy gossip delivery
    def _delay(self, src: Node, dst: Node) -> float:
        return self.net.owd(src.slot, dst.slot) + self.gossip_extra

    def _missed(self, st: PeerStatus, dst: Node) -> bool:
        p = self.cfg.status_miss
        if p <= 0:
            return False
        h = (hash((st.peer_id, st.seq, dst.peer_id, self.cfg.seed)) & 0xFFFFFFFF) / 4294967296.0
        return h < p

    def _materialize(self, node: Node) -> None:
        """Bring ``node``'s peer table up to what gossip has delivered by now: for each view
        peer, observe the newest status whose delivery time has passed (and that this node did
        not miss). ``last[k]`` remembers the status last observed from view entry ``k`` so an
        unchanged peer costs one identity check."""
        now = self.loop.now
        observe = node.table.observe
        nodes = self.nodes
        slot = node.slot
        last = self.view_last[slot]
        delays = self.view_delay[slot]
        miss = self.cfg.status_miss > 0
        obs = 0
        for k, j in enumerate(self.views[slot]):
            hist = nodes[j].hist
            if not hist:
                continue
            prev = last[k]
            newest = hist[-1][1]
            if newest is prev:
                continue
            dly = delays[k]
            for idx in range(len(hist) - 1, -1, -1):
                t_pub, st = hist[idx]
                if st is prev:
                    break
                if t_pub + dly <= now and not (miss and self._missed(st, node)):
                    observe(st, t_pub + dly)
                    last[k] = st
                    obs += 1
                    break
        self.stats["materialize_observes"] += obs

    # ------------------------------------------------------------------ workload
    def _start_workload(self) -> None:
        cfg = self.cfg
        if cfg.workload is not None:
            self.streams = [iter(s) for s in cfg.workload]
        else:
            self.streams = trace_streams(cfg, self.perf)
        for slot in range(cfg.nodes):
            self._next_arrival(slot)

    def _next_arrival(self, slot: int) -> None:
        nxt = next(self.streams[slot], None)
        if nxt is None or nxt[0] >= self.cfg.duration:
            return
        self.loop.at(nxt[0], self._arrive, (slot, nxt))

    def _arrive(self, arg) -> None:
        slot, (t, p, o) = arg
        self._next_arrival(slot)
        node = self.nodes[slot]
        if not node.alive:
            return  # the provider (and its users) are gone
        self.n_arrived += 1
        r = _Req(self.n_arrived, node, t, p, o)
        self.open_reqs += 1
        if self.cfg.strategy == "centralized":
            self._central(r)
            return
        r.d = Dispatch(GenerationRequest(f"r{r.idx}", MODEL, max_tokens=o, temperature=0.0),
                       node.peer_id, node.policy, self.limits)
        self._decide(r)

    # ------------------------------------------------------------------ the request path (core)
    def _free(self, node: Node) -> int:
        """SlotBook.free(): slots a new request can start in now (0 while the KV cache is full)."""
        g = node.gpu
        if g.kv_reserved >= g.kv_tokens:
            return 0
        return max(0, g.max_batch - max(node.local + node.delegated, len(g.running) + len(g.queue)))

    def _held(self, node: Node) -> int:
        g = node.gpu
        return max(0, node.local + node.delegated - len(g.running) - len(g.queue))

    def _spare(self, node: Node, st: PeerStatus) -> int:
        """Requester._spare: spare slots ``st`` announced minus those ``node`` used since."""
        inc, seq, used = node.taken.get(st.peer_id, (-1, -1, 0))
        if (inc, seq) != (st.incarnation, st.seq):
            node.taken[st.peer_id] = (st.incarnation, st.seq, 0)
            used = 0
        if not st.accepting:
            return 0
        ld = st.load
        sp = max(1, min(ld.capacity - ld.running - ld.queued, st.max_delegated - st.delegated_running))
        return max(0, sp - used)

    def _took(self, node: Node, peer_id: str, n: int) -> None:
        e = node.taken.get(peer_id)
        if e is not None:
            node.taken[peer_id] = (e[0], e[1], e[2] + n)

    def _view(self, r: _Req, need_candidates: bool = True) -> DispatchView:
        """Requester._view: candidates from the (lazily updated) peer table; our load counts
        reserved slots and our users waiting for one."""
        node = r.src
        g = node.gpu
        load = max(g.load_value(), (max(node.local + node.delegated, len(g.running) + len(g.queue))
                                    + len(node.queue)) / g.max_batch)
        d = r.d
        assert d is not None
        if not need_candidates or (d.attempt == 0 and load < node.policy.target_load):
            # decide_route returns LOCAL before looking at candidates: skip building them
            return DispatchView((), load, True)
        self._materialize(node)
        now = self.loop.now
        cands = tuple(Candidate(s.peer_id, s.stake, s.load.load, False, self._spare(node, s))
                      for s in node.table.candidates(MODEL, now))
        return DispatchView(cands, load, True)

    def _variates(self, node: Node) -> Variates:
        rng = node.rng
        return Variates(rng.random(), rng.random(), rng.random(), rng.getrandbits(64))

    def _decide(self, r: _Req) -> None:
        node = r.src
        if not node.alive:
            self._lost(r)
            return
        act = r.d.next(self._view(r), self._variates(node))
        self.stats["decisions"] += 1
        self._act(r, act)

    def _act(self, r: _Req, act) -> None:
        if isinstance(act, RunLocal):
            self._local_turn(r)
        elif isinstance(act, Probe):
            self._probe(r, act, None)
        elif isinstance(act, Wait):
            self.loop.after(act.seconds, self._decide_cb, r)
        elif isinstance(act, GiveUp):
            self.stats["gave_up"] += 1
            self._finish(r, False)

    def _decide_cb(self, r: _Req) -> None:
        self._decide(r)

    # ---- late binding (Requester._local_turn / _pump / _reoffer_round)
    def _local_turn(self, r: _Req) -> None:
        node = r.src
        if not len(node.queue) and self._free(node) > 0:
            node.local += 1
            self._run_local(r)
            return
        node.keys += 1
        r.key = f"{r.idx}#{node.keys}"
        node.queue.add(r.key, r.d.may_reoffer)
        node.waiters[r.key] = r
        self._pump(node)
        self._kick(node)

    def _pump(self, node: Node) -> None:
        if not len(node.queue) or not node.alive:
            return
        for key in node.queue.start_local(self._free(node)):
            r = node.waiters.pop(key, None)
            if r is None:
                continue
            node.local += 1
            self.late["waited_local"] += 1
            self._run_local(r)

    def _kick(self, node: Node) -> None:
        if not node.reoffer_armed and len(node.queue):
            node.reoffer_armed = True
            self.loop.after(node.policy.reoffer_interval, self._reoffer_tick, node)

    def _reoffer_tick(self, node: Node) -> None:
        node.reoffer_armed = False
        if not node.alive or not len(node.queue):
            return
        self._pump(node)
        budget = MAX_REOFFERS - node.reoffers
        if budget > 0:
            for key in node.queue.to_offer(budget):
                r = node.waiters.get(key)
                act = r.d.reoffer(self._view(r), self._variates(node)) if r is not None else None
                if act is None:
                    node.queue.offer_done(key)
                    continue
                node.reoffers += 1
                self.late["reoffers"] += 1
                self._probe(r, act, key)
        self._kick(node)

    def _run_local(self, r: _Req) -> None:
        node = r.src
        r.d.started(False)
        if r.route == "":
            r.route = "local"
            self.stats["local"] += 1
        r.executor = node
        seq = Seq(r.prompt + r.d.chunks_delivered, max(1, r.d.request.max_tokens), tag=r)
        seq.on_first = lambda t, r=r: self._first_local(r, t)
        seq.on_done = lambda t, r=r: self._done_local(r, t)
        r.seq = seq
        node.gpu.submit(seq)
        self._maybe_changed(node)

    def _first_local(self, r: _Req, t: float) -> None:
        if r.t_first < 0:
            r.t_first = t

    def _done_local(self, r: _Req, t: float) -> None:
        r.t_done = t
        node = r.src
        _observe_speed(node, r.t_first - r.arrival if r.t_first >= 0 else None, r.seq)
        self._finish(r, True)
        self.loop.at(t, self._local_freed, node)

    def _local_freed(self, node: Node) -> None:
        node.local = max(0, node.local - 1)
        self._pump(node)
        self._maybe_changed(node)

    # ---- probing (Requester._probe_and_commit; executor side: DelegationServer + decide_accept)
    def _probe(self, r: _Req, act: Probe, key: str | None) -> None:
        src = r.src
        pr = {"pending": len(act.peers), "offers": [], "decided": False, "act": act, "key": key, "req": r}
        r.probe = pr
        for pid in act.peers:
            ex = self.by_id.get(pid)
            self.stats["probes"] += 1
            if ex is None or not ex.alive:
                # connection refused (exited process) or timeout (silent host)
                delay = self.cfg.probe_timeout if (ex is None or ex.silent) else 2 * self.net.owd(src.slot, ex.slot)
                self.loop.after(delay, self._offer, (r, pr, pid, None))
                continue
            dly = self.net.tcp_delay(src.slot, ex.slot, PROBE_BYTES, src.rng.random()) + PROBE_CPU_S
            self.loop.after(dly, self._probe_at_executor, (r, pr, ex))

    def _probe_at_executor(self, arg) -> None:
        r, pr, ex = arg
        if not ex.alive:
            self.loop.after(self.cfg.probe_timeout, self._offer, (r, pr, ex.peer_id, None))
            return
        if ex.pending >= ex.policy.max_delegated:
            ok = False  # "too many open offers"
        else:
            ok, _why = decide_accept(ex.gpu.load(), ex.delegated, True, ex.policy, ex.rng.random(),
                                     held=self._held(ex), users_waiting=len(ex.queue))
        offer = None
        if ok:
            ex.pending += 1  # an open offer holds no slot (issue 12, 3a62a7b)
            self._maybe_changed(ex)
            offer = OfferView(ex.peer_id, ex.stake, ex.ttft_s, ex.s_per_token, ex.gpu.load_value())
        dly = self.net.tcp_delay(ex.slot, r.src.slot, OFFER_BYTES, ex.rng.random())
        self.loop.after(dly, self._offer, (r, pr, ex.peer_id, offer))

    def _offer(self, arg) -> None:
        r, pr, pid, offer = arg
        pr["pending"] -= 1
        ex = self.by_id.get(pid)
        if offer is None:
            self.stats["probe_refused"] += 1
            self._took(r.src, pid, 1)
        if pr["decided"]:  # too late: decline (the executor frees its slot)
            if offer is not None:
                self.loop.after(self.net.owd(r.src.slot, ex.slot), self._withdraw_offer, ex)
        else:
            if offer is not None:
                pr["offers"].append(offer)
                if len(pr["offers"]) == 1 and pr["pending"] > 0:
                    self.loop.after(r.src.policy.offer_window, self._decide_offers, pr)
            if pr["pending"] == 0:
                self._decide_offers(pr)

    def _decide_offers(self, pr: dict) -> None:
        if pr["decided"]:
            return
        pr["decided"] = True
        act: Probe = pr["act"]
        r: _Req = act_owner(pr)
        node = r.src
        offers = pr["offers"]
        key = pr["key"]
        chosen = None
        if offers and node.alive and r.d is not None:
            chosen = r.d.choose(offers, node.rng.random(), node.rng.random()) if len(offers) > 1 else offers[0].peer_id
        if chosen is not None and key is not None and not node.queue.claim_remote(key):
            self.late["withdrawn"] += 1  # started locally meanwhile
            chosen = None
        for o in offers:
            if o.peer_id != chosen:
                ex = self.by_id[o.peer_id]
                self.loop.after(self.net.owd(node.slot, ex.slot), self._withdraw_offer, ex)
        if key is not None:  # a re-offer: the request keeps waiting unless it was won
            node.reoffers -= 1
            node.queue.offer_done(key)
            if r.d is not None:
                r.d.reoffered(chosen)
            if chosen is None:
                return
            node.waiters.pop(key, None)
            self.late["reoffer_won"] += 1
            self._commit(r, self.by_id[chosen])
            return
        if not node.alive or r.d is None:
            self._lost(r)
            return
        if chosen is None:
            after = r.d.probed(None, True)
            if after is not None:
                self._act(r, after)
            return
        r.d.probed(chosen, True)
        self._commit(r, self.by_id[chosen])

    def _withdraw_offer(self, ex: Node) -> None:
        if ex.pending > 0:
            ex.pending -= 1
        self._maybe_changed(ex)

    def _release_offer(self, ex: Node) -> None:
        if ex.delegated > 0:
            ex.delegated -= 1
        self._pump(ex)
        self._maybe_changed(ex)

    def _commit(self, r: _Req, ex: Node) -> None:
        r.probe = None
        r.d.started(True)
        self._took(r.src, ex.peer_id, 1)
        if r.route == "":
            r.route = "offloaded"
            self.stats["offloaded"] += 1
        r.executor = ex
        r.attempts += 1
        dly = self.net.tcp_delay(r.src.slot, ex.slot, COMMIT_BYTES, r.src.rng.random())
        self.loop.after(dly, self._start_remote, (r, ex, r.attempts))

    def _start_remote(self, arg) -> None:
        r, ex, attempt = arg
        if attempt != r.attempts or r.d is None:
            return
        if not ex.alive:
            self._remote_failed(r, ex)
            return
        if ex.pending > 0:
            ex.pending -= 1
        back = self.net.owd(ex.slot, r.src.slot)
        if ex.delegated >= ex.policy.max_delegated or self._free(ex) <= 0:
            # our slots filled while the requester chose: refuse the commit ("overloaded")
            self.stats["commit_refused"] += 1
            self.loop.after(back, self._commit_refused, (r, ex, attempt))
            return
        ex.delegated += 1
        seq = Seq(r.prompt + r.d.chunks_delivered, max(1, r.d.request.max_tokens), tag=r)
        t_start = self.loop.now
        seq.on_first = lambda t, r=r, a=attempt: self.loop.at(t + back, self._first_remote, (r, a))
        seq.on_done = lambda t, r=r, ex=ex, a=attempt, t0=t_start: self._done_at_executor(r, ex, a, t, back, t0)
        r.seq = seq
        ex.inflight.add(r)
        ex.gpu.submit(seq)
        self._maybe_changed(ex)

    def _commit_refused(self, arg) -> None:
        """Requester side of an "overloaded" commit refusal (Dispatch.commit_refused)."""
        r, ex, attempt = arg
        if attempt != r.attempts or r.d is None:
            return
        if not r.src.alive:
            self._lost(r)
            return
        if r.d.commit_refused():
            self._took(r.src, ex.peer_id, 1)
            if r.d.first_route is None and r.route == "offloaded":
                r.route = ""
                self.stats["offloaded"] -= 1
            self._decide(r)
        else:
            self._remote_failed(r, ex)

    def _first_remote(self, arg) -> None:
        r, attempt = arg
        if attempt == r.attempts and r.t_first < 0:
            r.t_first = self.loop.now

    def _done_at_executor(self, r: _Req, ex: Node, attempt: int, t: float, back: float, t0: float) -> None:
        ex.inflight.discard(r)
        ex.served_for_peers += 1
        self.stats["delegated_done"] += 1
        seq = r.seq
        if seq is not None:
            _observe_speed(ex, seq.t_first - t0 if seq.t_first >= 0 else None, seq)
        self.loop.at(t, self._release_offer, ex)
        self.loop.at(t + back + self.net.tx_s(TOKEN_BYTES), self._done_remote, (r, attempt))

    def _done_remote(self, arg) -> None:
        r, attempt = arg
        if attempt != r.attempts:
            return
        if not r.src.alive:
            self._lost(r)
            return
        r.t_done = self.loop.now
        self._finish(r, True)

    def _remote_failed(self, r: _Req, ex: Node) -> None:
        """The executor of ``r`` went away: the core decides (void + re-dispatch)."""
        if r.ok or r.lost or r.t_done >= 0:
            return
        if not r.src.alive:
            self._lost(r)
            return
        d = r.d
        # tokens the user already has: the chunks generated up to the failure
        if r.seq is not None:
            delivered = max(0, min(r.seq.generated, d.request.max_tokens - 1))
            d.delivered += " x" * max(0, delivered - d.chunks_delivered)
            d.chunks_delivered = max(d.chunks_delivered, delivered)
        r.attempts += 1
        _void, again = d.failed(ex.peer_id, "executor went away", True)
        self.stats["redispatched"] += 1
        if again:
            self._decide(r)
        else:
            self._finish(r, False)

    def _finish(self, r: _Req, ok: bool) -> None:
        """Record ``r``'s outcome in the compact result arrays and drop its state."""
        if r.ok or r.lost:
            return
        r.ok = ok
        if r.t_done < 0:
            r.t_done = self.loop.now
        self.open_reqs -= 1
        if ok:
            self.res_e2e.append(r.t_done - r.arrival)
            self.res_ttft.append((r.t_first if r.t_first >= 0 else r.t_done) - r.arrival)
        else:
            self.res_e2e.append(math.nan)
            self.res_ttft.append(math.nan)
        r.d = None
        r.seq = None
        r.probe = None

    def _lost(self, r: _Req) -> None:
        if not r.lost and not r.ok:
            r.lost = True
            self.open_reqs -= 1
            self.stats["lost_with_source"] += 1
            r.d = None
            r.seq = None

    # ------------------------------------------------------------------ centralized baseline
    def _central_load(self, slot: int) -> float:
        node = self.nodes[slot]
        return max(self.c_inflight[slot] / node.gpu.max_batch, node.gpu.kv_reserved / node.gpu.kv_tokens)

    def _central_retry(self, r: _Req) -> None:
        if not r.src.alive:
            self._lost(r)
            return
        self._central(r, retry=True)

    def _central(self, r: _Req, retry: bool = False) -> None:
        s = r.src.slot
        target = s
        if self._central_load(s) >= CENTRAL_KEEP_BELOW:
            target = self._least_loaded(s)
        ex = self.nodes[target]
        if not retry:
            r.route = "local" if target == s else "offloaded"
            self.stats["local" if target == s else "offloaded"] += 1
        r.executor = ex
        self.c_inflight[target] += 1
        self._bucket_move(target)
        go = 0.0 if target == s else self.net.tcp_delay(s, target, PROBE_BYTES, r.src.rng.random())
        back = 0.0 if target == s else self.net.owd(target, s)
        self.loop.after(go, self._central_start, (r, ex, back))

    def _central_start(self, arg) -> None:
        r, ex, back = arg
        if not ex.alive:  # left while the request was in transit
            self.loop.after(back, self._central_retry, r)
            return
        seq = Seq(r.prompt, r.output, tag=r)

        def first(t: float, r=r) -> None:
            self.loop.at(t + back, self._first_remote, (r, r.attempts))

        def done(t: float, r=r, ex=ex) -> None:
            self.c_inflight[ex.slot] = max(0, self.c_inflight[ex.slot] - 1)
            self._bucket_move(ex.slot)
            self.loop.at(t + back, self._done_remote, (r, r.attempts))

        seq.on_first, seq.on_done = first, done
        ex.gpu.submit(seq)

    def _bucket_move(self, slot: int) -> None:
        """Index of nodes by in-flight count (the dominant term of the central load)."""
        if not self.nodes[slot].alive:
            return
        b = self.buckets
        old = self.bucket_of[slot]
        new = self.c_inflight[slot]
        if old == new:
            return
        b[old].discard(slot)
        while len(b) <= new:
            b.append(set())
        b[new].add(slot)
        self.bucket_of[slot] = new

    def _least_loaded(self, src: int) -> int:
        """min over nodes of (load, is not the source, slot); the load's in-flight term via
        buckets, KV usage checked within the lowest non-empty buckets."""
        best = None
        for k, members in enumerate(self.buckets):
            if not members:
                continue
            for slot in members:
                key = (self._central_load(slot), slot != src, slot)
                if best is None or key < best:
                    best = key
            # a higher bucket can only win through a KV term smaller than ours: stop once the
            # next bucket's in-flight term alone exceeds the best load found
            cap = self.nodes[0].gpu.max_batch
            if best is not None and (k + 1) / cap > best[0]:
                break
        return best[2] if best else src

    # ------------------------------------------------------------------ churn and liveness
    def _leave(self, _arg=None) -> None:
        cfg = self.cfg
        if self.loop.now > cfg.duration:
            return
        self._schedule_churn()
        alive = [n for n in self.nodes if n.alive]
        if len(alive) <= 2:
            return
        node = alive[self.rng.randrange(len(alive))]
        node.alive = False
        node.silent = self.rng.random() < cfg.silent_share
        node.t_left = self.loop.now
        self.stats["leaves"] += 1
        central = cfg.strategy == "centralized"
        if central:
            self.buckets[self.bucket_of[node.slot]].discard(node.slot)
        for s in node.gpu.fail_all():
            r = s.tag
            if r is None:
                continue
            if r.src is node:
                self._lost(r)
            elif central:  # the dispatcher sees it at once and sends the request elsewhere
                r.attempts += 1
                self.stats["redispatched"] += 1
                self.loop.after(self.net.owd(node.slot, r.src.slot), self._central_retry, r)
        if central:
            self.c_inflight[node.slot] = 0
        for key, r in list(node.waiters.items()):  # its users' waiting requests leave with it
            self._lost(r)
        node.waiters.clear()
        for r in list(node.inflight):
            # requesters notice a broken stream after one owd (process exit: RST) or after
            # chunk_timeout (a silent host)
            dly = cfg.chunk_timeout if node.silent else self.net.owd(node.slot, r.src.slot)
            self.loop.after(dly, self._fail_cb, (r, node, r.attempts))
        node.inflight.clear()
        # a new provider joins a slot (keeps N constant on average)
        self.loop.after(self.rng.expovariate(self._churn_rate()), self._join, None)

    def _fail_cb(self, arg) -> None:
        r, node, attempt = arg
        if attempt == r.attempts:
            self._remote_failed(r, node)

    def _join(self, _arg) -> None:
        dead = [n.slot for n in self.nodes if not n.alive]
        if not dead:
            return
        slot = dead[self.rng.randrange(len(dead))]
        old = self.nodes[slot]
        node = self._new_node(slot, old.incarnation + 1)
        self.stats["joins"] += 1
        if self.cfg.strategy == "centralized":
            self.c_inflight[slot] = 0
            self.buckets[self.bucket_of[slot]].discard(slot)
            self.buckets[0].add(slot)
            self.bucket_of[slot] = 0
        self.loop.after(0.0, self._periodic_publish, node)

    def _churn_rate(self) -> float:
        return self.cfg.churn_per_min / 100.0 * self.cfg.nodes / 60.0

    def _schedule_churn(self) -> None:
        rate = self._churn_rate()
        if rate > 0:
            self.loop.after(self.rng.expovariate(rate), self._leave, None)

    def _sweep_observer(self, slot: int) -> None:
        """A sample observer sweeps its table every interval / 2 (as services/status.py):
        suspect events are failure detections (peer left) or false suspicions (peer alive)."""
        node = self.nodes[slot]
        now = self.loop.now
        half = self.cfg.status_interval / 2
        if now > self.t_stop_periodic:
            return
        if node.alive:
            self._materialize(node)
            for ev in node.table.sweep(now):
                peer = self.by_id.get(ev.peer_id)
                if peer is None:
                    continue
                if ev.kind == "suspect":
                    if peer.alive:
                        self.false_suspect += 1
                    elif (slot, ev.peer_id) not in self._suspected:
                        self._suspected[(slot, ev.peer_id)] = now
                        self.detect.append(now - peer.t_left)
                elif ev.kind == "offline" and not peer.alive:
                    self.detect_offline.append(now - peer.t_left)
            if now > 30.0:  # after warm-up: alive peers this observer watches, per minute
                alive = sum(1 for j in self.views[slot] if self.nodes[j].alive)
                self.observer_pair_minutes += alive * half / 60.0
        self.loop.after(half, self._sweep_observer, slot)

    # ------------------------------------------------------------------ running
    def run(self, progress: bool = False) -> "Simulation":
        cfg = self.cfg
        t0 = time.monotonic()
        n = cfg.nodes
        self.t_stop_periodic = cfg.duration + DRAIN_S / 2
        self.buckets: list[set[int]] = [set(range(n))]
        self.bucket_of = [0] * n
        for node in self.nodes:  # first statuses at random phases in [0, interval)
            self.loop.at(node.rng.random() * cfg.status_interval, self._periodic_publish, node)
        self._start_workload()
        self._schedule_churn()
        if cfg.strategy not in ("single", "centralized"):
            k = min(cfg.observers, n)
            for slot in random.Random(f"observers:{cfg.seed}").sample(range(n), k):
                self.loop.at(cfg.status_interval * 3 + (slot % 7) * 0.01, self._sweep_observer, slot)
        bar = None
        if progress:
            try:
                from tqdm import tqdm
                bar = tqdm(total=int(cfg.duration), unit="sim s", desc=f"{cfg.strategy} N={n}",
                           dynamic_ncols=True, mininterval=1.0)
            except ImportError:
                bar = None
        last = [0]

        def tick(t: float) -> None:
            if bar is not None:
                cur = int(min(t, cfg.duration))
                if cur > last[0]:
                    bar.update(cur - last[0])
                    last[0] = cur
                    bar.set_postfix(reqs=self.n_arrived, ev=self.loop.processed, refresh=False)

        # run until arrivals end, then drain (bounded) so late requests complete
        self.loop.run_until(cfg.duration, tick if bar else None)
        self.loop.run_until(cfg.duration + DRAIN_S)
        if bar is not None:
            bar.close()
        self.wall_s = time.monotonic() - t0
        return self

    # ------------------------------------------------------------------ results
    def latencies(self) -> tuple[list[float | None], list[float | None]]:
        """(e2e, ttft) per counted request (None: failed, or still unfinished at the end of the
        drain); requests lost with their source node (its users left with it) are not counted."""
        e2e = [None if x != x else x for x in self.res_e2e] + [None] * self.open_reqs
        ttft = [None if x != x else x for x in self.res_ttft] + [None] * self.open_reqs
        return e2e, ttft

    def summary(self) -> dict[str, Any]:
        cfg = self.cfg
        e2e, ttft = self.latencies()
        ok = [x for x in e2e if x is not None]
        dur = cfg.duration
        delegated_rate = self.stats["delegated_done"] / dur
        lc = cfg.ledger
        out = {
            "strategy": cfg.strategy, "nodes": cfg.nodes, "duration_s": dur, "seed": cfg.seed,
            "view": self.view_size, "requests": len(e2e), "completed": len(ok),
            "failed": sum(1 for x in e2e if x is None),
            "e2e_p50_s": _q(ok, 0.5), "e2e_p90_s": _q(ok, 0.9), "e2e_p99_s": _q(ok, 0.99),
            "e2e_mean_s": statistics.fmean(ok) if ok else math.nan,
            "ttft_p50_s": _q([x for x in ttft if x is not None], 0.5),
            "offload_share": self.stats["offloaded"] / max(1, self.stats["offloaded"] + self.stats["local"]),
            "stats": dict(self.stats), "late_binding": dict(self.late), "wall_s": round(getattr(self, "wall_s", 0.0), 2),
            "events": self.loop.processed,
            "status_publishes_per_node_s": self.stats["publishes"] / (dur + 600 if False else dur) / cfg.nodes,
            "network_request_rate": len(e2e) / dur,
            "delegated_rate": delegated_rate,
            "ledger": {"entries_per_node_s": delegated_rate * lc.entries,
                       "bytes_per_node_s": delegated_rate * lc.bytes,
                       "verifies_per_node_s": delegated_rate * lc.verifies,
                       "cpu_share_of_core": delegated_rate * lc.verifies * lc.verify_us * 1e-6},
            "mean_hops": self.mean_hops, "gossip_extra_s": self.gossip_extra,
            "rtt": self.net.rtt_stats(5000, cfg.seed),
        }
        if cfg.churn_per_min > 0 or self.detect or self.false_suspect:
            out["failure_detection"] = {
                "suspect_after_s": {"n": len(self.detect), "p50": _q(self.detect, 0.5),
                                    "p99": _q(self.detect, 0.99), "mean": _mean(self.detect)},
                "offline_after_s": {"n": len(self.detect_offline), "p50": _q(self.detect_offline, 0.5),
                                    "p99": _q(self.detect_offline, 0.99)},
                "false_suspicions": self.false_suspect,
                "observer_pair_minutes": self.observer_pair_minutes,
                "false_suspicion_rate_per_pair_min": self.false_suspect / max(1e-9, self.observer_pair_minutes),
            }
        return out


def act_owner(pr: dict) -> "_Req":
    return pr["req"]


#: services/delegation.py: re-offers in flight per node, and the speed EWMA weight
MAX_REOFFERS = 8
SPEED_EWMA = 0.2


def _observe_speed(node: Node, ttft: float | None, seq: Seq | None) -> None:
    """SlotBook.observe: EWMA of the measured time to first token and per output token."""
    if ttft is not None and ttft >= 0:
        node.ttft_s = ttft if node.ttft_s == 0 else (1 - SPEED_EWMA) * node.ttft_s + SPEED_EWMA * ttft
    if seq is not None and seq.t_first >= 0 and seq.out_total > 1:
        spt = (seq.t_done - seq.t_first) / (seq.out_total - 1)
        node.s_per_token = spt if node.s_per_token == 0 else (1 - SPEED_EWMA) * node.s_per_token + SPEED_EWMA * spt


def _replace_policy(p: OffloadPolicy, stake: int) -> OffloadPolicy:
    from dataclasses import replace
    return replace(p, stake=stake)


def _q(v: list[float], p: float) -> float:
    if not v:
        return math.nan
    s = sorted(v)
    return s[min(len(s) - 1, int(p * len(s)))]


def _mean(v: list[float]) -> float:
    return statistics.fmean(v) if v else math.nan


# ================================================================================ workloads
def default_trace_path() -> Path | None:
    import os
    env = os.environ.get("WWWSERVE_DATA_DIR")
    here = Path(__file__).resolve()
    cands = ([Path(env)] if env else []) + [p / "shared" / "data" for p in here.parents[:6]] \
        + [Path.cwd().parent / "shared" / "data", Path("/work/shared/data")]
    for c in cands:
        f = c / "azure-llm-trace-2023" / "conv.csv"
        if f.is_file():
            return f
    return None


def calibrate_capacity(perf, max_batch: int, lengths: list[tuple[int, int]]) -> float:
    """Sustainable requests per second of one GPU on ``lengths`` (saturated FluidGPU run, the
    same procedure as ``benchmarks/slo_attainment.py``'s calibration on SimulatedExecutor)."""
    loop = EventLoop()
    gpu = FluidGPU(loop, perf, max_batch)
    n = max(200, 25 * gpu.max_batch)
    done = [0.0]

    def fin(t: float) -> None:
        done[0] = max(done[0], t)

    for i in range(n):
        p, o = lengths[i % len(lengths)]
        gpu.submit(Seq(p, o, on_done=fin))
    loop.run_until(1e9)
    return n / done[0]


_TRACE_CACHE: dict[str, list] = {}


def trace_streams(cfg: SimConfig, perf) -> list:
    """Per-node lazy iterators of (arrival, prompt, output): the benchmark's ``trace`` setting
    (``sim.workload.node_windows`` semantics: window i at offset i x period / N, thinned with
    rng ``node_windows:{seed}:{i}``, lengths clipped to 8192 / 2048 tokens)."""
    from .workload import load_azure_trace

    path = cfg.trace_path or default_trace_path()
    if path is None:
        raise ConfigError("Azure trace not found (set $WWWSERVE_DATA_DIR or --trace)")
    key = str(path)
    if key not in _TRACE_CACHE:
        _TRACE_CACHE[key] = load_azure_trace(path)
    trace = _TRACE_CACHE[key]
    rng = random.Random(f"lengths-{cfg.seed}")
    sample = [(min(8192, max(1, r.prompt_tokens)), min(2048, max(1, r.output_tokens)))
              for r in rng.sample(trace, min(400, len(trace)))]
    cap = cfg.capacity_rps or calibrate_capacity(perf, cfg.max_batch, sample)
    cfg.capacity_rps = cap
    arrivals = [r.arrival_s for r in trace]
    first, span = arrivals[0], arrivals[-1] - arrivals[0]
    period = span + span / (len(trace) - 1)
    trace_rate = len(trace) / span
    scale = cfg.load * cap / trace_rate
    compress = max(1.0, scale)
    length = cfg.duration * compress
    if length > period:
        raise ConfigError(f"duration x rate compression ({length:.0f} s) exceeds the trace ({period:.0f} s)")
    rel = [a - first for a in arrivals]
    n = cfg.nodes

    def stream(i: int):
        r = random.Random(f"node_windows:{cfg.seed}:{i}")
        start = (i * period / n) % period
        segs = [(start, min(start + length, period), -start)]
        if start + length > period:
            segs.append((0.0, start + length - period, period - start))
        for lo, hi, shift in segs:
            for k in range(bisect.bisect_left(rel, lo), bisect.bisect_left(rel, hi)):
                if scale < 1.0 and r.random() >= scale:
                    continue
                tr = trace[k]
                yield ((rel[k] + shift) / compress, min(8192, max(1, tr.prompt_tokens)),
                       min(2048, max(1, tr.output_tokens)))

    return [stream(i) for i in range(n)]


# ================================================================================ SLO curves
def attainment(values: list[float | None], thresholds: list[float]) -> list[float]:
    """Share of ``values`` <= each threshold; None never attains (benchmarks/slo_attainment.py)."""
    ok = sorted(v for v in values if v is not None)
    n = len(values)
    return [bisect.bisect_right(ok, t) / n if n else 0.0 for t in thresholds]


def grid(hi: float, points: int = 40) -> list[float]:
    return [hi * (i + 1) / points for i in range(points)]


def compare(runs: dict[str, Simulation], points: int = 40) -> dict[str, Any]:
    """The benchmark's metric: thresholds 0 .. pooled p95 of e2e over all strategies; the
    "median threshold" is the grid's middle; attainment per strategy at each."""
    pooled = sorted(x for s in runs.values() for x in s.latencies()[0] if x is not None)
    hi = pooled[min(len(pooled) - 1, int(0.95 * len(pooled)))] if pooled else 1.0
    th = grid(hi, points)
    mid = len(th) // 2 - 1
    out: dict[str, Any] = {"thresholds_s": th, "median_slo_s": th[mid], "attainment": {}, "at_median": {}}
    for name, s in runs.items():
        att = attainment(s.latencies()[0], th)
        out["attainment"][name] = att
        out["at_median"][name] = att[mid]
    if "centralized" in runs and "wwwserve" in runs and out["at_median"]["centralized"] > 0:
        out["wwwserve_over_centralized"] = out["at_median"]["wwwserve"] / out["at_median"]["centralized"]
    return out


# ================================================================================ CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m wwwserve_p2p.sim.network", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=10000, help="simulated nodes (default 10000)")
    p.add_argument("--duration", type=float, default=600.0, help="simulated seconds of arrivals (default 600)")
    p.add_argument("--strategies", default="wwwserve", help=f"comma-separated subset of {','.join(STRATEGIES)}")
    p.add_argument("--load", type=float, default=0.7, help="offered load / calibrated capacity (default 0.7)")
    p.add_argument("--view", type=int, default=None, help="peers tracked per node (default min(N-1, 16))")
    p.add_argument("--gpu", default="A100", help="GPU profile of every node (sim.profiles.GPUS; default A100)")
    p.add_argument("--model", default="qwen3-8b", help="model profile of every node (default qwen3-8b)")
    p.add_argument("--max-batch", type=int, default=4, help="sequences per GPU (default 4, as benchmarks/slo_attainment.py)")
    p.add_argument("--churn", type=float, default=0.0, help="%% of nodes leaving (and joining) per minute")
    p.add_argument("--status-interval", type=float, default=2.0)
    p.add_argument("--status-miss", type=float, default=0.0, help="probability a node misses one status")
    p.add_argument("--net", choices=("geo", "local"), default="geo")
    p.add_argument("--loss", type=float, default=0.001, help="per-transmission loss (default 0.001)")
    p.add_argument("--uplink-mbps", type=float, default=1000.0)
    p.add_argument("--observers", type=int, default=50, help="nodes whose sweeps measure failure detection")
    p.add_argument("--ledger-entries", type=float, default=1.0, help="ledger entries per delegated request")
    p.add_argument("--ledger-bytes", type=float, default=420.0, help="ledger bytes per delegated request")
    p.add_argument("--ledger-verifies", type=float, default=1.0, help="claims verified per delegated request")
    p.add_argument("--ledger-verify-us", type=float, default=96.0, help="CPU per verification+apply, us")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--trace", default=None, help="Azure conv trace CSV (default: shared/data)")
    p.add_argument("--quick", action="store_true", help="200 nodes, 120 simulated s")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=None, help="write sim_network.{json,md,png} here")
    a = p.parse_args(argv)
    if a.quick:
        a.nodes = min(a.nodes, 200)
        a.duration = min(a.duration, 120.0)
    a.strategies = [s.strip() for s in a.strategies.split(",") if s.strip()]
    bad = [s for s in a.strategies if s not in STRATEGIES]
    if bad or not a.strategies:
        p.error(f"unknown strategies {bad}")
    if a.nodes < 2:
        p.error("--nodes must be >= 2")
    return a


def config_from_args(a: argparse.Namespace, strategy: str) -> SimConfig:
    return SimConfig(nodes=a.nodes, duration=a.duration, strategy=strategy, seed=a.seed, load=a.load,
                     gpu=a.gpu, model=a.model, max_batch=a.max_batch,
                     view=a.view, churn_per_min=a.churn, status_interval=a.status_interval,
                     status_miss=a.status_miss, observers=a.observers,
                     net=NetConfig(kind=a.net, loss=a.loss, uplink_mbps=a.uplink_mbps),
                     ledger=LedgerCost(a.ledger_entries, a.ledger_bytes, a.ledger_verifies, a.ledger_verify_us),
                     trace_path=a.trace)


def write_report(out: Path, res: dict[str, Any], runs: dict[str, Simulation] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_network.json").write_text(json.dumps(_clean(res), indent=1))
    lines = [f"# Network simulator: N={res['options']['nodes']}, {res['options']['duration']:g} simulated s",
             "", f"{res['options']['gpu']} / {res['options']['model']} x max batch {res['options']['max_batch']}; "
             f"seed {res['options']['seed']}, load {res['options']['load']}, churn "
             f"{res['options']['churn']} %/min, net {res['options']['net']}", "",
             "| strategy | requests | failed | offloaded | e2e p50 s | e2e p99 s | attainment @ median SLO | "
             "events | wall s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cmp_ = res.get("comparison", {})
    for name, s in res["runs"].items():
        att = cmp_.get("at_median", {}).get(name, math.nan)
        lines.append(f"| {name} | {s['requests']} | {s['failed']} | {s['offload_share']:.1%} | "
                     f"{s['e2e_p50_s']:.2f} | {s['e2e_p99_s']:.2f} | {att:.3f} | {s['events']} | {s['wall_s']:.0f} |")
    if "wwwserve_over_centralized" in cmp_:
        lines += ["", f"WWW.Serve / centralized attainment at the median SLO ({cmp_['median_slo_s']:.2f} s): "
                  f"**{cmp_['wwwserve_over_centralized']:.3f}**"]
    for name, s in res["runs"].items():
        fd = s.get("failure_detection")
        if fd:
            lines += ["", f"Failure detection ({name}): suspect after p50 {fd['suspect_after_s']['p50']:.2f} s "
                      f"p99 {fd['suspect_after_s']['p99']:.2f} s (n={fd['suspect_after_s']['n']}); offline p50 "
                      f"{fd['offline_after_s']['p50']:.2f} s; false suspicions {fd['false_suspicions']} over "
                      f"{fd['observer_pair_minutes']:.0f} observer-peer-minutes"]
        led = s["ledger"]
        lines += ["", f"Ledger ({name}): {s['delegated_rate']:.1f} delegated req/s network-wide -> per node "
                  f"{led['entries_per_node_s']:.1f} entries/s, {led['bytes_per_node_s'] / 1e3:.1f} kB/s, "
                  f"{led['verifies_per_node_s']:.1f} verifications/s = {led['cpu_share_of_core']:.2%} of a core"]
    (out / "sim_network.md").write_text("\n".join(lines) + "\n")
    if cmp_:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots(figsize=(6, 4))
            for name, att in cmp_["attainment"].items():
                ax.plot(cmp_["thresholds_s"], att, label=name)
            ax.axvline(cmp_["median_slo_s"], color="grey", ls=":", lw=1)
            ax.set_xlabel("end-to-end latency SLO (s)")
            ax.set_ylabel("SLO attainment")
            ax.set_title(f"simulated network, N={res['options']['nodes']}")
            ax.legend()
            fig.tight_layout()
            fig.savefig(out / "sim_network.png", dpi=110)
            plt.close(fig)
        except ImportError:
            pass


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    runs: dict[str, Simulation] = {}
    for strat in a.strategies:
        sim = Simulation(config_from_args(a, strat)).run(progress=not a.no_progress)
        runs[strat] = sim
        s = sim.summary()
        print(f"{strat}: {s['requests']} requests, {s['failed']} failed, offloaded {s['offload_share']:.1%}, "
              f"e2e p50 {s['e2e_p50_s']:.2f} s p99 {s['e2e_p99_s']:.2f} s; {s['events']} events in {s['wall_s']:.0f} s",
              file=sys.stderr)
    res = {"options": vars(a), "runs": {k: v.summary() for k, v in runs.items()},
           "comparison": compare(runs) if len(runs) > 1 or True else {}}
    c = res["comparison"]
    for k, v in c["at_median"].items():
        print(f"  attainment at the median SLO ({c['median_slo_s']:.2f} s) {k}: {v:.3f}", file=sys.stderr)
    if "wwwserve_over_centralized" in c:
        print(f"  wwwserve / centralized: {c['wwwserve_over_centralized']:.3f}", file=sys.stderr)
    if a.out:
        write_report(Path(a.out), res, runs)
        print(f"wrote {a.out}/sim_network.{{json,md,png}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
