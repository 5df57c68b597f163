"""The report's campaigns section: each campaign's treated vs control outcome once its horizon has passed."""

from __future__ import annotations

import html

import pandas as pd

from serving.campaign_eval import evaluate
from serving.campaigns import list_campaigns, load_campaign
from serving.report_parts import img, money, table


def campaigns_html(con, tx, last_ts: pd.Timestamp, currency: str = "") -> str:
    """A table of the stored campaigns with their measured effect (95% intervals), or when it becomes readable."""
    listed = list_campaigns(con)
    if listed.empty:
        return (
            '<p class="note">No campaign has been recorded. <code>propensity target --campaign NAME --holdout 10%'
            "</code> holds out a control group so that the next report can tell whether contacting helped.</p>"
        )
    rows, words = [], []
    for name in listed["name"]:
        campaign, members = load_campaign(con, name)
        result = evaluate(tx, last_ts, campaign, members)
        row = {"campaign": name, "as of": campaign.as_of, "contacted": campaign.treated, "held out": campaign.control}
        if not result.readable:
            row["result"] = f"readable once the log reaches {campaign.readable_from.date()}"
            rows.append(row)
            continue
        o = result.overall.iloc[0]
        row |= {
            "churn contacted": f"{o['churn treated']:.1%}",
            "churn held out": f"{o['churn control']:.1%}",
            "incremental retention (95% CI)": f"{o['incremental retention']:+.1%} ({o['retention low']:+.1%} to "
            f"{o['retention high']:+.1%})",
            "incremental value": money(o["incremental value"], currency),
            "result": "helped" if o["retention low"] > 0 else ("hurt" if o["retention high"] < 0 else "not shown"),
        }
        rows.append(row)
        words.append(
            f"<b>{html.escape(name)}</b>: contacting {'retained' if o['incremental retention'] >= 0 else 'lost'} about "
            f"{abs(o['customers retained']):,.0f} customers ({o['incremental retention']:+.1%} of those contacted)"
            + (
                " — the interval excludes zero."
                if row["result"] in ("helped", "hurt")
                else " — not distinguishable from no effect."
            )
        )
    intro = (
        "<p>Each campaign's contacted customers against its randomly held-out control group, over the churn "
        "horizon: the difference is what contacting did. " + " ".join(words) + "</p>"
    )
    body = intro + table(pd.DataFrame(rows), ("campaign", "as of", "result", "incremental retention (95% CI)"))
    return body + _uplift_html()


def _uplift_html() -> str:
    """The latest uplift run's Qini curve and figures (``propensity campaigns uplift``), when there is one."""
    import tempfile
    from pathlib import Path

    import mlflow

    from models.registry import EXPERIMENT

    try:
        runs = mlflow.search_runs(
            experiment_names=[EXPERIMENT], filter_string="tags.kind = 'uplift'", order_by=["start_time DESC"]
        )
    except mlflow.exceptions.MlflowException:
        return ""
    if runs.empty:
        return ""
    run = runs.iloc[0]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            png = Path(
                mlflow.artifacts.download_artifacts(run_id=run["run_id"], artifact_path="qini.png", dst_path=tmp)
            )
        except (OSError, mlflow.exceptions.MlflowException):
            return ""
        image = img(png.read_bytes(), "Qini curve")
    best = run["tags.best"]
    words = (
        f"<p>The uplift model learnt from {html.escape(run['tags.campaigns'])} ({html.escape(best)}) has a Qini "
        f"coefficient of {run[f'metrics.qini_{best}']:+.3f} on held-out members, against "
        f"{run['metrics.qini_churn_risk']:+.3f} for ranking by churn risk (0 = random). "
        "<code>propensity target --uplift</code> ranks by it.</p>"
    )
    return words + f'<div class="figs">{image}</div>'
