"""Fixtures of the executor tests: a tiny trained model and a fake OpenAI-compatible server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: shared/data beside the checkout (as CI lays it out), or $WWWSERVE_DATA_DIR
DATA_DIR = Path(os.environ.get("WWWSERVE_DATA_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "data"))
SHAKESPEARE = DATA_DIR / "tinyshakespeare" / "input.txt"


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """The first ~200 kB of tinyshakespeare (or a synthetic text if it is absent)."""
    out = tmp_path_factory.mktemp("corpus") / "input.txt"
    if SHAKESPEARE.is_file():
        out.write_text(SHAKESPEARE.read_text(encoding="utf-8")[:200_000], encoding="utf-8")
    else:  # keep the tests runnable without the shared data directory
        lines = [f"CITIZEN {i % 7}:\nSpeak, speak, good friend number {i}, and hear me.\n"
                 for i in range(4000)]
        out.write_text("\n".join(lines), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, small_corpus) -> Path:
    """A 'tiny' model trained for a few steps through the real training code."""
    pytest.importorskip("torch")
    from wwwserve_p2p.executors.training import train_model

    out = tmp_path_factory.mktemp("models") / "tiny-test"
    return train_model(small_corpus, out, "tiny", steps=40, seed=0, progress=False)
