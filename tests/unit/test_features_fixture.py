"""Exact features and labels on the hand-written dozen-row fixture (see conftest.DOZEN_CSV)."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, build_training_table
from features.cutoffs import Horizons
from features.definitions import FEATURES

AS_OF = date(2021, 3, 1)
H = Horizons(churn_horizon_days=30, purchase_horizon_days=14, lookback_days=365)
nan = np.nan

# Hand-derived. A: purchases Jan 4 10:00 (12.0), Jan 18 12:00 (3.0), Feb 15 09:00 (20.0), a return of
# 5.0 on Feb 20; B: one purchase Sat Dec 5 15:30 (10.0) and one exactly at the cutoff; C: Jun 1 and
# Sun Nov 15 2020 at 11:00 (100.0 each); D is outside the 365-day lookback; E buys only after the cutoff.
EXPECTED = {
    "customer_id": ["A", "B", "C"],
    "recency_days": [13 + 15 / 24, 85 + 8.5 / 24, 105 + 13 / 24],
    "frequency_invoices": [3, 1, 2],
    "frequency_days": [3, 1, 2],
    "monetary_total": [35.0, 10.0, 200.0],
    "monetary_mean": [35 / 3, 10.0, 100.0],
    "net_spend_total": [30.0, 10.0, 200.0],
    "tenure_days": [55 + 14 / 24, 85 + 8.5 / 24, 272 + 13 / 24],
    "btyd_frequency": [2, 0, 1],
    "btyd_recency": [42, 0, 167],
    "btyd_T": [56, 86, 273],
    "invoices_7d": [0, 0, 0],
    "invoices_14d": [1, 0, 0],
    "invoices_30d": [1, 0, 0],
    "invoices_90d": [3, 1, 0],
    "invoices_180d": [3, 1, 1],
    "invoices_365d": [3, 1, 2],
    "spend_30d": [20.0, 0.0, 0.0],
    "spend_90d": [35.0, 10.0, 0.0],
    "spend_180d": [35.0, 10.0, 100.0],
    "spend_365d": [35.0, 10.0, 200.0],
    "gap_mean_days": [21.0, nan, 167.0],
    "gap_std_days": [np.sqrt(98.0), nan, nan],
    "overdue_ratio": [(13 + 15 / 24) / 21, nan, (105 + 13 / 24) / 167],
    "spend_trend": [1.0, 1.0, -1.0],
    "invoice_trend": [1.0, 1.0, -1.0],
    "gap_cv": [np.sqrt(98.0) / 21, nan, nan],
    "recency_prev_days": [42, nan, 273],
    # A's gaps are 14 and 28 days: too few for a habit. A's purchase days spent 12, 3 and 20: median 12, quartiles
    # 7.5 and 16 (interpolated), so the last day's 20 is (20 - 12) / (8.5 / 1.349) robust SDs above the median.
    "gap_deviation": [nan, nan, nan],
    "spend_deviation": [(20 - 12) / (8.5 / 1.349), nan, nan],
    "invoices_year_ago_90d": [nan, nan, nan],
    "distinct_products": [3, 1, 1],
    "basket_lines_mean": [4 / 3, 1.0, 1.0],
    "basket_units_mean": [7 / 3, 4.0, 1.5],
    "unit_price_mean": [5.0, 2.5, 200 / 3],
    "repeat_product_share": [1 / 3, 0.0, 1.0],
    "return_share_lines": [0.2, 0.0, 0.0],
    "return_share_value": [0.125, 0.0, 0.0],
    "weekend_share": [0.0, 1.0, 0.5],
    "main_country": ["UK", "DE", "FR"],
}


def test_features_match_hand_computed_values(dozen):
    tx, _ = dozen
    got = build_features(tx, AS_OF, lookback_days=365)
    expected = pd.DataFrame(EXPECTED)
    expected.insert(1, "as_of", pd.Timestamp("2021-03-01"))
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12, atol=1e-12)


def test_labels_match_hand_computed_values(dozen):
    tx, _ = dozen
    got = build_training_table(tx, [AS_OF], H).set_index("customer_id")
    # A buys on Mar 5 (5.0): not churned, purchase within 14 days. B buys exactly at the cutoff (3.0),
    # which belongs to the label window, not the features. C does not come back.
    assert got["churn"].to_dict() == {"A": 0, "B": 0, "C": 1}
    assert got["purchase"].to_dict() == {"A": 1, "B": 1, "C": 0}
    assert got["spend"].to_dict() == {"A": 5.0, "B": 3.0, "C": 0.0}


def test_cutoff_whose_horizon_runs_past_the_data_is_refused(dozen):
    from features.errors import PropensityError

    tx, _ = dozen
    with pytest.raises(PropensityError, match=r"latest cutoff with a full horizon is 2021-03-01"):
        build_training_table(tx, [date(2021, 3, 2)], H)
    # a log shorter than the horizon has no such cutoff: naming one before its first line would mislead
    with pytest.raises(PropensityError, match=r"the whole log \(.*\) is shorter than that: no cutoff can have labels"):
        build_training_table(tx, [date(2021, 3, 2)], Horizons(800, 30))


def test_several_cutoffs_stack_and_each_matches_its_single_run(dozen):
    tx, _ = dozen
    cutoffs = [date(2021, 1, 15), date(2021, 2, 1), AS_OF]
    stacked = build_features(tx, cutoffs)
    assert sorted(stacked["as_of"].unique()) == [pd.Timestamp(c) for c in cutoffs]
    # the scoring-only features (deviation detection) are built for one cutoff, not for a stack of them
    scoring_only = [f.name for f in FEATURES if not f.model_input]
    assert not set(scoring_only) & set(stacked.columns)
    for c in cutoffs:
        alone = build_features(tx, c)
        assert set(scoring_only) <= set(alone.columns)
        part = stacked[stacked["as_of"] == pd.Timestamp(c)].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, alone.drop(columns=scoring_only))


def test_every_catalogued_feature_is_produced_and_documented(dozen):
    tx, _ = dozen
    got = build_features(tx, AS_OF)
    produced = set(got.columns) - {"customer_id", "as_of"}
    catalogue = {f.name for f in FEATURES if "channel" not in f.requires}
    assert produced == catalogue
    docs = (__import__("pathlib").Path(__file__).parents[2] / "docs" / "features.md").read_text()
    for f in FEATURES:
        assert f"`{f.name}`" in docs


def test_the_feature_doc_is_generated_from_the_catalogue():
    """docs/features.md carries the catalogue's table: `python -m features.docs` rewrites it after an edit."""
    from features.docs import DOC, render

    text = DOC.read_text()
    assert render(text) == text, "docs/features.md is stale: run `python -m features.docs`"


