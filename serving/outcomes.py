"""Did the predictions come true? The latest stored scoring run whose churn window has closed in the loaded log,
its customers' P(churn) against what they did: per decile of predicted risk, and overall."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from features.build import labels_expr
from features.cutoffs import Horizons, data_window
from features.store import has_table
from features.transactions import TransactionLog
from serving.score_store import scores_as_of


@dataclass(frozen=True)
class Outcome:
    as_of: date  # the scoring run checked
    horizon_days: int
    customers: int
    predicted: float  # mean P(churn)
    realised: float  # share that made no purchase in the window
    deciles: pd.DataFrame  # decile (1 = highest risk), customers, predicted, realised


def decile_outcomes(p: np.ndarray, churned: np.ndarray) -> pd.DataFrame:
    """Customers, mean predicted and realised churn per decile of predicted risk (1 = the riskiest tenth)."""
    rank = pd.Series(p).rank(method="first", ascending=False).to_numpy()
    decile = np.ceil(rank / len(p) * 10).astype(int)
    frame = pd.DataFrame({"decile": decile, "p": p, "y": churned})
    grouped = frame.groupby("decile")
    return pd.DataFrame(
        {"customers": grouped.size(), "predicted": grouped["p"].mean(), "realised": grouped["y"].mean()}
    ).reset_index()


def latest_closed_run(con, horizon_days: int) -> Outcome | None:
    """The latest run with P(churn) whose ``horizon_days`` window ends by the log's last day; None when none has."""
    if not (has_table(con, "scores") and has_table(con, "transactions")):
        return None
    log = TransactionLog.on(con)
    _, last_ts = data_window(log.table)
    end = last_ts.date() + timedelta(days=1)  # the log is taken as complete through its last day
    closed = con.execute(
        "SELECT max(as_of) FROM scores WHERE p_churn IS NOT NULL AND CAST(as_of AS DATE) + ? <= ?",
        [horizon_days, end],
    ).fetchall()[0][0]
    if closed is None:
        return None
    as_of = pd.Timestamp(closed).date()
    scores = scores_as_of(con, as_of)
    labels = labels_expr(log.source, [as_of], Horizons(horizon_days, horizon_days)).to_pandas()
    bought = set(labels.loc[labels["n_churn_h"] > 0, "customer_id"])
    churned = (~scores["customer_id"].isin(bought)).to_numpy(dtype=float)
    p = scores["p_churn"].to_numpy(dtype=float)
    return Outcome(as_of, horizon_days, len(p), float(p.mean()), float(churned.mean()), decile_outcomes(p, churned))
