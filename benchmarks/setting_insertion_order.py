"""DuckDB's preserve_insertion_order on the feature build: the same store and code, the setting on vs off, alternating.

python benchmarks/bench_features.py --make-store 10          # benchmarks/out/log_10M.duckdb
python benchmarks/setting_insertion_order.py benchmarks/out/log_10M.duckdb
"""

import json
import os
import statistics
import subprocess
import sys

STORE = sys.argv[1]
CHILD = r"""
import sys, time, json, resource
from datetime import date
from pathlib import Path
import ibis
from features.store import connect_store
from features.build import build_features
cut = [date(2023, m, 1) for m in range(1, 13)] if sys.argv[2] == "12" else [date(2023, 7, 1)]
con = connect_store(Path(sys.argv[1]), read_only=True)
if sys.argv[3] == "off":
    con.execute("SET preserve_insertion_order = false")
tx = ibis.duckdb.from_connection(con).table("transactions")
t0 = time.perf_counter(); f = build_features(tx, cut); dt = time.perf_counter() - t0
print(json.dumps({"s": dt, "rows": len(f), "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""
res = {}
for n in ("1", "12"):
    for _ in range(3):
        for mode in ("on", "off"):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, STORE, n, mode],
                capture_output=True,
                text=True,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            )
            lines = out.stdout.strip().splitlines()
            v = json.loads(lines[-1]) if lines else {"s": float("nan"), "peak": -1}
            res.setdefault((n, mode), []).append((v["s"], v["peak"]))
            print(n, mode, v, flush=True)
for (n, mode), v in res.items():
    print(
        f"{n} | preserve_insertion_order {mode} | median {statistics.median(x for x, _ in v):.2f} s | peak MB {max(p for _, p in v)}"
    )
