"""The retention report: one self-contained HTML file (PNGs embedded) plus the PNGs beside it.

Sections: a summary in words, segments and suggested actions with their risk and value at risk, customer
value, migration and drift since the previous run, predicted vs realised churn for the latest run whose
window has closed, the top of the risk list with reasons and actions, and the models (leaderboards, gain
and calibration plots from the champions' training runs). Readable on a phone and printable.
"""

from __future__ import annotations

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from features.store import atomic_path
from serving.drift import compare_runs
from serving.exports import headers
from serving.outcomes import Outcome
from serving.report_parts import CSS, img, money, risk_chart, segment_chart, table, value_chart
from serving.report_sections import (
    action_summary,
    alerts_html,
    cluster_html,
    index_html,
    migration_html,
    outcome_html,
    segment_summary,
    summary_html,
    value_html,
)
from serving.schema import REASON_COLUMNS, REPORT_COLUMNS, TEXT_COLUMNS

TOP_ROWS = 25


@dataclass
class ReportResult:
    html: Path
    images: list[Path]


BOARD_COLUMNS = ("family", "kind", "backtest_metric", "test_roc_auc", "test_pr_auc", "test_lift_at_10", "test_ece")
BOARD_COLUMNS += ("test_gini", "test_spearman", "test_total_error", "test_decile_mape")  # the value task's


def _training_artifacts(run_id: str, folder: Path) -> dict[str, Path]:
    """The champion training run's leaderboard and plots (missing ones are skipped)."""
    import mlflow

    found = {}
    for name in ("leaderboard.csv", "gain.png", "calibration.png", "deciles.png"):
        try:
            found[name] = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=f"evaluation/{name}", dst_path=str(folder)
                )
            )
        except Exception:  # an artifact store without the file: the report says so instead of failing
            continue
    return found


