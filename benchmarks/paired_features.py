"""Paired timing of `build_features` from two checkouts of the project on the same store, runs alternating.

    git worktree add /tmp/before <commit>
    python benchmarks/bench_features.py --make-store 10          # benchmarks/out/log_10M.duckdb
    python benchmarks/paired_features.py benchmarks/out/log_10M.duckdb /tmp/before .

Each run is a fresh process (imports excluded from the time); 1 cutoff and 12 monthly cutoffs, 3 runs each.
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

STORE = str(Path(sys.argv[1]).resolve())
TREES = {Path(t).resolve().name or t: str(Path(t).resolve()) for t in sys.argv[2:4]}
CHILD = r"""
import sys, time, json
from datetime import date
from pathlib import Path
import ibis
from features.store import connect_store
from features.build import build_features
import features.build
cut = [date(2023, m, 1) for m in range(1, 13)] if sys.argv[2] == "12" else [date(2023, 7, 1)]
con = connect_store(Path(sys.argv[1]), read_only=True)
tx = ibis.duckdb.from_connection(con).table("transactions")
t0 = time.perf_counter(); f = build_features(tx, cut); dt = time.perf_counter() - t0
print(json.dumps({"s": dt, "rows": len(f), "cols": f.shape[1], "src": features.build.__file__}))
"""
res = {}
for n in ("1", "12"):
    for _ in range(3):
        for name, tree in TREES.items():
            env = dict(os.environ, PYTHONPATH=tree)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, STORE, n], env=env, capture_output=True, text=True, cwd=tree
            )
            line = json.loads(out.stdout.strip().splitlines()[-1])
            res.setdefault((n, name), []).append(line["s"])
            print(n, name, line, flush=True)
for (n, name), v in res.items():
    print(f"{n} cutoff(s) | {name} | median {statistics.median(v):.2f} s | runs {', '.join(f'{x:.2f}' for x in v)}")
