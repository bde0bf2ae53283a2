"""A virtual clock and event heap for the discrete-event network simulator (:mod:`.network`).

Times are seconds of simulated time (floats). Events scheduled for the same time run in the
order they were scheduled (a sequence number breaks ties), so a run is deterministic given its
inputs. No wall clock is read anywhere.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class EventLoop:
    """A min-heap of ``(time, seq, callback, arg)``; :meth:`run_until` pops them in order.

    ``now`` is the time of the event being run (monotone non-decreasing). Callbacks take one
    argument (use a tuple for more) and may schedule further events; scheduling in the past
    raises :class:`ValueError` (a bug in the caller).
    """

    __slots__ = ("now", "_heap", "_seq", "processed")

    def __init__(self, start: float = 0.0):
        self.now = float(start)
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        #: events run so far
        self.processed = 0

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, t: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``callback(arg)`` at simulated time ``t`` (>= now)."""
        if t < self.now - 1e-9:
            raise ValueError(f"event scheduled in the past: {t} < now {self.now}")
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, callback, arg))

    def after(self, delay: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``callback(arg)`` ``delay`` (>= 0) seconds from now."""
        self.at(self.now + delay, callback, arg)

    def run_until(self, t_end: float, on_tick: Callable[[float], None] | None = None,
                  tick: float = 1.0) -> None:
        """Run every event with time <= ``t_end``; then ``now = t_end``. ``on_tick(now)`` is
        called whenever simulated time has advanced by ``tick`` seconds (progress bars)."""
        heap = self._heap
        pop = heapq.heappop
        next_tick = self.now + tick
        n = 0
        while heap and heap[0][0] <= t_end:
            t, _, cb, arg = pop(heap)
            self.now = t
            if on_tick is not None and t >= next_tick:
                self.processed += n
                n = 0
                on_tick(t)
                next_tick = t + tick
            cb(arg)
            n += 1
        self.processed += n
        self.now = max(self.now, t_end)
        if on_tick is not None:
            on_tick(self.now)
