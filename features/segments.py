"""Segment rules on a feature table: 8 RFM segments and 1-5 scores, lifecycle, value matrix, ABC tier.

All thresholds are population-relative per cutoff (each ``as_of`` is its own population) and come
from ``config/segments.yaml`` (or a user file), validated into typed objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd

from features.errors import PropensityError
from features.segment_rules import (  # noqa: F401 - the rules are read through this module too
    ABCRules,
    ClusterRules,
    LifecycleRules,
    RFMRules,
    SegmentRules,
    ValueMatrixRules,
    load_segment_rules,
)


@dataclass(frozen=True)
class SegmentReference:
    """The population one cutoff's segments are relative to: thresholds and sorted values.

    Batch scoring fits it on the scored population; the REST service fits it on the latest batch
    population, so that one customer scored alone lands in the segment batch scoring gives them.
    """

    n: int
    thresholds: dict[str, float]  # rule key -> mean or median of the population
    values: dict[str, np.ndarray]  # column -> sorted population values (for percentile scores)

    def percentile(self, column: str, x: pd.Series, higher_is_better: bool) -> np.ndarray:
        """Mid-rank percentile of ``x`` in the population, as ``rank(pct=True, method="average")`` gives."""
        pop, v = self.values[column], x.to_numpy(dtype=float)
        below, at_or_below = _searchsorted(pop, v, "left", "right")
        if not higher_is_better:
            below, at_or_below = self.n - at_or_below, self.n - below
        return (below + at_or_below + 1) / 2 / self.n

    def share_above(self, column: str, x: pd.Series) -> np.ndarray:
        """Share of the population ranked at or above ``x`` (ties share the best rank)."""
        (at_or_below,) = _searchsorted(self.values[column], x.to_numpy(dtype=float), "right")
        return (self.n - at_or_below + 1) / self.n


def _searchsorted(population: np.ndarray, x: np.ndarray, *sides: str) -> tuple[np.ndarray, ...]:
    """``np.searchsorted`` for each of ``sides``, with the values looked up in sorted order: each search then starts
    where the last one ended instead of jumping about a million-row array (1M rows: 0.59 -> 0.35 s per side, the
    sort included). Same result."""
    if len(x) < 1024:
        return tuple(np.searchsorted(population, x, side) for side in sides)
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    found = []
    for side in sides:
        out = np.empty(len(x), dtype=np.intp)
        out[order] = np.searchsorted(population, ordered, side)
        found.append(out)
    return tuple(found)


def _statistic(values: np.ndarray, statistic: str) -> float:
    if statistic not in ("mean", "median"):
        raise PropensityError(f"Unknown segment statistic {statistic!r}: use mean or median.")
    if not len(values):
        return float("nan")
    return float(np.mean(values) if statistic == "mean" else np.median(values))


def segment_reference(population: pd.DataFrame, rules: SegmentRules) -> SegmentReference:
    """Fit the reference on one cutoff's population."""
    r, vm = rules.rfm, rules.value_matrix
    columns = {r.recency, r.frequency, r.monetary, vm.frequency, vm.order_value, rules.abc.value}
    values = {c: np.sort(population[c].to_numpy(dtype=float)) for c in columns if c in population.columns}
    rule_columns = {
        "rfm_recency": (r.recency, r.statistic),
        "rfm_frequency": (r.frequency, r.statistic),
        "rfm_monetary": (r.monetary, r.statistic),
        "vm_frequency": (vm.frequency, vm.statistic),
        "vm_order_value": (vm.order_value, vm.statistic),
    }
    thresholds = {k: _statistic(values[c], stat) for k, (c, stat) in rule_columns.items() if c in values}
    return SegmentReference(len(population), thresholds, values)


def _scores(ref: SegmentReference, column: str, x: pd.Series, n: int, higher_is_better: bool) -> np.ndarray:
    return np.ceil(ref.percentile(column, x, higher_is_better) * n).clip(1, n).astype("int8")


