"""The curated public API of ``wwwserve_p2p`` and README's "Python API" section, which is run
as written (so README and code cannot drift)."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import wwwserve_p2p
from wwwserve_p2p import ConfigError, NodeConfig

README = Path(__file__).resolve().parent.parent / "README.md"
HEAVY = ("libp2p", "torch", "transformers", "multiaddr", "google")


def python_api_blocks() -> list[str]:
    """The ```python code blocks of README's "## Python API" section, in order."""
    text = README.read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run_python(code: str, cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """README's first example run as written (in an empty working directory), with any HTTP
    server refused."""
    example = python_api_blocks()[0]
    guard = ("import wwwserve_p2p.api.server as s\n"
             "async def _no_http(*a, **k): raise AssertionError('an HTTP server was started')\n"
             "s.serve_api = _no_http\n")
    cwd = tmp_path_factory.mktemp("readme-example")
    return run_python(guard + example, cwd=cwd), cwd


def test_readme_example_generates_an_answer_without_http(readme_run) -> None:
    example = python_api_blocks()[0]
    assert len(example.strip().splitlines()) < 30
    assert "from wwwserve_p2p import" in example and "wwwserve_p2p." not in example
    proc, _ = readme_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello from an embedded node"


def test_readme_example_writes_nothing_to_disk(readme_run) -> None:
    proc, cwd = readme_run
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in cwd.rglob("*")) == [], "the example wrote files to disk"


def test_readme_create_app_snippet_uses_real_names() -> None:
    snippet = python_api_blocks()[1]
    tree = compile(snippet, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST)
    imported = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = __import__(node.module, fromlist=["_"])
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
                imported += 1
    assert imported >= 5
    assert "create_app(node)" in snippet and "Mount(" in snippet


def test_import_is_light() -> None:
    code = ("import sys, wwwserve_p2p\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n")
    proc = run_python(code, cwd=Path.cwd(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_public_name_resolves_without_heavy_imports() -> None:
    code = ("import sys, wwwserve_p2p as w\n"
            "for n in w.__all__:\n"
            "    if n != 'HFExecutor': getattr(w, n)\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'transformers'}}))\n")
    proc = run_python(code, cwd=Path.cwd(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_public_api() -> None:
    expected = {"open_node", "Node", "NodeConfig", "NodeSection", "NetSection", "StatusSection",
                "OffloadPolicy", "DelegationSection", "ApiSection", "LedgerSection", "DuelSection",
                "load_config", "load_genesis", "Executor", "EchoExecutor", "GenerationRequest",
                "GenerationChunk", "RoutedChunk", "Usage", "ChatMessage", "ModelCard", "create_app",
                "WwwServeError", "ConfigError", "ModelNotFound", "NoExecutorAvailable",
                "RequestTimeout", "__version__"}
    assert expected <= set(wwwserve_p2p.__all__)
    assert expected <= set(dir(wwwserve_p2p))
    from wwwserve_p2p.api import create_app
    from wwwserve_p2p.executors import EchoExecutor
    from wwwserve_p2p.node import Node, open_node
    assert wwwserve_p2p.create_app is create_app
    assert wwwserve_p2p.EchoExecutor is EchoExecutor
    assert wwwserve_p2p.open_node is open_node and wwwserve_p2p.Node is Node
    assert wwwserve_p2p.__version__ == importlib.metadata.version("wwwserve_p2p")
    assert issubclass(wwwserve_p2p.ConfigError, wwwserve_p2p.WwwServeError)
    with pytest.raises(AttributeError):
        wwwserve_p2p.no_such_name  # noqa: B018


# ----------------------------------------------------------------------------- config building


def test_embedded_config() -> None:
    c = NodeConfig.embedded()
    assert c.api.enabled is False and c.node.data_dir == ""
    assert c.net.listen == ("/ip4/127.0.0.1/tcp/0",) and c.net.bootstrap == ()
    boot = "/ip4/127.0.0.1/tcp/4000/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
    c = NodeConfig.embedded(network="mynet", bootstrap=boot, http=True, seed=7, data_dir="d",
                            policy={"target_load": 0.8, "stake": 0}, executor={"kind": "echo", "capacity": 2})
    assert c.net.bootstrap == (boot,) and c.node.network == "mynet" and c.node.seed == 7
    assert c.api.enabled and c.api.port == 0 and c.node.data_dir == "d"
    assert c.policy.target_load == 0.8 and c.policy.stake == 0 and c.policy.max_delegated == 4
    assert c.executor == {"kind": "echo", "capacity": 2}


def test_with_values_and_from_dict() -> None:
    base = NodeConfig.embedded()
    c = base.with_values(duel={"duel_rate": 0.5}, net={"listen": "/ip4/127.0.0.1/tcp/0"},
                         executor={"capacity": 3}, status={"interval": 1})
    assert c.duel.duel_rate == 0.5 and c.duel.judges_k == 3
    assert c.status.interval == 1.0 and isinstance(c.status.interval, float)
    assert c.executor == {"kind": "echo", "capacity": 3} and c.api == base.api
    assert base.duel.duel_rate == 0.0  # frozen: a copy
    assert c.with_values(executor={"kind": "random"}).executor == {"kind": "random"}
    from wwwserve_p2p import ApiSection
    assert c.with_values(api=ApiSection(port=9)).api.port == 9
    assert NodeConfig.from_dict({"api": {"port": 0}}) == NodeConfig().with_values(api={"port": 0})


@pytest.mark.parametrize("sections", [
    {"policy": {"target_load": -1}},
    {"policy": {"nope": 1}},
    {"policy": {"max_delegated": True}},
    {"api": {"port": "80"}},
    {"node": {"seed": "x"}},
    {"nowhere": {}},
    {"status": {"interval": 0}},
    {"delegation": {"max_attempts": 0}},
    {"net": {"bootstrap": ["not a multiaddr"]}},
    {"executor": {"capacity": 1, "kind": None}},
    {"api": 5},
])
def test_config_builders_raise_config_error(sections: dict) -> None:
    with pytest.raises(ConfigError):
        NodeConfig.embedded().with_values(**sections)
    with pytest.raises(ConfigError):
        NodeConfig.embedded(**sections)


def test_core_config_classes_raise_config_error_which_is_a_value_error() -> None:
    from wwwserve_p2p.core.peers import PeerTableConfig
    from wwwserve_p2p.core.policy import OffloadPolicy
    for make in (lambda: OffloadPolicy(accept_frequency=2), lambda: OffloadPolicy(selection="x"),
                 lambda: PeerTableConfig(status_interval=0), lambda: PeerTableConfig(suspect_after=9)):
        with pytest.raises(ConfigError):
            make()
    assert issubclass(ConfigError, ValueError)
