"""The serving jobs a scheduler, the CLI, the main job and the notebook call: score, report, read the scores.

Each takes the data dir (``None``: ``$PROPENSITY_DATA_DIR`` or ``./data``), points MLflow at its
tracking store, and opens and closes the embedded store itself.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from features.cutoffs import as_cutoff
from features.errors import PropensityError
from features.store import data_dir as resolve_data_dir
from features.store import require_table, store_connection
from features.transactions import TransactionLog
from serving.batch import BatchResult, run_batch
from serving.exports import write_list
from serving.predictor import Models, load_models
from serving.schema import LIST_COLUMNS
from serving.score_store import scores_as_of


def _no_scores(as_of) -> PropensityError:
    return PropensityError(
        f"There are no scores{' as of ' + str(as_of) if as_of else ''}: run `propensity score` first."
    )


def load_champions(data_dir: Path | None = None, churn_version: int | None = None, purchase_version: int | None = None):
    """The registered champions (or the given versions) from the data dir's tracking store (or the remote one)."""
    from models.registry import configure_tracking

    configure_tracking(data_dir)
    return load_models(churn_version, purchase_version)


def score_store(
    data_dir: Path | None = None,
    as_of: date | str | None = None,
    reasons_share: float = 1.0,
    models: Models | None = None,
    progress=lambda step: None,
) -> BatchResult:
    """Batch-score the store's log: the ``scores`` table, exports under ``<data dir>/exports``, a manifest."""
    models = models or load_champions(data_dir)
    with store_connection(data_dir, read_only=False) as con:
        require_table(con, "transactions")
        return run_batch(
            TransactionLog.on(con), models, resolve_data_dir(data_dir) / "exports", as_of, reasons_share, progress
        )


def stored_scores(data_dir: Path | None = None, as_of: date | str | None = None, before: bool = False) -> pd.DataFrame:
    """One stored scoring run (default: the latest); a user error when there is none."""
    with store_connection(data_dir) as con:
        scores = scores_as_of(con, as_cutoff(as_of) if as_of else None, before)
    if scores is None or scores.empty:
        raise _no_scores(as_of)
    return scores


def report_store(data_dir: Path | None = None, as_of: date | str | None = None, out_dir: Path | None = None):
    """The HTML report of a stored scoring run (default: the latest) against the run before it."""
    from models.registry import configure_tracking

    configure_tracking(data_dir)
    with store_connection(data_dir) as con:
        return write_report(con, Path(out_dir or resolve_data_dir(data_dir) / "reports"), as_of)


def write_report(con, folder: Path, as_of: date | str | None = None):
    """The report of the stored run as of ``as_of`` (default: the latest) on an open store, under ``folder/<as_of>``."""
    from features.cutoffs import data_window
    from models.registry import model_version_info
    from serving.outcomes import latest_closed_run
    from serving.report import build_report
    from serving.report_campaigns import campaigns_html
    from serving.value import load_value_settings

    scores = scores_as_of(con, as_cutoff(as_of) if as_of else None)
    if scores is None or scores.empty:
        raise _no_scores(as_of)
    cutoff = pd.Timestamp(scores["as_of"].iloc[0]).date()
    info = {
        task: model_version_info(task, int(scores[f"{task}_model_version"].iloc[0]))
        for task in ("churn", "purchase", "value")
        if f"{task}_model_version" in scores and scores[f"{task}_model_version"].notna().any()  # scored with it
    }
    outcome = latest_closed_run(con, info["churn"]["record"].horizon_days) if "churn" in info else None
    currency = load_value_settings().currency
    previous = scores_as_of(con, cutoff, before=True)
    log = TransactionLog.on(con)
    campaigns = campaigns_html(con, log.table, pd.Timestamp(data_window(log.table)[1]), currency)
    return build_report(scores, previous, info, Path(folder) / cutoff.isoformat(), outcome, currency, campaigns)


def score_on_spark_source(
    source: str,
    out_dir: str,
    as_of: date | str | None = None,
    reasons_share: float = 0.1,
    models: Models | None = None,
    master: str | None = None,
    remote: str | None = None,
    data_dir: Path | None = None,
) -> dict:
    """Score a validated log on Spark (read in place) into Parquet partitioned by as_of."""
    from features.spark import open_spark_log, spark_session
    from serving.predictor import default_as_of
    from serving.spark_scoring import score_on_spark

    models = models or load_champions(data_dir)
    log = open_spark_log(source, spark_session(master, remote))
    return score_on_spark(log, as_cutoff(as_of) if as_of else default_as_of(log), models, out_dir, reasons_share)


def write_risk_list(
    out: Path,
    data_dir: Path | None = None,
    as_of: date | str | None = None,
    top: int = 100,
    by: str = "value-at-risk",
    segment: list[str] | None = None,
    min_value: float = 0.0,
) -> tuple[pd.DataFrame, date]:
    """The retention team's list from stored scores, written to ``out``; the list and its scores' as_of."""
    from serving.exports import risk_list

    scores = stored_scores(data_dir, as_of)
    chosen = risk_list(scores, top, by, segment, min_value)
    write_list(chosen[[c for c in LIST_COLUMNS if c in chosen.columns]], out)
    return chosen, pd.Timestamp(scores["as_of"].iloc[0]).date()


def write_contact_list(
    out: Path,
    data_dir: Path | None = None,
    as_of: date | str | None = None,
    budget: int | None = None,
    cost_per_contact: float = 0.0,
    value_per_save: float | None = None,
    success_rate: float = 0.2,
    by_uplift: bool = False,
):
    """The budgeted contact list from stored scores, written to ``out``; its expected figures. ``by_uplift``: the
    registered uplift model's predicted retention gain replaces P(churn) x success rate."""
    from serving.targeting import PLAN_COLUMNS, plan_contacts
    from serving.uplift_scoring import uplift_of

    scores = stored_scores(data_dir, as_of)
    uplift = uplift_of(data_dir, scores) if by_uplift else None
    chosen, plan = plan_contacts(scores, budget, cost_per_contact, value_per_save, success_rate, uplift)
    write_list(chosen[[*(c for c in LIST_COLUMNS if c in chosen.columns), *PLAN_COLUMNS]], out)
    return plan
