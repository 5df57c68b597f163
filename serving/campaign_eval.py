"""Did the campaign work? Treated against control once the horizon has passed in the loaded log.

A member churned when they made no purchase in ``[as_of, as_of + horizon)``, the churn label's own definition
(``features.build.labels_expr``); their spend is their net spend in that window. The incremental retention is the
control group's churn rate minus the treated group's, with Newcombe's hybrid score interval for a difference of two
proportions (Newcombe 1998, method 10: it keeps its coverage for small groups and rates near 0 or 1, where the Wald
interval does not); the incremental value per treated customer is the difference of mean spend, with a bootstrap
percentile interval (scipy.stats.bootstrap, seeded). Both are reported overall, per churn-risk decile and per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from features.build import labels_expr
from features.cutoffs import Horizons
from serving.campaigns import Campaign

LEVEL = 0.95


@dataclass(frozen=True)
class Evaluation:
    campaign: Campaign
    readable: bool
    overall: pd.DataFrame | None = None  # one row: treated vs control with intervals, cost and return
    by_decile: pd.DataFrame | None = None
    by_segment: pd.DataFrame | None = None
    outcomes: pd.DataFrame | None = None  # per member: group, churned, spend


def wilson(successes: float, n: int, z: float) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe(x1: float, n1: int, x2: float, n2: int, level: float = LEVEL) -> tuple[float, float, float]:
    """p1 - p2 and Newcombe's hybrid score interval (method 10) from the two Wilson intervals."""
    z = stats.norm.ppf(0.5 + level / 2)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def minimum_detectable_effect(
    rate: float, treated: int, control: int, level: float = LEVEL, power: float = 0.8
) -> float:
    """The smallest difference in churn rates a two-sided test at ``level`` detects with ``power``, for groups of
    these sizes around a churn rate of ``rate`` (normal approximation)."""
    if treated < 1 or control < 1:
        return float("nan")
    z = stats.norm.ppf(0.5 + level / 2) + stats.norm.ppf(power)
    return float(z * np.sqrt(rate * (1 - rate) * (1 / treated + 1 / control)))


def member_outcomes(tx, campaign: Campaign, members: pd.DataFrame) -> pd.DataFrame:
    """Per member: churned (no purchase within the horizon) and net spend in it (0 on an event log)."""
    as_of = pd.Timestamp(campaign.as_of).date()
    horizon = Horizons(campaign.horizon_days, campaign.horizon_days)
    came_back = labels_expr(tx, [as_of], horizon).to_pandas()
    came_back = came_back.set_index(came_back["customer_id"].astype(str)).reindex(members["customer_id"])
    spend = came_back["spend"] if "spend" in came_back else pd.Series(0.0, index=came_back.index)
    return members.assign(
        churned=(came_back["n_churn_h"].fillna(0) == 0).to_numpy(), spend=spend.fillna(0.0).to_numpy(dtype=float)
    )


def evaluate(tx, last_ts: pd.Timestamp, campaign: Campaign, members: pd.DataFrame, seed: int = 0) -> Evaluation:
    """The campaign's outcome, or ``readable=False`` while the loaded log stops before the end of its horizon."""
    if pd.Timestamp(last_ts).normalize() < campaign.readable_from:
        return Evaluation(campaign, readable=False)
    outcomes = member_outcomes(tx, campaign, members)
    outcomes["decile"] = outcomes["stratum"].str.split("|").str[0].str[1:].astype(int)
    cost = campaign.cost_per_contact
    overall = pd.DataFrame([_compare(outcomes, cost, seed)])
    by_decile = pd.DataFrame(
        [{"decile": d, **_compare(g, cost, seed)} for d, g in outcomes.groupby("decile", sort=True)]
    )
    by_segment = pd.DataFrame(
        [{"segment": s, **_compare(g, cost, seed)} for s, g in outcomes.groupby("segment", sort=True)]
    )
    return Evaluation(campaign, True, overall, by_decile, by_segment, outcomes)


def _compare(group: pd.DataFrame, cost_per_contact: float, seed: int) -> dict:
    t, c = group[group["group"] == "treated"], group[group["group"] == "control"]
    row = {"treated": len(t), "control": len(c)}
    if len(t) == 0 or len(c) == 0:
        return row
    row["churn treated"], row["churn control"] = t["churned"].mean(), c["churned"].mean()
    d, low, high = newcombe(c["churned"].sum(), len(c), t["churned"].sum(), len(t))
    row |= {"incremental retention": d, "retention low": low, "retention high": high}
    spend_t, spend_c = t["spend"].to_numpy(float), c["spend"].to_numpy(float)
    row["incremental value per contact"] = spend_t.mean() - spend_c.mean()
    if len(t) >= 2 and len(c) >= 2 and np.ptp(np.r_[spend_t, spend_c]) > 0:  # an event log has no spend to vary
        boot = stats.bootstrap(
            (spend_t, spend_c),
            lambda a, b, axis=-1: a.mean(axis=axis) - b.mean(axis=axis),
            n_resamples=2000,
            confidence_level=LEVEL,
            method="percentile",
            random_state=np.random.default_rng(seed),
            vectorized=True,
        )
        row["value low"], row["value high"] = boot.confidence_interval
    row["customers retained"] = d * len(t)
    row["incremental value"] = row["incremental value per contact"] * len(t)
    row["cost"] = cost_per_contact * len(t)
    row["return on cost"] = (row["incremental value"] - row["cost"]) / row["cost"] if row["cost"] > 0 else np.nan
    return row
