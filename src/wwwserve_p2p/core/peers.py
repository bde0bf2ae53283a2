"""The peer table: who is out there, what they serve, and whether they are alive.

Pure: the caller passes ``now`` (seconds on its monotonic clock). Liveness follows
DESIGN §3: a peer silent for ``suspect_after`` status intervals is *suspect* (not selected),
for ``offline_after`` intervals *offline* (its in-flight requests are re-dispatched), and
after ``forget_after`` intervals it is dropped. A status with a higher incarnation (restart)
or a higher sequence number (same incarnation) replaces the entry; older ones are ignored.

Bounds (issue 15): at most ``max_known`` entries of *known* peers (the caller says who is
known: a ledger member or a directly connected peer) and at most ``max_newcomers`` entries of
everyone else, in a separate pool. A newcomer never evicts a known peer; a full pool takes a
new newcomer only in place of one that has gone silent (suspect or worse), so newcomers that
keep speaking stay and a flood of fresh identities cannot push them out either; otherwise the
status is refused (counted in :attr:`PeerTable.refused`). A known peer arriving at a full
table replaces the longest-silent known entry that is no longer alive, else it is refused.
A newcomer that becomes known is promoted (if the known part has room).
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
    max_known: int = 1024
    max_newcomers: int = 64

    def __post_init__(self) -> None:
        if not self.status_interval > 0:
            raise ConfigError("status_interval must be > 0")
        if self.max_known < 1 or self.max_newcomers < 0:
            raise ConfigError("need max_known >= 1 and max_newcomers >= 0")
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
    #: in the bounded newcomer pool (not known to the caller when it arrived)
    newcomer: bool = False


class PeerTable:
    """Mutable table of remote peers, keyed by PeerId. Deterministic given its inputs."""

    def __init__(self, config: PeerTableConfig, self_id: str):
        self.config = config
        self.self_id = self_id
        self._entries: dict[str, PeerEntry] = {}
        self._newcomers = 0
        #: statuses refused because the table was full: {"known": n, "newcomer": n}
        self.refused: dict[str, int] = {"known": 0, "newcomer": 0}

    @property
    def newcomers(self) -> int:
        """Entries in the newcomer pool now."""
        return self._newcomers

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[PeerEntry]:
        return iter(list(self._entries.values()))

    def get(self, peer_id: str) -> PeerEntry | None:
        return self._entries.get(peer_id)

    def has_room(self, known: bool, now: float) -> bool:
        """Whether a status from a new author (``known`` or a newcomer) could enter now."""
        if known:
            return len(self._entries) - self._newcomers < self.config.max_known or \
                self._victim(False, now) is not None
        return self._newcomers < self.config.max_newcomers or self._victim(True, now) is not None

    def _victim(self, newcomer: bool, now: float) -> str | None:
        """The longest-silent entry of that part of the table that is no longer alive, if any."""
        best: tuple[float, str] | None = None
        for pid, e in self._entries.items():
            if e.newcomer is not newcomer:
                continue
            if e.state is PeerState.ALIVE and self.state_at(e, now) is PeerState.ALIVE:
                continue
            if best is None or (e.last_seen, pid) < best:
                best = (e.last_seen, pid)
        return None if best is None else best[1]

    def _remove(self, peer_id: str) -> None:
        e = self._entries.pop(peer_id)
        if e.newcomer:
            self._newcomers -= 1

    def observe(self, status: PeerStatus, now: float, known: bool = True) -> list[PeerEvent]:
        """Record a status received at ``now``. Returns the membership events it caused.

        ``known``: the author is a ledger member or directly connected (else a newcomer;
        see the module docstring for the bounds). Our own status and stale statuses (lower
        incarnation, or same incarnation and seq not greater) are ignored and cause no event;
        so is a status refused because the table is full (a ``forgotten`` event is returned
        for an entry evicted to make room).
        """
        if status.peer_id == self.self_id:
            return []
        old = self._entries.get(status.peer_id)
        if old is None:
            events: list[PeerEvent] = []
            cfg = self.config
            full = (len(self._entries) - self._newcomers >= cfg.max_known) if known \
                else (self._newcomers >= cfg.max_newcomers)
            if full:
                victim = self._victim(not known, now)
                if victim is None:
                    self.refused["known" if known else "newcomer"] += 1
                    return []
                self._remove(victim)
                events.append(PeerEvent("forgotten", victim))
            self._entries[status.peer_id] = PeerEntry(status, now, newcomer=not known)
            if not known:
                self._newcomers += 1
            events.append(PeerEvent("joined", status.peer_id))
            return events
        if known and old.newcomer and len(self._entries) - self._newcomers < self.config.max_known:
            old.newcomer = False
            self._newcomers -= 1
        o = old.status
        if (status.incarnation, status.seq) <= (o.incarnation, o.seq):
            return []
        events = []
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
                self._remove(pid)
                events.append(PeerEvent("forgotten", pid))
                continue
            new = self.state_at(entry, now)
            if new is not entry.state and new is not PeerState.ALIVE:
                entry.state = new
                events.append(PeerEvent(new.value, pid))
        return events

    def touch(self, peer_id: str, now: float) -> list[PeerEvent]:
        """``peer_id`` answered us directly (a ping, a stream) at ``now``: it is alive, whatever
        gossip says. Keeps its last status; returns ``recovered`` if it was suspect/offline."""
        entry = self._entries.get(peer_id)
        if entry is None:
            return []
        entry.last_seen = max(entry.last_seen, now)
        if entry.state is not PeerState.ALIVE:
            entry.state = PeerState.ALIVE
            return [PeerEvent("recovered", peer_id)]
        return []

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
