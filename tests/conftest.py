"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _benchmarks_on_path() -> None:
    """Make ``import harness`` work as it does for a benchmark run as a script."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))


@pytest.fixture(scope="module")
def bench(request):
    """The benchmark script named by the test module's ``SCRIPT``, imported as a module."""
    script = request.module.SCRIPT
    _benchmarks_on_path()
    spec = importlib.util.spec_from_file_location(f"{script.stem}_bench", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="session")
def harness():
    """``benchmarks/harness.py``, the helpers every benchmark shares."""
    _benchmarks_on_path()
    import harness as module

    return module


def _run_quick(script: str | Path, out: Path, *extra: str, timeout: float) -> None:
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture
def run_quick():
    """``run_quick(script, out, *extra, timeout=s)``: run ``benchmarks/<script> --quick --out <out>``
    as a user would, failing the test with its output on a non-zero exit."""
    return _run_quick
