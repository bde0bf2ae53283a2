#!/usr/bin/env python3
"""Gossip latency of the wwwserve overlay, side by side with bare py-libp2p and js-libp2p.

One command starts, for each system and each repeat, a fresh network of N real node
processes (one libp2p host per process), waits for the GossipSub mesh, publishes M messages
of S bytes at an aggregate rate R (fixed spacing 1/R, each from a publisher drawn at random
with a fixed seed), and records, for every message and every receiving node, the wall-clock
time of receipt in the receiving application. The three systems, all in the same run and
with the same N, M, S, R, heartbeat, mesh degrees (D=6, D_lo=4, D_hi=12) and strict message
signing over TCP + Noise + yamux:

  overlay  ``wwwserve_p2p.net.libp2p.open_libp2p_overlay`` exactly as a node opens it
           (node 1.. bootstrap from node 0, the rest of the network is found through the
           Kademlia DHT; the overlay's Libp2pConfig defaults except the heartbeat). Messages
           go on the overlay's real status topic ``/wwwserve/<network>/status``, through its
           real validation path: size cap, per-peer rate limit, then the status service's
           own validator (``services.status.make_validator``: protobuf decode, network and
           author checks); the receiver decodes each delivered message again, as the status
           service's receive loop does. Each payload is a real ``PeerStatus`` encoded by
           ``wire.codec.encode_status`` and padded to exactly S bytes with model names; its
           ``seq`` carries the message id and its ``incarnation`` the publish time (ns).
           Encoding happens inside the timed interval, as it does for a real publish.
  bare     py-libp2p 0.8.1 GossipSub used directly (no wwwserve code): ``new_host`` with
           Noise + yamux, ``Pubsub(strict_signing=True)`` + ``GossipSub`` with the same
           protocols (meshsub 1.1/1.0), degrees and heartbeat, adaptive gossip off (it would
           stretch the heartbeat to 30-60 s); everything else at library defaults (its spam
           protection stays on: 10 msg/s per neighbour and topic, not reached at 5 msg/s).
  js       js-libp2p (libp2p@3.3.11, @libp2p/gossipsub@17.1.1, pinned with a lockfile in
           ``benchmarks/js_gossip``), one node per Node.js process, same degrees and
           heartbeat, strict signing, flood publishing OFF (py-libp2p has none).

The payload of bare and js is S bytes: message id (8 bytes) + publish time (8 bytes, ns) +
zero padding. The baselines have no DHT: each baseline node dials node 0 and the same number
of other peers (drawn at random, seeded) as the overlay's nodes had connections in that
repeat, so the three meshes are built from connection graphs of the same average degree.
Warm-up messages (``--warmup``, default 1 s worth) precede the measured ones and are ignored.

Reported per system (medians over ``--repeats``): delivery ratio (receipts / (M x (N-1))),
first-receipt and last-receipt latency p50/p95/p99 (per message: the earliest and the
latest receiving node, relative to the publish time stamped by the publisher just before
it encoded and signed the message), duplicates per delivery (copies received from
neighbours beyond the first, per first copy), CPU seconds per delivery (user+system time
of all N processes from /proc over the publishing window including the drain, divided by
the deliveries; it includes heartbeats and other background work of that window), and RSS
per node (median and max over nodes at the end of the run). Times come from one host clock
(``time.time_ns()``; the Node.js harness uses the same wall clock at microsecond
resolution), valid across network namespaces.

With ``--netem`` each node runs in its own network namespace, joined to the others by a
Linux bridge; ``tc netem`` on each node's interface adds ``--rtt-ms``/2 of delay (+ jitter)
and ``--loss`` percent loss to everything it sends, so a round trip between two nodes sees
``--rtt-ms``. Needs root, iproute2 and a kernel with sch_netem; everything is torn down on
exit, including Ctrl-C and SIGTERM.

All N processes share this host's cores. With more processes than cores (16 on the 2-core
reference machine) they contend for CPU, and every latency includes queueing for a core;
the benchmark says so in its output and JSON, and the comparison stays fair because all
systems run the same number of processes on the same machine in the same run, in rotating
order.

    python benchmarks/gossip_latency.py                      # N=16, 100 msgs x 1 KiB @ 5/s, 3 repeats
    python benchmarks/gossip_latency.py --quick              # N=6, a few seconds per system
    python benchmarks/gossip_latency.py --netem --rtt-ms 50 --loss 0.5
    python benchmarks/gossip_latency.py --systems overlay,bare --nodes 32

The js baseline needs its node_modules: ``npm ci --prefix benchmarks/js_gossip``. It is
skipped (with that message) when Node.js or the modules are missing. Per-node logs go to
``<out>/logs/``; ``GOSSIP_LATENCY_PROFILE=<dir>`` cProfiles every Python child into ``<dir>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import queue
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness

HERE = Path(__file__).resolve().parent
JS_DIR = HERE / "js_gossip"
SYSTEMS = ("overlay", "bare", "js")
NETWORK = "gossip-bench"
TOPIC = f"/wwwserve/{NETWORK}/status"  # == services.status.status_topic(NETWORK)
D, D_LO, D_HI = 6, 4, 12
HEADER = struct.Struct(">QQ")  # message id, publish time (ns)


# ============================================================================================
# Children: one libp2p host per process, driven over stdin/stdout JSON lines.
#
# parent -> child                                   child -> parent
#   (start)                                           {"event":"listening","peer_id","addrs","pid"}
#   {"cmd":"connect","addrs":[...]}                   {"event":"connected","ok","failed"}
#   {"cmd":"status"}                                  {"event":"status","connected","mesh","topic_peers"}
#   {"cmd":"run","start_ns","size","schedule":[[offset_ns,id],...]}
#                                                     {"event":"scheduled"} ... {"event":"run_done"}
#   {"cmd":"report"}                                  {"event":"report","pub":[[id,t_ns]],
#                                                      "recv":[[id,t_pub_ns,t_recv_ns]],"inbound","delivered"}
#   {"cmd":"quit"} or EOF on stdin                    (exits)
# ============================================================================================


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class _ChildBase:
    """What the command loop needs from a system; subclasses fill in the libp2p parts."""

    def __init__(self) -> None:
        self.published: list[list[int]] = []
        self.received: list[list[int]] = []

    async def connect(self, addrs: list[str]) -> tuple[int, list[str]]:  # pragma: no cover
        raise NotImplementedError

    def status(self) -> dict[str, int]:  # pragma: no cover
        raise NotImplementedError

    async def publish(self, msg_id: int, size: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def inbound(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Implementation-specific counters, kept in the JSON for diagnosis."""
        return {}

    async def serve(self) -> None:
        """Read commands from stdin until ``quit`` or EOF."""
        import trio

        stdin = trio.lowlevel.FdStream(os.dup(0))
        buf = b""
        async with trio.open_nursery() as nursery:
            while True:
                chunk = await stdin.receive_some(1 << 16)
                if not chunk:
                    break
                buf += chunk
                stop = False
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        stop |= await self._handle(json.loads(line), nursery)
                if stop:
                    break
            nursery.cancel_scope.cancel()

    async def _handle(self, cmd: dict, nursery: Any) -> bool:
        kind = cmd["cmd"]
        if kind == "connect":
            ok, failed = await self.connect(cmd["addrs"])
            _emit({"event": "connected", "ok": ok, "failed": failed})
        elif kind == "status":
            _emit({"event": "status", **self.status()})
        elif kind == "run":
            nursery.start_soon(self._run_schedule, cmd)
            _emit({"event": "scheduled"})
        elif kind == "report":
            _emit({"event": "report", "pub": self.published, "recv": self.received,
                   "inbound": self.inbound(), "delivered": len(self.received), "stats": self.stats()})
        elif kind == "quit":
            return True
        else:
            _emit({"event": "error", "message": f"unknown command {kind!r}"})
        return False

    async def _run_schedule(self, cmd: dict) -> None:
        import trio

        start = int(cmd["start_ns"])
        for offset, msg_id in cmd["schedule"]:
            delay = (start + int(offset) - time.time_ns()) / 1e9
            if delay > 0:
                await trio.sleep(delay)
            try:
                await self.publish(int(msg_id), int(cmd["size"]))
            except Exception as exc:
                _emit({"event": "log", "message": f"publish {msg_id} failed: {exc!r}"})
        _emit({"event": "run_done"})


