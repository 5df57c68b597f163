"""The composite customer index: an indicator system, standardised on the training population and weighted into
one 0-100 score per customer, with each customer's place in the training population's ranking.

Each indicator is a feature with a direction (1: more is better for the business, -1: less is better). Values
are optionally log-transformed (log(1 + x), for counts and money), then standardised by min-max between the
training population's 1st and 99th percentiles (clipped to [0, 1]) or by their percentile in that population,
and turned so that 1 is always good. Weights are configured, equal, or objective: entropy weights give more weight
to the indicators that separate customers more (lower Shannon entropy of their standardised shares).

The fitted bounds, weights and the index's percentiles travel with the model (``CustomerIndex.to_dict``), so
batch scoring, the REST service and Spark place a customer identically, and a customer's ``index_percentile``
does not depend on who else is scored with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import PropensityError
from features.segment_rules import IndexRules

_GRID = np.linspace(0, 100, 101)  # the percentiles of the training population's index that are kept


@dataclass
class CustomerIndex:
    indicators: dict[str, int]  # feature -> direction
    log: bool
    standardise: str
    low: np.ndarray  # per indicator: the 1st percentile (minmax) ...
    high: np.ndarray  # ... and the 99th
    grid: np.ndarray  # per indicator, percentile standardisation: the training values at _GRID
    weights: np.ndarray
    index_grid: np.ndarray  # the training population's index at _GRID

    def _standardised(self, features: pd.DataFrame) -> np.ndarray:
        x = _values(features, list(self.indicators), self.log)
        if self.standardise == "percentile":
            s = np.column_stack([np.interp(x[:, j], self.grid[j], _GRID) / 100 for j in range(x.shape[1])])
        else:
            span = np.where(self.high > self.low, self.high - self.low, 1.0)
            s = np.clip((x - self.low) / span, 0.0, 1.0)
        s = np.where(np.array(list(self.indicators.values())) > 0, s, 1.0 - s)
        return np.where(np.isnan(x), 0.5, s)  # a missing indicator (one purchase day: no gap) counts as middling

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """The index, 0 (worst on every indicator) to 100 (best on every one)."""
        return np.clip(100.0 * self._standardised(features) @ self.weights, 0.0, 100.0)  # rounding: 100.00000000000001

    def percentile(self, index: np.ndarray) -> np.ndarray:
        """The share (0-100) of the training population whose index is at or below each value."""
        return np.interp(index, self.index_grid, _GRID)

    def to_dict(self) -> dict:
        return {
            "indicators": self.indicators,
            "log": self.log,
            "standardise": self.standardise,
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "grid": self.grid.tolist(),
            "weights": self.weights.tolist(),
            "index_grid": self.index_grid.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> CustomerIndex:
        arrays = {k: np.array(data[k], dtype=float) for k in ("low", "high", "grid", "weights", "index_grid")}
        return cls(dict(data["indicators"]), data["log"], data["standardise"], **arrays)

    @property
    def weight_by_indicator(self) -> dict[str, float]:
        return dict(zip(self.indicators, self.weights.tolist(), strict=True))


def _values(features: pd.DataFrame, columns: list[str], log: bool) -> np.ndarray:
    x = np.column_stack([pd.to_numeric(features[c], errors="coerce").to_numpy(dtype=float) for c in columns])
    return np.sign(x) * np.log1p(np.abs(x)) if log else x


def entropy_weights(s: np.ndarray) -> np.ndarray:
    """The entropy weight method: per column of non-negative standardised values, the share p_ij of each row, the
    entropy e_j = -sum p ln p / ln n, and weights proportional to 1 - e_j (an all-equal column weighs nothing)."""
    n = len(s)
    totals = s.sum(axis=0)
    p = np.divide(s, totals, out=np.full_like(s, 1.0 / n), where=totals > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    divergence = 1.0 + plogp.sum(axis=0) / np.log(n)
    divergence = np.clip(divergence, 0.0, None)
    if divergence.sum() <= 0:
        return np.full(s.shape[1], 1.0 / s.shape[1])
    return divergence / divergence.sum()


def fit_index(features: pd.DataFrame, rules: IndexRules) -> CustomerIndex:
    """Fit the index on a population (one row per customer): bounds, weights and the population's percentiles."""
    # an event log has no money: its index uses the configured indicators it has (as the clusters do)
    indicators = {c: d for c, d in rules.indicators.items() if c in features.columns}
    if not indicators:
        raise PropensityError(
            f"Cannot build the customer index: the feature table has none of {list(rules.indicators)}."
        )
    if len(features) < 2:
        raise PropensityError("Cannot build the customer index from fewer than 2 customers.")
    x = _values(features, list(indicators), rules.log)
    low, high = np.nanpercentile(x, 1, axis=0), np.nanpercentile(x, 99, axis=0)
    grid = np.nanpercentile(x, _GRID, axis=0).T
    weights = np.ones(len(indicators))
    index = CustomerIndex(indicators, rules.log, rules.standardise, low, high, grid, weights, _GRID.copy())
    s = index._standardised(features)
    if rules.weights == "entropy":
        weights = entropy_weights(s)
    elif isinstance(rules.weights, dict):
        weights = np.array([rules.weights.get(c, 0.0) for c in indicators], dtype=float)
        if weights.sum() <= 0:
            raise PropensityError("The customer index's configured weights are all zero for the indicators present.")
    index.weights = weights / weights.sum()
    index.index_grid = np.percentile(index.score(features), _GRID)
    return index
