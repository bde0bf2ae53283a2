"""Logging setup of the ``wwwserve`` command, and the filter that keeps py-libp2p's noise out.

py-libp2p 0.8.1 logs at WARNING for routine events of a small network: its Kademlia DHT
warns about every FIND_NODE whose key is not a PeerId (our provider-record lookups send
such keys), and about every failed stream or provider query to a peer that left, for as
long as that peer stays in its routing table. In the demo and benchmark logs on this
machine these were all 1,506 WARNING lines (1,239 FIND_NODE, 139 open-stream, 128
get-providers), all from ``libp2p.kad_dht``.
:func:`install_libp2p_filter` lowers those records to DEBUG (shown only with
``--log-level DEBUG``) and counts them per pattern; ``GET /metrics`` exposes the counts as
``wwwserve_log_suppressed_total{pattern}``. Other libp2p warnings and every error outside the
patterns are kept as they are.
"""

from __future__ import annotations

import logging
import sys
import threading

#: (label, logger-name prefix, substring of the message; "" = any WARNING/ERROR of that logger)
NOISE_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("dht_find_node_key", "libp2p.kad_dht", "FIND_NODE key is not a valid PeerId"),
    ("dht_open_stream", "libp2p.kad_dht", "Failed to open stream"),
    ("dht_get_providers", "libp2p.kad_dht", "Error getting providers"),
    ("dht_other", "libp2p.kad_dht", ""),
)

_lock = threading.Lock()
_counts: dict[str, int] = {}


def suppressed_counts() -> dict[str, int]:
    """Records lowered to DEBUG so far in this process, by pattern label."""
    with _lock:
        return dict(_counts)


def classify(record: logging.LogRecord) -> str | None:
    """The :data:`NOISE_PATTERNS` label of ``record``, or None when it is not known noise."""
    if record.levelno < logging.WARNING or record.levelno >= logging.CRITICAL:
        return None
    name = record.name
    if not name.startswith("libp2p"):
        return None
    try:
        msg = record.getMessage()
    except Exception:  # a malformed record: leave it alone
        return None
    for label, prefix, needle in NOISE_PATTERNS:
        if (name == prefix or name.startswith(prefix + ".")) and (not needle or needle in msg):
            return label
    return None


class Libp2pNoiseFilter(logging.Filter):
    """Logger/handler filter: known libp2p noise becomes a DEBUG record (counted once), shown
    only when the root logger is at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_wwwserve_noise", False):  # lowered (and counted) by an earlier filter
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        label = classify(record)
        if label is None:
            return True
        with _lock:
            _counts[label] = _counts.get(label, 0) + 1
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record._wwwserve_noise = True
        return logging.getLogger().isEnabledFor(logging.DEBUG)


#: py-libp2p's DHT module loggers: the filter sits on each of them too, ahead of the overlay's
#: own demotions (net/libp2p/compat.py, installed when the overlay starts), so every noisy
#: record is counted before anything drops it
DHT_LOGGERS = tuple(f"libp2p.kad_dht.{m}" for m in (
    "kad_dht", "peer_routing", "provider_store", "routing_table", "value_store", "utils", "pb", "common"))


def install_libp2p_filter(handlers: list[logging.Handler] | None = None) -> None:
    """Add :class:`Libp2pNoiseFilter` to the :data:`DHT_LOGGERS` and to ``handlers`` (default:
    the root logger's), once each."""
    targets: list[logging.Filterer] = [logging.getLogger(n) for n in DHT_LOGGERS]
    targets += handlers if handlers is not None else logging.getLogger().handlers
    for t in targets:
        if not any(isinstance(f, Libp2pNoiseFilter) for f in t.filters):
            t.addFilter(Libp2pNoiseFilter())


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps at ``level``; py-libp2p's own chatter at WARNING (DEBUG
    when ``level`` is DEBUG) with its known noise lowered to DEBUG (:func:`install_libp2p_filter`).

    Nothing here logs request headers or bodies (API keys never reach a log)."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(lvl)
    for noisy in ("libp2p", "multiaddr", "hypercorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if lvl <= logging.DEBUG and noisy == "libp2p"
                                          else logging.WARNING)
    install_libp2p_filter()
