"""Score customers as of a date: churn and purchase probabilities, value at risk, segments, actions.

Uses the registered champion models and the one feature definition training used
(``features.build``), so batch scoring and training cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from features.build import as_cutoff, build_features, data_window
from features.definitions import FEATURES
from features.errors import PropensityError
from features.pipeline import Log
from features.clusters import ClusterModel
from features.segments import SegmentReference, SegmentRules, assign_segments, load_segment_rules
from models.explain import btyd_values, contributions
from models.spec import model_input
from serving.reasons import top_reasons

LIFECYCLE_INPUTS = ("recency_days", "tenure_days", "overdue_ratio", "frequency_days")
SORT_KEYS = {"risk": "p_churn", "value-at-risk": "value_at_risk"}


@cache
def load_actions() -> dict:
    return yaml.safe_load(resources.files("serving").joinpath("config/actions.yaml").read_text())


@dataclass
class Models:
    churn: object
    purchase: object
    info: dict = field(default_factory=dict)  # task -> registry name, version, run id, tags


def load_models(churn_version: int | None = None, purchase_version: int | None = None) -> Models:
    """The champion models (by alias) from the MLflow registry, or the given versions."""
    from models.registry import load_model, model_version_info

    versions = {"churn": churn_version, "purchase": purchase_version}
    return Models(
        load_model("churn", churn_version), load_model("purchase", purchase_version),
        {task: model_version_info(task, v) for task, v in versions.items()},
    )


def default_as_of(log: Log) -> date:
    """The day after the last transaction: everything in the log is history."""
    _, last_ts = data_window(log.table)
    return last_ts.date() + timedelta(days=1)


def expected_value(features: pd.DataFrame, horizon_days: int) -> pd.Series:
    """Historic net spend rate over the customer's tenure (at least 30 days), projected over the horizon."""
    rate = features["net_spend_total"].clip(lower=0) / features["tenure_days"].clip(lower=30)
    return rate * horizon_days


def reference_columns(rules: SegmentRules) -> list[str]:
    """The feature columns a segment reference (and the lifecycle rule) reads: kept in the scores table."""
    r, vm = rules.rfm, rules.value_matrix
    wanted = [r.recency, r.frequency, r.monetary, vm.frequency, vm.order_value, rules.abc.value, *LIFECYCLE_INPUTS]
    return list(dict.fromkeys(wanted))


def require_model_inputs(features: pd.DataFrame, models: Models) -> None:
    """Refuse feature rows without a feature either model takes (say which transaction column it comes from)."""
    needed = dict.fromkeys([*models.churn.feature_spec.columns, *models.purchase.feature_spec.columns])
    missing = [c for c in needed if c not in features.columns]
    if missing:
        sources = sorted({col for f in FEATURES if f.name in missing for col in f.requires})
        hint = f": they come from the transaction column(s) {sources}, which these lines lack" if sources else ""
        raise PropensityError(f"The models need the features {missing}{hint}.")


def score_features(
    features: pd.DataFrame, models: Models, reference: SegmentReference | None = None, reasons_share: float = 1.0,
    reasons_from_value_at_risk: float | None = None,
) -> pd.DataFrame:
    """Score feature rows: the one scoring path batch scoring and the REST service share.

    Ranked by value at risk (highest first). Segments are placed against ``reference`` (default: the
    rows' own population per as_of); reasons are written for the top ``reasons_share`` of the ranking,
    or, when ``reasons_from_value_at_risk`` is given, for every row with at least that value at risk.
    """
    rules = load_segment_rules()
    require_model_inputs(features, models)
    X_churn = model_input(features, models.churn.feature_spec)
    p_churn = models.churn.predict_proba(X_churn)
    p_purchase = models.purchase.predict_proba(model_input(features, models.purchase.feature_spec))
    value = expected_value(features, models.churn.horizon_days)
    keep = ["customer_id", "as_of", *[c for c in reference_columns(rules) if c in features.columns]]
    scored = features[keep].assign(p_churn=p_churn, p_purchase=p_purchase, expected_value=value, value_at_risk=p_churn * value)
    scored = pd.concat([scored, assign_segments(features, rules, reference).drop(columns=["customer_id", "as_of"])], axis=1)
    clusters = models.churn.clusters
    scored["cluster"] = ClusterModel.from_dict(clusters).assign(features) if clusters else -1
    actions = load_actions()
    scored["action"] = scored["rfm_segment"].map(actions["actions"]).fillna(actions["default"])
    order = scored.sort_values(["value_at_risk", "customer_id"], ascending=[False, True], kind="stable").index
    scored, X_churn, features = (f.loc[order].reset_index(drop=True) for f in (scored, X_churn, features))
    scored.insert(2, "rank", np.arange(1, len(scored) + 1))
    explained = int(np.ceil(len(scored) * reasons_share))
    if reasons_from_value_at_risk is not None:
        explained = int((scored["value_at_risk"] >= reasons_from_value_at_risk).sum())
    values = pd.concat([features.iloc[:explained], btyd_values(models.churn, X_churn.iloc[:explained])], axis=1)
    reasons = top_reasons(contributions(models.churn, X_churn.iloc[:explained]), values)
    return pd.concat([scored, reasons.reindex(scored.index).astype("string")], axis=1)


def score_customers(log: Log, as_of: date | str, models: Models, lookback_days: int = 365, reasons_share: float = 1.0) -> pd.DataFrame:
    """One row per eligible customer as of a date, ranked by value at risk (highest first)."""
    as_of = as_cutoff(as_of)
    features = build_features(log.table, [as_of], lookback_days)
    if features.empty:
        raise PropensityError(f"No customer bought in the {lookback_days} days before {as_of}: nothing to score.")
    return score_features(features, models, reasons_share=reasons_share)


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
