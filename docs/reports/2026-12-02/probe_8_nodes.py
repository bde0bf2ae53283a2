import sys, time, tempfile, json
from pathlib import Path
sys.path.insert(0, "benchmarks")
import openai
from wwwserve_p2p.localnet import NodeSpec, start_network, stop_network, wait_for_mesh
n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
def spec(name, models, delay):
    return NodeSpec(name, {"node": {"network": "probe3", "log_level": "DEBUG"}, "net": json.loads(__import__("os").environ.get("NETCFG", "{}")), "status": {"interval": 1.0},
                           "policy": {"max_delegated": 16},
                           "executor": {"kind": "echo", "models": models, "capacity": 8, "delay_per_token": delay}})
work = Path(tempfile.mkdtemp(prefix="probe3-", dir="/tmp/issue13"))
print(work, flush=True)
nodes = start_network([spec("n0", ["front"], 0)] + [spec(f"n{i}", ["m"], 0.02) for i in range(1, n)], work)
try:
    wait_for_mesh([nodes[0]], timeout=180, expect=n - 1)
    c = openai.OpenAI(base_url=nodes[0].api_url + "/v1", api_key="x", max_retries=0, timeout=120)
    for i in range(6):
        t0 = time.perf_counter()
        try:
            r = c.chat.completions.create(model="m", max_tokens=4, messages=[{"role": "user", "content": "a b c d"}])
            print(i, "ok", round(time.perf_counter() - t0, 3), flush=True)
        except Exception as e:
            print(i, "ERR", round(time.perf_counter() - t0, 3), repr(e)[:200], flush=True)
finally:
    stop_network(nodes)
