"""Value in scoring: the CLV settings (serving/config/value.yaml) and the predicted spend CLV is computed from."""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from models.value import ValueSettings, clv, historic_rate

# Columns scoring adds that a segment rule may read instead of a historic feature (features/config/segments.yaml):
# e.g. ``abc: {value: expected_value}`` tiers customers by their predicted CLV instead of their past spend.
SCORED_RULE_INPUTS = ("predicted_value", "expected_value")


@cache
def load_value_settings() -> ValueSettings:
    """How predicted spend becomes CLV: serving/config/value.yaml (margin, discount rate, duration, cost)."""
    from features.errors import validated

    data = yaml.safe_load(resources.files("serving").joinpath("config/value.yaml").read_text()) or {}
    return validated(ValueSettings, data, "serving/config/value.yaml is")


NO_AMOUNTS = "The log has no amounts (an event log): CLV and value at risk are left empty; customers rank by risk."
NO_VALUE_MODEL = (
    "No value model is registered: CLV and value at risk use the historic net spend rate (train one with "
    "`propensity train --task value`)."
)


def value_source(models, has_amounts: bool) -> tuple[str, list[str]]:
    """Where scoring's CLV comes from, and the warning that goes with it."""
    if models.value is not None:
        return "value model", []
    if not has_amounts:
        return "nothing (no amounts)", [NO_AMOUNTS]
    return "historic net spend rate", [NO_VALUE_MODEL]


def predicted_value(features: pd.DataFrame, X: pd.DataFrame, models) -> tuple[np.ndarray, int]:
    """Net spend predicted over a horizon, and that horizon: the value model's, else the historic rate's (over the
    lead model's horizon)."""
    if models.value is not None:
        return np.maximum(models.value.predict_proba(X), 0.0), models.value.horizon_days
    if "net_spend_total" not in features.columns:  # an event log: value unknown, not faked
        return np.full(len(features), np.nan), models.lead.horizon_days
    return historic_rate(features, models.lead.horizon_days), models.lead.horizon_days


def customer_value(features: pd.DataFrame, X: pd.DataFrame, models) -> tuple[np.ndarray, np.ndarray]:
    """Per row: net spend predicted over the value horizon (``predicted_value``) and the CLV from it
    (``expected_value``)."""
    spend, horizon_days = predicted_value(features, X, models)
    return spend, clv(spend, horizon_days, load_value_settings())


def with_scored_inputs(features: pd.DataFrame, rule_columns, spend: np.ndarray, value: np.ndarray) -> pd.DataFrame:
    """The rows the segment rules read: the features, plus predicted value and CLV where a rule names them."""
    scored = {"predicted_value": spend, "expected_value": value}
    wanted = {c: v for c, v in scored.items() if c in rule_columns}
    return features.assign(**wanted) if wanted else features