def _top_of_list(scores: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The first rows of the risk list for people: their headers (as in the exported lists), probabilities as
    percentages, the reasons in one "Why" column, one per line."""
    top = scores.sort_values("rank").head(TOP_ROWS)
    columns = [c for c in REPORT_COLUMNS if c in top.columns and top[c].notna().any() and c not in REASON_COLUMNS]
    shown = top[columns].copy()
    for column in ("p_churn", "p_purchase"):
        if column in shown:
            shown[column] = [f"{p:.1%}" for p in shown[column]]
    if "alerts" in shown:  # one per line, like the reasons
        shown["alerts"] = [
            a if not isinstance(a, str) else "\n".join(f"• {x}" for x in a.split("; ")) for a in shown["alerts"]
        ]
    reasons = [c for c in REASON_COLUMNS if c in top.columns]
    if reasons:
        shown["why"] = [
            "\n".join(f"• {r}" for r in row if isinstance(r, str)) for row in top[reasons].itertuples(index=False)
        ]
    names = {**{k: v.removesuffix(" (%)") for k, v in headers().items()}, "why": "Why"}
    text = tuple(names.get(c, c) for c in columns if c in TEXT_COLUMNS)
    return shown.rename(columns=names), text


def build_report(
    scores: pd.DataFrame,
    previous: pd.DataFrame | None,
    models_info: dict,
    folder: Path,
    outcome: Outcome | None = None,
    currency: str = "",
    campaigns: str = "",
) -> ReportResult:
    """Write ``report.html`` and its PNGs into ``folder`` (each file atomically). ``outcome``: the latest closed
    scoring run's predictions against what customers did; ``currency``: the sign put before amounts; ``campaigns``: the
    campaigns section (``serving.report_campaigns``)."""
    folder = Path(folder)
    as_of = pd.Timestamp(scores["as_of"].iloc[0]).date()
    summary = segment_summary(scores)
    images = {"segments.png": segment_chart(summary, currency), "risk_distribution.png": risk_chart(scores)}
    if scores["expected_value"].notna().any():
        images["value_distribution.png"] = value_chart(scores, currency)
    model_sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for task, info in models_info.items():
            found = _training_artifacts(info["run_id"], Path(tmp) / task)
            parts = [
                f"<h3>{task}: {html.escape(info['name'])} v{info['version']} ({html.escape(info['record'].family)}, "
                f"test cutoff {html.escape(', '.join(info['record'].test_cutoffs))})</h3>"
            ]
            if "leaderboard.csv" in found:
                board = pd.read_csv(found["leaderboard.csv"])
                keep = [c for c in BOARD_COLUMNS if c in board.columns]
                parts.append(table(board[keep], ("family", "kind")))
            figs = []
            for name in ("gain.png", "calibration.png", "deciles.png"):
                if name in found:
                    images[f"{task}_{name}"] = found[name].read_bytes()
                    figs.append(img(images[f"{task}_{name}"], f"{task} {name}"))
            parts.append(
                f'<div class="figs">{"".join(figs)}</div>'
                if figs
                else '<p class="note">No training plots were found for this version.</p>'
            )
            model_sections.append("".join(parts))
    top, text_cols = _top_of_list(scores)
    money_cols = ("CLV", "value at risk", *(headers()[c] for c in ("expected_value", "value_at_risk")))
    cards = [
        ("customers scored", f"{len(scores):,}"),
        ("value at risk", money(scores["value_at_risk"].sum(min_count=1), currency) or "nan"),
        ("total CLV", money(scores["expected_value"].sum(min_count=1), currency) or "nan"),
        ("mean P(churn)", f"{scores['p_churn'].mean():.1%}"),
        ("mean P(purchase)", f"{scores['p_purchase'].mean():.1%}"),
    ]
    horizon = models_info["churn"]["record"].horizon_days if "churn" in models_info else None
    if horizon:
        subtitle = f"Churn: no purchase in the next {horizon} days."
        ranking = "by value at risk" if scores["value_at_risk"].notna().any() else "by P(churn)"
    else:
        subtitle = "No churn model is registered: customers rank by their probability of buying."
        ranking = "by P(purchase)"
    cards = [(k, v) for k, v in cards if "nan" not in v]  # a task scored without a model: no card rather than "nan"
    comparison = compare_runs(previous, scores)
    actions = action_summary(scores)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Propensity report {as_of}</title><style>{CSS}</style></head><body>
<h1>Customer risk report</h1><p class="sub">Scores as of {as_of}. {subtitle}</p>
{summary_html(scores, comparison, currency)}
<div class="cards">{"".join(f'<div class="card"><b>{v}</b>{k}</div>' for k, v in cards)}</div>
<h2>Segments: size, risk and value at risk</h2>{table(summary, ("segment",), money_cols, currency)}
<div class="figs">{img(images["segments.png"], "segments", "wide")}{img(images["risk_distribution.png"], "risk distribution")}</div>
<h2>Suggested actions</h2>{table(actions, ("action",), money_cols, currency)}
<h2>Key-indicator alerts</h2>{alerts_html(scores, currency)}
<h2>Behavioural clusters</h2>{cluster_html(scores, currency, models_info)}
<h2>Customer index</h2>{index_html(scores, currency, models_info)}
<h2>Customer value</h2>{value_html(scores, models_info)}
{f'<div class="figs">{img(images["value_distribution.png"], "value distribution")}</div>' if "value_distribution.png" in images else ""}
<h2>Since the last run</h2>{migration_html(comparison)}
<h2>Predicted vs realised</h2>{outcome_html(outcome, images, horizon)}
{f"<h2>Campaigns</h2>{campaigns}" if campaigns else ""}
<h2>Top of the risk list ({ranking})</h2>{table(top, text_cols, money_cols, currency)}
<p class="note">Reasons are the strongest drivers of each customer's churn risk, what raises it first (SHAP for tree models, occlusion otherwise).</p>
<h2>Models</h2><p class="note">Leaderboards from each champion's training run: the backtest origins choose, test metrics are on the untouched latest origin.</p>{"".join(model_sections)}
</body></html>"""
    written = []
    for name, png in images.items():
        with atomic_path(folder / name) as tmp:
            Path(tmp).write_bytes(png)
        written.append(folder / name)
    with atomic_path(folder / "report.html") as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return ReportResult(folder / "report.html", written)
