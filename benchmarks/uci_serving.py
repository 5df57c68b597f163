"""The real UCI Online Retail log end to end: train (quick), score the last fully observed cutoff,
check the realised churn rate per decile of predicted risk, then score the latest day and report.

    python benchmarks/uci_serving.py                 # needs ../shared/data/online_retail
    python benchmarks/uci_serving.py --profile default

Outputs go to benchmarks/out/uci/ (store, MLflow, exports, reports); the decile table is printed
as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SHARED_RETAIL = HERE.parent.parent / "shared" / "data" / "online_retail" / "online_retail.parquet"
LABELLED_CUTOFF = date(2011, 9, 1)  # the last cutoff whose 90-day churn horizon is inside the log


def decile_table(scored, labels):
    """Realised churn and purchase rates per decile of predicted churn risk (decile 1 = riskiest)."""
    import numpy as np
    import pandas as pd

    joined = scored.merge(labels[["customer_id", "churn", "purchase", "spend"]], on="customer_id", how="inner")
    order = joined["p_churn"].rank(method="first", ascending=False)
    joined["decile"] = np.ceil(order / len(joined) * 10).astype(int)
    g = joined.groupby("decile")
    return pd.DataFrame(
        {
            "customers": g.size(),
            "mean_p_churn": g["p_churn"].mean(),
            "realised_churn": g["churn"].mean(),
            "value_at_risk": g["value_at_risk"].sum(),
            "realised_spend_next_90d": g["spend"].sum(),
        }
    ).reset_index()


def run(data_dir: Path, profile: str | None = "quick", source: Path = SHARED_RETAIL):

    from features.build import build_training_table
    from features.contract import load_mapping
    from features.cutoffs import Horizons
    from features.sources import Source
    from features.store import connect_store, store_path
    from features.transactions import TransactionLog, ingest_into_store, open_store_log
    from models.registry import configure_tracking
    from serving.batch import run_batch
    from serving.jobs import write_report
    from serving.predictor import load_models
    from training.config import load_config
    from training.train import train_task

    timings = {}
    t = time.perf_counter()
    ingest_into_store(store_path(data_dir), Source(source), load_mapping("online_retail"))
    timings["ingest_s"] = time.perf_counter() - t
    configure_tracking(data_dir)
    log = open_store_log(store_path(data_dir))
    t = time.perf_counter()
    champions = {task: train_task(log, task, load_config(profile=profile)).champion for task in ("churn", "purchase")}
    timings["train_s"] = time.perf_counter() - t
    labels = build_training_table(log.table, [LABELLED_CUTOFF], Horizons(90, 30))
    log.close()
    con = connect_store(store_path(data_dir))
    try:
        log = TransactionLog.on(con)
        models = load_models()
        t = time.perf_counter()
        labelled = run_batch(log, models, data_dir / "exports", LABELLED_CUTOFF)
        timings["score_s"] = time.perf_counter() - t
        latest = run_batch(log, models, data_dir / "exports")  # the day after the last transaction
        report = write_report(con, data_dir / "reports")
    finally:
        con.close()
    return {
        "champions": champions,
        "deciles": decile_table(labelled.scores, labels),
        "labelled": labelled,
        "latest": latest,
        "report": report.html,
        "timings": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="quick", help="quick or default")
    args = parser.parse_args()
    if not SHARED_RETAIL.exists():
        sys.exit(f"{SHARED_RETAIL} is not present.")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    out = HERE / "out" / f"uci_{args.profile}"
    result = run(out, None if args.profile == "default" else args.profile)
    print(f"champions: {result['champions']}; timings: { {k: round(v, 1) for k, v in result['timings'].items()} }")
    print(
        f"scored {len(result['labelled'].scores):,} customers as of {LABELLED_CUTOFF}; latest run "
        f"{result['latest'].manifest['as_of']} ({len(result['latest'].scores):,} customers); report {result['report']}"
    )
    print(
        f"comparison latest vs {LABELLED_CUTOFF}: "
        + str({k: v for k, v in result["latest"].manifest["comparison"].items() if k != "migration"})
    )
    print(
        result["deciles"].to_markdown(index=False, floatfmt=".3f")
        if _has_tabulate()
        else result["deciles"].round(3).to_string(index=False)
    )


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