class _OverlayChild(_ChildBase):
    """The wwwserve overlay: open_libp2p_overlay + the status topic's real validator."""

    def __init__(self, overlay: Any, channel: Any, network: str, decoded: Any):
        super().__init__()
        self.overlay = overlay
        self.channel = channel
        self.network = network
        self.decoded = decoded
        from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus
        from wwwserve_p2p.wire import codec

        self._codec = codec
        self._template = PeerStatus(
            peer_id=overlay.peer_id, incarnation=0, seq=0, models=("bench",),
            load=LoadSnapshot(running=0, queued=0, capacity=4, kv_usage=0.0), accepting=True,
            stake=1_000_000, max_delegated=4, addrs=tuple(overlay.addrs()))

    async def connect(self, addrs: list[str]) -> tuple[int, list[str]]:
        from wwwserve_p2p.errors import DialError

        failed = []
        for a in addrs:
            try:
                await self.overlay.connect(a)
            except DialError as exc:
                failed.append(str(exc))
        return len(addrs) - len(failed), failed

    def status(self) -> dict[str, int]:
        st = self.overlay.statistics()
        return {"connected": st["connected_peers"], "mesh": st["mesh"].get(TOPIC, 0),
                "topic_peers": st["topic_peers"].get(TOPIC, 0)}

    def inbound(self) -> int:
        return int(self.overlay.statistics().get("gossip_received", -1))

    def stats(self) -> dict[str, Any]:
        st = self.overlay.statistics()
        st["connection_events"] = {k: v for k, v in self.overlay._stats.items() if k.startswith("connections_")}
        return st

    def encode(self, msg_id: int, t_ns: int, size: int) -> bytes:
        return padded_status(self._codec, self._template, msg_id, t_ns, size, self.network)

    async def publish(self, msg_id: int, size: int) -> None:
        t = time.time_ns()
        self.published.append([msg_id, t])
        await self.overlay.publish(TOPIC, self.encode(msg_id, t, size))

    async def receive_loop(self) -> None:
        from wwwserve_p2p.errors import MalformedMessage

        take = self.decoded.take
        async for msg in self.channel:
            t = time.time_ns()
            try:
                st = take(msg, self.network)  # as the status service's receive loop does
            except MalformedMessage:
                continue
            self.received.append([st.seq, st.incarnation, t])


def padded_status(codec: Any, template: Any, msg_id: int, t_ns: int, size: int, network: str) -> bytes:
    """A real encoded ``PeerStatus`` (seq = ``msg_id``, incarnation = ``t_ns``) padded to
    exactly ``size`` bytes with model names (<= 256 characters each, the codec's bound).

    :raises ValueError: ``size`` is below the unpadded status (about 150-250 bytes)."""
    import dataclasses

    base = dataclasses.replace(template, seq=msg_id, incarnation=t_ns)
    data = codec.encode_status(base, network)
    if len(data) > size:
        raise ValueError(f"the overlay's status payload needs at least {len(data)} bytes; got --size {size}")
    models = list(base.models)
    while True:
        need = size - len(data)
        if need == 0:
            return data
        if need < 3:  # cannot add an entry that small: shorten the last padding entry and retry
            if len(models) < 2:
                raise ValueError(f"cannot pad the status to exactly {size} bytes")
            models[-1] = models[-1][:-3]
        else:
            # one repeated field entry = tag (1 byte) + length varint (1-2 bytes) + text
            text_len = min(256, need - 2 if need - 2 < 128 else need - 3)
            models.append("p" * max(1, text_len))
        data = codec.encode_status(dataclasses.replace(base, models=tuple(models)), network)
        if len(data) > size:
            last = models.pop()
            models.append(last[: len(last) - (len(data) - size)])
            data = codec.encode_status(dataclasses.replace(base, models=tuple(models)), network)


