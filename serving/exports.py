"""The retention team's lists: the risk list (filtered and sorted scores), and the lists a person opens (risk list,
contact list) as CSV or Excel, with headers a marketer reads.

A ``.csv`` or ``.xlsx`` list gets people's headers ("Churn risk (%)", "Value at risk", "Why"), money rounded to
cents, probabilities as percentages, and (CSV) a UTF-8 byte-order mark so that Excel reads accents and currency
signs right. A ``.parquet`` list keeps the machine names and full precision, for the next program.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.errors import PropensityError
from features.segments import load_segment_rules
from features.store import atomic_path, write_frame
from serving.value import load_value_settings

SORT_KEYS = {"risk": "p_churn", "value-at-risk": "value_at_risk", "purchase": "p_purchase", "index": "customer_index"}
MONEY = (
    "predicted_value",
    "expected_value",
    "value_at_risk",
    "expected_value_saved",
    "expected_gain",
    "cumulative_net",
)
SHARES = ("p_churn", "p_purchase", "expected_save")  # probabilities: shown as percentages


def headers() -> dict[str, str]:
    """Machine name -> the header a person reads."""
    months = load_value_settings().duration_months
    return {
        "rank": "Rank",
        "customer_id": "Customer",
        "p_churn": "Churn risk (%)",
        "p_purchase": "Chance to buy (%)",
        "predicted_value": "Predicted spend",
        "expected_value": f"Predicted {months}-month value",
        "value_at_risk": "Value at risk",
        "rfm_segment": "RFM segment",
        "lifecycle": "Lifecycle stage",
        "value_matrix": "Value group",
        "abc_tier": "ABC tier",
        "cluster": "Cluster",
        "customer_index": "Customer index (0-100)",
        "index_percentile": "Index percentile",
        "action": "Suggested action",
        "alerts": "Alerts",
        "reason_1": "Why",
        "reason_2": "Why (2)",
        "reason_3": "Why (3)",
        "expected_save": "Chance the contact saves them (%)",
        "expected_value_saved": "Expected value saved",
        "expected_gain": "Expected gain after contact cost",
        "cumulative_net": "Cumulative net",
    }


def for_people(frame: pd.DataFrame) -> pd.DataFrame:
    """The list with people's headers, money to cents and probabilities as percentages (one decimal)."""
    out = frame.copy()
    for column in out.columns.intersection(MONEY):
        out[column] = out[column].astype(float).round(2)
    for column in out.columns.intersection(SHARES):
        out[column] = (out[column].astype(float) * 100).round(1)
    for column in out.columns.intersection(["customer_index", "index_percentile"]):
        out[column] = out[column].astype(float).round(1)
    return out.rename(columns=headers())


def write_list(frame: pd.DataFrame, target: Path) -> Path:
    """Write a list atomically: for people as .csv (UTF-8 with a BOM) or .xlsx, for programs as .parquet."""
    target = Path(target)
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        return write_frame(frame, target)  # Parquet as it is (or the one sentence on the suffixes a list takes)
    people = for_people(frame)
    with atomic_path(target) as tmp:
        if suffix == ".csv":
            people.to_csv(tmp, index=False, encoding="utf-8-sig")
        else:
            _excel(people, tmp)
    return target


def _excel(frame: pd.DataFrame, path: Path) -> None:
    """One sheet, the header row frozen, columns wide enough for their header or text (capped)."""
    from openpyxl.utils import get_column_letter

    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        frame.to_excel(writer, index=False, sheet_name="List")
        sheet = writer.sheets["List"]
        sheet.freeze_panes = "A2"
        for i, column in enumerate(frame.columns, start=1):
            values = frame[column].astype(object)
            longest = max((len(str(v)) for v in values[values.notna()]), default=0)
            sheet.column_dimensions[get_column_letter(i)].width = min(max(len(column), longest) + 2, 60)


def risk_list(
    scores: pd.DataFrame, top: int, by: str = "value-at-risk", segment: list[str] | None = None, min_value: float = 0.0
) -> pd.DataFrame:
    """The retention team's list: filtered, sorted by risk or value at risk, top N."""
    if by not in SORT_KEYS:
        raise PropensityError(f"Unknown ranking {by!r}: use risk, value-at-risk, purchase or index.")
    if by == "index" and scores.get("customer_index", pd.Series(dtype=float)).isna().all():
        raise PropensityError("These scores have no customer index: the models were registered without one.")
    if by != "index" and scores["p_churn"].isna().all():  # scored without a churn model: the rows rank by P(purchase)
        by = "purchase"
    frame = scores[scores["expected_value"] >= min_value]
    if scores["expected_value"].isna().all():  # an event log: no value, no RFM segment; rank by risk
        if min_value > 0 or segment:
            raise PropensityError("The log has no amounts: there is no value or RFM segment to filter on.")
        by, frame = ("risk" if by == "value-at-risk" else by), scores
    if segment:  # a segment the rules name but nobody is in gives an empty list; a name they lack is an error
        named = set(load_segment_rules().rfm.segments.values())
        if unknown := sorted(set(segment) - named):
            raise PropensityError(f"There is no RFM segment {unknown[0]!r}; the segments are {sorted(named)}.")
        frame = frame[frame["rfm_segment"].isin(segment)]
    chosen = frame.sort_values([SORT_KEYS[by], "customer_id"], ascending=[False, True], kind="stable")
    chosen = chosen.head(top).reset_index(drop=True)
    chosen.attrs["ranked_by"] = by  # what the list is sorted on, which the data may have changed
    return chosen
