"""Scoring with the registered uplift model: each customer's predicted retention gain from a contact."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.errors import PropensityError
from features.store import require_table, store_connection


def uplift_of(data_dir: Path | None, scores: pd.DataFrame) -> pd.Series:
    """The registered uplift model's predicted uplift on retention for each scored customer (features at the
    scores' as_of, from the store's log), aligned with ``scores``."""
    from features.build import build_features
    from features.transactions import TransactionLog
    from models.registry import configure_tracking
    from models.spec import FeatureSpec, model_input
    from models.uplift import load_uplift

    configure_tracking(data_dir)
    found = load_uplift()
    if found is None:
        raise PropensityError("No uplift model is registered: run `propensity campaigns uplift NAME` first.")
    model, columns, _ = found
    with store_connection(data_dir) as con:
        require_table(con, "transactions")
        as_of = pd.Timestamp(scores["as_of"].iloc[0]).date()
        rows = build_features(TransactionLog.on(con).source, [as_of], scoring_features=False)  # model inputs only
    rows = rows.set_index(rows["customer_id"].astype(str)).reindex(scores["customer_id"].astype(str))
    X = model_input(rows.reindex(columns=columns), FeatureSpec(tuple(columns), ()))  # a column the log lacks: NaN
    return pd.Series(model.predict(X), index=scores.index)
