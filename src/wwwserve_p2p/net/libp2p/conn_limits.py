"""Per-IP cap on inbound connections (issue 15 item 3).

Why our own: py-libp2p 0.8.1 has no per-IP limit. Its resource manager
(``libp2p.rcmgr.ResourceManager``) has ``cidr_limits``, but that is a ``CIDRLimiter`` counting
*all* addresses inside each configured network together (a rule ``0.0.0.0/0 -> 32`` caps the whole
internet at 32), and the swarm opens two scopes per inbound connection (a pre-upgrade one and the
connection's own), so even a ``/32`` rule per known address would count each connection twice.
Its ``ConnectionGate`` only allows or denies address lists. ``ConnectionConfig`` has
``max_connections`` (global) and ``max_connections_per_peer`` (per PeerId, free to mint).

What this does: :class:`PerIpInboundLimit` wraps the swarm's ``connection_gate.is_allowed`` (called
for each inbound TCP connection before the Noise handshake, where a refusal just closes the
socket) and ``upgrade_inbound_raw_conn`` (the handshake). A remote IP may hold at most
``max_per_ip`` inbound connections, counting both connections still in their handshake (so 500 raw
sockets that never speak are capped too) and established inbound connections from that IP.
Addresses in ``exempt`` (CIDR networks; by default loopback, so a local test network of many
processes on 127.0.0.1 is not capped) are not limited. Outbound connections are never counted.
Refusals are counted (``refused``, exported as ``connections_refused{reason="per_ip"}``) and
logged at most once a minute with the address and the limit.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from typing import Any

log = logging.getLogger("wwwserve_p2p.net")

#: default exempt networks (loopback)
LOOPBACK = ("127.0.0.0/8", "::1/128")


def _ip_of_maddr(maddr: Any) -> str | None:
    for proto in ("ip4", "ip6"):
        try:
            value = maddr.value_for_protocol(proto)
        except Exception:  # noqa: BLE001 - py-libp2p / multiaddr raise various errors for a missing protocol
            continue
        if value:
            return str(value)
    return None


class PerIpInboundLimit:
    """Caps inbound connections per remote IP on one py-libp2p swarm (see the module docstring).

    ``max_per_ip``: connections (handshaking + established inbound) one IP may hold, >= 1.
    ``exempt``: CIDR strings never limited. ``refused``: Counter of refusals by reason
    (``per_ip``). Not thread-safe (the swarm runs in one trio thread)."""

    def __init__(self, swarm: Any, max_per_ip: int, exempt: tuple[str, ...] = LOOPBACK):
        if max_per_ip < 1:
            raise ValueError("max_per_ip must be >= 1")
        self.swarm = swarm
        self.max_per_ip = max_per_ip
        self.exempt = tuple(ipaddress.ip_network(c, strict=False) for c in exempt)
        self.pending: Counter[str] = Counter()   # ip -> inbound handshakes admitted, not finished
        self.refused: Counter[str] = Counter()
        self._last_log = 0.0
        self._logged_since = 0

    def install(self) -> bool:
        """Wrap the swarm's gate and inbound upgrade. False if py-libp2p's shape is not the one
        this was written for (nothing is changed then)."""
        gate = getattr(self.swarm, "connection_gate", None)
        upgrade = getattr(self.swarm, "upgrade_inbound_raw_conn", None)
        if gate is None or not callable(getattr(gate, "is_allowed", None)) or not callable(upgrade):
            return False
        allowed = gate.is_allowed

        async def is_allowed(remote_addr: Any) -> bool:
            if not await allowed(remote_addr):
                return False
            return self.admit(_ip_of_maddr(remote_addr))

        async def upgrade_inbound_raw_conn(raw_conn: Any, maddr: Any) -> Any:
            ip = None
            try:
                ra = raw_conn.get_remote_address()
                ip = ra[0] if ra else None
            except Exception:  # noqa: BLE001 - no address: nothing was reserved for it
                pass
            try:
                return await upgrade(raw_conn, maddr)
            finally:
                self.release(ip)

        gate.is_allowed = is_allowed
        self.swarm.upgrade_inbound_raw_conn = upgrade_inbound_raw_conn
        return True

    def _exempt(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return True  # not an IP (cannot be counted): leave it to the other limits
        return any(addr in net for net in self.exempt)

    def established(self, ip: str) -> int:
        """Established inbound connections from ``ip`` now."""
        n = 0
        for conns in list(getattr(self.swarm, "connections", {}).values()):
            for c in list(conns):
                try:
                    d = c.direction
                    if str(getattr(d, "name", d)).lower() != "inbound":
                        continue
                    ra = c.muxed_conn.get_remote_address()
                except Exception:  # noqa: BLE001 - a closing connection: not counted
                    continue
                if ra and ra[0] == ip:
                    n += 1
        return n

    def admit(self, ip: str | None) -> bool:
        """Whether a new inbound connection from ``ip`` may start its handshake; on True it is
        counted as pending until :meth:`release`."""
        if ip is None or self._exempt(ip):
            return True
        if self.pending[ip] + self.established(ip) >= self.max_per_ip:
            self.refused["per_ip"] += 1
            self._log(ip)
            return False
        self.pending[ip] += 1
        return True

    def release(self, ip: str | None) -> None:
        """The handshake of a connection from ``ip`` ended (established or failed)."""
        if ip is not None and self.pending.get(ip, 0) > 0:
            self.pending[ip] -= 1
            if not self.pending[ip]:
                del self.pending[ip]

    def _log(self, ip: str) -> None:
        now = time.monotonic()
        self._logged_since += 1
        if now - self._last_log >= 60.0:
            log.warning("refused %d inbound connection(s) over the per-IP limit of %d (net.max_inbound_per_ip), "
                        "latest from %s", self._logged_since, self.max_per_ip, ip)
            self._last_log, self._logged_since = now, 0

    def statistics(self) -> dict[str, Any]:
        """``{"per_ip": refusals}`` plus ``pending_handshakes`` (now)."""
        return {**dict(self.refused), "pending_handshakes": sum(self.pending.values())}


class InboundConnectionEnded(Exception):
    """Raised out of py-libp2p's inbound upgrade once the upgraded connection has closed, so
    its inbound handler returns (and gives back its inbound slot); see
    :func:`release_inbound_slots_on_close`."""


def release_inbound_slots_on_close(swarm: Any, stats: Counter[str] | None = None) -> bool:
    """py-libp2p 0.8.1 leaks an inbound slot per inbound connection: the swarm's handler takes
    a token of ``_inbound_limiter`` (``max_connections - min_connections`` = 250 tokens) and
    gives it back only when the handler returns, but after a successful upgrade the handler
    waits for the *swarm* to finish (``await self.manager.wait_finished()``), not for the
    connection. So a node accepts 250 inbound connections in its life; every later one is
    closed before the handshake (the dialer sees "failed to negotiate the secure protocol").
    Measured in ``benchmarks/churn_soak.py``: the bootstrap front door, after ~250 reconnects
    of restarted executors, refused every restarted node for good, and the restarted nodes never
    synced their ledgers.

    The fix wraps ``upgrade_inbound_raw_conn`` (after any other wrapper, so the per-IP
    limit's handshake count still ends with the handshake): once the upgraded connection has
    closed (the muxer's ``event_closed``) it raises :class:`InboundConnectionEnded`, which the
    handler catches (logs at DEBUG, closes the already closed socket) before it returns and
    releases its token. Counted in ``stats["inbound_slots_released"]``. Returns False if the
    swarm's shape is not the one this was written for (nothing changed)."""
    upgrade = getattr(swarm, "upgrade_inbound_raw_conn", None)
    if not callable(upgrade) or not hasattr(swarm, "_inbound_limiter"):
        return False

    async def upgrade_inbound_raw_conn(raw_conn: Any, maddr: Any) -> Any:
        muxed = await upgrade(raw_conn, maddr)
        closed = getattr(muxed, "event_closed", None)
        if closed is None:
            return muxed  # unknown muxer: the old behaviour
        await closed.wait()
        if stats is not None:
            stats["inbound_slots_released"] += 1
        raise InboundConnectionEnded("inbound connection closed")

    swarm.upgrade_inbound_raw_conn = upgrade_inbound_raw_conn
    return True


__all__ = ["LOOPBACK", "InboundConnectionEnded", "PerIpInboundLimit", "release_inbound_slots_on_close"]
