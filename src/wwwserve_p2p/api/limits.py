"""HTTP input limits in front of the completion endpoints (issue 15).

:class:`RequestLimitsMiddleware` (pure ASGI) reads the body of ``POST .../v1/chat/completions``
and ``POST .../v1/completions``, refuses with 400 (OpenAI error JSON, ``code``
``invalid_request``) what the handlers could not survive or the peer protocol would call
malformed, and otherwise replays the body to the app unchanged:

- JSON nested deeper than :data:`MAX_JSON_DEPTH` (Python's parser recurses: 1,000+ levels
  raised RecursionError, a 500);
- strings with a lone surrogate (``"\\ud800"``: valid JSON, but not encodable as UTF-8, so
  the response or the protobuf to a peer failed with a 500 or a cut stream);
- ``seed`` outside the signed 64-bit range (the protobuf field is int64);
- more than :data:`~wwwserve_p2p.wire.codec.MAX_STOP` stop strings, more than
  :data:`~wwwserve_p2p.wire.codec.MAX_MESSAGES` messages, a prompt or a message content
  longer than :data:`~wwwserve_p2p.wire.codec.MAX_TEXT` characters: the peer protocol's
  limits, so such a request is refused here at once instead of being offloaded to peers
  that answer "malformed" until the retries run out (then 503).

Bodies over ``max_body_bytes`` are passed on unread beyond the cap, so the endpoint answers
413 as before. Everything else (schema, types, ranges) stays with the handlers.
"""

from __future__ import annotations

import json
from typing import Any

from ..wire.codec import MAX_MESSAGES, MAX_STOP, MAX_TEXT

#: Deepest JSON nesting accepted (OpenAI requests need 4-6 levels).
MAX_JSON_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_PATHS = ("/v1/chat/completions", "/v1/completions")


def json_depth(body: bytes) -> int:
    """Deepest ``[``/``{`` nesting of ``body`` outside strings (no parsing, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for b in body:
        if in_string:
            if escaped:
                escaped = False
            elif b == 0x5C:  # backslash
                escaped = True
            elif b == 0x22:  # quote
                in_string = False
        elif b == 0x22:
            in_string = True
        elif b in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif b in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _has_lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) in ``value`` that is not valid Unicode, if any."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return v
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def check_request(body: bytes) -> str | None:
    """Why ``body`` (a completion request) is refused, or None to let the handler decide."""
    if json_depth(body) > MAX_JSON_DEPTH:
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the handler answers 400 for invalid JSON
    if _has_lone_surrogate(data) is not None:
        return "request contains a string with a lone UTF-16 surrogate (not valid Unicode)"
    if not isinstance(data, dict):
        return None
    seed = data.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and not INT64_MIN <= seed <= INT64_MAX:
        return f"seed must be a signed 64-bit integer ({INT64_MIN} to {INT64_MAX})"
    stop = data.get("stop")
    if isinstance(stop, list) and len(stop) > MAX_STOP:
        return f"at most {MAX_STOP} stop sequences are supported (got {len(stop)})"
    messages = data.get("messages")
    if isinstance(messages, list):
        if len(messages) > MAX_MESSAGES:
            return f"at most {MAX_MESSAGES} messages are supported (got {len(messages)})"
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str) and len(content) > MAX_TEXT:
                return f"a message content is longer than {MAX_TEXT} characters"
            if isinstance(content, list):
                text = sum(len(p.get("text", "")) for p in content if isinstance(p, dict)
                           and isinstance(p.get("text"), str))
                if text > MAX_TEXT:
                    return f"a message content is longer than {MAX_TEXT} characters"
    prompt = data.get("prompt")
    prompts = prompt if isinstance(prompt, list) else [prompt]
    for p in prompts:
        if isinstance(p, str) and len(p) > MAX_TEXT:
            return f"prompt is longer than {MAX_TEXT} characters"
    return None


class RequestLimitsMiddleware:
    """ASGI middleware applying :func:`check_request` to completion requests (see module)."""

    def __init__(self, app: Any, max_body_bytes: int = 1_048_576):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" \
                or not str(scope.get("path", "")).endswith(_PATHS):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        first: dict[str, Any] | None = None
        while more:
            message = await receive()
            if message["type"] != "http.request":  # disconnected while sending
                first = message
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                break  # the endpoint answers 413; hand over what we read and the rest
        body = b"".join(chunks)
        if first is None and not more:
            reason = check_request(body)
            if reason is not None:
                payload = json.dumps({"error": {"message": reason, "type": "invalid_request_error", "param": None,
                                                "code": "invalid_request"}}).encode()
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode())]})
                await send({"type": "http.response.body", "body": payload})
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                if first is not None:
                    return first
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)
