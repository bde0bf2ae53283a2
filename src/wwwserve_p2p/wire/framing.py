"""Length-prefixed framing over an overlay :class:`~wwwserve_p2p.net.base.Stream`.

A frame is ``uvarint(len) || payload`` (the libp2p convention, as in multistream and
identify). Every read has a size cap and a deadline: an oversized length prefix, a prefix
longer than 10 bytes, or a stream that ends mid-frame raises :class:`MalformedMessage`; a
read that exceeds its deadline raises :class:`~wwwserve_p2p.errors.RequestTimeout`.
"""

from __future__ import annotations

import trio

from ..errors import MalformedMessage, RequestTimeout
from ..net.base import Stream

#: Longest valid uvarint for a 64-bit length.
_MAX_VARINT_BYTES = 10


def encode_uvarint(n: int) -> bytes:
    """Unsigned LEB128 encoding of ``n`` (>= 0)."""
    if n < 0:
        raise ValueError("uvarint must be non-negative")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(payload: bytes) -> bytes:
    """``uvarint(len(payload)) || payload``."""
    return encode_uvarint(len(payload)) + payload


class FrameReader:
    """Reads frames from a stream, buffering any bytes read past a frame boundary.

    ``max_frame``: largest accepted payload in bytes. One reader per stream direction.
    """

    def __init__(self, stream: Stream, max_frame: int):
        self._stream = stream
        self._max = max_frame
        self._buf = bytearray()
        self._eof = False

    async def _fill(self) -> bool:
        if self._eof:
            return False
        data = await self._stream.read(65536)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def read_frame(self, timeout: float, *, may_have_processed: bool = True) -> bytes | None:
        """The next frame's payload, or None at a clean end of stream (EOF between frames).

        ``may_have_processed`` is what a timeout reports: the caller knows whether the remote
        had already accepted work when it waits (True, the default: e.g. waiting for tokens
        of a committed request) or not (False: e.g. waiting for the answer to a probe that
        was never committed, so nothing can have been done yet).

        :raises MalformedMessage: bad or oversized length prefix, or EOF inside a frame.
        :raises RequestTimeout: no complete frame within ``timeout`` seconds, carrying
            ``may_have_processed`` as given.
        :raises StreamClosed: the stream was reset.
        """
        try:
            with trio.fail_after(timeout):
                return await self._read_frame()
        except trio.TooSlowError:
            raise RequestTimeout(f"no frame from {self._stream.remote_peer} within {timeout:.1f}s",
                                 may_have_processed=may_have_processed) from None

    async def _read_frame(self) -> bytes | None:
        # length prefix
        while True:
            length, used = _try_uvarint(self._buf)
            if used:
                break
            if len(self._buf) >= _MAX_VARINT_BYTES:
                raise MalformedMessage("frame length prefix is longer than 10 bytes")
            if not await self._fill():
                if self._buf:
                    raise MalformedMessage("stream ended inside a frame length prefix")
                return None
        if length > self._max:
            raise MalformedMessage(f"frame of {length} bytes exceeds the cap of {self._max} bytes")
        while len(self._buf) - used < length:
            if not await self._fill():
                raise MalformedMessage(
                    f"stream ended inside a frame ({len(self._buf) - used} of {length} bytes)")
        payload = bytes(self._buf[used:used + length])
        del self._buf[:used + length]
        return payload


def _try_uvarint(buf: bytes | bytearray) -> tuple[int, int]:
    """Decode a uvarint at the start of ``buf``: (value, bytes used), or (0, 0) if incomplete."""
    value = 0
    for i in range(min(len(buf), _MAX_VARINT_BYTES)):
        b = buf[i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            return value, i + 1
    return 0, 0
