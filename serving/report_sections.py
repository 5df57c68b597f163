"""The report's sections in words and tables: segments, actions, value, migration, predicted vs realised, and the
summary at the top."""

from __future__ import annotations

import html
import json

import pandas as pd

from serving.outcomes import Outcome
from serving.report_parts import img, money, outcome_chart, table

HIGH_RISK = 0.5  # the summary counts customers at or above this P(churn)


def segment_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per RFM segment; per lifecycle stage when there are no RFM segments (an event log has no money)."""
    g = scores.groupby("rfm_segment" if scores["rfm_segment"].notna().any() else "lifecycle")
    table = pd.DataFrame(
        {
            "customers": g.size(),
            "share": g.size() / len(scores),
            "mean p_churn": g["p_churn"].mean(),
            "mean p_purchase": g["p_purchase"].mean(),
            "CLV": g["expected_value"].sum(min_count=1),  # none on an event log
            "value at risk": g["value_at_risk"].sum(min_count=1),  # all missing without a churn model
        }
    ).sort_values("value at risk", ascending=False)
    return table.dropna(axis=1, how="all").reset_index(names="segment")  # a task scored without a model: no column


def value_html(scores: pd.DataFrame, models_info: dict) -> str:
    clv = scores["expected_value"]
    if clv.isna().all():
        return (
            "<p><b>The log has no amounts</b> (an event log: one line per purchase), so there is no spend to "
            "value: CLV and value at risk are left empty, value segments too, and customers rank by P(churn).</p>"
        )
    share = clv.nlargest(max(1, len(clv) // 10)).sum() / clv.clip(lower=0).sum() if clv.clip(lower=0).sum() else 0
    if "value" in models_info:
        record = models_info["value"]["record"]
        m = record.test_metrics
        source = (
            f"CLV comes from the value model ({html.escape(record.family)}: predicted net spend in the next "
            f"{record.horizon_days} days) through serving/config/value.yaml. On its test cutoff "
            f"{html.escape(', '.join(record.test_cutoffs))} it ranked customers with a normalised Gini of "
            f"{m.get('gini', float('nan')):.3f} and predicted a total {m.get('total_error', float('nan')):+.1%} off the "
            "realised one (predicted vs realised per decile: the value model's chart under Models)."
        )
    else:
        source = (
            "<b>No value model is registered</b>: CLV uses the historic net spend rate. Train one with "
            "<code>propensity train --task value</code>."
        )
    return f"<p>{source} The top 10% of customers hold {share:.0%} of the positive CLV.</p>"


def migration_html(comparison: dict) -> str:
    if not comparison.get("previous_as_of"):
        return '<p class="note">This is the first scoring run in the store: nothing to compare with yet.</p>'
    migration = pd.DataFrame(comparison["migration"])
    matrix = migration.pivot_table(index="from", columns="to", values="customers", fill_value=0, aggfunc="sum")
    matrix = matrix.reset_index().rename(columns={"from": "from \\ to"})
    return (
        f"<p>Since the run of {comparison['previous_as_of']}: <b>{comparison['customers_moved_segment']:,}</b> of "
        f"{comparison['customers_in_both']:,} customers changed RFM segment; {comparison['customers_new']:,} are new and "
        f"{comparison['customers_gone']:,} dropped out of the population. Score drift (PSI, below 0.1 is stable, above 0.25 a large shift): "
        + ", ".join(f"P({k[6:]}) {v:.3f}" for k, v in comparison.items() if k.startswith("psi_p_") and v is not None)
        + ".</p>"
        + table(matrix, ("from \\ to",))
    )


def summary_html(scores: pd.DataFrame, comparison: dict, currency: str) -> str:
    """The report in a few sentences: how many at risk, how much value, the biggest segment of it, what changed."""
    parts = [f"{len(scores):,} customers were scored."]
    if scores["p_churn"].notna().any():
        high = scores["p_churn"] >= HIGH_RISK
        parts.append(f"{int(high.sum()):,} ({high.mean():.0%}) have a churn risk of {HIGH_RISK:.0%} or more.")
        at_risk = scores["value_at_risk"]
        if at_risk.notna().any() and at_risk.sum() > 0:
            top = at_risk.nlargest(min(100, len(at_risk))).sum() / at_risk.sum()
            by_segment = scores.groupby("rfm_segment")["value_at_risk"].sum()
            parts.append(
                f"Value at risk is {money(at_risk.sum(), currency)} in all; the 100 customers at the top of the risk "
                f"list hold {top:.0%} of it"
                + (
                    f", and the {html.escape(str(by_segment.idxmax()))} segment the most "
                    f"({money(by_segment.max(), currency)})."
                    if len(by_segment)
                    else "."
                )
            )
    if comparison.get("previous_as_of"):
        parts.append(
            f"Since the run of {comparison['previous_as_of']}, {comparison['customers_moved_segment']:,} customers "
            f"changed segment, {comparison['customers_new']:,} joined and {comparison['customers_gone']:,} dropped out."
        )
    return f'<p class="summary">{" ".join(parts)}</p>'


def action_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Customers, mean risk and value at risk per suggested action (what the retention team will do)."""
    g = scores.groupby("action")
    frame = pd.DataFrame(
        {
            "customers": g.size(),
            "mean p_churn": g["p_churn"].mean(),
            "value at risk": g["value_at_risk"].sum(min_count=1),
        }
    )
    return frame.sort_values(["value at risk", "customers"], ascending=False).dropna(axis=1, how="all").reset_index()