class _ValidatorNodeShim:
    """The two attributes ``services.status.make_validator`` reads from a Node."""

    class _Counter:
        def labels(self, *_: Any) -> "_ValidatorNodeShim._Counter":
            return self

        def inc(self, *_: Any) -> None:
            pass

    class _Metrics:
        def __init__(self) -> None:
            self.gossip_rejected = _ValidatorNodeShim._Counter()

    def __init__(self, network_id: str):
        self.network_id = network_id
        self.metrics = self._Metrics()


async def _overlay_child_main(args: argparse.Namespace) -> None:
    import trio

    from wwwserve_p2p.identity import Identity
    from wwwserve_p2p.net.config import Libp2pConfig
    from wwwserve_p2p.net.libp2p import open_libp2p_overlay
    from wwwserve_p2p.services.status import DecodedStatuses, make_validator, status_topic

    assert status_topic(NETWORK) == TOPIC
    identity = Identity(bytes.fromhex(args.seed_hex))
    config = Libp2pConfig(listen=(f"/ip4/{args.listen_ip}/tcp/0",),
                          bootstrap=tuple(args.bootstrap or ()),
                          heartbeat_interval=args.heartbeat)
    async with open_libp2p_overlay(identity, config) as overlay:
        decoded = DecodedStatuses()  # as StatusService.run wires its validator and receive loop
        channel = await overlay.subscribe(TOPIC, make_validator(NETWORK, _ValidatorNodeShim(NETWORK).metrics, decoded))
        child = _OverlayChild(overlay, channel, NETWORK, decoded)
        _emit({"event": "listening", "peer_id": overlay.peer_id, "addrs": overlay.addrs(), "pid": os.getpid()})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child.receive_loop)
            await child.serve()
            nursery.cancel_scope.cancel()


class _BareChild(_ChildBase):
    """py-libp2p GossipSub, used directly."""

    def __init__(self, host: Any, pubsub: Any, router: Any, sub: Any):
        super().__init__()
        self.host, self.pubsub, self.router, self.sub = host, pubsub, router, sub
        self._inbound = 0
        my_id = host.get_id()
        push = pubsub.push_msg

        async def counting_push_msg(forwarder: Any, msg: Any) -> None:
            if forwarder != my_id:
                self._inbound += 1
            await push(forwarder, msg)

        pubsub.push_msg = counting_push_msg  # continuously_read_stream looks it up per message

    async def connect(self, addrs: list[str]) -> tuple[int, list[str]]:
        import trio
        from libp2p.peer.peerinfo import info_from_p2p_addr
        from multiaddr import Multiaddr

        failed: list[str] = []

        async def one(a: str) -> None:
            try:
                await self.host.connect(info_from_p2p_addr(Multiaddr(a)))
            except Exception as exc:
                failed.append(f"{a}: {exc!r}")

        async with trio.open_nursery() as nursery:
            for a in addrs:
                nursery.start_soon(one, a)
        return len(addrs) - len(failed), failed

    def status(self) -> dict[str, int]:
        return {"connected": len(self.host.get_connected_peers()),
                "mesh": len(self.router.mesh.get(TOPIC, ())),
                "topic_peers": len(self.pubsub.peer_topics.get(TOPIC, ()))}

    def inbound(self) -> int:
        return self._inbound

    async def publish(self, msg_id: int, size: int) -> None:
        t = time.time_ns()
        self.published.append([msg_id, t])
        data = HEADER.pack(msg_id, t) + bytes(size - HEADER.size)
        await self.pubsub.publish(TOPIC, data)

    async def receive_loop(self) -> None:
        me = self.host.get_id().to_bytes()
        while True:
            msg = await self.sub.get()
            t = time.time_ns()
            if msg.from_id == me:  # py-libp2p hands our own publishes back to us
                continue
            msg_id, t_pub = HEADER.unpack_from(msg.data)
            self.received.append([msg_id, t_pub, t])


async def _bare_child_main(args: argparse.Namespace) -> None:
    import trio
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
    from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux
    from libp2p.tools.anyio_service import background_trio_service
    from multiaddr import Multiaddr

    key_pair = create_new_key_pair(bytes.fromhex(args.seed_hex))
    listen = [Multiaddr(f"/ip4/{args.listen_ip}/tcp/0")]
    host = new_host(key_pair=key_pair,
                    sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)},
                    muxer_opt={YAMUX_PROTOCOL_ID: Yamux}, listen_addrs=listen)
    router = GossipSub(protocols=[PROTOCOL_ID_V11, PROTOCOL_ID], degree=D, degree_low=D_LO, degree_high=D_HI,
                       heartbeat_interval=args.heartbeat, adaptive_gossip_enabled=False)  # type: ignore[arg-type]
    pubsub = Pubsub(host, router, strict_signing=True)
    async with host.run(listen_addrs=listen), background_trio_service(pubsub), background_trio_service(router):
        await pubsub.wait_until_ready()
        sub = await pubsub.subscribe(TOPIC)
        child = _BareChild(host, pubsub, router, sub)
        pid = host.get_id().to_base58()
        addrs = [f"{a}" if "/p2p/" in str(a) else f"{a}/p2p/{pid}" for a in host.get_addrs()]
        _emit({"event": "listening", "peer_id": pid, "addrs": addrs, "pid": os.getpid()})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child.receive_loop)
            await child.serve()
            nursery.cancel_scope.cancel()
        await host.close()


def child_main(args: argparse.Namespace) -> int:
    import logging

    import trio

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    main = _overlay_child_main if args.child == "overlay" else _bare_child_main
    profile_dir = os.environ.get("GOSSIP_LATENCY_PROFILE")  # cProfile each child into this dir
    profiler = None
    if profile_dir:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        trio.run(main, args)
    except KeyboardInterrupt:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(Path(profile_dir) / f"{args.child}-{os.getpid()}.prof"))
    return 0


