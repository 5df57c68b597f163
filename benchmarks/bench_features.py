"""Feature benchmark: the Ibis/DuckDB feature build vs the idiomatic pandas reference.

    python benchmarks/bench_features.py                      # 1M, 10M, 50M x 1 cutoff; 12 cutoffs on 10M
    python benchmarks/bench_features.py --sizes 1 --no-fifty # quick

Each measurement runs in its own process: compute time is measured inside it after imports (reading
the log included), whole-process time and peak RSS (ru_maxrss) from outside. Logs are generated
once into DuckDB stores under benchmarks/out/ (about 10k customers per 1M lines). Results of the
two implementations are compared (rtol 1e-9) wherever both ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ONE_CUTOFF = [date(2023, 7, 1)]
TWELVE = [date(2023, m, 1) for m in range(1, 13)]


def write_store(table, path: Path) -> Path:
    """A generated Arrow log as a store's ``transactions`` table (the canonical columns ingest writes), and its
    folds, as ingest writes them (``features.folded``)."""
    import duckdb

    from features.folded import write_folds

    tmp = path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    con.register("arrow_log", table)
    con.execute(
        "CREATE TABLE transactions AS SELECT customer_id, invoice_id, ts, quantity, unit_price, "
        "quantity * unit_price AS amount, quantity < 0 AS is_return, CAST(product_id AS VARCHAR) AS product_id, "
        "CAST(country AS VARCHAR) AS country, CAST(channel AS VARCHAR) AS channel FROM arrow_log ORDER BY ts"
    )
    t0 = time.perf_counter()
    write_folds(con)
    print(f"  folded in {time.perf_counter() - t0:.1f}s", flush=True)
    con.close()
    tmp.rename(path)
    return path


def make_store(million: int) -> Path:
    from features.synthetic import generate_lines

    path = OUT / f"log_{million}M.duckdb"
    if path.exists():
        return path
    OUT.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    table = generate_lines(million * 1_000_000, seed=million)
    gen = time.perf_counter() - t0
    write_store(table, path)
    print(f"  generated {table.num_rows:,} lines in {gen:.1f}s -> {path.name}", flush=True)
    return path


def child(impl: str, store: str, cutoffs: list[str], result: str) -> None:
    """Runs in a fresh process; prints one JSON line."""
    import pandas as pd

    from features.store import connect_store

    t0 = time.perf_counter()
    con = connect_store(Path(store), read_only=True)
    if impl == "engine":
        from features.build import build_features
        from features.transactions import TransactionLog

        frame = build_features(TransactionLog.on(con).source, [date.fromisoformat(c) for c in cutoffs])
    else:
        sys.path.insert(0, str(HERE.parent / "tests"))  # the independent pandas reference the tests check
        from pandas_reference import reference_features

        cols = "customer_id, invoice_id, ts, quantity, amount, is_return, product_id, country"
        log = con.execute(f"SELECT {cols} FROM transactions").df()
        for c in ("customer_id", "invoice_id", "product_id", "country"):
            log[c] = log[c].astype("category") if c != "invoice_id" else log[c]
        frame = pd.concat([reference_features(log, pd.Timestamp(c)) for c in cutoffs], ignore_index=True)
        frame["customer_id"] = frame["customer_id"].astype(str)
    compute = time.perf_counter() - t0
    frame.to_parquet(result)
    print(json.dumps({"compute_s": compute, "rows": len(frame)}))


def measure(impl: str, store: Path, cutoffs: list[date], tag: str) -> dict:
    result = OUT / f"result_{tag}_{impl}.parquet"
    cmd = [sys.executable, __file__, "--child", impl, str(store), str(result), *[c.isoformat() for c in cutoffs]]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    output = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"{impl} on {tag} failed (status {status})")
    stats = json.loads(output.strip().splitlines()[-1])
    return {**stats, "process_s": wall, "peak_mb": usage.ru_maxrss / 1024, "result": result}


def compare(a: Path, b: Path) -> str:
    import pandas as pd

    x = pd.read_parquet(a).drop(columns=["main_channel"], errors="ignore")
    y = pd.read_parquet(b)
    for frame in (x, y):
        frame["as_of"] = frame["as_of"].astype("datetime64[ns]")
        for c in ("customer_id", "main_country"):
            frame[c] = frame[c].astype(str)
    key = ["as_of", "customer_id"]
    x, y = x.sort_values(key).reset_index(drop=True), y.sort_values(key).reset_index(drop=True)[x.columns]
    pd.testing.assert_frame_equal(x, y, check_dtype=False, rtol=1e-9, atol=1e-9)
    return "match"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,50", help="log sizes in millions of lines, one cutoff each")
    parser.add_argument("--twelve", type=int, default=10, help="size (M lines) for the 12-cutoff run; 0 to skip")
    parser.add_argument(
        "--skip-pandas-above", type=int, default=50, help="skip the pandas reference above this size (M)"
    )
    args = parser.parse_args()
    runs = [(int(s), ONE_CUTOFF, f"{s}M_x1") for s in args.sizes.split(",")]
    if args.twelve:
        runs.append((args.twelve, TWELVE, f"{args.twelve}M_x12"))
    rows = []
    for million, cutoffs, tag in runs:
        # Generate in a separate process: a child forked from a big parent inherits its peak RSS.
        subprocess.run([sys.executable, __file__, "--make-store", str(million)], check=True)
        store = OUT / f"log_{million}M.duckdb"
        engine = measure("engine", store, cutoffs, tag)
        line = {"run": tag, "engine": engine}
        if million <= args.skip_pandas_above:
            ref = measure("pandas", store, cutoffs, tag)
            line["pandas"] = ref
            line["agreement"] = compare(engine["result"], ref["result"])
        rows.append(line)
        print(_row(line), flush=True)
    print(
        "\n| run | rows out | engine compute s | engine process s | engine peak MB | pandas compute s | pandas process s | pandas peak MB | speed-up (compute) | results |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for line in rows:
        print(_row(line))


def _row(line: dict) -> str:
    e, p = line["engine"], line.get("pandas")
    cells = [line["run"], f"{e['rows']:,}", f"{e['compute_s']:.2f}", f"{e['process_s']:.2f}", f"{e['peak_mb']:.0f}"]
    if p:
        cells += [
            f"{p['compute_s']:.2f}",
            f"{p['process_s']:.2f}",
            f"{p['peak_mb']:.0f}",
            f"{p['compute_s'] / e['compute_s']:.1f}x",
            line["agreement"],
        ]
    else:
        cells += ["-", "-", "-", "-", "-"]
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--make-store":
        make_store(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[5:], sys.argv[4])
    else:
        main()
