"""Run a small network of real ``wwwserve node`` processes on 127.0.0.1.

Used by ``wwwserve demo``, the real-process tests and the benchmarks. Blocking (subprocess
and httpx) by design: call it from a worker thread inside trio code.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from .errors import WwwServeError
from .identity import Identity


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class NodeSpec:
    """One node to start: ``config`` is the TOML dict (sections -> keys); ``net.listen``,
    ``api.port``, ``node.data_dir`` and the bootstrap address are filled in by :func:`start_network`."""

    name: str
    config: dict[str, dict[str, Any]]
    description: str = ""


@dataclass
class NodeProcess:
    """A running node process."""

    name: str
    spec: NodeSpec
    proc: subprocess.Popen
    peer_id: str
    multiaddr: str
    api_url: str
    log_path: Path
    config_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    def kill(self) -> None:
        """SIGKILL, like a crash."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        return httpx.get(self.api_url + "/status", timeout=timeout).json()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def write_network_genesis(specs: list[NodeSpec], workdir: Path, network: str, credits: float = 100.0,
                          params: dict[str, int] | None = None, unfunded: tuple[str, ...] = ()) -> Path:
    """Create each spec's identity now, write ``workdir/genesis.json`` allocating ``credits``
    to every node except those named in ``unfunded`` (no genesis allocation), and point every
    spec's ``ledger.genesis`` at it. Returns the file's path."""
    from .config import write_genesis
    from .core.ledger import Genesis, LedgerParams

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    allocs = tuple((Identity.load_or_create(workdir / s.name).peer_id, int(credits * 1_000_000))
                   for s in specs if s.name not in unfunded)
    genesis = Genesis(network, LedgerParams(**(params or {})), allocs)
    path = workdir / "genesis.json"
    write_genesis(genesis, path)
    for s in specs:
        s.config.setdefault("ledger", {})["genesis"] = str(path.resolve())
    return path


