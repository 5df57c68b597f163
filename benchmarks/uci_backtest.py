"""The backtest protocol on the real UCI Online Retail log: the leaderboards, per-origin tables, margins over
the baselines, ECE and the realised rate per decile of the calibrated champion, and the time it took.

    python benchmarks/uci_backtest.py                       # default profile, both tasks
    python benchmarks/uci_backtest.py --profile quick
    python benchmarks/uci_backtest.py --until 2011-09-10    # the log cut short (a nine-month log)
    python benchmarks/uci_backtest.py --tasks value         # the value task (net spend in 90 days)

Needs ../shared/data/online_retail. Everything goes to benchmarks/out/uci_backtest/ (replaced each run);
the tables print as Markdown for BENCHMARKS.md.
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
SHARED_RETAIL = HERE.parent.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"


def markdown(frame) -> str:
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def deciles(y, p):
    import numpy as np
    import pandas as pd

    order = pd.Series(p).rank(method="first", ascending=False).to_numpy()
    decile = np.ceil(order / len(p) * 10).astype(int)
    frame = pd.DataFrame({"decile": decile, "p": p, "y": y})
    return (
        frame.groupby("decile").agg(customers=("y", "size"), mean_p=("p", "mean"), realised=("y", "mean")).reset_index()
    )


def uci_store(out: Path, until: str | None = None) -> Path:
    """A fresh store under ``out`` holding the UCI log (only lines before ``until`` when given); its path."""
    import duckdb

    from features.contract import load_mapping
    from features.sources import Source
    from features.store import store_path
    from features.transactions import ingest_into_store

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    source = SHARED_RETAIL
    if until:
        source = out / "cut.parquet"
        duckdb.sql(f"COPY (SELECT * FROM '{SHARED_RETAIL}' WHERE InvoiceDate < TIMESTAMP '{until}') TO '{source}'")
    ingest_into_store(store_path(out), Source(source), load_mapping("online_retail"))
    return store_path(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default=None, help="training profile (default: the default config)")
    parser.add_argument("--tasks", nargs="+", default=["churn", "purchase"])
    parser.add_argument("--until", default=None, help="keep only lines before this date")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "uci_backtest")
    args = parser.parse_args()

    from features.store import store_path
    from features.transactions import open_store_log
    from models.registry import configure_tracking
    from training.config import load_config
    from training.train import train_task

    uci_store(args.out, args.until)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    configure_tracking(args.out)
    cfg = load_config(profile=args.profile)
    with open_store_log(store_path(args.out)) as log:
        for task in args.tasks:
            t0 = time.perf_counter()
            result = train_task(log, task, cfg, progress=lambda m: print(f"  {time.strftime('%X')} {m}", flush=True))
            seconds = time.perf_counter() - t0
            print(f"\n## {task} (horizon {cfg.horizons[task]} days), {seconds:.0f} s\n")
            print(f"Plan: {result.plan}")
            for warning in result.warnings:
                print(f"Warning: {warning}")
            print()
            print(markdown(result.leaderboard))
            ranking = ["gini", "spearman"] if task == "value" else ["roc_auc", "pr_auc"]
            print(f"\nPer origin ({' / '.join(ranking)}, uncalibrated scores):\n")
            wide = result.origins.pivot(index="family", columns="origin", values=ranking)
            wide.columns = [f"{m} {o}" for m, o in wide.columns]
            print(markdown(wide.reset_index()))
            se = result.margin_se
            margins = ", ".join(f"{k} {v:+.4f} ± {se[k]:.4f}" for k, v in result.margins.items())
            mean_margins = ", ".join(f"{k} {v:+.4f}" for k, v in result.mean_margins.items())
            c = result.champion_test
            if task == "value":
                from training.metrics import decile_table

                print(
                    f"\nChampion {result.champion}: test Gini {c['gini']:.4f}, Spearman {c['spearman']:.4f}, "
                    f"predicted total {c['predicted_total']:,.0f} vs realised {c['realised_total']:,.0f} "
                    f"({c['total_error']:+.1%}), decile MAPE {c['decile_mape']:.1%}, MAE {c['mae']:,.1f}"
                )
                print(f"Margins (test, ± paired SE): {margins}")
                print(f"Mean margins over origins: {mean_margins}")
                print("\nChampion on the test origin, by decile of predicted value:\n")
                tp = result.test_predictions
                print(markdown(decile_table(tp["y"].to_numpy(), tp["p"].to_numpy())))
                continue
            print(
                f"\nChampion {result.champion} ({result.calibration}): test ROC-AUC {c['roc_auc']:.4f}, "
                f"PR-AUC {c['pr_auc']:.4f}, ECE {c['ece']:.4f}, log loss {c['log_loss']:.4f}"
            )
            print(f"Margins (test, ± paired SE): {margins}")
            print(f"Mean margins over origins: {mean_margins}")
            print("\nCalibrated champion on the test origin, by decile of predicted risk:\n")
            print(markdown(deciles(result.test_predictions["y"].to_numpy(), result.test_predictions["p"].to_numpy())))


if __name__ == "__main__":
    main()
