"""The retention report: one self-contained HTML file (PNGs embedded) plus the PNGs beside it.

Sections: the models (leaderboards, gain and calibration plots from the champions' training runs),
segments with their risk and value at risk, migration and drift since the previous run, and the top
of the risk list with reasons and actions.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no backend switch for importers

from features.store import atomic_path
from serving.drift import compare_runs
from serving.schema import REPORT_COLUMNS, TEXT_COLUMNS

TOP_ROWS = 25
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#1f2933;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e4e7eb;padding-bottom:.3rem;margin-top:2.2rem}
.sub{color:#52606d;margin-top:0}.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{background:#f5f7fa;border-radius:8px;padding:.8rem 1.1rem;min-width:10rem}.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #e4e7eb;text-align:right}
th{background:#f5f7fa}td.l,th.l{text-align:left}.figs{display:flex;gap:1rem;flex-wrap:wrap}.figs img{max-width:420px;border:1px solid #e4e7eb}.figs img.wide{max-width:680px}
.note{color:#52606d;font-size:.85rem}
"""


@dataclass
class ReportResult:
    html: Path
    images: list[Path]


BOARD_COLUMNS = ("family", "kind", "backtest_metric", "test_roc_auc", "test_pr_auc", "test_lift_at_10", "test_ece")
BOARD_COLUMNS += ("test_gini", "test_spearman", "test_total_error", "test_decile_mape")  # the value task's


def _table(frame: pd.DataFrame, text_columns: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in text_columns else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            if isinstance(value, float):
                text = "" if value != value else (f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}")
            else:
                text = "" if value is None or value is pd.NA else str(value)
            cells.append(f'<td class="{"l" if column in text_columns else ""}">{html.escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _img(png: bytes, alt: str, css: str = "") -> str:
    return f'<img class="{css}" alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


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


def _segment_chart(summary: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(9, 3.6))
    left, right = fig.subplots(1, 2, sharey=True)
    order = summary.iloc[::-1]
    left.barh(order["segment"], order["customers"], color="#3e7cb1")
    left.set(xlabel="customers", title="Segment size")
    shown = "value at risk" if "value at risk" in order else "mean p_purchase"  # no churn model: purchase propensity
    right.barh(order["segment"], order[shown], color="#d64545")
    right.set(xlabel=shown, title=shown.capitalize())
    return _figure_png(fig)


def _risk_chart(scores: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    churn = scores["p_churn"].notna().any()  # scored without a churn model: the purchase scores instead
    ax.hist(scores["p_churn" if churn else "p_purchase"], bins=30, color="#3e7cb1")
    title = "Churn risk distribution" if churn else "Purchase propensity distribution"
    ax.set(xlabel="P(churn)" if churn else "P(purchase)", ylabel="customers", title=title)
    return _figure_png(fig)


def _value_chart(scores: pd.DataFrame) -> bytes:
    """CLV per customer (the top 1% folded into the last bar, so that the bulk stays readable)."""
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    clv = scores["expected_value"].to_numpy(float)
    ax.hist(np.clip(clv, None, np.nanquantile(clv, 0.99)), bins=30, color="#3e9c6b")
    ax.set(xlabel="CLV (top 1% in the last bar)", ylabel="customers", title="Customer value distribution")
    return _figure_png(fig)


def _value_html(scores: pd.DataFrame, models_info: dict) -> str:
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


def _migration_html(comparison: dict) -> str:
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
        + _table(matrix, ("from \\ to",))
    )


def build_report(scores: pd.DataFrame, previous: pd.DataFrame | None, models_info: dict, folder: Path) -> ReportResult:
    """Write ``report.html`` and its PNGs into ``folder`` (each file atomically)."""
    folder = Path(folder)
    as_of = pd.Timestamp(scores["as_of"].iloc[0]).date()
    summary = segment_summary(scores)
    images = {"segments.png": _segment_chart(summary), "risk_distribution.png": _risk_chart(scores)}
    if scores["expected_value"].notna().any():
        images["value_distribution.png"] = _value_chart(scores)
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
                parts.append(_table(board[keep], ("family", "kind")))
            figs = []
            for name in ("gain.png", "calibration.png", "deciles.png"):
                if name in found:
                    images[f"{task}_{name}"] = found[name].read_bytes()
                    figs.append(_img(images[f"{task}_{name}"], f"{task} {name}"))
            parts.append(
                f'<div class="figs">{"".join(figs)}</div>'
                if figs
                else '<p class="note">No training plots were found for this version.</p>'
            )
            model_sections.append("".join(parts))
    top = scores.sort_values("rank").head(TOP_ROWS)
    top_columns = [c for c in REPORT_COLUMNS if c in top.columns and top[c].notna().any()]  # no empty score column
    text_cols = tuple(c for c in top_columns if c in TEXT_COLUMNS)
    cards = [
        ("customers scored", f"{len(scores):,}"),
        ("value at risk", f"{scores['value_at_risk'].sum(min_count=1):,.0f}"),
        ("total CLV", f"{scores['expected_value'].sum(min_count=1):,.0f}"),
        ("mean P(churn)", f"{scores['p_churn'].mean():.1%}"),
        ("mean P(purchase)", f"{scores['p_purchase'].mean():.1%}"),
    ]
    if "churn" in models_info:
        subtitle = f"Churn: no purchase in the next {models_info['churn']['record'].horizon_days} days."
        ranking = "by value at risk" if scores["value_at_risk"].notna().any() else "by P(churn)"
    else:
        subtitle = "No churn model is registered: customers rank by their probability of buying."
        ranking = "by P(purchase)"
    cards = [  # a task scored without a model shows no card rather than "nan"
        (k, v) for k, v in cards if "nan" not in v
    ]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Propensity report {as_of}</title><style>{CSS}</style></head><body>
<h1>Customer risk report</h1><p class="sub">Scores as of {as_of}. {subtitle}</p>
<div class="cards">{"".join(f'<div class="card"><b>{v}</b>{k}</div>' for k, v in cards)}</div>
<h2>Segments: size, risk and value at risk</h2>{_table(summary, ("segment",))}
<div class="figs">{_img(images["segments.png"], "segments", "wide")}{_img(images["risk_distribution.png"], "risk distribution")}</div>
<h2>Customer value</h2>{_value_html(scores, models_info)}
{f'<div class="figs">{_img(images["value_distribution.png"], "value distribution")}</div>' if "value_distribution.png" in images else ""}
<h2>Since the last run</h2>{_migration_html(compare_runs(previous, scores))}
<h2>Top of the risk list ({ranking})</h2>{_table(top[top_columns], text_cols)}
<p class="note">Reasons are the strongest drivers of each customer's churn score (SHAP for tree models, occlusion otherwise).</p>
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
