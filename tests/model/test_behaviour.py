"""Behavioural tests of trained models (after Made-With-ML's tests/model): direction and invariance.

Each family is fitted on a small generated log and packaged as serving uses it (pipeline + calibrator).
"""

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_table
from features.cutoffs import Horizons, monthly_cutoffs
from models.calibration import Calibrator
from models.families import get_family
from models.packaged import PropensityModel
from models.record import ModelRecord
from models.spec import model_input, spec_for_columns

PARAMS = {
    "logistic": {},
    "lightgbm": {"n_estimators": 60, "num_leaves": 7},
    "neural_network": {"layers": 1, "units": 16, "alpha": 1e-3, "learning_rate_init": 3e-3},
}


@pytest.fixture(scope="module")
def table(small_synthetic):
    return build_training_table(small_synthetic[0], monthly_cutoffs("2022-07-01", "2022-10-01"), Horizons(60, 30))


@pytest.fixture(scope="module", params=list(PARAMS))
def churn_model(request, table):
    spec = spec_for_columns(table.columns)
    X, y = model_input(table, spec), table["churn"].to_numpy()
    fitted = get_family(request.param).build(spec, PARAMS[request.param], 0).fit(X, y)
    record = ModelRecord(
        task="churn",
        family=request.param,
        horizon_days=60,
        lookback_days=365,
        numeric=spec.numeric,
        categorical=spec.categorical,
    )
    model = PropensityModel(fitted, Calibrator().fit(fitted.predict_proba(X)[:, 1], y), record)
    return model, model_input(table, spec)


def test_a_long_silence_raises_churn_risk(churn_model):
    """Direction: the same repeat buyers, silent for 120 days instead of 5 (every recency input moved together)."""
    model, X = churn_model
    rows = X[(X["btyd_frequency"] >= 1) & (X["btyd_T"] >= 150)].head(40).copy()
    assert len(rows) >= 20
    fresh, stale = rows.copy(), rows.copy()
    for frame, days in ((fresh, 5.0), (stale, 120.0)):
        frame["recency_days"] = days
        frame["btyd_recency"] = frame["btyd_T"] - days
        frame["overdue_ratio"] = days / frame["gap_mean_days"]
        for w in (30, 90, 180):
            frame[f"invoices_{w}d"] = frame[f"invoices_{w}d"] if days < w else 0
            frame[f"spend_{w}d"] = frame[f"spend_{w}d"] if days < w else 0.0
    assert model.predict_proba(stale).mean() > model.predict_proba(fresh).mean() + 0.05


def test_scores_do_not_depend_on_ids_row_order_or_batch_size(churn_model):
    """Invariance: a customer's score is theirs alone (renamed ids, shuffled rows, scored alone or together)."""
    model, X = churn_model
    rows = X.head(50)
    p = model.predict_proba(rows)
    renamed = rows.assign(customer_id=[f"someone-{i}" for i in range(len(rows))])
    np.testing.assert_allclose(model.predict_proba(renamed), p, rtol=0, atol=1e-12)
    order = np.random.default_rng(0).permutation(len(rows))
    np.testing.assert_allclose(model.predict_proba(rows.iloc[order]), p[order], rtol=0, atol=1e-9)
    alone = np.concatenate([model.predict_proba(rows.iloc[[i]]) for i in range(5)])
    np.testing.assert_allclose(alone, p[:5], rtol=0, atol=1e-9)


def test_an_unseen_category_and_missing_values_still_score(churn_model):
    model, X = churn_model
    rows = X.head(5).copy()
    if "main_country" in rows:
        rows["main_country"] = "Atlantis"
    rows[["gap_mean_days", "gap_std_days", "spend_trend"]] = np.nan
    p = model.predict_proba(rows)
    assert np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))
    assert isinstance(pd.Series(p).sum(), float)
