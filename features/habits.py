"""The habit features of the catalogue: the customer's purchase rhythm, its trends, the same season a year ago,
and deviation detection (their latest behaviour against their own history). ``features.definitions`` places them
in the catalogue."""

from __future__ import annotations

from features.feature import ALL, Feature
from features.measures import (
    TREND_DAYS,
    gap_deviation,
    gap_mean,
    gap_std,
    ratio,
    recency,
    spend_deviation,
    trend,
    year_ago,
)

HABITS: tuple[Feature, ...] = (
    Feature(
        "gap_mean_days",
        "mean gap between consecutive purchase days (null with one purchase day)",
        ALL,
        "days",
        gap_mean,
    ),
    Feature("gap_std_days", "sample std of those gaps (null with fewer than 3 purchase days)", ALL, "days", gap_std),
    Feature(
        "overdue_ratio",
        "recency_days / gap_mean_days: above 1 means later than the customer's own rhythm",
        ALL,
        "ratio",
        lambda h: ratio(recency(h), gap_mean(h)),
    ),
    Feature(
        "spend_trend",
        "(spend last 90d - spend 90-180d ago) / their sum; null when both are 0",
        "[as_of - 180d, as_of)",
        "ratio in [-1, 1]",
        lambda h: trend(h[f"spend_{TREND_DAYS}d"], h.spend_prev),
    ),
    Feature(
        "invoice_trend",
        "(invoices last 90d - invoices 90-180d ago) / their sum; null when both are 0",
        "[as_of - 180d, as_of)",
        "ratio in [-1, 1]",
        lambda h: trend(h[f"invoices_{TREND_DAYS}d"], h.invoices_prev),
    ),
    Feature(
        "gap_cv",
        "gap_std_days / gap_mean_days: how irregular the purchase rhythm is (null with fewer than 3 purchase days)",
        ALL,
        "ratio",
        lambda h: ratio(gap_std(h), gap_mean(h)),
    ),
    Feature(
        "recency_prev_days",
        "days from the second-to-last purchase day to the as_of day (null with one purchase day)",
        ALL,
        "whole days",
        lambda h: (h.as_of_day - (h.last_day - h.last_gap)).cast("float64"),
    ),
    Feature(
        "gap_deviation",
        "robust z-score of the open gap (whole days since the last purchase day) against the customer's own gaps: "
        "(gap - median) / max(IQR / 1.349, 10% of the median, 1 day); null with fewer than 3 gaps; not a model input",
        ALL,
        "robust z",
        gap_deviation,
        model_input=False,
    ),
    Feature(
        "spend_deviation",
        "robust z-score of the last purchase day's spend against all the customer's purchase days: (spend - median) "
        "/ max(IQR / 1.349, 10% of the median); null with fewer than 3 purchase days; not a model input",
        ALL,
        "robust z",
        spend_deviation,
        model_input=False,
    ),
    Feature(
        "invoices_year_ago_90d",
        "purchase invoices in the 90 days that followed this date a year earlier (null if not a customer then)",
        "[as_of - 365d, as_of - 275d)",
        "count",
        year_ago,
    ),
)
