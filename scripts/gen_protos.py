#!/usr/bin/env python3
"""Regenerate src/wwwserve_p2p/_pb/ from protos/ (committed output; run after editing a .proto).

Uses the protoc bundled in grpcio-tools (pinned in setup.cfg's ``dev`` extra) so the output is
reproducible. Usage: ``python scripts/gen_protos.py`` from the repository root.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "src" / "wwwserve_p2p" / "_pb"


def main() -> int:
    files = sorted(PROTOS.rglob("*.proto"))
    tmp = OUT / "_gen"
    tmp.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTOS}", f"--python_out={tmp}", f"--pyi_out={tmp}"] + [str(f) for f in files]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    for gen in sorted(tmp.rglob("*_pb2.py*")):
        # flatten wwwserve/v1/x_pb2.py -> _pb/x_pb2.py and make imports package-relative
        text = gen.read_text()
        text = re.sub(r"^from wwwserve\.v1 import (\w+) as", r"from . import \1 as", text, flags=re.M)
        (OUT / gen.name).write_text(text)
        print(f"wrote {(OUT / gen.name).relative_to(ROOT)}")
    for p in sorted(tmp.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    tmp.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