def test_the_scored_row_doc_is_generated_from_the_schema():
    from serving.docs import DOC, render

    text = DOC.read_text()
    assert render(text) == text, "docs/serving.md is stale: run `python -m serving.docs`"


def test_deviation_detection_against_the_customers_own_habit(tmp_path):
    """R buys every 10 days for 10 each time; I's gaps are 10, 20, 30, 40 and I spends 10, 10, 10, 10, then 2."""
    from tests.conftest import canonical_log

    start = pd.Timestamp("2021-01-01 12:00")
    rows = [("R", f"R{i}", start + pd.Timedelta(days=10 * i), 10.0) for i in range(6)]
    i_days = [0, 10, 30, 60, 100]
    rows += [("I", f"I{i}", start + pd.Timedelta(days=d), 2.0 if i == 4 else 10.0) for i, d in enumerate(i_days)]
    frame = pd.DataFrame(rows, columns=["customer_id", "invoice_id", "ts", "unit_price"]).assign(quantity=1)
    tx, _ = canonical_log(frame.astype(str), tmp_path)
    got = build_features(tx, date(2021, 4, 26)).set_index("customer_id")  # day 115 after the first purchase
    # R: open gap 65 days against gaps all 10 (IQR 0): the spread is its floor, 10% of the median = 1 day
    assert got.loc["R", "gap_deviation"] == pytest.approx(65 - 10, abs=1e-12)
    assert got.loc["R", "spend_deviation"] == pytest.approx(0.0, abs=1e-12)  # 10 every time: no deviation
    # I: open gap 15 days; gaps quartiles 17.5, 25, 32.5 -> (15 - 25) / (15 / 1.349)
    assert got.loc["I", "gap_deviation"] == pytest.approx((15 - 25) / (15 / 1.349), abs=1e-12)
    # I's day spends 10, 10, 10, 10, 2: median 10, IQR 0, floor 1: the last day is 8 below
    assert got.loc["I", "spend_deviation"] == pytest.approx(-8.0, abs=1e-12)
