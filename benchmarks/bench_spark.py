"""Spark local[2] vs DuckDB on one machine: features (one cutoff) and batch scoring, 10M and 50M lines.

    python benchmarks/bench_spark.py                # 10M and 50M lines
    python benchmarks/bench_spark.py --sizes 10

Uses the generated stores of bench_features.py (benchmarks/out/log_<N>M.duckdb), exported once to
Parquet for Spark, and the LightGBM champions bench_scoring.py registers. Each measurement runs in a
fresh process. Peak memory: the Python process's VmHWM and, for Spark, the driver JVM's VmHWM
(driver memory 1 GB). Spark writes its output as Parquet; nothing is collected to the driver but the
segment reference (six numbers a customer).
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
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
OUT = HERE / "out"
CUTOFF = date(2023, 7, 1)


def _hwm_mb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        return round(next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024)


def parquet_for(million: int) -> Path:
    import duckdb
    from bench_features import make_store

    path = OUT / f"tx_{million}M.parquet"
    if not path.exists():
        con = duckdb.connect(str(make_store(million)), read_only=True)
        con.execute(f"COPY transactions TO '{path}' (FORMAT parquet)")
        con.close()
    return path


def child(engine: str, task: str, million: int) -> None:
    from models.registry import configure_tracking
    from serving.predictor import load_models

    configure_tracking(OUT / "scoring")
    models = load_models() if task == "score" else None
    t0 = time.perf_counter()
    extra = {}
    if engine == "spark":
        from features.spark import open_spark_log, spark_session, write_spark_features
        from serving.spark_scoring import score_on_spark

        spark = spark_session("local[2]")
        log = open_spark_log(parquet_for(million), spark)
        target = OUT / f"spark_{task}_{million}M"
        if task == "features":
            write_spark_features(log, [CUTOFF], target, with_labels=False)
        else:
            extra = score_on_spark(log, CUTOFF, models, target, reasons_share=0.1)
        seconds = time.perf_counter() - t0
        jvm = _hwm_mb(spark.sparkContext._gateway.proc.pid)
    else:
        from bench_features import make_store

        from features.build import build_features
        from features.store import connect_store
        from features.transactions import TransactionLog
        from serving.predictor import score_customers

        con = connect_store(make_store(million), read_only=True)
        log = TransactionLog.on(con)
        if task == "features":
            frame = build_features(log.table, [CUTOFF])
            frame.to_parquet(OUT / f"duckdb_features_{million}M.parquet")
        else:
            frame = score_customers(log, CUTOFF, models, reasons_share=0.1)
            frame.to_parquet(OUT / f"duckdb_scores_{million}M.parquet")
            extra = {"customers": len(frame)}
        seconds = time.perf_counter() - t0
        jvm = None
    print(
        json.dumps(
            {
                "engine": engine,
                "task": task,
                "million_lines": million,
                "seconds": round(seconds, 1),
                "python_peak_mb": _hwm_mb(),
                "jvm_peak_mb": jvm,
                "customers": extra.get("customers"),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,50")
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    if not (OUT / "scoring" / "mlflow.db").exists():
        sys.exit("Run benchmarks/bench_scoring.py first (it registers the champions this benchmark scores with).")
    for million in map(int, args.sizes.split(",")):
        parquet_for(million)
        for task in ("features", "score"):
            for engine in ("duckdb", "spark"):
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", engine, task, str(million)], capture_output=True, text=True
                )
                line = (
                    proc.stdout.strip().splitlines()[-1]
                    if proc.returncode == 0
                    else json.dumps({"engine": engine, "task": task, "error": proc.stderr[-500:]})
                )
                print(line, flush=True)


if __name__ == "__main__":
    main()
