"""Score customers as of a date: churn and purchase probabilities, value at risk, segments, actions.

Uses the registered champion models and the one feature definition training used
(``features.build``), so batch scoring and training cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from features.build import as_cutoff, build_features, data_window
from features.errors import PropensityError
from features.pipeline import Log
from features.segments import assign_segments, load_segment_rules
from models.spec import model_input

SORT_KEYS = {"risk": "p_churn", "value-at-risk": "value_at_risk"}


@cache
def load_actions() -> dict:
    return yaml.safe_load(resources.files("serving").joinpath("config/actions.yaml").read_text())


@dataclass
class Models:
    churn: object
    purchase: object


def default_as_of(log: Log) -> date:
    """The day after the last transaction: everything in the log is history."""
    _, last_ts = data_window(log.table)
    return last_ts.date() + timedelta(days=1)


def expected_value(features: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Historic net spend rate over the customer's tenure (at least 30 days), projected over the horizon."""
    rate = features["net_spend_total"].clip(lower=0) / features["tenure_days"].clip(lower=30)
    return rate * horizon_days


def score_customers(log: Log, as_of: date | str, models: Models, lookback_days: int = 365) -> pd.DataFrame:
    """One row per eligible customer, ranked by value at risk (highest first)."""
    as_of = as_cutoff(as_of)
    features = build_features(log.table, [as_of], lookback_days)
    if features.empty:
        raise PropensityError(f"No customer bought in the {lookback_days} days before {as_of}: nothing to score.")
    p_churn = models.churn.predict_proba(model_input(features, models.churn.feature_spec))
    p_purchase = models.purchase.predict_proba(model_input(features, models.purchase.feature_spec))
    value = expected_value(features, models.churn.horizon_days)
    segments = assign_segments(features, load_segment_rules()).drop(columns=["customer_id", "as_of"])
    actions = load_actions()
    scored = pd.DataFrame(
        {
            "customer_id": features["customer_id"],
            "as_of": features["as_of"],
            "p_churn": p_churn,
            "p_purchase": p_purchase,
            "expected_value": value,
            "value_at_risk": p_churn * value,
            "recency_days": features["recency_days"],
            "frequency_invoices": features["frequency_invoices"],
            "monetary_total": features["monetary_total"],
        }
    )
    scored = pd.concat([scored, segments], axis=1)
    scored["action"] = scored["rfm_segment"].map(actions["actions"]).fillna(actions["default"])
    scored = scored.sort_values(["value_at_risk", "customer_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    scored.insert(2, "rank", np.arange(1, len(scored) + 1))
    return scored


def risk_list(scores: pd.DataFrame, top: int, by: str = "value-at-risk", segment: list[str] | None = None, min_value: float = 0.0) -> pd.DataFrame:
    """The retention team's list: filtered, sorted by risk or value at risk, top N."""
    if by not in SORT_KEYS:
        raise PropensityError(f"Unknown ranking {by!r}: use risk or value-at-risk.")
    frame = scores[scores["expected_value"] >= min_value]
    if segment:
        unknown = sorted(set(segment) - set(scores["rfm_segment"]))
        if unknown:
            raise PropensityError(f"No customer is in segment {unknown[0]!r}; segments present: {sorted(scores['rfm_segment'].unique())}.")
        frame = frame[frame["rfm_segment"].isin(segment)]
    return frame.sort_values([SORT_KEYS[by], "customer_id"], ascending=[False, True], kind="stable").head(top).reset_index(drop=True)
