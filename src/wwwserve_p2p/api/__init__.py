"""The OpenAI-compatible HTTP API of a node.

:func:`create_app` returns the Starlette ASGI app of a running node (to mount in your own
ASGI app); :func:`serve_api` serves it with Hypercorn's trio worker (what ``open_node`` does
when ``api.enabled`` is true). See :mod:`wwwserve_p2p.api.app` for the endpoints.
"""

from __future__ import annotations

from .app import EXECUTOR_HEADER, create_app
from .node_protocol import ServingNode
from .server import serve_api

__all__ = ["EXECUTOR_HEADER", "ServingNode", "create_app", "serve_api"]
