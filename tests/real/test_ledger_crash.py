"""Crash safety of the ledger store with a real process killed by SIGKILL.

A child (``ledger_writer.py``) appends signed blocks through :class:`LedgerStore` and prints
``ACK <height>`` after each durable ``add_blocks``. The parent kills it at seeded random
moments, then checks that the store opens, every acknowledged height is there, the chain
links and every signature verifies (fresh core ``Ledger``, ``verified=False``), no queued
claim was both written into a block and left pending, and that the restarted child continues
from the stored tip without equivocating.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from wwwserve_p2p.core.ledger import Claim, Genesis, Ledger
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.ledger_store import LedgerStore

pytestmark = pytest.mark.real

WRITER = Path(__file__).with_name("ledger_writer.py")
NETWORK = "crash-test"
SEED = 20260321
ROUNDS = 10


class LineReader:
    """Lines from a trio ReceiveStream (the child's stdout)."""

    def __init__(self, stream: trio.abc.ReceiveStream):
        self._stream = stream
        self._buf = b""

    async def line(self) -> str | None:
        while b"\n" not in self._buf:
            data = await self._stream.receive_some(4096)
            if not data:
                return None
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()


def check_store(path: Path, genesis: Genesis, author: str, acked: int) -> int:
    """Every invariant after a crash; returns the stored tip height."""
    with LedgerStore.open(path, genesis) as store:
        blocks = list(store.iter_blocks())
        pending = store.pending()
        assert store.count_blocks() == len(blocks)
    heights = [b.height for b in blocks]
    assert heights == list(range(1, len(blocks) + 1)), "a gap or two blocks at one height (equivocation)"
    assert len(blocks) >= acked, f"acknowledged height {acked} lost (stored tip {len(blocks)})"
    assert all(b.author == author for b in blocks)
    prev = genesis.hash
    for b in blocks:
        assert b.prev_hash == prev
        prev = b.hash
    fresh = Ledger(genesis)
    for b in blocks:
        res = fresh.add_block(b)  # verified=False: every signature and rule checked again
        assert res.status == "applied", (b.height, res)
    assert fresh.height(author) == len(blocks)
    # at most the one claim queued after the last committed block is still pending, and it
    # is not in any block (pending drops commit with the block that includes them)
    assert len(pending) <= 1
    for _, e in pending:
        assert isinstance(e, Claim) and not fresh.is_claimed(e.ticket.hash)
    return len(blocks)


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path):
    rng = random.Random(SEED)
    author = Identity(hashlib.sha256(b"crash-author").digest())
    requester = Identity(hashlib.sha256(b"crash-requester").digest())
    genesis = Genesis(NETWORK, allocations=((requester.peer_id, 10**12), (author.peer_id, 10**12)))
    db = tmp_path / "ledger.sqlite"
    args = [sys.executable, str(WRITER), str(db), NETWORK, author.private_bytes.hex(), requester.private_bytes.hex()]
    acked = 0
    tip = 0
    with trio.fail_after(60):
        for rnd in range(ROUNDS):
            want = rng.randint(1, 12)
            jitter = rng.uniform(0.0, 0.03)
            with open(tmp_path / f"stderr-{rnd}.txt", "wb") as err:
                proc = await trio.lowlevel.open_process(args, stdout=subprocess.PIPE, stderr=err)
            try:
                lines = LineReader(proc.stdout)
                first = await lines.line()
                assert first == f"START {tip}", (first, (tmp_path / f"stderr-{rnd}.txt").read_text())
                seen = 0
                while seen < want:
                    line = await lines.line()
                    assert line is not None, (tmp_path / f"stderr-{rnd}.txt").read_text()
                    assert line == f"ACK {tip + seen + 1}"
                    seen += 1
                    acked = tip + seen
                # kill at a random moment after the wanted ACK (randomised timing, not a wait)
                await trio.sleep(jitter)
            finally:
                proc.kill()  # SIGKILL
                await proc.wait()
            assert proc.returncode == -9, (tmp_path / f"stderr-{rnd}.txt").read_text()
            # ACKs printed between our last read and the kill count too
            while (line := await lines.line()) is not None:
                if line.startswith("ACK "):
                    acked = int(line.split()[1])
            await proc.stdout.aclose()
            new_tip = await trio.to_thread.run_sync(check_store, db, genesis, author.peer_id, acked)
            assert new_tip >= tip + want
            tip = new_tip
    assert tip >= ROUNDS
