"""The Ibis features agree with the independent pandas reference in tests/pandas_reference.py."""

from datetime import date

import pandas as pd
from pandas_reference import reference_features

from features.build import build_features


def test_engine_matches_pandas_reference_on_generated_log(small_synthetic):
    tx, _, _ = small_synthetic
    log = tx.to_pandas()
    for cutoff in (date(2022, 9, 1), date(2023, 6, 1)):
        got = build_features(tx, cutoff).drop(columns=["main_channel"])
        want = reference_features(log, pd.Timestamp(cutoff))
        assert len(got) > 100
        pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-9, atol=1e-9)


def test_several_cutoffs_and_look_backs_in_one_build_match_the_reference(small_synthetic):
    """Several cutoffs in one build (the banded product and category counts), with a short and a long look-back:
    each cutoff's rows are the reference's for that cutoff alone."""
    tx, _, _ = small_synthetic
    log = tx.to_pandas()
    cutoffs = [date(2022, 9, 1), date(2023, 1, 1), date(2023, 6, 1)]
    for lookback_days in (90, 500):
        got = build_features(tx, cutoffs, lookback_days=lookback_days).drop(columns=["main_channel"])
        want = pd.concat([reference_features(log, pd.Timestamp(c), lookback_days) for c in cutoffs], ignore_index=True)
        want = want.sort_values(["customer_id", "as_of"], ignore_index=True)
        assert len(got) > 100
        pd.testing.assert_frame_equal(got, want[got.columns], check_dtype=False, rtol=1e-9, atol=1e-9)
