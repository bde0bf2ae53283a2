"""Shared fixtures."""

from __future__ import annotations

import importlib.util
import sys

import pytest


@pytest.fixture(scope="module")
def bench(request):
    """The benchmark script named by the test module's ``SCRIPT``, imported as a module."""
    script = request.module.SCRIPT
    spec = importlib.util.spec_from_file_location(f"{script.stem}_bench", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
