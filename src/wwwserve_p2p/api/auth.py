"""Optional API keys for a node's HTTP API: a keys file, bearer authentication, per-key rate limits.

Keys are off unless ``api.keys_file`` names a keys file (``wwwserve keys add --file FILE``
creates it). With keys on, every request to ``/v1/*`` and ``/admin/*`` needs
``Authorization: Bearer <key>`` (what the ``openai`` client sends for ``api_key=``):

- no key, an unknown key or a revoked key: **401** (OpenAI error body, ``code``
  ``invalid_api_key``, header ``WWW-Authenticate: Bearer``);
- over the key's rate (``rate_per_min`` requests per minute, a token bucket that holds one
  minute's worth): **429** with ``Retry-After`` (whole seconds until one request is allowed);
- ``/admin/*`` also needs a key made with ``--admin`` (else **403**).

Operator views (``/``, ``/dashboard``, ``/health``, ``/version``, ``/status``, ``/metrics``,
``/ledger*``) stay open: they show what every peer can see anyway.

The keys file is JSON, mode 0600, and holds only hashes::

    {"keys": [{"id": "3f9a1c2e", "name": "alice", "hash": "sha256:<hex>", "created_ms": 1767225600000,
               "rate_per_min": 60, "admin": false, "revoked": false}]}

A key reads ``wws_<id>_<secret>`` (``secret``: 32 random bytes, URL-safe base64). Only
``sha256(key)`` is stored: the secret is 256 random bits, so a slow password hash (scrypt)
would add latency to every request and no security. The running node re-reads the file
when it changes (inode, mtime, size; checked at most once a second), so ``wwwserve keys
revoke`` takes effect without a restart. Keys never appear in logs or metrics; metrics
label usage by the key's ``id``: requests by outcome, and the prompt and completion tokens of
the answers (from each answer's ``usage``; a stream reports it with ``include_usage``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: Path prefixes that need a key when keys are on.
PROTECTED_PREFIXES = ("/v1/", "/admin/")
#: Path prefixes that need an admin key.
ADMIN_PREFIXES = ("/admin/",)
#: The default rate of a new key, requests per minute.
DEFAULT_RATE_PER_MIN = 60.0
#: Bound on the rate-limit buckets kept (one per key id that made a request).
MAX_BUCKETS = 10_000
_PREFIX = "wws"


@dataclass(frozen=True)
class ApiKey:
    """One key's record in the keys file (no secret: ``hash`` is ``sha256:<hex of the key>``)."""

    id: str
    name: str
    hash: str
    created_ms: int
    rate_per_min: float = DEFAULT_RATE_PER_MIN
    admin: bool = False
    revoked: bool = False

    def public(self) -> dict[str, Any]:
        """The record without its hash (for ``wwwserve keys list``)."""
        d = asdict(self)
        d.pop("hash")
        return d


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id part of ``wws_<id>_<secret>``, or None for anything else."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


class KeysFile:
    """Read and change a keys file (the ``wwwserve keys`` commands use it; the node reads it).

    :raises ConfigError: the file exists but is unreadable or malformed.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> list[ApiKey]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
            return [ApiKey(**{**k, "rate_per_min": float(k.get("rate_per_min", DEFAULT_RATE_PER_MIN))})
                    for k in data["keys"]]
        except OSError as exc:
            raise ConfigError(f"cannot read API keys file {self.path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"API keys file {self.path} is malformed ({exc}); "
                              "recreate it with 'wwwserve keys add --file FILE'") from None

    def save(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [asdict(k) for k in keys]}, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.path)

    def add(self, name: str, *, rate_per_min: float = DEFAULT_RATE_PER_MIN, admin: bool = False,
            now_ms: int | None = None) -> tuple[str, ApiKey]:
        """Create a key; returns ``(the key, its record)``. The key is shown once, never stored.

        :raises ConfigError: ``rate_per_min`` not > 0, or an empty name.
        """
        if not name.strip():
            raise ConfigError("a key needs a name (--name)")
        if not (rate_per_min > 0 and math.isfinite(rate_per_min)):
            raise ConfigError(f"--rate must be > 0 requests per minute, got {rate_per_min}")
        keys = self.load()
        taken = {k.id for k in keys}
        kid = secrets.token_hex(4)
        while kid in taken:
            kid = secrets.token_hex(4)
        key = f"{_PREFIX}_{kid}_{secrets.token_urlsafe(32)}"
        rec = ApiKey(kid, name.strip(), hash_key(key), int(time.time() * 1000) if now_ms is None else now_ms,
                     float(rate_per_min), admin)
        self.save([*keys, rec])
        return key, rec

    def revoke(self, ident: str) -> ApiKey:
        """Revoke the key with id (or name) ``ident``.

        :raises ConfigError: no such key, or a name shared by several keys.
        """
        keys = self.load()
        hits = [k for k in keys if k.id == ident] or [k for k in keys if k.name == ident]
        if not hits:
            raise ConfigError(f"no key with id or name {ident!r} in {self.path} (see 'wwwserve keys list')")
        if len(hits) > 1:
            raise ConfigError(f"several keys are named {ident!r}; revoke one by id: "
                              + ", ".join(k.id for k in hits))
        done = replace(hits[0], revoked=True)
        self.save([done if k.id == done.id else k for k in keys])
        return done


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float):
        self.tokens = tokens
        self.at = at


class KeyRing:
    """The node's view of the keys file: verifies bearer keys and applies per-key rate limits.

    ``clock`` is monotonic seconds (injected for tests). The file is re-read when its mtime
    changes, at most every ``reload_s`` seconds; a broken file keeps the last good keys (and
    logs why once per change).
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.monotonic,
                 reload_s: float = 1.0):
        self.file = KeysFile(path)
        self.clock = clock
        self.reload_s = reload_s
        self._keys: dict[str, ApiKey] = {}
        self._mtime: tuple[int, int, int] | None = None
        self._checked = -math.inf
        self._buckets: dict[str, _Bucket] = {}
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._checked < self.reload_s:
            return
        self._checked = now
        try:  # the file is replaced on every save: a new inode even within one mtime tick
            st = self.file.path.stat()
            mtime: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            mtime = None
        if not force and mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self._keys = {k.id: k for k in self.file.load()}
        except ConfigError as exc:
            if force:
                raise
            log.error("%s; keeping the %d keys read before", exc, len(self._keys))

    def keys(self) -> list[ApiKey]:
        self._reload()
        return list(self._keys.values())

    def verify(self, key: str) -> ApiKey | None:
        """The live record of ``key``, or None (unknown, wrong secret, revoked)."""
        self._reload()
        kid = key_id_of(key)
        rec = self._keys.get(kid) if kid else None
        if rec is None or rec.revoked or not hmac.compare_digest(rec.hash, hash_key(key)):
            return None
        return rec

    def take(self, rec: ApiKey) -> float:
        """Spend one request of ``rec``'s rate. Returns 0.0 when allowed, else the seconds until
        one request will be allowed."""
        now = self.clock()
        cap = max(1.0, rec.rate_per_min)
        b = self._buckets.get(rec.id)
        if b is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.pop(next(iter(self._buckets)))
            b = self._buckets[rec.id] = _Bucket(cap, now)
        b.tokens = min(cap, b.tokens + (now - b.at) * rec.rate_per_min / 60.0)
        b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) * 60.0 / rec.rate_per_min


