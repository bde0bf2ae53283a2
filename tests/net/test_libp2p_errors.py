"""The one point where py-libp2p's exceptions become ours: ``net.libp2p.streams.map_errors``
(and ``best_effort`` for cleanup that must not raise)."""

from __future__ import annotations

import logging

import pytest
import trio
from libp2p.network.exceptions import SwarmException

from wwwserve_p2p.errors import DialError, OverlayError, StreamClosed
from wwwserve_p2p.net.libp2p.streams import best_effort, map_errors


@pytest.mark.parametrize("exc", [
    SwarmException("all dials failed"),  # py-libp2p's error root
    ConnectionRefusedError("connection refused"),  # OSError
    trio.BrokenResourceError("socket broke"),
    trio.ClosedResourceError("channel closed"),
])
def test_library_failures_become_the_requested_family_with_the_root_cause(exc: BaseException) -> None:
    with pytest.raises(DialError) as info:
        with map_errors("cannot connect to P", DialError):
            try:
                raise RuntimeError("inner detail") from None
            except RuntimeError as inner:
                raise exc from inner
    assert str(info.value).startswith("cannot connect to P: ")
    assert str(exc) in str(info.value) and "inner detail" in str(info.value)
    assert info.value.__cause__ is exc


def test_our_errors_and_unknown_types_pass_through() -> None:
    with pytest.raises(StreamClosed, match="^was reset$"):
        with map_errors("x", DialError):
            raise StreamClosed("was reset")
    with pytest.raises(KeyError):  # a bug surfaces as itself
        with map_errors("x"):
            raise KeyError("bug")
    with pytest.raises(OverlayError, match="bad value"):  # `also` widens the mapping
        with map_errors("stream failed", also=(ValueError,)):
            raise ValueError("bad value")


async def test_deadline_raises_the_family(autojump_clock: trio.abc.Clock) -> None:
    with pytest.raises(DialError, match="cannot open /p to P: timed out after 2 s"):
        with map_errors("cannot open /p to P", DialError, deadline=2.0):
            await trio.sleep(10)
    with map_errors("fast", DialError, deadline=2.0):
        await trio.sleep(1)


async def test_best_effort_logs_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    async def known() -> None:
        raise OSError("already closed")

    async def unknown() -> None:
        raise RuntimeError("surprise")

    with caplog.at_level(logging.DEBUG, logger="wwwserve_p2p.net"):
        await best_effort("closing a", known)
        await best_effort("closing b", unknown)
    levels = {r.getMessage().split(":")[0]: r.levelno for r in caplog.records}
    assert levels == {"closing a": logging.DEBUG, "closing b": logging.WARNING}
