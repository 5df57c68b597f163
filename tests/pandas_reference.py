"""An idiomatic pandas implementation of the same features, kept as the benchmark reference.

It follows the definitions in docs/features.md independently of the Ibis code (filter the log to
``ts < as_of``, group by customer), so agreement between the two is a real check. For many cutoffs
it simply loops, as a pandas user would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = 86400
WINDOWS = (30, 90, 180, 365)


def _events(tx: pd.DataFrame) -> pd.DataFrame:
    sale = ~tx["is_return"]
    frame = pd.DataFrame(
        {
            "customer_id": tx["customer_id"],
            "invoice_id": tx["invoice_id"],
            "ts_s": tx["ts"].astype("datetime64[s]").astype("int64"),
            "sale_value": tx["amount"].where(sale, 0.0),
            "return_value": (-tx["amount"]).where(~sale, 0.0),
            "sale_lines": sale.astype("int64"),
            "return_lines": (~sale).astype("int64"),
            "sale_units": tx["quantity"].where(sale, 0.0),
            "country": tx["country"].astype(str),
        }
    )
    ev = (
        frame.groupby(["customer_id", "invoice_id", "ts_s"], sort=False, observed=True)
        .agg(
            sale_value=("sale_value", "sum"),
            return_value=("return_value", "sum"),
            sale_lines=("sale_lines", "sum"),
            return_lines=("return_lines", "sum"),
            sale_units=("sale_units", "sum"),
            country=("country", "min"),
        )
        .reset_index()
    )
    ev["is_purchase"] = ev["sale_lines"] > 0
    ev["day"] = ev["ts_s"] // DAY
    ev = ev.sort_values("ts_s", kind="stable")
    ev["first_purchase"] = ev["is_purchase"] & ~ev.duplicated(["customer_id", "invoice_id", "is_purchase"])
    return ev


def _robust_z(x: pd.Series, out: pd.DataFrame, column: str, floor: pd.Series, enough: pd.Series) -> pd.Series:
    """(x - median) / max(IQR / 1.349, floor), where the customer has enough history."""
    scale = np.maximum((out[f"{column}_q3"] - out[f"{column}_q1"]) / 1.349, floor)
    return ((x - out[f"{column}_q2"]) / scale).where(enough & (scale > 0))


def reference_features(tx: pd.DataFrame, as_of: pd.Timestamp, lookback_days: int = 365) -> pd.DataFrame:
    as_of = pd.Timestamp(as_of)
    as_of_s = int(as_of.timestamp())
    as_of_day = as_of_s // DAY
    past = tx[tx["ts"] < as_of]
    ev = _events(past)
    ev["age"] = as_of_s - ev["ts_s"]
    ev["weekend"] = ev["first_purchase"] & ((ev["day"] + 3) % 7 >= 5)
    purchases = ev[ev["is_purchase"]]
    g = ev.groupby("customer_id", observed=True)
    out = pd.DataFrame(
        {
            "last_s": purchases.groupby("customer_id", observed=True)["ts_s"].max(),
            "first_s": purchases.groupby("customer_id", observed=True)["ts_s"].min(),
            "frequency_invoices": g["first_purchase"].sum(),
            "monetary_total": g["sale_value"].sum(),
            "return_value": g["return_value"].sum(),
            "sale_lines": g["sale_lines"].sum(),
            "return_lines": g["return_lines"].sum(),
            "sale_units": g["sale_units"].sum(),
            "weekend": g["weekend"].sum(),
        }
    )
    for w in WINDOWS:
        inside = ev["age"] <= w * DAY
        out[f"invoices_{w}d"] = (ev["first_purchase"] & inside).groupby(ev["customer_id"], observed=True).sum()
        out[f"spend_{w}d"] = ev["sale_value"].where(inside, 0.0).groupby(ev["customer_id"], observed=True).sum()
    for w in (7, 14):
        inside = ev["first_purchase"] & (ev["age"] <= w * DAY)
        out[f"invoices_{w}d"] = inside.groupby(ev["customer_id"], observed=True).sum()
    prev = (ev["age"] > 90 * DAY) & (ev["age"] <= 180 * DAY)
    out["spend_prev"] = ev["sale_value"].where(prev, 0.0).groupby(ev["customer_id"], observed=True).sum()
    out["invoices_prev"] = (ev["first_purchase"] & prev).groupby(ev["customer_id"], observed=True).sum()
    year_ago = ev["first_purchase"] & (ev["age"] > 275 * DAY) & (ev["age"] <= 365 * DAY)
    out["invoices_year_ago"] = year_ago.groupby(ev["customer_id"], observed=True).sum()
    out = out[out["last_s"].notna() & (as_of_s - out["last_s"] <= lookback_days * DAY)]

    days = (
        purchases.groupby(["customer_id", "day"], observed=True)["sale_value"]
        .sum()
        .rename("day_spend")
        .reset_index()
        .sort_values(["customer_id", "day"])
    )
    days["gap"] = days.groupby("customer_id", observed=True)["day"].diff()
    dg = days.groupby("customer_id", observed=True).agg(
        frequency_days=("day", "size"),
        first_day=("day", "min"),
        last_day=("day", "max"),
        gap_n=("gap", "count"),
        gap_sum=("gap", "sum"),
        gap_sumsq=("gap", lambda s: (s * s).sum()),
        last_gap=("gap", "last"),
        day_spend_last=("day_spend", "last"),
    )
    quartiles = {
        f"{column}_q{i}": days.groupby("customer_id", observed=True)[column].quantile(q)
        for column in ("gap", "day_spend")
        for i, q in ((1, 0.25), (2, 0.5), (3, 0.75))
    }
    dg = dg.join(pd.DataFrame(quartiles))
    out = out.join(dg)
    sales = past[~past["is_return"] & past["product_id"].notna()]
    out["distinct_products"] = sales.groupby("customer_id", observed=True)["product_id"].nunique()
    times = sales.groupby(["customer_id", "product_id"], observed=True)["ts"].nunique()
    out["repeat_products"] = (times >= 2).groupby(level="customer_id", observed=True).sum()
    firsts = ev[ev["first_purchase"]]
    counts = firsts.groupby(["customer_id", "country"], observed=True).size().rename("n").reset_index()
    counts = counts.sort_values(["customer_id", "n", "country"], ascending=[True, False, True])
    out["main_country"] = counts.drop_duplicates("customer_id").set_index("customer_id")["country"]

    recency = (as_of_s - out["last_s"]) / DAY
    n = out["gap_n"]
    gap_mean = (out["gap_sum"] / n).where(n > 0)
    var = ((n * out["gap_sumsq"] - out["gap_sum"] ** 2) / (n * (n - 1))).where(n >= 2)
    s90, sprev = out["spend_90d"], out["spend_prev"]
    i90, iprev = out["invoices_90d"], out["invoices_prev"]
    result = pd.DataFrame(
        {
            "recency_days": recency,
            "frequency_invoices": out["frequency_invoices"],
            "frequency_days": out["frequency_days"],
            "monetary_total": out["monetary_total"],
            "monetary_mean": out["monetary_total"] / out["frequency_invoices"],
            "net_spend_total": out["monetary_total"] - out["return_value"],
            "tenure_days": (as_of_s - out["first_s"]) / DAY,
            "btyd_frequency": out["frequency_days"] - 1,
            "btyd_recency": out["last_day"] - out["first_day"],
            "btyd_T": as_of_day - out["first_day"],
            **{f"invoices_{w}d": out[f"invoices_{w}d"] for w in (7, 14, *WINDOWS)},
            **{f"spend_{w}d": out[f"spend_{w}d"] for w in WINDOWS},
            "gap_mean_days": gap_mean,
            "gap_std_days": np.sqrt(var),
            "overdue_ratio": (recency / gap_mean).where(gap_mean > 0),
            "spend_trend": ((s90 - sprev) / (s90 + sprev)).where(s90 + sprev > 0),
            "invoice_trend": ((i90 - iprev) / (i90 + iprev)).where(i90 + iprev > 0),
            "gap_cv": (np.sqrt(var) / gap_mean).where(gap_mean > 0),
            "recency_prev_days": as_of_day - (out["last_day"] - out["last_gap"]),
            "gap_deviation": _robust_z(
                as_of_day - out["last_day"], out, "gap", np.maximum(0.1 * out["gap_q2"], 1.0), n >= 3
            ),
            "spend_deviation": _robust_z(
                out["day_spend_last"], out, "day_spend", 0.1 * out["day_spend_q2"].abs(), out["frequency_days"] >= 3
            ),
            "invoices_year_ago_90d": out["invoices_year_ago"].where(out["first_s"] <= as_of_s - 365 * DAY),
            "distinct_products": out["distinct_products"],
            "basket_lines_mean": out["sale_lines"] / out["frequency_invoices"],
            "basket_units_mean": out["sale_units"] / out["frequency_invoices"],
            "unit_price_mean": (out["monetary_total"] / out["sale_units"]).where(out["sale_units"] > 0),
            "repeat_product_share": out["repeat_products"] / out["distinct_products"],
            "return_share_lines": out["return_lines"] / (out["sale_lines"] + out["return_lines"]),
            "return_share_value": (out["return_value"] / (out["monetary_total"] + out["return_value"])).where(
                out["monetary_total"] + out["return_value"] > 0
            ),
            "weekend_share": out["weekend"] / out["frequency_invoices"],
            "main_country": out["main_country"],
        }
    )
    result.index.name = "customer_id"
    result = result.reset_index()
    result.insert(1, "as_of", as_of)
    return result.sort_values("customer_id").reset_index(drop=True)
