"""The feature catalogue: one entry per feature, with its expression, the single source for the feature
table, the model spec and docs/features.md (``python -m features.docs`` rewrites the table; a test fails
when it is stale).

Each ``expr`` maps the per-customer, per-cutoff aggregates of ``features.folds`` (the ``history`` table)
to the feature. ``requires`` names the optional canonical columns a feature needs; a feature whose
column is missing from the log is left out of the table, never faked.
"""

from __future__ import annotations

from dataclasses import replace

from features.cutoffs import DAY
from features.feature import ALL, Feature, col, per_invoice
from features.habits import HABITS
from features.measures import ACTIVITY_DAYS, WINDOWS_DAYS, ratio, recency

FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "time from the last purchase to as_of", ALL, "days (fractional)", recency),
    Feature("frequency_invoices", "distinct purchase invoices", ALL, "count", col("frequency_invoices")),
    Feature("frequency_days", "distinct days with a purchase", ALL, "count", col("frequency_days")),
    Feature(
        "monetary_total", "value of purchase lines (returns excluded)", ALL, "currency", lambda h: h.monetary_total
    ),
    Feature(
        "monetary_mean",
        "monetary_total / frequency_invoices",
        ALL,
        "currency per invoice",
        lambda h: h.monetary_total / h.frequency_invoices,
    ),
    Feature("net_spend_total", "purchases minus returns", ALL, "currency", lambda h: h.monetary_total - h.return_value),
    Feature(
        "tenure_days",
        "time from the first purchase to as_of",
        ALL,
        "days (fractional)",
        lambda h: (h.as_of_s - h.first_s) / DAY,
    ),
    Feature(
        "btyd_frequency",
        "repeat purchase days (frequency_days - 1), as in BG/NBD",
        ALL,
        "count",
        lambda h: h.frequency_days - 1,
    ),
    Feature(
        "btyd_recency",
        "first to last purchase day, as in BG/NBD",
        ALL,
        "whole days",
        lambda h: h.last_day - h.first_day,
    ),
    Feature(
        "btyd_T",
        "first purchase day to as_of day, as in BG/NBD",
        ALL,
        "whole days",
        lambda h: h.as_of_day - h.first_day,
    ),
    *(
        Feature(
            f"invoices_{w}d",
            f"purchase invoices in the last {w} days",
            f"[as_of - {w}d, as_of)",
            "count",
            lambda h, w=w: h[f"invoices_{w}d"],
        )
        for w in (*ACTIVITY_DAYS, *WINDOWS_DAYS)
    ),
    *(
        Feature(
            f"spend_{w}d",
            f"value of purchase lines in the last {w} days",
            f"[as_of - {w}d, as_of)",
            "currency",
            lambda h, w=w: h[f"spend_{w}d"],
        )
        for w in WINDOWS_DAYS
    ),
    *HABITS,  # rhythm, trends and deviation: features/habits.py
    Feature("distinct_products", "distinct products bought", ALL, "count", col("distinct_products"), ("product_id",)),
    Feature(
        "basket_lines_mean",
        "purchase lines per purchase invoice",
        ALL,
        "lines",
        lambda h: h.sale_lines / h.frequency_invoices,
    ),
    Feature(
        "basket_units_mean",
        "units per purchase invoice",
        ALL,
        "units",
        expr=per_invoice("sale_units"),
        requires=("quantity",),
    ),
    Feature(
        "unit_price_mean",
        "value of purchase lines / units bought: the customer's price level",
        ALL,
        "currency per unit",
        expr=lambda h: ratio(h.monetary_total, h.sale_units),
        requires=("quantity",),
    ),
    Feature(
        "repeat_product_share",
        "share of the distinct products bought again later (on a later invoice)",
        ALL,
        "share in [0, 1]",
        expr=lambda h: h.repeat_products / h.distinct_products,
        requires=("product_id",),
    ),
    Feature(
        "return_share_lines",
        "return lines / all lines",
        ALL,
        "share in [0, 1]",
        lambda h: h.return_lines / (h.sale_lines + h.return_lines),
    ),
    Feature(
        "return_share_value",
        "returned value / (purchased + returned value)",
        ALL,
        "share in [0, 1]",
        lambda h: ratio(h.return_value, h.monetary_total + h.return_value),
    ),
    Feature(
        "weekend_share",
        "share of purchase invoices on Saturday or Sunday",
        ALL,
        "share in [0, 1]",
        lambda h: h.weekend_invoices / h.frequency_invoices,
    ),
    Feature(
        "main_country",
        "country of most purchase invoices (ties: alphabetical)",
        ALL,
        "category",
        lambda h: h.main_country,
        ("country",),
        True,
    ),
    Feature(
        "main_channel",
        "channel of most purchase invoices (ties: alphabetical)",
        ALL,
        "category",
        lambda h: h.main_channel,
        ("channel",),
        True,
    ),
)

# Features of money: a log without amounts (an event log: one line per purchase) leaves them out.
MONEY = (
    "monetary_total",
    "monetary_mean",
    "net_spend_total",
    "spend_trend",
    "unit_price_mean",
    "return_share_value",
    "spend_deviation",
)
MONEY += tuple(f"spend_{w}d" for w in WINDOWS_DAYS)
FEATURES = tuple(replace(f, requires=(*f.requires, "amount")) if f.name in MONEY else f for f in FEATURES)


def available_features(columns: set[str] | list[str]) -> list[Feature]:
    """The features a log with these canonical columns supports, in catalogue order."""
    cols = set(columns)
    return [f for f in FEATURES if set(f.requires) <= cols]