# ============================================================================================
# Parent: process control
# ============================================================================================


class BenchError(RuntimeError):
    pass


class Child:
    """A child process plus a thread that turns its stdout into a queue of JSON events."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     text=True, bufsize=1, env=env, cwd=cwd, start_new_session=True)
        self.events: queue.Queue[dict] = queue.Queue()
        self.info: dict[str, Any] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self.events.put(json.loads(line))
                except ValueError:
                    pass
        self.events.put({"event": "exit"})

    def send(self, obj: dict) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(obj, separators=(",", ":")) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise BenchError(f"child exited: {self.tail()}") from exc

    def expect(self, kind: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"no {kind!r} from child within {timeout:.0f} s\n{self.tail()}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev["event"] == kind:
                return ev
            if ev["event"] == "exit":
                raise BenchError(f"child exited (code {self.proc.wait()}) waiting for {kind!r}\n{self.tail()}")
            if ev["event"] == "error":
                raise BenchError(f"child error: {ev.get('message')}")

    def tail(self, lines: int = 15) -> str:
        try:
            self._log.flush()
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"cmd": "quit"})
                self.proc.stdin.close()  # type: ignore[union-attr]
            except (BenchError, OSError):
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        self._log.close()


# --------------------------------------------------------------------------------------------
# WAN emulation: network namespaces + bridge + tc netem


class NetemLab:
    """N network namespaces ``glat<tag>n<i>`` joined by bridge ``glat<tag>br``; node i has
    10.213.<i//250>.<i%250+1>/16 on its ``eth0``, whose egress gets ``tc netem`` delay
    ``rtt_ms/2`` (+- ``jitter_ms``) and ``loss`` percent loss. :meth:`close` removes it all."""

    def __init__(self, n: int, rtt_ms: float, jitter_ms: float, loss: float):
        self.n, self.rtt_ms, self.jitter_ms, self.loss = n, rtt_ms, jitter_ms, loss
        self.tag = f"{os.getpid() % 0xFFFF:04x}"
        self.bridge = f"glat{self.tag}br"
        self.namespaces: list[str] = []
        self.veths: list[str] = []
        self._bridge_made = False

    @staticmethod
    def preflight() -> str | None:
        """None if we can build the lab, else why not (in plain words)."""
        if os.geteuid() != 0:
            return "--netem needs root (network namespaces and tc); run it as root, e.g. with sudo"
        missing = [t for t in ("ip", "tc") if shutil.which(t) is None]
        if missing:
            return (f"--netem needs {' and '.join(missing)} (iproute2): "
                    "apt-get update && apt-get install -y iproute2")
        return None

    def ip(self, i: int) -> str:
        return f"10.213.{i // 250}.{i % 250 + 1}"

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespaces[i], *argv]

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")

    def open(self) -> "NetemLab":
        try:
            self._run("ip", "link", "add", self.bridge, "type", "bridge")
            self._bridge_made = True
            self._run("ip", "link", "set", self.bridge, "up")
            delay = self.rtt_ms / 2
            for i in range(self.n):
                ns, veth = f"glat{self.tag}n{i}", f"glat{self.tag}v{i}"
                self._run("ip", "netns", "add", ns)
                self.namespaces.append(ns)
                self._run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self.veths.append(veth)
                self._run("ip", "link", "set", veth, "master", self.bridge)
                self._run("ip", "link", "set", veth, "up")
                self._run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
                self._run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{self.ip(i)}/16", "dev", "eth0")
                self._run("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
                if delay > 0 or self.loss > 0:
                    netem = ["delay", f"{delay:g}ms"]
                    if self.jitter_ms > 0:
                        netem += [f"{self.jitter_ms:g}ms", "distribution", "normal"]
                    if self.loss > 0:
                        netem += ["loss", f"{self.loss:g}%"]
                    try:
                        self._run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root",
                                  "netem", *netem, "limit", "100000")
                    except BenchError as exc:
                        if "unknown" in str(exc).lower():
                            raise BenchError("this kernel has no netem queueing discipline "
                                             "(CONFIG_NET_SCH_NETEM / module sch_netem; try "
                                             "`modprobe sch_netem`); --netem cannot emulate delay here") from None
                        raise
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for veth in self.veths:  # normally gone with its namespace
            subprocess.run(["ip", "link", "del", veth], capture_output=True)
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        self.namespaces, self.veths, self._bridge_made = [], [], False


class WanLab:
    """``--wan``: the namespaces of :mod:`netlab` (one per node on a bridge), with delay and
    loss emulated in user space (NFQUEUE; this kernel has no sch_netem). Same interface as
    :class:`NetemLab` for :func:`start_network`."""

    def __init__(self, stack: ExitStack, n: int, rtt_ms: float, jitter_ms: float, loss: float):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import netlab

        self.lab = stack.enter_context(netlab.open_lab(n, default=netlab.Link(rtt_ms, 2 * jitter_ms, loss)))
        self.bridge = f"{self.lab.prefix}-hub/br0"

    @staticmethod
    def preflight() -> str | None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import netlab

        why = netlab.lab_available()
        return f"--wan: {why}" if why else None

    def ip(self, i: int) -> str:
        return self.lab.nodes[i].ip

    def wrap(self, i: int, argv: list[str]) -> list[str]:
        return self.lab.nodes[i].exec_argv(argv)


@contextmanager
def terminate_on_sigterm():
    """Turn SIGTERM into KeyboardInterrupt so cleanup (children, namespaces) runs."""
    def handler(*_: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --------------------------------------------------------------------------------------------
# One system, one repeat


@dataclass
class Network:
    system: str
    children: list[Child] = field(default_factory=list)

    def stop(self) -> None:
        for c in self.children:
            c.stop()


def js_available() -> str | None:
    """None if the js baseline can run, else the reason and the fix."""
    node = shutil.which("node")
    if node is None:
        return "Node.js is not installed (need Node.js >= 20); then: npm ci --prefix benchmarks/js_gossip"
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return "cannot run `node --version`"
    if major < 20:
        return f"Node.js {version} is too old (need >= 20)"
    if not (JS_DIR / "node_modules" / "libp2p" / "package.json").exists():
        return f"js-libp2p is not installed; run: npm ci --prefix {os.path.relpath(JS_DIR)}"
    return None


def child_argv(system: str, args: argparse.Namespace, seed_hex: str, ip: str, bootstrap: str | None) -> list[str]:
    if system == "js":
        return [shutil.which("node") or "node", "--import", str(JS_DIR / "polyfill.mjs"), str(JS_DIR / "harness.mjs"),
                "--listen-ip", ip, "--topic", TOPIC, "--seed-hex", seed_hex,
                "--heartbeat-ms", str(int(args.heartbeat * 1000)), "--d", str(D), "--dlo", str(D_LO), "--dhi", str(D_HI)]
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", system, "--listen-ip", ip,
            "--seed-hex", seed_hex, "--heartbeat", str(args.heartbeat)]  # GOSSIP_LATENCY_PROFILE=dir: cProfile
    if bootstrap:
        argv += ["--bootstrap", bootstrap]
    return argv


def start_network(system: str, args: argparse.Namespace, repeat: int, lab: NetemLab | WanLab | None,
                  logdir: Path, peer_degree: float | None) -> Network:
    """Start N children of ``system`` and connect them (overlay: bootstrap + DHT; baselines:
    node 0 plus random peers up to ``peer_degree`` average connections)."""
    n = args.nodes
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    net = Network(system)
    seeds = [hashlib.sha256(f"gossip-bench/{system}/{repeat}/{i}".encode()).hexdigest() for i in range(n)]
    ips = [lab.ip(i) if lab else "127.0.0.1" for i in range(n)]

    def spawn(i: int, bootstrap: str | None) -> Child:
        argv = child_argv(system, args, seeds[i], ips[i], bootstrap)
        if lab:
            argv = lab.wrap(i, argv)
        return Child(argv, logdir / f"{system}-r{repeat}-n{i}.log", env, cwd=JS_DIR if system == "js" else None)

    try:
        first = spawn(0, None)
        net.children.append(first)
        first.info = first.expect("listening", args.start_timeout)
        addr0 = first.info["addrs"][0]
        for i in range(1, n):
            net.children.append(spawn(i, addr0 if system == "overlay" else None))
        for c in net.children[1:]:
            c.info = c.expect("listening", args.start_timeout)
        if system != "overlay":
            _connect_baseline(net, args, repeat, peer_degree)
    except BaseException:
        net.stop()
        raise
    return net


def _connect_baseline(net: Network, args: argparse.Namespace, repeat: int, peer_degree: float | None) -> None:
    """Each node i >= 1 dials node 0 (the bootstrap peer) and random others so the graph's
    average degree matches ``peer_degree`` (the overlay's, measured) or 2*D by default."""
    n = len(net.children)
    rng = random.Random(f"topology/{repeat}")
    target = min(n - 1, peer_degree if peer_degree is not None else 2 * D)
    edges: set[tuple[int, int]] = {(0, i) for i in range(1, n)}
    want_edges = int(round(target * n / 2))
    candidates = [(a, b) for a in range(1, n) for b in range(a + 1, n)]
    rng.shuffle(candidates)
    for e in candidates:
        if len(edges) >= want_edges:
            break
        edges.add(e)
    dials: dict[int, list[str]] = {}
    for a, b in edges:
        dials.setdefault(b, []).append(net.children[a].info["addrs"][0])
    for i, addrs in dials.items():
        net.children[i].send({"cmd": "connect", "addrs": addrs})
    for i in dials:
        ev = net.children[i].expect("connected", args.start_timeout)
        if ev["failed"]:
            print(f"  {net.system} node {i}: {len(ev['failed'])} dial(s) failed: {ev['failed'][0]}", file=sys.stderr)


def poll_status(net: Network, timeout: float = 20.0) -> list[dict]:
    for c in net.children:
        c.send({"cmd": "status"})
    return [c.expect("status", timeout) for c in net.children]


def wait_mesh(net: Network, args: argparse.Namespace) -> list[dict]:
    """Until, twice in a row, every node has a mesh peer on the topic and the median node a
    mesh of >= min(D_lo, N-1). (Not every node: py-libp2p's 60 s PRUNE backoff can hold a
    node, typically the bootstrap node everyone grafted first, below D_lo for a minute; it
    still receives everything through its mesh peers and gossip.)"""
    want = min(D_LO, len(net.children) - 1)
    deadline = time.monotonic() + args.mesh_timeout
    good = 0
    last: list[dict] = []
    while time.monotonic() < deadline:
        last = poll_status(net)
        ok = (all(s["mesh"] >= 1 and s["topic_peers"] >= want for s in last)
              and statistics.median(s["mesh"] for s in last) >= want)
        good = good + 1 if ok else 0
        if good >= 2:
            return last
        time.sleep(max(0.25, args.heartbeat / 2))
    raise BenchError(f"{net.system}: mesh not formed within {args.mesh_timeout:.0f} s "
                     f"(mesh sizes {[s['mesh'] for s in last]}, connections {[s['connected'] for s in last]})")


def make_schedule(args: argparse.Namespace, repeat: int) -> tuple[list[tuple[int, int, int]], set[int]]:
    """[(offset_ns, msg_id, publisher)] for warm-up + measured messages, and the warm-up ids."""
    rng = random.Random(f"schedule/{repeat}")
    gap_ns = int(1e9 / args.rate)
    warm = max(0, int(round(args.warmup * args.rate)))
    out = []
    for k in range(warm + args.messages):
        out.append((k * gap_ns, k + 1, rng.randrange(args.nodes)))
    return out, {k + 1 for k in range(warm)}


def run_load(net: Network, args: argparse.Namespace, repeat: int, progress: Any, task: Any) -> dict:
    """Publish the schedule, drain, and collect every child's report and resource usage."""
    schedule, warm_ids = make_schedule(args, repeat)
    per_child: dict[int, list[list[int]]] = {}
    for offset, msg_id, who in schedule:
        per_child.setdefault(who, []).append([offset, msg_id])
    pids = [c.info["pid"] for c in net.children]
    idle0, t_idle0 = [harness.proc_cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(args.idle)  # background CPU (heartbeats, DHT upkeep) with no messages flowing
    cpu0, t0 = [harness.proc_cpu_seconds(p) for p in pids], time.monotonic()
    idle_rate = sum(b - a for a, b in zip(idle0, cpu0)) / (t0 - t_idle0)  # CPU s/s, all nodes
    start_ns = time.time_ns() + int(0.5e9)
    for i, c in enumerate(net.children):
        c.send({"cmd": "run", "start_ns": start_ns, "size": args.size, "schedule": per_child.get(i, [])})
    for c in net.children:
        c.expect("scheduled", 30)
    duration = schedule[-1][0] / 1e9 if schedule else 0.0
    end = start_ns / 1e9 + duration
    total = len(schedule) - len(warm_ids)
    done_before = 0
    while time.time() < end:
        time.sleep(0.2)
        sent = int(max(0.0, time.time() - start_ns / 1e9) * args.rate) - len(warm_ids)
        sent = max(0, min(total, sent))
        progress.advance(task, sent - done_before)
        done_before = sent
    progress.advance(task, total - done_before)
    for i in per_child:
        net.children[i].expect("run_done", 30 + args.drain)
    time.sleep(args.drain)
    cpu1, t1 = [harness.proc_cpu_seconds(p) for p in pids], time.monotonic()
    rss = [harness.proc_rss_mib(p) for p in pids]
    for c in net.children:
        c.send({"cmd": "report"})
    reports = [c.expect("report", 60) for c in net.children]
    return {"schedule": schedule, "warm_ids": warm_ids, "reports": reports,
            "cpu_s": [b - a for a, b in zip(cpu0, cpu1)], "window_s": t1 - t0, "idle_cpu_rate": idle_rate,
            "rss_mib": rss}


def analyse(raw: dict, n: int) -> dict:
    """Per-message first/last receipt latency, delivery, duplicates, CPU and RSS of one run."""
    warm = raw["warm_ids"]
    measured = {msg_id: who for _, msg_id, who in raw["schedule"] if msg_id not in warm}
    t_pub: dict[int, int] = {}
    for rep in raw["reports"]:
        for msg_id, t in rep["pub"]:
            t_pub[msg_id] = t
    recv: dict[int, list[int]] = {m: [] for m in measured}
    mismatched = 0
    for rep in raw["reports"]:
        for msg_id, tp, tr in rep["recv"]:
            if msg_id in recv:
                recv[msg_id].append(tr)
                if msg_id in t_pub and abs(tp - t_pub[msg_id]) > 10_000:  # payload time vs publisher log
                    mismatched += 1
    first, last = [], []
    deliveries = 0
    for msg_id, times in recv.items():
        deliveries += len(times)
        if times and msg_id in t_pub:
            first.append((min(times) - t_pub[msg_id]) / 1e6)
            last.append((max(times) - t_pub[msg_id]) / 1e6)
    expected = len(measured) * (n - 1)
    inbound = sum(r["inbound"] for r in raw["reports"])
    delivered_all = sum(r["delivered"] for r in raw["reports"])  # includes warm-up
    cpu = sum(raw["cpu_s"])
    return {
        "delivery": deliveries / expected if expected else math.nan,
        "deliveries": deliveries,
        "expected": expected,
        "published": sum(1 for m in measured if m in t_pub),
        "first_ms": harness.percentiles(first),
        "last_ms": harness.percentiles(last),
        "dups_per_delivery": (inbound - delivered_all) / delivered_all if delivered_all else math.nan,
        "cpu_s_per_delivery": cpu / delivered_all if delivered_all else math.nan,
        "net_cpu_s_per_delivery": (cpu - raw["idle_cpu_rate"] * raw["window_s"]) / delivered_all
        if delivered_all else math.nan,
        "idle_cpu_per_node": raw["idle_cpu_rate"] / n,
        "cpu_s_total": cpu,
        "rss_mib_median": statistics.median(raw["rss_mib"]),
        "rss_mib_max": max(raw["rss_mib"]),
        "payload_time_mismatches": mismatched,
        "node_stats": [r.get("stats") or {} for r in raw["reports"]],
        "first_samples_ms": first,
        "last_samples_ms": last,
    }


# ============================================================================================
# Orchestration and report
# ============================================================================================


def bench(args: argparse.Namespace, out: Path) -> dict:
    con = harness.console(stderr=True)
    cores = os.cpu_count() or 1
    skipped: dict[str, str] = {}
    systems = [s for s in args.systems]
    if "js" in systems:
        why = js_available()
        if why:
            skipped["js"] = why
            systems.remove("js")
            con.print(f"[yellow]js baseline skipped: {why}[/]")
    if args.nodes > cores:
        con.print(f"[yellow]note: {args.nodes} node processes on {cores} CPU cores: they contend for CPU, "
                  "and latencies include waiting for a core (same for every system).[/]")
    logdir = out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    topo: dict[str, list[dict]] = {s: [] for s in systems}
    failures: dict[str, list[str]] = {s: [] for s in systems}
    with ExitStack() as stack:
        stack.enter_context(terminate_on_sigterm())
        lab = None
        if args.netem:
            lab = NetemLab(args.nodes, args.rtt_ms, args.jitter_ms, args.loss)
            stack.callback(lab.close)
            lab.open()
            con.print(f"netem: {args.nodes} namespaces on bridge {lab.bridge}, RTT {args.rtt_ms:g} ms "
                      f"(+-{args.jitter_ms:g} ms per direction), loss {args.loss:g}% per direction")
        elif args.wan:
            lab = WanLab(stack, args.nodes, args.rtt_ms, args.jitter_ms, args.loss)
            con.print(f"wan (user-space emulator): {args.nodes} namespaces on {lab.bridge}, RTT {args.rtt_ms:g} ms "
                      f"(+-{args.jitter_ms:g} ms per direction), loss {args.loss:g}% per packet and direction")
        progress = stack.enter_context(harness.progress_bar(con))
        task = progress.add_task("gossip", total=args.repeats * len(systems) * args.messages)
        peer_degree: float | None = None
        for r in range(args.repeats):
            order = systems[r % len(systems):] + systems[:r % len(systems)] if systems else []
            if r == 0 and "overlay" in order:  # first overlay run sets the baselines' degree
                order.remove("overlay")
                order.insert(0, "overlay")
            for system in order:
                progress.update(task, description=f"repeat {r + 1}/{args.repeats} {system:<7} starting")
                net = None
                try:
                    net = start_network(system, args, r, lab, logdir, peer_degree)
                    progress.update(task, description=f"repeat {r + 1}/{args.repeats} {system:<7} meshing")
                    status = wait_mesh(net, args)
                    degree = statistics.mean(s["connected"] for s in status)
                    topo[system].append({"connected_mean": degree,
                                         "mesh_mean": statistics.mean(s["mesh"] for s in status),
                                         "connected": [s["connected"] for s in status],
                                         "mesh": [s["mesh"] for s in status]})
                    if system == "overlay":
                        peer_degree = degree
                    progress.update(task, description=f"repeat {r + 1}/{args.repeats} {system:<7} publishing")
                    raw = run_load(net, args, r, progress, task)
                    res = analyse(raw, args.nodes)
                    runs[system].append(res)
                    progress.console.print(
                        f"repeat {r + 1} {system:<7}: delivery {res['delivery']:.2%}, last-receipt p50/p99 "
                        f"{res['last_ms']['p50']:.1f}/{res['last_ms']['p99']:.1f} ms, "
                        f"dups/delivery {res['dups_per_delivery']:.2f}, "
                        f"CPU {res['cpu_s_per_delivery'] * 1e3:.2f} ms/delivery "
                        f"({res['net_cpu_s_per_delivery'] * 1e3:.2f} above idle {res['idle_cpu_per_node']:.1%}/node), "
                        f"mesh {topo[system][-1]['mesh_mean']:.1f}, "
                        f"connections {degree:.1f}")
                except BenchError as exc:
                    failures[system].append(str(exc))
                    progress.console.print(f"[red]repeat {r + 1} {system}: {exc}[/]")
                finally:
                    if net is not None:
                        net.stop()
    summary = summarise(runs)
    return {
        "config": {"nodes": args.nodes, "messages": args.messages, "size": args.size, "rate": args.rate,
                   "heartbeat": args.heartbeat, "repeats": args.repeats, "warmup_s": args.warmup,
                   "drain_s": args.drain, "degree": [D, D_LO, D_HI], "topic": TOPIC,
                   "netem": {"rtt_ms": args.rtt_ms, "jitter_ms": args.jitter_ms, "loss_pct": args.loss,
                             "emulator": "netlab (user space, NFQUEUE)" if args.wan else "tc netem"}
                   if args.netem or args.wan else None},
        "host": {"cpu_cores": cores, "node_processes": args.nodes, "oversubscribed": args.nodes > cores,
                 "python": sys.version.split()[0], "platform": sys.platform},
        "skipped": skipped,
        "failures": {k: v for k, v in failures.items() if v},
        "summary": summary,
        "ratios": ratios(summary),
        "topology": topo,
        "runs": runs,
    }


_SCALARS = ("delivery", "dups_per_delivery", "cpu_s_per_delivery", "net_cpu_s_per_delivery", "idle_cpu_per_node",
            "rss_mib_median", "rss_mib_max")


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    out = {}
    for system, rs in runs.items():
        if not rs:
            continue
        s: dict[str, Any] = {"repeats": len(rs)}
        for k in _SCALARS:
            s[k] = harness.median(r[k] for r in rs)
        for k in ("first_ms", "last_ms"):
            s[k] = {q: harness.median(r[k][q] for r in rs) for q in ("p50", "p95", "p99")}
        s["delivery_min"] = min(r["delivery"] for r in rs)
        out[system] = s
    return out


def ratios(summary: dict[str, dict]) -> dict[str, float]:
    out = {}
    ov = summary.get("overlay")
    for base in ("bare", "js"):
        b = summary.get(base)
        if ov and b:
            for kind in ("first_ms", "last_ms"):
                for q in ("p50", "p99"):
                    out[f"overlay/{base} {kind[:-3]} {q}"] = ov[kind][q] / b[kind][q] if b[kind][q] else math.nan
    return out


def report(res: dict, out: Path, stem: str) -> None:
    from rich.table import Table

    con = harness.console()
    cfg, host, s = res["config"], res["host"], res["summary"]
    title = (f"N={cfg['nodes']} processes, {cfg['messages']} msgs x {cfg['size']} B @ {cfg['rate']:g}/s, "
             f"heartbeat {cfg['heartbeat']:g} s, median of {cfg['repeats']} repeats")
    if cfg["netem"]:
        title += f", netem RTT {cfg['netem']['rtt_ms']:g} ms loss {cfg['netem']['loss_pct']:g}%"
    cols = ["system", "delivery", "first p50", "first p95", "first p99", "last p50", "last p95", "last p99",
            "dups/delivery", "CPU ms/delivery", "net CPU ms/delivery", "idle CPU %/node", "RSS MiB/node"]
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c == "system" else "right")
    md = [f"**{title}** (latencies in ms; host: {host['cpu_cores']} CPU cores)", "",
          "| " + " | ".join(cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
    for system in SYSTEMS:
        if system not in s:
            continue
        v = s[system]
        row = [f"{v['delivery']:.2%}"] + [f"{v[k][q]:.1f}" for k in ("first_ms", "last_ms") for q in ("p50", "p95", "p99")]
        row += [f"{v['dups_per_delivery']:.2f}", f"{v['cpu_s_per_delivery'] * 1e3:.2f}",
                f"{v['net_cpu_s_per_delivery'] * 1e3:.2f}", f"{v['idle_cpu_per_node'] * 100:.1f}",
                f"{v['rss_mib_median']:.0f}"]
        t.add_row(system, *row)
        md.append(f"| {system} | " + " | ".join(row) + " |")
    con.print(t)
    notes = []
    for k, v in res["ratios"].items():
        notes.append(f"{k}: {v:.2f}x")
    if host["oversubscribed"]:
        notes.append(f"{host['node_processes']} node processes shared {host['cpu_cores']} CPU cores "
                     "(latencies include CPU contention, equally for every system)")
    for system, why in res["skipped"].items():
        notes.append(f"{system} skipped: {why}")
    for system, errs in res["failures"].items():
        notes.append(f"{system}: {len(errs)} repeat(s) failed: {errs[0].splitlines()[0]}")
    md.append("")
    for line in notes:
        con.print(line)
        md.append(f"- {line}")
    harness.write_report(out, stem, res, md, plots={stem: lambda plt: cdf_plot(res, title, plt)}, indent=1, con=con)


def cdf_plot(res: dict, title: str, plt: Any) -> Any:
    """First- and last-receipt latency CDFs of every system (all repeats), as one figure."""
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colours = {"overlay": "C0", "bare": "C1", "js": "C2"}
    for ax, kind, label in ((axes[0], "first_samples_ms", "first receipt"), (axes[1], "last_samples_ms", "last receipt")):
        for system in SYSTEMS:
            xs = sorted(x for r in res["runs"].get(system, []) for x in r[kind])
            if xs:
                ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=system, color=colours[system])
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"{label} latency (ms)")
        ax.grid(True, alpha=0.3)
        ax.set_title(label)
    axes[0].set_ylabel("CDF over messages (all repeats)")
    axes[1].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=16, help="node processes per system, 2..64 (default 16)")
    p.add_argument("--messages", type=int, default=100, help="measured messages per repeat (default 100)")
    p.add_argument("--size", type=int, default=1024, help="payload bytes per message (default 1024)")
    p.add_argument("--rate", type=float, default=5.0, help="aggregate publish rate, msg/s (default 5)")
    p.add_argument("--heartbeat", type=float, default=1.0, help="GossipSub heartbeat, s (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="fresh networks per system; medians reported")
    p.add_argument("--systems", default="overlay,bare,js", help="comma-separated subset of overlay,bare,js")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured messages first (default 1)")
    p.add_argument("--drain", type=float, default=None, help="wait after the last publish, s (default 3; netem 6)")
    p.add_argument("--idle", type=float, default=2.0, help="s of idle CPU measurement before publishing (default 2)")
    p.add_argument("--mesh-timeout", type=float, default=None, help="s to wait for the mesh (default 30 + N)")
    p.add_argument("--start-timeout", type=float, default=None, help="s to wait for processes to start")
    p.add_argument("--netem", action="store_true", help="one network namespace per node + tc netem (root)")
    p.add_argument("--wan", action="store_true",
                   help="like --netem, but delay/loss emulated in user space by benchmarks/netlab.py (root, "
                        "iptables, netfilterqueue; for kernels without sch_netem)")
    p.add_argument("--rtt-ms", type=float, default=50.0, help="netem round-trip time between nodes (default 50)")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="netem delay jitter per direction (default 0)")
    p.add_argument("--loss", type=float, default=0.5, help="netem loss percent per direction (default 0.5)")
    p.add_argument("--quick", action="store_true", help="CI size: N=6, 15 messages @ 10/s, 1 repeat")
    p.add_argument("--out", default="results/bench", help="output directory (default results/bench)")
    p.add_argument("--child", choices=("overlay", "bare"), help=argparse.SUPPRESS)
    p.add_argument("--listen-ip", default="127.0.0.1", help=argparse.SUPPRESS)
    p.add_argument("--seed-hex", help=argparse.SUPPRESS)
    p.add_argument("--bootstrap", action="append", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.quick:
        args.nodes, args.messages, args.rate, args.repeats, args.warmup, args.idle = 6, 15, 10.0, 1, 0.5, 1.0
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in args.systems if s not in SYSTEMS]
    if bad or not args.systems:
        p.error(f"--systems: unknown {bad}; choose from {','.join(SYSTEMS)}")
    if not 2 <= args.nodes <= 64:
        p.error("--nodes must be in 2..64")
    if args.messages < 1 or args.rate <= 0 or args.size < HEADER.size or args.repeats < 1:
        p.error(f"need --messages >= 1, --rate > 0, --size >= {HEADER.size}, --repeats >= 1")
    args.drain = args.drain if args.drain is not None else (6.0 if args.netem or args.wan else 3.0)
    args.mesh_timeout = args.mesh_timeout or 30.0 + args.nodes
    args.start_timeout = args.start_timeout or 30.0 + 2.0 * args.nodes
    if args.netem or args.wan:
        why = (WanLab if args.wan else NetemLab).preflight()
        if why:
            print(f"gossip_latency: {why}", file=sys.stderr)
            return 2
    out = Path(args.out)
    stem = "gossip_latency_wan" if args.wan else "gossip_latency_netem" if args.netem else "gossip_latency"
    try:
        res = bench(args, out)
    except KeyboardInterrupt:
        print("interrupted; children stopped and network namespaces removed", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"gossip_latency: {exc}", file=sys.stderr)
        return 1
    report(res, out, stem)
    return 0 if res["summary"] else 1


if __name__ == "__main__":
    sys.exit(main())
