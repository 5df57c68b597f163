"""Command-line start-up: `propensity --help` and the whole `propensity features` process, against plain references.

    python benchmarks/bench_cli.py                          # this checkout; 1M and 10M lines; 7 runs each
    python benchmarks/bench_cli.py --tree /tmp/before       # the same, with the code of another checkout
    python benchmarks/bench_cli.py --sizes 1 --runs 3       # quick

Every figure is the median wall time of fresh processes, measured from outside, in one run of this
script, next to its reference measured in the same run (this machine is shared: absolute times move):

- `propensity --help` against `python -c pass` (the interpreter's own start-up);
- `propensity features --as-of 2023-07-01 --no-labels` (the store's log, segments included, written
  to Parquet) against a plain DuckDB SQL query of the core RFM features over the same log as a
  Parquet file, written to Parquet, in one `python -c` process.

The commands run as `python -m propensity.cli` with `PYTHONPATH` at `--tree`, so that two checkouts
compare on equal terms. Logs are generated once under benchmarks/out/cli/ (about 10k customers per
1M lines) and ingested once per tree (ingest time printed, not part of the comparison).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "cli"
AS_OF = "2023-07-01"

# A plain query of the core features (population: a purchase in the 365 days before as_of), the kind
# of SQL an analyst writes by hand: what the whole feature process is compared with.
PLAIN_QUERY = """
COPY (
  WITH lines AS (
    SELECT customer_id, invoice_id, ts, quantity * unit_price AS amount, quantity < 0 AS is_return, product_id
    FROM read_parquet('{log}') WHERE ts < TIMESTAMP '{as_of}'
  ), invoices AS (
    SELECT customer_id, invoice_id, min(ts) AS ts, sum(amount) AS amount, bool_or(is_return) AS is_return
    FROM lines GROUP BY ALL
  ), per_customer AS (
    SELECT customer_id,
      date_diff('day', max(ts) FILTER (NOT is_return), TIMESTAMP '{as_of}') AS recency_days,
      date_diff('day', min(ts), TIMESTAMP '{as_of}') AS tenure_days,
      count(*) FILTER (NOT is_return) AS frequency,
      sum(amount) FILTER (NOT is_return) AS monetary,
      avg(amount) FILTER (NOT is_return) AS avg_order_value,
      count(*) FILTER (is_return) AS n_returns,
      -sum(amount) FILTER (is_return) AS returned_amount,
      count(*) FILTER (NOT is_return AND ts >= TIMESTAMP '{as_of}' - INTERVAL 30 DAY) AS invoices_30d,
      count(*) FILTER (NOT is_return AND ts >= TIMESTAMP '{as_of}' - INTERVAL 90 DAY) AS invoices_90d,
      count(*) FILTER (NOT is_return AND ts >= TIMESTAMP '{as_of}' - INTERVAL 180 DAY) AS invoices_180d,
      sum(amount) FILTER (NOT is_return AND ts >= TIMESTAMP '{as_of}' - INTERVAL 30 DAY) AS spend_30d,
      sum(amount) FILTER (NOT is_return AND ts >= TIMESTAMP '{as_of}' - INTERVAL 90 DAY) AS spend_90d,
      sum(amount) FILTER (NOT is_return AND ts >= TIMESTAMP '{as_of}' - INTERVAL 180 DAY) AS spend_180d,
      count(DISTINCT CAST(ts AS DATE)) FILTER (NOT is_return) AS purchase_days,
      date_diff('day', min(ts), max(ts)) / greatest(count(*) FILTER (NOT is_return) - 1, 1) AS mean_gap_days
    FROM invoices GROUP BY customer_id
  ), products AS (
    SELECT customer_id, count(DISTINCT product_id) AS distinct_products, count(*) AS n_lines
    FROM lines WHERE NOT is_return GROUP BY customer_id
  )
  SELECT * FROM per_customer JOIN products USING (customer_id)
  WHERE recency_days <= 365 ORDER BY customer_id
) TO '{out}' (FORMAT parquet)
"""


def median_seconds(command: list[str], runs: int, env: dict, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_log(million: int) -> Path:
    """A generated log written as canonical Parquet (the same file both sides read)."""
    path = OUT / f"log_{million}M.parquet"
    if not path.exists():
        import pyarrow.parquet as pq

        from features.synthetic import generate_lines

        OUT.mkdir(parents=True, exist_ok=True)
        table = generate_lines(million * 1_000_000, seed=million)
        pq.write_table(table, path.with_suffix(".partial"))
        path.with_suffix(".partial").rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="the checkout whose CLI is measured")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10], help="log sizes in millions of lines")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tree = args.tree.resolve()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cli = [sys.executable, "-m", "propensity.cli"]
    tag = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True).stdout
    print(f"tree {tree} at {tag.strip()}; medians of {args.runs} fresh processes")

    python = median_seconds([sys.executable, "-c", "pass"], args.runs, env, tree)
    helps = median_seconds([*cli, "--help"], args.runs, env, tree)
    print(f"| `python -c pass` | {python:.3f} s |\n| `propensity --help` | {helps:.3f} s ({helps / python:.1f}x) |")

    for million in args.sizes:
        log = make_log(million)
        data_dir = OUT / f"data_{million}M_{tag.strip()}"
        if not (data_dir / "propensity.duckdb").exists():
            t0 = time.perf_counter()
            subprocess.run([*cli, "ingest", str(log), "--data-dir", str(data_dir)], env=env, cwd=tree, check=True)
            size = (data_dir / "propensity.duckdb").stat().st_size / 2**20
            print(f"  ingested {log.name} in {time.perf_counter() - t0:.1f}s; store {size:,.0f} MB", flush=True)
        out = OUT / f"features_{million}M.parquet"
        features = [*cli, "features", "--as-of", AS_OF, "--no-labels", "--out", str(out), "--data-dir", str(data_dir)]
        query = PLAIN_QUERY.format(log=log, as_of=AS_OF, out=OUT / f"plain_{million}M.parquet")
        plain = [sys.executable, "-c", f"import duckdb; duckdb.sql({query!r})"]
        t_plain = median_seconds(plain, args.runs, env, tree)
        t_features = median_seconds(features, args.runs, env, tree)
        print(
            f"| {million}M lines | `propensity features` {t_features:.2f} s | plain DuckDB query {t_plain:.2f} s | "
            f"ratio {t_features / t_plain:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
