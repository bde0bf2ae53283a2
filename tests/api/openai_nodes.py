"""Real node processes for the OpenAI-parameter and client tests (issue 14a).

``echo_network``: node ``a`` (front door, ``target_load = 0``: it offloads every request it
can) and node ``b``, both serving the echo model ``echo``; requests sent to ``a`` run on ``b``
through the overlay unless ``b`` declines them.
``hf_network``: a node serving the tiny trained model ``shakespeare`` (from the
``data/test-quality-incentives`` cache that tests/test_quality_incentives.py fills: nano, 80
steps; trained here on first use if it is missing) and an echo front node that offloads to it.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from wwwserve_p2p.localnet import NodeProcess, NodeSpec, start_network, stop_network, wait_for_mesh

NETWORK = "wwwserve-test-openai-params"
ECHO = "echo"
HF_MODEL = "shakespeare"
#: the same cache (and lock) as tests/test_quality_incentives.py: its nano model, 80 steps
MODEL_CACHE = Path(__file__).resolve().parents[2] / "data" / "test-quality-incentives"


def tiny_model_dir() -> Path:
    """The cached nano tinyshakespeare model (trained on first use, ~1-4 min on 2 cores)."""
    from wwwserve_p2p.cli import find_corpus
    from wwwserve_p2p.executors.training import ensure_models

    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    with open(MODEL_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return ensure_models(MODEL_CACHE, sizes=("nano",), corpus=find_corpus(None), steps=80,
                             progress=False)["nano"]


def _spec(name: str, executor: dict, policy: dict | None = None) -> NodeSpec:
    return NodeSpec(name, {"node": {"network": NETWORK, "log_level": "INFO"},
                           "status": {"interval": 1.0},
                           "policy": dict(policy or {}),
                           "executor": executor})


@contextmanager
def echo_network(workdir: Path) -> Iterator[list[NodeProcess]]:
    """Nodes ``a`` (offloads everything) and ``b``, meshed."""
    nodes = start_network([
        _spec("a", {"kind": "echo", "models": [ECHO], "capacity": 8}, {"target_load": 0.0}),
        _spec("b", {"kind": "echo", "models": [ECHO], "capacity": 8}, {"max_delegated": 8}),
    ], workdir, ready_timeout=90)
    try:
        wait_for_mesh(nodes, timeout=60)
        yield nodes
    finally:
        stop_network(nodes)


@contextmanager
def hf_network(workdir: Path) -> Iterator[list[NodeProcess]]:
    """``hf`` serving the tiny model as ``shakespeare`` (it runs its own requests locally) and
    ``front``, an echo node serving only ``front``: its requests for ``shakespeare`` go to
    ``hf`` through the overlay."""
    model_dir = tiny_model_dir()
    nodes = start_network([
        _spec("hf", {"kind": "hf", "model_dir": str(model_dir), "model_name": HF_MODEL,
                     "capacity": 2, "threads": 1}, {"max_delegated": 4}),
        _spec("front", {"kind": "echo", "models": ["front"]}, {"target_load": 0.0}),
    ], workdir, ready_timeout=180)
    try:
        wait_for_mesh(nodes, timeout=90)
        yield nodes
    finally:
        stop_network(nodes)
