"""Child process of test_ledger_crash.py: appends signed blocks to a LedgerStore forever.

Usage: ``python ledger_writer.py DB_PATH NETWORK AUTHOR_SEED_HEX REQUESTER_SEED_HEX``.
Prints ``START <height>`` once the store is loaded, then ``ACK <height>`` after each
``add_blocks`` returned (the block is durable). Each block carries the claims queued in the
store's pending table (a fresh one per block, persisted first, as a node does) and a Stake;
the pending entries are dropped in the block's own transaction.
"""

from __future__ import annotations

import hashlib
import sys
import time

from wwwserve_p2p.core.ledger import Claim, Genesis, Ledger, Stake, Ticket
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.ledger_store import LedgerStore


def main() -> int:
    path, network, author_hex, requester_hex = sys.argv[1:5]
    author, requester = Identity(bytes.fromhex(author_hex)), Identity(bytes.fromhex(requester_hex))
    # the author has an allocation of its own: claims of legacy per-ticket tickets are never
    # provable credit (payment channels), so each block's Stake needs credit from genesis
    genesis = Genesis(network, allocations=((requester.peer_id, 10**12), (author.peer_id, 10**12)))
    store = LedgerStore.open(path, genesis)
    ledger = Ledger(genesis)
    store.load_into(ledger)
    me = author.peer_id
    print(f"START {ledger.height(me)}", flush=True)
    while True:
        height = ledger.height(me) + 1
        now_ms = time.time_ns() // 1_000_000
        t = Ticket(genesis.network_id, f"{height}-{time.time_ns()}", requester.peer_id, me, 10_000,
                   now_ms + 3_600_000).signed(requester.sign)
        store.save_pending(f"claim:{t.hash}", Claim(t, hashlib.sha256(t.request_id.encode()).hexdigest(), 5_000))
        queued = store.pending()
        ok, bad = ledger.validate_own(me, now_ms, [e for _, e in queued])
        if bad:
            print(f"BAD {bad}", file=sys.stderr, flush=True)
            return 3
        block = ledger.next_block(me, now_ms, [*ok, Stake(1)], author.sign)
        result = ledger.add_block(block)
        if result.status != "applied":
            print(f"NOT APPLIED {result}", file=sys.stderr, flush=True)
            return 4
        store.add_blocks([block], drop_pending=[k for k, _ in queued])
        print(f"ACK {height}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
