"""Batch-scoring benchmark: 1M+ eligible synthetic customers, features + 2 models + segments + clusters + reasons.

    python benchmarks/bench_scoring.py                   # 1.35M customers (~1M eligible), reasons for the top 10%
    python benchmarks/bench_scoring.py --customers 100000 # quick

Champions are trained (quick profile, LightGBM only, so the reasons are TreeSHAP) on a 50k-customer
log drawn from the same process, then ``serving.batch.run_batch`` scores the big store in a fresh
process: features, both models, segments, clusters, reasons for the top share, the ``scores`` table,
Parquet/CSV exports and the MLflow manifest, all included. Wall time and peak RSS are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
OUT = HERE / "out"


def store_for(customers: int, seed: int) -> Path:
    from bench_features import write_store

    from features.synthetic import SyntheticConfig, generate

    path = OUT / f"customers_{customers}.duckdb"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        t0 = time.perf_counter()
        table = generate(SyntheticConfig(n_customers=customers, lines_per_invoice=2.0, seed=seed))
        write_store(table, path)
        print(
            f"  generated {table.num_rows:,} lines for {customers:,} customers in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
    return path


def train(data_dir: Path) -> None:

    from features.store import connect_store
    from features.transactions import TransactionLog
    from models.registry import configure_tracking
    from training.config import load_config
    from training.train import train_task

    if (data_dir / "mlflow.db").exists():
        return
    configure_tracking(data_dir)
    con = connect_store(store_for(50_000, seed=7), read_only=True)
    log = TransactionLog.on(con)
    cfg = load_config(profile="quick", models=["lightgbm"], baselines=[], tuning={"n_trials": 3})
    for task in ("churn", "purchase"):
        print(f"  trained {task}: champion {train_task(log, task, cfg).champion}", flush=True)
    con.close()


def child(store: str, data_dir: str, share: float) -> None:

    from features.store import connect_store
    from features.transactions import TransactionLog
    from models.registry import configure_tracking
    from serving.batch import run_batch
    from serving.predictor import load_models

    configure_tracking(Path(data_dir))
    t0 = time.perf_counter()
    models = load_models()
    load_s = time.perf_counter() - t0
    con = connect_store(Path(store))
    result = run_batch(
        TransactionLog.on(con),
        models,
        Path(data_dir) / "exports",
        reasons_share=share,
    )
    con.close()
    m = result.manifest
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))  # reset at exec
    print(
        json.dumps(
            {
                "peak_rss_mb": round(peak / 1024),
                "load_models_s": load_s,
                "customers": m["rows"]["customers_scored"],
                "with_reasons": m["rows"]["customers_with_reasons"],
                "lines": m["rows"]["log_lines"],
                **m["timings_s"],
                "total_with_load_s": time.perf_counter() - t0,
                "families": {t: v["family"] for t, v in m["models"].items()},
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=1_350_000)
    parser.add_argument("--reasons-share", type=float, default=0.1)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], float(args.child[2]))
    data_dir = OUT / "scoring"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    train(data_dir)
    store = store_for(args.customers, seed=11)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(store), str(data_dir), str(args.reasons_share)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(process_wall_s=round(wall, 1))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
