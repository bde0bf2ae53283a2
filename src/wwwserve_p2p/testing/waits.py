"""Waiting on conditions in tests (deadlines, never bare sleeps)."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def wait_until(pred: Callable[[], bool], timeout: float = 60.0, what: str = "condition",
                     poll: float = 0.02) -> None:
    """Poll ``pred`` every ``poll`` seconds until it holds.

    :raises AssertionError: ``pred`` still false after ``timeout`` seconds (names ``what``)."""
    try:
        with trio.fail_after(timeout):
            while not pred():
                await trio.sleep(poll)
    except trio.TooSlowError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


__all__ = ["wait_until"]
