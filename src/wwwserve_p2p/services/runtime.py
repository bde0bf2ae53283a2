"""What services get instead of the node: time, a place to spawn tasks, a way to run blocking work.

- :class:`Clock`: ``monotonic()`` is trio's clock (seconds; MockClock drives it in tests);
  ``wall_ms()`` is wall-clock milliseconds for what the ledger records (ticket expiry, block
  times, unbonding). :class:`SystemClock` reads the OS clock; :class:`VirtualClock` derives
  wall time from trio's clock, so under MockClock ticket expiry and unbonding move with
  virtual time.
- :class:`Runtime`: the clock, a nursery for background tasks (``spawn``) and
  ``run_blocking`` for SQLite and batch signature checks: a worker thread in production,
  inline under MockClock (whose autojump would otherwise advance virtual time while a thread
  works).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio


class Clock(Protocol):
    """Monotonic seconds for timeouts and peer liveness; wall milliseconds for the ledger."""

    def monotonic(self) -> float: ...

    def wall_ms(self) -> int: ...


class SystemClock:
    """trio's clock and the OS wall clock."""

    def monotonic(self) -> float:
        return trio.current_time()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class VirtualClock:
    """Wall time that follows trio's clock: ``epoch_ms + 1000 * trio.current_time()``, so a
    MockClock jump of 3600 s moves wall time by one hour. The default epoch is the OS wall
    clock when the object is created minus trio's time then."""

    def __init__(self, epoch_ms: int | None = None):
        if epoch_ms is None:
            epoch_ms = time.time_ns() // 1_000_000 - int(trio.current_time() * 1000)
        self.epoch_ms = epoch_ms

    def monotonic(self) -> float:
        return trio.current_time()

    def wall_ms(self) -> int:
        return self.epoch_ms + int(trio.current_time() * 1000)


async def run_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking ``fn(*args)`` on a worker thread (the production ``run_blocking``)."""
    return await trio.to_thread.run_sync(fn, *args)


async def run_inline(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` on the trio thread (for MockClock tests)."""
    return fn(*args)


@dataclass
class Runtime:
    """The environment every service runs in. ``nursery`` is set by the node while it runs;
    :meth:`spawn` before that raises RuntimeError."""

    clock: Clock = field(default_factory=SystemClock)
    run_blocking: Callable[..., Awaitable[Any]] = run_in_thread
    nursery: trio.Nursery | None = None

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` in the node's nursery (it must not raise)."""
        if self.nursery is None:
            raise RuntimeError("the node is not running: no nursery to spawn into")
        self.nursery.start_soon(fn, *args)

    @property
    def running(self) -> bool:
        return self.nursery is not None