def _coded(flags: list[np.ndarray], table: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the H/L code of the flags (True = H) and its label in ``table`` (missing for a code it lacks)."""
    combos = ["".join(letters) for letters in product("HL", repeat=len(flags))]  # H before L, first flag slowest
    index = np.zeros(len(flags[0]), dtype=np.int64)
    for flag in flags:
        index = index * 2 + ~flag
    codes = np.array(combos, dtype=object)
    labels = np.array([table.get(code) for code in combos], dtype=object)
    return codes[index], labels[index]


def _absent(features: pd.DataFrame, *columns: str) -> bool:  # an event log has no money: value segments stay empty
    return any(c not in features.columns for c in columns)


def _unplaced(features: pd.DataFrame, ref: SegmentReference, columns: tuple[str, ...], keys: tuple[str, ...]) -> bool:
    """The rows lack ``columns``, or the reference population had none of them (rows with amounts placed against an
    event log's population, in the REST service): the segment stays empty rather than being made up."""
    return (
        _absent(features, *columns)
        or any(c not in ref.values for c in columns)
        or any(k not in ref.thresholds for k in keys)
    )


def _empty(features: pd.DataFrame) -> np.ndarray:
    return np.full(len(features), None, dtype=object)


def _rfm(features: pd.DataFrame, rules: RFMRules, ref: SegmentReference) -> dict[str, np.ndarray]:
    r, f = (features[c] for c in (rules.recency, rules.frequency))
    scores = {
        "r_score": _scores(ref, rules.recency, r, rules.scores, higher_is_better=False),
        "f_score": _scores(ref, rules.frequency, f, rules.scores, higher_is_better=True),
    }
    if _unplaced(features, ref, (rules.monetary,), ("rfm_monetary",)):
        return {"rfm_code": _empty(features), "rfm_segment": _empty(features), **scores, "m_score": _empty(features)}
    m = features[rules.monetary]
    high_r = r.to_numpy(dtype=float) <= ref.thresholds["rfm_recency"]
    high_f = f.to_numpy(dtype=float) > ref.thresholds["rfm_frequency"]
    high_m = m.to_numpy(dtype=float) > ref.thresholds["rfm_monetary"]
    code, segment = _coded([high_r, high_f, high_m], rules.segments)
    m_score = _scores(ref, rules.monetary, m, rules.scores, higher_is_better=True)
    return {"rfm_code": code, "rfm_segment": segment, **scores, "m_score": m_score}


def _lifecycle(features: pd.DataFrame, rules: LifecycleRules) -> np.ndarray:
    recency, tenure, overdue, days = (
        features[c].to_numpy(dtype=float) for c in ("recency_days", "tenure_days", "overdue_ratio", "frequency_days")
    )
    single = days <= 1
    with np.errstate(invalid="ignore"):  # a missing overdue ratio (one purchase day) compares False, as in pandas
        conditions = [
            tenure <= rules.new_max_tenure_days,
            recency >= rules.lapsed_min_recency_days,
            (overdue >= rules.at_risk_min_overdue_ratio)
            | (single & (recency >= rules.at_risk_single_purchase_recency_days)),
        ]
    return np.select(conditions, ["new", "lapsed", "at risk"], "active").astype(object)


def _value_matrix(features: pd.DataFrame, rules: ValueMatrixRules, ref: SegmentReference) -> np.ndarray:
    if _unplaced(features, ref, (rules.frequency, rules.order_value), ("vm_frequency", "vm_order_value")):
        return _empty(features)
    f, v = (features[c].to_numpy(dtype=float) for c in (rules.frequency, rules.order_value))
    return _coded([f > ref.thresholds["vm_frequency"], v > ref.thresholds["vm_order_value"]], rules.cells)[1]


def _abc(features: pd.DataFrame, rules: ABCRules, ref: SegmentReference) -> np.ndarray:
    if _unplaced(features, ref, (rules.value,), ()):
        return _empty(features)
    share_above = ref.share_above(rules.value, features[rules.value])
    return np.select(
        [share_above <= rules.a_share, share_above <= rules.a_share + rules.b_share], ["A", "B"], "C"
    ).astype(object)


def lifecycle_stage(features: pd.DataFrame, rules: LifecycleRules) -> pd.Series:
    return pd.Series(_lifecycle(features, rules), index=features.index, name="lifecycle")


def abc_tier(features: pd.DataFrame, rules: ABCRules, ref: SegmentReference) -> pd.Series:
    """A for the top ``a_share`` of customers by value, B for the next ``b_share``, C for the rest (ties: one tier)."""
    return pd.Series(_abc(features, rules, ref), index=features.index, name="abc_tier")


def _assign(features: pd.DataFrame, rules: SegmentRules, ref: SegmentReference) -> pd.DataFrame:
    """All rule segments in one frame (built once from arrays: the REST service pays this per request)."""
    columns = {
        **_rfm(features, rules.rfm, ref),
        "lifecycle": _lifecycle(features, rules.lifecycle),
        "value_matrix": _value_matrix(features, rules.value_matrix, ref),
        "abc_tier": _abc(features, rules.abc, ref),
    }
    return pd.DataFrame(columns, index=features.index)


def assign_segments(
    features: pd.DataFrame,
    rules: SegmentRules | None = None,
    reference: SegmentReference | None = None,
    keys: bool = True,
) -> pd.DataFrame:
    """Rule-based segments for a feature table (clusters are separate: they need a fitted model).

    Without ``reference`` each cutoff (``as_of``) is its own population; with one, every row is
    placed against that population. ``keys=False`` leaves out ``customer_id`` and ``as_of``.
    """
    rules = rules or load_segment_rules()
    if reference is not None:
        out = _assign(features, rules, reference)
    elif features.empty:
        out = _assign(features, rules, segment_reference(features, rules))
    else:
        parts = [
            _assign(group, rules, segment_reference(group, rules)) for _, group in features.groupby("as_of", sort=False)
        ]
        out = pd.concat(parts).loc[features.index]
    return pd.concat([features[["customer_id", "as_of"]], out], axis=1) if keys else out
