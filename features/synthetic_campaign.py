"""A simulated retention campaign with a known, heterogeneous effect, for testing campaign measurement and uplift.

Given a log, the customers contacted at ``as_of`` and the horizon, the treated customers' behaviour inside
``[as_of, as_of + horizon)`` is changed by their state at ``as_of``:

- **at risk** (last purchase 31-180 days before ``as_of``, or recent with fewer than ``loyal_min_invoices``
  invoices): a contact rescues a would-be churner (no purchase in the horizon) with probability ``rescue``: they
  repeat their last basket on a day inside the horizon;
- **lost** (silent for more than 180 days): a contact changes nothing;
- **loyal** (bought in the last 30 days, at least ``loyal_min_invoices`` invoices): a contact annoys them with
  probability ``annoy``: their purchases inside the horizon are gone.

The truth (each treated customer's group and whether the contact flipped their outcome) comes back with the log, so
a test can compare a measured effect with the simulated one. Control and untouched customers are left as they are.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

DAY = pd.Timedelta(days=1)


def _states(lines: pd.DataFrame, as_of: pd.Timestamp, loyal_min_invoices: int) -> pd.Series:
    before = lines[(lines["ts"] < as_of) & (lines["quantity"] > 0)]
    g = before.groupby("customer_id", observed=True)
    recency = (as_of - g["ts"].max()) / DAY
    invoices = g["invoice_id"].nunique()
    state = pd.Series("at risk", index=recency.index)
    state[recency > 180] = "lost"
    state[(recency <= 30) & (invoices >= loyal_min_invoices)] = "loyal"
    return state


def simulate_campaign(
    log: pa.Table,
    treated: list[str],
    as_of: date,
    horizon_days: int,
    seed: int = 0,
    rescue: float = 0.5,
    annoy: float = 0.3,
    loyal_min_invoices: int = 5,
) -> tuple[pa.Table, pd.DataFrame]:
    """The log as it would have been had ``treated`` been contacted at ``as_of``, and the truth per treated customer
    (state, would_churn, churned, and effect: +1 rescued, -1 annoyed away, 0 unchanged)."""
    rng = np.random.default_rng(seed)
    lines = log.to_pandas()
    lines["customer_id"] = lines["customer_id"].astype(str)
    start = pd.Timestamp(as_of)
    end = start + horizon_days * DAY
    state = _states(lines, start, loyal_min_invoices)
    treated = sorted(set(treated) & set(state.index))
    inside = (lines["ts"] >= start) & (lines["ts"] < end)
    bought = set(lines.loc[inside & (lines["quantity"] > 0), "customer_id"])
    truth = pd.DataFrame({"customer_id": treated, "state": state.reindex(treated).to_numpy()})
    truth["would_churn"] = ~truth["customer_id"].isin(bought)
    draw = rng.uniform(size=len(truth))
    rescued = (truth["state"] == "at risk") & truth["would_churn"] & (draw < rescue)
    annoyed = (truth["state"] == "loyal") & ~truth["would_churn"] & (draw < annoy)
    truth["effect"] = rescued.astype(int) - annoyed.astype(int)
    truth["churned"] = (truth["would_churn"] & ~rescued) | annoyed

    drop = inside & lines["customer_id"].isin(set(truth.loc[annoyed, "customer_id"]))
    before = lines[(lines["ts"] < start) & (lines["quantity"] > 0)]
    last_ts = before.groupby("customer_id", observed=True)["ts"].max()
    saved = truth.loc[rescued, "customer_id"].tolist()
    basket = before[before["customer_id"].isin(saved)]
    basket = basket[basket["ts"] == basket["customer_id"].map(last_ts)].copy()
    day = {
        c: start + int(d) * DAY + pd.Timedelta(hours=12)
        for c, d in zip(saved, rng.integers(1, horizon_days - 1, len(saved)), strict=True)
    }
    basket["ts"] = basket["customer_id"].map(day).astype(lines["ts"].dtype)
    basket["invoice_id"] = "S" + basket["customer_id"]
    out = pd.concat([lines[~drop], basket], ignore_index=True).sort_values(["ts", "customer_id"], kind="stable")
    return pa.Table.from_pandas(out.reset_index(drop=True), preserve_index=False), truth
