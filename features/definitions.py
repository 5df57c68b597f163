"""The feature catalogue: one row per feature, the single source for docs and the feature spec.

``requires`` names the optional canonical columns a feature needs; a feature whose column is
missing from the log is left out of the table, never faked.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOWS_DAYS = (30, 90, 180, 365)
TREND_DAYS = 90


@dataclass(frozen=True)
class Feature:
    name: str
    definition: str
    window: str
    unit: str
    requires: tuple[str, ...] = ()
    categorical: bool = False


_ALL = "all history before as_of"
FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "time from the last purchase to as_of", _ALL, "days (fractional)"),
    Feature("frequency_invoices", "distinct purchase invoices", _ALL, "count"),
    Feature("frequency_days", "distinct days with a purchase", _ALL, "count"),
    Feature("monetary_total", "value of purchase lines (returns excluded)", _ALL, "currency"),
    Feature("monetary_mean", "monetary_total / frequency_invoices", _ALL, "currency per invoice"),
    Feature("net_spend_total", "purchases minus returns", _ALL, "currency"),
    Feature("tenure_days", "time from the first purchase to as_of", _ALL, "days (fractional)"),
    Feature("btyd_frequency", "repeat purchase days (frequency_days - 1), as in BG/NBD", _ALL, "count"),
    Feature("btyd_recency", "first to last purchase day, as in BG/NBD", _ALL, "whole days"),
    Feature("btyd_T", "first purchase day to as_of day, as in BG/NBD", _ALL, "whole days"),
    *(
        Feature(f"invoices_{w}d", f"purchase invoices in the last {w} days", f"[as_of - {w}d, as_of)", "count")
        for w in WINDOWS_DAYS
    ),
    *(
        Feature(f"spend_{w}d", f"value of purchase lines in the last {w} days", f"[as_of - {w}d, as_of)", "currency")
        for w in WINDOWS_DAYS
    ),
    Feature("gap_mean_days", "mean gap between consecutive purchase days (null with one purchase day)", _ALL, "days"),
    Feature("gap_std_days", "sample std of those gaps (null with fewer than 3 purchase days)", _ALL, "days"),
    Feature(
        "overdue_ratio",
        "recency_days / gap_mean_days: above 1 means later than the customer's own rhythm",
        _ALL,
        "ratio",
    ),
    Feature(
        "spend_trend",
        "(spend last 90d - spend 90-180d ago) / their sum; null when both are 0",
        "[as_of - 180d, as_of)",
        "ratio in [-1, 1]",
    ),
    Feature("distinct_products", "distinct products bought", _ALL, "count", requires=("product_id",)),
    Feature("basket_lines_mean", "purchase lines per purchase invoice", _ALL, "lines"),
    Feature("basket_units_mean", "units per purchase invoice", _ALL, "units", requires=("quantity",)),
    Feature("return_share_lines", "return lines / all lines", _ALL, "share in [0, 1]"),
    Feature("return_share_value", "returned value / (purchased + returned value)", _ALL, "share in [0, 1]"),
    Feature("weekend_share", "share of purchase invoices on Saturday or Sunday", _ALL, "share in [0, 1]"),
    Feature(
        "main_country", "country of most purchase invoices (ties: alphabetical)", _ALL, "category", ("country",), True
    ),
    Feature(
        "main_channel", "channel of most purchase invoices (ties: alphabetical)", _ALL, "category", ("channel",), True
    ),
)

LABELS = {
    "churn": "1 when a customer active in the lookback window makes no purchase in [as_of, as_of + churn_horizon_days)",
    "purchase": "1 when the customer makes a purchase in [as_of, as_of + purchase_horizon_days)",
    "spend": "net spend (purchases minus returns) in [as_of, as_of + churn_horizon_days)",
}


def available_features(columns: set[str] | list[str]) -> list[Feature]:
    """The features a log with these canonical columns supports, in catalogue order."""
    cols = set(columns)
    return [f for f in FEATURES if set(f.requires) <= cols]


def feature_table_markdown() -> str:
    rows = ["| name | definition | window | unit | needs |", "|---|---|---|---|---|"]
    for f in FEATURES:
        rows.append(f"| `{f.name}` | {f.definition} | {f.window} | {f.unit} | {', '.join(f.requires) or '-'} |")
    return "\n".join(rows)
