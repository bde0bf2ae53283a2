"""Membership: the peer table, and peer events fanned out to whoever subscribed.

The status service feeds it peers' statuses (:meth:`Membership.observe`) and periodic sweeps;
streams that cannot be opened mark a peer unreachable. Each change of a peer's state
(joined, rejoined, suspect, offline, recovered, forgotten; DESIGN §3) goes to every
subscriber: the ledger service pulls from peers that (re)join or whose ledger digest differs,
the requester resets in-flight work on peers gone offline, and membership itself dials
newcomers it is not connected to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.peers import PeerEntry, PeerEvent, PeerState, PeerTable, PeerTableConfig
from ..core.types import PeerStatus
from ..errors import OverlayError
from ..net.base import Overlay
from .runtime import Runtime

log = logging.getLogger("wwwserve_p2p.membership")

#: ``subscriber(events, status)``: ``status`` is the status that caused them (None for sweeps
#: and unreachable marks). Must not block or raise.
PeerSubscriber = Callable[[list[PeerEvent], PeerStatus | None], None]


class Membership:
    """Owns the :class:`~wwwserve_p2p.core.peers.PeerTable` of one node (``me``)."""

    def __init__(self, me: str, config: PeerTableConfig, overlay: Overlay, runtime: Runtime):
        self.me = me
        self.table = PeerTable(config, me)
        self._overlay = overlay
        self._runtime = runtime
        self._subscribers: list[PeerSubscriber] = []

    def subscribe(self, fn: PeerSubscriber) -> None:
        """Call ``fn(events, status)`` on every observed status and membership change."""
        self._subscribers.append(fn)

    @property
    def now(self) -> float:
        return self._runtime.clock.monotonic()

    # ------------------------------------------------------------ inputs
    def observe(self, status: PeerStatus) -> None:
        """A peer's status arrived (already validated)."""
        self._publish(self.table.observe(status, self.now), status)

    def sweep(self) -> None:
        """Mark peers that went silent suspect or offline, forget long-gone ones."""
        self._publish(self.table.sweep(self.now), None)

    def mark_unreachable(self, peer_id: str) -> None:
        """A stream to ``peer_id`` could not be opened: stop selecting it until it speaks again."""
        self._publish(self.table.mark_offline(peer_id), None)

    def _publish(self, events: list[PeerEvent], status: PeerStatus | None) -> None:
        for ev in events:
            log.info("peer %s %s", ev.peer_id, ev.kind)
            if ev.kind in ("joined", "rejoined") and status is not None and self._runtime.running \
                    and ev.peer_id not in self._overlay.connected_peers() and status.addrs:
                self._runtime.spawn(self._dial, status.addrs)
        for fn in self._subscribers:
            fn(events, status)

    async def _dial(self, addrs: tuple[str, ...]) -> None:
        for a in addrs:
            try:
                await self._overlay.connect(a)
                return
            except OverlayError as exc:
                log.debug("dial %s failed: %s", a, exc)

    # ------------------------------------------------------------ views
    def candidates(self, model: str, exclude: set[str] | frozenset[str] = frozenset()) -> list[PeerStatus]:
        """Alive peers serving ``model`` now, except ``exclude``."""
        return self.table.candidates(model, self.now, exclude)

    def alive_peers(self) -> list[str]:
        return self.table.alive_peers(self.now)

    def network_models(self) -> dict[str, list[str]]:
        """model -> PeerIds of alive peers serving it."""
        return self.table.network_models(self.now)

    def state(self, entry: PeerEntry) -> PeerState:
        """``entry``'s state now (alive entries may have gone silent since the last sweep)."""
        return entry.state if entry.state is not PeerState.ALIVE else self.table.state_at(entry, self.now)

    def alive_entries(self) -> list[PeerEntry]:
        return [e for e in self.table if self.state(e) is PeerState.ALIVE]

    def counts(self) -> dict[str, int]:
        return self.table.counts(self.now)

    def view(self, stake_of: Callable[[str], int]) -> list[dict]:
        """The peer table for ``GET /status`` (``stake_of(peer_id)``: selectable stake)."""
        now = self.now
        rows = []
        for e in self.table:
            rows.append({"peer_id": e.status.peer_id, "models": list(e.status.models), "state": self.state(e).value,
                         "load": round(e.status.load.load, 3), "accepting": e.status.accepting,
                         "stake": stake_of(e.status.peer_id), "api_url": e.status.api_url,
                         "last_seen_s_ago": round(now - e.last_seen, 3)})
        return sorted(rows, key=lambda p: p["peer_id"])
