"""``open_swarm(n)``: n real :class:`~wwwserve_p2p.node.Node` objects on an in-memory overlay.

Everything but the network is the production code (services, policy, delegation protocol,
framing, codecs), so multi-node behaviour can be tested deterministically under trio's
MockClock. Each node runs in its own cancel scope; :meth:`Swarm.kill` cancels it, which
resets all of that node's streams like a crashed process.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, replace

import trio

from ..config import ApiSection, NodeConfig, NodeSection, StatusSection
from ..core.ledger import Genesis
from ..core.types import GenerationRequest
from ..executors.base import Executor
from ..identity import Identity
from ..node import Node, open_node
from ..services.runtime import Runtime, VirtualClock, run_inline
from .memory import MemoryNetwork


def swarm_identity(seed: int, index: int) -> Identity:
    """A deterministic identity for node ``index`` of a swarm seeded with ``seed``."""
    return Identity(hashlib.sha256(f"wwwserve-swarm-{seed}-{index}".encode()).digest())


def swarm_config(index: int, seed: int = 0, base: NodeConfig | None = None) -> NodeConfig:
    """A config for swarm node ``index``: API off, 1 s status interval, seeded randomness."""
    base = base or NodeConfig()
    return replace(base, node=replace(base.node if base else NodeSection(), seed=seed * 1000 + index),
                   api=ApiSection(enabled=False),
                   status=base.status if base.status != StatusSection() else StatusSection(interval=1.0))


@dataclass
class SwarmMember:
    index: int
    identity: Identity
    executor: Executor
    config: NodeConfig
    node: Node | None = None
    scope: trio.CancelScope | None = None

    @property
    def alive(self) -> bool:
        return self.node is not None


class Swarm:
    """Handle on a running swarm; ``nodes[i]`` is the i-th live node."""

    def __init__(self, network: MemoryNetwork, nursery: trio.Nursery, seed: int, data_root: str,
                 genesis: Genesis | None = None):
        self.network = network
        self.members: list[SwarmMember] = []
        self._nursery = nursery
        self.seed = seed
        self.data_root = data_root
        self.genesis = genesis
        self.clock = VirtualClock()

    def runtime(self) -> Runtime:
        """A swarm node's runtime: wall time follows trio's clock from one epoch for the whole
        swarm (so MockClock moves ticket expiry and unbonding too, and a restarted node's clock
        never runs behind its previous blocks) and blocking work runs inline (no worker
        threads, whose time MockClock's autojump would not wait for)."""
        return Runtime(self.clock, run_inline)

    @property
    def nodes(self) -> list[Node]:
        return [m.node for m in self.members if m.node is not None]

    def __getitem__(self, i: int) -> Node:
        node = self.members[i].node
        if node is None:
            raise LookupError(f"swarm node {i} is not running")
        return node

    async def start(self, executor: Executor, config: NodeConfig | None = None) -> Node:
        """Start one more node (or restart a killed one with :meth:`restart`)."""
        i = len(self.members)
        cfg = swarm_config(i, self.seed, config)
        cfg = replace(cfg, node=replace(cfg.node, data_dir=f"{self.data_root}/node{i}"))
        m = SwarmMember(i, swarm_identity(self.seed, i), executor, cfg)
        self.members.append(m)
        await self._nursery.start(self._run, m)
        return m.node  # type: ignore[return-value]

    async def restart(self, i: int) -> Node:
        """Start killed node ``i`` again with the same identity, executor and config."""
        m = self.members[i]
        if m.alive:
            raise RuntimeError(f"node {i} is running")
        await self._nursery.start(self._run, m)
        return m.node  # type: ignore[return-value]

    async def _run(self, m: SwarmMember, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            m.scope = scope
            async with self.network.open_overlay(m.identity) as ov, \
                    open_node(m.config, m.executor, overlay=ov, identity=m.identity, genesis=self.genesis,
                              runtime=self.runtime()) as node:
                m.node = node
                task_status.started()
                await trio.sleep_forever()
        m.node = None

    def kill(self, i: int) -> None:
        """Crash node ``i`` at once: its tasks are cancelled and its streams reset."""
        m = self.members[i]
        if m.scope is not None:
            m.scope.cancel()
        m.node = None

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 30.0, poll: float = 0.05) -> None:
        """Poll ``predicate`` until true; :raises trio.TooSlowError: after ``timeout`` seconds."""
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(poll)

    def all_know_each_other(self) -> bool:
        live = self.nodes
        ids = {n.peer_id for n in live}
        return all(set(n.peers.alive_peers(trio.current_time())) >= ids - {n.peer_id} for n in live)

    def ledgers_agree(self) -> bool:
        """Every live node holds the same ledger state and has nothing left to seal."""
        live = self.nodes
        return len({n.ledger.state_hash() for n in live}) == 1 and all(
            n.ledger_service.queued() == 0 for n in live)


async def collect_text(node: Node, request: GenerationRequest) -> str:
    """Run ``request`` through ``node.generate`` and return the whole answer text."""
    parts = []
    async with aclosing(node.generate(request)) as gen:
        async for rc in gen:
            parts.append(rc.chunk.text)
    return "".join(parts)


@asynccontextmanager
async def open_swarm(
    executors: Sequence[Executor],
    *,
    config: NodeConfig | None = None,
    configs: Sequence[NodeConfig] | None = None,
    seed: int = 0,
    latency: float = 0.0,
    genesis: Genesis | None = None,
) -> AsyncIterator[Swarm]:
    """Start ``len(executors)`` nodes on a fresh :class:`MemoryNetwork` and wait until every
    node knows every other one. ``configs[i]`` (or ``config``) is the base config of node i;
    ``genesis`` defaults to the dev genesis of the config's network. Each node keeps its ledger
    in its own temporary data dir (kept across :meth:`Swarm.restart`)."""
    net = MemoryNetwork(latency=latency)
    with tempfile.TemporaryDirectory(prefix="wwwserve-swarm-") as data_root:
        async with trio.open_nursery() as nursery:
            swarm = Swarm(net, nursery, seed, data_root, genesis)
            for i, ex in enumerate(executors):
                await swarm.start(ex, configs[i] if configs else config)
            await swarm.wait_until(swarm.all_know_each_other, timeout=30)
            try:
                yield swarm
            finally:
                nursery.cancel_scope.cancel()