def outcome_html(outcome: Outcome | None, images: dict, horizon_days: int | None) -> str:
    if outcome is None:
        wait = f"{horizon_days} days" if horizon_days else "the churn horizon"
        return (
            '<p class="note">No stored scoring run is old enough yet: once the loaded log covers '
            f"{wait} after a run, this section compares its predicted churn with what customers did.</p>"
        )
    images["outcomes.png"] = outcome_chart(outcome.deciles, outcome.as_of, outcome.horizon_days)
    gap = (outcome.deciles["predicted"] - outcome.deciles["realised"]).abs()
    return (
        f"<p>The run of {outcome.as_of} scored {outcome.customers:,} customers; {outcome.horizon_days} days later "
        f"{outcome.realised:.1%} of them had not bought again, against {outcome.predicted:.1%} predicted. Per decile "
        f"of predicted risk the two are {gap.mean():.3f} apart on average (largest gap {gap.max():.3f}).</p>"
        f'<div class="figs">{img(images["outcomes.png"], "predicted vs realised churn")}</div>' + table(outcome.deciles)
    )


def alerts_html(scores: pd.DataFrame, currency: str) -> str:
    """The key indicators (serving/config/alerts.yaml): how many customers each alerts, and their value at risk."""
    from serving.alerts import alert_counts

    counts = alert_counts(scores)
    if counts.empty:
        return '<p class="note">No key indicator applies to these scores (their columns are missing).</p>'
    flagged = scores["alerts"].notna().sum() if "alerts" in scores else 0
    return (
        f"<p>{flagged:,} customers ({flagged / max(len(scores), 1):.0%}) have at least one alert. Each indicator and "
        "its critical value are set in serving/config/alerts.yaml; the risk list shows each customer's alerts.</p>"
        + table(counts.dropna(axis=1, how="all"), ("alert", "rule"), ("value at risk",), currency)
    )


CLUSTER_METHODS = {
    "kmeans": "K-Means",
    "two_step": "two-step clustering (BIRCH pre-clusters merged by Ward linkage)",
    "som": "a Kohonen self-organising map",
}
INDICATOR_WORDS = {
    "recency_days": "recency",
    "frequency_invoices": "orders",
    "monetary_total": "spend",
    "tenure_days": "tenure",
    "return_share_value": "returns",
}


