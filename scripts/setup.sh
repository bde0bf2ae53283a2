#!/usr/bin/env bash
# Set up everything wwwserve_p2p needs in ./.venv: system GMP headers (py-libp2p's fastecdsa
# builds from source), CPU-only torch 2.13.0 (installed first, so nothing pulls CUDA wheels),
# then this package with its hf and dev extras. Idempotent: re-running is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! [ -e /usr/include/gmp.h ] && ! [ -e "/usr/include/$(uname -m)-linux-gnu/gmp.h" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing libgmp-dev (needed to build fastecdsa for py-libp2p)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgmp-dev >/dev/null
  else
    echo "setup: libgmp-dev is missing; run: sudo apt-get install libgmp-dev" >&2
    exit 1
  fi
fi

# Optional: headless Chromium + its WebDriver for the dashboard's browser test
# (tests/real/test_dashboard_browser.py skips without them). Never fails the setup.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium + chromium-driver (for the dashboard browser test)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
      || echo "setup: chromium not installed (optional; the dashboard browser test will skip)" >&2
  else
    echo "setup: chromium/chromedriver missing (optional, for the dashboard browser test: sudo apt-get install chromium chromium-driver)" >&2
  fi
fi

# Optional: the WAN/NAT lab (benchmarks/netlab.py, tests/real/test_netlab_reach.py; root only):
# iptables for NAT/NFQUEUE, libnetfilter-queue headers for the netfilterqueue package (below).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
   && { ! command -v iptables >/dev/null 2>&1 || ! [ -e /usr/include/libnetfilter_queue/libnetfilter_queue.h ]; }; then
  echo "setup: installing iptables + libnetfilter-queue-dev (for the WAN/NAT lab)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables libnetfilter-queue-dev >/dev/null; } \
    || echo "setup: WAN/NAT lab packages not installed (optional; its tests skip)" >&2
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[hf,dev]"
if [ -e /usr/include/libnetfilter_queue/libnetfilter_queue.h ]; then
  .venv/bin/python -m pip install -q -e ".[lab]" \
    || echo "setup: netfilterqueue not installed (optional, WAN/NAT lab; its tests skip)" >&2
fi

# Optional: the js-libp2p baseline of benchmarks/gossip_latency.py (Node.js >= 20, exact versions
# from its lockfile; ~2-10 s). Never fails the setup: the benchmark skips js and says how to fix it.
JS=benchmarks/js_gossip
if command -v npm >/dev/null 2>&1 && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null; then
  if ! [ "$JS/node_modules/.package-lock.json" -nt "$JS/package-lock.json" ]; then
    timeout 60 npm ci --prefix "$JS" --no-audit --no-fund --loglevel=error >/dev/null 2>&1 \
      || echo "setup: js-libp2p baseline not installed (optional; later: npm ci --prefix $JS)" >&2
  fi
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch, libp2p, transformers; print("torch", torch.__version__, "| transformers", transformers.__version__)'))"
