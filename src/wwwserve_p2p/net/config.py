"""Settings of the libp2p overlay; also the ``[net]`` section of a node's config.

Kept apart from :mod:`wwwserve_p2p.net.libp2p` so that loading a config does not
import py-libp2p (~0.65 s).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from multiaddr import Multiaddr

from ..errors import ConfigError

#: py-libp2p (and go/js) drop pubsub RPC frames over 1 MiB; keep a margin for the envelope.
MAX_GOSSIP_BYTES_LIMIT = 1024 * 1024 - 64 * 1024
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Libp2pConfig:
    """Settings of a libp2p overlay. Times are seconds, sizes bytes.

    ``listen``: multiaddrs to listen on (TCP; port 0 picks a free port; a wildcard address
    such as ``/ip4/0.0.0.0/tcp/4001`` is advertised as each interface's address).
    ``announce``: if set, advertised instead of the listen addresses (e.g. a public IP).
    ``bootstrap``: multiaddrs ending in ``/p2p/<PeerId>``, dialed at start and re-dialed
    every ``discovery_interval`` while disconnected.
    ``heartbeat_interval``: GossipSub heartbeat. ``gossip_degree*``: mesh degree D, D_lo, D_hi.
    ``gossip_max_bytes``: cap on one gossip payload, on publish and receive (at most
    ``MAX_GOSSIP_BYTES_LIMIT``, below py-libp2p's 1 MiB frame limit).
    ``gossip_rate_per_peer`` / ``gossip_burst_per_peer``: token bucket per message author
    (inbound only; our own publishes are not limited). ``gossip_outbound_queue``: RPCs queued
    per neighbour before drops. ``gossip_seen_ttl``: duplicate-suppression window.
    ``subscription_buffer``: messages buffered per subscription before drops.
    ``dial_timeout``: bound on one dial or stream open; ``dial_retries``: extra attempts per
    address inside it. ``dht_timeout``: bound on provide / find_providers / a routing-table
    refresh. ``dht_refresh_interval``: periodic refresh (also run whenever the routing table
    is small). ``shutdown_timeout``: bound on a graceful close.
    ``libp2p_log_level``: level of py-libp2p's own loggers.
    ``deny_peers``: PeerIds refused in both directions (see :mod:`wwwserve_p2p.net.filter`).

    Reachability (:mod:`wwwserve_p2p.net.libp2p.reach`): ``reachability`` is ``"auto"`` (ask
    connected AutoNAT servers, again every ``reachability_interval``), ``"public"`` or
    ``"private"`` (behind a NAT: reserve on relays, advertise ``/p2p-circuit`` addresses).
    ``relays``: relay multiaddrs (ending in ``/p2p/<PeerId>``) to reserve on first; connected
    peers speaking the hop protocol are used too. ``relay_count``: reservations a private node
    keeps. ``relay_service``: act as a circuit relay v2 hop for others, with
    ``relay_max_reservations`` reservations in all, ``relay_max_circuits`` circuits per
    reservation, ``relay_circuit_bytes`` bytes and ``relay_circuit_duration`` seconds per circuit
    (0: unlimited), reservations valid ``relay_reservation_ttl`` s. ``autonat_server``: answer
    AutoNAT dial-back requests. ``hole_punch``: upgrade relayed connections with DCUtR.
    ``fast_negotiation``: open streams without py-libp2p's two negotiation round trips
    (:class:`~wwwserve_p2p.net.libp2p.compat.FastMultiselectClient`).

    ``max_inbound_per_ip``: inbound connections (handshaking or established) one remote IP may
    hold (0: no limit; :mod:`wwwserve_p2p.net.libp2p.conn_limits`); ``inbound_per_ip_exempt``:
    CIDR networks not limited (default loopback, so local test networks are not capped).
    """

    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    bootstrap: tuple[str, ...] = ()
    heartbeat_interval: float = 1.0
    gossip_max_bytes: int = 256 * 1024
    gossip_rate_per_peer: float = 50.0
    gossip_burst_per_peer: int = 100
    dial_timeout: float = 5.0
    announce: tuple[str, ...] = ()
    gossip_degree: int = 6
    gossip_degree_low: int = 4
    gossip_degree_high: int = 12
    gossip_outbound_queue: int = 1024
    gossip_seen_ttl: int = 120
    subscription_buffer: int = 1024
    dial_retries: int = 1
    discovery_interval: float = 10.0
    dht_timeout: float = 15.0
    dht_refresh_interval: float = 300.0
    shutdown_timeout: float = 5.0
    libp2p_log_level: str = "WARNING"
    deny_peers: tuple[str, ...] = ()
    reachability: str = "auto"
    reachability_interval: float = 300.0
    relays: tuple[str, ...] = ()
    relay_count: int = 2
    relay_service: bool = False
    relay_max_reservations: int = 128
    relay_max_circuits: int = 16
    relay_circuit_bytes: int = 1 << 30
    relay_circuit_duration: float = 0.0
    relay_reservation_ttl: float = 3600.0
    autonat_server: bool = True
    hole_punch: bool = True
    fast_negotiation: bool = True
    max_inbound_per_ip: int = 32
    inbound_per_ip_exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

    def __post_init__(self) -> None:
        for name in ("listen", "bootstrap", "announce", "relays"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, tuple):
                raise ConfigError(f"net.{name} must be a tuple of multiaddr strings, got {value!r}")
        if not self.listen:
            raise ConfigError("net.listen must name at least one multiaddr")
        for name in ("listen", "announce", "bootstrap", "relays"):
            for text in getattr(self, name):
                try:
                    maddr = Multiaddr(text)
                except Exception as exc:
                    raise ConfigError(f"net.{name}: {text!r} is not a multiaddr: {exc}") from None
                protos = {p.name for p in maddr.protocols()}
                if name == "listen" and "tcp" not in protos:
                    raise ConfigError(f"net.listen: {text!r} is not a TCP multiaddr (only TCP is supported)")
                if name in ("bootstrap", "relays") and "p2p" not in protos:
                    raise ConfigError(f"net.{name} address {text!r} must end in /p2p/<PeerId>")
        for name in ("heartbeat_interval", "gossip_rate_per_peer", "dial_timeout", "discovery_interval",
                     "dht_timeout", "dht_refresh_interval", "shutdown_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"net.{name} must be a finite number > 0, got {value!r}")
        for name in ("gossip_max_bytes", "gossip_burst_per_peer", "gossip_outbound_queue", "gossip_seen_ttl",
                     "subscription_buffer", "gossip_degree", "gossip_degree_low", "gossip_degree_high"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"net.{name} must be an integer >= 1, got {value!r}")
        if self.gossip_max_bytes > MAX_GOSSIP_BYTES_LIMIT:
            raise ConfigError(f"net.gossip_max_bytes must be <= {MAX_GOSSIP_BYTES_LIMIT} "
                              "(libp2p pubsub frames are capped at 1 MiB); send bulk data over a stream")
        if not self.gossip_degree_low <= self.gossip_degree <= self.gossip_degree_high:
            raise ConfigError("net: need gossip_degree_low <= gossip_degree <= gossip_degree_high")
        if not isinstance(self.dial_retries, int) or not 0 <= self.dial_retries <= 10:
            raise ConfigError(f"net.dial_retries must be an integer in [0, 10], got {self.dial_retries!r}")
        if self.reachability not in ("auto", "public", "private"):
            raise ConfigError(f"net.reachability must be auto, public or private, got {self.reachability!r}")
        for name in ("relay_service", "autonat_server", "hole_punch", "fast_negotiation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"net.{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("reachability_interval", "relay_reservation_ttl"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 10:
                raise ConfigError(f"net.{name} must be a finite number >= 10 (seconds), got {value!r}")
        if not isinstance(self.relay_circuit_duration, (int, float)) or not math.isfinite(
                self.relay_circuit_duration) or self.relay_circuit_duration < 0:
            raise ConfigError(f"net.relay_circuit_duration must be >= 0 (0: unlimited), got {self.relay_circuit_duration!r}")
        for name in ("relay_count", "relay_max_reservations", "relay_max_circuits", "relay_circuit_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "relay_count" else 1):
                raise ConfigError(f"net.{name} must be an integer >= {0 if name == 'relay_count' else 1}, got {value!r}")
        if not isinstance(self.max_inbound_per_ip, int) or isinstance(self.max_inbound_per_ip, bool) \
                or self.max_inbound_per_ip < 0:
            raise ConfigError(f"net.max_inbound_per_ip must be an integer >= 0 (0: no limit), "
                              f"got {self.max_inbound_per_ip!r}")
        if isinstance(self.inbound_per_ip_exempt, str) or not isinstance(self.inbound_per_ip_exempt, tuple):
            raise ConfigError(f"net.inbound_per_ip_exempt must be a list of CIDR strings, "
                              f"got {self.inbound_per_ip_exempt!r}")
        for cidr in self.inbound_per_ip_exempt:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except (ValueError, TypeError):
                raise ConfigError(f"net.inbound_per_ip_exempt: {cidr!r} is not a CIDR network") from None
        if str(self.libp2p_log_level).upper() not in _LOG_LEVELS:
            raise ConfigError(f"net.libp2p_log_level must be one of {', '.join(_LOG_LEVELS)}")
