"""Exception hierarchy of wwwserve_p2p.

Every error this library raises on purpose derives from :class:`WwwServeError`.
Families:

- :class:`ConfigError`: a configuration value or file is invalid.
- :class:`MalformedMessage`: bytes from the network failed to decode or validate.
- :class:`OverlayError`: dialing, streams, gossip, DHT (``DialError``, ``StreamClosed``).
- :class:`ExecutorError`: a local executor failed (``ModelNotFound``, ``InvalidRequest``).
- :class:`DelegationError`: a request could not be served through the overlay
  (``NoExecutorAvailable``, ``RemoteError``).
- :class:`LedgerError`: ledger data was refused (``InvalidBlock`` carries the reason code);
  ``StorageError``: the ledger store cannot be read or written.
- :class:`RequestTimeout`: a deadline passed; ``may_have_processed`` says whether the remote
  side may have done (part of) the work.
"""

from __future__ import annotations


class WwwServeError(Exception):
    """Root of every error raised on purpose by wwwserve_p2p."""


class ConfigError(WwwServeError, ValueError):
    """A configuration value, file or override is invalid; the message names the key."""


class MalformedMessage(WwwServeError, ValueError):
    """Bytes received from a peer failed to decode, exceeded a size cap, or failed validation."""


class OverlayError(WwwServeError):
    """A failure of the peer-to-peer overlay (connection, stream, gossip, DHT)."""


class DialError(OverlayError):
    """A peer could not be dialed (unknown address, refused, security negotiation failed)."""


class StreamClosed(OverlayError):
    """The stream was closed or reset by the remote peer before the exchange completed."""


class ExecutorError(WwwServeError):
    """A local executor could not serve a request."""


class ModelNotFound(ExecutorError, LookupError):
    """The requested model is not served here (nor, for a node, anywhere on the network)."""

    def __init__(self, model: str, available: tuple[str, ...] | list[str] = ()):
        self.model = model
        self.available = tuple(available)
        hint = f"; available: {', '.join(self.available)}" if self.available else ""
        super().__init__(f"model {model!r} is not served{hint}")


class InvalidRequest(ExecutorError, ValueError):
    """The request itself is invalid (bad parameters, empty prompt, too long)."""


class DelegationError(WwwServeError):
    """A request could not be served through the overlay."""


class NoExecutorAvailable(DelegationError):
    """No peer accepted the request and it could not be run locally."""


class RemoteError(DelegationError):
    """The executing peer reported an error. ``code`` is a short machine-readable string."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")


class RequestTimeout(WwwServeError, TimeoutError):
    """A deadline passed.

    ``may_have_processed`` is True when the remote side had already accepted the request, so
    it may have done (part of) the work; False when the request never left this node or was
    refused before any work began.
    """

    def __init__(self, message: str, *, may_have_processed: bool):
        self.may_have_processed = may_have_processed
        super().__init__(message)


class LedgerError(WwwServeError):
    """Ledger data (a block, entry, ticket, genesis file) was refused."""


class InvalidBlock(LedgerError):
    """A block or entry failed validation; ``reason`` is a stable code (see ``core.ledger.Reason``)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class StorageError(LedgerError):
    """The ledger store could not be read or written (disk full, corrupt file, permissions)."""
