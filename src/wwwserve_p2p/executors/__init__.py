"""Executors: what turns a :class:`~wwwserve_p2p.core.types.GenerationRequest` into text.

- :class:`EchoExecutor` (``"echo"``): deterministic, for tests.
- :class:`HFExecutor` (``"hf"``): a transformers causal LM from a local directory.
- :class:`OpenAIUpstreamExecutor` (``"openai"``): proxy to an OpenAI-compatible server.
- :class:`RandomTokenExecutor` (``"random"``): answers with uniformly random words (the
  "random responder" of the incentive experiments).
- :class:`~wwwserve_p2p.sim.executor.SimulatedExecutor` (``"simulated"``): a GPU
  performance model with continuous batching (imported lazily, like ``"hf"``).
- :class:`~wwwserve_p2p.executors.paced.PacedExecutor` (``"paced"``): an inner executor's real
  tokens released on an emulated GPU's schedule (the demo's executors on a CPU-only host).

:func:`create_executor` builds one from a kind and constructor options (e.g. from a config
file). torch and transformers are imported only when an ``HFExecutor`` is created (or
``wwwserve_p2p.executors.hf``/``.training`` imported), so importing this package is light.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .base import Executor
from .echo import EchoExecutor, SlotGate
from .openai_upstream import OpenAIUpstreamExecutor
from .random_tokens import RandomTokenExecutor

if TYPE_CHECKING:
    from .hf import HFExecutor

__all__ = ["EXECUTOR_KINDS", "EchoExecutor", "Executor", "HFExecutor", "OpenAIUpstreamExecutor",
           "RandomTokenExecutor", "SlotGate", "create_executor"]

#: Kinds accepted by :func:`create_executor`.
EXECUTOR_KINDS = ("echo", "hf", "openai", "simulated", "random", "paced")


def __getattr__(name: str) -> Any:
    if name == "HFExecutor":
        from .hf import HFExecutor
        return HFExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _executor_class(kind: str) -> type[Executor]:
    if kind == "echo":
        return EchoExecutor
    if kind == "openai":
        return OpenAIUpstreamExecutor
    if kind == "random":
        return RandomTokenExecutor
    if kind == "hf":
        from .hf import HFExecutor
        return HFExecutor
    if kind == "simulated":
        from ..sim.executor import SimulatedExecutor
        return SimulatedExecutor
    if kind == "paced":
        from .paced import PacedExecutor
        return PacedExecutor
    raise ConfigError(f"unknown executor kind {kind!r}; known kinds: {', '.join(EXECUTOR_KINDS)}")


def create_executor(kind: str, options: dict[str, Any] | None = None) -> Executor:
    """Build an executor of ``kind`` with ``options`` as constructor keyword arguments.

    Kinds and options (see each class): ``"echo"`` → :class:`EchoExecutor` (``models``,
    ``capacity``, ``delay_per_token``, ``peer_label``); ``"hf"`` → :class:`HFExecutor`
    (``model_dir`` required, ``model_name``, ``capacity``, ``threads``, ``delay_per_token``,
    ``max_new_tokens_cap``, ``device``, ``quantize`` = ``"none"``/``"int8"``/``"fp8"``/
    ``"int4-g128"``/``"int4-g32"`` or any ``"int<bits>-g<group>"``, see :mod:`.quant`); ``"openai"`` →
    :class:`OpenAIUpstreamExecutor` (``base_url`` required, ``models``, ``api_key``,
    ``capacity``, ``timeout``); ``"simulated"`` →
    :class:`~wwwserve_p2p.sim.executor.SimulatedExecutor` (``gpu``, ``model``, ``models``,
    ``time_scale``, ``max_batch``, ``kv_tokens``, ``max_batched_tokens``, ``seed``, ``jitter``,
    ``efficiency`` (a table of :class:`~wwwserve_p2p.sim.profiles.Efficiency` fields),
    ``min_sleep_s``); ``"random"`` → :class:`RandomTokenExecutor` (``models``, ``capacity``,
    ``delay_per_token``, ``seed``, ``vocab_path``, ``answer_tokens``); ``"paced"`` →
    :class:`~wwwserve_p2p.executors.paced.PacedExecutor` (``inner`` = an executor table,
    ``gpu``, ``model``, ``capacity``, ``slowdown``, ``efficiency``). List values for
    ``models`` are accepted (TOML arrays).

    An ``OpenAIUpstreamExecutor`` without ``models`` must be started (``await ex.start()``)
    before :meth:`~Executor.models` is called.

    :raises ConfigError: unknown kind, unknown or missing option, or an invalid value.
    :raises ModelNotFound: ``hf`` with a ``model_dir`` that does not exist.
    :raises ExecutorError: ``hf`` with a directory that holds no loadable model.
    """
    options = dict(options or {})
    cls = _executor_class(kind)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p != "self"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) for executor kind {kind!r}: {', '.join(unknown)}; "
                          f"allowed: {', '.join(allowed)}")
    missing = [p.name for p in params.values() if p.name != "self"
               and p.default is inspect.Parameter.empty and p.name not in options]
    if missing:
        raise ConfigError(f"executor kind {kind!r} requires option(s): {', '.join(missing)}")
    if isinstance(options.get("models"), list):
        options["models"] = tuple(options["models"])
    if kind == "paced" and isinstance(options.get("inner"), dict):  # build the inner executor
        inner = dict(options["inner"])
        if not isinstance(inner.get("kind"), str) or inner["kind"] == "paced":
            raise ConfigError("executor.inner must be a table with the kind of a non-paced executor "
                              "(e.g. kind = \"hf\") and its options")
        inner_kind = inner.pop("kind")
        inner["capacity"] = options.get("capacity", 1)  # as many slots as the paced executor: never queues
        options["inner"] = create_executor(inner_kind, inner)
    try:
        return cls(**options)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid options for executor kind {kind!r}: {exc}") from exc
