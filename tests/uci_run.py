"""The real UCI Online Retail log end to end, shared by tests/e2e/test_real_serving.py and
benchmarks/uci_serving.py: train (on the log before 2011-09-01), score 2011-09-01 out of time, check the
realised churn per decile of predicted risk, then score the latest day and report."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

SHARED_RETAIL = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.parquet"
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
    """Train on the log before LABELLED_CUTOFF (nine months), then load the whole log and score that cutoff:
    the models never saw the labels the deciles are checked against."""
    import duckdb

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
    data_dir.mkdir(parents=True, exist_ok=True)
    early = data_dir / "before_cutoff.parquet"
    duckdb.sql(f"COPY (SELECT * FROM '{source}' WHERE InvoiceDate < DATE '{LABELLED_CUTOFF}') TO '{early}'")
    ingest_into_store(store_path(data_dir), Source(early), load_mapping("online_retail"))
    timings["ingest_s"] = time.perf_counter() - t
    configure_tracking(data_dir)
    log = open_store_log(store_path(data_dir))
    t = time.perf_counter()
    champions = {task: train_task(log, task, load_config(profile=profile)).champion for task in ("churn", "purchase")}
    timings["train_s"] = time.perf_counter() - t
    log.close()
    ingest_into_store(store_path(data_dir), Source(source), load_mapping("online_retail"))  # the whole log
    with open_store_log(store_path(data_dir)) as log:
        labels = build_training_table(log.table, [LABELLED_CUTOFF], Horizons(90, 30))
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