def _error(status: int, message: str, kind: str, code: str,
           headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    return status, body, [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode()), *headers]


class ApiKeyMiddleware:
    """ASGI middleware enforcing :class:`KeyRing` on :data:`PROTECTED_PREFIXES`.

    ``on_request(key_id, outcome)`` is called once per protected request (``outcome``: ``ok``,
    ``missing``, ``invalid``, ``forbidden``, ``rate_limited``; ``key_id`` ``""`` when unknown):
    the node counts it in ``wwwserve_api_key_requests_total``. The authenticated key's id is
    put in ``scope["state"]["api_key_id"]``.
    """

    def __init__(self, app: ASGIApp, ring: KeyRing,
                 on_request: Callable[[str, str], None] = lambda kid, outcome: None,
                 on_usage: Callable[[str, int, int], None] | None = None) -> None:
        self.app = app
        self.ring = ring
        self.on_request = on_request
        self.on_usage = on_usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        key = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    key = rest.strip()
                break
        rec = self.ring.verify(key) if key else None
        challenge = [(b"www-authenticate", b'Bearer realm="wwwserve"')]
        if rec is None:
            outcome = "missing" if not key else "invalid"
            self.on_request("", outcome)
            msg = ("missing API key: send 'Authorization: Bearer <key>' (keys come from 'wwwserve keys add')"
                   if not key else "invalid or revoked API key")
            await _send(send, *_error(401, msg, "invalid_request_error", "invalid_api_key", challenge))
            return
        if path.startswith(ADMIN_PREFIXES) and not rec.admin:
            self.on_request(rec.id, "forbidden")
            await _send(send, *_error(403, f"key {rec.id} is not an admin key (wwwserve keys add --admin)",
                                      "invalid_request_error", "forbidden"))
            return
        wait = self.ring.take(rec)
        if wait > 0:
            self.on_request(rec.id, "rate_limited")
            retry = max(1, math.ceil(wait))
            await _send(send, *_error(
                429, f"rate limit of key {rec.id} ({rec.rate_per_min:g} requests/min) reached; "
                     f"retry after {retry} s", "requests", "rate_limit_exceeded",
                [(b"retry-after", str(retry).encode())]))
            return
        self.on_request(rec.id, "ok")
        scope.setdefault("state", {})["api_key_id"] = rec.id
        if self.on_usage is None:
            await self.app(scope, receive, send)
            return
        on_usage, kid = self.on_usage, rec.id

        async def send_counting(message: Any) -> None:
            if message["type"] == "http.response.body":
                _count_usage(message.get("body", b""), kid, on_usage)
            await send(message)

        await self.app(scope, receive, send_counting)


def _count_usage(body: bytes, kid: str, on_usage: Callable[[str, int, int], None]) -> None:
    """Report the ``usage`` of a completion answer in ``body`` (a whole JSON body, or one SSE
    event ``data: {...}``, as the app writes them): ``on_usage(key id, prompt, completion)``."""
    if b'"usage"' not in body or len(body) > 4 * 1024 * 1024:
        return
    text = body[6:] if body.startswith(b"data: ") else body
    try:
        usage = json.loads(text).get("usage")
        if isinstance(usage, dict):
            on_usage(kid, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    except (ValueError, AttributeError, TypeError):
        return


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
