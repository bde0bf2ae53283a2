"""The peer table: who is out there, what they serve, and whether they are alive.

Pure: the caller passes ``now`` (seconds on its monotonic clock). Liveness follows
DESIGN §3: a peer silent for ``suspect_after`` status intervals is *suspect* (not selected),
for ``offline_after`` intervals *offline* (its in-flight requests are re-dispatched), and
after ``forget_after`` intervals it is dropped. A status with a higher incarnation (restart)
or a higher sequence number (same incarnation) replaces the entry; older ones are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

from ..errors import ConfigError
from .types import PeerStatus


class PeerState(str, Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class PeerTableConfig:
    """``status_interval`` in seconds; the other fields count status intervals."""

    status_interval: float = 2.0
    suspect_after: float = 3
    offline_after: float = 6
    forget_after: float = 60

    def __post_init__(self) -> None:
        if not self.status_interval > 0:
            raise ConfigError("status_interval must be > 0")
        if not 0 < self.suspect_after <= self.offline_after <= self.forget_after:
            raise ConfigError("need 0 < suspect_after <= offline_after <= forget_after")


@dataclass(frozen=True, slots=True)
class PeerEvent:
    """A change of a peer's membership: ``kind`` in joined, rejoined, suspect, offline,
    recovered (suspect/offline -> alive), forgotten."""

    kind: str
    peer_id: str


@dataclass(slots=True)
class PeerEntry:
    status: PeerStatus
    last_seen: float
    state: PeerState = PeerState.ALIVE


class PeerTable:
    """Mutable table of remote peers, keyed by PeerId. Deterministic given its inputs."""

    def __init__(self, config: PeerTableConfig, self_id: str):
        self.config = config
        self.self_id = self_id
        self._entries: dict[str, PeerEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[PeerEntry]:
        return iter(list(self._entries.values()))

    def get(self, peer_id: str) -> PeerEntry | None:
        return self._entries.get(peer_id)

    def observe(self, status: PeerStatus, now: float) -> list[PeerEvent]:
        """Record a status received at ``now``. Returns the membership events it caused.

        Our own status and stale statuses (lower incarnation, or same incarnation and
        seq not greater) are ignored and cause no event.
        """
        if status.peer_id == self.self_id:
            return []
        old = self._entries.get(status.peer_id)
        if old is None:
            self._entries[status.peer_id] = PeerEntry(status, now)
            return [PeerEvent("joined", status.peer_id)]
        o = old.status
        if (status.incarnation, status.seq) <= (o.incarnation, o.seq):
            return []
        events: list[PeerEvent] = []
        if status.incarnation > o.incarnation:
            events.append(PeerEvent("rejoined", status.peer_id))
        elif old.state is not PeerState.ALIVE:
            events.append(PeerEvent("recovered", status.peer_id))
        old.status, old.last_seen, old.state = status, now, PeerState.ALIVE
        return events

    def state_at(self, entry: PeerEntry, now: float) -> PeerState:
        """The state ``entry`` has at ``now`` judging by silence alone."""
        silent = (now - entry.last_seen) / self.config.status_interval
        if silent >= self.config.offline_after:
            return PeerState.OFFLINE
        if silent >= self.config.suspect_after:
            return PeerState.SUSPECT
        return PeerState.ALIVE

    def sweep(self, now: float) -> list[PeerEvent]:
        """Advance states to ``now``: returns suspect/offline/forgotten transitions."""
        events: list[PeerEvent] = []
        forget = self.config.forget_after * self.config.status_interval
        for pid, entry in list(self._entries.items()):
            if now - entry.last_seen >= forget:
                del self._entries[pid]
                events.append(PeerEvent("forgotten", pid))
                continue
            new = self.state_at(entry, now)
            if new is not entry.state and new is not PeerState.ALIVE:
                entry.state = new
                events.append(PeerEvent(new.value, pid))
        return events

    def mark_offline(self, peer_id: str) -> list[PeerEvent]:
        """Mark a peer offline at once (e.g. its connection failed); returns the event if any."""
        entry = self._entries.get(peer_id)
        if entry is None or entry.state is PeerState.OFFLINE:
            return []
        entry.state = PeerState.OFFLINE
        return [PeerEvent("offline", peer_id)]

    def candidates(self, model: str, now: float, exclude: Iterable[str] = ()) -> list[PeerStatus]:
        """Statuses of peers that may be asked to execute ``model``: alive (not suspect or
        offline, also by silence at ``now``), serving ``model``, accepting, and not excluded.
        Sorted by PeerId so the result is deterministic."""
        ex = set(exclude)
        out = []
        for pid in sorted(self._entries):
            e = self._entries[pid]
            if pid in ex or e.state is not PeerState.ALIVE or self.state_at(e, now) is not PeerState.ALIVE:
                continue
            if model in e.status.models and e.status.accepting:
                out.append(e.status)
        return out

    def alive_peers(self, now: float) -> list[str]:
        """Sorted PeerIds of peers alive at ``now``."""
        return sorted(pid for pid, e in self._entries.items()
                      if e.state is PeerState.ALIVE and self.state_at(e, now) is PeerState.ALIVE)

    def network_models(self, now: float) -> dict[str, list[str]]:
        """Model name -> sorted PeerIds of alive peers serving it."""
        out: dict[str, list[str]] = {}
        for pid in sorted(self._entries):
            e = self._entries[pid]
            if e.state is PeerState.ALIVE and self.state_at(e, now) is PeerState.ALIVE:
                for m in e.status.models:
                    out.setdefault(m, []).append(pid)
        return out

    def counts(self, now: float) -> dict[str, int]:
        """Number of peers per state at ``now``."""
        c = {s.value: 0 for s in PeerState}
        for e in self._entries.values():
            st = e.state if e.state is not PeerState.ALIVE else self.state_at(e, now)
            c[st.value] += 1
        return c
