#!/usr/bin/env python3
"""A WAN/NAT lab in network namespaces, with delay, jitter and loss emulated in user space.

This kernel has no ``sch_netem``, so ``tc netem`` cannot add delay. Instead every packet a
node sends on its lab interface goes through an iptables ``NFQUEUE`` rule to one emulator
process (:func:`run_emulator`, ``python benchmarks/netlab.py --emulator SPEC``), which holds
it for the link's one-way delay (+ jitter, order kept per link) and drops it with the link's
loss probability before giving the verdict. Real NAT is iptables ``MASQUERADE``.

Topology (``prefix`` keeps names apart from other labs on the machine)::

    root ns --veth-- [hub ns: bridge, 10.77.0.0/16] --veth-- node i ns (10.77.0.(10+i))
                                        |
                                        +--veth-- nat k ns (wan 10.77.1.k) --veth-- node j ns
                                                  MASQUERADE                (192.168.k.2, gw .1)

The root namespace gets 10.77.0.1 on the hub so a test or benchmark process outside the lab
can reach the public nodes (their HTTP APIs). Packets between node i and node j (or the NAT in
front of j) are delayed on i's egress by ``rtt/2`` of link (i, j); traffic to 10.77.0.1 is
not delayed. NAT kinds: ``"eim"`` (endpoint-independent mapping: Linux keeps the source port,
so a TCP hole punch from the listen port can work) and ``"adm"`` (address-dependent mapping:
``--random-fully`` picks a new external port per connection, so hole punching cannot work).
Both filter unsolicited inbound connections (nothing is forwarded to the node behind).

Everything is removed on exit (context manager, Ctrl-C, SIGTERM, exceptions): child
processes are killed by process group, then the namespaces are deleted, which deletes their
veths, bridges and iptables rules. ``python benchmarks/netlab.py --cleanup`` removes what a
killed run left (namespaces named ``wl*``). Root only.

    sudo .venv/bin/python benchmarks/netlab.py --validate --rtt-ms 50 --loss 0.5
"""

from __future__ import annotations

import argparse
import ctypes
import heapq
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

HUB_NET = "10.77"
ROOT_IP = f"{HUB_NET}.0.1"
CLONE_NEWNET = 0x40000000


class LabError(RuntimeError):
    """The lab cannot be built here (not root, no netns, no iptables, no NFQUEUE)."""


