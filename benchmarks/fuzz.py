#!/usr/bin/env python3
"""Long fuzz run of every wire decoder (issue 15): ``--n`` inputs per decoder (default 1M), half
random bytes, half mutations (bit flips, truncations, insertions, overwrites) of valid
encodings, from a seeded RNG. Counts outcomes per decoder: decoded, MalformedMessage, and any
other exception (a bug; the first few are printed with the input). JSON + Markdown under --out.

    python benchmarks/fuzz.py                 # 1M inputs per decoder
    python benchmarks/fuzz.py --n 20000       # quick
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

import harness

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "wire"))
from test_decoder_fuzz import DECODERS, SEED  # noqa: E402

from wwwserve_p2p.errors import MalformedMessage  # noqa: E402


def inputs(rng: random.Random, n: int):
    seed = bytearray(SEED)
    for i in range(n):
        if i % 2 == 0:
            yield rng.randbytes(rng.randrange(0, 300))
        else:
            buf = bytearray(seed)
            for _ in range(rng.randrange(1, 6)):
                k, p = rng.randrange(4), rng.randrange(len(buf) or 1)
                if not buf:
                    buf.append(rng.randrange(256))
                elif k == 0:
                    buf[p] ^= 1 << rng.randrange(8)
                elif k == 1:
                    del buf[p:]
                elif k == 2:
                    buf[p:p] = rng.randbytes(rng.randrange(1, 8))
                else:
                    buf[p] = rng.randrange(256)
            yield bytes(buf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out", default="results/fuzz")
    args = ap.parse_args()
    result = {"n_per_decoder": args.n, "seed": args.seed, "decoders": {}}
    for name, decode in DECODERS.items():
        c: Counter[str] = Counter()
        t0 = time.perf_counter()
        for data in inputs(random.Random(f"{args.seed}:{name}"), args.n):
            try:
                decode(data)
                c["decoded"] += 1
            except MalformedMessage:
                c["malformed"] += 1
            except Exception as exc:  # a decoder bug: count and show a few
                c[f"crash:{type(exc).__name__}"] += 1
                if sum(v for k, v in c.items() if k.startswith("crash")) <= 3:
                    print(f"{name}: {type(exc).__name__}: {exc!r} on {data[:80].hex()}", flush=True)
        c["seconds"] = round(time.perf_counter() - t0, 1)
        result["decoders"][name] = dict(c)
        print(name, dict(c), flush=True)
    crashes = sum(v for d in result["decoders"].values() for k, v in d.items() if k.startswith("crash"))
    result["crashes"] = crashes
    md = ["| decoder | inputs | decoded | MalformedMessage | other exceptions | s |", "|---|---|---|---|---|---|"]
    for name, d in result["decoders"].items():
        other = sum(v for k, v in d.items() if k.startswith("crash"))
        md.append(f"| {name} | {args.n} | {d.get('decoded', 0)} | {d.get('malformed', 0)} | {other} | {d['seconds']} |")
    print("\n".join(md))
    harness.write_report(args.out, "fuzz", result, md)
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