def _tag(models_info: dict, key: str) -> str | None:
    return next((info["tags"][key] for info in models_info.values() if key in info.get("tags", {})), None)


def cluster_html(scores: pd.DataFrame, currency: str, models_info: dict | None = None) -> str:
    """The behavioural clusters profiled: size, typical recency, orders and spend, churn risk and value at risk."""
    if "cluster" not in scores or not (scores["cluster"] >= 0).any():
        return '<p class="note">The models carry no clusters.</p>'
    g = scores[scores["cluster"] >= 0].groupby("cluster")
    profile = pd.DataFrame({"customers": g.size(), "share": g.size() / len(scores)})
    for column, name in (("recency_days", "median days since last purchase"), ("frequency_invoices", "median orders")):
        if column in scores:
            profile[name] = g[column].median().round().astype("Int64")  # whole days and orders read best
    if "monetary_total" in scores and scores["monetary_total"].notna().any():
        profile["median spend"] = g["monetary_total"].median()
    profile["mean p_churn"] = g["p_churn"].mean()
    profile["value at risk"] = g["value_at_risk"].sum(min_count=1)
    profile = profile.dropna(axis=1, how="all").reset_index()
    riskiest = profile.loc[profile["mean p_churn"].idxmax()] if "mean p_churn" in profile else None  # churn model
    words = (
        f" Cluster {int(riskiest['cluster'])} is the riskiest: {int(riskiest['customers']):,} customers with a mean "
        f"churn risk of {riskiest['mean p_churn']:.0%}."
        if riskiest is not None
        else ""
    )
    method = CLUSTER_METHODS.get(_tag(models_info or {}, "clusters_method") or "", "")
    return (
        f"<p>Customers fall into {len(profile)} behavioural clusters (found by {method or 'clustering'} on the training "
        f"population's recency, orders and spend, numbered by spend).{words}</p>"
        + table(profile, (), ("value at risk", "median spend"), currency)
    )


def index_html(scores: pd.DataFrame, currency: str, models_info: dict) -> str:
    """The composite customer index: its weights in words, and churn risk and value at risk by fifth of the index."""
    if "customer_index" not in scores or scores["customer_index"].isna().all():
        return '<p class="note">The models carry no customer index.</p>'
    fifth = pd.cut(
        scores["index_percentile"], [-0.1, 20, 40, 60, 80, 100], labels=["0-20", "20-40", "40-60", "60-80", "80-100"]
    )
    g = scores.groupby(fifth.rename("index percentile"), observed=True)
    bands = pd.DataFrame({"customers": g.size(), "median index": g["customer_index"].median().round(1)})
    bands["mean p_churn"] = g["p_churn"].mean()
    bands["value at risk"] = g["value_at_risk"].sum(min_count=1)
    bands = bands.dropna(axis=1, how="all").iloc[::-1].reset_index()
    weights = json.loads(_tag(models_info, "index_weights") or "{}")
    weighed = ", ".join(
        f"{INDICATOR_WORDS.get(k, k)} {w:.0%}" for k, w in sorted(weights.items(), key=lambda kv: -kv[1])
    )
    words = f" Its weights: {weighed}." if weighed else ""
    if "mean p_churn" in bands and len(bands) > 1 and bands["mean p_churn"].notna().all():
        top, bottom = bands.iloc[0], bands.iloc[-1]
        words += (
            f" Customers in the index's {top['index percentile']} band have a mean churn risk of {top['mean p_churn']:.0%}"
            f", those in its {bottom['index percentile']} band {bottom['mean p_churn']:.0%}."
        )
    return (
        "<p>The customer index (0-100) sums each customer's standardised indicators with weights fitted on the training "
        f"population (segments.yaml <code>index</code>); a percentile places them in that population.{words}</p>"
        + table(bands, ("index percentile",), ("value at risk",), currency)
    )
