"""Segment rules on a feature table: 8 RFM segments and 1-5 scores, lifecycle, value matrix, ABC tier.

All thresholds are population-relative per cutoff (each ``as_of`` is its own population) and come
from ``config/segments.yaml`` (or a user file), validated into typed objects.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from features.errors import PropensityError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RFMRules(_Strict):
    statistic: str = "mean"
    recency: str = "recency_days"
    frequency: str = "frequency_invoices"
    monetary: str = "monetary_total"
    segments: dict[str, str]
    scores: int = 5

    @field_validator("segments")
    @classmethod
    def _all_eight(cls, value):
        wanted = {r + f + m for r in "HL" for f in "HL" for m in "HL"}
        if set(value) != wanted:
            raise ValueError(f"needs exactly the 8 keys {sorted(wanted)}")
        return value


class LifecycleRules(_Strict):
    new_max_tenure_days: float = 90
    lapsed_min_recency_days: float = 180
    at_risk_min_overdue_ratio: float = 2.0
    at_risk_single_purchase_recency_days: float = 90


class ValueMatrixRules(_Strict):
    statistic: str = "median"
    frequency: str = "frequency_invoices"
    order_value: str = "monetary_mean"
    cells: dict[str, str]


class ABCRules(_Strict):
    value: str = "monetary_total"
    a_share: float = 0.15
    b_share: float = 0.20


class ClusterRules(_Strict):
    columns: list[str]
    k_min: int = 2
    k_max: int = 8
    silhouette_sample: int = 10_000
    seed: int = 0


class SegmentRules(_Strict):
    rfm: RFMRules
    lifecycle: LifecycleRules
    value_matrix: ValueMatrixRules
    abc: ABCRules
    clusters: ClusterRules


@cache
def _default_text() -> str:
    return resources.files("features").joinpath("config/segments.yaml").read_text()


def load_segment_rules(path: Path | None = None) -> SegmentRules:
    try:
        text = Path(path).read_text() if path else _default_text()
    except OSError as exc:
        raise PropensityError(f"Cannot read the segment rules {path}: {exc.strerror}.") from None
    try:
        return SegmentRules.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PropensityError(f"The segment rules are invalid at {'.'.join(map(str, first['loc']))!r}: {first['msg']}.") from None


def _stat(values: pd.Series, groups: pd.Series, statistic: str) -> pd.Series:
    if statistic not in ("mean", "median"):
        raise PropensityError(f"Unknown segment statistic {statistic!r}: use mean or median.")
    return values.groupby(groups).transform(statistic)


def _scores(values: pd.Series, groups: pd.Series, n: int, higher_is_better: bool) -> pd.Series:
    pct = values.groupby(groups).rank(pct=True, method="average", ascending=higher_is_better)
    return np.ceil(pct * n).clip(1, n).astype("int8")


def rfm_segments(features: pd.DataFrame, rules: RFMRules) -> pd.DataFrame:
    g = features["as_of"]
    r, f, m = (features[c] for c in (rules.recency, rules.frequency, rules.monetary))
    high_r = r <= _stat(r, g, rules.statistic)
    high_f = f > _stat(f, g, rules.statistic)
    high_m = m > _stat(m, g, rules.statistic)
    code = np.where(high_r, "H", "L").astype(object) + np.where(high_f, "H", "L") + np.where(high_m, "H", "L")
    return pd.DataFrame(
        {
            "rfm_code": code,
            "rfm_segment": pd.Series(code, index=features.index).map(rules.segments),
            "r_score": _scores(r, g, rules.scores, higher_is_better=False),
            "f_score": _scores(f, g, rules.scores, higher_is_better=True),
            "m_score": _scores(m, g, rules.scores, higher_is_better=True),
        },
        index=features.index,
    )


def lifecycle_stage(features: pd.DataFrame, rules: LifecycleRules) -> pd.Series:
    recency, tenure = features["recency_days"], features["tenure_days"]
    overdue = features["overdue_ratio"]
    single = features["frequency_days"] <= 1
    conditions = [
        tenure <= rules.new_max_tenure_days,
        recency >= rules.lapsed_min_recency_days,
        (overdue >= rules.at_risk_min_overdue_ratio) | (single & (recency >= rules.at_risk_single_purchase_recency_days)),
    ]
    return pd.Series(np.select(conditions, ["new", "lapsed", "at risk"], "active"), index=features.index, name="lifecycle")


def value_matrix(features: pd.DataFrame, rules: ValueMatrixRules) -> pd.Series:
    g = features["as_of"]
    f, v = features[rules.frequency], features[rules.order_value]
    code = np.where(f > _stat(f, g, rules.statistic), "H", "L").astype(object) + np.where(v > _stat(v, g, rules.statistic), "H", "L")
    return pd.Series(code, index=features.index).map(rules.cells).rename("value_matrix")


def abc_tier(features: pd.DataFrame, rules: ABCRules) -> pd.Series:
    """A for the top ``a_share`` of customers by value, B for the next ``b_share``, C for the rest."""
    share_above = features[rules.value].groupby(features["as_of"]).rank(pct=True, method="first", ascending=False)
    tier = np.select([share_above <= rules.a_share, share_above <= rules.a_share + rules.b_share], ["A", "B"], "C")
    return pd.Series(tier, index=features.index, name="abc_tier")


def assign_segments(features: pd.DataFrame, rules: SegmentRules | None = None) -> pd.DataFrame:
    """Rule-based segments for a feature table (clusters are separate: they need a fitted model)."""
    rules = rules or load_segment_rules()
    out = rfm_segments(features, rules.rfm)
    out["lifecycle"] = lifecycle_stage(features, rules.lifecycle)
    out["value_matrix"] = value_matrix(features, rules.value_matrix)
    out["abc_tier"] = abc_tier(features, rules.abc)
    return pd.concat([features[["customer_id", "as_of"]], out], axis=1)
