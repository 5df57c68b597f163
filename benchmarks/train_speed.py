"""How long `train` takes on a generated log of a given size: both tasks, a profile, per family.

    python benchmarks/train_speed.py                          # 25,000 customers, default profile
    python benchmarks/train_speed.py --customers 25000 --profile quick

The log comes from the project's own generator (two years, BG/NBD-like behaviour). Prints the wall time
per task and the progress lines with the time each was printed (families run side by side: each says how long it
took on its own), as Markdown.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=25_000)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--tasks", nargs="+", default=["churn", "purchase"])
    parser.add_argument("--models", nargs="+", default=None, help="learner families (default: the config's)")
    parser.add_argument("--baselines", nargs="+", default=None, help="baselines (default: the config's)")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "train_speed")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from features.contract import load_mapping
    from features.sources import Source
    from features.store import store_path
    from features.synthetic import SyntheticConfig, generate
    from features.transactions import ingest_into_store, open_store_log
    from models.registry import configure_tracking
    from training.config import load_config
    from training.train import train_task

    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    table = generate(SyntheticConfig(n_customers=args.customers, seed=3))
    pq.write_table(table, args.out / "log.parquet")
    report = ingest_into_store(store_path(args.out), Source(args.out / "log.parquet"), load_mapping("canonical"))
    print(f"{args.customers:,} customers, {table.num_rows:,} lines ({report.accepted_rows:,} accepted)")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    configure_tracking(args.out)
    cfg = load_config(profile=args.profile, models=args.models, baselines=args.baselines)
    total = 0.0
    with open_store_log(store_path(args.out)) as log:
        for task in args.tasks:
            stamps = []
            t0 = time.perf_counter()
            result = train_task(log, task, cfg, progress=lambda m, s=stamps: s.append((time.perf_counter(), m)))
            seconds = time.perf_counter() - t0
            total += seconds
            print(f"\n## {task}: {seconds:.0f} s ({result.plan})\n")
            print("| progress line | seconds into the task |\n|---|---|")
            for at, message in stamps:
                print(f"| {message} | {at - t0:.0f} |")
    print(f"\nTotal training time, {', '.join(args.tasks)}: {total:.0f} s")


if __name__ == "__main__":
    main()
