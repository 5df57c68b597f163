"""How fast could a whole `propensity features --as-of D --no-labels` process be? A stripped floor, side by side with
the real command and the plain DuckDB query of `bench_cli.py` (issue 18's figure), in one run, alternating.

    python benchmarks/bench_cli.py --sizes 10 --runs 1           # the 10M log, and its store (data_10M_<commit>)
    python benchmarks/floor_features_process.py benchmarks/out/cli/data_10M_<commit> --runs 5

The floor process imports only what any version of the command must (Typer, DuckDB, PyArrow, NumPy), and runs
the project's two compiled feature queries (captured once from `build_features`, so they are exactly the real
ones) straight on the store as one DuckDB `COPY` to Parquet, joined and with the customer ids put back. No Ibis,
no pandas, no segments, no configuration, no checks: not a command anyone should ship, only a bound on what
removing all of those could win.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_cli import AS_OF, OUT, PLAIN_QUERY  # noqa: E402

FLOOR = r"""
import sys, json, time
t0 = time.perf_counter()
import typer, duckdb, numpy, pyarrow
imported = time.perf_counter()
main, extra = json.load(open(sys.argv[2]))
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("CREATE TEMP TABLE propensity_build_cutoffs (as_of TIMESTAMP, as_of_day BIGINT, as_of_s BIGINT)")
day = int((numpy.datetime64(sys.argv[3]) - numpy.datetime64("1970-01-01")).astype(int))
con.execute("INSERT INTO propensity_build_cutoffs VALUES (?, ?, ?)", [sys.argv[3], day, day * 86400])
con.execute(
    f"COPY (WITH main AS ({main}), extra AS ({extra}) "
    "SELECT ids.customer_id, main.* EXCLUDE (customer_id), extra.* EXCLUDE (customer_id, as_of) "
    "FROM main LEFT JOIN extra USING (customer_id, as_of) JOIN folded_customers ids ON ids.customer_key = main.customer_id "
    f"ORDER BY ids.customer_key) TO '{sys.argv[4]}' (FORMAT parquet)"
)
done = time.perf_counter()
print(json.dumps({"imports": imported - t0, "query and write": done - imported}))
"""


def capture_queries(store: Path, target: Path) -> None:
    """The SQL of the two queries a one-cutoff build over this store runs (from this checkout's code)."""
    from datetime import date

    import features.build
    from features.build import build_features
    from features.store import connect_store
    from features.transactions import TransactionLog

    seen = []
    original = features.build.compiled

    def capture(parts, compile_):
        sql, schema = original(parts, compile_)
        seen.append(sql)
        return sql, schema

    features.build.compiled = capture
    con = connect_store(store, read_only=True)
    build_features(TransactionLog.on(con).source, [date.fromisoformat(AS_OF)])
    con.close()
    target.write_text(json.dumps(seen))


def wall(command: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="a data dir made by bench_cli.py (its store holds the folds)")
    parser.add_argument("--log", type=Path, default=OUT / "log_10M.parquet", help="the same log as Parquet")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    store = (args.data_dir / "propensity.duckdb").resolve()
    queries = OUT / "floor_queries.json"
    capture_queries(store, queries)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    commands = {
        "propensity features": [sys.executable, "-m", "propensity.cli", "features", "--as-of", AS_OF, "--no-labels"]
        + ["--out", str(OUT / "features_floor_cli.parquet"), "--data-dir", str(args.data_dir)],
        "floor process": [sys.executable, "-c", FLOOR, str(store), str(queries), AS_OF, str(OUT / "floor.parquet")],
        "plain query": [
            sys.executable,
            "-c",
            f"import duckdb; duckdb.sql({PLAIN_QUERY.format(log=args.log, as_of=AS_OF, out=OUT / 'plain.parquet')!r})",
        ],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    parts = []
    for _ in range(args.runs):
        for name, command in commands.items():
            seconds, out = wall(command, env)
            times[name].append(seconds)
            if name == "floor process":
                parts.append(json.loads(out.strip().splitlines()[-1]))
    plain = statistics.median(times["plain query"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} s | {plain / median:.2f}x the plain query's speed | runs {values} |")
    for key in ("imports", "query and write"):
        print(f"floor process, {key}: median {statistics.median(p[key] for p in parts):.3f} s")


if __name__ == "__main__":
    main()
