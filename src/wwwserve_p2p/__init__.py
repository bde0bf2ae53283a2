"""wwwserve_p2p: a peer-to-peer LLM-serving node (WWW.Serve) -- the curated public API.

Everything an embedder needs is importable from here::

    import trio
    from wwwserve_p2p import EchoExecutor, GenerationRequest, NodeConfig, open_node

    async def main():
        async with open_node(NodeConfig.embedded(), EchoExecutor(models=("echo",))) as node:
            async for rc in node.generate(GenerationRequest("r1", "echo", prompt="hi")):
                print(rc.chunk.text, end="")

    trio.run(main)

- Node: :func:`open_node` (async context manager), :class:`Node` (its type).
- Configuration: :class:`NodeConfig` (:meth:`~NodeConfig.embedded`,
  :meth:`~NodeConfig.from_dict`, :meth:`~NodeConfig.with_values`), its sections
  (:class:`NodeSection`, :class:`NetSection`, :class:`StatusSection`, :class:`OffloadPolicy`,
  :class:`DelegationSection`, :class:`ApiSection`, :class:`LedgerSection`,
  :class:`DuelSection`), :func:`load_config` (TOML + overrides), :func:`load_genesis`.
- Requests and answers: :class:`GenerationRequest`, :class:`ChatMessage`,
  :class:`GenerationChunk`, :class:`RoutedChunk`, :class:`Usage`, :class:`ModelCard`,
  :class:`LoadSnapshot`.
- Executors: :class:`Executor` (subclass it), :class:`EchoExecutor`,
  :class:`RandomTokenExecutor`, :class:`OpenAIUpstreamExecutor`, :class:`HFExecutor`
  (imports torch on first use), :class:`SimulatedExecutor`, :func:`create_executor`.
- HTTP: :func:`create_app` (the node's Starlette ASGI app, to mount in your own app).
- Errors: :class:`WwwServeError` and its families (see :mod:`wwwserve_p2p.errors`).

``import wwwserve_p2p`` is cheap: only the errors and the request/answer types are imported
eagerly; every other name is imported on first access (libp2p only when a node starts with
the real overlay, torch/transformers only for :class:`HFExecutor`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.types import (
    ChatMessage,
    GenerationChunk,
    GenerationRequest,
    LoadSnapshot,
    ModelCard,
    RoutedChunk,
    Usage,
)
from .errors import (
    ConfigError,
    DelegationError,
    DialError,
    ExecutorError,
    InvalidBlock,
    InvalidRequest,
    LedgerError,
    MalformedMessage,
    ModelNotFound,
    NoExecutorAvailable,
    OverlayError,
    RemoteError,
    RequestTimeout,
    StorageError,
    StreamClosed,
    WwwServeError,
)

if TYPE_CHECKING:
    from .api.app import create_app
    from .config import (
        ApiSection,
        DelegationSection,
        DuelSection,
        LedgerSection,
        NetSection,
        NodeConfig,
        NodeSection,
        StatusSection,
        load_config,
        load_genesis,
    )
    from .core.policy import OffloadPolicy
    from .executors import (
        EchoExecutor,
        HFExecutor,
        OpenAIUpstreamExecutor,
        RandomTokenExecutor,
        create_executor,
    )
    from .executors.base import Executor
    from .node import Node, open_node
    from .sim.executor import SimulatedExecutor


def _package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return "0+unknown"
    try:
        return version("wwwserve_p2p")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


__version__: str  # the installed distribution's version, read on first access ("0+unknown"
# when run from a source tree that is not installed); lazy because importlib.metadata is slow

#: Lazily imported public names -> the module (relative to this package) that defines them.
_LAZY: dict[str, str] = {
    "open_node": ".node",
    "Node": ".node",
    "NodeConfig": ".config",
    "NodeSection": ".config",
    "NetSection": ".config",
    "StatusSection": ".config",
    "DelegationSection": ".config",
    "ApiSection": ".config",
    "LedgerSection": ".config",
    "DuelSection": ".config",
    "load_config": ".config",
    "load_genesis": ".config",
    "OffloadPolicy": ".core.policy",
    "Executor": ".executors.base",
    "EchoExecutor": ".executors",
    "RandomTokenExecutor": ".executors",
    "OpenAIUpstreamExecutor": ".executors",
    "HFExecutor": ".executors",
    "create_executor": ".executors",
    "SimulatedExecutor": ".sim.executor",
    "create_app": ".api.app",
}

__all__ = sorted([
    "__version__",
    # requests and answers
    "ChatMessage", "GenerationChunk", "GenerationRequest", "LoadSnapshot", "ModelCard",
    "RoutedChunk", "Usage",
    # errors
    "ConfigError", "DelegationError", "DialError", "ExecutorError", "InvalidBlock",
    "InvalidRequest", "LedgerError", "MalformedMessage", "ModelNotFound", "NoExecutorAvailable",
    "OverlayError", "RemoteError", "RequestTimeout", "StorageError", "StreamClosed",
    "WwwServeError",
    *_LAZY,
])


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _package_version()
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
