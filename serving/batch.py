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

import duckdb
import numpy as np
import pandas as pd

from features.build import as_cutoff, data_window
from features.pipeline import Log
from features.store import atomic_path, has_table, write_frame
from serving.predictor import Models, default_as_of, score_customers

PSI_BINS = 10


def save_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame) -> None:
    con.register("new_scores", scores)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE TABLE IF NOT EXISTS scores AS SELECT * FROM new_scores WHERE false")
        have = {row[0] for row in con.execute("DESCRIBE scores").fetchall()}
        for name, kind, *_ in con.execute("DESCRIBE new_scores").fetchall():  # a newer version's columns
            if name not in have:
                con.execute(f'ALTER TABLE scores ADD COLUMN "{name}" {kind}')
        con.execute("DELETE FROM scores WHERE as_of IN (SELECT DISTINCT as_of FROM new_scores)")
        con.execute("INSERT INTO scores BY NAME SELECT * FROM new_scores")
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("new_scores")


def export_scores(scores: pd.DataFrame, folder: Path) -> list[Path]:
    stamp = pd.Timestamp(scores["as_of"].iloc[0]).date().isoformat()
    return [write_frame(scores, Path(folder) / f"scores_{stamp}.{ext}") for ext in ("parquet", "csv")]


def scores_as_of(
    con: duckdb.DuckDBPyConnection, as_of: date | None = None, before: bool = False
) -> pd.DataFrame | None:
    """The stored scores of one run: ``as_of`` itself, the latest before it (``before``), or the latest of all."""
    if not has_table(con, "scores"):
        return None
    if as_of is None:
        pick = "SELECT max(as_of) FROM scores"
        args = []
    else:
        pick = f"SELECT max(as_of) FROM scores WHERE as_of {'<' if before else '='} ?"
        args = [pd.Timestamp(as_cutoff(as_of))]
    chosen = con.execute(pick, args).fetchall()[0][0]
    if chosen is None:
        return None
    return con.execute("SELECT * FROM scores WHERE as_of = ? ORDER BY rank", [chosen]).df()


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``actual`` against ``expected``, on the expected distribution's deciles.

    Rule of thumb: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a large shift.
    """
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, "right"), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual, "right"), minlength=len(edges) + 1) / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def segment_migration(previous: pd.DataFrame, current: pd.DataFrame, column: str = "rfm_segment") -> pd.DataFrame:
    """Customers scored in both runs, counted by (from, to) segment; new and gone customers have their own rows."""
    both = previous[["customer_id", column]].merge(
        current[["customer_id", column]], on="customer_id", how="outer", suffixes=("_from", "_to")
    )
    both = both.fillna({f"{column}_from": "(new)", f"{column}_to": "(gone)"})
    table = both.groupby([f"{column}_from", f"{column}_to"]).size().rename("customers").reset_index()
    return table.rename(columns={f"{column}_from": "from", f"{column}_to": "to"}).sort_values(
        "customers", ascending=False, ignore_index=True
    )


def compare_runs(previous: pd.DataFrame | None, current: pd.DataFrame) -> dict:
    if previous is None or previous.empty:
        return {"previous_as_of": None}
    migration = segment_migration(previous, current)
    stayed = migration[(migration["from"] == migration["to"])]["customers"].sum()
    kept = migration[~migration["from"].eq("(new)") & ~migration["to"].eq("(gone)")]["customers"].sum()
    return {
        "previous_as_of": str(pd.Timestamp(previous["as_of"].iloc[0]).date()),
        "psi_p_churn": psi(previous["p_churn"].to_numpy(), current["p_churn"].to_numpy()),
        "psi_p_purchase": psi(previous["p_purchase"].to_numpy(), current["p_purchase"].to_numpy()),
        "customers_in_both": int(kept),
        "customers_moved_segment": int(kept - stayed),
        "customers_new": int(migration[migration["from"] == "(new)"]["customers"].sum()),
        "customers_gone": int(migration[migration["to"] == "(gone)"]["customers"].sum()),
        "migration": migration.to_dict("records"),
    }


@dataclass
class BatchResult:
    scores: pd.DataFrame
    manifest: dict
    paths: list[Path] = field(default_factory=list)


def run_batch(
    log: Log,
    models: Models,
    exports: Path,
    as_of: date | str | None = None,
    reasons_share: float = 1.0,
    progress=lambda step: None,
) -> BatchResult:
    """Score, store, export and record one as_of. ``log.con`` must be writable (the ``scores`` table)."""
    timings = {}
    t_all = t = time.perf_counter()
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
    manifest = {
        "as_of": str(cutoff),
        "models": {
            task: {k: v for k, v in info.items() if k != "tags"} | {"family": info["tags"].get("family")}
            for task, info in models.info.items()
        },
        "data_window": {"first_ts": str(first_ts), "last_ts": str(last_ts)},
        "rows": {
            "log_lines": int(log.table.count().to_pyarrow().as_py()),
            "customers_scored": len(scores),
            "customers_with_reasons": int(scores["reason_1"].notna().sum()),
            "by_rfm_segment": scores["rfm_segment"].value_counts().to_dict(),
        },
        "value_at_risk_total": float(scores["value_at_risk"].sum()),
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


def score_store(
    data_dir: Path | None,
    models: Models,
    as_of: date | str | None = None,
    reasons_share: float = 1.0,
    progress=lambda step: None,
) -> BatchResult:
    """Batch-score the embedded store's log (exports under ``<data dir>/exports``)."""
    import ibis

    from features.store import connect_store, require_table, store_path
    from features.store import data_dir as resolve_data_dir

    con = connect_store(store_path(data_dir))
    try:
        require_table(con, "transactions")
        log = Log(con, ibis.duckdb.from_connection(con).table("transactions"))
        return run_batch(log, models, resolve_data_dir(data_dir) / "exports", as_of, reasons_share, progress)
    finally:
        con.close()


def log_manifest(manifest: dict) -> str:
    """The scoring run in MLflow: model versions as params, counts, timings and drift as metrics, the manifest as JSON."""
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
        metrics.update(
            {k: v for k, v in manifest["comparison"].items() if isinstance(v, (int, float)) and v is not None}
        )
        mlflow.log_metrics(metrics)
        mlflow.log_dict(manifest, "manifest.json")
        return run.info.run_id


def write_report(con: duckdb.DuckDBPyConnection, folder: Path, as_of: date | str | None = None):
    """The HTML report for a stored scoring run (default: the latest) against the run before it."""
    from features.errors import PropensityError
    from models.registry import model_version_info
    from serving.report import build_report

    scores = scores_as_of(con, as_cutoff(as_of) if as_of else None)
    if scores is None or scores.empty:
        raise PropensityError(
            f"There are no scores{' as of ' + str(as_of) if as_of else ''} to report on: run `propensity score` first."
        )
    cutoff = pd.Timestamp(scores["as_of"].iloc[0]).date()
    info = {
        task: model_version_info(
            task, int(scores[f"{task}_model_version"].iloc[0]) if f"{task}_model_version" in scores else None
        )
        for task in ("churn", "purchase")
    }
    return build_report(scores, scores_as_of(con, cutoff, before=True), info, Path(folder) / cutoff.isoformat())
