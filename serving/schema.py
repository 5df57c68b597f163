"""The scored row: one definition of its columns, from which the exports, the REST model and the docs derive.

``score_features`` writes these columns (plus the feature columns the segment rules read); the risk
list and contact list export the ``listed`` ones; ``serving.rest.schemas.ScoredCustomer`` is built from
the ``served`` ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Column:
    name: str
    type: type
    description: str
    listed: bool = True  # in the risk list and contact list exports
    served: bool = True  # in the REST answers
    required: bool = False  # always present in a REST answer
    reported: bool = False  # in the report's top of the risk list


SCORED_COLUMNS: tuple[Column, ...] = (
    Column("rank", int, "position in the batch run by value at risk (1 = highest); stored scores only", reported=True),
    Column("customer_id", str, "the customer", required=True, reported=True),
    Column("as_of", date, "scored as of this date: features use everything before it", listed=False, required=True),
    Column(
        "p_churn",
        float,
        "calibrated probability of no purchase within the churn model's horizon (90 days by default); "
        "null when no churn model is registered",
        reported=True,
    ),
    Column(
        "p_purchase",
        float,
        "calibrated probability of a purchase within the purchase model's horizon (30 days by default); "
        "null when no purchase model is registered",
        reported=True,
    ),
    Column(
        "predicted_value",
        float,
        "predicted net spend in the value model's horizon (90 days by default); without a value model, the historic "
        "net spend rate (net spend / tenure, tenure at least 30 days) over the churn horizon",
    ),
    Column(
        "expected_value",
        float,
        "customer lifetime value (CLV): the margin on predicted_value's monthly rate over duration_months (12 by "
        "default), discounted, minus the contact cost (serving/config/value.yaml; docs/value.md); null on a log "
        "without amounts",
        reported=True,
    ),
    Column(
        "value_at_risk",
        float,
        "p_churn x expected_value (CLV); the default ranking (without a churn model: null, and the rows rank by "
        "p_purchase; on a log without amounts: null, and the rows rank by p_churn)",
        reported=True,
    ),
    Column("rfm_segment", str, "one of the 8 RFM segments (null on a log without amounts)", reported=True),
    Column("rfm_code", str, "R, F and M high/low flags", listed=False),
    Column("r_score", int, "recency score 1-5", listed=False),
    Column("f_score", int, "frequency score 1-5", listed=False),
    Column("m_score", int, "monetary score 1-5", listed=False),
    Column("lifecycle", str, "lifecycle stage", reported=True),
    Column("value_matrix", str, "value matrix cell (frequency x order value)"),
    Column("abc_tier", str, "ABC tier by historic spend (or by predicted CLV: `abc.value: expected_value`)"),
    Column(
        "cluster",
        int,
        "behavioural cluster (K-Means, two-step or Kohonen map: segments.yaml `clusters.method`), fitted on the "
        "training population and carried by the churn model (-1: none)",
    ),
    Column(
        "customer_index",
        float,
        "composite customer index, 0 (worst on every indicator) to 100 (best on every one): the indicators of "
        "segments.yaml `index`, standardised and weighted (entropy weights by default) on the training population; "
        "null when the model carries no index",
    ),
    Column(
        "index_percentile",
        float,
        "share (0-100) of the training population whose index is at or below this customer's: their ranking",
        listed=False,
    ),
    Column(
        "action",
        str,
        "recommended action per RFM segment (per lifecycle stage without one), from serving/config/actions.yaml",
        reported=True,
    ),
    Column(
        "alerts",
        str,
        "key indicators at or past their critical threshold, in words, joined by '; ' (serving/config/alerts.yaml: "
        "overdue 2x the usual gap, spend or orders down 50% on the quarter before, returns 30% of value; deviation "
        "detection: a silence or a last spend 3.5 robust SDs from the customer's own habit); null when none is",
        reported=True,
    ),
)
REASON_COLUMNS = ("reason_1", "reason_2", "reason_3")  # the top drivers, in words; REST answers list them as `reasons`

LIST_COLUMNS: list[str] = [c.name for c in SCORED_COLUMNS if c.listed] + list(REASON_COLUMNS)
SERVED_COLUMNS: tuple[Column, ...] = tuple(c for c in SCORED_COLUMNS if c.served)
REPORT_COLUMNS: list[str] = [c.name for c in SCORED_COLUMNS if c.reported] + list(REASON_COLUMNS)
TEXT_COLUMNS: set[str] = {c.name for c in SCORED_COLUMNS if c.type is str} | set(REASON_COLUMNS)


def scored_columns_markdown() -> str:
    """The scored row's columns as the Markdown table in docs/serving.md."""
    rows = ["| column | meaning | in lists | in REST answers |", "|---|---|---|---|"]
    for c in SCORED_COLUMNS:
        rows.append(f"| `{c.name}` | {c.description} | {'yes' if c.listed else '-'} | {'yes' if c.served else '-'} |")
    rows.append("| `reason_1..3` | the strongest drivers of the churn score, in words (below) | yes | as `reasons` |")
    return "\n".join(rows)