def _spawn(spec: NodeSpec, workdir: Path, bootstrap: list[str], python: str) -> NodeProcess:
    data_dir = workdir / spec.name
    data_dir.mkdir(parents=True, exist_ok=True)
    ident = Identity.load_or_create(data_dir)
    # port 0: the node binds free ports itself and reports them in its ready line (no race
    # between picking a port here and binding it there)
    cfg = {k: dict(v) for k, v in spec.config.items()}
    cfg.setdefault("node", {})["data_dir"] = str(data_dir)
    cfg.setdefault("net", {}).setdefault("listen", ["/ip4/127.0.0.1/tcp/0"])
    if bootstrap and "bootstrap" not in cfg["net"]:
        cfg["net"]["bootstrap"] = bootstrap
    cfg.setdefault("api", {}).update({"host": "127.0.0.1", "port": 0})
    config_path = data_dir / "node.toml"
    config_path.write_text(tomli_w.dumps(cfg))
    log_path = data_dir / "node.log"
    log = open(log_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.Popen([python, "-m", "wwwserve_p2p.cli", "node", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env, start_new_session=True)
    log.close()
    return NodeProcess(spec.name, spec, proc, ident.peer_id, "", "", log_path, config_path)


def _wait_ready(nodes: list[NodeProcess], timeout: float) -> None:
    errors: list[str] = []

    def read(n: NodeProcess) -> None:
        assert n.proc.stdout is not None
        for line in n.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("event") == "ready":
                    n.multiaddr = next((a for a in msg.get("addrs", []) if "/ip4/127.0.0.1/" in a),
                                       (msg.get("addrs") or [""])[0])
                    n.api_url = msg.get("api_url", "")
                    n.ready = msg
                    return
        errors.append(f"{n.name} exited with code {n.proc.wait()}:\n{n.log_tail()}")

    threads = [threading.Thread(target=read, args=(n,), daemon=True) for n in nodes if not n.ready]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise WwwServeError("node failed to start: " + "\n".join(errors))
    late = [n.name for n in nodes if not n.ready]
    if late:
        raise WwwServeError(f"nodes not ready after {timeout:.0f}s: {', '.join(late)}\n"
                            + "\n".join(n.log_tail(10) for n in nodes if not n.ready))


def start_node(spec: NodeSpec, workdir: Path, bootstrap: list[str] | None = None,
               python: str = sys.executable, ready_timeout: float = 120.0) -> NodeProcess:
    """Start one node process and wait for its ready line."""
    n = _spawn(spec, Path(workdir), list(bootstrap or []), python)
    try:
        _wait_ready([n], ready_timeout)
    except BaseException:
        n.kill()
        raise
    return n


def start_network(specs: list[NodeSpec], workdir: Path, python: str = sys.executable,
                  ready_timeout: float = 120.0) -> list[NodeProcess]:
    """Start every spec; nodes 1.. bootstrap from node 0. Returns once all printed ready.

    :raises WwwServeError: a node exited or was not ready in time (the others are stopped).
    """
    workdir = Path(workdir)
    nodes: list[NodeProcess] = []
    try:
        first = _spawn(specs[0], workdir, [], python)
        nodes.append(first)
        _wait_ready([first], ready_timeout)  # its ports are known once it is up
        for spec in specs[1:]:
            nodes.append(_spawn(spec, workdir, [first.multiaddr], python))
        _wait_ready(nodes, ready_timeout)
    except BaseException:
        stop_network(nodes)
        raise
    return nodes


def wait_for_mesh(nodes: list[NodeProcess], timeout: float = 60.0, expect: int | None = None) -> float:
    """Poll ``/status`` until every node sees ``expect`` (default: all others) alive peers.

    Returns the seconds waited. :raises WwwServeError: on timeout.
    """
    t0 = time.monotonic()
    want = len(nodes) - 1 if expect is None else expect
    last: dict[str, int] = {}
    while time.monotonic() - t0 < timeout:
        ok = True
        for n in nodes:
            try:
                st = n.status(timeout=2)
                alive = sum(1 for p in st["peers"] if p["state"] == "alive")
            except (httpx.HTTPError, ValueError, KeyError):
                alive = -1
            last[n.name] = alive
            ok &= alive >= want
        if ok:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise WwwServeError(f"overlay did not form within {timeout:.0f}s (alive peers seen: {last})")


def ledger_states(nodes: list[NodeProcess], timeout: float = 5.0) -> dict[str, str]:
    """Node name -> ledger state hash (``GET /ledger``); unreachable nodes map to ``""``."""
    out = {}
    for n in nodes:
        try:
            out[n.name] = httpx.get(n.api_url + "/ledger", timeout=timeout).json()["state_hash"]
        except (httpx.HTTPError, ValueError, KeyError):
            out[n.name] = ""
    return out


def wait_for_ledger(nodes: list[NodeProcess], timeout: float = 30.0, queued_ok: bool = False) -> float:
    """Poll until every node reports the same ledger state hash and (unless ``queued_ok``) has no
    entries waiting to be sealed. Returns the seconds waited. :raises WwwServeError: on timeout."""
    t0 = time.monotonic()
    states: dict[str, str] = {}
    while time.monotonic() - t0 < timeout:
        states = ledger_states(nodes)
        quiet = queued_ok or all(_queued(n) == 0 for n in nodes)
        if quiet and len(set(states.values())) == 1 and "" not in states.values():
            return time.monotonic() - t0
        time.sleep(0.2)
    raise WwwServeError(f"ledger did not converge within {timeout:.0f}s: "
                        + ", ".join(f"{k}={v[:12]}" for k, v in states.items()))


def _queued(n: NodeProcess) -> int:
    try:
        return int(httpx.get(n.api_url + "/ledger", timeout=5).json()["queued_entries"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1


def stop_network(nodes: list[NodeProcess]) -> None:
    """SIGTERM every node, SIGKILL stragglers."""
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for n in nodes:
        try:
            n.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            n.kill()
