"""The report's building blocks: its style sheet, HTML tables, money in words, and the charts (matplotlib's object
API: no pyplot state, no backend switch for importers)."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

# Readable at 1400 px and on a phone (tables scroll sideways inside their box, images shrink), and on paper
# (no shadows or backgrounds, tables kept whole where they fit, each chart on the page it starts on).
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1320px;color:#1f2933;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #e4e7eb;padding-bottom:.3rem;margin-top:2.2rem}
.sub{color:#52606d;margin-top:0}.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{background:#f5f7fa;border-radius:8px;padding:.8rem 1.1rem;min-width:10rem}.card b{display:block;font-size:1.5rem}
.summary{font-size:1.05rem;line-height:1.5;max-width:60rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #e4e7eb;text-align:right;vertical-align:top}
th{background:#f5f7fa}td.l,th.l{text-align:left}td.why{text-align:left;min-width:17rem}td.alerts{text-align:left;min-width:10rem}
.figs{display:flex;gap:1rem;flex-wrap:wrap}.figs img{max-width:min(420px,100%);border:1px solid #e4e7eb}.figs img.wide{max-width:min(680px,100%)}
.note{color:#52606d;font-size:.85rem}
@media (max-width:700px){body{margin:1rem auto}.card{min-width:8rem}.card b{font-size:1.2rem}td.why{min-width:16rem}}
@media print{body{max-width:none;margin:0;font-size:10pt}.card,th{background:none}.card{border:1px solid #cbd2d9}
.scroll{overflow:visible}table,img{page-break-inside:avoid}h2{page-break-after:avoid}.figs img{max-width:48%}}
"""


def money(value: float, currency: str = "") -> str:
    """An amount for people: thousands separated, no cents, the configured currency sign in front."""
    if value is None or value != value:
        return ""
    return f"-{currency}{-value:,.0f}" if value < 0 else f"{currency}{value:,.0f}"


def table(
    frame: pd.DataFrame, text_columns: tuple[str, ...] = (), money_columns: tuple[str, ...] = (), currency: str = ""
) -> str:
    """An HTML table in a box that scrolls sideways on a narrow screen; a column named "Why" wraps its lines."""
    left = {*text_columns, "Why", "Alerts"}
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(str(c))}</th>' for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            if column in money_columns:
                text = money(value, currency)
            elif isinstance(value, float):
                text = "" if value != value else (f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}")
            else:
                text = "" if value is None or value is pd.NA else str(value)
            css = {"Why": "why", "Alerts": "alerts"}.get(column, "l" if column in text_columns else "")
            body = "<br>".join(html.escape(line) for line in text.split("\n"))
            cells.append(f'<td class="{css}">{body}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def img(png: bytes, alt: str, css: str = "") -> str:
    return f'<img class="{css}" alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _thousands(axis, currency: str = "") -> None:
    """Few ticks, each in thousands (k) or millions (M), so that labels never run into each other."""
    axis.set_major_locator(MaxNLocator(4))

    def label(x, _):
        for size, unit in ((1e6, "M"), (1e3, "k")):
            if abs(x) >= size:
                return f"{currency}{x / size:,.{0 if abs(x) >= 10 * size else 1}f}{unit}"
        return f"{currency}{x:,.0f}"

    axis.set_major_formatter(FuncFormatter(label))


def segment_chart(summary: pd.DataFrame, currency: str = "") -> bytes:
    fig = Figure(figsize=(9, 3.6))
    left, right = fig.subplots(1, 2, sharey=True)
    order = summary.iloc[::-1]
    left.barh(order["segment"], order["customers"], color="#3e7cb1")
    left.set(xlabel="customers", title="Segment size")
    _thousands(left.xaxis)
    shown = "value at risk" if "value at risk" in order else "mean p_purchase"  # no churn model: purchase propensity
    right.barh(order["segment"], order[shown], color="#d64545")
    right.set(xlabel=shown, title=shown.capitalize())
    if shown == "value at risk":
        _thousands(right.xaxis, currency)
    return figure_png(fig)


def risk_chart(scores: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    churn = scores["p_churn"].notna().any()  # scored without a churn model: the purchase scores instead
    ax.hist(scores["p_churn" if churn else "p_purchase"], bins=30, color="#3e7cb1")
    title = "Churn risk distribution" if churn else "Purchase propensity distribution"
    ax.set(xlabel="P(churn)" if churn else "P(purchase)", ylabel="customers", title=title)
    return figure_png(fig)


def value_chart(scores: pd.DataFrame, currency: str = "") -> bytes:
    """CLV per customer (the top 1% folded into the last bar, so that the bulk stays readable)."""
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    clv = scores["expected_value"].to_numpy(float)
    ax.hist(np.clip(clv, None, np.nanquantile(clv, 0.99)), bins=30, color="#3e9c6b")
    ax.set(xlabel="CLV (top 1% in the last bar)", ylabel="customers", title="Customer value distribution")
    _thousands(ax.xaxis, currency)
    return figure_png(fig)


def outcome_chart(deciles: pd.DataFrame, as_of, horizon_days: int) -> bytes:
    """Predicted vs realised churn per decile of predicted risk, for a run whose window has closed."""
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    x = deciles["decile"].to_numpy()
    ax.bar(x - 0.2, deciles["predicted"], width=0.4, color="#3e7cb1", label="predicted")
    ax.bar(x + 0.2, deciles["realised"], width=0.4, color="#d64545", label="realised")
    ax.set(xlabel="decile of predicted risk (1 = highest)", ylabel="churn rate", ylim=(0, 1), xticks=x)
    ax.set_title(f"Scored {as_of}: churn in the next {horizon_days} days", fontsize=10)
    ax.legend(frameon=False)
    return figure_png(fig)


def qini_chart(curves: dict, test_members: int) -> bytes:
    """Qini curves on the held-out campaign members: the uplift learner, churn-risk ranking and random targeting."""
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.subplots()
    for (name, (x, y)), colour in zip(curves.items(), ("#9aa5b1", "#2b7a4b"), strict=False):
        ax.plot(x, y, label=name, color=colour, linewidth=2)
    x_end, y_end = next(iter(curves.values()))[0][-1], next(iter(curves.values()))[1][-1]
    ax.plot([0, x_end], [0, y_end], linestyle="--", color="#c0392b", linewidth=1, label="random")
    ax.set_xlabel(f"customers contacted, best first (of {test_members:,} held-out members)")
    ax.set_ylabel("incremental customers retained")
    ax.set_title("Qini curve: who is retained because of the contact")
    ax.legend(frameon=False)
    return figure_png(fig)
