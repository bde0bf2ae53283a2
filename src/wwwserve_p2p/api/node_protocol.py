"""What the HTTP API needs from a node (implemented by :class:`wwwserve_p2p.node.Node`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from ..core.types import GenerationRequest, ModelCard, RoutedChunk
from ..metrics import NodeMetrics


class ServingNode(Protocol):
    """The node as seen by :mod:`wwwserve_p2p.api`."""

    @property
    def peer_id(self) -> str: ...

    @property
    def metrics(self) -> NodeMetrics: ...

    def model_cards(self) -> list[ModelCard]:
        """Models served locally and by known live peers."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[RoutedChunk]:
        """Serve ``request`` locally or through the overlay (async generator).

        Raises before the first chunk: ModelNotFound (404), InvalidRequest (400),
        NoExecutorAvailable (503), RequestTimeout (504), RemoteError (502). After the first
        chunk, failures are handled inside (re-dispatch with ``continuation``) and the stream
        either completes with a final chunk or raises one of the above.
        Closing the generator early cancels the work, also remote work.
        """

    def status(self) -> dict[str, Any]:
        """JSON-serialisable status: peer_id, addrs, models, load, peers [{peer_id, models, state}], ..."""
