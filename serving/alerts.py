"""Key-indicator alerts: configured indicators with critical thresholds (serving/config/alerts.yaml), each raising
an alert for the customers at or beyond it. Part of scoring (``score_features``), so batch, REST and Spark agree."""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, model_validator


class Indicator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str  # a feature
    at_least: float | None = None  # alert when the value is >= this
    at_most: float | None = None  # alert when the value is <= this
    text: str  # a format string over {value}

    @model_validator(mode="after")
    def _one_threshold(self):
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("give exactly one of at_least and at_most")
        return self


class Indicators(BaseModel):
    model_config = ConfigDict(extra="forbid")

    indicators: dict[str, Indicator]


@cache
def load_indicators() -> dict[str, Indicator]:
    """The configured key indicators by name (serving/config/alerts.yaml), validated."""
    from features.errors import validated

    data = yaml.safe_load(resources.files("serving").joinpath("config/alerts.yaml").read_text()) or {}
    return validated(Indicators, {"indicators": data}, "serving/config/alerts.yaml is").indicators


def crossed(values: np.ndarray, indicator: Indicator) -> np.ndarray:
    """Which values are at or beyond the indicator's threshold (missing: never)."""
    with np.errstate(invalid="ignore"):
        if indicator.at_least is not None:
            return values >= indicator.at_least
        return values <= indicator.at_most


def alerts(features: pd.DataFrame, indicators: dict[str, Indicator] | None = None) -> np.ndarray:
    """Per row, the texts of the alerts raised, joined by "; " (None when none is): the indicators whose column the
    rows lack (an event log has no spend) raise nothing."""
    indicators = load_indicators() if indicators is None else indicators
    out = np.full(len(features), None, dtype=object)
    for indicator in indicators.values():
        if indicator.column not in features.columns:
            continue
        values = pd.to_numeric(features[indicator.column], errors="coerce").to_numpy(dtype=float)
        hit = np.flatnonzero(crossed(values, indicator))
        # each distinct value (by its bits: -0.0 is not 0.0 to a format) is written once, not once per customer
        bits, inverse = np.unique(values[hit].view(np.int64), return_inverse=True)
        texts = np.array([indicator.text.format(value=v) for v in bits.view(np.float64)], dtype=object)[inverse]
        out[hit] = [
            text if before is None else f"{before}; {text}" for before, text in zip(out[hit], texts, strict=True)
        ]
    return out


def alert_counts(scores: pd.DataFrame, indicators: dict[str, Indicator] | None = None) -> pd.DataFrame:
    """Per indicator: its rule, the customers it alerts, their share, mean P(churn) and value at risk."""
    indicators = load_indicators() if indicators is None else indicators
    rows = []
    for name, indicator in indicators.items():
        if indicator.column not in scores.columns:
            continue
        hit = crossed(pd.to_numeric(scores[indicator.column], errors="coerce").to_numpy(dtype=float), indicator)
        rule = f"{indicator.column} {'>=' if indicator.at_least is not None else '<='} "
        rule += f"{indicator.at_least if indicator.at_least is not None else indicator.at_most:g}"
        rows.append(
            {
                "alert": name,
                "rule": rule,
                "customers": int(hit.sum()),
                "share": float(hit.mean()) if len(hit) else 0.0,
                "mean p_churn": float(scores.loc[hit, "p_churn"].mean()) if hit.any() else float("nan"),
                "value at risk": float(scores.loc[hit, "value_at_risk"].sum(min_count=1)) if hit.any() else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=["alert", "rule", "customers", "share", "mean p_churn", "value at risk"])
