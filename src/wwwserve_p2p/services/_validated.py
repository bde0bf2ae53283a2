"""Hand a topic validator's decoding to the subscriber, so each gossip message is decoded once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from ..net.base import GossipMessage

T = TypeVar("T")


class Validated(Generic[T]):
    """What validators decoded, keyed by the :class:`GossipMessage` (the overlays pass the same
    message to the validator and to the subscription); bounded, oldest dropped first."""

    def __init__(self, max_entries: int = 1024):
        self._max = max_entries
        self._entries: OrderedDict[GossipMessage, T] = OrderedDict()

    def put(self, msg: GossipMessage, value: T) -> None:
        self._entries[msg] = value
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def take(self, msg: GossipMessage, decode: Callable[[bytes], T]) -> T:
        """The validator's decoding of ``msg`` if kept, else ``decode(msg.data)`` now (which may
        raise, e.g. MalformedMessage)."""
        value = self._entries.pop(msg, None)
        return value if value is not None else decode(msg.data)
