"""Paired timing of `build_features` from two checkouts of the project on the same store, runs alternating, next to
a plain DuckDB SQL query of the core features over the same log as Parquet (`bench_cli.PLAIN_QUERY`).

    git worktree add /tmp/before <commit>
    python benchmarks/bench_features.py --make-store 10          # benchmarks/out/log_10M.duckdb (+ its folds)
    python benchmarks/bench_cli.py --sizes 10 --runs 1           # benchmarks/out/cli/log_10M.parquet, the same log
    python benchmarks/paired_features.py benchmarks/out/log_10M.duckdb /tmp/before . \
        --plain benchmarks/out/cli/log_10M.parquet

Each run is a fresh process; the figure is the compute time inside it (imports excluded). A checkout that reads
the store's folds (``TransactionLog.source``) builds from them; an older one folds the lines in every build. For
12 cutoffs the plain query runs once per cutoff (what it would take to build them by hand).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cli import PLAIN_QUERY  # noqa: E402

CHILD = r"""
import sys, time, json
from datetime import date
from pathlib import Path
from features.store import connect_store
from features.build import build_features
from features.transactions import TransactionLog
import features.build
cut = [date(2023, m, 1) for m in range(1, 13)] if sys.argv[2] == "12" else [date.fromisoformat(sys.argv[3])]
con = connect_store(Path(sys.argv[1]), read_only=True)
log = TransactionLog.on(con)
tx = getattr(log, "source", log.table)  # the store's folds, where the checkout reads them
t0 = time.perf_counter(); f = build_features(tx, cut); dt = time.perf_counter() - t0
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"s": dt, "peak_mb": peak, "rows": len(f), "cols": f.shape[1], "src": features.build.__file__}))
"""

PLAIN = r"""
import sys, time, json, duckdb
from datetime import date
cut = [date(2023, m, 1) for m in range(1, 13)] if sys.argv[2] == "12" else [date.fromisoformat(sys.argv[4])]
t0 = time.perf_counter()
for c in cut:
    duckdb.sql(sys.argv[3].format(log=sys.argv[1], as_of=c.isoformat(), out="/tmp/paired_plain.parquet"))
print(json.dumps({"s": time.perf_counter() - t0}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store")
    parser.add_argument(
        "trees", nargs=2, help="two checkouts; TREE=STORE runs that checkout on its own store (folded by its own code)"
    )
    parser.add_argument("--plain", help="the same log as Parquet, for the plain DuckDB query")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cutoffs", default="1,12")
    parser.add_argument(
        "--as-of", default="2023-07-01", help="the one-cutoff builds' cutoff (12 cutoffs: 2023's months)"
    )
    args = parser.parse_args()
    stores, trees = {}, {}
    for arg in args.trees:
        tree, _, own = arg.partition("=")
        name = Path(tree).resolve().name or tree
        trees[name], stores[name] = str(Path(tree).resolve()), str(Path(own or args.store).resolve())
    res = {}
    for n in args.cutoffs.split(","):
        for _ in range(args.runs):
            for name, tree in trees.items():
                env = dict(os.environ, PYTHONPATH=tree)
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, stores[name], n, args.as_of],
                    env=env,
                    capture_output=True,
                    text=True,
                    cwd=tree,
                )
                if out.returncode:
                    print(n, name, "FAILED:", out.stderr.strip().splitlines()[-1], flush=True)
                    continue
                line = json.loads(out.stdout.strip().splitlines()[-1])
                res.setdefault((n, name), []).append(line["s"])
                print(n, name, line, flush=True)
            if args.plain:
                cmd = [sys.executable, "-c", PLAIN, str(Path(args.plain).resolve()), n, PLAIN_QUERY, args.as_of]
                line = json.loads(
                    subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
                )
                res.setdefault((n, "plain DuckDB query"), []).append(line["s"])
                print(n, "plain", line, flush=True)
    for (n, name), v in res.items():
        print(f"{n} cutoff(s) | {name} | median {statistics.median(v):.2f} s | runs {', '.join(f'{x:.2f}' for x in v)}")


if __name__ == "__main__":
    main()
