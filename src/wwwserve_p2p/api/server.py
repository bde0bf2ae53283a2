"""Run the HTTP API of a node with Hypercorn's trio worker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .app import create_app
from .node_protocol import ServingNode

log = logging.getLogger(__name__)


#: listen(2) backlog of the HTTP API socket.
LISTEN_BACKLOG = 2048


def _bind_string(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _parse_bound(url: str) -> tuple[str, int]:
    """``http://127.0.0.1:8000`` / ``http://[::1]:8000`` → ``(host, port)``."""
    hostport = url.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


async def serve_api(
    node: ServingNode,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    access_log: bool | str | logging.Logger = False,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    graceful_timeout: float = 5.0,
    **app_kwargs: Any,
) -> None:
    """Serve the OpenAI-compatible API of ``node`` on ``host:port`` until cancelled.

    ``port=0`` picks a free port; the actually bound ``(host, port)`` is reported through
    ``task_status.started`` (use ``await nursery.start(serve_api, node)``). Cancelling the
    task stops the server at once (open connections are dropped). ``shutdown_trigger``, when
    given, is awaited; its return starts a graceful shutdown (in-flight requests get up to
    ``graceful_timeout`` seconds) after which this function returns.

    ``access_log``: False (default) for none, True for Hypercorn's access log on stdout, a
    file path, or a :class:`logging.Logger`. Hypercorn's error/info messages go to the
    ``hypercorn.error`` logger. ``app_kwargs`` go to :func:`~wwwserve_p2p.api.app.create_app`
    (``max_body_bytes``, ``max_tokens_cap``, ``heartbeat_interval``, ``admin``).
    """
    app = create_app(node, **app_kwargs)
    config = Config()
    config.bind = [_bind_string(host, port)]
    config.accesslog = ("-" if access_log is True else (access_log or None))  # type: ignore[assignment]
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = graceful_timeout
    config.include_server_header = False
    # Hypercorn listens with a backlog of 100: 300 concurrent clients got connection resets
    # (issue 15). The kernel caps it at net.core.somaxconn (4096 on current kernels).
    config.backlog = LISTEN_BACKLOG

    async def never() -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, app, config, shutdown_trigger=shutdown_trigger or never))
        bound = _parse_bound(binds[0])
        log.info("HTTP API of %s on http://%s", node.peer_id, _bind_string(*bound))
        task_status.started(bound)