@dataclass(frozen=True)
class Link:
    """One direction-symmetric link: round-trip time and jitter in ms, loss in percent
    (applied independently to each packet in each direction)."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.rtt_ms < 0 or self.jitter_ms < 0 or not 0 <= self.loss_pct < 100:
            raise ValueError(f"bad link {self}")


@dataclass
class LabNode:
    """A node of the lab: its namespace, its own address, and the address others reach it at
    (the NAT's WAN address when it is behind a NAT)."""

    index: int
    ns: str
    ip: str
    public_ip: str
    nat: str | None = None  # None, "eim" or "adm"
    nat_ns: str | None = None

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this node's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]


def lab_available() -> str | None:
    """None if a lab can be built here, else why not (for pytest skips)."""
    if os.geteuid() != 0:
        return "the WAN/NAT lab needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"the WAN/NAT lab needs `{tool}` (apt-get install iproute2 iptables)"
    try:
        import netfilterqueue  # noqa: F401
    except ImportError:
        return "the WAN/NAT lab needs the netfilterqueue package (pip install netfilterqueue)"
    probe = f"wlprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return f"this kernel has no network namespaces ({r.stderr.strip()})"
    try:
        r = subprocess.run(["ip", "netns", "exec", probe, "iptables", "-A", "OUTPUT", "-o", "lo", "-p", "udp",
                            "--dport", "9", "-j", "NFQUEUE", "--queue-num", "1"], capture_output=True, text=True)
        if r.returncode != 0:
            return f"iptables NFQUEUE does not work here ({r.stderr.strip()})"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def _nsx(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _sh("ip", "netns", "exec", ns, *argv, check=check)


def cleanup_stale(prefix: str = "wl") -> list[str]:
    """Delete namespaces named ``<prefix>*`` (what a SIGKILLed lab left); returns their names."""
    r = _sh("ip", "netns", "list", check=False)
    gone = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix) and name != "":
            for pid in _sh("ip", "netns", "pids", name, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _sh("ip", "netns", "del", name, check=False)
            gone.append(name)
    _sh("ip", "link", "del", f"{prefix}root", check=False)
    return gone


class Lab:
    """A running lab; build it with :func:`open_lab`.

    ``nodes``: public ones first, then the NATed ones. ``spawn(node, argv)`` starts a process
    in a node's namespace (killed with its process group at exit). ``link(i, j)`` is the link
    between two nodes (``default`` unless overridden in ``links``).
    """

    def __init__(self, prefix: str, workdir: Path):
        self.prefix = prefix
        self.workdir = workdir
        self.nodes: list[LabNode] = []
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.emulator: subprocess.Popen[bytes] | None = None
        self.emulator_stats_path = workdir / "emulator_stats.json"

    def spawn(self, node: LabNode, argv: Sequence[str], log: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``node``'s namespace (stdout+stderr to ``log`` or discarded)."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(node.exec_argv(argv), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        if log:
            out.close()  # type: ignore[union-attr]
        self.procs.append(proc)
        return proc

    def run(self, node: LabNode, argv: Sequence[str], timeout: float = 120.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion inside ``node``'s namespace."""
        return subprocess.run(node.exec_argv(argv), capture_output=True, text=True, timeout=timeout, env=env)

    def emulator_cpu_s(self) -> float:
        """CPU seconds (user + system) the emulator process has used so far."""
        if self.emulator is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.emulator.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def emulator_stats(self) -> dict[str, float]:
        """Packets seen / delayed / dropped by the emulator (it writes them every second)."""
        try:
            return json.loads(self.emulator_stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def set_loss(self, node: LabNode, blocked: bool) -> None:
        """Cut (``blocked``) or restore all of ``node``'s lab traffic (a hard partition)."""
        for chain in ("INPUT", "OUTPUT"):
            flag = "-I" if blocked else "-D"
            _nsx(node.ns, "iptables", flag, chain, "-i" if chain == "INPUT" else "-o", "eth0", "-j", "DROP",
                 check=blocked)

    def close(self) -> None:
        for proc in reversed(self.procs + ([self.emulator] if self.emulator else [])):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + 5
        for proc in self.procs + ([self.emulator] if self.emulator else []):
            try:
                proc.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        for ns in reversed(self.namespaces):
            for pid in _sh("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _sh("ip", "netns", "del", ns, check=False)
        _sh("ip", "link", "del", f"{self.prefix}root", check=False)


@contextmanager
def open_lab(public: int, nated: Sequence[str] = (), default: Link = Link(),
             links: dict[tuple[int, int], Link] | None = None, prefix: str | None = None,
             seed: int = 1) -> Iterator[Lab]:
    """Build a lab of ``public`` public nodes plus one node behind its own NAT per entry of
    ``nated`` (``"eim"`` or ``"adm"``); yields a :class:`Lab`; removes everything on exit.

    :raises LabError: not root, no namespaces / iptables / netfilterqueue, or a command failed.
    """
    why = lab_available()
    if why:
        raise LabError(why)
    for kind in nated:
        if kind not in ("eim", "adm"):
            raise ValueError(f"NAT kind must be 'eim' or 'adm', got {kind!r}")
    total = public + len(nated)
    if not 1 <= total <= 200:
        raise ValueError("a lab holds 1..200 nodes")
    prefix = prefix or f"wl{os.getpid() % 100000}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    lab = Lab(prefix, workdir)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for s in previous:
        signal.signal(s, on_signal)
    try:
        _build(lab, public, list(nated))
        _start_emulator(lab, default, links or {}, seed)
        yield lab
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
        for s, h in previous.items():
            signal.signal(s, h)


def _build(lab: Lab, public: int, nated: list[str]) -> None:
    p = lab.prefix
    hub = f"{p}-hub"
    _sh("ip", "netns", "add", hub)
    lab.namespaces.append(hub)
    _nsx(hub, "ip", "link", "set", "lo", "up")
    _nsx(hub, "ip", "link", "add", "br0", "type", "bridge")
    _nsx(hub, "ip", "link", "set", "br0", "up")
    # the root namespace's window into the lab
    _sh("ip", "link", "add", f"{p}root", "type", "veth", "peer", "name", "rootp", "netns", hub)
    _sh("ip", "addr", "add", f"{ROOT_IP}/16", "dev", f"{p}root")
    _sh("ip", "link", "set", f"{p}root", "up")
    _nsx(hub, "ip", "link", "set", "rootp", "master", "br0", "up")

    def attach(ns: str, port: str, ip: str) -> None:
        _nsx(hub, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _nsx(hub, "ip", "link", "set", port, "master", "br0", "up")
        _nsx(ns, "ip", "addr", "add", f"{ip}/16", "dev", "eth0")
        _nsx(ns, "ip", "link", "set", "eth0", "up")

    for i in range(public):
        ns = f"{p}-n{i}"
        _sh("ip", "netns", "add", ns)
        lab.namespaces.append(ns)
        _nsx(ns, "ip", "link", "set", "lo", "up")
        ip = f"{HUB_NET}.0.{10 + i}"
        attach(ns, f"p{i}", ip)
        lab.nodes.append(LabNode(i, ns, ip, ip))
    for k, kind in enumerate(nated, start=1):
        i = public + k - 1
        nat_ns, ns = f"{p}-nat{k}", f"{p}-n{i}"
        for name in (nat_ns, ns):
            _sh("ip", "netns", "add", name)
            lab.namespaces.append(name)
            _nsx(name, "ip", "link", "set", "lo", "up")
        wan = f"{HUB_NET}.1.{k}"
        attach(nat_ns, f"w{k}", wan)
        _nsx(nat_ns, "ip", "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _nsx(nat_ns, "ip", "addr", "add", f"192.168.{k}.1/24", "dev", "lan")
        _nsx(nat_ns, "ip", "link", "set", "lan", "up")
        _nsx(nat_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        masq = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-s", f"192.168.{k}.0/24",
                "-j", "MASQUERADE"]
        if kind == "adm":
            masq.append("--random-fully")
        _nsx(nat_ns, *masq)
        # filtering: only replies to what the inside opened come in (no port forwards)
        _nsx(nat_ns, "iptables", "-A", "FORWARD", "-i", "eth0", "-o", "lan", "-m", "conntrack",
             "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
        _nsx(nat_ns, "iptables", "-A", "FORWARD", "-i", "eth0", "-o", "lan", "-j", "DROP")
        # like a home router: unsolicited connections to the WAN address are dropped silently
        # (a RST would kill a TCP hole punch whose SYN arrives before the peer's own SYN left)
        _nsx(nat_ns, "iptables", "-A", "INPUT", "-i", "eth0", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
        ip = f"192.168.{k}.2"
        _nsx(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        _nsx(ns, "ip", "link", "set", "eth0", "up")
        _nsx(ns, "ip", "route", "add", "default", "via", f"192.168.{k}.1")
        lab.nodes.append(LabNode(i, ns, ip, wan, nat=kind, nat_ns=nat_ns))


def _start_emulator(lab: Lab, default: Link, links: dict[tuple[int, int], Link], seed: int) -> None:
    """One emulator process serves every node's egress queue (queue number = node index + 1)."""
    by_ip = {n.public_ip: n.index for n in lab.nodes}
    by_ip.update({n.ip: n.index for n in lab.nodes})
    spec = {
        "namespaces": {str(n.index): n.ns for n in lab.nodes},
        "by_ip": by_ip,
        "default": asdict(default),
        "links": {f"{a},{b}": asdict(v) for (a, b), v in links.items()},
        "seed": seed,
        "stats": str(lab.emulator_stats_path),
    }
    path = lab.workdir / "emulator.json"
    path.write_text(json.dumps(spec))
    ready = lab.workdir / "emulator.ready"
    lab.emulator = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--emulator", str(path),
                                     "--ready", str(ready)], start_new_session=True,
                                    stdout=open(lab.workdir / "emulator.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not ready.exists():
        if lab.emulator.poll() is not None or time.monotonic() > deadline:
            log = (lab.workdir / "emulator.log").read_text(errors="replace")[-2000:]
            raise LabError(f"the delay emulator did not start: {log}")
        time.sleep(0.02)
    for n in lab.nodes:
        # egress of the node's lab interface only (loopback and the NAT's own traffic untouched)
        _nsx(n.ns, "iptables", "-A", "OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", str(n.index + 1))


# ------------------------------------------------------------------------------------------
# wwwserve nodes in the lab
# ------------------------------------------------------------------------------------------


@dataclass
class LabNodeProcess:
    """A ``wwwserve node`` process in a lab namespace. ``api_url`` is reachable from the
    root namespace for public nodes only (a NATed node's API: :meth:`Lab.run` inside it)."""

    node: LabNode
    name: str
    proc: subprocess.Popen[str]
    peer_id: str
    addrs: list[str]
    api_url: str
    log_path: Path
    config_path: Path

    @property
    def multiaddr(self) -> str:
        """The node's lab address (``/ip4/<public ip>/tcp/<port>/p2p/<id>``), for bootstrap."""
        for a in self.addrs:
            if f"/ip4/{self.node.ip}/" in a:
                return a
        return self.addrs[0]

    def status(self, lab: Lab, timeout: float = 10.0) -> dict:
        """``GET /status`` (from inside the node's namespace, so NATed nodes work too)."""
        r = lab.run(self.node, [sys.executable, "-c", "import sys, httpx; print(httpx.get(sys.argv[1], "
                                f"timeout={timeout}).text)", self.api_url + "/status"], timeout=timeout + 20)
        if r.returncode != 0:
            raise LabError(f"status of {self.name}: {r.stderr[-300:]}")
        return json.loads(r.stdout)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_lab_node(lab: Lab, node: LabNode, name: str, config: dict, workdir: Path,
                   ready_timeout: float = 90.0, argv: Sequence[str] | None = None) -> LabNodeProcess:
    """Start ``wwwserve node`` (or ``argv``, which must print the same JSON ready line) in
    ``node``'s namespace with the TOML ``config`` (``net.listen`` on the lab interface port
    4001 and the API on ``0.0.0.0:8000`` unless set; ``node.data_dir`` under ``workdir``).

    :raises LabError: it exited or did not print its ready line in time.
    """
    return start_lab_nodes(lab, [(node, name, config, argv)], workdir, ready_timeout)[0]


def start_lab_nodes(lab: Lab, specs: Sequence[tuple[LabNode, str, dict, Sequence[str] | None]], workdir: Path,
                    ready_timeout: float = 90.0) -> list[LabNodeProcess]:
    """:func:`start_lab_node` for several nodes at once (started together, then awaited)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max(1, len(specs))) as pool:
        futures = [pool.submit(_start_one, lab, n, name, cfg, Path(workdir), ready_timeout, argv)
                   for n, name, cfg, argv in specs]
        return [f.result() for f in futures]


def _start_one(lab: Lab, node: LabNode, name: str, config: dict, workdir: Path,
               ready_timeout: float, argv: Sequence[str] | None) -> LabNodeProcess:
    import threading

    import tomli_w

    data_dir = Path(workdir) / name
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = {k: dict(v) for k, v in config.items()}
    cfg.setdefault("node", {}).setdefault("data_dir", str(data_dir))
    cfg.setdefault("net", {}).setdefault("listen", ["/ip4/0.0.0.0/tcp/4001"])
    cfg.setdefault("api", {}).setdefault("host", "0.0.0.0")
    cfg["api"].setdefault("port", 8000)
    config_path = data_dir / "node.toml"
    config_path.write_text(tomli_w.dumps(cfg))
    log_path = data_dir / "node.log"
    log = open(log_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    cmd = list(argv) if argv else [sys.executable, "-m", "wwwserve_p2p.cli", "node", "--config", str(config_path)]
    proc = subprocess.Popen(node.exec_argv(cmd), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                            text=True, env=env, start_new_session=True)
    log.close()
    lab.procs.append(proc)  # type: ignore[arg-type]
    ready: dict = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{") and '"ready"' in line:
                try:
                    ready.update(json.loads(line))
                    return
                except ValueError:
                    continue

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(ready_timeout)
    if not ready:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise LabError(f"{name} not ready after {ready_timeout:.0f} s (exit {proc.poll()}):\n{tail}")
    api = ready.get("api_url", "").replace("0.0.0.0", node.ip)
    return LabNodeProcess(node, name, proc, ready["peer_id"], ready.get("addrs", []), api, log_path, config_path)


# ------------------------------------------------------------------------------------------
# The emulator process
# ------------------------------------------------------------------------------------------


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


def _dst_ip(payload_head: bytes) -> str | None:
    return socket.inet_ntoa(payload_head[16:20]) if len(payload_head) >= 20 else None


def run_emulator(spec_path: str, ready: str | None) -> None:
    """Hold each queued packet for its link's one-way delay, drop with its loss probability.

    One netlink queue socket per node namespace (created after ``setns`` into it), all served
    by one select loop; per link (src, dst) packets keep their order (a jittered packet never
    overtakes an earlier one). Only 20 bytes of each packet are copied to user space.
    """
    from netfilterqueue import COPY_PACKET, NetfilterQueue

    spec = json.loads(Path(spec_path).read_text())
    try:  # real-time priority: on a loaded machine the emulator must not wait for a core
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        pass
    rng = random.Random(spec["seed"])
    by_ip: dict[str, int] = spec["by_ip"]
    default = Link(**spec["default"])
    links = {tuple(int(x) for x in k.split(",")): Link(**v) for k, v in spec["links"].items()}
    heap: list[tuple[float, int, object]] = []
    last_due: dict[tuple[int, int], float] = {}
    counter = [0]
    stats = {"packets": 0, "delayed": 0, "dropped": 0, "max_queue": 0}
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    queues = []

    def make_cb(src: int):
        def cb(pkt: object) -> None:
            stats["packets"] += 1
            dst = by_ip.get(_dst_ip(pkt.get_payload()) or "")  # type: ignore[attr-defined]
            if dst is None or dst == src:
                pkt.accept()  # type: ignore[attr-defined]
                return
            link = links.get((src, dst)) or links.get((dst, src)) or default
            if link.loss_pct and rng.random() * 100 < link.loss_pct:
                stats["dropped"] += 1
                pkt.drop()  # type: ignore[attr-defined]
                return
            one_way = link.rtt_ms / 2000.0
            if link.jitter_ms:
                one_way = max(0.0, one_way + rng.uniform(-link.jitter_ms, link.jitter_ms) / 2000.0)
            if one_way <= 0:
                pkt.accept()  # type: ignore[attr-defined]
                return
            due = max(time.monotonic() + one_way, last_due.get((src, dst), 0.0))
            last_due[(src, dst)] = due
            counter[0] += 1
            heapq.heappush(heap, (due, counter[0], pkt))
            stats["delayed"] += 1
            stats["max_queue"] = max(stats["max_queue"], len(heap))
        return cb

    for idx, ns in spec["namespaces"].items():
        _setns(f"/var/run/netns/{ns}")
        q = NetfilterQueue()
        q.bind(int(idx) + 1, make_cb(int(idx)), max_len=65536, mode=COPY_PACKET, range=20, sock_len=8 << 20)
        queues.append(q)
    _setns_fd(own)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *a: stop.__setitem__(0, True))
    if ready:
        Path(ready).write_text("ok")
    fds = {q.get_fd(): q for q in queues}
    next_stats = time.monotonic() + 1.0
    while not stop[0]:
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, pkt = heapq.heappop(heap)
            try:
                pkt.accept()  # type: ignore[attr-defined]
            except Exception:  # the queue entry may be gone (netns deleted)
                pass
        timeout = min(heap[0][0] - now, 0.5) if heap else 0.5
        try:
            readable, _, _ = select.select(list(fds), [], [], max(0.0, timeout))
        except InterruptedError:
            continue
        for fd in readable:
            fds[fd].run(block=False)
        if now >= next_stats:
            next_stats = now + 1.0
            try:
                Path(spec["stats"]).write_text(json.dumps(stats))
            except OSError:
                pass
    Path(spec["stats"]).write_text(json.dumps(stats))
    for q in queues:
        try:
            q.unbind()
        except Exception:
            pass


def _setns_fd(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns back")


# ------------------------------------------------------------------------------------------
# Validation: a TCP round trip through the emulator vs the configured RTT
# ------------------------------------------------------------------------------------------

_ECHO_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        b = c.recv(64)
        if not b: break
        c.sendall(b)
    c.close()
"""

_ECHO_CLIENT = r"""
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for attempt in range(100):
    try:
        s = socket.create_connection((host, port), timeout=5); break
    except OSError:
        time.sleep(0.05)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out = []
for i in range(n):
    t = time.perf_counter(); s.sendall(b"x")
    while not s.recv(64): pass
    out.append((time.perf_counter() - t) * 1000)
print(json.dumps(out))
"""


def tcp_rtt_samples(lab: Lab, a: LabNode, b: LabNode, n: int = 50, port: int = 47013) -> list[float]:
    """``n`` 1-byte TCP ping-pong round trips (ms) from ``a`` to ``b`` (``b`` must be public)."""
    server = lab.spawn(b, [sys.executable, "-c", _ECHO_SERVER, str(port)])
    try:
        r = lab.run(a, [sys.executable, "-c", _ECHO_CLIENT, b.public_ip, str(port), str(n)], timeout=120)
        if r.returncode != 0:
            raise LabError(f"rtt client failed: {r.stderr[-500:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def validate(rtt_ms: float, loss_pct: float, jitter_ms: float = 0.0, samples: int = 50) -> dict[str, float]:
    """Measure the emulator: TCP RTT median vs configured (must be within 10 %), its CPU per
    packet, and the same round trip with no delay configured (the floor)."""
    out: dict[str, float] = {"configured_rtt_ms": rtt_ms, "loss_pct": loss_pct, "jitter_ms": jitter_ms}
    with open_lab(2, default=Link(rtt_ms, jitter_ms, loss_pct)) as lab:
        cpu0 = lab.emulator_cpu_s()
        s = tcp_rtt_samples(lab, lab.nodes[0], lab.nodes[1], samples)
        cpu1 = lab.emulator_cpu_s()
        st = lab.emulator_stats()
        time.sleep(1.1)
        st = lab.emulator_stats() or st
        out.update(measured_rtt_p50_ms=statistics.median(s), measured_rtt_p90_ms=sorted(s)[int(0.9 * len(s))],
                   error_pct=100 * (statistics.median(s) - rtt_ms) / rtt_ms if rtt_ms else 0.0,
                   emulator_cpu_s=cpu1 - cpu0, emulator_packets=st.get("packets", 0),
                   emulator_cpu_us_per_packet=1e6 * (cpu1 - cpu0) / max(1, st.get("packets", 1)))
    with open_lab(2, default=Link(0.0)) as lab:
        s0 = tcp_rtt_samples(lab, lab.nodes[0], lab.nodes[1], samples)
        out["floor_rtt_p50_ms"] = statistics.median(s0)
    out["within_10pct"] = float(abs(out["measured_rtt_p50_ms"] - rtt_ms) <= 0.1 * rtt_ms)
    return out


def check_nat(kind: str = "eim") -> dict[str, object]:
    """A NATed node reaches a public one, and the public one cannot open a connection to it."""
    with open_lab(1, nated=[kind]) as lab:
        pub, nat = lab.nodes
        s = tcp_rtt_samples(lab, nat, pub, 3)
        server = lab.spawn(nat, [sys.executable, "-c", _ECHO_SERVER, "47014"])
        try:
            time.sleep(0.3)
            r = lab.run(pub, [sys.executable, "-c",
                              f"import socket; socket.create_connection(('{nat.public_ip}', 47014), timeout=2)"],
                        timeout=20)
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        return {"kind": kind, "outbound_ok": len(s) == 3, "inbound_refused": r.returncode != 0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emulator", help=argparse.SUPPRESS)
    ap.add_argument("--ready", help=argparse.SUPPRESS)
    ap.add_argument("--validate", action="store_true", help="measure the emulator against the configured RTT")
    ap.add_argument("--check-nat", action="store_true", help="check both NAT kinds (outbound ok, inbound refused)")
    ap.add_argument("--cleanup", action="store_true", help="remove namespaces a killed lab left behind")
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--loss", type=float, default=0.0, help="loss per packet and direction, percent")
    ap.add_argument("--out", default="results/netlab", help="where --validate writes results.json")
    args = ap.parse_args(argv)
    if args.emulator:
        run_emulator(args.emulator, args.ready)
        return 0
    if args.cleanup:
        print("removed:", " ".join(cleanup_stale()) or "nothing")
        return 0
    why = lab_available()
    if why:
        print(f"netlab: {why}", file=sys.stderr)
        return 2
    results: dict[str, object] = {}
    if args.validate or not args.check_nat:
        for rtt in sorted({args.rtt_ms, 150.0}):
            v = validate(rtt, args.loss, args.jitter_ms)
            results[f"rtt_{rtt:g}ms"] = v
            print(json.dumps(v))
    if args.check_nat:
        for kind in ("eim", "adm"):
            c = check_nat(kind)
            results[f"nat_{kind}"] = c
            print(json.dumps(c))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
