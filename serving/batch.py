"""Batch scoring for schedulers: the ``scores`` table, Parquet/CSV exports, a run manifest in MLflow.

Idempotent: rerunning an as_of replaces its rows in one transaction. Atomic: every file is written
to a temporary name and renamed, so a crash or kill leaves the previous output intact and no
partial file. Each run is compared with the previous one (segment migration, PSI of the scores).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from features.cutoffs import as_cutoff, data_window
from features.store import atomic_path
from features.transactions import TransactionLog
from serving.drift import compare_runs
from serving.predictor import Models, default_as_of, score_customers
from serving.score_store import export_scores, save_scores, scores_as_of
from serving.value import value_source


@dataclass
class BatchResult:
    scores: pd.DataFrame
    manifest: dict
    paths: list[Path] = field(default_factory=list)


def run_batch(
    log: TransactionLog,
    models: Models,
    exports: Path,
    as_of: date | str | None = None,
    reasons_share: float = 1.0,
    progress=lambda step: None,
) -> BatchResult:
    """Score, store, export and record one as_of. ``log.con`` must be writable (the ``scores`` table)."""
    timings = {}
    t_all = t = time.perf_counter()
    for model in models.present:
        model.use_cores()  # a batch is many rows: the boosted trees on every core (the same bits)
    progress("reading the log")
    first_ts, last_ts = data_window(log.table)
    cutoff = as_cutoff(as_of) if as_of else default_as_of(log)
    progress(f"scoring as of {cutoff}")
    scores = score_customers(log, cutoff, models, reasons_share=reasons_share)
    for task, info in models.info.items():  # which models produced the rows travels with them
        scores[f"{task}_model_version"] = info["version"]
    timings["score_s"] = time.perf_counter() - t
    t = time.perf_counter()
    progress("comparing with the previous run")
    comparison = compare_runs(scores_as_of(log.con, cutoff, before=True), scores)
    progress("writing the scores table")
    save_scores(log.con, scores)
    progress("writing exports")
    paths = export_scores(scores, exports)
    timings["write_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all
    source, warnings = value_source(models, "amount" in log.table.columns)
    manifest = {
        "as_of": str(cutoff),
        "models": {
            task: {k: v for k, v in info.items() if k != "tags"} | {"family": info["record"].family}
            for task, info in models.info.items()
        },
        "data_window": {"first_ts": str(first_ts), "last_ts": str(last_ts)},
        "rows": {
            "log_lines": int(log.table.count().to_pyarrow().as_py()),
            "customers_scored": len(scores),
            "customers_with_reasons": int(scores["reason_1"].notna().sum()),
            "by_rfm_segment": scores["rfm_segment"].value_counts().to_dict(),
        },
        "value_at_risk_total": float(scores["value_at_risk"].sum()) if scores["value_at_risk"].notna().any() else None,
        "value_source": source,
        "warnings": warnings,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "comparison": comparison,
        "outputs": [str(p) for p in paths],
    }
    manifest_path = Path(exports) / f"manifest_{cutoff.isoformat()}.json"
    with atomic_path(manifest_path) as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=2, default=str))
    progress("recording the run in MLflow")
    manifest["mlflow_run_id"] = log_manifest(manifest)
    return BatchResult(scores, manifest, [*paths, manifest_path])


def log_manifest(manifest: dict) -> str:
    """The scoring run in MLflow: model versions as params; counts, timings, drift as metrics; the manifest as JSON."""
    import mlflow

    with mlflow.start_run(run_name=f"score-{manifest['as_of']}", nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags({"kind": "batch-scoring", "as_of": manifest["as_of"]})
        mlflow.log_params(
            {
                "as_of": manifest["as_of"],
                **{f"{task}_model_version": m["version"] for task, m in manifest["models"].items()},
            }
        )
        metrics = {
            "customers_scored": manifest["rows"]["customers_scored"],
            "log_lines": manifest["rows"]["log_lines"],
            "value_at_risk_total": manifest["value_at_risk_total"],
            **manifest["timings_s"],
        }
        metrics.update({k: v for k, v in manifest["comparison"].items() if isinstance(v, (int, float))})
        mlflow.log_metrics({k: v for k, v in metrics.items() if v is not None})  # no value at risk on an event log
        mlflow.log_dict(manifest, "manifest.json")
        return run.info.run_id
