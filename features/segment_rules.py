"""The segment rules: typed, validated settings read from ``config/segments.yaml`` (or a user file)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from features.errors import PropensityError, validated


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
    # kmeans: K-Means for each k; two_step: BIRCH pre-clusters the customers into many small groups, then
    # agglomerative (Ward) merging of those groups for each k; som: a Kohonen self-organising map of k nodes;
    # k is chosen by silhouette
    method: Literal["kmeans", "two_step", "som"] = "kmeans"
    k_min: int = 2
    k_max: int = 8
    silhouette_sample: int = 10_000
    seed: int = 0


class IndexRules(_Strict):
    indicators: dict[str, Literal[1, -1]]  # feature -> direction: 1 when more is better for the business
    log: bool = True  # log(1 + x) before standardising (counts and money are skewed)
    standardise: Literal["minmax", "percentile"] = "minmax"
    weights: Literal["entropy", "equal"] | dict[str, float] = "entropy"

    @field_validator("indicators")
    @classmethod
    def _some(cls, value):
        if not value:
            raise ValueError("needs at least one indicator")
        return value


class SegmentRules(_Strict):
    rfm: RFMRules
    lifecycle: LifecycleRules
    value_matrix: ValueMatrixRules
    abc: ABCRules
    clusters: ClusterRules
    index: IndexRules | None = None  # no composite index when a rules file has no `index` section


@cache
def _default_text() -> str:
    return resources.files("features").joinpath("config/segments.yaml").read_text()


def load_segment_rules(path: Path | None = None) -> SegmentRules:
    return _parse_rules(str(path) if path else None)


@cache
def _parse_rules(path: str | None) -> SegmentRules:
    try:
        text = Path(path).read_text() if path else _default_text()
    except OSError as exc:
        raise PropensityError(f"Cannot read the segment rules {path}: {exc.strerror}.") from None
    return validated(SegmentRules, yaml.safe_load(text), "segment rules are")
