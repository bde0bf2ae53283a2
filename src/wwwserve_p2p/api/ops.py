"""Operator endpoints of the HTTP API: health, version, funding newcomers, and API keys.

- ``GET /health``: ``200 {"status": "ok", ...}`` once the node has started every service,
  ``503 {"status": "starting"}`` before (``Node.ready``); never needs a key (for load
  balancers and orchestrators).
- ``GET /version``: package version, network id and name, PeerId, the protocols spoken.
- ``POST /admin/transfer`` (served with ``api.admin = true``; with API keys on it needs an
  admin key): body ``{"to": PeerId, "amount": micro-credits}`` (or ``"credits": float``)
  queues a ``Transfer`` from this node (see :meth:`wwwserve_p2p.node.Node.transfer`);
  ``200 {"key", "from", "to", "amount", "unit", "spendable_after"}``, ``400`` for an invalid
  recipient or amount, or insufficient funds.

:func:`key_middleware` builds the :class:`~wwwserve_p2p.api.auth.ApiKeyMiddleware` of a node
whose ``api.keys_file`` is set (None otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ConfigError, InvalidRequest
from .auth import ApiKeyMiddleware, KeyRing

MAX_ADMIN_BODY = 16 * 1024


def package_version() -> str:
    try:
        return version("wwwserve_p2p")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def _err(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": code}}, status_code=status)


def ops_routes(node: Any, guard: Callable[[Any], Any], *, admin: bool) -> list[Route]:
    """``/health`` and ``/version`` always, ``/admin/transfer`` when ``admin``."""

    async def health(request: Request) -> Response:
        ready = bool(getattr(node, "ready", True))
        body = {"status": "ok" if ready else "starting", "peer_id": node.peer_id}
        return JSONResponse(body, status_code=200 if ready else 503,
                            headers={} if ready else {"retry-after": "1"})

    async def version_info(request: Request) -> Response:
        genesis = getattr(node, "genesis", None)
        from ..services.delegation import PROTOCOL as DELEGATE
        from ..services.duel import JUDGE_PROTOCOL
        return JSONResponse({"name": "wwwserve_p2p", "version": package_version(), "peer_id": node.peer_id,
                             "network_id": getattr(node, "network_id", ""),
                             "network": getattr(genesis, "network", ""),
                             "protocols": [DELEGATE, JUDGE_PROTOCOL, "/wwwserve/ledger-sync/1"],
                             "api": "openai-v1"})

    async def transfer(request: Request) -> Response:
        if not hasattr(node, "transfer"):
            return _err(404, "this node has no ledger", "not_found")
        raw = b""
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_ADMIN_BODY:
                return _err(413, f"body exceeds {MAX_ADMIN_BODY} bytes", "request_too_large")
        try:
            data = json.loads(raw or b"null")
        except ValueError:
            return _err(400, "body must be JSON: {\"to\": PeerId, \"amount\": micro-credits}", "invalid_json")
        if not isinstance(data, dict) or not isinstance(data.get("to"), str):
            return _err(400, "body must be {\"to\": PeerId, \"amount\": micro-credits} "
                             "(or \"credits\": number)", "invalid_value", "to")
        amount = data.get("amount")
        if amount is None and isinstance(data.get("credits"), (int, float)) and not isinstance(data["credits"], bool):
            amount = int(round(data["credits"] * 1_000_000))
        try:
            return JSONResponse(node.transfer(data["to"], amount))
        except InvalidRequest as exc:
            code = "insufficient_funds" if "insufficient funds" in str(exc) else "invalid_value"
            return _err(400, str(exc), code, "amount" if code == "insufficient_funds" or "amount" in str(exc) else "to")

    routes = [Route("/health", guard(health), methods=["GET"]),
              Route("/version", guard(version_info), methods=["GET"])]
    if admin:
        routes.append(Route("/admin/transfer", guard(transfer), methods=["POST"]))
    return routes


def key_middleware(node: Any, keys_file: str | None = None) -> Middleware | None:
    """The API-key middleware for ``keys_file`` (default: the node's ``api.keys_file``), or None
    when keys are off. Per-key outcomes are counted in ``wwwserve_api_key_requests_total``.

    :raises ConfigError: the keys file is set but unreadable or malformed.
    """
    if keys_file is None:
        keys_file = getattr(getattr(getattr(node, "config", None), "api", None), "keys_file", "") or ""
    if not keys_file:
        return None
    if not Path(keys_file).is_file():
        raise ConfigError(f"api.keys_file {keys_file} does not exist; create it with "
                          f"'wwwserve keys add --file {keys_file} --name NAME'")
    ring = KeyRing(keys_file)
    metrics = node.metrics

    def count(key_id: str, outcome: str) -> None:
        metrics.api_key_requests.labels(key_id, outcome).inc()

    def usage(key_id: str, prompt: int, completion: int) -> None:
        metrics.api_key_tokens.labels(key_id, "prompt").inc(prompt)
        metrics.api_key_tokens.labels(key_id, "completion").inc(completion)

    return Middleware(ApiKeyMiddleware, ring=ring, on_request=count, on_usage=usage)
